"""Search over a ``Backend``: dense, lexical or hybrid (reciprocal rank fusion),
with filters, returning ``Hit`` records whose offsets index their document."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .backend import Backend, Ranking
from .errors import RetrievalError
from .records import Filter, Hit

SEARCH_MODES = ("hybrid", "dense", "lexical")
MAX_K = 100
MAX_QUERY_CHARS = 10_000
MAX_FILTER_TAGS = 64  # tags in one search filter (each one a SQL condition)
MAX_FILTER_CHARS = 1024  # a tag or a source prefix
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)
# How many times BM25's list counts against the dense list's in hybrid fusion;
# chosen on the Chroma benchmark and the own sets (README, "Retrieval quality").
LEXICAL_WEIGHT = 3.0
MAX_LEXICAL_WEIGHT = 100.0
# The third list of hybrid fusion, the named notes' chunks, counts as much as the dense one.
NAMED_WEIGHT = 1.0
# Hybrid search's cutoff when a request gives none (README, "Named notes and the default
# cutoff"): with it the Chroma benchmark passes both published bests, at a cost of at
# most 1.5 nDCG points on the own sets. Ties or a deleted chunk at the top of a list
# count as disagreement: then every hit stays.
MIN_RELATIVE_SCORE = 0.86
FILTER_KEYS = ("source_prefix", "tags")

Embed = Callable[[Sequence[str]], np.ndarray]


class Searcher:
    """Ranks chunks for a query: ``backend`` holds them, ``embed`` turns the query into a vector.

    ``lexical_weight``: how many times BM25's list counts in hybrid fusion.
    ``min_relative_score``: the cutoff hybrid searches use when a request gives none
    (0: none; see ``search``)."""

    def __init__(self, backend: Backend, embed: Embed, *, lexical_weight: float = LEXICAL_WEIGHT,
                 min_relative_score: float = MIN_RELATIVE_SCORE) -> None:
        self.backend = backend
        self.embed = embed
        self.lexical_weight = check_lexical_weight(lexical_weight)
        self.min_relative_score = check_min_relative_score(min_relative_score)

    def search(self, query: str, k: int = 5, *, filters: Mapping[str, Any] | Filter | None = None,
               mode: str = "hybrid", min_relative_score: float | None = None) -> list[Hit]:
        """The top ``k`` hits. Hybrid search fuses three lists: the dense one, BM25's
        and, when the query names notes by their file name, those notes' chunks ranked
        by BM25 of its other words (``Backend.named_search``).

        ``min_relative_score`` F (0 <= F <= 1; None: the searcher's own for hybrid
        search, none for the others; 0: none) returns fewer hits when the rest are
        weak: after the first hit, a hit stays only if one of its scores (cosine, BM25,
        BM25 within the named notes) is at least F times the best of that score among
        the candidates, and strong hits among the top 2k fill in for weak ones. In
        hybrid search this happens only when the first hit leads both the dense and
        the BM25 list: when the two rankings disagree, the best hit is not sure enough
        to measure the others by. Offsets and scores are unchanged."""
        query = check_query(query, "query")
        k = check_k(k)
        fraction = check_min_relative_score(min_relative_score)
        if mode not in SEARCH_MODES:
            raise RetrievalError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        if fraction is None and mode == "hybrid":
            fraction = self.min_relative_score
        where = filters if isinstance(filters, Filter) else parse_filters(filters)
        candidates = max(k * 4, 20)
        dense: Ranking = []
        lexical: Ranking = []
        named: Ranking = []
        pending = None
        if mode == "hybrid":  # BM25 and the query embedding release the GIL: run them side by side
            pool = _lexical_pool()
            pending = (pool.submit(self.backend.lexical_search, query, candidates, where),
                       pool.submit(self.backend.named_search, query, candidates, where))
        if mode in ("hybrid", "dense"):
            dense = self.backend.vector_search(self.embed([query])[0], candidates, where)
        if pending is not None:
            lexical, named = (future.result() for future in pending)
        elif mode == "lexical":
            lexical = self.backend.lexical_search(query, candidates, where)
        if mode == "dense":
            ranked = dense
        elif mode == "lexical":
            ranked = lexical
        else:
            ranked = fuse([dense, lexical, named], weights=(1.0, self.lexical_weight, NAMED_WEIGHT))
        strong = None
        if fraction:
            # hybrid: measure the others by the first hit only when both rankings put it first
            leaders = [ranking[0][0] if ranking else None for ranking in (dense, lexical)] if mode == "hybrid" else None
            strong = relative_cutoff([dense, lexical, named], fraction, leaders)
        return self._hits(ranked, k, [dict(dense), dict(lexical), dict(named)], strong)

    def _hits(self, ranked: Ranking, k: int, scores: Sequence[dict[int, float]],
              strong: Callable[[int, int], bool] | None = None) -> list[Hit]:
        """The first ``k`` hits of ``ranked`` whose chunks still exist (and that ``strong``
        keeps), each with its scores in ``scores``: the dense, BM25 and named lists'."""
        rows = self.backend.chunks(cid for cid, _ in ranked[: k * 2])
        hits: list[Hit] = []
        for cid, score in ranked:
            row = rows.get(cid)
            if row is None:
                continue  # deleted since the index was built
            if hits and strong is not None and not strong(cid, hits[0].chunk_id):
                continue
            hits.append(Hit(cid, row.doc_id, row.source, row.title, row.start, row.end, row.text, score, row.headings,
                            *(found.get(cid) for found in scores)))
            if len(hits) == k:
                break
        return hits


