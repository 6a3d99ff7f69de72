"""Hostile markdown and text: every chunker keeps its invariants and runs in
time linear in the input (issue 10, item 4).

Each shape is generated at any length. The timing test chunks it at ``SIZE``
and at four times that (best of three each) and bounds the ratio well below the
16 that quadratic work would give. The regular expressions rewritten for linear
time are checked against the patterns they replaced.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chunkers
from chunkers.engine import LazySentences, Plan, trim
from chunkers.headings import atx_headings
from chunkers.levels import FENCE, Source, fence_lines, break_ends, structural_line_ends
from chunkers.sentences import fast_punkt
from tests.helpers import cpu_seconds
from tests.invariants import check_chunks

SIZE = 20_000  # characters; the timing test also runs 4 * SIZE
MAX_RATIO = 8.0  # linear work gives ~4, quadratic ~16


def _repeat(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


SHAPES = {
    "heading_lines": lambda n: _repeat("# # # # # # # # # # # # # # # #\n", n),
    "heading_long_line": lambda n: _repeat("# ", n - 1) + "x",
    "heading_long_lines": lambda n: _repeat("# " * 400 + "x\n", n),
    "hash_runs": lambda n: _repeat("#" * 30 + "\n", n),
    "hash_run_one_line": lambda n: "# " + "#" * n + " x",
    "spaces": lambda n: " " * n,
    "spaces_then_word": lambda n: "a\n" + " " * n + "b",
    "spaces_in_fence": lambda n: "```\n" + " " * n + "\n```\n",
    "spaces_in_unclosed_fence": lambda n: "```\n" + " " * n,
    "indented_blank_lines": lambda n: _repeat("a\n" + " " * 2000 + "\n", n),
    "no_whitespace_lines": lambda n: _repeat("x" * 2000 + "\n", n),
    "no_whitespace": lambda n: _repeat("abcdefghij", n),
    "dash_items": lambda n: _repeat("- ", n),
    "dash_item_lines": lambda n: _repeat("- - - - - - - -\n", n),
    "numbered_items": lambda n: _repeat("1. ", n),
    "numbered_item_lines": lambda n: _repeat("1. 1. 1. 1.\n", n),
    "quote_flood": lambda n: ">" * n,
    "quote_lines": lambda n: _repeat("> > > > >\n", n),
    "pipe_flood": lambda n: "|" * n,
    "table_lines": lambda n: _repeat("| | | | |\n", n),
    "fences": lambda n: _repeat("```\n", n),
    "fences_nested": lambda n: _repeat("````\n```\n~~~\n", n),
    "fences_unclosed": lambda n: _repeat("```py\ncode\n", n),
    "blank_lines_then_dot": lambda n: "a" + "\n" * n + ".",
    "blank_runs": lambda n: _repeat("a" + "\n" * 500 + "- ", n),
    "dots": lambda n: "." * n,
    "dot_space_lines": lambda n: _repeat(". " * 100 + "\n", n),
    "bang_question": lambda n: _repeat("!?", n),
    "commas": lambda n: "," * n,
    "abbreviations": lambda n: _repeat("e.g. ", n),
    "abbreviations_caps": lambda n: _repeat("e.g. A. ", n),
    "carriage_returns": lambda n: _repeat("a\r\n\r\n", n),
    "unicode_whitespace": lambda n: _repeat("a\u2003\u2028\u3000\u00a0\r\u0085", n),
    "words_then_trailing_blank": lambda n: _repeat("word ", n // 2) + " " * (n - n // 2),
    "one_word": lambda n: "a" * n,
    "heading_marks_one_line": lambda n: "x " + _repeat("**__<h", n),
}


def hashing_embedder(texts):
    """A cheap deterministic bag-of-words embedder."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"\w+", t.lower()):
            out[i, zlib.crc32(w.encode()) % 32] += 1
        out[i, 31] += 0.01
    return out


