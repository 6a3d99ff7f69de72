"""Parse and chunk untrusted documents in worker processes, with limits.

Loaders and chunkers are pure Python: their regular expressions and parsers hold
the GIL, so run on a server thread they stall every other request for as long as
they take. ``Workers`` keeps a few worker processes warm; ``prepare`` hands one
document (bytes in, ``ingest.pipeline.Prepared`` out) to an idle worker and waits
at most ``seconds``. A worker over the time limit is killed and replaced and the
caller gets ``WorkerLimitError`` naming the limit; so does a document that needs
more than ``memory_bytes`` of address space (the worker's ``RLIMIT_AS``), so an
expansion bomb fails in the worker instead of growing the server. Workers never
store anything: the caller embeds and stores what ``prepare`` returns, so a
killed worker leaves nothing half-written.

A worker is a fresh interpreter (``subprocess``, talking over a socket pair with
``multiprocessing.connection``), never a fork: the server has torch and its
thread pools loaded, and forking a process that runs threads is unsafe; nor is
it ``multiprocessing``'s spawn, which runs the parent's main script again in the
child. A worker imports ``ingest`` and ``chunkers`` only (never torch, unless the
chunking method is semantic), prepares a tiny document to load its tokenizer,
then reports ready; the time spent starting never counts against a document. A
worker whose server dies sees the socket close and exits after its document.

Exceptions:

- ``WorkerLimitError(IngestError)``: the document hit the time or memory limit.
- ``WorkerDiedError(RuntimeError)``: a worker died on its own (killed from
  outside, a crash in a C extension) or the pool is shut down.
- An exception raised by ``prepare`` in the worker is raised again in the
  caller, with the worker's traceback chained as a ``RemoteTraceback``.
"""

from __future__ import annotations

import contextlib
import os
import dataclasses
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import IngestError

if TYPE_CHECKING:
    from .pipeline import ChunkSettings, Prepared

ROOT = Path(__file__).resolve().parent.parent  # where a worker imports ingest from
READY_SECONDS = 120.0  # a worker that has not imported ingest by then is broken
STOP_SECONDS = 5.0
CHUNKS_PER_MESSAGE = 256  # unpickling 256 chunks of ~1 KB holds the caller's GIL a few ms
OUT_OF_MEMORY_EXIT = 86  # a worker's exit code when even its "memory" reply could not be sent


class WorkerLimitError(IngestError):
    pass


class WorkerDiedError(RuntimeError):
    pass


