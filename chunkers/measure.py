"""Token measures over one text: count the tokens of any span ``[a, b)`` and find
how far ``n`` tokens reach, without re-encoding candidate chunks.

``OffsetMeasure`` encodes the text once and answers from the token end offsets by
binary search (counts can be off by one at a cut that splits a pre-token, which is
why chunk counts are verified exactly before they are returned). The others are
exact: ``CharMeasure`` by arithmetic, ``CallableMeasure`` by calling the counter.
"""

from __future__ import annotations

import functools
import re
import string
from typing import Callable, Sequence

import numpy as np


# Safe points: offsets where tiktoken's cl100k/o200k pre-tokenizers always cut,
# whatever surrounds the span: right after a line break before non-whitespace other
# than "/" (o200k's punctuation pre-token runs on over newlines and slashes, as in
# ".\n/"), and at a single space between a non-space and a letter (words take their leading
# space, and nothing on the left runs over a space). No pre-token crosses such a
# point and no look-ahead reaches over it, so the encoding of ``text[a:b]`` is the
# concatenated encodings of its pieces between safe points.
_SAFE = re.compile(r"\n(?=[^\s/])")  # the line-break kind only: block seams
_SAFE_ANY = re.compile(r"(?<=\n)(?=[^\s/])|(?<=\S)(?= [^\W\d_])")
EDGE_WINDOW = 256  # how far from each edge to look for a safe point
_NO_EDGE = (-1, 0)  # a span encoded whole: no safe point, no edge count


def block_bounds(text: str, size: int) -> list[tuple[int, int]]:
    """Cut ``text`` into blocks of about ``size`` characters at safe points (see
    ``_SAFE``), so encoding block by block equals encoding the whole."""
    n = len(text)
    bounds = []
    a = 0
    while a < n:
        b = a + size
        if b >= n:
            bounds.append((a, n))
            break
        # a line start, else a space before a word; with neither, a longer block
        m = _SAFE.search(text, b, b + size) or _SAFE_ANY.search(text, b)
        b = (m.end() if m.re is _SAFE else m.start()) if m else n
        bounds.append((a, b))
        a = b
    return bounds


def is_line_safe(text: str, p: int) -> bool:
    """Whether ``p`` (< len(text)) is a safe point of the line kind (see ``_SAFE_ANY``)."""
    return p > 0 and text[p - 1] == "\n" and text[p] != "/" and not text[p].isspace()


def ends_cleanly(text: str, b: int) -> bool:
    """Whether the encoding of the whole text cuts at ``b`` (> 0) whatever follows,
    with no pre-token before it reading past it: at the end, at a safe point, or
    between a letter or digit and whitespace (a word or number pre-token stops
    there, and only ones that start with whitespace or punctuation take whitespace)."""
    return b == len(text) or _SAFE_ANY.match(text, b) is not None or (text[b].isspace() and text[b - 1].isalnum())


# Not the apostrophe: o200k's word pre-token takes a contraction after it ("doesn't").
_ASCII_PUNCTUATION = frozenset(string.punctuation) - {"'"}


def punctuation_start(text: str, lo: int, b: int) -> int | None:
    """Where a run of ASCII punctuation ending at ``b`` starts, when a letter or
    digit comes before it (and it is at or after ``lo``): the encoding cuts there
    (a word or number pre-token stops at punctuation with no letter after it), so
    the edge after it is only the run, and runs repeat ("." ":" ")." ...)."""
    r = b
    while r > lo and text[r - 1] in _ASCII_PUNCTUATION:
        r -= 1
    return r if lo < r < b and text[r - 1].isalnum() else None


def last_safe_point(text: str, lo: int, hi: int) -> int | None:
    """The last safe point ``p`` with ``lo <= p < hi``, judged within ``text[:hi]``
    (what ``_SAFE_ANY.finditer(text, lo, hi)`` would end with), found backwards
    with ``str.rfind`` instead of scanning every match in the window."""
    if hi <= lo:
        return None
    best = None
    q = text.rfind("\n", max(0, lo - 1), hi - 1)  # the line kind: just after a \n, before non-space
    while q >= 0 and q + 1 >= lo:
        if is_line_safe(text, q + 1):
            best = q + 1
            break
        q = text.rfind("\n", max(0, lo - 1), q)
    s = text.rfind(" ", lo, hi - 1)  # the space kind needs a letter before hi
    while s >= lo and (best is None or s > best):
        if _SAFE_ANY.match(text, s, hi) is not None:
            return s
        s = text.rfind(" ", lo, s)
    return best


