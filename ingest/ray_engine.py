"""Read, chunk and embed files on a Ray cluster; store them here.

``RayEngine`` is an ``ingest.pipeline.Engine``: ``Ingestor(nb, engine=RayEngine())``
plans the ingest as a local one does (which files, which are unchanged by their
stamp) and hands the files to read to Ray Data. A pool of actors reads and chunks them (the
same loaders, chunkers and settings); an actor pool embeds the chunks with the
notebook's embedding model; the results come back to the driver in file order,
and the driver stores them in batches through its own ``WriteSession``. Nothing
on the cluster writes to the store, so the local crash-safety contract holds as
it is: a killed driver leaves whole documents or none, and a killed worker is
retried by Ray (its actors are restarted and their work redone); what Ray cannot recover
stops the ingest with ``RayIngestError`` before anything missing is stored.

Sizing: the embedding pool gets one actor per GPU where the cluster has GPUs,
else one per CPU but one, and always leaves at least one CPU to the pool that reads
and chunks (an embedding pool as large as the CPU count starved reading: the run
never ended).
Every wait is bounded: no result for ``stall_seconds`` is an error naming the pool.

Workers read files by path: on a cluster of several machines, the folders must
be on storage that every node mounts at the same path, and noteloom must be
installed on every node.

Exceptions: ``RayIngestError(RuntimeError)``: the cluster cannot be reached, has
too few CPUs, stalled, or lost work it could not redo. A pool size that cannot
work raises ``IngestError`` quoting it.
"""

from __future__ import annotations

import pickle
import queue
import threading
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from .errors import IngestError
from .pipeline import FileJob, FileRead, embedding_text, read_file

if TYPE_CHECKING:
    from .loaders import LoadLimits
    from .pipeline import ChunkSettings

QUEUE_BATCHES = 4  # results held between Ray and the writer: backpressure, not a cache
POLL_SECONDS = 1.0  # how often a blocked hand-over checks whether the ingest was abandoned
CLOSE_SECONDS = 10.0  # longest wait, on close, for an abandoned run to stop before Ray shuts down


class RayIngestError(RuntimeError):
    pass


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        from runtime import MissingDependencyError

        raise MissingDependencyError("ray", "ingest on Ray (--engine ray)", "ray") from exc
    return ray


