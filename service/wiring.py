"""Library objects built from the settings: the one place where a setting is
passed to a library. Each argument that carries one is marked ``# <- name``.
Heavy libraries are imported inside the functions (``noteloom config`` loads
none of them)."""

from __future__ import annotations

import threading
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generic, TypeVar

from .settings import Settings, prepare_process

if TYPE_CHECKING:
    from imagegen import ClipSettings, DiffusersSettings
    from ingest import ChunkSettings
    from ingest.loaders import LoadLimits
    from ingest.ray_engine import RayEngine
    from ingest.watch import WatchOptions
    from retrieval import LLMConfig, Notebook

T = TypeVar("T")


def configure_runtime(s: Settings) -> None:
    """Process-wide settings of the model runtime, once, before any model loads
    (the CLI's and the server's entry call it)."""
    import runtime

    prepare_process(s)  # <- omp_wait_policy, before torch is imported
    runtime.configure(threads=s.threads, cache_dir=s.cache_dir)  # <- threads, cache_dir


def chunking(s: Settings, method: str | None = None, **params) -> "ChunkSettings":
    """How notes are chunked: ``method`` and its parameters (those not given: ``ingest.pipeline.DEFAULT_CHUNKING``)."""
    from ingest import ChunkSettings

    return ChunkSettings.for_notes(method, threads=s.encode_threads, **params)  # <- encode_threads


def load_limits(s: Settings) -> "LoadLimits":
    """What one document may cost to load: the ``max_*`` settings, one per field."""
    from ingest.loaders import LoadLimits

    return LoadLimits(**{f.name: getattr(s, f.name) for f in fields(LoadLimits)})  # <- max_file_bytes ... max_blank_run


def watch_options(s: Settings) -> "WatchOptions":
    from ingest.watch import WatchOptions

    return WatchOptions(debounce_ms=s.watch_debounce_ms, ignore=s.watch_ignore)  # <- watch_debounce_ms, watch_ignore


def ray_engine(s: Settings, address: str | None = None) -> "RayEngine":
    """Ingest on Ray; ``address`` (the command line's) wins over ``ray_address``."""
    from ingest.ray_engine import RayEngine

    engine = RayEngine(address or s.ray_address)  # <- ray_address
    engine.connect()  # a cluster that cannot be reached fails here, before any work
    return engine


def notebook(s: Settings, folder: str | Path | None = None) -> "Notebook":
    """The notebook in ``folder`` (default: the ``data_dir`` setting)."""
    import runtime
    from retrieval import Notebook

    folder = Path(folder if folder is not None else s.data_dir)  # <- data_dir
    # A new folder takes the embedding settings; an existing one keeps the model and backend it was built with.
    return Notebook(folder,
                    default_embedding_model=runtime.embedder_spec(s.embedding_model, s.embedding_backend),  # <- embedding_model, embedding_backend
                    llm=llm_endpoint(s), backend=storage_backend(s, folder),
                    lexical_weight=s.lexical_weight, min_relative_score=s.min_relative_score)  # <- lexical_weight, min_relative_score


def storage_backend(s: Settings, folder: Path):
    """None (the notebook's SQLite + FAISS in ``folder``), or Qdrant: by URL, else local mode."""
    if s.backend != "qdrant":  # <- backend
        return None
    from retrieval.qdrant_backend import QdrantBackend

    if s.qdrant_url:
        return QdrantBackend(url=s.qdrant_url, api_key=s.qdrant_api_key,  # <- qdrant_url, qdrant_api_key
                             prefix=s.qdrant_collection)  # <- qdrant_collection
    return QdrantBackend(path=Path(s.qdrant_path) if s.qdrant_path else folder / "qdrant",  # <- qdrant_path
                         prefix=s.qdrant_collection, engine=s.qdrant_engine)  # <- qdrant_collection, qdrant_engine


def llm_endpoint(s: Settings) -> "LLMConfig | None":
    """The chat endpoint for generated answers; None (off) when no URL is set."""
    from retrieval import LLMConfig

    if not s.llm_url:
        return None
    return LLMConfig(s.llm_url, s.llm_model, s.llm_key)  # <- llm_url, llm_model, llm_key


def diffusers_settings(s: Settings, model: str | None = None) -> "DiffusersSettings":
    """Stable Diffusion settings; ``model`` (the command line's) wins over ``sd_model``."""
    from imagegen import DiffusersSettings

    inversions = [(path, token or None) for path, _, token in (item.partition("=") for item in s.sd_textual_inversion)]
    return DiffusersSettings(
        model=model or s.sd_model,  # <- sd_model
        config=s.sd_config,  # <- sd_config
        device=s.device,  # <- device
        attention_slicing=s.attention_slicing,  # <- attention_slicing
        vae_slicing=s.vae_slicing,  # <- vae_slicing
        cpu_offload=s.cpu_offload,  # <- cpu_offload
        lora=list(s.sd_lora),  # <- sd_lora
        textual_inversion=inversions,  # <- sd_textual_inversion
        allow_downloads=s.allow_downloads,  # <- allow_downloads
    )


def clip_settings(s: Settings) -> "ClipSettings":
    from imagegen import ClipSettings

    return ClipSettings(
        model=s.clip_model,  # <- clip_model
        pretrained=s.clip_pretrained,  # <- clip_pretrained
        config_dir=s.clip_config_dir,  # <- clip_config_dir
        device=s.device,  # <- device
        allow_downloads=s.allow_downloads,  # <- allow_downloads
    )


def diffusers_backend(s: Settings, gallery: Path, model: str | None = None):
    from imagegen import DiffusersBackend

    return DiffusersBackend(diffusers_settings(s, model), gallery=gallery)


def clip_scorer(s: Settings):
    from imagegen import ClipScorer

    return ClipScorer.from_settings(clip_settings(s))


class Lazy(Generic[T]):
    """A value built on first use, once, by any thread (a model that may be absent:
    the rest of the service works without it)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value