class Measure:
    """Token counts over one text. ``exact``: counts equal encoding the span alone.
    ``additive``: ``bounds`` works, so a run of pieces is counted by subtraction."""

    exact = False
    additive = False

    def __init__(self, text: str) -> None:
        self.text = text

    def bounds(self, starts: Sequence[int], ends: Sequence[int]) -> tuple[list[int], list[int]]:
        """``(F, L)`` with ``count(starts[i], ends[j]) == L[j] - F[i] + 1`` (additive measures)."""
        raise NotImplementedError

    def count(self, a: int, b: int) -> int:
        raise NotImplementedError

    def fits(self, a: int, b: int, n: int) -> bool:
        """``count(a, b) <= n``, reading no further into the text than that needs."""
        return self.count(a, b) <= n

    def advance(self, a: int, n: int, limit: int) -> int:
        """The furthest ``p`` in ``(a, limit]`` with ``count(a, p) <= n`` (at least ``a + 1``)."""
        raise NotImplementedError

    def back_many(self, starts: Sequence[int], ends: Sequence[int], ns: Sequence[int]) -> list[int]:
        """For each span, the earliest ``s`` in ``[a, b)`` with ``count(s, b) <= n``."""
        return [self.back(a, b, n) for a, b, n in zip(starts, ends, ns)]

    def back(self, a: int, b: int, n: int) -> int:
        if self.count(a, b) <= n:
            return a
        lo, hi = a, b - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.count(mid, b) <= n:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def exact_counts(self, spans: Sequence[tuple[int, int]]) -> list[int]:
        return [self.count(a, b) for a, b in spans]

    def encoded(self) -> int:
        """How far into the text counts are known without waiting."""
        return len(self.text)

    def finish(self) -> "Measure":
        """Complete any encoding still under way (see ``OffsetMeasure``)."""
        return self


class CharMeasure(Measure):
    exact = additive = True

    def bounds(self, starts: Sequence[int], ends: Sequence[int]) -> tuple[list[int], list[int]]:
        return list(starts), [e - 1 for e in ends]

    def count(self, a: int, b: int) -> int:
        return max(0, b - a)

    def advance(self, a: int, n: int, limit: int) -> int:
        return max(a + 1, min(limit, a + n))

    def back(self, a: int, b: int, n: int) -> int:
        return max(a, b - n)


