"""Typed records: what goes into a backend (``DocumentRecord``, ``ChunkRecord``)
and what comes out of it (documents, chunks, hits, collections, counts).

Read records are frozen dataclasses. ``record["field"]`` also works, for callers
written when reads returned dicts; ``to_dict()`` gives the JSON-ready form.
Ids derive from content (``document_id``, ``chunk_id``), so re-ingesting dedupes.
"""

from __future__ import annotations

import functools
import hashlib
import json
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


@dataclass(frozen=True)
class Link(Record):
    """A wiki link (``[[Note#Heading|label]]``) or embed (``![[image.png]]``) as stored:
    ``text[start:end]`` is what the reader sees (empty for an embed), and
    ``text[:start] + raw + text[end:]`` gives back the markup as written."""

    start: int
    end: int
    target: str  # the note or file as written, without the heading; "" links within the note
    heading: str | None  # after the first '#': a heading or '^block' reference
    raw: str
    embed: bool = False


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
    aliases: list[str] = field(default_factory=list)  # other names of the note, searched like its text
    links: list[Link] = field(default_factory=list)  # wiki links and embeds, offsets into ``text``
    line_offset: int = 0  # lines of the file before ``text`` (front matter), for line numbers in the file

    @property
    def id(self) -> int:
        return document_id(self.source)

    @property
    def meta_hash(self) -> str:
        """What ingest compares besides the text: a change here rewrites the document's
        metadata and links without re-embedding its chunks."""
        meta = [self.title, self.kind, self.tags, self.aliases, self.line_offset, [l.to_dict() for l in self.links]]
        return hashlib.sha256(json.dumps(meta, ensure_ascii=False).encode("utf-8")).hexdigest()


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
    # ``DocumentRecord.meta_hash`` as stored; None before links were stored (schema 3).
    # A derived digest, so not part of equality.
    meta_hash: str | None = field(default=None, kw_only=True, compare=False)


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
    aliases: list[str] = field(default_factory=list, kw_only=True)
    line_offset: int = field(default=0, kw_only=True)  # lines of the file before the stored text


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
    named_score: float | None = None  # BM25 within the notes the query names (Searcher.search)


@dataclass(frozen=True)
class LinkOut(Record):
    """A link of a document, resolved: ``doc_id``/``source`` of the note it opens, or
    None when no stored document is that target (an image, a note not yet written)."""

    start: int
    end: int
    text: str
    target: str
    heading: str | None
    raw: str
    embed: bool
    doc_id: int | None
    source: str | None


@dataclass(frozen=True)
class Backlink(Record):
    """A link to a document from another one: ``text`` is ``source``'s text[start:end]."""

    doc_id: int
    source: str
    title: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class NoteLinks(Record):
    """A document's outgoing links (in text order) and the links to it (by source)."""

    links: list[LinkOut]
    backlinks: list[Backlink]


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