# The default ingest chunking is hybrid 256/32; the others at the same budget.
CONFIGS = {
    "fixed": ("fixed", dict(max_tokens=256, overlap=32)),
    "sentence": ("sentence", dict(max_tokens=256, overlap=32)),
    "paragraph": ("paragraph", dict(max_tokens=256)),
    "recursive": ("recursive", dict(max_tokens=256, overlap=32)),
    "hybrid": ("hybrid", dict(max_tokens=256, overlap=32)),
    "semantic": ("semantic", dict(max_tokens=256, embedder=hashing_embedder)),
    "semantic_group": ("semantic", dict(max_tokens=256, embedder=hashing_embedder, mode="group")),
}


@pytest.fixture(scope="module")
def built():
    made = {key: chunkers.get(name, **params) for key, (name, params) in CONFIGS.items()}
    for chunker in made.values():  # load Punkt and the encodings before any timing
        chunker("# Warm up\n\nFirst sentence. Second one.\n\n" + "word " * 400)
    fast_punkt().starts("Warm up. Now.")
    return made


def test_every_registered_chunker_is_timed():
    assert {name for name, _ in CONFIGS.values()} == set(chunkers.available())


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_invariants_on_pathological_input(shape, built):
    text = SHAPES[shape](4_000)
    for chunker in built.values():
        check_chunks(text, chunker(text), chunker)


def _seconds(chunker, text: str) -> float:
    return cpu_seconds(chunker, text)[1]


def _ratio(chunker, small: str, large: str) -> tuple[float, float, float]:
    """Best of three timings of the small input; the large input is timed again (up to five times) only
    while its best so far is over the bound (a slow first run may be noise)."""
    # a floor, so timer noise on a few milliseconds cannot fail the test
    t_small = max(min(_seconds(chunker, small) for _ in range(3)), 0.005)
    t_large = float("inf")
    for _ in range(5):
        t_large = min(t_large, _seconds(chunker, large))
        if t_large / t_small < MAX_RATIO:
            break
    return t_small, t_large, t_large / t_small


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_time_is_linear_in_input(shape, built):
    small, large = SHAPES[shape](SIZE), SHAPES[shape](4 * SIZE)
    slow = {}
    for key, chunker in built.items():
        t_small, t_large, ratio = _ratio(chunker, small, large)
        if ratio >= MAX_RATIO:
            slow[key] = f"{t_small:.3f}s -> {t_large:.3f}s (x{ratio:.1f})"
    assert not slow, f"{shape}: 4x the input took super-linear time: {slow}"


def test_one_megabyte_word():
    text = "a" * (1 << 20)
    chunker = chunkers.get("hybrid", max_tokens=256, overlap=32)
    check_chunks(text, chunker(text), chunker)


# --- the rewritten patterns against the ones they replaced --------------------

_OLD_HEADING = re.compile(r"^(#{1,6})[ \t]+(\S[^\n]*?)[ \t#]*$", re.M)
_OLD_LINE_BEFORE_ITEM = re.compile(r"\n(?=[ \t]*(?:[-*+•][ \t]|\d{1,3}[.)][ \t]|[>|#]|[ \t]{2,}\S))")
_OLD_LINE_AFTER_END = re.compile(r"[.!?:;][ \t]*\n")
_CLOSERS = "\"')]}\u2018\u2019\u201c\u201d\xab\xbb"  # what NLTK's realignment pattern starts with

MARKUP = st.text(alphabet=st.sampled_from(list("# \t\n\r-*+•>|`~.!?:;1x_é/)") + ["\u3000", "\u00a0"]), max_size=300)


def _old_headings(text: str) -> list[tuple[int, int, str]]:
    fenced = Source(text)
    return [
        (m.start(), len(m.group(1)), m.group(2).strip())
        for m in _OLD_HEADING.finditer(text)
        if not (fenced.fences and fenced.fence_at(m.start() + 1) is not None)
    ]


@settings(max_examples=300, deadline=None)
@given(text=MARKUP)
def test_headings_match_the_lazy_pattern(text):
    source = Source(text)
    assert atx_headings(text, source.in_fence) == _old_headings(text)
    assert set(_old_headings(text)) <= set(source.headings)


