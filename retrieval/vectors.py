"""FAISS vectors keyed by chunk id, persisted as versioned, checksummed files.

The kind follows the collection size: exact inner-product search (``flat``) up to
``FLAT_LIMIT`` vectors, above it an IVF index (``ivf``), which is approximate
but, unlike HNSW, supports deleting ids. Vectors are L2-normalised, so inner
product is cosine similarity.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import IndexCorruptError

FLAT_LIMIT = 20_000
IVF_NPROBE = 16


def _faiss():
    from runtime import MissingDependencyError, cpu_threads

    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError("faiss-cpu", "the vector index", "rag") from exc

    faiss.omp_set_num_threads(cpu_threads())
    return faiss


def kind_for(count: int) -> str:
    return "flat" if count <= FLAT_LIMIT else "ivf"


class VectorIndex:
    def __init__(self, index, kind: str, dim: int) -> None:
        self.index = index
        self.kind = kind
        self.dim = dim

    @classmethod
    def empty(cls, dim: int, kind: str = "flat", training: np.ndarray | None = None) -> "VectorIndex":
        faiss = _faiss()
        if kind == "flat":
            return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), kind, dim)
        assert training is not None and len(training) > 0, "an IVF index needs training vectors"
        nlist = max(16, int(4 * math.sqrt(len(training))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = training if len(training) <= nlist * 64 else training[np.random.default_rng(0).choice(len(training), nlist * 64, replace=False)]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.nprobe = IVF_NPROBE
        return cls(index, kind, dim)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int) -> "VectorIndex":
        built = cls.empty(dim, kind_for(len(ids)), vectors)
        if len(ids):
            built.add(ids, vectors)
        return built

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> list[int]:
        """The ids held, for a flat index (an IVF index keeps them in its lists)."""
        if self.kind != "flat":
            raise ValueError("ids() reads a flat index only")
        return _faiss().vector_to_array(self.index.id_map).tolist()

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            faiss = _faiss()
            self.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))

    def search(self, query: np.ndarray, k: int, allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
        if self.count == 0 or k <= 0:
            return []
        faiss = _faiss()
        params = None
        if allowed is not None:
            if not len(allowed):
                return []
            selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            params = faiss.SearchParametersIVF(sel=selector, nprobe=IVF_NPROBE) if self.kind == "ivf" else faiss.SearchParameters(sel=selector)
        scores, ids = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), min(k, self.count), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    # --- files --------------------------------------------------------------

    def save(self, path: Path) -> str:
        """Write to ``path`` durably (temp file, fsync, rename); return its sha256."""
        faiss = _faiss()
        data = faiss.serialize_index(self.index).tobytes()
        tmp = path.with_suffix(path.suffix + ".tmp")
        try:
            write_durably(tmp, data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a full disk or any other failure leaves no temp file behind
            raise
        _fsync_dir(path.parent)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: Path, checksum: str, kind: str, dim: int) -> "VectorIndex":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IndexCorruptError(f"index file {path.name} cannot be read: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != checksum:
            raise IndexCorruptError(f"index file {path.name} does not match its checksum (corrupt or truncated)")
        faiss = _faiss()
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if index.d != dim:
            raise IndexCorruptError(f"index file {path.name} has dimension {index.d}, expected {dim}")
        if kind == "ivf":
            faiss.extract_index_ivf(index).nprobe = IVF_NPROBE
        return cls(index, kind, dim)


def write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
