"""BM25 as Qdrant sparse vectors: a chunk's vector holds each stemmed word's
term-frequency part of BM25, a query's vector a 1 per word, and the collection's
IDF modifier makes Qdrant multiply in each word's inverse document frequency, so
their dot product is the chunk's BM25 score.

Words are split and stemmed as the default backend's FTS5 index does
(``porter unicode61``: runs of letters and digits, the original Porter
algorithm), stop words left out; a word's index is its crc32.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

from .store import STOP_WORDS, _stem  # the stemmer and stop words the default backend's BM25 uses

K1 = 1.2  # BM25's term-frequency saturation
B = 0.75  # BM25's length normalisation
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Sparse:
    indices: list[int]
    values: list[float]


def terms(text: str) -> list[int]:
    """The indices of the stemmed words of ``text``, stop words left out, in order."""
    return [zlib.crc32(_stem(w).encode("utf-8")) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def document_sparse(text: str, avg_len: float) -> Sparse:
    """BM25's term-frequency part for each word of a chunk (``avg_len``: the average chunk length in words)."""
    found = terms(text)
    norm = K1 * (1 - B + B * len(found) / avg_len)
    counts = Counter(found)
    return Sparse(list(counts), [tf * (K1 + 1) / (tf + norm) for tf in counts.values()])


def query_sparse(text: str) -> Sparse:
    unique = sorted(set(terms(text)))
    return Sparse(unique, [1.0] * len(unique))
