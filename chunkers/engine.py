"""One engine over ordered split levels; paragraph, sentence, recursive, hybrid
and fixed are configurations of it (see ``builtin.py``).

Algorithm, for a span over the budget:
1. take the first remaining level whose boundaries fall inside the span;
2. cut there, then walk the pieces in order: a piece over the budget is split by
   the next levels (recursively); pieces that fit are merged with their
   neighbours while the merged span fits (and while the level's ``max_pieces``
   and the chunker's ``min_tokens`` allow); a ``hard`` level never merges;
3. with no level left, cut token windows.
Whitespace at either end of a chunk is trimmed, so offsets always start and end
on text. With ``overlap`` > 0 the plan uses ``max_tokens - overlap`` and each
chunk then extends forward over the first ``overlap`` tokens of the next chunk
(snapped back to a word end) — fixed windows come out as 0:1000, 800:1800, ...
Planned counts come from one encoding of the whole text; every chunk is then
counted again exactly, and the rare one over budget is re-planned tighter.
"""

from __future__ import annotations

from typing import Any, Sequence

from .base import Chunker
from .chunk import Chunk
from .levels import Source, SplitLevel
from .measure import Measure

Span = tuple[int, int, int]  # start, end, section


class _Planner:
    def __init__(self, source: Source, measure: Measure, levels: Sequence[SplitLevel], budget: int, min_tokens: int | None) -> None:
        self.source = source
        self.text = source.text
        self.measure = measure
        self.levels = levels
        self.budget = budget
        self.min_tokens = min_tokens
        self.section = 0
        self.out: list[Span] = []

    def trim(self, a: int, b: int) -> tuple[int, int]:
        text = self.text
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        return a, b

    def boundaries(self, level: SplitLevel, a: int, b: int) -> list[int]:
        cuts = level.find(self.source, a, b)
        if cuts and self.source.fences and level.name != "line":
            inside = self.source.fence_at(a + 1)
            whole_block = inside is not None and inside[0] <= a and b <= inside[1]
            if not whole_block:
                cuts = [p for p in cuts if self.source.fence_at(p) is None]
        return cuts

    def split(self, a: int, b: int, li: int = 0) -> None:
        a, b = self.trim(a, b)
        if a >= b:
            return
        count = self.measure.count
        if li >= len(self.levels):
            self.windows(a, b)
            return
        level = self.levels[li]
        if not (level.hard or level.eager) and count(a, b) <= self.budget:
            self.out.append((a, b, self.section))
            return
        cuts = self.boundaries(level, a, b)
        if not cuts:
            self.split(a, b, li + 1)
            return
        starts = [a, *cuts]
        ends = [*cuts, b]
        if level.hard:
            for s, e in zip(starts, ends):
                self.section += 1
                self.split(s, e, li + 1)
            return
        group: list[int] | None = None  # [start, end, pieces]
        budget, min_tokens, max_pieces = self.budget, self.min_tokens, level.max_pieces
        for s, e in zip(starts, ends):
            s, e = self.trim(s, e)
            if s >= e:
                continue
            if count(s, e) > budget:
                if group:
                    self.out.append((group[0], group[1], self.section))
                    group = None
                self.split(s, e, li + 1)
                continue
            if group is None:
                group = [s, e, 1]
            elif (
                (max_pieces is not None and group[2] >= max_pieces)
                or (min_tokens is not None and count(group[0], group[1]) >= min_tokens)
                or count(group[0], e) > budget
            ):
                self.out.append((group[0], group[1], self.section))
                group = [s, e, 1]
            else:
                group[1] = e
                group[2] += 1
        if group:
            self.out.append((group[0], group[1], self.section))

    def windows(self, a: int, b: int) -> None:
        while a < b:
            e = self.measure.advance(a, self.budget, b)
            s, e2 = self.trim(a, e)
            if s < e2:
                self.out.append((s, e2, self.section))
            a, _ = self.trim(e, b)


