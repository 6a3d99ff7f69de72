"""FastPunkt must give exactly NLTK Punkt's sentence spans (same parameters)."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chunkers.sentences import fast_punkt, punkt_tokenizer

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "notes"

TRICKY = (
    'Dr. J. R. Smith met Mr. Jones at 9 a.m. in the U.S. on Jan. 3. It rained... Then? '
    '"Stop." (Really.) [See fig. 2.] The 3rd. item; e.g. this, i.e. that. Version 3.5. Next '
    "step -- done. He said 'yes.' She left.\u201d And then\u2019s. St. Louis vs. Boston! "
    "No. 5 won. Ask A. Turing. x.y.z. Done.\tTab. Line\r\nbreak. Over\x0bhere. "
    "Form\x0cfeed. Odd\x1cseparator. Non\xa0breaking. ..Dots. . . . spaced. "
    "Ellipsis\u2026 end. foo_bar. baz-etc. Approx. 12. 1. Item one. 2) Item two. END."
)

PIECES = st.sampled_from(
    [
        "Dr.", "e.g.", "U.S.", "3.5", "a.m.", "J.", "etc.", "No.", "vs.", "Fig.", "word", "The", "the", "it",
        "LoRA", "SD", "1.", "2)", "...", "..", ".", "?", "!", "?!", "--", '"', "'", "(", ")", "[", "]",
        "\u201c", "\u201d", "\u2019", "\xab", "\xbb", ",", ";", ":", "_x", "x.y", "-", "@", "*",
    ]
)
SPACES = st.sampled_from([" ", " ", " ", "\n", "\n\n", "", "\t", "\r\n", "\xa0", "\x1c", "  "])
PUNKT_TEXT = st.lists(st.tuples(PIECES, SPACES), max_size=60).map(lambda parts: "".join(p + s for p, s in parts))


def nltk_spans(text: str) -> list[tuple[int, int]]:
    return list(punkt_tokenizer().span_tokenize(text))


def test_fast_punkt_matches_nltk_on_the_sample_notes_and_tricky_text():
    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLES.iterdir())] + [TRICKY, TRICKY * 3, ""]
    for text in texts:
        assert fast_punkt().spans(text) == nltk_spans(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=PUNKT_TEXT)
def test_fast_punkt_matches_nltk_on_generated_text(text):
    assert fast_punkt().spans(text) == nltk_spans(text)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300))
def test_fast_punkt_matches_nltk_on_arbitrary_unicode(text):
    assert fast_punkt().spans(text) == nltk_spans(text)


def test_long_texts_are_not_cut_off_by_nltks_regex_time_limit(monkeypatch):
    """NLTK >= 3.10 raises TimeoutError once one span_tokenize call runs past its
    regex time limit (5 s: a text of ~40 MB); ours must not depend on it."""
    from nltk import redos

    import chunkers

    monkeypatch.setattr(redos, "DEFAULT_TIMEOUT", 1e-6)
    text = (TRICKY + "\n\n") * 200
    spans = fast_punkt().spans(text)
    assert len(spans) > 1000 and all(text[a:b].strip() == text[a:b] for a, b in spans)
    chunks = chunkers.get("sentence", max_tokens=64)(text)
    assert chunks and all(c.text == text[c.start : c.end] for c in chunks)


# --- the sentence chunker's lazy planning equals the eager one ----------------

from tests.test_chunkers_invariants import DOCUMENT  # noqa: E402

PARAGRAPH_STARTS = st.sampled_from(["", "The ", "1. ", '"', "(", "“", "» ", "- ", "3.5 ", "e.g. ", "```\n", "x", "  "])
BREAKS = st.sampled_from(["\n\n", "\n \n", "\n\n\n", "\n", " ", "\n\t\n"])
PARAGRAPHS = st.lists(st.tuples(PARAGRAPH_STARTS, PUNKT_TEXT, BREAKS), min_size=1, max_size=12).map(
    lambda parts: "".join(start + body + brk for start, body, brk in parts)
)


def lazy_and_eager(text: str, block_chars: int | None = None, **params):
    """Chunks of the lazy plan and of the eager one; with ``block_chars``, the text
    is encoded in blocks that small, so the lazy plan runs while they arrive."""
    import chunkers
    from chunkers.tokenizers import TiktokenCounter

    name = params.get("tokenizer", "cl100k_base")
    if block_chars is not None and name in ("cl100k_base", "o200k_base"):
        params = {**params, "tokenizer": TiktokenCounter(name, block_chars=block_chars)}
    lazy = chunkers.get("sentence", **params)
    eager = chunkers.get("sentence", **params)
    eager.levels = (eager.levels[0].with_(lazy=False), *eager.levels[1:])
    assert lazy.levels[0].lazy
    return lazy(text), eager(text)


def test_lazy_sentence_planning_matches_eager_on_the_notes():
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(SAMPLES.iterdir()))
    for params in ({"max_tokens": 512}, {"max_tokens": 64}, {"max_tokens": 40, "overlap": 8}, {"max_tokens": 24, "tokenizer": "words"}):
        lazy, eager = lazy_and_eager(text, **params)
        assert lazy == eager, params
        lazy, eager = lazy_and_eager(text, block_chars=1000, **params)  # planned while encoded
        assert lazy == eager, params


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=st.one_of(PARAGRAPHS, DOCUMENT), budget=st.sampled_from([3, 6, 12, 40]), overlap=st.sampled_from([0, 1]))
def test_lazy_sentence_planning_matches_eager_on_generated_documents(text, budget, overlap):
    lazy, eager = lazy_and_eager(text, max_tokens=budget, overlap=overlap)
    assert lazy == eager
    lazy, eager = lazy_and_eager(text, block_chars=40, max_tokens=budget, overlap=overlap)
    assert lazy == eager
