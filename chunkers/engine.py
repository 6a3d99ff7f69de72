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
on text. With ``overlap`` > 0 the plan uses ``max_tokens - overlap``, and then
each chunk starts up to ``overlap`` tokens earlier, inside the previous chunk of
its section, on a word boundary (``_extend``); fixed windows come out as 0:1000,
800:1800, ...
Planned counts come from one encoding of the whole text; every chunk is then
counted again exactly, and the rare one over budget is re-planned tighter.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import re
from typing import Callable, Sequence

from .base import Chunker
from .chunk import Chunk
from .levels import BLANK_LINES, Source, SplitLevel, break_ends, punkt_starts
from .measure import Measure, OffsetMeasure

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
        self.found: dict[tuple, object] = {}  # boundaries and pieces found ahead (``prefetch``)
        # While the text is still being encoded: ``cover(pos=)`` makes the measure
        # reach character ``pos``, ``cover()`` the whole text (see _chunk_while_encoding).
        self.cover: Callable[..., None] | None = None

    def trim(self, a: int, b: int) -> tuple[int, int]:
        text = self.text
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        return a, b

    def skip_space(self, a: int, b: int) -> int:
        """The first non-whitespace position in ``[a, b)``, else ``b``: ``trim(a, b)[0]``
        without walking back over whitespace before ``b`` (once per window that was
        quadratic on a text ending in a long blank run)."""
        text = self.text
        while a < b and text[a].isspace():
            a += 1
        return a

    def outside_fences(self, a: int, b: int) -> Callable[[int], bool] | None:
        """For ``[a, b)``: the test that keeps a cut out of fenced code blocks, or
        None when there is nothing to test (no blocks, or the span is inside one)."""
        if not self.source.fences:
            return None
        inside = self.source.fence_at(a + 1)
        if inside is not None and inside[0] <= a and b <= inside[1]:
            return None
        fence_at = self.source.fence_at
        return lambda p: fence_at(p) is None

    def boundaries(self, level: SplitLevel, a: int, b: int) -> list[int]:
        cuts = level.find(self.source, a, b)
        keep = self.outside_fences(a, b) if cuts and level.name != "line" else None
        return cuts if keep is None else [p for p in cuts if keep(p)]

    def cuts(self, li: int, a: int, b: int) -> list[int]:
        found = self.found.pop((li, a, b), None)
        return self.boundaries(self.levels[li], a, b) if found is None else found

    def pieces(self, li: int, a: int, b: int, cuts: list[int]) -> tuple[list[int], list[int]]:
        """Starts and ends of the non-blank pieces between ``cuts``, trimmed."""
        found = self.found.pop(("pieces", li, a, b), None)
        if found is not None:
            return found
        text = self.text
        ps, pe = [], []
        for s, e in zip([a, *cuts], [*cuts, b]):  # trim, inlined: this loop is hot
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if s < e:
                ps.append(s)
                pe.append(e)
        return ps, pe

    def prefetch(self, a: int, b: int, li: int = 0) -> None:
        """Token-free work, done while the text is still being encoded: boundaries
        and pieces of the levels that ``split`` will certainly cut at (eager and
        hard ones, and any level on a span far over the budget in characters),
        stored for ``split`` to take."""
        a, b = self.trim(a, b)
        if a >= b or li >= len(self.levels):
            return
        level = self.levels[li]
        if not (level.hard or level.eager) and b - a < 16 * self.budget:
            return
        cuts = self.boundaries(level, a, b)
        self.found[(li, a, b)] = cuts
        if not cuts:
            self.prefetch(a, b, li + 1)
        elif level.hard:
            for s, e in zip([a, *cuts], [*cuts, b]):
                self.prefetch(s, e, li + 1)
        else:
            self.found[("pieces", li, a, b)] = self.pieces(li, a, b, cuts)

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
            self.found.pop((li, a, b), None)
            self.found.pop(("pieces", li, a, b), None)
            self.out.append((a, b, self.section))
            return
        cuts = self.cuts(li, a, b)
        streaming = li == 0 and self.cover is not None  # only for an eager first level
        if not cuts:
            if streaming:
                self.cover()
            self.split(a, b, li + 1)
            return
        if level.hard:
            for s, e in zip([a, *cuts], [*cuts, b]):
                self.section += 1
                self.split(s, e, li + 1)
            return
        ps, pe = self.pieces(li, a, b, cuts)
        if not ps:
            return
        if streaming:
            known = _KnownBounds(self.measure, ps, pe, self.cover)
            self._merge_sorted(ps, pe, known.first, known.last, li, grow=known.grow)
            return
        vector = self.measure.bounds(ps, pe)
        budget, min_tokens, max_pieces = self.budget, self.min_tokens, level.max_pieces
        out = self.out
        section = self.section
        if vector is not None:
            self._merge_sorted(ps, pe, *vector, li)
            return

        def span_count(i: int, j: int) -> int:
            return count(ps[i], pe[j])

        g = -1  # index of the first piece of the open group, -1 when none
        g_end = 0  # index of its last piece
        for j in range(len(ps)):
            if span_count(j, j) > budget:
                if g >= 0:
                    out.append((ps[g], pe[g_end], section))
                    g = -1
                self.split(ps[j], pe[j], li + 1)
                continue
            if g < 0:
                g, g_end = j, j
            elif (
                (max_pieces is not None and j - g >= max_pieces)
                or (min_tokens is not None and span_count(g, g_end) >= min_tokens)
                or span_count(g, j) > budget
            ):
                out.append((ps[g], pe[g_end], section))
                g, g_end = j, j
            else:
                g_end = j
        if g >= 0:
            out.append((ps[g], pe[g_end], section))

    def _merge_sorted(self, ps: list[int], pe: list[int], first: list[int], last: list[int], li: int,
                      grow: Callable[..., None] | None = None) -> None:
        """The merge loop of ``split`` when piece ``i`` holds tokens ``first[i]..last[i]``
        (both non-decreasing): a group's count only grows as it takes pieces, so
        where each group ends is a binary search, not a walk over every piece.
        ``grow(i, token)``: while the text is being encoded, extends ``first`` and
        ``last`` until they hold piece ``i`` and, with ``token``, a piece ending
        past that token (or every piece)."""
        budget, min_tokens, max_pieces = self.budget, self.min_tokens, self.levels[li].max_pieces
        out, section, n = self.out, self.section, len(ps)
        g = 0
        while g < n:
            if grow is not None:
                grow(g)
            if last[g] - first[g] + 1 > budget:  # too big alone: split it further
                self.split(ps[g], pe[g], li + 1)
                g += 1
                continue
            target = first[g] + budget - 1
            if grow is not None:
                grow(g, target if min_tokens is None else max(target, first[g] + min_tokens - 1))
            # the last piece that keeps the group within budget (pieces too big alone lie beyond it)
            k = bisect.bisect_right(last, target, g, len(last)) - 1
            if min_tokens is not None:  # the group closes once it reaches min_tokens
                k = min(k, bisect.bisect_left(last, first[g] + min_tokens - 1, g, len(last)))
            if max_pieces is not None:
                k = min(k, g + max_pieces - 1)
            out.append((ps[g], pe[k], section))
            g = k + 1

    def windows(self, a: int, b: int) -> None:
        while a < b:
            e = self.window_end(a, self.budget, b)
            s, e2 = self.trim(a, e)
            if s < e2:
                self.out.append((s, e2, self.section))
            a, _ = self.trim(e, b)

    def window_end(self, a: int, n: int, b: int) -> int:
        """End of a window of ``n`` tokens from ``a``, shortened until its exact count
        fits (a cut inside a pre-token can cost one more token), so a window is never
        re-split into a window and a one-word leftover."""
        e = self.measure.advance(a, n, b)
        exact = getattr(self.measure, "exact_counts", None)
        if exact is None:
            return e
        for _attempt in range(4):
            s, e2 = self.trim(a, e)
            if s >= e2:
                return e
            over = exact([(s, e2)])[0] - n
            if over <= 0:
                return e
            e = self.measure.advance(a, max(1, n - over - _attempt), b)
        return e


