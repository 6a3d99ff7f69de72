"""The fast exact count (one encoding plus re-encoded edges) equals encoding each
span on its own, for spans anywhere in real and generated text."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

import chunkers


def brute_force(name, text, spans):
    tok = chunkers.get_tokenizer(name)
    measure = tok.measure(text)
    expected = [tok.count(text[a:b]) for a, b in spans]
    assert measure.exact_counts(spans) == expected
    # Safe points and edge counts found in one call are reused in the next (spans
    # sharing starts or ends): they must not change any count, in any order.
    rng = random.Random(len(text))
    order = list(range(len(spans)))
    rng.shuffle(order)
    for part in (order[: len(order) // 2], order):
        assert measure.exact_counts([spans[i] for i in part]) == [expected[i] for i in part]


def test_exact_counts_on_the_sample_notes(markdown_notes):
    rng = random.Random(7)
    for name in ("cl100k_base", "o200k_base"):
        for text in markdown_notes.values():
            spans = [tuple(sorted(rng.sample(range(len(text) + 1), 2))) for _ in range(200)]
            brute_force(name, text, [(a, b) for a, b in spans if a < b])


PIECES = st.sampled_from(["word", " ", "\n", "\n\n", "  \n", "\t", ".", "!!", "123456", "日本", "🦙", "'s", "x" * 40, "\r\n", " -- ",
                          "é", "e\u0301", " The", "camelCase", "it's", " I'M", "/", ".\n", " 3.5", "Ωmega", " ünï", "\u00a0", "(x)", "_",
                          "\n/", "//", "'S", "'ll", "\r", "?!\n", "://", " /", "\n\n/", "*/\n", "n't", ").", "3."])


@settings(max_examples=int(__import__('os').environ.get('NOTELOOM_HYPOTHESIS_EXAMPLES', 200)), deadline=None)
@given(parts=st.lists(PIECES, min_size=1, max_size=80), data=st.data())
def test_exact_counts_on_generated_text(parts, data):
    text = "".join(parts)
    points = data.draw(st.lists(st.integers(0, len(text)), min_size=2, max_size=12))
    points = sorted(set(points))
    spans = [(a, b) for i, a in enumerate(points) for b in points[i + 1 :]]  # sharing starts and ends
    if spans:
        brute_force("cl100k_base", text, spans)
        brute_force("o200k_base", text, spans)


def test_token_ends_of_a_multi_block_text_match_plain_tiktoken(markdown_notes):
    """Token end offsets from per-block, per-thread encodings (and per-token
    character counts) equal those of one plain encode of the whole text."""
    import numpy as np

    from chunkers.tokenizers import TiktokenCounter

    text = ("\n\n".join(markdown_notes.values()) + "\n\nnaïve café — 日本語 🦙 e\u0301\n/path .\n/x\n") * 30
    assert len(text) > 2 * TiktokenCounter.BLOCK_CHARS
    for name in ("cl100k_base", "o200k_base"):
        tok = chunkers.get_tokenizer(name)
        ids = tok.encoding.encode_ordinary(text)
        byte_ends = np.cumsum([len(tok.encoding.decode_single_token_bytes(i)) for i in ids])
        raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        chars_before = np.concatenate(([0], np.cumsum((raw & 0xC0) != 0x80)))
        expected = chars_before[byte_ends]
        for threads in (1, 2):
            assert np.array_equal(tok.measure(text, threads).finish().ends, expected), (name, threads)


def test_a_measure_grown_block_by_block_is_a_prefix_of_the_whole(markdown_notes):
    """A measure of a text still being encoded (``reach``): every grown measure is
    a prefix of the whole text's token ends that reaches what was asked, and the
    finished one equals it."""
    import numpy as np

    from chunkers.tokenizers import TiktokenCounter

    text = "\n\n".join(markdown_notes.values())
    whole = chunkers.get_tokenizer("cl100k_base").measure(text, 1).finish().ends.copy()
    rng = random.Random(3)
    for threads in (1, 2, 2):
        measure = TiktokenCounter("cl100k_base", threads=threads, block_chars=700).measure(text)
        pos = tokens = 0
        while pos < len(text):
            pos = min(len(text), pos + rng.randint(1, 3000))
            tokens = min(len(whole), tokens + rng.randint(1, 700))
            measure.reach(pos=pos)
            assert measure.ends[-1] >= pos and np.array_equal(measure.ends, whole[: len(measure.ends)])
            measure.reach(tokens=tokens)
            assert len(measure.ends) >= tokens and np.array_equal(measure.ends, whole[: len(measure.ends)])
        assert measure.finish() is measure and np.array_equal(measure.ends, whole)


def test_blocks_are_cut_only_where_encoding_cuts_anyway(markdown_notes):
    """Blocks end at line starts, else at a space before a word, else not at all:
    so per-block token ends equal one encoding of the whole text even in a text
    with no line breaks, or with no spaces either."""
    import numpy as np

    from chunkers.measure import block_bounds
    from chunkers.tokenizers import TiktokenCounter

    notes = "\n\n".join(markdown_notes.values())
    texts = [notes, notes.replace("\n", " "), "a1b2c3d4" * 400 + " end. " + "日本語🦙" * 200]
    for name in ("cl100k_base", "o200k_base"):
        tok = TiktokenCounter(name, block_chars=300)
        for text in texts:
            bounds = block_bounds(text, 300)
            assert bounds[0][0] == 0 and bounds[-1][1] == len(text)
            assert all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
            whole = tok.block_ends(text, 0)
            for threads in (1, 2):
                assert np.array_equal(tok.measure(text, threads).finish().ends, whole), (name, text[:30], threads)


def test_an_error_while_encoding_on_a_helper_thread_reaches_the_caller(markdown_notes):
    """A block that fails to encode on a helper thread makes the chunker raise that
    error rather than wait for the block for ever."""
    import threading

    import pytest

    from chunkers.concurrency import THREAD_NAME
    from chunkers.tokenizers import TiktokenCounter

    text = "\n\n".join(markdown_notes.values())
    failed_on = []

    class FailsOnHelpers(TiktokenCounter):
        def block_ends(self, block, offset=0):
            if threading.current_thread().name.startswith(THREAD_NAME):  # the pool's threads
                if offset > len(text) // 2:
                    failed_on.append(offset)
                    raise RuntimeError(f"block at {offset} failed")
            else:  # the caller: slow, so the helper reaches the second half
                threading.Event().wait(0.002)
            return super().block_ends(block, offset)

    for method in ("sentence", "paragraph", "recursive"):
        failed_on.clear()
        outcome: list[BaseException] = []

        def chunk():
            try:
                tokenizer = FailsOnHelpers("cl100k_base", threads=2, block_chars=500)
                chunkers.get(method, max_tokens=64, tokenizer=tokenizer)(text)
            except BaseException as exc:  # noqa: BLE001 - the test reports what was raised
                outcome.append(exc)

        worker = threading.Thread(target=chunk)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), f"{method}: the chunker hung"
        assert failed_on, "no helper reached the second half"
        with pytest.raises(RuntimeError, match=f"block at {failed_on[0]} failed"):
            raise outcome[0]
