"""All the concurrency in chunkers, behind explicit parameters.

``threads`` (on every chunker, ``chunk_batch`` and the tiktoken counters): how
many threads encode one long text. Texts are cut into blocks at points where
tiktoken's pre-tokenizer always cuts (``measure.block_bounds``), so encoding
block by block on several threads equals one encoding of the whole. tiktoken
releases the GIL while it encodes, so ``threads - 1`` helper threads encode
ahead while the caller plans chunks; the caller encodes the next block itself
whenever it needs tokens that no helper has taken yet.

``DEFAULT_THREADS`` is 2 (1 on a one-core machine). Measured on one 2-core
machine only (``bench/chunkers_bench.py``, see README): 2 threads gain most of
what helpers can give, since planning in Python holds the GIL; more threads are
not measured, so the default stays conservative. Pass ``threads=1`` for no
helper thread at all (e.g. inside your own thread or process pool).

``workers`` on ``Chunker.chunk_batch``: processes, each rebuilding the chunker
by name with ``threads=1``. Nothing here reads or writes the environment or
switches the garbage collector.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from .errors import InvalidParameterError

DEFAULT_THREADS = min(2, os.cpu_count() or 1)
THREAD_NAME = "chunkers-encode"


def check_threads(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"threads must be an integer >= 1, got {value!r}")
    return value


_pools: dict[int, tuple[int, ThreadPoolExecutor]] = {}
_pools_lock = threading.Lock()


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` encoding threads, kept for reuse: each thread keeps
    its own copy of an encoding, built on first use. A forked child (its parent's
    threads do not exist there) gets a new pool."""
    pid = os.getpid()
    with _pools_lock:
        owner, pool = _pools.get(workers, (None, None))
        if owner != pid or pool is None:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_NAME)
            _pools[workers] = (pid, pool)
    return pool


def map_in_threads(fn: Callable[[list], list], groups: list[list], threads: int) -> list:
    """``fn`` over each group, on up to ``threads`` pool threads; results flattened."""
    if threads <= 1 or len(groups) <= 1:
        return [x for g in groups for x in fn(g)]
    return [x for out in thread_pool(threads).map(fn, groups) for x in out]


