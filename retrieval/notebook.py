"""The notebook: one data folder holding the SQLite store and the FAISS index.

Write protocol (crash-safe at any instant): a batch of documents and their
chunks (with vectors) is committed to SQLite in one transaction, which bumps the
data generation; the in-memory index is updated after the commit; at the end of
an ingest the index is written to a new file ``index-<generation>.faiss``
(temp file, fsync, rename) and only then does a second SQLite commit point the
manifest at it, with its sha256. A reader loads the manifest's file when its
generation equals the data generation and its checksum matches; otherwise (a
killed ingest, a corrupt or truncated file) it rebuilds the index from the
vectors in SQLite, which is the source of truth. Writers are serialised by a lock
file; readers never wait for them (WAL).

Storage faults (see ``integrity``): a damaged store is refused when opened, and
damage met later by a read raises ``StoreDamagedError``; a full disk raises
``StorageFullError`` for a commit that did not happen, while failing to save the
index after a commit is only a notice (SQLite holds the data; the index is
rebuilt from it on the next load), so a reader on a full disk searches from memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import (EmbeddingMismatchError, IndexCorruptError, RetrievalError, StorageFullError, StoreDamagedError,
                     WriteLockTimeoutError)
from .integrity import DB_NAME, CheckReport, check_at_open, full_check, guard, translate
from .store import ChunkRecord, DocumentRecord, Store
from .vectors import VectorIndex, kind_for

log = logging.getLogger("noteloom")

DEFAULT_DATA_DIR = ".noteloom"
SEARCH_MODES = ("hybrid", "dense", "lexical")
MAX_K = 100
MAX_FILTER_TAGS = 64  # tags in one search filter (each one a SQL condition)
MAX_FILTER_CHARS = 1024  # a tag or a source prefix
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)
STALE_REBUILD_SECONDS = 5.0
LOCK_POLL_SECONDS = (0.01, 0.2)  # first and longest pause between tries for a held writer lock


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("NOTELOOM_DATA") or DEFAULT_DATA_DIR)


@dataclass
class Hit:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Notebook:
    def __init__(self, folder: str | os.PathLike | None = None, *, embedding_model: str | None = None, embedder=None) -> None:
        self.folder = resolve_data_dir(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        check_at_open(self.folder)
        with guard(self.folder, "opening the store"):
            self.store = Store(self.folder / DB_NAME)
        self.notices: list[str] = []
        self._lock = threading.RLock()
        self._index: VectorIndex | None = None
        self._index_generation = -1
        self._last_rebuild = 0.0
        self._writing = False
        self.write_timeout: float | None = None  # longest wait for another writer; None: as long as it takes
        with guard(self.folder, "opening the store"):
            recorded = self.store.get_meta("embedding")
        self.embedding_model = embedding_model or (recorded or {}).get("model") or _default_model()
        if recorded and embedding_model and recorded["model"] != embedding_model:
            raise EmbeddingMismatchError(
                f"data folder {self.folder} was built with embedding model {recorded['model']!r} "
                f"({recorded['dim']} dimensions); asked for {embedding_model!r}: use another --data folder"
            )
        self._embedder = embedder

    # --- embedding ------------------------------------------------------------

    @property
    def embedder(self):
        if self._embedder is None:
            from runtime import get_embedder

            self._embedder = get_embedder(self.embedding_model)
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self.embedder(list(texts)), dtype=np.float32)
        recorded = self.store.get_meta("embedding")
        if recorded and vectors.size and vectors.shape[1] != recorded["dim"]:
            raise EmbeddingMismatchError(
                f"embedder gives {vectors.shape[1]} dimensions but data folder {self.folder} holds {recorded['dim']}-dimensional vectors"
            )
        return vectors

    @property
    def dim(self) -> int:
        recorded = self.store.get_meta("embedding")
        if recorded:
            return int(recorded["dim"])
        return int(self.embed(["dimension probe"]).shape[1])

    # --- index ------------------------------------------------------------------

    def index(self) -> VectorIndex:
        with self._lock, self._guard("loading the index"):
            self._sync_index()
            assert self._index is not None
            return self._index

    def _sync_index(self) -> None:
        if self._index is not None and self._writing:
            return  # this process holds the write lock and keeps the index current itself
        generation = self.store.data_generation()
        if self._index is not None and generation == self._index_generation:
            return
        manifest = self.store.get_meta("index")
        if manifest and manifest["generation"] == generation:
            try:
                self._index = VectorIndex.load(self.folder / manifest["file"], manifest["checksum"], manifest["kind"], manifest["dim"])
                self._index_generation = generation
                return
            except IndexCorruptError as exc:
                self._notice(f"{exc}; rebuilding the index from the SQLite store")
        if (
            self._index is not None
            and not self._writing
            and time.monotonic() - self._last_rebuild < STALE_REBUILD_SECONDS
        ):
            return  # an ingest is committing batches elsewhere; hits are re-checked against SQLite
        self._rebuild()

    def _rebuild(self) -> None:
        db = self.store.db
        db.execute("BEGIN")  # one read snapshot: generation and vectors agree
        try:
            generation = self.store.data_generation()
            ids, vectors = [], []
            for batch_ids, batch_vectors in self.store.iter_vectors():
                ids.append(batch_ids)
                vectors.append(batch_vectors)
        finally:
            db.execute("COMMIT")
        dim = self.dim if not vectors else vectors[0].shape[1]
        all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        all_vectors = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        self._index = VectorIndex.build(all_ids, all_vectors, dim)
        self._index_generation = generation
        self._last_rebuild = time.monotonic()
        if not self._writing:
            try:
                with self._write_lock(blocking=False):
                    if self.store.data_generation() == generation:
                        self._try_persist()
            except BlockingIOError:
                pass  # a writer holds the folder and saves the index itself
            except OSError as exc:  # no lock file on a full or read-only disk
                self._index_not_saved(exc)

    def _try_persist(self) -> None:
        """Save the index; failing to is a notice, never an error: SQLite holds the data."""
        try:
            self._persist_index()
        except (OSError, sqlite3.DatabaseError) as exc:
            if isinstance(translate(exc, self.folder), StoreDamagedError):
                raise
            self._index_not_saved(exc)

    def _index_not_saved(self, exc: BaseException) -> None:
        why = translate(exc, self.folder, "saving the index") or exc
        self._notice(f"index not saved: {why}; searches use the index in memory and it is rebuilt from {DB_NAME} on the next load")

    def _persist_index(self) -> None:
        index = self._index
        assert index is not None
        generation = self._index_generation
        name = f"index-{generation}.faiss"
        checksum = index.save(self.folder / name)
        with self.store.transaction() as db:
            if self.store.data_generation() != generation:
                return  # stale: a newer generation was committed meanwhile
            self.store.set_meta(
                db, "index", {"file": name, "checksum": checksum, "generation": generation, "kind": index.kind, "dim": index.dim, "count": index.count}
            )
        for old in self.folder.glob("index-*.faiss*"):
            if old.name != name:
                with contextlib.suppress(OSError):
                    old.unlink()

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

    @contextlib.contextmanager
    def _write_lock(self, blocking: bool = True, timeout: float | None = None) -> Iterator[None]:
        """The folder's writer lock. ``blocking=False``: BlockingIOError if it is held;
        else wait, for at most ``timeout`` seconds (None: no bound), then WriteLockTimeoutError."""
        with open(self.folder / "write.lock", "a+") as fh:
            if not blocking or timeout is None:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            else:
                self._lock_within(fh, timeout)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _lock_within(self, fh, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pause, longest = LOCK_POLL_SECONDS
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WriteLockTimeoutError(
                        f"another writer (a `noteloom ingest`?) has held {self.folder / 'write.lock'} for over "
                        f"{timeout:g} s; nothing was written, try again later") from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, longest)

    @contextlib.contextmanager
    def writer(self, timeout: float | None = None) -> Iterator["Writer"]:
        """Exclusive write session; the index is persisted when it closes. Another
        process's writer is waited for at most ``timeout`` seconds (default: the
        notebook's ``write_timeout``; None waits as long as it takes), then
        ``WriteLockTimeoutError``."""
        # The in-process lock is held only while the index changes, so searches
        # keep running while a writer loads, chunks and embeds.
        timeout = self.write_timeout if timeout is None else timeout
        if timeout is not None and not 0 <= timeout <= 24 * 3600:
            raise ValueError(f"write timeout must be 0..86400 seconds or None, got {timeout!r}")
        with self._guard("writing"), self._write_lock(timeout=timeout):
            try:
                with self._lock:
                    self._sync_index()
                    self._writing = True
                writer = Writer(self)
                yield writer
                with self._lock:
                    if writer.changed or self._index_generation != self._manifest_generation():
                        if self._index is not None and self._index.kind != kind_for(self._index.count):
                            self._rebuild()
                        self._try_persist()
            finally:
                self._writing = False

    def _manifest_generation(self) -> int:
        manifest = self.store.get_meta("index")
        return manifest["generation"] if manifest else -1

    # --- reading ----------------------------------------------------------------

    def search(self, query: str, k: int = 5, *, filters: dict[str, Any] | None = None, mode: str = "hybrid") -> list[Hit]:
        with self._guard("searching"):
            return self._search(query, k, filters, mode)

    def _search(self, query: str, k: int, filters: dict[str, Any] | None, mode: str) -> list[Hit]:
        query = check_query(query, "query")
        k = check_k(k)
        if mode not in SEARCH_MODES:
            raise RetrievalError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        allowed = self._allowed(filters)
        candidates = max(k * 4, 20)
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        pending = None
        if mode == "hybrid":  # BM25 in SQLite and the query embedding both release the GIL: run them side by side
            pending = _lexical_pool().submit(self.store.lexical, query, candidates, allowed)
        if mode in ("hybrid", "dense"):
            qvec = self.embed([query])[0]
            with self._lock:  # FAISS must not search while a writer mutates it
                dense = self.index().search(qvec, candidates, None if allowed is None else sorted(allowed))
        if pending is not None:
            lexical = pending.result()
        elif mode == "lexical":
            lexical = self.store.lexical(query, candidates, allowed)
        if mode == "dense":
            ranked = dense
        elif mode == "lexical":
            ranked = lexical
        else:
            ranked = fuse([dense, lexical])
        dense_scores, lexical_scores = dict(dense), dict(lexical)
        rows = self.store.chunks(cid for cid, _ in ranked[: k * 2])
        hits = []
        for cid, score in ranked:
            row = rows.get(cid)
            if row is None:
                continue  # deleted since the index was built
            hits.append(
                Hit(cid, row["doc_id"], row["source"], row["title"], row["start"], row["end"], row["text"], score,
                    row["headings"], dense_scores.get(cid), lexical_scores.get(cid))
            )
            if len(hits) == k:
                break
        return hits

    def _allowed(self, filters: dict[str, Any] | None) -> set[int] | None:
        if not filters:
            return None
        unknown = set(filters) - {"source_prefix", "tags"}
        if unknown:
            raise RetrievalError(f"unknown filter {sorted(unknown)[0]!r}; filters are source_prefix, tags")
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
        return set(self.store.chunk_ids_where(prefix, tags))

    def ask(self, question: str, k: int = 5, **options: Any):
        from .answer import answer_question

        return answer_question(self, question, k=k, **options)

    def document(self, doc_id: int) -> dict[str, Any]:
        with self._guard("reading"):
            return self.store.document(doc_id)

    def documents(self, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        with self._guard("reading"):
            return self.store.documents(limit=limit, offset=offset)

    def delete(self, doc_id: int) -> dict[str, Any]:
        with self._guard("reading"):
            doc = self.store.document(doc_id, with_text=False)
        with self.writer() as w:
            w.delete(doc_id)
        return doc

    def check(self) -> CheckReport:
        """The full check (``noteloom status --check``): see ``retrieval.integrity``."""
        return full_check(self)

    def status(self) -> dict[str, Any]:
        with self._guard("reading"):
            return self._status()

    def _status(self) -> dict[str, Any]:
        counts = self.store.counts()
        manifest = self.store.get_meta("index") or {}
        index = self.index() if counts["chunks"] or manifest else None
        return {
            "data_dir": str(self.folder),
            **counts,
            "embedding": self.store.get_meta("embedding") or {"model": self.embedding_model},
            "chunker": self.store.get_meta("chunker"),
            "index": {
                "kind": index.kind if index else None,
                "vectors": index.count if index else 0,
                "file": manifest.get("file"),
                "generation": manifest.get("generation"),
                "up_to_date": manifest.get("generation") == self.store.data_generation(),
            },
            "notices": list(self.notices),
        }


class Writer:
    """Applies document changes: one SQLite transaction per batch, then the index."""

    def __init__(self, notebook: Notebook) -> None:
        self.nb = notebook
        self.changed = False

    def put(self, batch: Sequence[tuple[DocumentRecord, Sequence[ChunkRecord]]]) -> None:
        if not batch:
            return
        nb = self.nb
        dims = {len(c.vector) for _, chunks in batch for c in chunks}
        # Searches run during the commit (WAL readers); they only wait for the FAISS
        # change below. Meanwhile their dense hits are re-checked against SQLite.
        with nb.store.transaction() as db:
            recorded = nb.store.get_meta("embedding")
            if dims:
                (dim,) = dims
                if recorded is None:
                    nb.store.set_meta(db, "embedding", {"model": nb.embedding_model, "dim": dim})
                elif recorded["dim"] != dim:
                    raise EmbeddingMismatchError(f"vectors have {dim} dimensions, the data folder holds {recorded['dim']}")
            removed: list[int] = []
            for doc, chunks in batch:
                removed += nb.store.replace_document(db, doc, chunks)
        with nb._lock:
            index = nb._index
            assert index is not None
            index.remove(removed)
            new = [c for _, chunks in batch for c in chunks]
            if new:
                index.add(np.array([c.id for c in new], dtype=np.int64), np.stack([c.vector for c in new]))
            nb._index_generation = nb.store.data_generation()
        self.changed = True

    def touch(self, doc_id: int, mtime: float | None, size: int | None, stamp: str | None = None) -> None:
        with self.nb.store.transaction() as db:
            self.nb.store.touch_document(db, doc_id, mtime, size, stamp)

    def delete(self, doc_id: int) -> None:
        with self.nb.store.transaction() as db:
            removed = self.nb.store.delete_document(db, doc_id)
        with self.nb._lock:
            assert self.nb._index is not None
            self.nb._index.remove(removed)
            self.nb._index_generation = self.nb.store.data_generation()
        self.changed = True

    def set_meta(self, key: str, value: Any) -> None:
        with self.nb.store.transaction() as db:
            self.nb.store.set_meta(db, key, value)


@functools.lru_cache(maxsize=1)
def _lexical_pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="noteloom-lexical")


def fuse(rankings: Sequence[Sequence[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each list adds ``1 / (k + rank)`` per id."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (cid, _score) in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def check_query(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RetrievalError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RetrievalError(f"{name} must not be empty")
    if len(value) > 10_000:
        raise RetrievalError(f"{name} is {len(value)} characters; the limit is 10000")
    return value.strip()


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise RetrievalError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


def _default_model() -> str:
    return os.environ.get("NOTELOOM_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
