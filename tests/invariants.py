"""One invariant check for every chunker: exact offsets, order, declared overlap
only, budget kept (counted again here), all non-whitespace text covered."""

from __future__ import annotations

import chunkers
from chunkers import SPAN_SEPARATOR


def check_chunks(text: str, chunks: list, chunker) -> None:
    count = chunkers.get_tokenizer(chunker.tokenizer_spec).count
    if not text.strip():
        assert chunks == []
        return
    covered = bytearray(len(text))
    previous = None
    for i, c in enumerate(chunks):
        assert c.index == i
        spans = c.spans if c.spans is not None else ((c.start, c.end),)
        if c.spans is None:
            assert text[c.start : c.end] == c.text, f"chunk {i}: offsets do not slice its text"
        else:
            assert c.text == SPAN_SEPARATOR.join(text[a:b] for a, b in spans)
            assert c.start == spans[0][0] and c.end == spans[-1][1]
        for a, b in spans:
            assert 0 <= a < b <= len(text)
            assert text[a:b] == text[a:b].strip(), f"chunk {i} starts or ends with whitespace"
            for k in range(a, b):
                covered[k] = 1
        recount = count(c.text)
        assert c.token_count == recount, f"chunk {i}: token_count {c.token_count} != {recount}"
        if len(c.text) > 1:  # one character alone may exceed a tiny budget
            assert recount <= chunker.max_tokens, f"chunk {i}: {recount} tokens > {chunker.max_tokens}"
        if previous is not None and c.spans is None and previous.spans is None:
            assert c.start > previous.start and c.end >= previous.end, "chunks out of order"
            if c.start < previous.end:
                shared = count(text[c.start : previous.end])
                assert shared <= chunker.overlap, f"chunks {i-1},{i} share {shared} tokens > overlap {chunker.overlap}"
        previous = c
    if chunks and chunks[0].spans is not None:  # group mode: spans never shared
        seen = sorted(span for c in chunks for span in c.spans)
        assert all(a[1] <= b[0] for a, b in zip(seen, seen[1:])), "grouped spans overlap"
    missing = [k for k, ch in enumerate(text) if not ch.isspace() and not covered[k]]
    assert not missing, f"{len(missing)} non-whitespace characters not covered, first at {missing[0]}: {text[missing[0]:missing[0]+20]!r}"
    assert [c.to_dict() for c in chunker(text)] == [c.to_dict() for c in chunks], "not deterministic"