class OffsetMeasure(Measure):
    """Counts from the character offsets where tokens end. ``encoder``: a
    ``concurrency.BlockEncoder`` still encoding the text; every method first
    makes it reach as far as that method reads."""

    additive = True

    def __init__(self, text: str, ends: np.ndarray, counter: Callable[[str], int],
                 count_batch: Callable[[list[str]], list[int]] | None = None, safe: bool = False,
                 encoder=None) -> None:
        super().__init__(text)
        self.ends = ends
        self.counter = counter
        self.count_batch = count_batch or (lambda texts: [counter(t) for t in texts])
        self.safe = safe
        self.encoder = encoder
        self._heads: dict[int, tuple[int, int]] = {}  # span start -> (first safe point after it, edge count)
        self._tails: dict[int, tuple[int, int]] = {}  # span end -> (last safe point before it, edge count)
        self._edge_counts: dict[str, int] = {}
        if encoder is not None:
            self.ends = encoder.ends()

    def reach(self, pos: int | None = None, tokens: int | None = None) -> None:
        """Encode until the ends reach character ``pos`` and hold ``tokens`` tokens."""
        encoder = self.encoder
        if encoder is None or encoder.covers(pos, tokens):
            return  # already there (the ends hold every block placed): most questions are about text planned just now
        encoder.cover(pos, tokens)
        self.ends = encoder.finish() if encoder.done else encoder.ends()
        if encoder.done:
            self.encoder = None

    def encoded(self) -> int:
        if self.encoder is None:
            return len(self.text)
        return int(self.ends[-1]) if len(self.ends) else 0

    def finish(self) -> "OffsetMeasure":
        if self.encoder is not None:
            self.ends = self.encoder.finish()
            self.encoder = None
        return self

    def bounds(self, starts: Sequence[int], ends: Sequence[int]) -> tuple[list[int], list[int]]:
        if self.encoder is not None and len(ends):
            self.reach(pos=max(ends[-1], ends[0]))
        first = self.ends.searchsorted(np.asarray(starts, dtype=np.int64), "right")
        last = np.minimum(self.ends.searchsorted(np.asarray(ends, dtype=np.int64), "left"), len(self.ends) - 1)
        return first.tolist(), last.tolist()

    def count(self, a: int, b: int) -> int:
        if b <= a:
            return 0
        if self.encoder is not None:
            self.reach(pos=b)
        ends = self.ends
        first = int(ends.searchsorted(a, "right"))
        last = min(int(ends.searchsorted(b, "left")), len(ends) - 1)
        return max(0, last - first + 1)

    def fits(self, a: int, b: int, n: int) -> bool:
        if self.encoder is None:
            return self.count(a, b) <= n
        self.reach(pos=a + 1)
        first = int(self.ends.searchsorted(a, "right"))
        self.reach(tokens=first + n)
        # the n-th token from a ends at or after b, or fewer than n tokens are left
        return first + n > len(self.ends) or int(self.ends[first + n - 1]) >= b

    def advance(self, a: int, n: int, limit: int) -> int:
        if self.encoder is not None:
            self.reach(pos=a + 1)
        first = int(self.ends.searchsorted(a, "right"))
        if self.encoder is not None and n > 0:
            self.reach(tokens=first + n)
        idx = first + n - 1
        if n <= 0 or idx >= len(self.ends):
            return limit if n > 0 else a + 1
        return max(a + 1, min(limit, int(self.ends[idx])))

    def back(self, a: int, b: int, n: int) -> int:
        return self.back_many([a], [b], [n])[0]

    def back_many(self, starts: Sequence[int], ends: Sequence[int], ns: Sequence[int]) -> list[int]:
        """Tokens overlapping ``[s, b)`` are first..last; keep the last ``n`` of them."""
        if not len(starts):
            return []
        if self.encoder is not None:
            self.reach(pos=max(ends))
        a = np.asarray(starts, dtype=np.int64)
        b = np.asarray(ends, dtype=np.int64)
        last = np.minimum(self.ends.searchsorted(b, "left"), len(self.ends) - 1)
        first = last - np.asarray(ns, dtype=np.int64) + 1
        s = np.maximum(a, np.minimum(b - 1, self.ends[np.maximum(first - 1, 0)]))
        return np.where(first <= 0, a, s).tolist()

    def exact_counts(self, spans: Sequence[tuple[int, int]]) -> list[int]:
        """Exact token counts of ``text[a:b]``. With safe points (see
        ``_SAFE_ANY``): the tokens between the first and the last safe point in
        the span come from the one encoding, and only the two short edges are
        encoded again. Otherwise each span is encoded.

        Chunks share edges (overlap candidates start where others end), so each
        start's and end's safe point and edge count are kept for the next call."""
        text = self.text
        if not self.safe or not len(spans):
            return self.count_batch([text[a:b] for a, b in spans])
        if self.encoder is not None:
            self.reach(pos=max(b for _, b in spans))
        heads, tails = self._heads, self._tails
        head_of, tail_of = self._head, self._tail
        m1s, m2s, edges = [], [], []
        whole: list[int] = []  # spans without two safe points: encoded whole
        for i, (a, b) in enumerate(spans):
            head = heads.get(a)
            if head is None or head[0] >= b:
                head = head_of(a, b)
            tail = None
            if head is not None:
                tail = tails.get(b)  # the last safe point before b: valid for any head below it
                if tail is None:
                    tail = tail_of(max(head[0] + 1, b - EDGE_WINDOW), b)
            if tail is None or tail[0] <= head[0]:
                whole.append(i)
                head = tail = _NO_EDGE
            m1s.append(head[0])
            m2s.append(tail[0])
            edges.append(head[1] + tail[1])
        # tokens ending in (m1, m2]: exact between safe points, as no token crosses one
        ends = self.ends
        counts = ends.searchsorted(np.asarray(m2s, dtype=np.int64), "right")
        counts -= ends.searchsorted(np.asarray(m1s, dtype=np.int64), "right")
        counts += np.asarray(edges, dtype=np.int64)
        if whole:
            counts[whole] = self.count_batch([text[spans[i][0] : spans[i][1]] for i in whole])
        return counts.tolist()

    def _head(self, a: int, b: int) -> tuple[int, int] | None:
        """The first safe point in ``[a, b)`` and the token count of the edge before it."""
        text = self.text
        if is_line_safe(text, a):
            m1 = a  # a line start is a safe point itself (most chunks start on one)
        else:
            first = _SAFE_ANY.search(text, a, min(b, a + EDGE_WINDOW))
            if first is None:
                return None
            m1 = first.start()
        head = self._heads[a] = (m1, self._edge_count(text[a:m1]))
        return head

    def _tail(self, lo: int, b: int) -> tuple[int, int] | None:
        """The last safe point in ``[lo, b)`` and the token count of the edge after
        it; ``b`` itself, with no edge, when a span may end there (``ends_cleanly``)."""
        if ends_cleanly(self.text, b):
            tail = self._tails[b] = (b, 0)
            return tail
        m2 = punctuation_start(self.text, lo, b)
        if m2 is None:
            m2 = last_safe_point(self.text, lo, b)
        if m2 is None:
            return None
        tail = self._tails[b] = (m2, self._edge_count(self.text[m2:b]))
        return tail

    def _edge_count(self, edge: str) -> int:
        """Tokens of an edge. Edges are a word or two, and words repeat, so each
        distinct edge is encoded once."""
        known = self._edge_counts
        n = known.get(edge)
        if n is None:
            if len(known) > 1 << 18:
                known.clear()
            n = known[edge] = self.counter(edge) if edge else 0
        return n


class CallableMeasure(Measure):
    exact = True

    def __init__(self, text: str, counter: Callable[[str], int]) -> None:
        super().__init__(text)
        self._count = functools.lru_cache(maxsize=1 << 14)(lambda a, b: counter(text[a:b]))

    def count(self, a: int, b: int) -> int:
        return self._count(a, b) if b > a else 0

    def advance(self, a: int, n: int, limit: int) -> int:
        if self.count(a, limit) <= n:
            return limit
        lo, hi = a + 1, limit  # count(a, lo) may exceed n: one character is the floor
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count(a, mid) <= n:
                lo = mid
            else:
                hi = mid - 1
        return lo