class RayEngine:
    """Ingest work on Ray. ``address``: None starts a local Ray with ``num_cpus``
    (default: every core), ``"auto"`` joins the cluster running here, ``"ray://host:port"``
    connects a Ray Client; a Ray already initialised in this process is used as it is.
    ``actors``: embedding actors (default above); ``files_per_batch``: files per read
    call and per embedding call; ``embedder``: a model name or picklable embedder
    for the actors instead of the notebook's model."""

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None, actors: int | None = None,
                 files_per_batch: int = 16, stall_seconds: float = 300.0, embedder: Any = None) -> None:
        for name, value in (("num_cpus", num_cpus), ("actors", actors), ("files_per_batch", files_per_batch)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise IngestError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(stall_seconds, (int, float)) or not stall_seconds > 0:
            raise IngestError(f"stall_seconds must be a number > 0, got {stall_seconds!r}")
        self.address, self.num_cpus, self.actors = address, num_cpus, actors
        self.files_per_batch, self.stall_seconds, self.embedder = files_per_batch, float(stall_seconds), embedder
        self._ray = None
        self._started = False  # whether this engine started (and so shuts down) Ray
        self._runs: list[threading.Thread] = []  # threads reading Ray's results, one per ingest

    # --- the cluster ------------------------------------------------------------

    def connect(self):
        """Ray, initialised: joined, or started here (slow: seconds). Idempotent."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            try:
                if self.address is None:
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=self.address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayIngestError(f"cannot start or reach Ray at {self.address or 'a new local instance'}: {exc}") from exc
            self._started = True
        self._ray = ray
        return ray

    def close(self) -> None:
        """Let abandoned runs stop (a bounded wait), then shut Ray down if this engine started it."""
        for run in self._runs:
            run.join(timeout=CLOSE_SECONDS)
        self._runs = [run for run in self._runs if run.is_alive()]
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started = None, False

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pool(self) -> dict[str, int]:
        """How the cluster is shared: ``cpus``, ``gpus``, ``actors`` (each with one
        CPU, and one GPU where there are GPUs) and ``read_cpus`` left to the reading pool."""
        resources = self.connect().cluster_resources()
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if cpus < 2:
            raise RayIngestError(f"the Ray cluster has {cpus} CPU(s); ingest needs at least 2: one to read and chunk, "
                                 "one per embedding actor")
        actors = self.actors or (min(gpus, cpus - 1) if gpus else cpus - 1)
        if actors > cpus - 1 or (gpus and actors > gpus):
            raise IngestError(f"actors={actors} cannot run on {cpus} CPUs and {gpus} GPUs: the embedding pool must "
                              f"leave a CPU to reading (at most {min(cpus - 1, gpus or cpus)})")
        return {"cpus": cpus, "gpus": gpus, "actors": actors, "read_cpus": cpus - actors}

    # --- the Engine protocol -----------------------------------------------------

    def read(self, jobs: Sequence[FileJob], chunking: "ChunkSettings", limits: "LoadLimits",
             embedding_model: str) -> Iterator[FileRead]:
        if not jobs:
            return iter(())
        ray = self.connect()
        pool = self.pool()
        embedder = self.embedder if self.embedder is not None else embedding_model
        dataset = _dataset(ray, jobs, chunking, limits, embedder, pool, self.files_per_batch)
        return _ordered(_bounded(dataset, self.stall_seconds, pool, len(jobs), self._runs), len(jobs))


def _dataset(ray, jobs: Sequence[FileJob], chunking, limits, embedder, pool: dict[str, int], files_per_batch: int):
    rows = [{"index": i, "job": pickle.dumps(job)} for i, job in enumerate(jobs)]
    blocks = max(1, min(len(rows), -(-len(rows) // files_per_batch)))
    # Reading is a pool of its own: Ray Data fuses a task step into the actor step after it, and the CPUs left
    # to reading would sit idle; two fixed pools also cannot starve each other.
    dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        _ReadAndChunk, fn_constructor_kwargs={"chunking": chunking, "limits": limits}, batch_size=files_per_batch,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool["read_cpus"]), num_cpus=1)
    dataset = dataset.map_batches(
        _Embed, fn_constructor_kwargs={"embedder": embedder, "gpu": bool(pool["gpus"])}, batch_size=files_per_batch,
        compute=ray.data.ActorPoolStrategy(size=pool["actors"]), num_cpus=1, num_gpus=1 if pool["gpus"] else 0)
    dataset.context.enable_progress_bars = False
    return dataset


class _ReadAndChunk:
    """A Ray actor: reads and loads each file, and chunks it unless its content is unchanged."""

    def __init__(self, chunking: "ChunkSettings", limits: "LoadLimits") -> None:
        self.chunking, self.limits = chunking, limits

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        reads = []
        for blob in batch["job"]:
            job: FileJob = pickle.loads(blob)
            read = read_file(job, self.limits)
            if read.prepared is not None and read.prepared.loaded.content_hash != job.unchanged_hash:
                read.prepared.chunks = self.chunking.chunker()(read.prepared.loaded.text)
            reads.append(pickle.dumps(read))
        return {"index": batch["index"], "read": np.array(reads, dtype=object)}


class _Embed:
    """A Ray actor: embeds every chunk of a batch of files in one call, with one
    thread (the one CPU it holds) or on its GPU."""

    def __init__(self, embedder: Any, gpu: bool) -> None:
        import runtime

        runtime.configure(threads=1)
        self.embed = runtime.get_embedder(embedder, device="cuda" if gpu else "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        reads: list[FileRead] = [pickle.loads(blob) for blob in batch["read"]]
        chunked = [r.prepared for r in reads if r.prepared is not None and r.prepared.chunks]
        texts = [embedding_text(p.loaded.title, c) for p in chunked for c in p.chunks]
        if texts:
            vectors = np.asarray(self.embed(texts), dtype=np.float32)
            at = 0
            for prepared in chunked:
                prepared.vectors, at = vectors[at : at + len(prepared.chunks)], at + len(prepared.chunks)
        return {"index": batch["index"], "read": np.array([pickle.dumps(r) for r in reads], dtype=object)}


def _bounded(dataset, stall_seconds: float, pool: dict[str, int], total: int,
             runs: list[threading.Thread]) -> Iterator[tuple[int, FileRead]]:
    """The dataset's results, each awaited at most ``stall_seconds``. Ray's iterator
    blocks without a limit, so it runs in a thread (added to ``runs``) that hands
    results over a short queue, and stops at its next result once abandoned."""
    handed: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    abandoned = threading.Event()

    def produce() -> None:
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                if not _hand_over(handed, ("batch", batch), abandoned):
                    return
            _hand_over(handed, ("done", None), abandoned)
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the consumer
            _hand_over(handed, ("error", exc), abandoned)

    runs.append(threading.Thread(target=produce, name="noteloom-ray-results", daemon=True))
    runs[-1].start()
    done = 0
    try:
        while True:
            try:
                kind, value = handed.get(timeout=stall_seconds)
            except queue.Empty:
                raise RayIngestError(
                    f"no result from Ray for {stall_seconds:.0f}s ({done} of {total} files back; {pool['actors']} "
                    f"embedding actor(s) on {pool['cpus']} CPUs, {pool['gpus']} GPUs): the cluster is busy or a "
                    "worker is stuck; use fewer actors, more CPUs, or a longer stall limit") from None
            if kind == "done":
                return
            if kind == "error":
                raise RayIngestError(f"the Ray ingest failed after {done} of {total} files: {value}") from value
            for index, blob in zip(value["index"], value["read"]):
                done += 1
                yield int(index), pickle.loads(blob)
    finally:
        abandoned.set()


def _hand_over(handed: queue.Queue, item: tuple, abandoned: threading.Event) -> bool:
    while not abandoned.is_set():
        try:
            handed.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _ordered(results: Iterator[tuple[int, FileRead]], total: int) -> Iterator[FileRead]:
    """Results in job order (Ray may finish batches out of order); a missing one is an
    error, and a second result for a file (a batch redone after a worker died) is dropped."""
    early: dict[int, FileRead] = {}
    following = 0
    for index, read in results:
        if index < following or index in early:
            continue
        early[index] = read
        while following in early:
            yield early.pop(following)
            following += 1
    if following != total:
        raise RayIngestError(f"Ray returned {following} of {total} files in order; the rest never came back")