@settings(max_examples=300, deadline=None)
@given(text=MARKUP)
def test_fence_lines_match_the_anchored_pattern(text):
    assert [m.span() for m in fence_lines(text)] == [m.span() for m in FENCE.finditer(text)]


@settings(max_examples=300, deadline=None)
@given(text=MARKUP)
def test_structural_line_breaks_match_the_nested_pattern(text):
    old = {m.end() for m in _OLD_LINE_AFTER_END.finditer(text)} | {m.end() for m in _OLD_LINE_BEFORE_ITEM.finditer(text)}
    assert structural_line_ends(text, 0, len(text)) == old


@settings(max_examples=300, deadline=None)
@given(text=MARKUP)
def test_sentence_windows_start_where_punkt_can_restart(text):
    """Windows start at the first non-blank character after a paragraph or
    structural line break, unless it is a closing quote or bracket (which Punkt's
    realignment could move) or it lies inside a code block."""
    chunker = chunkers.get("sentence", max_tokens=64)
    source = Source(text)
    a, b = trim(text, 0, len(text))
    if a >= b:
        return
    lazy = LazySentences(Plan(source, chunker.tokenizer.measure(text), chunker.levels, 64, None), a, b)
    firsts = {len(text) - len(text[p:].lstrip()) for p in break_ends(text, a, b) if a < p < b}
    expected = sorted(q for q in firsts if text[q] not in _CLOSERS and source.fence_at(q) is None)
    inside = source.fence_at(a + 1)
    if inside is not None and inside[0] <= a and b <= inside[1]:  # a span inside one code block keeps all
        expected = sorted(q for q in firsts if text[q] not in _CLOSERS)
    assert lazy.bounds == [a, *expected, b]


# --- group mode: a group's count grown by a unit's, against encoding it again ---

SENTENCES = st.lists(
    st.builds(
        lambda words, end: " ".join(words) + end,
        st.lists(st.sampled_from(["/usr", "LoRA", "bread", "rank", "e.g.", "dough", "x" * 40, "日本", "1.", "-", "#"]), min_size=1, max_size=12),
        st.sampled_from([".", "!", "?", ""]),
    ),
    min_size=1,
    max_size=30,
)
SEPARATORS = st.lists(st.sampled_from([" ", "\n", "\n\n", "\r\n", "\t", " \n /"]), min_size=30, max_size=30)


def _reencoding(tokenizer: str):
    """The same tokenizer, but group mode encodes every joined text again."""
    counter = chunkers.get_tokenizer(tokenizer)
    slow = type(counter).__new__(type(counter))
    slow.__dict__.update(counter.__dict__)
    slow.splits_at_line_starts = False
    return slow


@settings(max_examples=150, deadline=None)
@given(sentences=SENTENCES, separators=SEPARATORS, budget=st.sampled_from([8, 24, 64]),
       tokenizer=st.sampled_from(["cl100k_base", "o200k_base", "words", "chars"]))
def test_group_mode_counts_match_encoding_every_group_again(sentences, separators, budget, tokenizer):
    text = "".join(s + sep for s, sep in zip(sentences, separators))
    params = dict(max_tokens=budget, embedder=hashing_embedder, mode="group", threshold=0.0)
    fast = chunkers.get("semantic", tokenizer=tokenizer, **params)
    slow = chunkers.get("semantic", tokenizer=_reencoding(tokenizer), **params)
    chunks = fast(text)
    assert [c.to_dict() for c in chunks] == [c.to_dict() for c in slow(text)]
    check_chunks(text, chunks, fast)


def test_group_mode_on_sample_notes_matches_encoding_again(markdown_notes):
    params = dict(max_tokens=48, embedder=hashing_embedder, mode="group", threshold=0.1)
    fast = chunkers.get("semantic", **params)
    slow = chunkers.get("semantic", tokenizer=_reencoding("cl100k_base"), **params)
    for text in markdown_notes.values():
        assert [c.to_dict() for c in fast(text)] == [c.to_dict() for c in slow(text)]
