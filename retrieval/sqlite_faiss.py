"""The default backend: one data folder holding ``notes.sqlite`` (documents,
chunks, vectors, FTS5 postings, the index manifest) and ``index-<generation>.faiss``.

Crash safety is ``lifecycle``'s protocol; storage faults are ``integrity``'s: a
damaged store is refused when opened, damage met later by a read raises
``StoreDamagedError``, and a full disk raises ``StorageFullError`` for a commit
that did not happen.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import EmbeddingMismatchError, StorageFullError
from .integrity import DB_NAME, CheckReport, check_at_open, full_check, guard
from .lifecycle import IndexKeeper
from .records import (ChunkRecord, Collection, Counts, DocumentInfo, DocumentRecord, DocumentSummary, EmbeddingInfo,
                      Filter, IndexState, Known, NoteLinks, StoredChunk)
from .store import Store
from .vectors import VectorIndex

log = logging.getLogger("noteloom")

FILTER_CACHE = 8  # filters whose chunk ids are kept, per data generation (a hybrid search resolves one twice)


class SqliteFaissBackend:
    """``Backend`` over SQLite and FAISS in ``folder`` (created if missing)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        check_at_open(self.folder)
        with guard(self.folder, "opening the store"):
            self.store = Store(self.folder / DB_NAME)
            self.store.get_meta("embedding")  # a damaged table fails here, not on the first search
        self.notices: list[str] = []
        self.keeper = IndexKeeper(self.folder, self.store, self._notice)
        self._filters: dict[tuple[tuple[int, int], Filter], frozenset[int]] = {}
        self._filters_lock = threading.Lock()

    # --- writes -----------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, timeout: float | None, *, embedding_model: str) -> Iterator["SqliteSession"]:
        with self._guard("writing"), self.keeper.session(timeout):
            yield SqliteSession(self.store, self.keeper, embedding_model)

    def add_collection(self, name: str, root: str | None) -> Collection:
        with self._guard("writing"), self.store.transaction() as db:
            return self.store.add_collection(db, name, root)

    def set_collection_root(self, name: str, root: str) -> Collection:
        with self._guard("writing"), self.store.transaction() as db:
            return self.store.set_collection_root(db, name, root)

    # --- reads ------------------------------------------------------------------

    def known(self) -> dict[str, Known]:
        with self._guard("reading"):
            return self.store.known()

    def known_source(self, source: str) -> Known | None:
        with self._guard("reading"):
            return self.store.known_source(source)

    def collections(self) -> dict[str, Collection]:
        with self._guard("reading"):
            return self.store.collections()

    def get_meta(self, key: str) -> Any:
        with self._guard("reading"):
            return self.store.get_meta(key)

    def embedding(self) -> EmbeddingInfo | None:
        recorded = self.get_meta("embedding")
        return EmbeddingInfo(recorded["model"], int(recorded["dim"])) if recorded else None

    def vector_search(self, vector: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        with self._guard("searching"):
            allowed = self._allowed(where)
            return self.keeper.search(vector, k, None if allowed is None else sorted(allowed))

    def lexical_search(self, text: str, k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        with self._guard("searching"):
            return self.store.lexical(text, k, self._allowed(where))

    def named_search(self, text: str, k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        with self._guard("searching"):
            return self.store.named(text, k, self._allowed(where))

    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        with self._guard("searching"):
            return self.store.chunks(ids)

    def document(self, doc_id: int, *, with_text: bool = True) -> DocumentInfo:
        with self._guard("reading"):
            return self.store.document(doc_id, with_text=with_text)

    def documents(self, *, limit: int = 1000, offset: int = 0) -> list[DocumentSummary]:
        with self._guard("reading"):
            return self.store.documents(limit=limit, offset=offset)

    def links(self, doc_id: int) -> NoteLinks:
        with self._guard("reading"):
            return self.store.links(doc_id)

    def chunk_count(self, doc_id: int) -> int:
        with self._guard("reading"):
            return self.store.documents_chunk_count(doc_id)

    def counts(self) -> Counts:
        with self._guard("reading"):
            return self.store.counts()

    def index(self) -> VectorIndex:
        """The FAISS index, loaded or rebuilt as ``lifecycle`` says."""
        with self._guard("loading the index"):
            return self.keeper.current()

    def warm(self) -> None:
        self.index()

    def index_state(self) -> IndexState:
        with self._guard("reading"):
            manifest = self.keeper.manifest()
            index = self.keeper.current() if self.store.counts().chunks or manifest else None
            return IndexState(index.kind if index else None, index.count if index else 0, manifest.get("file"),
                              manifest.get("generation"), manifest.get("generation") == self.store.data_generation())

    def check(self) -> CheckReport:
        """The full check (``noteloom status --check``): see ``retrieval.integrity``."""
        return full_check(self.store, self.index)

    def close(self) -> None:
        self.store.close()

    # --- internals --------------------------------------------------------------

    def _allowed(self, where: Filter | None) -> frozenset[int] | None:
        if where is None or (where.source_prefix is None and not where.tags):
            return None
        key = (self.store.filter_generation(), where)
        with self._filters_lock:
            found = self._filters.get(key)
            if found is None:
                found = frozenset(self.store.chunk_ids_where(where.source_prefix, where.tags))
                if len(self._filters) >= FILTER_CACHE or any(g != key[0] for g, _ in self._filters):
                    self._filters.clear()
                self._filters[key] = found
            return found

    def _notice(self, message: str) -> None:
        log.warning(message)
        self.notices.append(message)

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Damage and a full disk become one-line ``StorageError`` exceptions; a commit that
        failed for want of space leaves no transaction open."""
        try:
            with guard(self.folder, doing):
                yield
        except StorageFullError:
            db = self.store.db
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise


class SqliteSession:
    """A ``WriteSession``: one SQLite transaction per call, then the index."""

    def __init__(self, store: Store, keeper: IndexKeeper, embedding_model: str) -> None:
        self.store = store
        self.keeper = keeper
        self.embedding_model = embedding_model

    def put(self, batch: Sequence[tuple[DocumentRecord, Sequence[ChunkRecord]]]) -> None:
        if not batch:
            return
        store = self.store
        dims = {len(c.vector) for _, chunks in batch for c in chunks}
        # Searches run during the commit (WAL readers); they only wait for the FAISS
        # change below. Meanwhile their dense hits are re-checked against SQLite.
        with store.transaction() as db:
            recorded = store.get_meta("embedding")
            if len(dims) > 1:
                raise EmbeddingMismatchError(f"vectors of one batch have different dimensions: {sorted(dims)}")
            if dims:
                (dim,) = dims
                if recorded is None:
                    store.set_meta(db, "embedding", {"model": self.embedding_model, "dim": dim})
                elif recorded["dim"] != dim:
                    raise EmbeddingMismatchError(f"vectors have {dim} dimensions, the data folder holds {recorded['dim']}")
            removed: list[int] = []
            for doc, chunks in batch:
                removed += store.replace_document(db, doc, chunks)
        new = [c for _, chunks in batch for c in chunks]
        ids = np.array([c.id for c in new], dtype=np.int64)
        self.keeper.apply(removed, ids, np.stack([c.vector for c in new]) if new else None)

    def touch(self, doc_id: int, mtime: float | None, size: int | None, stamp: str | None = None, *,
              meta: DocumentRecord | None = None) -> None:
        with self.store.transaction() as db:
            self.store.touch_document(db, doc_id, mtime, size, stamp, meta)

    def delete(self, doc_id: int) -> None:
        with self.store.transaction() as db:
            removed = self.store.delete_document(db, doc_id)
        self.keeper.apply(removed, np.zeros(0, dtype=np.int64), None)

    def set_meta(self, key: str, value: Any) -> None:
        with self.store.transaction() as db:
            self.store.set_meta(db, key, value)
