"""Process-wide runtime settings, given by the application (``service`` reads them
from its settings and calls ``configure`` once at start-up); nothing here reads
the environment. Torch and FAISS threads are process-wide in those libraries too,
so one value per process is what they can honour."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from .errors import InvalidSettingError

_lock = threading.Lock()
_threads: int | None = None
_cache_dir: Path | None = None


def configure(*, threads: int | None = None, cache_dir: str | os.PathLike | None = None) -> None:
    """Set the CPU thread count for torch and FAISS (None: every core) and the folder
    for derived files such as the CLIP tokenizer's (None: ``<tmp>/noteloom-cache``).
    A torch already imported gets the new thread count the next time
    ``configure_torch`` runs."""
    global _threads, _cache_dir
    checked = check_threads(threads) if threads is not None else None
    folder = Path(cache_dir).expanduser() if cache_dir is not None else None
    with _lock:
        _threads, _cache_dir = checked, folder


def check_threads(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidSettingError(f"threads must be an integer >= 1, got {threads!r}")
    return threads


def cpu_threads() -> int:
    """Torch/FAISS CPU threads: the configured count, else every core. With passive
    OpenMP waiting (``OMP_WAIT_POLICY=PASSIVE``, which the application sets before
    torch is imported) two threads on two cores are not slower than one even when
    another process holds a core; busy-waiting threads are."""
    return _threads or os.cpu_count() or 1


def cache_dir() -> Path:
    """Where derived files are written: the configured folder, else ``<tmp>/noteloom-cache``."""
    return _cache_dir or Path(tempfile.gettempdir()) / "noteloom-cache"
