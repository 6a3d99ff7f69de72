"""The one module that talks to qdrant-client (imported on first use): points,
payload filters, the batch protocol of ``qdrant_backend`` and its recovery. With
``engine="edge"`` the same calls reach Qdrant's engine in process (``qdrant_edge``)."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .errors import StorageError
from .integrity import CheckReport
from .qdrant_lexical import Sparse
from .records import ChunkRecord, DocumentRecord, stable_id
from .vault import name_key

UPSERT_BATCH = 256  # points per upsert request
SCROLL_PAGE = 1024
CHECK_PROBLEMS = 20  # problems listed by check()
PENDING = ("pending", "batch")
NOTHING = object()  # a filter no chunk passes
MEMORY = ":memory:"  # local mode without a folder: gone when closed
ENGINES = ("client", "edge")  # how a folder is opened: qdrant-client's local mode, or qdrant-edge-py


def dirs_of(source: str) -> list[str]:
    """``a/b/c.md`` -> ``["a/", "a/b/"]``: the prefixes a source-prefix filter matches by index."""
    parts = source.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def document_payload(doc: DocumentRecord, version: str, chunks: int, added_at: float) -> dict[str, Any]:
    return {"id": doc.id, "source": doc.source, "collection": doc.collection, "path": doc.path or doc.source,
            "stamp": doc.stamp, "title": doc.title, "kind": doc.kind, "mtime": doc.mtime, "size": doc.size,
            "content_hash": doc.content_hash, "chunker": doc.chunker, "tags": list(doc.tags), "text": doc.text,
            "added_at": added_at, "dirs": dirs_of(doc.source), "version": version, "chunks": chunks, **meta_payload(doc)}


def meta_payload(doc: DocumentRecord) -> dict[str, Any]:
    """What ``touch(..., meta=)`` replaces; ``link_name``/``link_names`` are the name keys
    (``vault.name_key``) of the document and of its link targets, which find backlinks."""
    return {"title": doc.title, "kind": doc.kind, "tags": list(doc.tags), "aliases": list(doc.aliases),
            "links": [l.to_dict() for l in doc.links], "line_offset": doc.line_offset, "meta_hash": doc.meta_hash,
            "link_name": name_key(doc.path or doc.source),
            "link_names": sorted({name_key(l.target) for l in doc.links if l.target})}


def chunk_payload(doc: DocumentRecord, c: ChunkRecord, version: str, dirs: list[str]) -> dict[str, Any]:
    return {"doc_id": doc.id, "source": doc.source, "title": doc.title, "tags": list(doc.tags), "dirs": dirs,
            "idx": c.idx, "start": c.start, "end": c.end, "token_count": c.token_count, "headings": list(c.headings),
            "text": c.text, "version": version}


def _alias_rows(aliases: Iterable[tuple]) -> list[list]:
    """Alias points as the commit record holds them (JSON)."""
    return [[doc_id, sparse.indices, sparse.values, payload] for doc_id, sparse, payload in aliases]


def _qdrant():
    try:
        from qdrant_client import QdrantClient, models
    except ImportError as exc:
        from runtime import MissingDependencyError

        raise MissingDependencyError("qdrant-client", "the Qdrant backend", "qdrant") from exc
    return QdrantClient, models


class _Shared:
    """One client per folder in a process (both engines lock the folder against a
    second one), its calls one at a time (local mode has no locks of its own)."""

    clients: dict[tuple[str, str], "_Shared"] = {}  # by (folder, engine)
    guard = threading.Lock()

    def __init__(self, client: Any, lock: Any) -> None:
        self.client, self.lock, self.users = client, lock, 0


class QdrantStore:
    def __init__(self, *, url: str | None, api_key: str | None, path: str | Path | None, prefix: str,
                 timeout: float, engine: str = "client") -> None:
        QdrantClient, self.m = _qdrant()
        if (url is None) == (path is None):
            raise ValueError("give the Qdrant backend either url (a server) or path (local mode), not both or neither")
        if not prefix.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"Qdrant collection prefix must be letters, digits, '-' or '_', got {prefix!r}")
        if engine not in ENGINES:
            raise ValueError(f"Qdrant engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if engine == "edge" and (url is not None or str(path) == MEMORY):
            raise ValueError("the Qdrant edge engine opens a folder: give path (not url, not ':memory:')")
        self.memory = str(path) == MEMORY
        self.identity = url or (f"{MEMORY}{id(self)}" if self.memory else str(Path(path).resolve()))
        self.local = url is None  # a folder (or memory) of this process, one client shared in it
        self.engine = engine
        self.indexed = not (self.local and engine == "client")  # local mode has no payload indexes
        self.chunks_name, self.docs_name, self.meta_name, self.aliases_name = (
            f"{prefix}_{n}" for n in ("chunks", "documents", "meta", "aliases"))
        with _Shared.guard:
            shared = _Shared.clients.get((self.identity, engine)) if self.local else None
            if shared is None:
                shared = _Shared(self._connect(QdrantClient, url, api_key, path, timeout),
                                 threading.RLock() if self.local else contextlib.nullcontext())
                if self.local:
                    _Shared.clients[(self.identity, engine)] = shared
            shared.users += 1
        self.shared = shared
        self._chunks_ready = False
        try:
            for name in (self.docs_name, self.meta_name):
                if not self._call("collection_exists", name):
                    self._call("create_collection", name, vectors_config={})
            if not self._call("collection_exists", self.aliases_name):  # a note's aliases, BM25 like chunks
                self._call("create_collection", self.aliases_name, vectors_config={},
                           sparse_vectors_config={"lexical": self.m.SparseVectorParams(modifier=self.m.Modifier.IDF)})
            if self.indexed:
                self._index(self.docs_name, {"source": "keyword", "dirs": "keyword", "collection": "keyword",
                                             "link_name": "keyword", "link_names": "keyword"})
                self._index(self.aliases_name, {"doc_id": "integer", "tags": "keyword", "dirs": "keyword"})
        except BaseException:
            self.close()
            raise

    def _connect(self, QdrantClient, url, api_key, path, timeout):
        from . import qdrant_edge

        if path is not None and not self.memory:
            other = qdrant_edge.holds_client_data(path) if self.engine == "edge" else qdrant_edge.holds_edge_data(path)
            if other:
                raise StorageError(f"Qdrant folder {path} holds the other engine's data than {self.engine!r} "
                                   f"(engines: {', '.join(ENGINES)}): open it with that one")
        try:
            if url is not None:
                return QdrantClient(url=url, api_key=api_key or None, timeout=int(timeout))
            if self.memory:
                return QdrantClient(location=MEMORY)
            Path(path).mkdir(parents=True, exist_ok=True)
            if self.engine == "edge":
                return qdrant_edge.EdgeClient(path)
            return QdrantClient(path=str(path))
        except RuntimeError as exc:  # the folder is held by another process
            mode = "the edge engine" if self.engine == "edge" else "local mode"
            raise StorageError(f"Qdrant local folder {path} is in use by another process ({exc}); {mode} is "
                               "one process at a time: use a Qdrant server for more") from None

    def _call(self, method: str, *args, **kwargs):
        with self.shared.lock:
            try:
                return getattr(self.shared.client, method)(*args, **kwargs)
            except Exception as exc:
                if not self.indexed:  # qdrant-client's local mode: its own Python errors
                    raise
                # unreachable server, refused key, rejected request: one line that names the server
                raise StorageError(f"Qdrant at {self.identity}: {method} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc

    def _index(self, collection: str, fields: dict[str, str]) -> None:
        for name, kind in fields.items():
            self._call("create_payload_index", collection, name, field_schema=kind)

    def close(self) -> None:
        with _Shared.guard:
            self.shared.users -= 1
            if self.shared.users == 0:
                self.shared.client.close()
                _Shared.clients.pop((self.identity, self.engine), None)

    # --- meta -----------------------------------------------------------------

    def put_meta(self, key: tuple[str, str], value: Any) -> None:
        payload = {"kind": key[0], "name": key[1], "value": json.dumps(value)}
        self._call("upsert", self.meta_name, [self.m.PointStruct(id=stable_id(*key), vector={}, payload=payload)], wait=True)

    def get_meta(self, key: tuple[str, str]) -> Any:
        found = self._call("retrieve", self.meta_name, [stable_id(*key)], with_payload=True)
        return json.loads(found[0].payload["value"]) if found else None

    def meta_of_kind(self, kind: str) -> list[Any]:
        where = self.m.Filter(must=[self._match("kind", kind)])
        return [json.loads(p["value"]) for _, p in self._scroll(self.meta_name, ["value"], where)]

    # --- documents --------------------------------------------------------------

    def documents_payload(self, fields: Sequence[str], *, source: str | None = None, with_ids: bool = False,
                          match: dict[str, Any] | None = None) -> list[dict]:
        """Documents whose payload has each of ``match``'s values (for a list field: among its items)."""
        match = {**(match or {}), **({"source": source} if source is not None else {})}
        where = self.m.Filter(must=[self._match(k, v) for k, v in match.items()]) if match else None
        return [{**p, "id": i} if with_ids else p for i, p in self._scroll(self.docs_name, list(fields), where)]

    def documents_named(self, keys: Sequence[str]) -> list[tuple[str, int]]:
        """(name key, id) of the documents whose ``link_name`` is one of ``keys``."""
        if not keys:
            return []
        where = self.m.Filter(must=[self.m.FieldCondition(key="link_name", match=self.m.MatchAny(any=list(keys)))])
        return [(p["link_name"], i) for i, p in self._scroll(self.docs_name, ["link_name"], where)]

    def within_documents(self, where: Any, doc_ids: Sequence[int]) -> Any:
        """``where`` (a filter, None or NOTHING) narrowed to the chunks of ``doc_ids``."""
        if where is NOTHING:
            return NOTHING
        within = self.m.FieldCondition(key="doc_id", match=self.m.MatchAny(any=list(doc_ids)))
        if where is None:
            return self.m.Filter(must=[within])
        return self.m.Filter(must=[*(where.must or []), within], should=where.should, must_not=where.must_not)

    def document_payload(self, doc_id: int, fields: Sequence[str]) -> dict | None:
        return self.documents_by_id([doc_id], fields).get(doc_id)

    def documents_by_id(self, ids: Sequence[int], fields: Sequence[str]) -> dict[int, dict]:
        if not ids:
            return {}
        found = self._call("retrieve", self.docs_name, list(ids), with_payload=list(fields))
        return {p.id: p.payload for p in found}

    def set_document_fields(self, doc_id: int, fields: dict[str, Any]) -> None:
        self._call("set_payload", self.docs_name, payload=fields, points=[doc_id], wait=True)

    def counts(self) -> tuple[int, int]:
        docs = self._call("count", self.docs_name, exact=True).count
        return docs, self._call("count", self.chunks_name, exact=True).count if self._has_chunks() else 0

    # --- chunks and search ------------------------------------------------------

    def ensure_chunks(self, dim: int) -> None:
        if self._has_chunks():
            return
        m = self.m
        self._call("create_collection", self.chunks_name,
                   vectors_config={"dense": m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                   sparse_vectors_config={"lexical": m.SparseVectorParams(modifier=m.Modifier.IDF)},
                   on_disk_payload=self.indexed)  # chunk texts stay on the engine's disk, not in its RAM
        if self.indexed:
            self._index(self.chunks_name, {"doc_id": "integer", "tags": "keyword", "dirs": "keyword", "version": "keyword"})
        self._chunks_ready = True

    def _has_chunks(self) -> bool:
        if not self._chunks_ready:
            self._chunks_ready = self._call("collection_exists", self.chunks_name)
        return self._chunks_ready

    def search(self, using: str, query: Any, k: int, where: Any) -> list[tuple[int, float]]:
        if where is NOTHING or not self._has_chunks():
            return []
        if isinstance(query, Sparse):
            query = self.m.SparseVector(indices=query.indices, values=query.values)
        found = self._call("query_points", self.chunks_name, query=query, using=using, limit=k, query_filter=where,
                           with_payload=["doc_id", "version"]).points
        return self._visible_ranking(found)

    def alias_search(self, query: Sparse, k: int, where: Any) -> list[tuple[int, float]]:
        """(first chunk id, BM25 score of the note's aliases), best first; the chunk may be unseen."""
        if where is NOTHING:
            return []
        sparse = self.m.SparseVector(indices=query.indices, values=query.values)
        found = self._call("query_points", self.aliases_name, query=sparse, using="lexical", limit=k, query_filter=where,
                           with_payload=["first"]).points
        return [(p.payload["first"], float(p.score)) for p in found]

    def first_chunk(self, doc_id: int, version: str) -> int | None:
        """The id of the document's first chunk (idx 0) of ``version``."""
        if not self._has_chunks():
            return None
        where = self.m.Filter(must=[self._match("doc_id", doc_id), self._match("idx", 0), self._match("version", version)])
        page, _ = self._call("scroll", self.chunks_name, scroll_filter=where, limit=1, with_payload=False,
                             with_vectors=False)
        return page[0].id if page else None

    def fused(self, dense: list[float], sparse: Sparse, k: int, where: Any) -> list[tuple[int, float]]:
        if where is NOTHING or not self._has_chunks():
            return []
        m = self.m
        candidates = max(k * 4, 20)
        prefetch = [m.Prefetch(query=dense, using="dense", limit=candidates, filter=where)]
        if sparse.indices:
            prefetch.append(m.Prefetch(query=m.SparseVector(indices=sparse.indices, values=sparse.values),
                                       using="lexical", limit=candidates, filter=where))
        found = self._call("query_points", self.chunks_name, prefetch=prefetch, query=m.FusionQuery(fusion=m.Fusion.RRF),
                           limit=k, with_payload=["doc_id", "version"]).points
        return self._visible_ranking(found)

    def visible_chunks(self, ids: list[int], fields: Sequence[str]) -> dict[int, dict]:
        if not ids or not self._has_chunks():
            return {}
        found = self._call("retrieve", self.chunks_name, ids, with_payload=[*fields, "version"])
        current = self._versions({p.payload["doc_id"] for p in found})
        return {p.id: p.payload for p in found if current.get(p.payload["doc_id"]) == p.payload["version"]}

    def _visible_ranking(self, points) -> list[tuple[int, float]]:
        current = self._versions({p.payload["doc_id"] for p in points})
        return [(p.id, float(p.score)) for p in points if current.get(p.payload["doc_id"]) == p.payload["version"]]

    def _versions(self, doc_ids: Iterable[int]) -> dict[int, str]:
        return {i: p["version"] for i, p in self.documents_by_id(list(doc_ids), ("version",)).items()}

    def payload_filter(self, prefix: str | None, tags: Sequence[str]) -> Any:
        """Tags must all be there; a prefix ending in '/' is a folder (indexed), any
        other is resolved to the documents whose source starts with it."""
        must = [self._match("tags", tag) for tag in tags]
        if prefix and prefix.endswith("/"):
            must.append(self._match("dirs", prefix))
        elif prefix:
            folder = prefix[: prefix.rfind("/") + 1]
            where = self.m.Filter(must=[self._match("dirs", folder)]) if folder else None
            ids = [i for i, p in self._scroll(self.docs_name, ["source"], where) if p["source"].startswith(prefix)]
            if not ids:
                return NOTHING
            must.append(self.m.FieldCondition(key="doc_id", match=self.m.MatchAny(any=ids)))
        return self.m.Filter(must=must)

    def _match(self, key: str, value: Any):
        return self.m.FieldCondition(key=key, match=self.m.MatchValue(value=value))

    def _scroll(self, collection: str, fields: list[str], where: Any = None) -> Iterator[tuple[int, dict]]:
        offset = None
        while True:
            page, offset = self._call("scroll", collection, scroll_filter=where, limit=SCROLL_PAGE, offset=offset,
                                      with_payload=fields, with_vectors=False)
            yield from ((p.id, p.payload) for p in page)
            if offset is None:
                return

    # --- the batch protocol (see qdrant_backend) ----------------------------------

    def write_batch(self, docs: list[dict], points: list[tuple], deleted: list[int], aliases: Sequence[tuple] = ()) -> None:
        """Write ``docs`` with their chunk ``points`` (id, dense, sparse, payload) and
        remove the ``deleted`` documents, in the order that survives a kill. ``aliases``:
        (document id, sparse, payload) for those of ``docs`` that have aliases."""
        m = self.m
        ids = [d["id"] for d in docs] + deleted
        before = self._versions([d["id"] for d in docs])
        self.put_meta(PENDING, {"docs": ids, "commit": None})
        for i in range(0, len(points), UPSERT_BATCH):
            structs = [m.PointStruct(id=cid, vector={"dense": dense, "lexical": m.SparseVector(indices=s.indices, values=s.values)},
                                     payload=payload) for cid, dense, s, payload in points[i: i + UPSERT_BATCH]]
            self._call("upsert", self.chunks_name, structs, wait=True)
        new = {d["id"]: d["version"] for d in docs}
        replaced = {str(i): v for i, v in before.items() if v != new[i]}  # JSON keys are strings
        commit = {"upsert": docs, "delete": deleted, "replaced": replaced, "aliases": _alias_rows(aliases)}
        self.put_meta(PENDING, {"docs": ids, "commit": commit})  # the batch is committed from here on
        self._publish(commit)
        self._finish()

    def write_meta(self, doc_id: int, fields: dict[str, Any], chunk_fields: dict[str, Any], alias: tuple | None) -> None:
        """Replace a document's ``fields``, its chunks' ``chunk_fields`` and its alias point
        (None: none), text and chunks left alone: one commit record, rolled forward if killed."""
        commit = {"upsert": [], "delete": [], "replaced": {}, "set": [[doc_id, fields, chunk_fields]],
                  "aliases": _alias_rows([alias] if alias else [])}
        self.put_meta(PENDING, {"docs": [doc_id], "commit": commit})
        self._publish(commit)
        self._finish()

    def _publish(self, commit: dict) -> None:
        """Show the committed documents (and drop the deleted ones), then remove the chunks they replaced."""
        m = self.m
        for doc_id, fields, chunk_fields in commit.get("set", []):
            if self._has_chunks():
                self._call("set_payload", self.chunks_name, payload=chunk_fields, wait=True,
                           points=m.Filter(must=[self._match("doc_id", doc_id)]))
            self.set_document_fields(doc_id, fields)
        if commit["upsert"]:
            structs = [m.PointStruct(id=d["id"], vector={}, payload={k: v for k, v in d.items() if k != "id"})
                       for d in commit["upsert"]]
            self._call("upsert", self.docs_name, structs, wait=True)
        if commit["delete"]:
            self._call("delete", self.docs_name, m.PointIdsList(points=commit["delete"]), wait=True)
        stale = [m.Filter(must=[self._match("doc_id", int(i)), self._match("version", v)]) for i, v in commit["replaced"].items()]
        stale += [m.Filter(must=[self._match("doc_id", i)]) for i in commit["delete"]]
        self._delete_chunks(stale)
        self._publish_aliases(commit)

    def _publish_aliases(self, commit: dict) -> None:
        """Each written document's alias point replaced (or removed: no aliases), a deleted one's removed."""
        m = self.m
        rows = commit.get("aliases", [])
        if rows:
            self._call("upsert", self.aliases_name, [
                m.PointStruct(id=i, vector={"lexical": m.SparseVector(indices=idx, values=val)}, payload=payload)
                for i, idx, val, payload in rows], wait=True)
        written = [d["id"] for d in commit["upsert"]] + [s[0] for s in commit.get("set", [])]
        gone = sorted(set(written) - {r[0] for r in rows}) + commit["delete"]
        if gone:
            self._call("delete", self.aliases_name, m.PointIdsList(points=gone), wait=True)

    def _finish(self) -> None:
        self.put_meta(("meta", "data_generation"), (self.get_meta(("meta", "data_generation")) or 0) + 1)
        self._call("delete", self.meta_name, self.m.PointIdsList(points=[stable_id(*PENDING)]), wait=True)

    def _delete_chunks(self, any_of: list) -> None:
        if any_of and self._has_chunks():
            self._call("delete", self.chunks_name, self.m.FilterSelector(filter=self.m.Filter(should=any_of)), wait=True)

    def recover(self) -> None:
        """Finish or undo the batch a killed writer left: roll forward from its commit
        record, then delete every chunk of its documents that no document version shows."""
        pending = self.get_meta(PENDING)
        if pending is None:
            return
        if pending["commit"]:
            self._publish({**pending["commit"], "replaced": {}})
        current = self._versions(pending["docs"])
        self._delete_chunks([self.m.Filter(must=[self._match("doc_id", i)],
                                           must_not=[self._match("version", current[i])] if i in current else None)
                             for i in pending["docs"]])
        self._finish()

    # --- the full check -------------------------------------------------------------

    def check(self) -> CheckReport:
        report = CheckReport()
        docs = {i: p for i, p in self._scroll(self.docs_name, ["version", "chunks", "text"])}
        shown: dict[int, int] = {}
        chunks = self._scroll(self.chunks_name, ["doc_id", "version", "start", "end", "text"]) if self._has_chunks() else ()
        for cid, p in chunks:
            doc = docs.get(p["doc_id"])
            report.chunks += 1
            if doc is None or doc["version"] != p["version"]:
                report.problems.append(f"chunk {cid} belongs to no stored version of document {p['doc_id']}")
            elif doc["text"][p["start"]:p["end"]] != p["text"]:
                report.problems.append(f"chunk {cid} does not slice document {p['doc_id']} at {p['start']}:{p['end']}")
            else:
                shown[p["doc_id"]] = shown.get(p["doc_id"], 0) + 1
        report.documents = len(docs)
        report.problems += [f"document {i} has {shown.get(i, 0)} chunks, it counts {p['chunks']}"
                            for i, p in docs.items() if shown.get(i, 0) != p["chunks"]]
        report.problems += [f"alias point {i} belongs to no stored document" for i, _ in self._scroll(self.aliases_name, [])
                            if i not in docs]
        if self.get_meta(PENDING) is not None:
            report.problems.append("a write batch was left half done (the next writer finishes or undoes it)")
        del report.problems[CHECK_PROBLEMS:]
        return report