class _KnownBounds:
    """First and last token of each piece, for the pieces that the encoding of
    the text has reached so far; ``grow`` covers more of the text as needed."""

    def __init__(self, measure: Measure, ps: list[int], pe: list[int], cover: Callable[..., None]) -> None:
        self.measure, self.ps, self.pe, self.cover = measure, ps, pe, cover
        self.first: list[int] = []
        self.last: list[int] = []
        self._add()

    def _add(self) -> None:
        ends = self.measure.ends
        known = len(self.last)
        reached = bisect.bisect_right(self.pe, int(ends[-1]), known) if len(ends) else known
        if reached > known:
            first, last = self.measure.bounds(self.ps[known:reached], self.pe[known:reached])
            self.first += first
            self.last += last

    def grow(self, index: int, token: int | None = None) -> None:
        """Until piece ``index`` is known and, with ``token``, a known piece ends
        past that token (or every piece is known)."""
        n = len(self.ps)
        while len(self.last) < n and (index >= len(self.last) or (token is not None and self.last[-1] <= token)):
            self.cover(pos=self.pe[len(self.last)])  # at least one more piece
            self._add()


# Up to the next word: at most 199 more word characters, then the whole whitespace run.
_TO_NEXT_WORD = re.compile(r"\S{0,199}\s+")


