"""The fast exact count (one encoding plus re-encoded edges) equals encoding each
span on its own, for spans anywhere in real and generated text."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

import chunkers


def brute_force(name, text, spans):
    tok = chunkers.get_tokenizer(name)
    measure = tok.measure(text)
    assert measure.exact_counts(spans) == [tok.count(text[a:b]) for a, b in spans]


def test_exact_counts_on_the_sample_notes(markdown_notes):
    rng = random.Random(7)
    for name in ("cl100k_base", "o200k_base"):
        for text in markdown_notes.values():
            spans = [tuple(sorted(rng.sample(range(len(text) + 1), 2))) for _ in range(200)]
            brute_force(name, text, [(a, b) for a, b in spans if a < b])


PIECES = st.sampled_from(["word", " ", "\n", "\n\n", "  \n", "\t", ".", "!!", "123456", "日本", "🦙", "'s", "x" * 40, "\r\n", " -- ",
                          "é", "e\u0301", " The", "camelCase", "it's", " I'M", "/", ".\n", " 3.5", "Ωmega", " ünï", "\u00a0", "(x)", "_"])


@settings(max_examples=int(__import__('os').environ.get('NOTELOOM_HYPOTHESIS_EXAMPLES', 200)), deadline=None)
@given(parts=st.lists(PIECES, min_size=1, max_size=80), data=st.data())
def test_exact_counts_on_generated_text(parts, data):
    text = "".join(parts)
    points = data.draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=12))
    spans = [(a, b) for a, b in zip(sorted(points), sorted(points)[1:]) if a < b]
    if spans:
        brute_force("cl100k_base", text, spans)
        brute_force("o200k_base", text, spans)
