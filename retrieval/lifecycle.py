"""The FAISS index's life beside the SQLite store: loading, rebuilding, saving.

Write protocol (crash-safe at any instant): a batch of documents and their
chunks (with vectors) is committed to SQLite in one transaction, which bumps the
data generation; the in-memory index is updated after the commit (``apply``); at
the end of a write session the index is written to a new file
``index-<generation>.faiss`` (temp file, fsync, rename) and only then does a
second SQLite commit point the manifest at it, with its sha256. A reader loads
the manifest's file when its generation equals the data generation and its
checksum matches; otherwise (a killed ingest, a corrupt or truncated file) it
rebuilds the index from the vectors in SQLite, which is the source of truth.
Writers are serialised by the folder's lock file (``locking``); readers never
wait for them (WAL).

Failing to save the index after a commit is only a notice: SQLite holds the
data and the index is rebuilt from it on the next load, so a reader on a full
disk searches from memory.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .errors import IndexCorruptError, StoreDamagedError
from .integrity import DB_NAME, translate
from .locking import write_lock
from .store import Store
from .vectors import VectorIndex, kind_for

log = logging.getLogger("noteloom")

STALE_REBUILD_SECONDS = 5.0


class IndexKeeper:
    """Keeps one in-memory ``VectorIndex`` in step with a ``Store``. Its lock is
    held only while the index changes or is searched, so searches keep running
    while a writer loads, chunks and embeds."""

    def __init__(self, folder: Path, store: Store, notice: Callable[[str], None]) -> None:
        self.folder = folder
        self.store = store
        self._notice = notice
        self._lock = threading.RLock()
        self._index: VectorIndex | None = None
        self._generation = -1
        self._last_rebuild = 0.0
        self._writing = False
        self._changed = False

    def current(self) -> VectorIndex:
        with self._lock:
            self._sync()
            assert self._index is not None
            return self._index

    def search(self, vector: np.ndarray, k: int, allowed: Sequence[int] | None) -> list[tuple[int, float]]:
        with self._lock:  # FAISS must not search while a writer mutates it
            return self.current().search(vector, k, allowed)

    # --- a write session --------------------------------------------------------

    @contextlib.contextmanager
    def session(self, timeout: float | None) -> Iterator[None]:
        """Hold the folder's writer lock; save the index when the session closes."""
        with write_lock(self.folder, timeout=timeout):
            try:
                with self._lock:
                    self._sync()
                    self._writing = True
                    self._changed = False
                yield
                with self._lock:
                    if self._changed or self._generation != self._manifest_generation():
                        if self._index is not None and self._index.kind != kind_for(self._index.count):
                            self._rebuild()
                        self._try_persist()
            finally:
                self._writing = False

    def apply(self, removed: Sequence[int], ids: np.ndarray, vectors: np.ndarray | None) -> None:
        """Bring the index up to a commit this session just made."""
        with self._lock:
            index = self._index
            assert index is not None and self._writing, "apply() belongs inside session()"
            index.remove(removed)
            if len(ids):
                if index.count == 0 and index.dim != vectors.shape[1]:
                    index = self._index = VectorIndex.empty(vectors.shape[1])  # the first vectors fix the dimension
                index.add(ids, vectors)
            self._generation = self.store.data_generation()
            self._changed = True

    def manifest(self) -> dict:
        return self.store.get_meta("index") or {}

    # --- loading ----------------------------------------------------------------

    def _sync(self) -> None:
        if self._index is not None and self._writing:
            return  # this process holds the write lock and keeps the index current itself
        generation = self.store.data_generation()
        if self._index is not None and generation == self._generation:
            return
        manifest = self.store.get_meta("index")
        if manifest and manifest["generation"] == generation:
            try:
                self._index = VectorIndex.load(self.folder / manifest["file"], manifest["checksum"], manifest["kind"], manifest["dim"])
                self._generation = generation
                return
            except IndexCorruptError as exc:
                self._notice(f"{exc}; rebuilding the index from the SQLite store")
        if (
            self._index is not None
            and time.monotonic() - self._last_rebuild < STALE_REBUILD_SECONDS
            and self._writer_elsewhere()
        ):
            return  # an ingest is committing batches elsewhere; hits are re-checked against SQLite
        self._rebuild()

    def _writer_elsewhere(self) -> bool:
        """Whether another writer holds the folder's lock now. One that died (or
        finished without saving the index) holds nothing: then the index is rebuilt
        at once rather than served stale for STALE_REBUILD_SECONDS."""
        try:
            with write_lock(self.folder, blocking=False):
                return False
        except BlockingIOError:
            return True

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
        dim = self._dim() if not vectors else vectors[0].shape[1]
        all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        all_vectors = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        self._index = VectorIndex.build(all_ids, all_vectors, dim)
        self._generation = generation
        self._last_rebuild = time.monotonic()
        if not self._writing:
            try:
                with write_lock(self.folder, blocking=False):
                    if self.store.data_generation() == generation:
                        self._try_persist()
            except BlockingIOError:
                pass  # a writer holds the folder and saves the index itself
            except OSError as exc:  # no lock file on a full or read-only disk
                self._index_not_saved(exc)

    def _dim(self) -> int:
        """An empty store's index takes the recorded dimension; with none recorded
        yet, any will do: the first vectors written replace it (see ``apply``)."""
        recorded = self.store.get_meta("embedding")
        return int(recorded["dim"]) if recorded else 1

    # --- saving -----------------------------------------------------------------

    def _try_persist(self) -> None:
        """Save the index; failing to is a notice, never an error: SQLite holds the data."""
        try:
            self._persist()
        except (OSError, sqlite3.DatabaseError) as exc:
            if isinstance(translate(exc, self.folder), StoreDamagedError):
                raise
            self._index_not_saved(exc)

    def _index_not_saved(self, exc: BaseException) -> None:
        why = translate(exc, self.folder, "saving the index") or exc
        self._notice(f"index not saved: {why}; searches use the index in memory and it is rebuilt from {DB_NAME} on the next load")

    def _persist(self) -> None:
        index = self._index
        assert index is not None
        if index.count == 0 and self.store.get_meta("embedding") is None:
            return  # nothing stored yet, not even the vectors' dimension: no file to write
        generation = self._generation
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

    def _manifest_generation(self) -> int:
        manifest = self.store.get_meta("index")
        return manifest["generation"] if manifest else -1
