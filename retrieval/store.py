"""SQLite store: the source of truth for documents, chunks (offsets, text, vector),
hashes and the index manifest. WAL mode, so readers keep reading while one writer
commits; every change to a document and its chunks is one transaction.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import DocumentNotFoundError
from .records import (LEGACY_COLLECTION, Backlink, ChunkRecord, Collection, Counts, Document, DocumentInfo, DocumentRecord,
                      DocumentSummary, Known, LinkOut, NoteLinks, StoredChunk, chunk_id, document_id, source_name,
                      stable_id)
from .vault import name_key, named_notes, resolve

__all__ = ["LEGACY_COLLECTION", "ChunkRecord", "Collection", "DocumentRecord", "Known", "Store", "chunk_id",
           "document_id", "source_name", "stable_id"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents(
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    stamp TEXT,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    mtime REAL,
    size INTEGER,
    content_hash TEXT NOT NULL,
    chunker TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    text TEXT NOT NULL,
    added_at REAL NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    line_offset INTEGER NOT NULL DEFAULT 0,
    meta_hash TEXT,
    link_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    token_count INTEGER NOT NULL,
    headings TEXT NOT NULL DEFAULT '[]',
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, content='chunks', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections(name TEXT PRIMARY KEY, root TEXT UNIQUE, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS links(
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    target TEXT NOT NULL,
    heading TEXT,
    raw TEXT NOT NULL,
    embed INTEGER NOT NULL,
    target_name TEXT NOT NULL,
    PRIMARY KEY(doc_id, idx)
);
CREATE INDEX IF NOT EXISTS links_by_name ON links(target_name);
CREATE VIRTUAL TABLE IF NOT EXISTS aliases_fts USING fts5(aliases, tokenize='porter unicode61');
"""
# Created after the migration, which adds the columns they index.
INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS documents_by_path ON documents(collection, path);
CREATE INDEX IF NOT EXISTS documents_by_link_name ON documents(link_name);
"""
SCHEMA_VERSION = 3
# In a large collection a word found in more than COMMON_SHARE of the chunks adds
# little to BM25 but makes FTS5 score most of the table: it is left out of the
# query when rarer words remain (100k chunks: lexical p99 54 -> ~13 ms).
COMMON_MIN_CHUNKS = 20_000
COMMON_SHARE = 0.05


class Store:
    """One SQLite file. Each thread gets its own connection."""

    def __init__(self, path: str | Path, *, common_min_chunks: int = COMMON_MIN_CHUNKS) -> None:
        self.path = str(path)
        self.common_min_chunks = common_min_chunks  # below this many chunks no query term is "common"
        self._local = threading.local()
        self._df: dict[str, int] = {}  # stemmed term -> chunks containing it, for one data generation
        self._df_generation = -1
        self._chunk_total = 0
        self.db.executescript(SCHEMA)  # idempotent; executescript manages its own transaction
        self._migrate()
        self.db.executescript(INDEXES)

    def _migrate(self) -> None:
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(documents)")}
        if "collection" not in columns:
            self._migrate_to_collections()
        if "meta_hash" not in columns:
            self._migrate_to_links()

    def _migrate_to_links(self) -> None:
        """Version 2 folders had no aliases, links or line offsets: the columns start
        empty and every file stamp is forgotten, so the next ingest reads each file
        once and records them (a metadata change only: nothing is re-embedded)."""
        with self.transaction() as db:
            db.execute("ALTER TABLE documents ADD COLUMN aliases TEXT NOT NULL DEFAULT '[]'")
            db.execute("ALTER TABLE documents ADD COLUMN line_offset INTEGER NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE documents ADD COLUMN meta_hash TEXT")
            db.execute("ALTER TABLE documents ADD COLUMN link_name TEXT NOT NULL DEFAULT ''")
            db.executemany("UPDATE documents SET link_name=? WHERE id=?",
                           [(name_key(path), doc_id) for doc_id, path in db.execute("SELECT id, path FROM documents").fetchall()])
            db.execute("UPDATE documents SET stamp=NULL")
            self.set_meta(db, "schema", SCHEMA_VERSION)

    def _migrate_to_collections(self) -> None:
        """Version 1 folders had no collections: their documents become the legacy
        collection (bare sources, ids unchanged), claimed by the first folder that
        holds their files (see ingest.pipeline)."""
        with self.transaction() as db:
            db.execute("ALTER TABLE documents ADD COLUMN collection TEXT NOT NULL DEFAULT ''")
            db.execute("ALTER TABLE documents ADD COLUMN path TEXT NOT NULL DEFAULT ''")
            db.execute("ALTER TABLE documents ADD COLUMN stamp TEXT")
            db.execute("UPDATE documents SET collection=?, path=source", (LEGACY_COLLECTION,))
            if db.execute("SELECT 1 FROM documents LIMIT 1").fetchone():
                db.execute("INSERT OR IGNORE INTO collections(name, root, created_at) VALUES(?, NULL, ?)",
                           (LEGACY_COLLECTION, time.time()))
            self.set_meta(db, "schema", 2)

    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: durable across process kills
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    class _Txn:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, *_exc) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def transaction(self) -> "Store._Txn":
        """``with store.transaction() as db:`` — one atomic write."""
        return Store._Txn(self.db)

    # --- meta ---------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, db: sqlite3.Connection, key: str, value: Any) -> None:
        db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, json.dumps(value)))

    def data_generation(self) -> int:
        """Bumped by every committed change to chunks; the index records the one it reflects."""
        return int(self.get_meta("data_generation", 0))

    def filter_generation(self) -> tuple[int, int]:
        """Changes when what a search filter selects may have: chunks (the data generation)
        or a document's tags alone (a metadata touch, which leaves the index alone)."""
        found = dict(self.db.execute("SELECT key, value FROM meta WHERE key IN ('data_generation', 'meta_generation')"))
        return int(json.loads(found.get("data_generation", "0"))), int(json.loads(found.get("meta_generation", "0")))

    def _bump(self, db: sqlite3.Connection, key: str = "data_generation") -> None:
        row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        self.set_meta(db, key, (json.loads(row[0]) if row else 0) + 1)

    # --- writes -------------------------------------------------------------

    def replace_document(self, db: sqlite3.Connection, doc: DocumentRecord, chunks: Sequence[ChunkRecord]) -> list[int]:
        """Insert or replace a document and all its chunks (inside ``db``'s
        transaction). Returns the ids of the chunks it replaced."""
        old = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_id=?", (doc.id,))]
        db.execute("DELETE FROM chunks WHERE doc_id=?", (doc.id,))
        db.execute(
            "INSERT INTO documents(id, source, collection, path, stamp, title, kind, mtime, size, content_hash, chunker, tags, "
            "text, added_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET stamp=excluded.stamp, "
            "title=excluded.title, kind=excluded.kind, mtime=excluded.mtime, size=excluded.size, "
            "content_hash=excluded.content_hash, chunker=excluded.chunker, tags=excluded.tags, text=excluded.text, "
            "added_at=excluded.added_at",
            (doc.id, doc.source, doc.collection, doc.path or doc.source, doc.stamp, doc.title, doc.kind, doc.mtime, doc.size,
             doc.content_hash, doc.chunker, json.dumps(doc.tags), doc.text, time.time()),
        )
        self._write_meta(db, doc)
        db.executemany(
            "INSERT INTO chunks(id, doc_id, idx, start, end, token_count, headings, text, vector) VALUES(?,?,?,?,?,?,?,?,?)",
            [(c.id, doc.id, c.idx, c.start, c.end, c.token_count, json.dumps(c.headings), c.text,
              np.asarray(c.vector, dtype=np.float32).tobytes()) for c in chunks],
        )
        self._bump(db)
        return old

    def touch_document(self, db: sqlite3.Connection, doc_id: int, mtime: float | None, size: int | None,
                       stamp: str | None = None, meta: DocumentRecord | None = None) -> None:
        db.execute("UPDATE documents SET mtime=?, size=?, stamp=? WHERE id=?", (mtime, size, stamp, doc_id))
        if meta is not None:
            if meta.id != doc_id:
                raise ValueError(f"touch of document {doc_id} given the metadata of {meta.source!r} ({meta.id})")
            db.execute("UPDATE documents SET title=?, kind=?, tags=? WHERE id=?",
                       (meta.title, meta.kind, json.dumps(meta.tags), doc_id))
            self._write_meta(db, meta)
            self._bump(db, "meta_generation")

    def _write_meta(self, db: sqlite3.Connection, doc: DocumentRecord) -> None:
        """Aliases, links and line offset of a document (inside ``db``'s transaction)."""
        db.execute("UPDATE documents SET aliases=?, line_offset=?, meta_hash=?, link_name=? WHERE id=?",
                   (json.dumps(doc.aliases), doc.line_offset, doc.meta_hash, name_key(doc.path or doc.source), doc.id))
        db.execute("DELETE FROM links WHERE doc_id=?", (doc.id,))
        db.executemany(
            "INSERT INTO links(doc_id, idx, start, end, target, heading, raw, embed, target_name) VALUES(?,?,?,?,?,?,?,?,?)",
            [(doc.id, i, l.start, l.end, l.target, l.heading, l.raw, int(l.embed), name_key(l.target))
             for i, l in enumerate(doc.links)])
        db.execute("DELETE FROM aliases_fts WHERE rowid=?", (doc.id,))
        if doc.aliases:
            db.execute("INSERT INTO aliases_fts(rowid, aliases) VALUES(?, ?)", (doc.id, "\n".join(doc.aliases)))

    def add_collection(self, db: sqlite3.Connection, name: str, root: str | None) -> Collection:
        db.execute("INSERT OR IGNORE INTO collections(name, root, created_at) VALUES(?, ?, ?)", (name, root, time.time()))
        return Collection(name, root)

    def set_collection_root(self, db: sqlite3.Connection, name: str, root: str) -> Collection:
        db.execute("UPDATE collections SET root=? WHERE name=?", (root, name))
        return Collection(name, root)

    def delete_document(self, db: sqlite3.Connection, doc_id: int) -> list[int]:
        ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
        if db.execute("DELETE FROM documents WHERE id=?", (doc_id,)).rowcount == 0:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM links WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM aliases_fts WHERE rowid=?", (doc_id,))
        self._bump(db)
        return ids

    # --- reads --------------------------------------------------------------

    def known(self) -> dict[str, Known]:
        """source -> what ingest compares, for every document."""
        rows = self.db.execute(f"SELECT {_KNOWN_COLUMNS} FROM documents")
        return {r[0]: _known(r) for r in rows}

    def known_source(self, source: str) -> Known | None:
        row = self.db.execute(f"SELECT {_KNOWN_COLUMNS} FROM documents WHERE source=?", (source,)).fetchone()
        return _known(row) if row else None

    def collections(self) -> dict[str, Collection]:
        return {r[0]: Collection(r[0], r[1]) for r in self.db.execute("SELECT name, root FROM collections")}

    def document(self, doc_id: int, *, with_text: bool = True) -> DocumentInfo:
        """The document (a ``Document``, with its text, unless ``with_text`` is false)."""
        cols = _DOC_COLUMNS + (", text" if with_text else "")
        row = self.db.execute(f"SELECT {cols} FROM documents WHERE id=?", (doc_id,)).fetchone()
        if row is None:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        return _doc(Document, row[:_DOC_WIDTH], row[_DOC_WIDTH]) if with_text else _doc(DocumentInfo, row)

    def document_by_source(self, source: str) -> DocumentInfo | None:
        row = self.db.execute("SELECT id FROM documents WHERE source=?", (source,)).fetchone()
        return self.document(row[0]) if row else None

    def documents(self, *, limit: int = 1000, offset: int = 0) -> list[DocumentSummary]:
        rows = self.db.execute(
            f"SELECT {_DOC_COLUMNS}, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id = d.id) FROM documents d "
            "ORDER BY source LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()
        return [_doc(DocumentSummary, row[:_DOC_WIDTH], row[_DOC_WIDTH]) for row in rows]

    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        ids = list(ids)
        out: dict[int, StoredChunk] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(
                f"SELECT c.id, c.doc_id, d.source, d.title, c.idx, c.start, c.end, c.token_count, c.headings, c.text, d.tags "
                f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
                part,
            ):
                out[row[0]] = StoredChunk(*row[:8], json.loads(row[8]), row[9], json.loads(row[10]))
        return out

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) in batches, for rebuilding the index."""
        cursor = self.db.execute("SELECT id, vector FROM chunks ORDER BY id")
        while rows := cursor.fetchmany(batch):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            yield ids, vectors

    def chunk_ids_where(self, source_prefix: str | None = None, tags: Sequence[str] = ()) -> list[int]:
        sql = "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE 1=1"
        args: list[Any] = []
        if source_prefix:
            sql += " AND substr(d.source, 1, ?) = ?"
            args += [len(source_prefix), source_prefix]
        for tag in tags:
            sql += " AND EXISTS (SELECT 1 FROM json_each(d.tags) WHERE json_each.value = ?)"
            args.append(tag)
        return [r[0] for r in self.db.execute(sql, args)]

    def lexical(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """BM25 over chunk text (SQLite FTS5); higher score is better."""
        match = self._match(query)
        if match is None:
            return []
        limit = k if allowed is None else max(k * 20, 200)
        rows = self.db.execute(
            "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?",
            (match, limit),
        ).fetchall()
        hits = [(r[0], -float(r[1])) for r in rows if allowed is None or r[0] in allowed]
        hits = self._with_aliases(hits, match, limit, allowed)
        return hits[:k]

    def named(self, query: str, k: int, allowed: set[int] | frozenset[int] | None = None) -> list[tuple[int, float]]:
        """The chunks of the notes ``query`` names (``vault.names_in``), ranked by BM25 of
        its other words; empty when it names none or has no other word."""
        doc_ids, rest = named_notes(query, self._documents_named, STOP_WORDS)
        match = self._match(rest) if doc_ids else None
        if match is None:
            return []
        if allowed is not None:  # filters pass or stop whole documents
            doc_ids = sorted({d for d, c in self.db.execute(
                f"SELECT doc_id, id FROM chunks WHERE doc_id IN ({','.join('?' * len(doc_ids))})", doc_ids) if c in allowed})
            if not doc_ids:
                return []
        # CROSS JOIN keeps the full-text scan outside: FTS5 given the chunk ids would run
        # the whole match once per id (60 ms for one 400-chunk note, against 0.4 ms).
        rows = self.db.execute(
            "SELECT s.id, s.score FROM (SELECT rowid AS id, bm25(chunks_fts) AS score FROM chunks_fts "
            "WHERE chunks_fts MATCH ?) AS s CROSS JOIN chunks AS c ON c.id = s.id "
            f"WHERE c.doc_id IN ({','.join('?' * len(doc_ids))}) ORDER BY s.score LIMIT ?",
            (match, *doc_ids, k),
        ).fetchall()
        return [(r[0], -float(r[1])) for r in rows if allowed is None or r[0] in allowed]

    def _documents_named(self, keys: list[str]) -> list[tuple[str, int]]:
        """(name key, id) of the documents whose ``link_name`` is one of ``keys``."""
        found = []
        for at in range(0, len(keys), _NAME_BATCH):
            batch = keys[at:at + _NAME_BATCH]
            found += self.db.execute(f"SELECT link_name, id FROM documents WHERE link_name IN ({','.join('?' * len(batch))})",
                                     batch).fetchall()
        return found

    def _match(self, query: str) -> str | None:
        """The FTS5 query of ``query``'s words: stop words left out, and words most chunks
        hold too while rarer ones remain; None when no word is left."""
        terms = list(dict.fromkeys(t for t in _FTS_TERM.findall(query.lower()) if t not in STOP_WORDS))  # once each
        if not terms:
            return None
        if len(terms) > 1:
            common = self.common_terms(terms)
            if len(common) < len(terms):
                terms = [t for t in terms if t not in common]
        return " OR ".join(f'"{t}"' for t in terms)

    def _with_aliases(self, hits: list[tuple[int, float]], match: str, limit: int,
                      allowed: set[int] | frozenset[int] | None) -> list[tuple[int, float]]:
        """An alias is another title of a note: a match adds its BM25 score to the note's
        first chunk (its top), which joins the hits if it was not among them."""
        named = self.db.execute("SELECT rowid, bm25(aliases_fts) FROM aliases_fts WHERE aliases_fts MATCH ? "
                                "ORDER BY bm25(aliases_fts) LIMIT ?", (match, limit)).fetchall()
        if not named:
            return hits
        firsts = dict(self.db.execute(f"SELECT doc_id, id FROM chunks WHERE idx=0 AND doc_id IN ({','.join('?' * len(named))})",
                                      [r[0] for r in named]).fetchall())
        scores = dict(hits)
        for doc_id, score in named:
            first = firsts.get(doc_id)
            if first is not None and (allowed is None or first in allowed):
                scores[first] = scores.get(first, 0.0) - float(score)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))

    def links(self, doc_id: int) -> NoteLinks:
        """The document's links resolved within its collection, and the links to it."""
        row = self.db.execute("SELECT collection, path, text, source FROM documents WHERE id=?", (doc_id,)).fetchone()
        if row is None:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        collection, path, text, own_source = row
        named: dict[str, dict[int, tuple[str, str]]] = {}  # name key -> {id: (path, source)}

        def opened(target: str) -> tuple[int | None, str | None]:
            if not target:
                return doc_id, own_source  # within the note
            key = name_key(target)
            if key not in named:
                named[key] = {r[0]: (r[1], r[2]) for r in self.db.execute(
                    "SELECT id, path, source FROM documents WHERE collection=? AND link_name=?", (collection, key))}
            found = resolve(target, ((i, p) for i, (p, _) in named[key].items()))
            return found, named[key][found][1] if found is not None else None

        out = []
        for start, end, target, heading, raw, embed in self.db.execute(
                "SELECT start, end, target, heading, raw, embed FROM links WHERE doc_id=? ORDER BY idx", (doc_id,)):
            opens, source = opened(target)
            out.append(LinkOut(start, end, text[start:end], target, heading, raw, bool(embed), opens, source))
        back = [Backlink(*r[:6]) for r in self.db.execute(
            "SELECT d.id, d.source, d.title, l.start, l.end, substr(d.text, l.start + 1, l.end - l.start), l.target "
            "FROM links l JOIN documents d ON d.id = l.doc_id WHERE l.target_name=? AND d.collection=? AND d.id != ? "
            "ORDER BY d.source, l.idx", (name_key(path), collection, doc_id)) if opened(r[6])[0] == doc_id]
        return NoteLinks(out, back)

    def documents_chunk_count(self, doc_id: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks WHERE doc_id=?", (doc_id,)).fetchone()[0]

    def common_terms(self, terms: Sequence[str]) -> set[str]:
        generation = self.data_generation()
        if generation != self._df_generation:
            self._df = {}
            self._chunk_total = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            self._df_generation = generation
        total = self._chunk_total
        if total < self.common_min_chunks:
            return set()
        stems = {t: _stem(t) for t in set(terms)}
        missing = [s for s in set(stems.values()) if s not in self._df]
        if missing:
            found = dict(self.db.execute(
                f"SELECT term, doc FROM chunks_vocab WHERE term IN ({','.join('?' * len(missing))})", missing).fetchall())
            self._df.update({s: found.get(s, 0) for s in missing})
        return {t for t, stem in stems.items() if self._df[stem] > COMMON_SHARE * total}

    def counts(self) -> Counts:
        db = self.db
        return Counts(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
                      db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (before moving the file)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


_DOC_COLUMNS = "id, source, title, kind, mtime, size, content_hash, chunker, tags, added_at, collection, path, aliases, line_offset"
_DOC_WIDTH = 14
_KNOWN_COLUMNS = "source, collection, path, mtime, size, stamp, content_hash, chunker, meta_hash"


def _doc(cls: type, row: Sequence[Any], *extra: Any):
    """A ``DocumentInfo`` (or subclass, with ``extra`` fields) from a row of ``_DOC_COLUMNS``."""
    values = list(row[:12])
    values[8] = json.loads(values[8])  # tags
    return cls(*values, *extra, aliases=json.loads(row[12]), line_offset=row[13])


def _known(row: Sequence[Any]) -> Known:
    return Known(*row[:8], meta_hash=row[8])


@functools.lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM)  # the algorithm FTS5's porter tokenizer uses


@functools.lru_cache(maxsize=65536)
def _stem(term: str) -> str:
    return _stemmer().stem(term)


_NAME_BATCH = 900  # name keys per lookup: under 999, SQLite's bound on parameters before 3.32
_FTS_TERM = re.compile(r"[\w][\w\-']*", re.UNICODE)
STOP_WORDS = frozenset(
    "a an and are as at be by do does for from how i if in is it its of on or should that the this to was what when "
    "where which who why will with you your can my me we our".split()
)
