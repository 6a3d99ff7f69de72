"""Typed records: what goes into a backend (``DocumentRecord``, ``ChunkRecord``)
and what comes out of it (documents, chunks, hits, collections, counts).

Read records are frozen dataclasses. ``record["field"]`` also works, for callers
written when reads returned dicts; ``to_dict()`` gives the JSON-ready form.
Ids derive from content (``document_id``, ``chunk_id``), so re-ingesting dedupes.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

LEGACY_COLLECTION = ""  # documents stored before collections existed keep their bare sources


def stable_id(*parts: object) -> int:
    """A positive 53-bit id derived from its parts: fits FAISS's int64 and stays
    exact in JSON for JavaScript clients (2**53)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 11


def source_name(collection: str, path: str) -> str:
    """The unique, human-readable name of a document: ``collection/path``."""
    return path if collection == LEGACY_COLLECTION else f"{collection}/{path}"


def document_id(source: str) -> int:
    return stable_id("doc", source)


def chunk_id(source: str, content_hash: str, start: int, end: int) -> int:
    return stable_id("chunk", source, content_hash, start, end)


class Record:
    """Field access by name (``record["source"]``) and ``to_dict()`` for a dataclass."""

    def __getitem__(self, key: str) -> Any:
        if key not in _field_names(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


# --- writes -----------------------------------------------------------------------


@dataclass
class DocumentRecord:
    source: str
    title: str
    kind: str
    text: str
    content_hash: str
    mtime: float | None = None
    size: int | None = None
    tags: list[str] = field(default_factory=list)
    chunker: str = ""
    collection: str = LEGACY_COLLECTION
    path: str = ""  # inside the collection; empty means the source itself
    stamp: str | None = None  # file identity at ingest (see ingest.pipeline.file_stamp)

    @property
    def id(self) -> int:
        return document_id(self.source)


@dataclass
class ChunkRecord:
    id: int
    idx: int
    start: int
    end: int
    token_count: int
    headings: list[str]
    text: str
    vector: np.ndarray


# --- reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection(Record):
    """A named set of documents: a folder (``root``, absolute) or API uploads (``root`` None)."""

    name: str
    root: str | None


@dataclass(frozen=True)
class Known(Record):
    """What ingest needs to know of a stored document to decide whether to re-read it."""

    source: str
    collection: str
    path: str
    mtime: float | None
    size: int | None
    stamp: str | None
    content_hash: str
    chunker: str


@dataclass(frozen=True)
class DocumentInfo(Record):
    """A stored document without its text."""

    id: int
    source: str
    title: str
    kind: str
    mtime: float | None
    size: int | None
    content_hash: str
    chunker: str
    tags: list[str]
    added_at: float
    collection: str
    path: str


@dataclass(frozen=True)
class Document(DocumentInfo):
    """A stored document with its text (the text citations' offsets index)."""

    text: str


@dataclass(frozen=True)
class DocumentSummary(DocumentInfo):
    """A line of the document list: the document and how many chunks it has."""

    chunks: int


@dataclass(frozen=True)
class StoredChunk(Record):
    chunk_id: int
    doc_id: int
    source: str
    title: str
    index: int
    start: int
    end: int
    token_count: int
    headings: list[str]
    text: str
    tags: list[str]


@dataclass(frozen=True)
class Hit(Record):
    """A search result: a chunk, its offsets in its document, and its scores."""

    chunk_id: int
    doc_id: int
    source: str
    title: str
    start: int
    end: int
    text: str
    score: float
    headings: list[str] = field(default_factory=list)
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True)
class Filter(Record):
    """Which chunks a search may return: sources starting with ``source_prefix``
    and documents carrying every tag in ``tags``."""

    source_prefix: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Counts(Record):
    documents: int
    chunks: int


@dataclass(frozen=True)
class EmbeddingInfo(Record):
    """The model that made a backend's vectors, and their dimension."""

    model: str
    dim: int


@dataclass(frozen=True)
class IndexState(Record):
    """The vector index as ``status`` shows it."""

    kind: str | None
    vectors: int
    file: str | None
    generation: int | None
    up_to_date: bool