class BlockEncoder:
    """Token ends of one text, encoded block by block: ``threads - 1`` helpers
    start at once, the caller encodes blocks as it needs them. ``ends()`` is
    the prefix encoded so far, in order; ``cover`` grows it; ``finish`` joins
    the helpers and re-raises any helper's error.

    A helper needs the GIL between blocks, and the caller's first work (regex
    scans over the whole text) holds it for long stretches. So until the
    caller first asks for tokens, a helper encodes runs of blocks (up to a
    quarter of the text) in one call, and the caller lets a helper start before
    it goes on; from then on every thread takes one block at a time, so they
    finish together."""

    MAX_RUN = 24  # blocks in one run while the caller is busy

    def __init__(self, text: str, bounds: list[tuple[int, int]], encode: Callable[[str, int], np.ndarray], threads: int) -> None:
        self.text, self.bounds, self.encode = text, bounds, encode
        self.parts: list[np.ndarray | None] = [None] * len(bounds)  # None: not encoded yet
        self.taken = 0  # blocks before this one are taken by some thread
        self.placed = 0  # blocks before this one are in the ends, in order
        self.size = 0
        self.buffer = np.zeros(0, dtype=np.int64)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.block_done = threading.Condition(self.lock)
        self.joined = False  # the caller has asked for tokens: one block at a time
        self.run = max(1, min(self.MAX_RUN, len(bounds) // 4))
        started = self.started = threading.Event()
        helpers = min(threads - 1, len(bounds) - 1)
        self.helpers = [thread_pool(threads - 1).submit(self._help) for _ in range(helpers)] if helpers > 0 else []
        if self.helpers:
            started.wait(0.01)  # a helper holding its first run encodes beside the caller's scans

    def _help(self) -> None:
        try:
            while self._encode_next():
                pass
        except BaseException as exc:
            with self.lock:
                self.error = exc
                self.block_done.notify_all()
            raise

    def _encode_next(self) -> bool:
        """Encode the next block (or run of blocks) no thread has taken; False when none is left."""
        with self.lock:
            i = self.taken
            if i >= len(self.bounds) or self.error is not None:
                return False
            j = self.taken = min(len(self.bounds), i + (1 if self.joined else self.run))
        self.started.set()
        a, b = self.bounds[i][0], self.bounds[j - 1][1]
        ends = self.encode(self.text[a:b], a)  # blocks end at safe points, so a run encodes as its blocks would
        with self.lock:
            for k in range(i + 1, j):  # a run's ends are all in its first block's part
                self.parts[k] = ends[:0]
            self.parts[i] = ends
            self.block_done.notify_all()
        return True

    def _place(self) -> None:
        """Append the blocks finished since the last call, in order."""
        parts, n = self.parts, len(self.bounds)
        while self.placed < n and (part := parts[self.placed]) is not None:
            end = self.size + len(part)
            if end > len(self.buffer):  # room for the whole text at this rate of tokens per character
                covered = int(part[-1]) if len(part) else 1
                estimate = int(end * 1.1 * len(self.text) / max(1, covered)) + 1024
                grown = np.empty(max(estimate, end, len(self.buffer) * 3 // 2), dtype=np.int64)
                grown[: self.size] = self.buffer[: self.size]
                self.buffer = grown
            self.buffer[self.size : end] = part
            self.size = end
            parts[self.placed] = part[:0]  # placed: its memory can go
            self.placed += 1

    def ends(self) -> np.ndarray:
        return self.buffer[: self.size]

    @property
    def done(self) -> bool:
        return self.placed == len(self.bounds)

    def covers(self, pos: int | None, tokens: int | None) -> bool:
        if self.done:
            return True
        if pos is None and tokens is None:
            return False
        if pos is not None and (self.placed == 0 or pos > self.bounds[self.placed - 1][1]):
            return False
        return tokens is None or tokens <= self.size

    def cover(self, pos: int | None = None, tokens: int | None = None) -> None:
        """Until the ends reach character ``pos`` and hold ``tokens`` tokens (with
        neither: the whole text)."""
        self.joined = True
        self._place()
        while not self.covers(pos, tokens):
            if not self._encode_next():
                with self.lock:
                    while self.parts[self.placed] is None and self.error is None:
                        self.block_done.wait()
            if self.error is not None:
                raise self.error
            self._place()

    def finish(self) -> np.ndarray:
        self.cover()
        for helper in self.helpers:
            helper.result()  # re-raises a helper's error
        if len(self.buffer) > self.size + self.size // 8:  # more room than needed
            self.buffer = self.buffer[: self.size].copy()
        return self.ends()


# --- chunk_batch over processes -----------------------------------------------

_worker_chunker: Any = None


def _init_worker(name: str, params: dict[str, Any]) -> None:
    global _worker_chunker
    from .registry import get

    _worker_chunker = get(name, **params)


def _chunk_in_worker(text: str) -> list:
    return _worker_chunker.chunk(text)


def chunk_in_processes(name: str, params: dict[str, Any], texts: Sequence[str], workers: int) -> list[list]:
    """Chunk ``texts`` on ``workers`` processes, each with the chunker ``name``
    rebuilt from ``params`` with one encoding thread (the processes fill the cores)."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # largest first
    results: list[list] = [[] for _ in texts]
    spec = (name, {**params, "threads": 1})
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=spec) as pool:
        chunksize = max(1, len(texts) // (workers * 8))  # few, large messages between processes
        for i, chunks in zip(order, pool.map(_chunk_in_worker, [texts[i] for i in order], chunksize=chunksize)):
            results[i] = chunks
    return results
