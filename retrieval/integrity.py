"""Storage faults: damage found when a data folder is opened, the full check of
``noteloom status --check``, and SQLite and OS errors turned into one-line
``StorageError`` exceptions that say what to do.

At open (every time, cheap): ``notes.sqlite`` missing or empty beside the index
files of an earlier store; a header that is not SQLite's, an impossible page
size, or a file shorter than its header says (truncated); the schema unreadable
or without its tables; and ``PRAGMA quick_check`` when the file is at most
``QUICK_CHECK_MAX_BYTES`` (its cost grows with the file; figures in the README).
Damage in a larger file is found when a read reaches it: ``guard`` turns
SQLite's "database disk image is malformed" into ``StoreDamagedError`` then.

Full check: ``PRAGMA integrity_check``, FTS5's integrity-check against the chunks
table, every document's text against its content hash, every chunk's offsets
slicing its document's text, every vector readable and of the recorded
dimension, and the loaded index holding exactly the chunks' ids.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import StorageError, StorageFullError, StoreDamagedError

from .store import Store
from .vectors import VectorIndex

DB_NAME = "notes.sqlite"
QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024
REQUIRED_TABLES = ("documents", "chunks", "chunks_fts", "meta")
_MAGIC = b"SQLite format 3\x00"
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26
LOW_SPACE_BYTES = 1024 * 1024  # an I/O error with less free space than this is taken for a full disk
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_UTF8 = "Could not decode to UTF-8"  # Python's sqlite3 reading text whose bytes were flipped


def repair_hint(folder: Path) -> str:
    return f"run `noteloom repair --data {folder}`"


def damaged(folder: Path, reason: str) -> StoreDamagedError:
    """One line, whatever SQLite reported (quick_check's findings span lines)."""
    reason = " ".join(reason.split())
    if len(reason) > 300:
        reason = reason[:300] + "…"
    return StoreDamagedError(f"data folder {folder}: {DB_NAME} is damaged ({reason}); {repair_hint(folder)}")


def disk_full(folder: Path, doing: str) -> StorageFullError:
    return StorageFullError(f"data folder {folder}: no space left on the disk while {doing}; free some space and try again")


def translate(exc: BaseException, folder: Path, doing: str = "writing") -> StorageError | None:
    """The ``StorageError`` an SQLite or OS error means, or None if it is another error."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, sqlite3.DatabaseError):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or str(exc).startswith(_NOT_UTF8):
            return damaged(folder, str(exc)[:120])
        if code == _SQLITE_FULL or (code == _SQLITE_IOERR and _free_bytes(folder) < LOW_SPACE_BYTES):
            return disk_full(folder, doing)  # SQLite reports a -shm it cannot grow as an I/O error
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return disk_full(folder, doing)
    return None


@contextlib.contextmanager
def guard(folder: Path, doing: str = "writing") -> Iterator[None]:
    """Re-raise damage and disk-full errors as one-line ``StorageError`` exceptions."""
    try:
        yield
    except (sqlite3.DatabaseError, OSError) as exc:
        mapped = translate(exc, folder, doing)
        if mapped is None:
            raise
        raise mapped from exc


# --- at open -------------------------------------------------------------------


def check_at_open(folder: Path) -> None:
    """Raise ``StoreDamagedError`` when the store cannot be opened as it is. A
    folder without a store (and without an earlier store's index) passes."""
    path = folder / DB_NAME
    wal = _size(folder / f"{DB_NAME}-wal") or 0
    size = _size(path)
    if not size:
        earlier = sorted(p.name for p in folder.glob("index-*.faiss"))
        if earlier and (size is None or not wal):
            state = "missing" if size is None else "empty (0 bytes)"
            raise StoreDamagedError(
                f"data folder {folder}: {DB_NAME} is {state} but {earlier[-1]} of an earlier store is there; restore "
                f"{DB_NAME} from a backup, or {repair_hint(folder)} and ingest your folders again"
            )
        return
    _check_header(folder, path, size, wal)
    with guard(folder, "opening"), contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            raise damaged(folder, f"table {missing[0]} is missing")
        for table in ("documents", "chunks", "meta"):
            db.execute(f"SELECT * FROM {table} LIMIT 1").fetchall()
        if size <= QUICK_CHECK_MAX_BYTES:
            found = db.execute("PRAGMA quick_check(3)").fetchall()
            if found != [("ok",)]:
                raise damaged(folder, "; ".join(r[0] for r in found))


def _check_header(folder: Path, path: Path, size: int, wal: int) -> None:
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise damaged(folder, "not an SQLite database: its header is wrong")
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        raise damaged(folder, f"its header names an impossible page size {page}")
    if wal:
        return  # pages may still live in the write-ahead log; SQLite checks the rest
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] == header[92:96] and pages * page > size:
        raise damaged(folder, f"truncated: {size} bytes of {pages * page}")
    if size % page:
        raise damaged(folder, f"truncated: {size} bytes is not a whole number of {page}-byte pages")


def _free_bytes(folder: Path) -> int:
    try:
        info = os.statvfs(folder)
    except OSError:
        return LOW_SPACE_BYTES
    return info.f_bavail * info.f_frsize


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


# --- full check ----------------------------------------------------------------


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "documents": self.documents, "chunks": self.chunks,
                "seconds": round(self.seconds, 3)}


