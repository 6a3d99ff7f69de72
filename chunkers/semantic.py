"""Semantic chunking: cut where meaning shifts.

Units are sentences (as the ``sentence`` chunker finds them, one per unit, a
sentence over budget already split). Each unit is embedded; a boundary goes
between two neighbours whose cosine similarity is below ``threshold``, or, with
no threshold, in the lowest ``100 - percentile`` percent of neighbour
similarities. Runs of units between boundaries are merged up to ``max_tokens``.

``mode="group"`` also joins units that are far apart: each unit, in order, goes
to the open group whose mean embedding it is most similar to (if at least the
threshold and within budget), else starts a group. A grouped chunk has ``spans``
and its text is the spans joined by ``SPAN_SEPARATOR``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from runtime import get_embedder

from .base import check_text
from .builtin import SentenceChunker
from .chunk import SPAN_SEPARATOR, Chunk
from .engine import LevelChunker, Pieces, Plan
from .errors import InvalidParameterError
from .levels import Source
from .measure import Measure
from .registry import register

MODES = ("split", "group")
# Tokens that joining two texts can save at the seam (a merge across it). A group
# whose count plus the unit's is over the budget by more is not counted again.
_SEAM_SAVINGS = 8


@register("semantic")
class SemanticChunker(LevelChunker):
    def __init__(
        self,
        *,
        embedder: Any = None,
        threshold: float | None = None,
        percentile: float = 90.0,
        mode: str = "split",
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1):
            raise InvalidParameterError(f"threshold must be a cosine similarity in [-1, 1], got {threshold!r}")
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile < 100:
            raise InvalidParameterError(f"percentile must be in (0, 100), got {percentile!r}")
        if mode not in MODES:
            raise InvalidParameterError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "group" and self.overlap:
            raise InvalidParameterError(f"overlap must be 0 in group mode, got {self.overlap!r}")
        self.embedder = embedder
        self.threshold = threshold
        self.percentile = percentile
        self.mode = mode
        self._units = SentenceChunker(max_tokens=self.max_tokens - self.overlap, sentences_per_chunk=1, tokenizer=self.tokenizer)

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(get_embedder(self.embedder)(texts), dtype=np.float32)
        if vectors.shape[0] != len(texts):
            raise InvalidParameterError(f"embedder returned {vectors.shape[0]} vectors for {len(texts)} texts")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def cut_similarity(self, similarities: np.ndarray) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        if len(similarities) == 0:
            return -1.0
        return float(np.percentile(similarities, 100 - self.percentile))

    def plan(self, source: Source, measure: Measure, a: int, b: int, budget: int, section: int = 0, out=None):
        """Units merged by the engine's merge loop, a new chunk starting at every
        unit less similar to the one before than the cut."""
        units = self._units.chunk(source.text[a:b])
        if not units:
            return [] if out is None else out
        vectors = self.embed([u.text for u in units])
        sims = np.einsum("ij,ij->i", vectors[:-1], vectors[1:])
        stops = (np.flatnonzero(sims < self.cut_similarity(sims)) + 1).tolist()
        plan = Plan(source, measure, (), budget, None, section, out)
        Pieces(plan, a, b, [a + u.start for u in units[1:]], stops=stops).merge(plan, 0)
        return plan.out

    def _joined_count(self, group: dict[str, Any], unit: Chunk, text: str) -> int:
        """Tokens of ``group``'s text with ``unit`` added. A unit joined after
        ``SPAN_SEPARATOR`` starts at a line start, so where the tokenizer cuts
        there (``splits_at_line_starts``), the group's text with the separator is
        counted once (``group["head"]``) and the unit's count added: trying every
        open group by encoding it again made group mode quadratic."""
        spans, count = group["spans"], self.tokenizer.count
        if self.tokenizer.splits_at_line_starts and unit.text[0] != "/" and not _fuses(spans, unit.start, text):
            if group["head"] is None:
                group["head"] = count(SPAN_SEPARATOR.join(text[s:e] for s, e in spans) + SPAN_SEPARATOR)
            return group["head"] + unit.token_count
        return count(SPAN_SEPARATOR.join(text[s:e] for s, e in _add_span(spans, unit.start, unit.end, text)))

    def _group(self, units: list[Chunk], vectors: np.ndarray, cut: float, text: str) -> list[dict[str, Any]]:
        """Each unit, in order, joins the most similar group over ``cut`` that stays
        within budget (on a tie, the later one), else starts a group. A group whose
        counted text with the separator (``heads``, -1 until counted) leaves less
        room than the unit's tokens is passed over without a call, unless the unit
        fuses with it (it holds the unit before) or starts with "/" (no safe point
        before it): each call would only find again that it does not fit."""
        groups: list[dict[str, Any]] = []
        sums = np.zeros_like(vectors)  # row g: the sum of group g's unit vectors
        norms = np.zeros(len(vectors), dtype=vectors.dtype)
        heads = np.full(len(vectors), -1, dtype=np.int64)
        previous = -1  # the group of the unit before
        for unit, vec in zip(units, vectors):
            chosen = None
            if groups:
                n_groups = len(groups)
                to_groups = (sums[:n_groups] @ vec) / np.maximum(norms[:n_groups], 1e-12)
                over = np.flatnonzero(to_groups >= cut)  # then best first, until one fits
                if unit.text[0] != "/":
                    room = heads[over]
                    over = over[(room < 0) | (room + unit.token_count <= self.max_tokens) | (over == previous)]
                for g in over[np.lexsort((-over, -to_groups[over]))].tolist():
                    group = groups[g]
                    if group["n"] + unit.token_count > self.max_tokens + _SEAM_SAVINGS:
                        continue  # cannot fit: only counting the joined text would tell more
                    n = self._joined_count(group, unit, text)
                    if n <= self.max_tokens:
                        chosen = g
                        group["spans"] = _add_span(group["spans"], unit.start, unit.end, text)
                        group["n"], group["head"], heads[g] = n, None, -1
                        break
                    if group["head"] is not None:
                        heads[g] = group["head"]
            if chosen is None:
                chosen = len(groups)
                groups.append({"spans": [(unit.start, unit.end)], "n": unit.token_count, "head": None})
            sums[chosen] += vec
            norms[chosen] = np.linalg.norm(sums[chosen])
            previous = chosen
        return groups

    def chunk(self, text: str) -> list[Chunk]:
        check_text(text)
        if self.mode == "split":
            return super().chunk(text)
        units = self._units.chunk(text)
        if not units:
            return []
        vectors = self.embed([u.text for u in units])
        sims = np.einsum("ij,ij->i", vectors[:-1], vectors[1:])
        groups = self._group(units, vectors, self.cut_similarity(sims), text)
        groups.sort(key=lambda g: g["spans"][0][0])
        source = Source(text)
        chunks = []
        for i, g in enumerate(groups):
            spans = tuple(g["spans"])
            chunks.append(
                Chunk(
                    SPAN_SEPARATOR.join(text[s:e] for s, e in spans),
                    spans[0][0],
                    spans[-1][1],
                    g["n"],
                    i,
                    {"headings": source.heading_path(spans[0][0])},
                    spans,
                )
            )
        return chunks


_NON_SPACE = re.compile(r"\S")


def _fuses(spans: list[tuple[int, int]], start: int, text: str) -> bool:
    """Whether only whitespace lies between the last span and ``start`` (looked
    for from the span's end: slicing the whole gap was quadratic in group mode)."""
    return bool(spans) and _NON_SPACE.search(text, spans[-1][1], start) is None


def _add_span(spans: list[tuple[int, int]], start: int, end: int, text: str) -> list[tuple[int, int]]:
    """Append a unit's span, fusing it with the last one when only whitespace
    separates them (so adjacent sentences stay one passage)."""
    if _fuses(spans, start, text):
        return spans[:-1] + [(spans[-1][0], end)]
    return spans + [(start, end)]
