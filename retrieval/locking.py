"""The data folder's writer lock: ``write.lock``, held with ``fcntl.flock`` by one
writer at a time (an ingest, a server, a repair). The kernel drops it when the
holder dies, so a killed ingest never leaves the folder locked."""

from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path
from typing import Iterator

from .errors import WriteLockTimeoutError

LOCK_NAME = "write.lock"
LOCK_POLL_SECONDS = (0.01, 0.2)  # first and longest pause between tries for a held lock
MAX_WAIT_SECONDS = 24 * 3600


def check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not 0 <= timeout <= MAX_WAIT_SECONDS:
        raise ValueError(f"write timeout must be 0..{MAX_WAIT_SECONDS} seconds or None, got {timeout!r}")
    return timeout


@contextlib.contextmanager
def write_lock(folder: Path, *, blocking: bool = True, timeout: float | None = None) -> Iterator[None]:
    """Hold ``folder``'s writer lock. ``blocking=False``: BlockingIOError if it is held;
    else wait, for at most ``timeout`` seconds (None: no bound), then WriteLockTimeoutError."""
    with open(folder / LOCK_NAME, "a+") as fh:
        if not blocking or timeout is None:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        else:
            _lock_within(fh, folder, timeout)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _lock_within(fh, folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pause, longest = LOCK_POLL_SECONDS
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WriteLockTimeoutError(
                    f"another writer (a `noteloom ingest`?) has held {folder / LOCK_NAME} for over "
                    f"{timeout:g} s; nothing was written, try again later") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, longest)