def full_check(store: Store, index: Callable[[], VectorIndex], limit: int = 20) -> CheckReport:
    """Every check of the module docstring on ``store`` and the index ``index()``
    loads; at most ``limit`` problems are listed."""
    started = time.perf_counter()
    report = CheckReport()
    steps = [("SQLite integrity_check", _sqlite_check), ("full-text index", _fts_check), ("documents and chunks", _rows_check),
             ("vector index", _index_check)]
    for name, step in steps:
        try:
            step(store, index, report)
        except (sqlite3.DatabaseError, OSError, StorageError) as exc:
            report.problems.append(f"{name}: {exc}")
    if len(report.problems) > limit:
        report.problems[limit:] = [f"... and {len(report.problems) - limit} more"]
    report.seconds = time.perf_counter() - started
    return report


def _sqlite_check(store: Store, index: Callable[[], VectorIndex], report: CheckReport) -> None:
    found = [r[0] for r in store.db.execute("PRAGMA integrity_check(20)")]
    if found != ["ok"]:
        report.problems += [f"SQLite: {line}" for line in found]


def _fts_check(store: Store, index: Callable[[], VectorIndex], report: CheckReport) -> None:
    try:
        store.db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"full-text index does not match the chunks: {exc}")


def _rows_check(store: Store, index: Callable[[], VectorIndex], report: CheckReport) -> None:
    db = store.db
    recorded = store.get_meta("embedding") or {}
    width = 4 * int(recorded.get("dim", 0))
    texts: dict[int, str | None] = {}
    for doc_id, source, text, content_hash in db.execute("SELECT id, source, text, content_hash FROM documents"):
        report.documents += 1
        ok = hashlib.sha256(text.encode("utf-8")).hexdigest() == content_hash
        if not ok:
            report.problems.append(f"document {source}: its text does not match its content hash")
        texts[doc_id] = text if ok else None
    rows = db.execute("SELECT id, doc_id, start, end, text, vector FROM chunks")
    for cid, doc_id, start, end, text, vector in rows:
        report.chunks += 1
        if doc_id not in texts:
            report.problems.append(f"chunk {cid}: its document {doc_id} is missing")
        elif texts[doc_id] is not None and texts[doc_id][start:end] != text:
            report.problems.append(f"chunk {cid}: offsets {start}:{end} do not slice its document's text")
        if not isinstance(vector, bytes) or (width and len(vector) != width):
            report.problems.append(f"chunk {cid}: vector of {len(vector or b'')} bytes, expected {width}")
        elif not np.isfinite(np.frombuffer(vector, dtype=np.float32)).all():
            report.problems.append(f"chunk {cid}: vector holds non-finite numbers")


def _index_check(store: Store, index: Callable[[], VectorIndex], report: CheckReport) -> None:
    loaded = index()
    ids = {r[0] for r in store.db.execute("SELECT id FROM chunks")}
    if loaded.count != len(ids):
        report.problems.append(f"vector index holds {loaded.count} vectors for {len(ids)} chunks")
    elif loaded.kind == "flat" and set(loaded.ids()) != ids:
        report.problems.append("vector index ids differ from the chunks' ids")
