"""``noteloom repair``: rebuild a damaged data folder from what can still be read.

1. ``notes.sqlite`` (with its write-ahead log) is copied to a scratch folder and
   read there, so SQLite never changes the damaged original. Rows are read one
   by one: the rowids come from walking the table (a read that fails skips, by
   doubling then bisecting, to the first key that reads again) and from the
   ``source`` and ``(collection, path)`` indexes, which live on other pages.
2. A new store is built in a staging folder: each document from its stored text
   when that text matches its content hash; otherwise from its file (collection
   root / path) through the normal ingest, when the file is still there;
   otherwise it is lost, and named in the report.
3. Only then are the damaged files kept in ``damaged-<time>/`` (hard links, or
   copies) and the new store moved in. Interrupted before that, the damaged
   store is still in place and ``repair`` can run again; nothing is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from retrieval import DEFAULT_EMBEDDING_MODEL, Notebook, StorageError, resolve_data_dir
from retrieval.integrity import DB_NAME, check_at_open
from retrieval.locking import write_lock

from .errors import EmptyDocumentError
from .loaders import Loaded
from .pipeline import ChunkSettings, IngestReport, Ingestor, Prepared, PendingDocument, check_has_text

BATCH_DOCUMENTS = 64
_META_COLUMNS = ("source", "collection", "path", "title", "kind", "mtime", "size", "stamp", "content_hash", "chunker", "tags",
                 "aliases", "line_offset")
_MAX_ROWID = 2**63 - 1


@dataclass
class RepairReport:
    recovered: int = 0  # from their stored text
    reread: int = 0  # from their files
    lost: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # empty notes, stored no more
    unreadable_regions: int = 0  # runs of table rows that could not be read at all
    kept_in: str | None = None
    nothing_to_do: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"recovered": self.recovered, "reread_from_files": self.reread, "lost": self.lost, "skipped": self.skipped,
                "unreadable_regions": self.unreadable_regions, "kept_in": self.kept_in,
                "nothing_to_do": self.nothing_to_do, "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        if self.nothing_to_do:
            return "no damage found; nothing was changed"
        unknown = f"; {self.unreadable_regions} unreadable region(s) may have held more" if self.unreadable_regions else ""
        return (f"{self.recovered} recovered, {self.reread} re-read from files, {len(self.lost)} lost{unknown}; "
                f"the damaged files are kept in {self.kept_in}")


@dataclass
class _Row:
    id: int
    meta: dict[str, Any] = field(default_factory=dict)
    text: str | None = None


def repair(folder: str | os.PathLike | None = None, *, force: bool = False,
           default_embedding_model: str = DEFAULT_EMBEDDING_MODEL, embedder=None) -> RepairReport:
    """Repair ``folder``. The rebuilt store embeds with the model the folder
    recorded, else ``default_embedding_model`` (or with ``embedder``, when given)."""
    started = time.perf_counter()
    folder = resolve_data_dir(folder)
    report = RepairReport()
    with _folder_lock(folder):
        if not force and _healthy(folder):
            report.nothing_to_do = True
            return report
        work = folder / f".repair-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            rows, meta, collections = _salvage(folder, work / "scratch", report)
            staging = work / "staging"
            model = (meta.get("embedding") or {}).get("model") if isinstance(meta.get("embedding"), dict) else None
            nb = Notebook(staging, embedding_model=model, default_embedding_model=default_embedding_model, embedder=embedder)
            try:
                _rebuild(nb, rows, meta, collections, report)
            finally:
                nb.close()
            report.kept_in = str(_swap(folder, staging))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _healthy(folder: Path) -> bool:
    try:
        check_at_open(folder)
        nb = Notebook(folder)
        try:
            return nb.check().ok
        finally:
            nb.close()
    except StorageError:
        return False


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(write_lock(folder, blocking=False))
        except BlockingIOError:
            raise StorageError(f"data folder {folder}: an ingest or a server is writing to it; stop it, then repair") from None
        yield


# --- reading what can be read ------------------------------------------------------


def _salvage(folder: Path, scratch: Path, report: RepairReport) -> tuple[list[_Row], dict[str, Any], dict[str, str | None]]:
    source = folder / DB_NAME
    if not source.exists() or source.stat().st_size == 0:
        return [], {}, {}
    scratch.mkdir(parents=True)
    for suffix in ("", "-wal"):
        if (folder / f"{DB_NAME}{suffix}").exists():
            shutil.copyfile(folder / f"{DB_NAME}{suffix}", scratch / f"{DB_NAME}{suffix}")
    _fit_header(scratch / DB_NAME)
    try:
        db = sqlite3.connect(scratch / DB_NAME)
        db.text_factory = bytes
        db.execute("SELECT 1").fetchone()
    except sqlite3.DatabaseError:
        return [], {}, {}  # not a database at all: nothing is readable
    with contextlib.closing(db):
        meta = {k: v for k, v in _read_rows(db, "meta", ("key", "value"), report)}
        collections = {_str(n): (_str(r) if r is not None else None) for n, r in _read_rows(db, "collections", ("name", "root"), report)}
        rows = _salvage_documents(db, report)
    meta = {_str(k): _json(v) for k, v in meta.items()}
    return rows, meta, collections


def _fit_header(path: Path) -> None:
    """Make a truncated copy readable: whole pages, and a header that counts them
    (SQLite trusts a valid header's page count and then finds the schema "malformed")."""
    with open(path, "r+b") as fh:
        header = bytearray(fh.read(100))
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            return
        page = int.from_bytes(header[16:18], "big")
        page = 65536 if page == 1 else page
        if page < 512 or page & (page - 1):
            return
        size = fh.seek(0, os.SEEK_END)
        fh.write(bytes(-size % page))
        header[28:32] = ((size + page - 1) // page).to_bytes(4, "big")
        fh.seek(0)
        fh.write(header)


def _salvage_documents(db: sqlite3.Connection, report: RepairReport) -> list[_Row]:
    columns = [c for c in _META_COLUMNS if c in _columns(db, "documents")] or ["source"]
    found: dict[int, dict[str, Any]] = {i: {} for i in _walk_rowids(db, "documents", report)}
    for cols in (("source",), ("collection", "path")):  # the indexes hold these beside each rowid
        if all(c in columns for c in cols):
            for rowid, *values in _scan_index(db, cols):
                found.setdefault(rowid, {}).update({c: _str(v) for c, v in zip(cols, values)})
    rows = []
    for rowid, known in sorted(found.items()):
        row = _Row(rowid, dict(known))
        with contextlib.suppress(sqlite3.DatabaseError):
            values = db.execute(f"SELECT {', '.join(columns)} FROM documents WHERE rowid=?", (rowid,)).fetchone()
            row.meta.update({c: _str(v) if isinstance(v, bytes) else v for c, v in zip(columns, values or ())})
        with contextlib.suppress(sqlite3.DatabaseError, UnicodeDecodeError, TypeError):
            raw = db.execute("SELECT text FROM documents WHERE rowid=?", (rowid,)).fetchone()[0]
            text = raw.decode("utf-8")
            if hashlib.sha256(raw).hexdigest() == row.meta.get("content_hash"):
                row.text = text
        rows.append(row)
    return rows


def _walk_rowids(db: sqlite3.Connection, table: str, report: RepairReport) -> list[int]:
    """Every rowid that can be read, one b-tree descent each; a descent that fails
    resumes past the damaged pages."""
    ids: list[int] = []
    last = -_MAX_ROWID
    while True:
        try:
            row = db.execute(f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1", (last,)).fetchone()
        except sqlite3.DatabaseError:
            report.unreadable_regions += 1
            resumed = _resume_after(db, table, last)
            if resumed is None:
                return ids
            last = resumed
            continue
        if row is None:
            return ids
        ids.append(row[0])
        last = row[0]


def _resume_after(db: sqlite3.Connection, table: str, last: int) -> int | None:
    """The smallest key past ``last`` after which the table reads again (the rows
    up to it sit on damaged pages)."""

    def reads(after: int) -> bool:
        try:
            db.execute(f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1", (after,)).fetchall()
            return True
        except sqlite3.DatabaseError:
            return False

    step = 1
    while not reads(last + step):
        step *= 2
        if last + step >= _MAX_ROWID:
            return None
    low, high = last + step // 2, last + step  # reading after low fails, after high works
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reads(middle) else (middle, high)
    return high


def _scan_index(db: sqlite3.Connection, cols: tuple[str, ...]) -> list[tuple]:
    """(rowid, *cols) from the index on ``cols``, read from both ends up to any damage."""
    out: list[tuple] = []
    order = ", ".join(cols)
    for direction in ("ASC", "DESC"):
        try:
            for row in db.execute(f"SELECT rowid, {order} FROM documents ORDER BY {order.replace(',', f' {direction},')} {direction}"):
                out.append(row)
        except sqlite3.DatabaseError:
            continue
        break  # read to the end: no need to come from the other side
    return out


def _read_rows(db: sqlite3.Connection, table: str, cols: tuple[str, ...], report: RepairReport) -> list[tuple]:
    try:
        return db.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
    except sqlite3.DatabaseError:
        pass
    out = []
    for rowid in _walk_rowids(db, table, report):
        with contextlib.suppress(sqlite3.DatabaseError):
            out.append(db.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE rowid=?", (rowid,)).fetchone())
    return out


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    try:
        return [_str(r[1]) for r in db.execute(f"PRAGMA table_info({table})")]
    except sqlite3.DatabaseError:
        return []


def _str(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _json(value: Any) -> Any:
    try:
        return json.loads(_str(value))
    except (TypeError, ValueError):
        return None


# --- building the new store --------------------------------------------------------


def _rebuild(nb: Notebook, rows: list[_Row], meta: dict[str, Any], collections: dict[str, str | None],
             report: RepairReport) -> None:
    named = {_str(r.meta.get("collection")) for r in rows if r.meta.get("collection") is not None}
    for name in sorted(named - set(collections)):
        collections[name] = None  # its row was lost: the documents keep their collection, without a folder
    for name, root in collections.items():
        nb.backend.add_collection(name, root)
    from_text = [r for r in rows if r.text is not None]
    files = [r for r in rows if r.text is None]
    for settings, group in _by_settings(from_text, meta).items():
        _restore_texts(Ingestor(nb, settings), group, report)
    for settings, group in _by_settings(files, meta).items():
        _reread_files(Ingestor(nb, settings), group, collections, report)
    if isinstance(meta.get("chunker"), dict):
        with nb.writer() as writer:
            writer.set_meta("chunker", meta["chunker"])
    nb.store.checkpoint()  # the new notes.sqlite is moved in with its log folded in


def _by_settings(rows: list[_Row], meta: dict[str, Any]) -> dict[ChunkSettings, list[_Row]]:
    groups: dict[ChunkSettings, list[_Row]] = {}
    fallback = _settings(meta.get("chunker")) or ChunkSettings.of()
    for row in rows:
        groups.setdefault(_settings(_json(row.meta.get("chunker"))) or fallback, []).append(row)
    return groups


def _settings(recorded: Any) -> ChunkSettings | None:
    if not isinstance(recorded, dict) or "method" not in recorded:
        return None
    params = {k: v for k, v in recorded.items() if k != "method"}
    try:
        return ChunkSettings.of(recorded["method"], **params)
    except (ValueError, TypeError, KeyError):
        return None


def _restore_texts(ingestor: Ingestor, rows: list[_Row], report: RepairReport) -> None:
    with ingestor.nb.writer() as writer:
        for i in range(0, len(rows), BATCH_DOCUMENTS):
            pending = []
            for row in rows[i : i + BATCH_DOCUMENTS]:
                m = row.meta
                name = m.get("source") or str(row.id)
                loaded = Loaded(row.text, m.get("title") or name, m.get("kind") or "text", _json(m.get("tags")) or [],
                                aliases=_texts(_json(m.get("aliases"))), line_offset=_count(m.get("line_offset")))
                try:
                    check_has_text(loaded, name)
                except EmptyDocumentError:
                    report.skipped.append(name)
                    continue
                path = m.get("path") or name
                # No stamp: wiki links are not salvaged, so the next ingest re-reads the file
                # once and records them (its text unchanged, nothing is re-embedded).
                pending.append(PendingDocument(m.get("collection") or "", path, Prepared(loaded), m.get("mtime"), m.get("size"),
                                        None, False))
            ingestor.write(writer, pending, IngestReport())
            report.recovered += len(pending)


def _reread_files(ingestor: Ingestor, rows: list[_Row], collections: dict[str, str | None], report: RepairReport) -> None:
    files: dict[str, str] = {}
    for row in rows:
        name = row.meta.get("source") or f"document {row.id} (name unreadable)"
        root = collections.get(row.meta.get("collection", ""))
        path = row.meta.get("path")
        if root and path and Path(root, path).is_file():
            files[str(Path(root, path))] = name
        else:
            report.lost.append(name)
    if not files:
        return
    done = ingestor.ingest_paths(list(files))
    report.reread += len(done.added) + len(done.updated)
    report.skipped += [s for s, _ in done.skipped]
    report.lost += [s for s, _ in done.failed]


# --- swapping it in ------------------------------------------------------------------


def _swap(folder: Path, staging: Path) -> Path:
    aside = folder / time.strftime("damaged-%Y%m%d-%H%M%S")
    n = 1
    while aside.exists():
        aside, n = folder / time.strftime(f"damaged-%Y%m%d-%H%M%S-{n}"), n + 1
    aside.mkdir()
    old = [folder / f"{DB_NAME}{s}" for s in ("", "-wal", "-shm")] + sorted(folder.glob("index-*.faiss*"))
    old = [p for p in old if p.exists()]
    for path in old:
        _keep(path, aside / path.name)
    for path in old:
        if path.name != DB_NAME:
            path.unlink()  # the old log must never meet the new database; all of it is kept aside
    os.replace(staging / DB_NAME, folder / DB_NAME)
    if (staging / f"{DB_NAME}-wal").exists():
        os.replace(staging / f"{DB_NAME}-wal", folder / f"{DB_NAME}-wal")
    for path in staging.glob("index-*.faiss"):
        os.replace(path, folder / path.name)
    return aside


def _keep(path: Path, target: Path) -> None:
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)
