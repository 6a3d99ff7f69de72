"""Qdrant's own engine in process (``qdrant-edge-py``), behind the few
qdrant-client calls ``qdrant_store`` makes: the store keeps building
qdrant-client's models, and this adapter turns them into edge requests.

A collection is one edge shard (segments and a write-ahead log) in
``<folder>/edge/<collection>``. Each update is in the shard's WAL when
``update`` returns, so what was acknowledged is replayed at the next open after
a kill -9 of the process. A folder is one process's at a time (a lock file,
besides each WAL's own lock).
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

EDGE_DIR = "edge"  # beside nothing of qdrant-client's local mode (its meta.json and collection/)
LOCK_NAME = "edge.lock"
NO_VECTORS = "none"  # a shard needs one vector kind: collections without vectors get this unused sparse one
RRF_K = 2  # the reciprocal rank fusion constant of Qdrant and of qdrant-client's local mode


def _edge():
    try:
        import qdrant_edge
    except ImportError as exc:
        from runtime import MissingDependencyError

        raise MissingDependencyError("qdrant-edge-py", "the Qdrant edge engine", "qdrant") from exc
    return qdrant_edge


def holds_edge_data(folder: str | Path) -> bool:
    return (Path(folder) / EDGE_DIR).is_dir()


def holds_client_data(folder: str | Path) -> bool:
    """Whether qdrant-client's local mode has written ``folder`` (its ``meta.json``)."""
    return (Path(folder) / "meta.json").is_file()


class Count:
    def __init__(self, count: int) -> None:
        self.count = count


class Found:
    def __init__(self, points: list) -> None:
        self.points = points


class EdgeClient:
    """The qdrant-client methods ``QdrantStore`` calls, on edge shards in ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.q = _edge()
        self.root = Path(folder) / EDGE_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(Path(folder) / LOCK_NAME, "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(f"{folder} is locked by another process's Qdrant edge engine") from None
        self.shards: dict[str, Any] = {}

    # --- collections ------------------------------------------------------------

    def _shard(self, name: str):
        shard = self.shards.get(name)
        if shard is None:
            shard = self.shards[name] = self.q.EdgeShard.load(str(self.root / name))
        return shard

    def collection_exists(self, name: str) -> bool:
        return name in self.shards or (self.root / name / "edge_config.json").is_file()

    def create_collection(self, name: str, vectors_config: dict, sparse_vectors_config: dict | None = None,
                          on_disk_payload: bool | None = None) -> None:
        q = self.q
        dense = {n: q.EdgeVectorParams(size=p.size, distance=getattr(q.Distance, p.distance.value))
                 for n, p in vectors_config.items()}  # qdrant-client's "Cosine" names edge's Distance.Cosine
        sparse = {n: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf if p.modifier else None)
                  for n, p in (sparse_vectors_config or {}).items()}
        if not dense and not sparse:
            sparse = {NO_VECTORS: q.EdgeSparseVectorParams()}
        config = q.EdgeConfig(vectors=dense or None, sparse_vectors=sparse or None,
                              payload_memory=q.Memory.Cold if on_disk_payload else q.Memory.Cached)
        self.shards[name] = q.EdgeShard.create(str(self.root / name), config)

    def create_payload_index(self, collection: str, field_name: str, field_schema: str) -> None:
        kind = {"keyword": self.q.PayloadSchemaType.Keyword, "integer": self.q.PayloadSchemaType.Integer}[field_schema]
        self._update(collection, self.q.UpdateOperation.create_field_index(field_name, kind))

    # --- writes -------------------------------------------------------------------

    def _update(self, collection: str, operation) -> None:
        self._shard(collection).update(operation)

    def upsert(self, collection: str, points: list, wait: bool = True) -> None:
        q = self.q
        edge = [q.Point(p.id, {n: self._vector(v) for n, v in p.vector.items()}, p.payload) for p in points]
        self._update(collection, q.UpdateOperation.upsert_points(edge))

    def set_payload(self, collection: str, payload: dict, points: Any, wait: bool = True) -> None:
        op = self.q.UpdateOperation
        if isinstance(points, list):
            self._update(collection, op.set_payload(points, payload))
        else:
            self._update(collection, op.set_payload_by_filter(self._filter(points), payload))

    def delete(self, collection: str, points_selector: Any, wait: bool = True) -> None:
        op = self.q.UpdateOperation
        if hasattr(points_selector, "filter"):  # a FilterSelector, else a PointIdsList
            self._update(collection, op.delete_points_by_filter(self._filter(points_selector.filter)))
        else:
            self._update(collection, op.delete_points(list(points_selector.points)))

    # --- reads ----------------------------------------------------------------------

    def retrieve(self, collection: str, ids: list, with_payload: Any = True) -> list:
        return self._shard(collection).retrieve(list(ids), with_payload, False)

    def scroll(self, collection: str, scroll_filter: Any = None, limit: int = 10, offset: Any = None,
               with_payload: Any = True, with_vectors: bool = False) -> tuple[list, Any]:
        request = self.q.ScrollRequest(offset=offset, limit=limit, filter=self._filter(scroll_filter),
                                       with_payload=with_payload, with_vector=with_vectors)
        return self._shard(collection).scroll(request)

    def count(self, collection: str, exact: bool = True) -> Count:
        return Count(self._shard(collection).count(self.q.CountRequest(exact=exact)))

    def query_points(self, collection: str, query: Any = None, using: str | None = None, prefetch: list | None = None,
                     limit: int = 10, query_filter: Any = None, with_payload: Any = True) -> Found:
        q = self.q
        if prefetch:  # a FusionQuery over the prefetches: the only fusion the store asks for
            stages = [q.Prefetch(p.limit, query=q.Query.Nearest(self._vector(p.query), using=p.using),
                                 filter=self._filter(p.filter)) for p in prefetch]
            request = q.QueryRequest(limit, prefetches=stages, query=q.Fusion.Rrf(k=RRF_K), with_payload=with_payload,
                                     filter=self._filter(query_filter))
        else:
            request = q.QueryRequest(limit, query=q.Query.Nearest(self._vector(query), using=using),
                                     filter=self._filter(query_filter), with_payload=with_payload)
        return Found(self._shard(collection).query(request))

    # --- model conversion -------------------------------------------------------------

    def _vector(self, v: Any):
        return self.q.SparseVector(list(v.indices), list(v.values)) if hasattr(v, "indices") else v

    def _filter(self, f: Any):
        """A qdrant-client Filter (nested filters, field conditions matching a value or any of several) as edge's."""
        if f is None:
            return None
        q = self.q
        if hasattr(f, "key"):
            m = f.match
            match = q.MatchAny(list(m.any)) if hasattr(m, "any") else q.MatchValue(m.value)
            return q.FieldCondition(f.key, match=match)
        parts = {}
        for part in ("must", "should", "must_not"):
            conditions = getattr(f, part)
            if conditions is not None:
                conditions = conditions if isinstance(conditions, list) else [conditions]
                parts[part] = [self._filter(c) for c in conditions]
        return q.Filter(**parts)

    # --- lifetime -------------------------------------------------------------------

    def flush(self) -> None:
        for shard in self.shards.values():
            shard.flush()

    def close(self) -> None:
        """Flush and close every shard, then free the folder."""
        try:
            for shard in self.shards.values():
                shard.flush()
                shard.close()
        finally:
            self.shards.clear()
            if not self._lock.closed:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