class LevelChunker(Chunker):
    """A chunker defined by its ordered ``levels``; see the module docstring."""

    levels: tuple[SplitLevel, ...] = ()
    min_tokens: int | None = None  # None: fill up to the budget; else stop merging once a chunk reaches it

    def split_levels(self) -> Sequence[SplitLevel]:
        return self.levels

    def chunk(self, text: str) -> list[Chunk]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        if not text or text.isspace():
            return []
        source = Source(text)
        measure = self.tokenizer.measure(text)
        spans = self._plan(source, measure, 0, len(text), self.max_tokens - self.overlap)
        counts = self._exact_counts(measure, [(a, b) for a, b, _ in spans])
        spans, counts = self._repair(source, measure, spans, counts)
        if self.overlap:
            spans, counts = self._extend(source, measure, spans, counts)
        return [
            Chunk(text[a:b], a, b, n, i, self._meta(source, a))
            for i, ((a, b, _), n) in enumerate(zip(spans, counts))
        ]

    def _meta(self, source: Source, start: int) -> dict[str, Any]:
        return {"headings": source.heading_path(start)}

    def _plan(self, source: Source, measure: Measure, a: int, b: int, budget: int, section: int = 0) -> list[Span]:
        planner = _Planner(source, measure, self.split_levels(), max(1, budget), self.min_tokens)
        planner.section = section
        planner.split(a, b)
        return planner.out

    def _extend(self, source: Source, measure: Measure, spans: list[Span], counts: list[int]):
        """Extend each chunk over the start of the next one in its section by up to
        ``overlap`` tokens; an extension whose exact count breaks either limit is
        dropped, never trimmed blindly."""
        text = source.text
        candidates: dict[int, int] = {}
        for i, ((a, b, sec), nxt) in enumerate(zip(spans, spans[1:])):
            if nxt[2] != sec:
                continue
            room = min(self.overlap, self.max_tokens - counts[i])
            if room <= 0:
                continue
            e = measure.advance(nxt[0], room, nxt[1])
            if e < nxt[1] and not text[e].isspace():
                cut = max(text.rfind(" ", nxt[0], e), text.rfind("\n", nxt[0], e))
                if cut > nxt[0]:
                    e = cut  # end the overlap on a word boundary
            while e > nxt[0] and text[e - 1].isspace():
                e -= 1
            if e > b:
                candidates[i] = e
        if not candidates:
            return spans, counts
        order = sorted(candidates)
        whole = self._exact_counts(measure, [(spans[i][0], candidates[i]) for i in order])
        shared = self._exact_counts(measure, [(spans[i + 1][0], candidates[i]) for i in order])
        spans, counts = list(spans), list(counts)
        for i, n_whole, n_shared in zip(order, whole, shared):
            if n_whole <= self.max_tokens and n_shared <= self.overlap:
                spans[i] = (spans[i][0], candidates[i], spans[i][2])
                counts[i] = n_whole
        return spans, counts

    def _exact_counts(self, measure: Measure, spans: Sequence[tuple[int, int]]) -> list[int]:
        if measure.exact:
            return [measure.count(a, b) for a, b in spans]
        text = measure.text
        return self.tokenizer.count_batch([text[a:b] for a, b in spans])

    def _repair(self, source, measure, spans: list[Span], counts: list[int]):
        """Re-plan, with a tighter budget, each chunk whose exact count is over."""
        limit = self.max_tokens
        for _round in range(8):
            bad = [i for i, n in enumerate(counts) if n > limit]
            if not bad:
                break
            new_spans: list[Span] = []
            new_counts: list[int] = []
            for i, (span, n) in enumerate(zip(spans, counts)):
                if n <= limit:
                    new_spans.append(span)
                    new_counts.append(n)
                    continue
                a, b, sec = span
                budget = max(1, limit - (n - limit) - _round)
                parts = self._plan(source, measure, a, b, budget, sec)
                if len(parts) <= 1 and budget == 1:
                    parts = [(a, b, sec)]  # one character over budget: cannot cut inside it
                new_spans.extend(parts)
                new_counts.extend(self._exact_counts(measure, [(p[0], p[1]) for p in parts]))
            spans, counts = new_spans, new_counts
        return spans, counts
