"""What search, ask and ingest need from a store of documents, chunks, vectors
and lexical postings: the ``Backend`` protocol.

``SqliteFaissBackend`` (``retrieval.sqlite_faiss``) is the default: SQLite holds
documents, chunks, vectors and the FTS5 postings, FAISS the vector index. Another
backend (a distributed one) implements the same methods and is handed to
``Notebook(backend=...)``; ``tests/test_backend_contract.py`` is what it must pass.

Rules every backend keeps:

- Ids come from the records (``document_id``, ``chunk_id``): writing the same
  document twice leaves one copy; ``put`` replaces all of a document's chunks.
- Everything done through one ``WriteSession.put`` call lands together or not at
  all; one writer at a time (``writer`` waits at most ``timeout`` seconds, then
  raises ``WriteLockTimeoutError``); readers never wait for a writer.
- Scores: higher is better. ``vector_search`` gives cosine similarity (vectors
  are L2-normalised), ``lexical_search`` BM25 over chunk text, ``named_search`` BM25
  too, over the chunks of the notes whose name key the text holds
  (``retrieval.vault``: names shared by more than ``MAX_NAMESAKES`` notes, or stop
  words, name none), of the words left once the names are taken out.
- A hit whose chunk is gone is dropped by search, so the vector side may lag a
  commit by a moment, never the chunks themselves.
- Links (schema 3): ``put`` stores a record's ``aliases``, ``links`` and
  ``line_offset`` with it; ``touch(..., meta=record)`` replaces them (and title,
  kind, tags) in the same write, leaving text and chunks alone; ``known`` reports
  the ``meta_hash`` stored. Aliases are searched lexically as the note's title
  (their BM25 score adds to the note's first chunk); ``links`` resolves by
  ``retrieval.vault.resolve`` within the document's collection.
- Errors: ``DocumentNotFoundError`` for an unknown id, ``EmbeddingMismatchError``
  for vectors of another dimension, ``StorageError`` for a store that cannot be used.
"""

from __future__ import annotations

from typing import Any, ContextManager, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from .records import (ChunkRecord, Collection, Counts, DocumentInfo, DocumentRecord, DocumentSummary, EmbeddingInfo,
                      Filter, IndexState, Known, NoteLinks, StoredChunk)

Ranking = list[tuple[int, float]]  # (chunk id, score), best first


class WriteSession(Protocol):
    """Changes made while holding a backend's writer lock."""

    def put(self, batch: Sequence[tuple[DocumentRecord, Sequence[ChunkRecord]]]) -> None:
        """Insert or replace documents with all their chunks, atomically."""

    def touch(self, doc_id: int, mtime: float | None, size: int | None, stamp: str | None = None, *,
              meta: DocumentRecord | None = None) -> None:
        """Record a document's file identity anew (its text is unchanged); with ``meta``,
        also its title, kind, tags, aliases, links and line offset from that record."""

    def delete(self, doc_id: int) -> None:
        """Remove a document and its chunks; ``DocumentNotFoundError`` if there is none."""

    def set_meta(self, key: str, value: Any) -> None:
        """Store a small JSON value (the chunker settings, say)."""


@runtime_checkable
class Backend(Protocol):
    notices: list[str]  # what went wrong without failing (an index not saved), newest last

    # --- writes -----------------------------------------------------------------

    def writer(self, timeout: float | None, *, embedding_model: str) -> ContextManager[WriteSession]:
        """An exclusive write session. ``embedding_model`` is recorded, with the
        vectors' dimension, when the first vectors are written."""

    def add_collection(self, name: str, root: str | None) -> Collection:
        """Create a collection unless one of that name exists."""

    def set_collection_root(self, name: str, root: str) -> Collection:
        """Give an existing collection (a legacy one, say) a folder."""

    # --- what ingest compares -------------------------------------------------

    def known(self) -> dict[str, Known]:
        """source -> what ingest compares, for every document."""

    def known_source(self, source: str) -> Known | None: ...

    def collections(self) -> dict[str, Collection]: ...

    def get_meta(self, key: str) -> Any: ...

    def embedding(self) -> EmbeddingInfo | None:
        """The model and dimension of the stored vectors; None before any."""

    # --- search -----------------------------------------------------------------

    def vector_search(self, vector: np.ndarray, k: int, where: Filter | None = None) -> Ranking: ...

    def lexical_search(self, text: str, k: int, where: Filter | None = None) -> Ranking: ...

    def named_search(self, text: str, k: int, where: Filter | None = None) -> Ranking:
        """The chunks of the notes ``text`` names by their file name (``vault.names_in``,
        ``vault.named_documents``), ranked by BM25 of its other words (``vault.without_names``)."""

    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        """The chunks that still exist among ``ids``."""

    # --- documents and status ---------------------------------------------------

    def document(self, doc_id: int, *, with_text: bool = True) -> DocumentInfo:
        """A ``Document`` (with its text) or, without, a ``DocumentInfo``."""

    def documents(self, *, limit: int = 1000, offset: int = 0) -> list[DocumentSummary]:
        """Documents ordered by source."""

    def links(self, doc_id: int) -> NoteLinks:
        """The document's links (resolved in its collection) and the links to it."""

    def chunk_count(self, doc_id: int) -> int: ...

    def counts(self) -> Counts: ...

    def index_state(self) -> IndexState: ...

    def warm(self) -> None:
        """Load what searching needs now rather than on the first search."""

    def check(self) -> Any:
        """The full consistency check: an object with ``ok``, ``problems`` and ``to_dict()``."""

    def close(self) -> None: ...
