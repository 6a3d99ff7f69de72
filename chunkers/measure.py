"""Token measures over one text: count the tokens of any span ``[a, b)`` and find
how far ``n`` tokens reach, without re-encoding candidate chunks.

``OffsetMeasure`` encodes the text once and answers from the token end offsets by
binary search (counts can be off by one at a cut that splits a pre-token, which is
why chunk counts are verified exactly before they are returned). The others are
exact: ``CharMeasure`` by arithmetic, ``CallableMeasure`` by calling the counter.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np


def block_bounds(text: str, size: int) -> list[tuple[int, int]]:
    """Cut ``text`` into blocks of about ``size`` characters, each cut just after a
    line break (or a space) so pre-tokenization is undisturbed at the seams."""
    n = len(text)
    bounds = []
    a = 0
    while a < n:
        b = a + size
        if b >= n:
            bounds.append((a, n))
            break
        cut = text.find("\n", b, b + size // 4)
        if cut < 0:
            cut = text.find(" ", b, b + size // 4)
        b = cut + 1 if cut >= 0 else b
        bounds.append((a, b))
        a = b
    return bounds


class Measure:
    exact = False

    def __init__(self, text: str) -> None:
        self.text = text

    def count(self, a: int, b: int) -> int:
        raise NotImplementedError

    def advance(self, a: int, n: int, limit: int) -> int:
        """The furthest ``p`` in ``(a, limit]`` with ``count(a, p) <= n`` (at least ``a + 1``)."""
        raise NotImplementedError


class CharMeasure(Measure):
    exact = True

    def count(self, a: int, b: int) -> int:
        return max(0, b - a)

    def advance(self, a: int, n: int, limit: int) -> int:
        return max(a + 1, min(limit, a + n))


class OffsetMeasure(Measure):
    def __init__(self, text: str, ends: np.ndarray, counter: Callable[[str], int]) -> None:
        super().__init__(text)
        self.ends = ends
        self.counter = counter

    def count(self, a: int, b: int) -> int:
        if b <= a:
            return 0
        ends = self.ends
        first = int(np.searchsorted(ends, a, "right"))
        last = int(np.searchsorted(ends, b, "left"))
        if last >= len(ends):
            last = len(ends) - 1
        return max(0, last - first + 1)

    def advance(self, a: int, n: int, limit: int) -> int:
        first = int(np.searchsorted(self.ends, a, "right"))
        idx = first + n - 1
        if n <= 0 or idx >= len(self.ends):
            return limit if n > 0 else a + 1
        return max(a + 1, min(limit, int(self.ends[idx])))


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
