"""Read, chunk and embed files on a Ray cluster; store them here.

``RayEngine`` is an ``ingest.pipeline.Engine``: ``Ingestor(nb, engine=RayEngine())``
plans the ingest as a local one does (which files, which are unchanged by their
stamp) and hands the files to read to a pool of Ray actors. Each actor takes a
batch of files and reads, loads, chunks (the same loaders, chunkers and settings)
and embeds them (the notebook's embedding model) in one call; the results come
back to the driver in file order, and the driver stores them in batches through
its own ``WriteSession``. Nothing on the cluster writes to the store, so the local
crash-safety contract holds as it is: a killed driver leaves whole documents or
none; a killed actor is restarted by Ray and its batches redone (up to
``restarts`` times), and what Ray cannot redo stops the ingest with
``RayIngestError`` before anything missing is stored.

The pool lives as long as the engine: its actors start, and load a model, once
(``warm`` does it up front), and serve every ingest after that. Ray actors, not
Ray Data: a Ray Data run starts its actor pools and loads the model again on
every run, and a separate reading pool held a CPU that reading barely used.

Sizing: one actor per GPU where the cluster has GPUs, else one per CPU but one;
Ray reserves one CPU per actor, and the CPUs no actor reserves are shared out as
embedding threads (on 2 CPUs: one actor with 2 threads), because reading and
chunking, done by the same actor between two embedding calls, is cheap beside
embedding. At most one actor per CPU but one: the driver, which stores what comes
back, keeps a CPU no actor holds. Every wait is bounded: no result for
``stall_seconds`` is an error naming the pool.

Workers read files by path: on a cluster of several machines, the folders must
be on storage that every node mounts at the same path, and noteloom must be
installed on every node.

Exceptions: ``RayIngestError(RuntimeError)``: the cluster cannot be reached, has
too few CPUs, stalled, or lost work it could not redo. A pool size that cannot
work raises ``IngestError`` quoting it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import runtime

from .errors import IngestError
from .pipeline import FileJob, FileRead, embedding_text, read_file

if TYPE_CHECKING:
    from .loaders import LoadLimits
    from .pipeline import ChunkSettings

BATCHES_PER_ACTOR = 2  # in flight per actor: the next batch waits in its queue while the driver stores the last


class RayIngestError(RuntimeError):
    pass


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        from runtime import MissingDependencyError

        raise MissingDependencyError("ray", "ingest on Ray (--engine ray)", "ray") from exc
    return ray


def _positive(name: str, value: object, least: int = 1) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
        raise IngestError(f"{name} must be an integer >= {least}, got {value!r}")


class RayEngine:
    """Ingest work on Ray. ``address``: None starts a local Ray with ``num_cpus``
    (default: every core), ``"auto"`` joins the cluster running here, ``"ray://host:port"``
    connects a Ray Client; a Ray already initialised in this process is used as it is.
    ``actors``: worker actors (default above); ``threads``: embedding threads per
    actor (default: the CPUs divided among the actors); ``files_per_batch``: most
    files per actor call (fewer when that leaves an actor without two);
    ``restarts``: how often a killed actor is restarted, its work redone, before
    the ingest fails; ``embedder``: a model name or picklable embedder for the
    actors instead of the notebook's model."""

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, actors: int | None = None,
                 threads: int | None = None, files_per_batch: int = 64, restarts: int = 3,
                 stall_seconds: float = 300.0, embedder: Any = None) -> None:
        for name, value in (("num_cpus", num_cpus), ("actors", actors), ("threads", threads),
                            ("files_per_batch", files_per_batch)):
            _positive(name, value)
        _positive("restarts", restarts, least=0)
        if isinstance(stall_seconds, bool) or not isinstance(stall_seconds, (int, float)) or not stall_seconds > 0:
            raise IngestError(f"stall_seconds must be a number > 0, got {stall_seconds!r}")
        self.address, self.num_cpus, self.actors, self.threads = address, num_cpus, actors, threads
        self.files_per_batch, self.restarts, self.stall_seconds = files_per_batch, restarts, float(stall_seconds)
        self.embedder = embedder
        self._ray = None
        self._started = False  # whether this engine started (and so shuts down) Ray
        self._workers: list | None = None  # the actor pool, once started
        self._sizes: dict[str, int] | None = None  # how it was sized

    # --- the cluster ------------------------------------------------------------

    def connect(self):
        """Ray, initialised: joined, or started here (slow: seconds). Idempotent."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            try:
                if self.address is None:
                    # Workers at the driver's priority, as a local ingest runs: at Ray's default niceness (15)
                    # the actors yielded their CPUs to any other busy process on the machine.
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.ERROR, _system_config={"worker_niceness": 0})
                else:  # Ray's start-up notices (a local instance started, token authentication) are not the user's
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayIngestError(f"cannot start or reach Ray at {self.address or 'a new local instance'}: {exc}") from exc
            self._started = True
        self._ray = ray
        return ray

    def pool(self) -> dict[str, int]:
        """How the cluster is shared: ``cpus``, ``gpus``, ``actors`` (each holding one
        CPU, and one GPU where there are GPUs) and embedding ``threads`` per actor."""
        resources = self.connect().cluster_resources()
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if cpus < 2:
            raise RayIngestError(f"the Ray cluster has {cpus} CPU(s); ingest needs at least 2: one per actor, "
                                 "and one for the driver")
        actors = self.actors or (min(gpus, cpus - 1) if gpus else cpus - 1)
        if actors > cpus - 1 or (gpus and actors > gpus):
            raise IngestError(f"actors={actors} cannot run on {cpus} CPUs and {gpus} GPUs: the pool must leave a CPU "
                              f"to the driver (at most {min(cpus - 1, gpus or cpus)})")
        return {"cpus": cpus, "gpus": gpus, "actors": actors, "threads": self.threads or max(1, cpus // actors)}

    def warm(self, embedding_model: str | None = None) -> None:
        """Start the actor pool now and load ``embedding_model`` (or the engine's
        ``embedder``) in every actor, so that the first ingest pays nothing for them."""
        embedder = self.embedder if self.embedder is not None else embedding_model
        workers = self._pool()
        try:
            self._ray.get([w.ready.remote(embedder) for w in workers], timeout=self.stall_seconds)
        except self._ray.exceptions.GetTimeoutError:
            self._discard()
            raise RayIngestError(f"the {len(workers)} Ray actor(s) were not ready within {self.stall_seconds:.0f}s "
                                 f"({self._describe()}): the cluster's CPUs are held by other work, or the model "
                                 "loads too slowly; use fewer actors or a longer stall limit") from None
        except self._ray.exceptions.RayError as exc:
            self._discard()
            raise RayIngestError(f"the Ray actors failed to start: {exc}") from exc

    def close(self) -> None:
        """Stop the actor pool, then shut Ray down if this engine started it."""
        self._discard()
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started = None, False

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pool(self) -> list:
        if self._workers is None:
            ray = self.connect()
            sizes = self.pool()
            worker = ray.remote(_Worker).options(num_cpus=1, num_gpus=1 if sizes["gpus"] else 0,
                                                 max_restarts=self.restarts, max_task_retries=self.restarts)
            where = str(runtime.cache_dir())  # the ONNX models this process built are found there too
            self._workers = [worker.remote(sizes["threads"], where, bool(sizes["gpus"])) for _ in range(sizes["actors"])]
            self._sizes = sizes
        return self._workers

    def _discard(self) -> None:
        """Kill the pool: after a failure its actors may be stuck or dead; the next ingest starts a new one."""
        workers, self._workers = self._workers or [], None
        if not workers or not self._ray.is_initialized():
            return  # the actors went with the Ray that held them (another engine shut it down)
        for worker in workers:
            try:
                self._ray.kill(worker, no_restart=True)
            except ValueError:  # a handle of an earlier Ray session: that actor is gone
                pass

    def _describe(self) -> str:
        s = self._sizes or {}
        return f"{s.get('actors')} embedding actor(s) on {s.get('cpus')} CPUs, {s.get('gpus')} GPUs"

    # --- the Engine protocol -----------------------------------------------------

    def read(self, jobs: Sequence[FileJob], chunking: "ChunkSettings", limits: "LoadLimits",
             embedding_model: str) -> Iterator[FileRead]:
        if not jobs:
            return iter(())
        embedder = self.embedder if self.embedder is not None else embedding_model
        return self._results(jobs, chunking, limits, embedder)

    def _results(self, jobs: Sequence[FileJob], chunking, limits, embedder) -> Iterator[FileRead]:
        """Batches sent to the least busy actor, ``BATCHES_PER_ACTOR`` each at most,
        and their results taken in file order, each awaited at most ``stall_seconds``."""
        workers = self._pool()
        # Big batches embed faster (fewer calls, less padding between similar lengths), but every actor needs two.
        size = max(1, min(self.files_per_batch, -(-len(jobs) // (len(workers) * BATCHES_PER_ACTOR))))
        batches = [list(jobs[at : at + size]) for at in range(0, len(jobs), size)]
        busy = [0] * len(workers)
        waiting: deque = deque()  # (result, actor index, files), in file order
        sent = done = 0
        try:
            while sent < len(batches) or waiting:
                while sent < len(batches) and min(busy) < BATCHES_PER_ACTOR:
                    actor = busy.index(min(busy))
                    waiting.append((workers[actor].run.remote(batches[sent], chunking, limits, embedder), actor,
                                    len(batches[sent])))
                    busy[actor] += 1
                    sent += 1
                result, actor, files = waiting.popleft()
                reads = self._wait(result, done, len(jobs))
                busy[actor] -= 1
                if len(reads) != files:
                    raise RayIngestError(f"a Ray actor returned {len(reads)} results for {files} files")
                for read in reads:
                    done += 1
                    yield read
        except GeneratorExit:  # the ingest stopped taking results: drop the pool if it still has work of ours
            if waiting:
                self._discard()
            raise
        except BaseException:
            self._discard()
            raise

    def _wait(self, result, done: int, total: int) -> list[FileRead]:
        ray = self._ray
        try:
            return ray.get(result, timeout=self.stall_seconds)
        except ray.exceptions.GetTimeoutError:
            raise RayIngestError(
                f"no result from Ray for {self.stall_seconds:.0f}s ({done} of {total} files back; {self._describe()}): "
                "the cluster is busy or a worker is stuck; use fewer actors, more CPUs, or a longer stall limit") from None
        except ray.exceptions.RayError as exc:
            raise RayIngestError(f"the Ray ingest failed after {done} of {total} files: {exc}") from exc


class _Worker:
    """A Ray actor: reads, loads, chunks and embeds batches of files; the models it
    loads stay loaded for the next batch and the next ingest."""

    def __init__(self, threads: int, cache_dir: str, gpu: bool) -> None:
        runtime.configure(threads=threads, cache_dir=cache_dir)
        self.gpu = gpu

    def ready(self, embedder: Any = None) -> bool:
        if embedder is not None:
            self._embedder(embedder)(["warm up"])
        return True

    def run(self, jobs: list[FileJob], chunking: "ChunkSettings", limits: "LoadLimits", embedder: Any) -> list[FileRead]:
        reads = [read_file(job, limits) for job in jobs]
        chunked = []
        for job, read in zip(jobs, reads):
            if read.prepared is not None and read.prepared.loaded.content_hash != job.unchanged_hash:
                read.prepared.chunks = chunking.chunker()(read.prepared.loaded.text)
                chunked += [read.prepared] if read.prepared.chunks else []
        texts = [embedding_text(p.loaded.title, c) for p in chunked for c in p.chunks]
        if texts:
            vectors = self._embedder(embedder)(texts)
            at = 0
            for prepared in chunked:
                prepared.vectors, at = vectors[at : at + len(prepared.chunks)], at + len(prepared.chunks)
        return reads

    def _embedder(self, embedder: Any):
        """One embedder per spec for the actor's life (``runtime.get_embedder`` caches it);
        the torch backend runs on the actor's GPU when it holds one."""
        on_gpu = self.gpu and isinstance(embedder, str) and runtime.backend_of(embedder) == "torch"
        return runtime.get_embedder(embedder, device="cuda" if on_gpu else "cpu")
