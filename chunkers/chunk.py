"""The one value type of the library: a chunk with exact offsets into its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a source text.

    ``source[start:end] == text`` always holds for a contiguous chunk. A chunk
    assembled from separate passages (semantic ``group`` mode) has ``spans``, one
    ``(start, end)`` pair per passage, each obeying the same slice rule; its
    ``text`` is those passages joined by ``SPAN_SEPARATOR`` and ``start``/``end``
    bound them all.
    """

    text: str
    start: int
    end: int
    token_count: int
    index: int
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    spans: tuple[tuple[int, int], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "token_count": self.token_count,
            "index": self.index,
            "meta": self.meta,
        }
        if self.spans is not None:
            out["spans"] = [list(span) for span in self.spans]
        return out


SPAN_SEPARATOR = "\n\n"