class RemoteTraceback(Exception):
    """The worker's formatted traceback, chained as ``__cause__``."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


@dataclass(frozen=True)
class Job:
    data: bytes
    name: str
    kind: str | None
    chunking: "ChunkSettings"
    limits: Any = None


def _main() -> None:
    """A worker's main loop: settings in, "ready" out, then one ``Job`` in and one
    reply out, until ``None`` or the end of the socket."""
    conn = Connection(int(sys.argv[1]))
    chunking, memory_bytes = conn.recv()
    if memory_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from .pipeline import prepare

    prepare(b"# Warm up\n\nOne sentence loads the tokenizer.\n", "warm-up.md", None, chunking)
    conn.send(("ready",))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        out_of_memory = False
        try:
            prepared = prepare(job.data, job.name, job.kind, job.chunking, job.limits)
        except MemoryError:
            out_of_memory = True  # answered below: the failed call's frames still hold its memory here
        except Exception as exc:  # noqa: BLE001 - every error goes back to the caller
            conn.send(("error", _portable(exc), traceback.format_exc()))
        else:
            _send_prepared(conn, prepared)
        del job
        prepared = None
        if out_of_memory:
            try:
                conn.send(("memory",))
            except MemoryError:
                os._exit(OUT_OF_MEMORY_EXIT)  # said by the exit code instead


def _send_prepared(conn: Connection, prepared: "Prepared") -> None:
    """The document without its chunks, then the chunks in parts: the caller
    unpickles each part in one call that holds its GIL, so parts stay short."""
    chunks = prepared.chunks
    parts = [] if chunks is None else [chunks[i : i + CHUNKS_PER_MESSAGE] for i in range(0, len(chunks), CHUNKS_PER_MESSAGE)]
    conn.send(("ok", dataclasses.replace(prepared, chunks=None), chunks is not None, len(parts)))
    for part in parts:
        conn.send(part)


def _receive_prepared(conn: Connection, header: tuple) -> "Prepared":
    _, prepared, chunked, count = header
    if chunked:
        prepared.chunks = [chunk for _ in range(count) for chunk in conn.recv()]
    return prepared


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling both ways, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception class that does not pickle
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class _Timeout(Exception):
    pass


class _Worker:
    """One worker process and our end of its socket."""

    def __init__(self, chunking: "ChunkSettings", memory_bytes: int | None) -> None:
        ours, theirs = socket.socketpair()
        with theirs:
            boot = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from ingest.isolation import _main; _main()"
            self.process = subprocess.Popen([sys.executable, "-c", boot, str(theirs.fileno())],
                                            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        self.conn = Connection(ours.detach())
        self.conn.send((chunking, memory_bytes))
        self.ready = False

    def wait_ready(self, seconds: float) -> None:
        if self.ready:
            return
        if not self.conn.poll(seconds):
            raise WorkerDiedError(f"an ingest worker did not start within {seconds:g} s")
        self.conn.recv()  # EOFError when it died while starting
        self.ready = True

    def run(self, job: Job, seconds: float) -> tuple:
        self.conn.send(job)
        if not self.conn.poll(seconds):
            raise _Timeout
        return self.conn.recv()

    def stop(self, *, gently: bool, grace: float = 0.0) -> int | None:
        """Stop the process (a ``None`` message first when ``gently``; ``grace``
        seconds to exit on its own before it is killed); its exit code."""
        if gently and self.process.poll() is None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.conn.send(None)
                self.process.wait(STOP_SECONDS)
        if grace:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(STOP_SECONDS)
        self.conn.close()
        return self.process.returncode


class Workers:
    """A bounded pool of warm ingest workers, safe to call from many threads:
    ``prepare`` blocks while all ``count`` workers are busy."""

    def __init__(self, chunking: "ChunkSettings", *, count: int = 1, seconds: float = 60.0,
                 memory_bytes: int | None = None) -> None:
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        if memory_bytes is not None and memory_bytes < 256 * 1024 * 1024:
            raise ValueError(f"memory_bytes must be at least 256 MiB (or None for no limit), got {memory_bytes!r}")
        self.chunking = chunking
        self.count = count
        self.seconds = seconds
        self.memory_bytes = memory_bytes
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.replaced = 0  # workers killed or lost and started again

    def start(self) -> "Workers":
        """Start the workers without waiting for them (see ``wait_ready``)."""
        with self._lock:
            self._closed = False
            while len(self._all) < self.count:
                self._idle.put(self._spawn())
        return self

    def wait_ready(self, seconds: float = READY_SECONDS) -> None:
        """Block until every worker started by ``start`` has loaded."""
        with self._lock:
            workers = list(self._all)
        for worker in workers:
            worker.wait_ready(seconds)

    def _over_memory(self, name: str) -> WorkerLimitError:
        return WorkerLimitError(f"{name}: needed more than {self.memory_bytes} bytes of memory to parse and chunk "
                                "(limit worker_memory_bytes); nothing was stored")

    def prepare(self, data: bytes, name: str, kind: str | None = None, chunking: "ChunkSettings | None" = None,
                limits: Any = None) -> "Prepared":
        """``ingest.pipeline.prepare`` in a worker, within the limits."""
        job = Job(data, name, kind, chunking or self.chunking, limits)
        worker = self._take()
        try:
            worker.wait_ready(READY_SECONDS)
            reply = worker.run(job, self.seconds)
            prepared = _receive_prepared(worker.conn, reply) if reply[0] == "ok" else None
        except _Timeout:
            self._replace(worker)
            raise WorkerLimitError(f"{name}: took longer than {self.seconds:g} s to parse and chunk (limit "
                                   f"document_seconds); the worker was stopped and nothing was stored") from None
        except (EOFError, OSError, WorkerDiedError) as exc:
            code = self._replace(worker, grace=STOP_SECONDS)  # it is exiting: its own exit code tells why
            if self.memory_bytes and code in (-signal.SIGABRT, OUT_OF_MEMORY_EXIT):
                # native code (tiktoken's Rust) aborts the process when an allocation fails under the limit
                raise self._over_memory(name) from exc
            raise WorkerDiedError(f"{name}: the ingest worker died ({_describe(code)}) while preparing it; "
                                  "nothing was stored") from exc
        except BaseException:
            self._replace(worker)
            raise
        if reply[0] == "memory":
            self._replace(worker)  # a worker that ran out of memory may be left in a poor state
            raise self._over_memory(name)
        self._idle.put(worker)
        if reply[0] == "error":
            _, exc, remote = reply
            raise exc from RemoteTraceback(remote)
        return prepared

    def close(self) -> None:
        """Stop every worker; callers waiting on a busy one get ``WorkerDiedError``."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        idle = set()
        while True:
            try:
                idle.add(self._idle.get_nowait())
            except queue.Empty:
                break
        for worker in workers:
            worker.stop(gently=worker in idle)

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(w.process.pid for w in self._all)

    def __enter__(self) -> "Workers":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.close()

    # --- internals --------------------------------------------------------------

    def _spawn(self) -> _Worker:
        worker = _Worker(self.chunking, self.memory_bytes)
        self._all.add(worker)
        return worker

    def _take(self) -> _Worker:
        """An idle worker (waiting while all are busy); one found dead is replaced first."""
        while True:
            if self._closed:
                raise WorkerDiedError("the ingest workers are shut down")
            try:
                worker = self._idle.get(timeout=1.0)
            except queue.Empty:
                continue
            if worker.process.poll() is None:
                return worker
            self._replace(worker)

    def _replace(self, worker: _Worker, grace: float = 0.0) -> int | None:
        with self._lock:
            self._all.discard(worker)
        code = worker.stop(gently=False, grace=grace)
        with self._lock:
            if not self._closed:
                self.replaced += 1
                self._idle.put(self._spawn())
        return code


def _describe(exitcode: int | None) -> str:
    if exitcode is None:
        return "it did not exit"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"
