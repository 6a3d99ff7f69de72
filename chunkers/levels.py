"""Split levels as data: each finds the boundaries of one kind inside a span.

A chunker built on the engine is an ordered tuple of levels, coarsest first. The
engine cuts at the first level whose boundaries exist in a too-large span, merges
neighbouring pieces back up to the budget, and recurses only into pieces that are
still too large. After the last level it cuts token windows.

``Source`` holds what every level shares about one text: where its fenced code
blocks are (no level but ``line`` cuts inside one, and ``line`` only when the
span being split lies wholly inside that block) and its headings.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass, replace
from typing import Callable

from .headings import find_headings, marked_line_starts
from .sentences import fast_punkt

# Up to 3 spaces of indent (a tab is 4 columns: that is an indented block).
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$", re.M)
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
# A line break is structural when the line before ends a sentence or clause, or
# the next line starts a list item, quote, table row, heading or indented block;
# other line breaks are soft wraps inside a paragraph and are left to sentences.
# Two patterns, each starting with a character class or a literal so the regex
# engine skips ahead fast (one alternation of both runs twice as slow).
_LINE_AFTER_END = re.compile(r"[.!?:;][ \t]*\n")
# The indented-block branch stands outside ``[ \t]*``: nested there, a long run of
# blanks after a line break was re-scanned from every one of its positions.
_LINE_BEFORE_ITEM = re.compile(r"\n(?=[ \t]*(?:[-*+•][ \t]|\d{1,3}[.)][ \t]|[>|#])|[ \t]{2,}\S)")
_ANY_LINE = re.compile(r"\n")
_CLAUSE = re.compile(r"[,;:)\]]\s+|\s[-–—]{1,2}\s+")
_WORD = re.compile(r"\s+")


def fence_lines(text: str) -> list[re.Match]:
    """``FENCE``'s matches, in order: tried only on the lines with a fence mark
    in their first four characters, found in one scan (``finditer`` of the
    anchored pattern would try it everywhere)."""
    return [m for start in marked_line_starts(text, "```|~~~") if (m := FENCE.match(text, start))]


class Source:
    """A text plus the structure every level consults."""

    def __init__(self, text: str) -> None:
        self.text = text

    @functools.cached_property
    def fences(self) -> list[tuple[int, int]]:
        """``(start, end)`` of each fenced code block, closing fence included."""
        blocks = []
        opened = None
        for m in fence_lines(self.text):
            fence = m.group(1)
            if opened is None:
                if not self._underlines(m):
                    opened = (m.start(), fence)
            elif fence[0] == opened[1][0] and len(fence) >= len(opened[1]) and not m.group(2).strip():
                blocks.append((opened[0], m.end()))
                opened = None
        if opened is not None:
            blocks.append((opened[0], len(self.text)))
        return blocks

    def _underlines(self, m: re.Match) -> bool:
        """True when a fence-like line is a reStructuredText title's underline: a
        bare run of ``~`` (or of 4+ backticks) right under a non-blank line no
        longer than itself. (Read as fences, the underlines of the kernel's .rst
        files made 91 % of them "code".)"""
        run = m.group(1)
        if m.group(2).strip() or m.start() == 0 or (run[0] == "`" and len(run) < 4):
            return False
        above = self.text[self.text.rfind("\n", 0, m.start() - 1) + 1:m.start() - 1].strip()
        return 0 < len(above) <= len(run) and not above.startswith(("~", "`"))

    @functools.cached_property
    def _fence_starts(self) -> list[int]:
        return [a for a, _ in self.fences]

    def fence_at(self, pos: int) -> tuple[int, int] | None:
        """The fenced block strictly containing ``pos``, if any."""
        i = bisect.bisect_left(self._fence_starts, pos) - 1
        if i >= 0:
            a, b = self.fences[i]
            if a < pos < b:
                return a, b
        return None

    def unfenced(self, a: int, b: int) -> list[tuple[int, int]]:
        """The parts of ``[a, b)`` to search for cuts: all of it when it lies inside
        one fenced block, else the stretches between blocks, each reaching one
        character into the next block (a match cut short there ends inside the
        block, where no cut is kept anyway)."""
        if not self.fences:
            return [(a, b)]
        inside = self.fence_at(a + 1)
        if inside is not None and inside[0] <= a and b <= inside[1]:
            return [(a, b)]
        parts = []
        starts, fences = self._fence_starts, self.fences
        for i in range(max(0, bisect.bisect_left(starts, a) - 1), len(fences)):
            fa, fb = fences[i]
            if fa >= b:
                break
            if fa + 1 > a:
                parts.append((a, min(b, fa + 1)))
            a = max(a, fb)
        if a < b:
            parts.append((a, b))
        return parts

    def drop_fenced(self, cuts: list[int], a: int, b: int) -> list[int]:
        """``cuts`` (ascending, inside ``[a, b)``) less those strictly inside a fenced
        block, unless the whole span lies inside that one block. Walks the blocks
        that overlap the cuts, not the cuts: a span holds far more cuts than blocks."""
        if not cuts or not self.fences:
            return cuts
        inside = self.fence_at(a + 1)
        if inside is not None and inside[0] <= a and b <= inside[1]:
            return cuts
        starts, fences = self._fence_starts, self.fences
        kept: list[int] = []
        taken = 0  # cuts[:taken] are decided
        for i in range(max(0, bisect.bisect_left(starts, cuts[0]) - 1), len(fences)):
            fa, fb = fences[i]
            if fa >= cuts[-1]:
                break
            lo = bisect.bisect_right(cuts, fa, taken)
            hi = bisect.bisect_left(cuts, fb, lo)
            kept += cuts[taken:lo]
            taken = max(taken, hi)
        if not taken:
            return cuts
        return kept + cuts[taken:]

    @functools.cached_property
    def headings(self) -> list[tuple[int, int, str]]:
        """``(offset, level, title)`` of each heading outside code blocks, in every
        form ``headings.find_headings`` knows (ATX, setext, reST, HTML, bold lines)."""
        return find_headings(self.text, self.in_fence)

    def in_fence(self, pos: int) -> bool:
        """True when ``pos`` lies strictly inside a fenced code block."""
        return bool(self.fences) and self.fence_at(pos) is not None

    @functools.cached_property
    def heading_offsets(self) -> list[int]:
        """Where each heading starts (built once: every re-planned span asks)."""
        return [offset for offset, _, _ in self.headings]

    @functools.cached_property
    def _heading_paths(self) -> tuple[list[int], list[tuple[str, ...]]]:
        paths = []
        stack: list[tuple[int, str]] = []
        for _offset, level, title in self.headings:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            paths.append(tuple(t for _, t in stack))
        return self.heading_offsets, paths

    def heading_paths(self, positions: list[int]) -> list[tuple[str, ...]]:
        """``heading_path`` for many positions in one pass."""
        offsets, paths = self._heading_paths
        if not offsets:
            return [()] * len(positions)
        index = bisect.bisect_right
        return [paths[i] if (i := index(offsets, pos) - 1) >= 0 else () for pos in positions]

    def heading_path(self, pos: int) -> list[str]:
        """Titles of the headings enclosing ``pos``, outermost first."""
        return list(self.heading_paths([pos])[0])


Finder = Callable[[Source, int, int], list[int]]


def _pattern_ends(pattern: re.Pattern) -> Finder:
    def find(source: Source, a: int, b: int) -> list[int]:
        text = source.text
        return [p for s, e in source.unfenced(a, b) for m in pattern.finditer(text, s, e) if s < (p := m.end()) < e]

    return find


def _heading_starts(source: Source, a: int, b: int) -> list[int]:
    offsets = source.heading_offsets
    lo, hi = bisect.bisect_right(offsets, a), bisect.bisect_left(offsets, b)
    return offsets[lo:hi]


def structural_line_ends(text: str, a: int, b: int) -> set[int]:
    """Positions just after the structural line breaks in ``text[a:b]``."""
    end_of = re.Match.end
    ends = set(map(end_of, _LINE_AFTER_END.finditer(text, a, b)))
    ends.update(map(end_of, _LINE_BEFORE_ITEM.finditer(text, a, b)))
    return ends


def _line_breaks(source: Source, a: int, b: int) -> list[int]:
    # Inside one code block every line break is fair game (the block is over budget).
    fence = source.fence_at(a + 1) if source.fences else None
    if fence and fence[0] <= a and b <= fence[1]:
        return [p for m in _ANY_LINE.finditer(source.text, a, b) if a < (p := m.end()) < b]
    return sorted(p for p in structural_line_ends(source.text, a, b) if a < p < b)


_LIST_MARKER = re.compile(r"[ \t]*(?:\d{1,3}[.)]|[-*+•]|[a-zA-Z][.)])[ \t]*")


def _after_list_marker(text: str, pos: int) -> bool:
    """Punkt ends a 'sentence' after "1." at the start of a list item; that is no boundary."""
    if pos == 0 or text[pos - 1] == "\n":  # a line start follows no marker
        return False
    newline = text.rfind("\n", max(0, pos - 9), pos)  # a marker line start is at most 8 back
    if newline < 0 and pos > 8:
        return False
    line_start = newline + 1
    return _LIST_MARKER.fullmatch(text, line_start, pos) is not None


def punkt_starts(text: str, a: int, b: int, upto: int | None = None) -> list[int]:
    """Punkt's sentence starts in ``text[a:b]`` (offsets into ``text``, ascending),
    without those right after a list marker; with ``upto``, only those before it."""
    found = fast_punkt().starts(text if (a, b) == (0, len(text)) else text[a:b])
    upto = b if upto is None else upto
    return [p for s in found if (p := a + s) < upto and not _after_list_marker(text, p)]


def break_ends(text: str, a: int, b: int) -> set[int]:
    """Ends of paragraph breaks and structural line breaks in ``text[a:b]``: a
    sentence always ends there, even one without a full stop."""
    ends = structural_line_ends(text, a, b)
    ends.update(map(re.Match.end, _BLANK_LINES.finditer(text, a, b)))
    return ends


def _sentence_starts(source: Source, a: int, b: int) -> list[int]:
    text = source.text
    starts = break_ends(text, a, b)
    starts.update(punkt_starts(text, a, b))
    starts.discard(a)  # everything else found lies inside (a, b]
    starts.discard(b)
    return sorted(starts)


@dataclass(frozen=True)
class SplitLevel:
    """One kind of boundary. ``eager``: cut here even when the span fits (the
    chunker's unit is this level's piece, e.g. a sentence), then merge by policy.
    ``hard``: eager, and pieces are never merged across it (each becomes its own
    section). ``max_pieces``: at most this many pieces per chunk. ``lazy`` (eager
    sentences merged by budget alone): find sentences only where chunks end
    (``engine.LazySentences``), with the same chunks as finding them all.
    ``min_section`` (hard heading levels): a section under this many tokens is
    joined with the sections after it (``engine.Plan.join_sections``)."""

    name: str
    find: Finder
    hard: bool = False
    eager: bool = False
    max_pieces: int | None = None
    lazy: bool = False
    min_section: int = 0

    def with_(self, **changes) -> "SplitLevel":
        return replace(self, **changes)


HEADINGS = SplitLevel("heading", _heading_starts)
BLANK_LINES = SplitLevel("blank_line", _pattern_ends(_BLANK_LINES))
LINES = SplitLevel("line", _line_breaks)
SENTENCES = SplitLevel("sentence", _sentence_starts)
CLAUSES = SplitLevel("clause", _pattern_ends(_CLAUSE))
WORDS = SplitLevel("word", _pattern_ends(_WORD))
