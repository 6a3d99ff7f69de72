"""Qdrant as a ``Backend`` (extra ``[qdrant]``): a Qdrant server or cluster by
URL, or a folder (one process at a time) opened by qdrant-client's local mode or,
``engine="edge"``, by Qdrant's own engine in process (``qdrant-edge-py``).

Three collections, named ``<prefix>_chunks``, ``<prefix>_documents`` and
``<prefix>_meta``. A chunk is a point (id = chunk id) with a dense vector
(cosine), a sparse BM25 vector (``qdrant_lexical``; Qdrant adds the IDF) and its
payload: document, source, offsets, headings, text, tags and ``dirs`` (the
source's folder prefixes, which source-prefix filters match). A document is a
point (id = document id) holding its text and metadata, and ``version``: a
digest of its content and chunk ids that its chunks carry too.

What a crash (kill -9 of the writer, at any instant) leaves, and why:

- A chunk is shown only while its ``version`` equals its document's, so chunks
  written ahead of their document stay unseen, and a document's text always
  matches the offsets of the chunks shown with it (citations stay exact).
- ``put`` writes, in order: an intent (the batch's document ids) in the meta
  collection; the chunk points (upserts keyed by chunk id: idempotent, so no
  duplicates whatever is replayed); the commit record (all the batch's document
  points, in one meta point, so one atomic write); the document points; the
  removal of the chunks they replaced; the intent's removal.
- Before the commit record lands, the batch is rolled back by the next writer
  (or at open, in local mode): its new chunks are deleted. After it, the batch is
  rolled forward from the record. So a batch lands whole or not at all, for every
  reader once recovery has run; ingest redoes whatever did not land, since the
  stored hash differs.
- ``touch(..., meta=record)`` writes one commit record (the document's new
  metadata, its chunks' title and tags, its alias point), then those fields, so
  it too is rolled forward; text, chunks and version stay as they were.
- Aliases live in a fourth collection, ``<prefix>_aliases``: a point per note
  that has any (id = document id), its BM25 sparse vector, its first chunk's id,
  tags and ``dirs``; it is rewritten from the commit record like the documents.
- Durability is Qdrant's: a server acknowledges a write (``wait=True``) after its
  write-ahead log holds it; local mode commits each point to SQLite; the edge
  engine returns from a write once the shard's write-ahead log holds it.
- Not given: readers in another process racing a commit may see the batch's
  documents appear one by one (each whole); the writer lock is a file lock in
  local mode and a per-process lock by URL, so writers on several machines must
  be one at a time by other means (one ingest driver).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import DocumentNotFoundError, EmbeddingMismatchError, WriteLockTimeoutError
from .integrity import CheckReport
from .locking import write_lock
from .qdrant_lexical import document_sparse, query_sparse
from .qdrant_store import QdrantStore, chunk_payload, dirs_of, document_payload, meta_payload
from .records import (Backlink, ChunkRecord, Collection, Counts, Document, DocumentInfo, DocumentRecord, DocumentSummary,
                      EmbeddingInfo, Filter, IndexState, Known, LinkOut, NoteLinks, StoredChunk)
from .store import STOP_WORDS  # the stop words both backends' BM25 leaves out
from .vault import name_key, named_notes, resolve

INFO_FIELDS = ("source", "title", "kind", "mtime", "size", "content_hash", "chunker", "tags", "added_at", "collection", "path")
LINK_FIELDS = ("aliases", "line_offset")  # absent from documents stored before links (read as none)
KNOWN_FIELDS = ("source", "collection", "path", "mtime", "size", "stamp", "content_hash", "chunker")
ALIAS_AVG_LEN = 2.0  # BM25's average length, in words, of a note's aliases
CHUNK_FIELDS = ("doc_id", "source", "title", "idx", "start", "end", "token_count", "headings", "text", "tags")


class QdrantBackend:
    """``Backend`` on Qdrant: ``url`` (with ``api_key``) for a server or cluster,
    else ``path``, a folder for qdrant-client's local mode (``":memory:"``: none), or with
    ``engine="edge"`` for Qdrant's engine in process. ``prefix`` names the
    collections; ``lexical_avg_len`` is BM25's average chunk length in words."""

    def __init__(self, *, url: str | None = None, api_key: str | None = None, path: str | Path | None = None,
                 prefix: str = "noteloom", timeout: float = 30.0, lexical_avg_len: float = 100.0,
                 engine: str = "client") -> None:
        self.store = QdrantStore(url=url, api_key=api_key, path=path, prefix=prefix, timeout=timeout, engine=engine)
        self.path = None if url is not None or self.store.memory else Path(path)  # local mode's folder
        self.lexical_avg_len = lexical_avg_len
        self.notices: list[str] = []
        if self.path is not None:
            with contextlib.suppress(BlockingIOError), write_lock(self.path, blocking=False):
                self.store.recover()  # a killed writer's batch, rolled back or forward

    # --- writes -----------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, timeout: float | None, *, embedding_model: str) -> Iterator["QdrantSession"]:
        with self._writer_lock(timeout):
            self.store.recover()
            yield QdrantSession(self, embedding_model)

    def add_collection(self, name: str, root: str | None) -> Collection:
        if name not in self.collections():
            self.store.put_meta(("collection", name), {"name": name, "root": root})
        return Collection(name, root)

    def set_collection_root(self, name: str, root: str) -> Collection:
        if name in self.collections():
            self.store.put_meta(("collection", name), {"name": name, "root": root})
        return Collection(name, root)

    # --- what ingest compares -------------------------------------------------

    def known(self) -> dict[str, Known]:
        return {p["source"]: _known(p) for p in self.store.documents_payload(KNOWN_FIELDS + ("meta_hash",))}

    def known_source(self, source: str) -> Known | None:
        found = self.store.documents_payload(KNOWN_FIELDS + ("meta_hash",), source=source)
        return _known(found[0]) if found else None

    def collections(self) -> dict[str, Collection]:
        return {v["name"]: Collection(v["name"], v["root"]) for v in self.store.meta_of_kind("collection")}

    def get_meta(self, key: str) -> Any:
        return self.store.get_meta(("meta", key))

    def embedding(self) -> EmbeddingInfo | None:
        recorded = self.get_meta("embedding")
        return EmbeddingInfo(recorded["model"], int(recorded["dim"])) if recorded else None

    # --- search -----------------------------------------------------------------

    def vector_search(self, vector: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        query = np.asarray(vector, dtype=np.float32).tolist()
        return self.store.search("dense", query, k, self._where(where))

    def lexical_search(self, text: str, k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        """BM25 over chunk text; a note whose aliases match gets their BM25 score added to
        its first chunk, which joins the hits if it was not among them."""
        query = query_sparse(text)
        if not query.indices:
            return []
        allowed = self._where(where)
        hits = self.store.search("lexical", query, k, allowed)
        named = self.store.alias_search(query, k, allowed)
        if not named:
            return hits
        shown = self.store.visible_chunks([chunk for chunk, _ in named], ("doc_id",))
        scores = dict(hits)
        for chunk, score in named:
            if chunk in shown:
                scores[chunk] = scores.get(chunk, 0.0) + score
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]

    def named_search(self, text: str, k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        doc_ids, rest = named_notes(text, self.store.documents_named, STOP_WORDS)
        query = query_sparse(rest) if doc_ids else None
        if query is None or not query.indices:
            return []
        return self.store.search("lexical", query, k, self.store.within_documents(self._where(where), doc_ids))

    def hybrid_search(self, text: str, vector: np.ndarray, k: int, where: Filter | None = None) -> list[tuple[int, float]]:
        """Both searches fused by Qdrant (its reciprocal rank fusion), in one request.
        Not part of ``Backend``: measured against noteloom's own fusion (see the README)."""
        dense = np.asarray(vector, dtype=np.float32).tolist()
        return self.store.fused(dense, query_sparse(text), k, self._where(where))

    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        rows = self.store.visible_chunks(list(ids), CHUNK_FIELDS)
        return {cid: StoredChunk(cid, p["doc_id"], p["source"], p["title"], p["idx"], p["start"], p["end"],
                                 p["token_count"], p["headings"], p["text"], p["tags"]) for cid, p in rows.items()}

    # --- documents and status ---------------------------------------------------

    def document(self, doc_id: int, *, with_text: bool = True) -> DocumentInfo:
        fields = INFO_FIELDS + LINK_FIELDS + (("text",) if with_text else ())
        payload = self.store.document_payload(doc_id, fields)
        if payload is None:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        return _info(Document, doc_id, payload, payload["text"]) if with_text else _info(DocumentInfo, doc_id, payload)

    def documents(self, *, limit: int = 1000, offset: int = 0) -> list[DocumentSummary]:
        ordered = sorted(self.store.documents_payload(("source",), with_ids=True), key=lambda p: p["source"])
        page = [p["id"] for p in ordered[offset: offset + limit]]
        payloads = self.store.documents_by_id(page, INFO_FIELDS + LINK_FIELDS + ("chunks",))
        return [_info(DocumentSummary, i, payloads[i], payloads[i]["chunks"]) for i in page if i in payloads]

    def links(self, doc_id: int) -> NoteLinks:
        """The document's links resolved by ``vault.resolve`` within its collection, and
        the links to it (by source, then in text order)."""
        doc = self.store.document_payload(doc_id, ("collection", "path", "source", "text", "links"))
        if doc is None:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        opened = _Resolver(self.store, doc_id, doc["source"], doc["collection"])
        out = [LinkOut(l["start"], l["end"], doc["text"][l["start"]:l["end"]], l["target"], l["heading"], l["raw"],
                       l["embed"], *opened(l["target"])) for l in doc.get("links", [])]
        own = name_key(doc["path"])
        linking = self.store.documents_payload(("source", "title", "text", "links"), with_ids=True,
                                               match={"collection": doc["collection"], "link_names": own})
        back = [Backlink(p["id"], p["source"], p["title"], l["start"], l["end"], p["text"][l["start"]:l["end"]])
                for p in sorted(linking, key=lambda p: p["source"]) if p["id"] != doc_id
                for l in p["links"] if name_key(l["target"]) == own and opened(l["target"])[0] == doc_id]
        return NoteLinks(out, back)

    def chunk_count(self, doc_id: int) -> int:
        payload = self.store.document_payload(doc_id, ("chunks",))
        return payload["chunks"] if payload else 0

    def counts(self) -> Counts:
        return Counts(*self.store.counts())

    def index_state(self) -> IndexState:
        generation = self.get_meta("data_generation")
        return IndexState("qdrant", self.store.counts()[1], self.store.chunks_name, generation, True)

    def warm(self) -> None:
        self.store.counts()

    def check(self) -> CheckReport:
        """Every chunk shown belongs to its document's version and slices its text;
        each document has the chunks it counts; no batch is left half done."""
        return self.store.check()

    def close(self) -> None:
        self.store.close()

    # --- internals --------------------------------------------------------------

    def _where(self, where: Filter | None):
        if where is None or (where.source_prefix is None and not where.tags):
            return None
        return self.store.payload_filter(where.source_prefix, where.tags)

    @contextlib.contextmanager
    def _writer_lock(self, timeout: float | None) -> Iterator[None]:
        if self.path is not None:
            with write_lock(self.path, timeout=timeout):
                yield
            return
        lock = _process_lock(self.store.identity)
        if not lock.acquire(timeout=-1 if timeout is None else timeout):
            raise WriteLockTimeoutError(f"another writer in this process has held {self.store.identity} for over "
                                        f"{timeout:g} s; nothing was written, try again later")
        try:
            yield
        finally:
            lock.release()


class QdrantSession:
    """A ``WriteSession`` on Qdrant: each call follows the module docstring's order."""

    def __init__(self, backend: QdrantBackend, embedding_model: str) -> None:
        self.backend = backend
        self.store = backend.store
        self.embedding_model = embedding_model

    def put(self, batch: Sequence[tuple[DocumentRecord, Sequence[ChunkRecord]]]) -> None:
        if not batch:
            return
        self._check_dimensions(batch)
        avg_len = self.backend.lexical_avg_len
        docs, points = [], []
        added_at = time.time()
        aliases = []
        for doc, chunks in batch:
            version = _version(doc, chunks)
            docs.append(document_payload(doc, version, len(chunks), added_at))
            dirs = dirs_of(doc.source)
            points += [(c.id, np.asarray(c.vector, dtype=np.float32).tolist(), document_sparse(c.text, avg_len),
                        chunk_payload(doc, c, version, dirs)) for c in chunks]
            first = next((c.id for c in chunks if c.idx == 0), None)
            alias = _alias_point(doc, first)
            if alias is not None:
                aliases.append(alias)
        self.store.write_batch(docs, points, [], aliases)

    def touch(self, doc_id: int, mtime: float | None, size: int | None, stamp: str | None = None, *,
              meta: DocumentRecord | None = None) -> None:
        identity = {"mtime": mtime, "size": size, "stamp": stamp}
        if meta is None:
            self.store.set_document_fields(doc_id, identity)
            return
        if meta.id != doc_id:
            raise ValueError(f"touch of document {doc_id} given the metadata of {meta.source!r} ({meta.id})")
        stored = self.store.document_payload(doc_id, ("version",))
        if stored is None:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        alias = _alias_point(meta, self.store.first_chunk(doc_id, stored["version"]))
        chunk_fields = {"title": meta.title, "tags": list(meta.tags)}  # what chunks copy of their document
        self.store.write_meta(doc_id, {**identity, **meta_payload(meta)}, chunk_fields, alias)

    def delete(self, doc_id: int) -> None:
        if self.store.document_payload(doc_id, ("source",)) is None:
            raise DocumentNotFoundError(f"no document with id {doc_id}")
        self.store.write_batch([], [], [doc_id])

    def set_meta(self, key: str, value: Any) -> None:
        self.store.put_meta(("meta", key), value)

    def _check_dimensions(self, batch) -> None:
        """Refuse a batch before writing anything; record the model with the first vectors."""
        dims = {len(c.vector) for _, chunks in batch for c in chunks}
        if len(dims) > 1:
            raise EmbeddingMismatchError(f"vectors of one batch have different dimensions: {sorted(dims)}")
        if not dims:
            return
        (dim,) = dims
        recorded = self.backend.embedding()
        if recorded is None:
            self.store.ensure_chunks(dim)
            self.store.put_meta(("meta", "embedding"), {"model": self.embedding_model, "dim": dim})
        elif recorded.dim != dim:
            raise EmbeddingMismatchError(f"vectors have {dim} dimensions, the store holds {recorded.dim}")


def _version(doc: DocumentRecord, chunks: Sequence[ChunkRecord]) -> str:
    """Same content and chunks, same version: writing a document again changes nothing."""
    parts = [doc.id, doc.content_hash, *sorted(c.id for c in chunks)]
    return hashlib.blake2b(json.dumps(parts).encode(), digest_size=12).hexdigest()


# Fields are read with .get: local mode's set_payload drops a field set to None (a touched stamp, say).
def _known(p: dict[str, Any]) -> Known:
    return Known(*(p.get(f) for f in KNOWN_FIELDS), meta_hash=p.get("meta_hash"))


def _info(cls: type, doc_id: int, p: dict[str, Any], *extra: Any):
    return cls(doc_id, *(p.get(f) for f in INFO_FIELDS), *extra,
               aliases=p.get("aliases", []), line_offset=p.get("line_offset", 0))


def _alias_point(doc: DocumentRecord, first_chunk: int | None) -> tuple | None:
    """A note's aliases as one BM25 document whose score goes to its first chunk; None without either."""
    if not doc.aliases or first_chunk is None:
        return None
    payload = {"doc_id": doc.id, "first": first_chunk, "tags": list(doc.tags), "dirs": dirs_of(doc.source)}
    return doc.id, document_sparse("\n".join(doc.aliases), ALIAS_AVG_LEN), payload


class _Resolver:
    """Which document (id, source) a link target opens in one collection, by ``vault.resolve``
    over the documents sharing its name key (fetched once per key)."""

    def __init__(self, store: QdrantStore, doc_id: int, source: str, collection: str) -> None:
        self.store, self.doc_id, self.source, self.collection = store, doc_id, source, collection
        self.named: dict[str, dict[int, tuple[str, str]]] = {}  # name key -> {id: (path, source)}

    def __call__(self, target: str) -> tuple[int | None, str | None]:
        if not target:
            return self.doc_id, self.source  # a link within the note
        key = name_key(target)
        if key not in self.named:
            found = self.store.documents_payload(("path", "source"), with_ids=True,
                                                 match={"collection": self.collection, "link_name": key})
            self.named[key] = {p["id"]: (p["path"], p["source"]) for p in found}
        opens = resolve(target, ((i, path) for i, (path, _) in self.named[key].items()))
        return opens, self.named[key][opens][1] if opens is not None else None


_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(identity: str) -> threading.Lock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(identity, threading.Lock())

