"""One engine over ordered split levels; fixed, sentence, paragraph, recursive and
hybrid are configurations of it (``builtin.py``), and semantic feeds it its own
pieces (``semantic.py``).

There is one path. ``Plan.split`` plans a span, in text order:
1. a span that fits (and whose level is not ``eager``) is one chunk;
2. else it is cut at the first level that has boundaries in it; ``hard``
   levels make each part its own section, other levels give pieces to ``merge``;
3. with no level left, token windows.
``merge`` is the one merge loop: pieces over the budget alone go to the next
level; the others are grouped while the group fits the budget (and the level's
``max_pieces``, the chunker's ``min_tokens`` and the pieces' ``stops`` allow).
Pieces come from ``Pieces`` (the cuts of one level, found at once) or, for a
``lazy`` sentence level, ``LazySentences`` (Punkt run only where a chunk can end).

Counts come from the tokenizer's measure of the whole text, which may still be
encoding: it encodes as far as each question needs, so planning runs beside the
encoding threads. Chunk ends are whitespace-trimmed (``trim``). With ``overlap``
the plan uses ``max_tokens - overlap``, then each chunk starts up to ``overlap``
tokens earlier inside the previous chunk of its section, on a word boundary;
fixed windows come out as 0:1000, 800:1800, ... Every chunk is counted again
exactly; one over budget is re-planned with a tighter budget. ``Finisher`` does
that (and the overlap and the ``Chunk`` objects) batch by batch as the plan
appends spans, so it runs beside the encoding threads rather than after them.
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable, Iterator, Sequence

from .base import Chunker
from .chunk import Chunk
from .levels import Source, SplitLevel, break_ends, punkt_starts
from .measure import Measure
from .sentences import fast_punkt

Span = tuple[int, int, int]  # start, end, section


def skip_blank(text: str, a: int, b: int) -> int:
    """The first non-whitespace position in ``[a, b)``, else ``b``."""
    while a < b and text[a].isspace():
        a += 1
    return a


def trim(text: str, a: int, b: int) -> tuple[int, int]:
    """``[a, b)`` less whitespace at both ends (``a == b`` when all blank)."""
    a = skip_blank(text, a, b)
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


class Pieces:
    """The trimmed, non-blank pieces of ``[a, b)`` between ``cuts``, their token
    bounds found as far as the merge reads (the measure may still be encoding).
    ``stops``: piece indices that always start a new group."""

    def __init__(self, plan: "Plan", a: int, b: int, cuts: list[int], stops: Sequence[int] = ()) -> None:
        text = plan.text
        self.ps, self.pe = [], []
        for s, e in zip([a, *cuts], [*cuts, b]):
            s, e = trim(text, s, e)
            if s < e:
                self.ps.append(s)
                self.pe.append(e)
        self.measure, self.stops = plan.measure, list(stops)
        self.first: list[int] = []
        self.last: list[int] = []

    def known(self, i: int, token: int | None = None) -> None:
        """Bounds for pieces up to ``i`` and, with ``token``, up to one ending past
        it (or all): at least what the encoding has reached, so little at a time."""
        measure, n = self.measure, len(self.ps)
        while len(self.last) < n and (i >= len(self.last) or (token is not None and self.last[-1] <= token)):
            k = len(self.last)
            upto = max(k + 1, bisect.bisect_right(self.pe, measure.encoded(), k))
            first, last = measure.bounds(self.ps[k:upto], self.pe[k:upto])
            self.first += first
            self.last += last

    def group(self, g: int, budget: int, min_tokens: int | None, max_pieces: int | None) -> int:
        """The last piece of the group that starts at piece ``g`` (which fits alone)."""
        k = len(self.ps) - 1
        if max_pieces is not None:
            k = min(k, g + max_pieces - 1)
        stop = bisect.bisect_right(self.stops, g)
        if stop < len(self.stops):
            k = min(k, self.stops[stop] - 1)
        if not self.measure.additive:  # walk, counting each longer group
            count, j = self.measure.count, g
            while j < k and count(self.ps[j + 1], self.pe[j + 1]) <= budget and (
                    min_tokens is None or count(self.ps[g], self.pe[j]) < min_tokens) and count(self.ps[g], self.pe[j + 1]) <= budget:
                j += 1
            return j
        target = self.first[g] + budget - 1
        self.known(g, target if min_tokens is None else max(target, self.first[g] + min_tokens - 1))
        last = self.last
        k = min(k, bisect.bisect_right(last, target, g, len(last)) - 1)  # pieces too big alone lie beyond
        if min_tokens is not None:  # the group closes once it reaches min_tokens
            k = min(k, bisect.bisect_left(last, self.first[g] + min_tokens - 1, g, len(last)))
        return k

    def merge(self, plan: "Plan", li: int) -> None:
        """The merge loop (see the module docstring)."""
        max_pieces = plan.levels[li].max_pieces if li < len(plan.levels) else None
        g, n = 0, len(self.ps)
        while g < n:
            if self.too_big(g, plan.budget):
                plan.split(self.ps[g], self.pe[g], li + 1)
                g += 1
                continue
            k = self.group(g, plan.budget, plan.min_tokens, max_pieces)
            plan.out.append((self.ps[g], self.pe[k], plan.section))
            g = k + 1

    def too_big(self, i: int, budget: int) -> bool:
        if not self.measure.additive:
            return self.measure.count(self.ps[i], self.pe[i]) > budget
        self.known(i)
        return self.last[i] - self.first[i] + 1 > budget


class LazySentences:
    """The sentence pieces of ``[a, b)``, with Punkt run only on the windows
    where a chunk ends. A chunk ends at the last piece end within the budget, so
    the windows in between lie inside it whatever their sentences are. Windows
    start at paragraph and structural line breaks (a sentence starts there
    anyway) where Punkt can restart (``FastPunkt.restarts``), and Punkt runs
    through the first word after the window (a window ends where a word
    starts): each decision reads the word before its candidate and the one
    after, so it decides as on the whole text. Tests compare this with
    ``Pieces`` (the eager split)."""

    def __init__(self, plan: "Plan", a: int, b: int) -> None:
        self.plan, self.text, self.a, self.b = plan, plan.text, a, b
        breaks = break_ends(self.text, a, b)  # all in (a, b]
        breaks.discard(b)
        self.breaks = sorted(breaks)
        clean = fast_punkt().restarts(self.text, self.breaks)
        self.bounds = [a, *plan.source.drop_fenced(clean, a, b), b]  # no window edge inside a code block
        self.windows: dict[int, Pieces] = {}

    def window(self, k: int) -> Pieces:
        """The sentence pieces of window ``k``."""
        found = self.windows.get(k)
        if found is None:
            text, w0, w1 = self.text, self.bounds[k], self.bounds[k + 1]
            w_end = self.b if w1 == self.b else _FIRST_WORD.match(text, w1, self.b).end()
            cuts = [c for c in punkt_starts(text, w0, w_end, upto=w1) if c != w0]
            lo, hi = bisect.bisect_right(self.breaks, w0), bisect.bisect_left(self.breaks, w1)
            if lo < hi:
                cuts = sorted(set(cuts).union(self.breaks[lo:hi]))
            cuts = self.plan.source.drop_fenced(cuts, self.a, self.b)
            found = self.windows[k] = Pieces(self.plan, w0, w1, cuts)
            found.known(len(found.ps) - 1)
        return found

    def merge(self, plan: "Plan", li: int) -> None:
        """``Pieces.merge`` over the windows: from the piece at ``g``, the chunk
        ends in the window where the budget runs out."""
        measure, budget, bounds = plan.measure, plan.budget, self.bounds
        g = self.a
        while g < self.b:
            k = bisect.bisect_right(bounds, g) - 1
            w = self.window(k)
            i = bisect.bisect_left(w.ps, g)
            if i == len(w.ps):  # only whitespace left in this window
                g = bounds[k + 1]
                continue
            if w.too_big(i, budget):
                plan.split(w.ps[i], w.pe[i], li + 1)
                g = w.ps[i + 1] if i + 1 < len(w.ps) else bounds[k + 1]
                continue
            limit = w.first[i] + budget - 1  # the last token the chunk may hold
            if measure.fits(w.ps[i], self.b, budget):  # the rest of the text fits
                plan.out.append((w.ps[i], self._last_end(len(bounds) - 2), plan.section))
                return
            kl = bisect.bisect_right(bounds, int(measure.ends[limit]) - 1) - 1  # the window where the budget runs out
            last = self.window(kl)
            j = bisect.bisect_right(last.last, limit) - 1
            if kl == k:
                j = max(j, i)
            if j >= 0:
                plan.out.append((w.ps[i], last.pe[j], plan.section))
                g = last.ps[j + 1] if j + 1 < len(last.ps) else bounds[kl + 1]
            else:  # no piece of that window fits: the chunk ends with the window before
                plan.out.append((w.ps[i], self._last_end(kl - 1), plan.section))
                g = bounds[kl]

    def _last_end(self, k: int) -> int:
        return trim(self.text, self.bounds[k], self.bounds[k + 1])[1]


class Plan:
    """Spans for one text: ``out``, in text order."""

    def __init__(self, source: Source, measure: Measure, levels: Sequence[SplitLevel], budget: int,
                 min_tokens: int | None, section: int = 0, out: "list[Span] | Finisher | None" = None) -> None:
        self.source, self.text, self.measure, self.levels = source, source.text, measure, levels
        self.budget, self.min_tokens, self.section = max(1, budget), min_tokens, section
        self.out = [] if out is None else out

    def split(self, a: int, b: int, li: int = 0) -> None:
        a, b = trim(self.text, a, b)
        if a >= b:
            return
        if li >= len(self.levels):
            self.windows(a, b)
            return
        level = self.levels[li]
        if not (level.hard or level.eager) and self.measure.fits(a, b, self.budget):
            self.out.append((a, b, self.section))
            return
        if level.lazy and self.measure.additive:
            LazySentences(self, a, b).merge(self, li)
            return
        cuts = level.find(self.source, a, b)
        if level.name != "line":  # the line level keeps out of code blocks itself
            cuts = self.source.drop_fenced(cuts, a, b)
        if not cuts:
            self.split(a, b, li + 1)
        elif level.hard:
            sections: Iterable[tuple[int, int]] = list(zip([a, *cuts], [*cuts, b]))
            if level.min_section:
                sections = self.join_sections(sections, level.min_section)
            for s, e in sections:
                self.section += 1
                self.split(s, e, li + 1)
        else:
            Pieces(self, a, b, cuts).merge(self, li)

    def join_sections(self, sections: list[tuple[int, int]], min_tokens: int) -> Iterator[tuple[int, int]]:
        """Heading sections, each one under ``min_tokens`` joined with the sections
        after it while the join is under ``min_tokens`` and the next heading is of
        the first one's level or deeper (text before the first heading counts as
        the shallowest). A join still under ``min_tokens`` that cannot grow (a man
        page's last "See also") goes to the end of the join before it on the same
        terms. A join over the budget is split at the lower levels like any
        section, so a tiny section then starts the first chunk of the next one:
        "Name" and "Synopsis" do not make chunks of a heading and a line.
        Yields each join once the next is known, so planning keeps pace with the
        encoding instead of waiting for all of it."""
        text, measure = self.text, self.measure
        offsets, headings = self.source.heading_offsets, self.source.headings

        def depth(s: int) -> int:
            i = bisect.bisect_left(offsets, s)
            return headings[i][1] if i < len(offsets) and offsets[i] == s else 0

        def small(s: int, e: int) -> bool:
            a, b = trim(text, s, e)
            return measure.fits(a, b, min_tokens - 1)

        held: tuple[int, int] | None = None  # the last join, until the next one is known
        i, n = 0, len(sections)
        while i < n:
            s, e = sections[i]
            top = depth(skip_blank(text, s, e))
            while i + 1 < n and small(s, e) and depth(sections[i + 1][0]) >= top:
                i += 1
                e = sections[i][1]
            if held is not None and small(s, e) and top >= depth(skip_blank(text, *held)):
                s = held[0]
            elif held is not None:
                yield held
            held = (s, e)
            i += 1
        if held is not None:
            yield held

    def windows(self, a: int, b: int) -> None:
        while a < b:
            e = self.window_end(a, self.budget, b)
            s, e2 = trim(self.text, a, e)
            if s < e2:
                self.out.append((s, e2, self.section))
            a, _ = trim(self.text, e, b)

    def window_end(self, a: int, n: int, b: int) -> int:
        """End of a window of ``n`` tokens from ``a``, shortened until its exact count
        fits (a cut inside a pre-token can cost one more token), so a window is never
        re-split into a window and a one-word leftover."""
        measure = self.measure
        e = measure.advance(a, n, b)
        shorter = 0  # each retry asks for one token fewer than the overshoot suggests
        while not measure.exact:
            s, e2 = trim(self.text, a, e)
            over = measure.exact_counts([(s, e2)])[0] - n if s < e2 else 0
            if over <= 0:
                break
            target = max(1, n - over - shorter)
            e = measure.advance(a, target, b)
            if target == 1:
                break
            shorter += 1
        return e


# Up to the next word: at most 199 more word characters, then the whole whitespace run.
_TO_NEXT_WORD = re.compile(r"\S{0,199}\s+")
# A word and the blank after it (one character: Punkt's next token ends at any blank).
_FIRST_WORD = re.compile(r"\S*\s?")


class Finisher:
    """Chunks from planned spans, finished batch by batch as the plan appends them
    in text order: exact counts, repairs, overlap and ``Chunk`` objects are made
    while helper threads still encode the rest of the text, not after it."""

    BATCH = 64  # spans per exact-count call: fewer calls, yet little left for the end

    def __init__(self, chunker: "LevelChunker", source: Source, measure: Measure) -> None:
        self.chunker, self.source, self.measure = chunker, source, measure
        self.pending: list[Span] = []
        self.done: list[Chunk] = []
        self.previous: tuple[Span, int] | None = None  # the last span as planned (before overlap) and its count

    def append(self, span: Span) -> None:
        self.pending.append(span)
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        spans, self.pending = self.pending, []
        if not spans:
            return
        chunker, measure = self.chunker, self.measure
        spans, counts = chunker._repair(self.source, measure, spans, measure.exact_counts([s[:2] for s in spans]))
        planned = spans[-1], counts[-1]
        if chunker.overlap:  # each chunk may reach back into the one before, also across batches
            carried = self.previous is not None
            if carried:
                spans, counts = [self.previous[0], *spans], [self.previous[1], *counts]
            spans, counts = chunker._extend(self.source, measure, spans, counts)
            if carried:
                spans, counts = spans[1:], counts[1:]
        self.previous = planned
        self.add(spans, counts)

    def add(self, spans: list[Span], counts: list[int]) -> None:
        """Final spans, counted exactly, as chunks (strided windows come here directly)."""
        text, base = self.source.text, len(self.done)
        paths = self.source.heading_paths([a for a, _, _ in spans])
        self.done += [
            Chunk(text[a:b], a, b, n, base + i, {"headings": list(path)})
            for i, ((a, b, _), n, path) in enumerate(zip(spans, counts, paths))
        ]

    def chunks(self) -> list[Chunk]:
        self.flush()
        self.measure.finish()  # joins the encoding threads, re-raising any error of theirs
        return self.done


class LevelChunker(Chunker):
    """A chunker defined by its ordered ``levels``; see the module docstring."""

    levels: tuple[SplitLevel, ...] = ()
    min_tokens: int | None = None  # None: fill up to the budget; else stop merging once a chunk reaches it

    def chunk(self, text: str) -> list[Chunk]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        if not text or text.isspace():
            return []
        source = Source(text)
        measure = self.tokenizer.measure(text)
        finisher = Finisher(self, source, measure)
        if not self.levels and self.overlap:
            finisher.add(*self._strided_windows(source, measure))
        else:
            self.plan(source, measure, 0, len(text), self.max_tokens - self.overlap, out=finisher)
        return finisher.chunks()

    def plan(self, source: Source, measure: Measure, a: int, b: int, budget: int, section: int = 0,
             out: "list[Span] | Finisher | None" = None) -> "list[Span] | Finisher":
        """Spans of ``[a, b)`` within ``budget``, appended to ``out`` in text order;
        chunkers with their own pieces override this."""
        plan = Plan(source, measure, self.levels, budget, self.min_tokens, section, out)
        plan.split(a, b)
        return plan.out

    def _strided_windows(self, source: Source, measure: Measure) -> tuple[list[Span], list[int]]:
        """Windows of ``max_tokens`` starting every ``max_tokens - overlap`` tokens
        (0:1000, 800:1800, ...); a shared region whose exact count is over
        ``overlap`` starts a token later until it is not."""
        plan = Plan(source, measure, (), self.max_tokens, None)
        text, n = source.text, len(source.text)
        spans: list[Span] = []
        a = skip_blank(text, 0, n)
        while a < n:
            e = plan.window_end(a, self.max_tokens, n)
            s, e2 = trim(text, a, e)
            if s < e2:
                spans.append((s, e2, 0))
            if e >= n:
                break
            # the next window starts a stride on, but never past this one's end (it may have been shortened)
            # (not trim: it would walk a long blank tail of the text once per window)
            nxt = skip_blank(text, min(e, measure.advance(a, self.max_tokens - self.overlap, n)), n)
            a = max(nxt, a + 1)
        spans, counts = self._repair(source, measure, spans, measure.exact_counts([s[:2] for s in spans]))
        shared = measure.exact_counts([(spans[i][0], spans[i - 1][1]) for i in range(1, len(spans))])
        for i in [i for i, n_shared in enumerate(shared, 1) if n_shared > self.overlap]:
            (_pa, pb, _), (a, b, sec) = spans[i - 1], spans[i]
            while a < pb and measure.exact_counts([(a, pb)])[0] > self.overlap:
                a, _ = trim(text, measure.advance(a, 1, b), b)
            if (a, b) != spans[i][:2]:
                spans[i], counts[i] = (a, b, sec), measure.exact_counts([(a, b)])[0]
        # a window wholly inside the previous one's end (a re-planned part) is emptied: it adds nothing
        kept = [i for i, (a, b, _) in enumerate(spans) if a < b]
        return [spans[i] for i in kept], [counts[i] for i in kept]

    def _extend(self, source: Source, measure: Measure, spans: list[Span], counts: list[int]):
        """Carry up to ``overlap`` tokens from the end of the previous chunk in the
        same section into the start of each chunk, starting on a word boundary, so
        chunk ends stay where the plan put them (sentence and paragraph ends). An
        extension whose exact count breaks either limit is dropped, never cut blindly."""
        text = source.text
        rooms = {
            i: room for i in range(1, len(spans))
            if spans[i - 1][2] == spans[i][2] and (room := min(self.overlap, self.max_tokens - counts[i])) > 0
        }
        wanted = list(rooms)
        backs = measure.back_many([spans[i - 1][0] for i in wanted], [spans[i - 1][1] for i in wanted], list(rooms.values()))
        candidates: dict[int, int] = {}
        for i, s in zip(wanted, backs):
            (pa, pb, _), (a, _, _) = spans[i - 1], spans[i]
            s = max(s, pa + 1)  # never swallow the whole previous chunk
            if not text[s - 1].isspace():
                m = _TO_NEXT_WORD.match(text, s, pb)
                if m is not None and m.end() < pb:
                    s = m.end()  # start the overlap on a word boundary
            s = trim(text, s, a)[0] if s < a else s
            if s < pb:
                candidates[i] = s
        if not candidates:
            return spans, counts
        order = sorted(candidates)
        both = measure.exact_counts([(candidates[i], spans[i][1]) for i in order] + [(candidates[i], spans[i - 1][1]) for i in order])
        spans, counts = list(spans), list(counts)
        for i, n_whole, n_shared in zip(order, both[: len(order)], both[len(order) :]):
            if n_whole <= self.max_tokens and n_shared <= self.overlap:
                spans[i] = (candidates[i], spans[i][1], spans[i][2])
                counts[i] = n_whole
        return spans, counts

    def _repair(self, source: Source, measure: Measure, spans: list[Span], counts: list[int],
                tighter: int = 0) -> tuple[list[Span], list[int]]:
        """Re-plan, each time tighter, every chunk whose exact count is over."""
        limit = self.max_tokens
        if all(n <= limit for n in counts):
            return spans, counts
        new_spans: list[Span] = []
        new_counts: list[int] = []
        for span, n in zip(spans, counts):
            if n <= limit:
                new_spans.append(span)
                new_counts.append(n)
                continue
            a, b, sec = span
            budget = max(1, limit - (n - limit) - tighter)
            parts = self.plan(source, measure, a, b, budget, sec)
            if len(parts) <= 1 and budget == 1:
                parts, part_counts = [(a, b, sec)], [n]  # one character over budget: cannot cut inside it
            else:
                parts, part_counts = self._repair(source, measure, parts, measure.exact_counts([p[:2] for p in parts]), tighter + 1)
            new_spans += parts
            new_counts += part_counts
        return new_spans, new_counts

