import hashlib
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chunkers
from tests.invariants import check_chunks


def hashing_embedder(texts):
    """A deterministic bag-of-words embedder (any callable is a valid embedder)."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"\w+", t.lower()):
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1
        out[i, 63] += 0.01
    return out


def word_count(text: str) -> int:
    return len(text.split())


CONFIGS = [
    ("fixed", dict(max_tokens=64)),
    ("fixed", dict(max_tokens=100, overlap=20, tokenizer="chars")),
    ("sentence", dict(max_tokens=64)),
    ("sentence", dict(max_tokens=128, sentences_per_chunk=3, overlap=16)),
    ("paragraph", dict(max_tokens=96, min_tokens=24)),
    ("recursive", dict(max_tokens=48)),
    ("recursive", dict(max_tokens=128, overlap=25, tokenizer="o200k_base")),
    ("recursive", dict(max_tokens=40, tokenizer="words")),
    ("recursive", dict(max_tokens=60, tokenizer="clip")),
    ("recursive", dict(max_tokens=30, tokenizer=word_count)),
    ("hybrid", dict()),
    ("hybrid", dict(max_tokens=64, overlap=16)),
    ("hybrid", dict(max_tokens=64, overlap=16, min_section_tokens=48)),
    ("semantic", dict(max_tokens=96, embedder=hashing_embedder)),
    ("semantic", dict(max_tokens=96, embedder=hashing_embedder, mode="group")),
]


def test_every_registered_chunker_is_covered():
    assert {name for name, _ in CONFIGS} == set(chunkers.available())


@pytest.mark.parametrize("name,params", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_invariants_on_sample_notes(name, params, markdown_notes):
    chunker = chunkers.get(name, **params)
    for text in markdown_notes.values():
        chunks = chunker(text)
        assert chunks
        check_chunks(text, chunks, chunker)


WORDS = st.sampled_from(
    ["the", "LoRA", "rank", "Dr.", "e.g.", "U.S.", "3.5", "café", "naïve", "日本語", "🦙", "emoji🎨art", "x" * 300,
     "co-operate", "(word:1.3)", "—", "...", "Σ", "a", "I"]
)
SENTENCE = st.builds(lambda ws, end: " ".join(ws) + end, st.lists(WORDS, min_size=1, max_size=25), st.sampled_from([".", "!", "?", "", ";"]))
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=6).map(" ".join)
BLOCK = st.one_of(
    PARAGRAPH,
    st.builds(lambda lvl, t: "#" * lvl + " " + t, st.integers(1, 4), SENTENCE),
    st.lists(SENTENCE, min_size=1, max_size=4).map(lambda items: "\n".join("- " + i for i in items)),
    st.lists(SENTENCE, min_size=1, max_size=8).map(lambda lines: "```python\n" + "\n".join(lines) + "\n```"),
    st.text(min_size=1, max_size=200),
)
SEPARATOR = st.sampled_from(["\n\n", "\n", "\n\n\n\n", " \n \n", "\r\n\r\n", "\t"])
DOCUMENT = st.builds(
    lambda blocks, seps, tail: "".join(b + s for b, s in zip(blocks, seps)) + tail,
    st.lists(BLOCK, min_size=1, max_size=8),
    st.lists(SEPARATOR, min_size=8, max_size=8),
    st.sampled_from(["", "\n", "   ", "no trailing newline"]),
)

FAST_CONFIGS = [c for c in CONFIGS if c[1].get("tokenizer") != "clip"]


@settings(max_examples=int(__import__('os').environ.get('NOTELOOM_HYPOTHESIS_EXAMPLES', 80)), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=DOCUMENT, config=st.sampled_from(FAST_CONFIGS), budget=st.sampled_from([4, 9, 32, 200]))
def test_invariants_on_generated_text(text, config, budget):
    name, params = config
    params = dict(params, max_tokens=budget)
    params["overlap"] = min(params.get("overlap", 0), budget // 4)
    if name == "paragraph":
        params["min_tokens"] = min(params.get("min_tokens", 0), budget)
    if "min_section_tokens" in params:
        params["min_section_tokens"] = min(params["min_section_tokens"], budget)
    chunker = chunkers.get(name, **params)
    check_chunks(text, chunker(text), chunker)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=400), budget=st.integers(4, 40))
def test_recursive_on_arbitrary_unicode(text, budget):
    chunker = chunkers.get("recursive", max_tokens=budget, overlap=budget // 5)
    check_chunks(text, chunker(text), chunker)