# After a paragraph break, a letter or digit straight away makes it a clean break:
# where sentence splitting can restart without changing any sentence start after
# it. (Tested on the breaks the blank-line level finds: one pattern with this as a
# look-ahead retried every line break of a long blank run and was quadratic.)
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


class _LazySentences:
    """The merge of ``split`` for a chunker whose first level is eager sentences,
    with Punkt run only on the paragraphs where a chunk can end.

    A chunk ends at the last piece end within the budget, so only the paragraph
    where the budget runs out (and the one where the chunk starts) need their
    sentence starts; the paragraphs in between lie inside the chunk whatever their
    sentences are. Paragraphs are cut at clean breaks (``_LETTER_OR_DIGIT``), and Punkt run on
    a window from one such point to the end of the first line after the next
    gives exactly the starts that Punkt on the whole text gives inside it: every
    candidate's word, context and decision are the same (whitespace separates
    each window's first candidate from anything before, the window reaches over
    the last candidate's next word, and a start at a letter is never realigned).
    The paragraph break itself is a cut either way. Tests compare this with the
    eager split on the corpus and on generated documents."""

    def __init__(self, planner: "_Planner", a: int, b: int) -> None:
        self.planner, self.text, self.a, self.b = planner, planner.text, a, b
        # token-free, done while the text is being encoded
        self.breaks = sorted(p for p in break_ends(self.text, a, b) if a < p < b)
        self.keep = planner.outside_fences(a, b)
        starts_word = _LETTER_OR_DIGIT.match
        self.bounds = [a] + [
            p for p in BLANK_LINES.find(planner.source, a, b)
            if starts_word(self.text, p) and (self.keep is None or self.keep(p))
        ] + [b]  # no cut inside a code block, so no window edge there either
        self.pieces: dict[int, tuple[list[int], list[int], list[int], list[int]]] = {}
        self.cuts: dict[int, list[int]] = {}

    def segment(self, pos: int) -> int:
        return bisect.bisect_right(self.bounds, pos) - 1

    def cuts_of(self, k: int) -> list[int]:
        """The sentence cuts inside paragraph window ``k`` (token-free)."""
        found = self.cuts.get(k)
        if found is not None:
            return found
        text, w0, w1 = self.text, self.bounds[k], self.bounds[k + 1]
        w_end = self.b if w1 == self.b else min(self.b, (text.find("\n", w1) + 1) or self.b)
        cuts = punkt_starts(text, w0, w_end, upto=w1)
        if cuts and cuts[0] == w0:
            del cuts[0]
        lo, hi = bisect.bisect_right(self.breaks, w0), bisect.bisect_left(self.breaks, w1)
        if lo < hi:  # both ascending: merged, without repeats
            cuts = sorted(set(cuts).union(self.breaks[lo:hi]))
        if self.keep is not None:
            cuts = [c for c in cuts if self.keep(c)]
        self.cuts[k] = cuts
        return cuts

    def pieces_of(self, k: int) -> tuple[list[int], list[int], list[int], list[int]]:
        """Trimmed pieces of paragraph window ``k`` and their first and last token."""
        found = self.pieces.get(k)
        if found is not None:
            return found
        ps, pe = self.planner.pieces(-1, self.bounds[k], self.bounds[k + 1], self.cuts_of(k))
        first, last = self.planner.measure.bounds(ps, pe)
        found = self.pieces[k] = (ps, pe, first, last)
        return found

    def plan(self, cover: Callable[..., None] | None = None) -> None:
        """Plan the chunks in text order. ``cover(pos=, tokens=)``: for a text still
        being encoded, makes the measure reach character ``pos`` and hold
        ``tokens`` tokens (or the whole text) before they are read."""
        planner, b = self.planner, self.b
        measure = planner.measure
        budget, out = planner.budget, planner.out
        g = self.a
        while g < b:
            k = self.segment(g)
            if cover is not None:
                cover(pos=self.bounds[k + 1])
            ps, pe, first, last = self.pieces_of(k)
            i = bisect.bisect_left(ps, g)
            if i == len(ps):  # only whitespace left in this window
                g = self.bounds[k + 1]
                continue
            if last[i] - first[i] + 1 > budget:  # a piece too big alone: split it further
                planner.split(ps[i], pe[i], 1)
                g = ps[i + 1] if i + 1 < len(ps) else self.bounds[k + 1]
                continue
            limit = first[i] + budget - 1  # the last token the chunk may hold
            if cover is not None:
                cover(tokens=limit + 2)  # enough to tell whether limit is the last token
            ends = measure.ends
            if limit >= len(ends) - 1 or ends[limit] >= b:  # the rest of the text fits
                out.append((ps[i], self.last_end(len(self.bounds) - 2), planner.section))
                return
            kl = self.segment(int(ends[limit]) - 1)  # the window where the budget runs out
            if cover is not None:
                cover(pos=self.bounds[kl + 1])
            lps, lpe, _lfirst, llast = self.pieces_of(kl)
            j = bisect.bisect_right(llast, limit) - 1
            if kl == k:
                j = max(j, i)
            if j >= 0:
                out.append((ps[i], lpe[j], planner.section))
                g = lps[j + 1] if j + 1 < len(lps) else self.bounds[kl + 1]
            else:  # no piece of that window fits: the chunk ends with the window before
                out.append((ps[i], self.last_end(kl - 1), planner.section))
                g = self.bounds[kl]

    def last_end(self, k: int) -> int:
        """Where the last non-blank piece of window ``k`` ends (the window's end, trimmed)."""
        text, e = self.text, self.bounds[k + 1]
        while e > self.bounds[k] and text[e - 1].isspace():
            e -= 1
        return e


