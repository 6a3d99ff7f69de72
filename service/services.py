"""What the route handlers use: the server's configuration (``ServiceConfig``),
and the notebook, builders and backends built once when the app starts
(``Services``). A handler names what it needs as parameters and litestar injects
it (``DEPENDENCIES``); nothing else reads the app's state."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import anyio
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation

from imagegen import PromptBuilder
from imagegen import ClipScorer, DiffusersBackend
from ingest import ChunkSettings, Ingestor
from ingest.isolation import Workers
from ingest.loaders import DEFAULT_LIMITS, LoadLimits
from retrieval import Notebook

from . import wiring
from .capacity import Limit, parse_limits
from .jobs import Jobs
from .settings import Settings

DEFAULTS = Settings()
T = TypeVar("T")

Injected = NamedDependency[SkipValidation[T]]
"""A handler parameter filled from ``DEPENDENCIES`` by name. These are the app's own
objects, so they are not checked against the type: a stand-in or another storage
backend with the same methods fits."""


@dataclass
class ServiceConfig:
    """The server's own configuration; ``from_settings`` fills it from ``Settings``."""

    data_dir: str | None = None  # None: the data_dir setting
    api_key: str | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    chunking: ChunkSettings | None = None
    max_generations: int = DEFAULTS.max_generations
    document_seconds: float = DEFAULTS.document_seconds  # parse + chunk time per uploaded document; over it: 4xx, worker replaced
    ingest_workers: int = DEFAULTS.ingest_workers  # worker processes parsing and chunking uploads (uploads beyond wait their turn)
    worker_memory_bytes: int | None = 2 * 1024**3  # address space of each worker; None: unlimited
    limits: LoadLimits = DEFAULT_LIMITS  # what one document may cost to load (the max_* settings)
    admission: dict[str, Limit] | None = None  # per route class: running/queued/wait (service.admission); None: sized to the cores
    write_lock_seconds: float = DEFAULTS.write_lock_seconds  # longest wait for the writer lock (a CLI ingest holds it); then 503
    keep_alive_seconds: float = DEFAULTS.keep_alive_seconds  # an idle keep-alive connection is closed after this
    header_seconds: float = DEFAULTS.header_seconds  # a request line and headers must arrive within this, else the connection closes
    body_seconds: float = DEFAULTS.body_seconds  # the longest pause while a request body arrives, else the connection closes

    @classmethod
    def from_settings(cls, s: Settings, **overrides: Any) -> "ServiceConfig":
        config = cls(data_dir=str(s.data_dir), api_key=s.api_key or None, max_generations=s.max_generations,
                     document_seconds=s.document_seconds, ingest_workers=s.ingest_workers, limits=wiring.load_limits(s),
                     admission=parse_limits(s.admission), write_lock_seconds=s.write_lock_seconds,
                     keep_alive_seconds=s.keep_alive_seconds, header_seconds=s.header_seconds, body_seconds=s.body_seconds)
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config


def check_config(config: ServiceConfig) -> None:
    if not 0 < config.max_upload_bytes <= config.limits.max_file_bytes:
        raise ValueError(f"max_upload_bytes must be 1..{config.limits.max_file_bytes} (max_file_bytes), "
                         f"got {config.max_upload_bytes}")
    if not 0 < config.document_seconds <= 24 * 3600:
        raise ValueError(f"document_seconds must be more than 0 and at most a day, got {config.document_seconds}")
    if not 1 <= config.ingest_workers <= 16:
        raise ValueError(f"ingest_workers must be 1..16, got {config.ingest_workers}")


@dataclass
class Services:
    """Built once per app by ``start``; each field is injectable under its name."""

    config: ServiceConfig
    notebook: Notebook
    ingestor: Ingestor
    prompt_builder: PromptBuilder
    workers: Workers
    parse_limiter: anyio.CapacityLimiter  # uploads waiting for a worker hold no thread
    store_limiter: anyio.CapacityLimiter  # writes are serialised by the notebook anyway
    jobs: Jobs
    gallery: Path
    backend: wiring.Lazy[DiffusersBackend]  # loads on first use: the service works without SD weights
    scorer: wiring.Lazy[ClipScorer]  # loads on first use: the service works without CLIP weights


async def start(config: ServiceConfig, settings: Settings, chunking: ChunkSettings, workers: Workers, notebook: Notebook | None,
                warm: bool) -> Services:
    """Open the notebook (unless one is given), warm the model and index when asked,
    and build what the handlers use."""

    def load() -> Notebook:
        nb = notebook if notebook is not None else wiring.notebook(settings, config.data_dir)
        nb.write_timeout = config.write_lock_seconds  # the API's writes wait this long for a CLI's writer lock
        if warm:  # load the model and the index now, not on the first request
            nb.warm()
        return nb

    nb = await anyio.to_thread.run_sync(load)
    if warm:
        await anyio.to_thread.run_sync(workers.wait_ready)
    gallery = Path(nb.folder) / "gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    return Services(
        config=config, notebook=nb, ingestor=Ingestor(nb, chunking, limits=config.limits), prompt_builder=PromptBuilder(nb),
        workers=workers, parse_limiter=anyio.CapacityLimiter(config.ingest_workers), store_limiter=anyio.CapacityLimiter(1),
        jobs=Jobs(max_running=config.max_generations), gallery=gallery,
        backend=wiring.Lazy(lambda: wiring.diffusers_backend(settings, gallery)), scorer=wiring.Lazy(lambda: wiring.clip_scorer(settings)),
    )


def _provider(name: str) -> Provide:
    async def provide(state: State) -> Any:
        return getattr(state.services, name)

    return Provide(provide)


DEPENDENCIES = {f.name: _provider(f.name) for f in fields(Services)}