def relative_cutoff(rankings: Sequence[Ranking], fraction: float,
                    leaders: Sequence[int | None] | None = None) -> Callable[[int, int], bool]:
    """``strong(chunk, first)``: whether a chunk scores at least ``fraction`` of the best
    score in one of ``rankings``. A ranking whose best score is not positive vouches for
    nothing; a chunk missing from a ranking fails it. With ``leaders`` (the first chunk
    of each ranking that must agree), every chunk is strong unless ``first``, the first
    hit, is each of them."""
    bars = []
    for ranking in rankings:
        scores = dict(ranking)
        best = max(scores.values(), default=0.0)
        if best > 0:
            bars.append((scores, fraction * best))

    def strong(cid: int, first: int) -> bool:
        if leaders is not None and any(leader != first for leader in leaders):
            return True
        return any(cid in scores and scores[cid] >= bar for scores, bar in bars)

    return strong


def parse_filters(filters: Mapping[str, Any] | None) -> Filter | None:
    """A ``Filter`` from ``{"source_prefix": str, "tags": [str, ...]}``, checked."""
    if not filters:
        return None
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise RetrievalError(f"unknown filter {sorted(unknown)[0]!r}; filters are {', '.join(FILTER_KEYS)}")
    prefix = filters.get("source_prefix")
    tags = filters.get("tags") or []
    if prefix is not None and not isinstance(prefix, str):
        raise RetrievalError(f"filter source_prefix must be a string, got {type(prefix).__name__}")
    if isinstance(tags, str) or not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
        raise RetrievalError(f"filter tags must be a list of strings, got {type(tags).__name__}")
    if len(tags) > MAX_FILTER_TAGS:
        raise RetrievalError(f"filter tags has {len(tags)} entries; the limit is {MAX_FILTER_TAGS}")
    longest = max([prefix or "", *tags], key=len)
    if len(longest) > MAX_FILTER_CHARS:
        raise RetrievalError(f"a filter value is {len(longest)} characters; the limit is {MAX_FILTER_CHARS}")
    return Filter(prefix or None, tuple(tags))


def fuse(rankings: Sequence[Sequence[tuple[int, float]]], k: int = RRF_K,
         weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each list adds ``weight / (k + rank)`` per id
    (``weights``: one per list, default all 1)."""
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings) or any(not (w >= 0) for w in weights):
        raise RetrievalError(f"fusion weights must be one number >= 0 per ranking, got {list(weights)!r}")
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (cid, _score) in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def check_query(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RetrievalError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RetrievalError(f"{name} must not be empty")
    if len(value) > MAX_QUERY_CHARS:
        raise RetrievalError(f"{name} is {len(value)} characters; the limit is {MAX_QUERY_CHARS}")
    return value.strip()


def check_lexical_weight(weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= MAX_LEXICAL_WEIGHT:
        raise RetrievalError(f"lexical_weight must be a number over 0 and at most {MAX_LEXICAL_WEIGHT:g}, got {weight!r}")
    return float(weight)


def check_min_relative_score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RetrievalError(f"min_relative_score must be a number from 0 to 1 (or None), got {value!r}")
    return float(value)


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise RetrievalError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


@functools.lru_cache(maxsize=1)
def _lexical_pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="noteloom-lexical")