def _next_space(text: str, s: int, limit: int) -> int | None:
    """The first position after whitespace at or after ``s`` (before ``limit``,
    looking at most 200 characters ahead for the whitespace)."""
    m = _TO_NEXT_WORD.match(text, s, limit)
    return m.end() if m is not None and m.end() < limit else None


_GC_PAUSE_CHARS = 1 << 20


@contextlib.contextmanager
def _gc_paused():
    """Chunking a long text makes millions of short-lived tuples and ints and no
    reference cycles; the collections they trigger only re-walk the heap (about
    12% of the time on 16.8 MB), so the cyclic collector waits until the end."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class LevelChunker(Chunker):
    """A chunker defined by its ordered ``levels``; see the module docstring."""

    levels: tuple[SplitLevel, ...] = ()
    min_tokens: int | None = None  # None: fill up to the budget; else stop merging once a chunk reaches it
    lazy_sentences = False  # the first level is eager sentences, merged by budget alone (see _LazySentences)

    def split_levels(self) -> Sequence[SplitLevel]:
        return self.levels

    def chunk(self, text: str) -> list[Chunk]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        if not text or text.isspace():
            return []
        if len(text) < _GC_PAUSE_CHARS:
            return self._chunk(text)
        with _gc_paused():
            return self._chunk(text)

    def _chunk(self, text: str) -> list[Chunk]:
        source = Source(text)
        planner = self._planner(source, None, self.max_tokens - self.overlap)
        pending = self.tokenizer.start_measure(text)
        lazy = None
        if self.lazy_sentences:
            a, b = planner.trim(0, len(text))
            lazy = _LazySentences(planner, a, b)
        else:
            planner.prefetch(0, len(text))
        # (Finding later windows' sentences while waiting was measured: it slows
        # the encoding threads more than it saves.)
        levels = self.split_levels()
        in_text_order = (
            (lazy is not None or (levels and levels[0].eager and not levels[0].hard))
            and type(self)._plan is LevelChunker._plan  # a subclass's own plan runs after the encoding
        )
        if in_text_order and hasattr(pending, "partial"):  # token ends arrive block by block
            return self._chunk_while_encoding(source, planner, pending, lazy)
        measure = planner.measure = pending.result()
        if not levels and self.overlap:
            spans, counts = self._strided_windows(source, measure)
        else:
            if lazy is not None and isinstance(measure, OffsetMeasure):  # it needs token end offsets
                lazy.plan()
                spans = planner.out
            else:
                spans = self._plan(source, measure, 0, len(text), planner.budget, planner=planner)
            spans, counts, _ = self._finish(source, measure, spans)
        return self._chunks(source, spans, counts)

    def _chunk_while_encoding(self, source: Source, planner: _Planner, pending, lazy: _LazySentences | None) -> list[Chunk]:
        """Plan in text order while the text is still being encoded, and each time
        the plan must wait for tokens, first finish the chunks planned so far (exact
        counts, repairs, overlap, ``Chunk`` objects): that Python work then runs
        beside the helper thread's encoding instead of after it."""
        measure = planner.measure = pending.partial()
        chunks: list[Chunk] = []
        finished = 0  # planner.out[:finished] are in chunks
        before: Span | None = None  # the last finished span as planned: the next one's overlap comes from it

        def finish_planned() -> None:
            nonlocal finished, before
            if finished < len(planner.out):
                planned, finished = planner.out[finished:], len(planner.out)
                spans, counts, before = self._finish(source, measure, planned, before)
                chunks.extend(self._chunks(source, spans, counts, first_index=len(chunks)))

        def cover(pos: int | None = None, tokens: int | None = None) -> None:
            if not pending.covers(pos, tokens):
                finish_planned()
                pending.cover(pos, tokens)

        if lazy is not None:
            lazy.plan(cover=cover)
        else:
            planner.cover = cover
            planner.split(0, len(source.text))
        pending.result()
        finish_planned()
        return chunks

    def _finish(self, source: Source, measure: Measure, planned: list[Span], before: Span | None = None):
        """Exact counts, re-planned chunks over budget, and overlap, for ``planned``
        spans; ``before``: the span planned just before them, whose end their
        first overlap comes from. Returns the spans, their counts, and the last
        span before its overlap (the next call's ``before``)."""
        counts = self._exact_counts(measure, [(a, b) for a, b, _ in planned])
        spans, counts = self._repair(source, measure, planned, counts)
        last = spans[-1] if spans else before
        if self.overlap and spans:
            if before is None:
                spans, counts = self._extend(source, measure, spans, counts)
            else:
                spans, counts = self._extend(source, measure, [before, *spans], [0, *counts])
                spans, counts = spans[1:], counts[1:]
        return spans, counts, last

    def _chunks(self, source: Source, spans: list[Span], counts: list[int], first_index: int = 0) -> list[Chunk]:
        text = source.text
        paths = source.heading_paths([a for a, _, _ in spans])
        return [
            Chunk(text[a:b], a, b, n, i, {"headings": list(path)})
            for i, ((a, b, _), n, path) in enumerate(zip(spans, counts, paths), first_index)
        ]

    def _planner(self, source: Source, measure: Measure | None, budget: int) -> _Planner:
        return _Planner(source, measure, self.split_levels(), max(1, budget), self.min_tokens)

    def _plan(self, source: Source, measure: Measure, a: int, b: int, budget: int, section: int = 0,
              planner: _Planner | None = None) -> list[Span]:
        """Spans of ``[a, b)``; ``planner``: one that ``prefetch`` already prepared."""
        if planner is None:
            planner = self._planner(source, measure, budget)
        planner.section = section
        planner.split(a, b)
        return planner.out

    def _strided_windows(self, source: Source, measure: Measure):
        """Windows of ``max_tokens`` starting every ``max_tokens - overlap`` tokens
        (0:1000, 800:1800, ...); a shared region whose exact count is over
        ``overlap`` starts one token later."""
        planner = _Planner(source, measure, (), self.max_tokens, None)
        n = len(source.text)
        spans: list[Span] = []
        a, _ = planner.trim(0, n)
        while a < n:
            e = planner.window_end(a, self.max_tokens, n)
            s, e2 = planner.trim(a, e)
            if s < e2:
                spans.append((s, e2, 0))
            if e >= n:
                break
            nxt = planner.skip_space(measure.advance(a, self.max_tokens - self.overlap, n), n)
            a = max(nxt, a + 1)
        counts = self._exact_counts(measure, [(a, b) for a, b, _ in spans])
        spans, counts = self._repair(source, measure, spans, counts)
        for i in range(1, len(spans)):
            for _attempt in range(4):
                (_pa, pb, _), (a, b, sec) = spans[i - 1], spans[i]
                if a >= pb or self._exact_counts(measure, [(a, pb)])[0] <= self.overlap:
                    break
                a2, _ = planner.trim(measure.advance(a, 1, b), b)
                spans[i] = (a2, b, sec)
                counts[i] = self._exact_counts(measure, [(a2, b)])[0]
        return spans, counts

    def _extend(self, source: Source, measure: Measure, spans: list[Span], counts: list[int]):
        """Carry up to ``overlap`` tokens from the end of the previous chunk in the
        same section into the start of each chunk, starting on a word boundary, so
        chunk ends stay where the plan put them (sentence and paragraph ends). An
        extension whose exact count breaks either limit is dropped, never cut blindly."""
        text = source.text
        candidates: dict[int, int] = {}
        rooms = {
            i: room for i in range(1, len(spans))
            if spans[i - 1][2] == spans[i][2] and (room := min(self.overlap, self.max_tokens - counts[i])) > 0
        }
        wanted = list(rooms)
        backs = measure.back_many(
            [spans[i - 1][0] for i in wanted], [spans[i - 1][1] for i in wanted], list(rooms.values())
        )
        for i, s in zip(wanted, backs):
            (pa, pb, _), (a, b, _) = spans[i - 1], spans[i]
            if s == pa:  # never swallow the whole previous chunk
                s = pa + 1
            if not text[s - 1].isspace():
                cut = _next_space(text, s, pb)
                if cut is not None:
                    s = cut  # start the overlap on a word boundary
            while s < a and text[s].isspace():
                s += 1
            if s < pb:
                candidates[i] = s
        if not candidates:
            return spans, counts
        order = sorted(candidates)
        both = self._exact_counts(
            measure, [(candidates[i], spans[i][1]) for i in order] + [(candidates[i], spans[i - 1][1]) for i in order]
        )
        whole, shared = both[: len(order)], both[len(order) :]
        spans, counts = list(spans), list(counts)
        for i, n_whole, n_shared in zip(order, whole, shared):
            if n_whole <= self.max_tokens and n_shared <= self.overlap:
                spans[i] = (candidates[i], spans[i][1], spans[i][2])
                counts[i] = n_whole
        return spans, counts

    def _exact_counts(self, measure: Measure, spans: Sequence[tuple[int, int]]) -> list[int]:
        if measure.exact:
            return [measure.count(a, b) for a, b in spans]
        exact = getattr(measure, "exact_counts", None)
        if exact is not None:
            return exact(spans)
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
