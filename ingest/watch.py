"""Watch mode: folders kept in step with a notebook as their files change.

File-system events (``watchfiles``: inotify, FSEvents, ReadDirectoryChangesW) are
only hints about *where* to look. Each debounced batch becomes one incremental
``Ingestor.ingest_paths`` call over the note files that appeared or changed and
the folders where something vanished or arrived (walked with ``prune``). So the
identity, skip and prune rules are exactly ``noteloom ingest``'s, and the batch
takes the data folder's writer lock as any ingest does: a watcher and an
``ingest`` run wait for each other, never interleave.

That also makes editors' habits harmless. A save by rename is a changed file; a
swap or temp file is ignored (or is not a note kind); a burst of writes is one
batch; a folder moved in is walked, one moved out is pruned from its parent; a
file read while it was being written is re-read on the write's own event (and is
not stamped, see ``sources.is_settled``). A watcher that was killed missed events:
each start first catches up with one full scan (``prune`` over the watched
folders), and events that arrive during that scan are kept for the next batch.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

from retrieval.errors import WriteLockTimeoutError

from .errors import IngestError
from .loaders import KINDS
from .pipeline import Ingestor, IngestReport

log = logging.getLogger("noteloom.watch")

# Editors' swap, backup and partial-download files (Vim, Emacs, JetBrains, browsers, LibreOffice).
SWAP_GLOBS = ("*.swp", "*.swo", "*.swx", "*~", "#*#", ".#*", "4913", "*.tmp", "*.temp", "*.part", "*.crdownload",
              ".~lock.*#", "*___jb_tmp___", "*___jb_old___")
VAULT_FOLDERS = (".obsidian", ".trash")  # hidden anyway (every hidden name is); named here for the reader
ADDED, MODIFIED, DELETED = 1, 2, 3  # watchfiles.Change values
WAKE_MS = 250  # with no events, the loop still wakes this often: the first wake starts the catch-up, later ones retry


@dataclass(frozen=True)
class WatchOptions:
    """How events are grouped and which paths are ignored."""

    debounce_ms: int = 300  # a batch is sent once no event came for ``step_ms``, or after this long at most
    step_ms: int = 50
    ignore: tuple[str, ...] = ()  # globs matched against each name and against the path inside the folder
    retry_seconds: float = 1.0  # pause before a batch is retried when another writer held the lock too long

    def __post_init__(self) -> None:
        if not 1 <= self.step_ms <= self.debounce_ms <= 60_000:
            raise ValueError(f"watch needs 1 <= step_ms <= debounce_ms <= 60000, got step_ms={self.step_ms}, "
                             f"debounce_ms={self.debounce_ms}")
        if not 0 < self.retry_seconds <= 3600:
            raise ValueError(f"retry_seconds must be over 0 and at most 3600, got {self.retry_seconds}")


class Ignored:
    """Whether a path under one of ``roots`` is left alone: a hidden name anywhere in
    it (``.obsidian/``, ``.trash/``, ``.git/``), a swap file, or a user glob."""

    def __init__(self, roots: Sequence[Path], globs: Iterable[str] = ()) -> None:
        self.roots = list(roots)
        self.globs = tuple(globs)

    def __call__(self, path: Path) -> bool:
        inside = self.relative(path)
        if inside is None:
            return True
        if any(part.startswith(".") for part in inside.parts):
            return True
        name = inside.name
        if any(fnmatch.fnmatchcase(name, g) for g in SWAP_GLOBS):
            return True
        text = inside.as_posix()
        return any(fnmatch.fnmatchcase(text, g) or fnmatch.fnmatchcase(name, g)
                   or any(fnmatch.fnmatchcase(p, g) for p in inside.parent.parts) for g in self.globs)

    def relative(self, path: Path) -> PurePosixPath | None:
        for root in self.roots:
            if path.is_relative_to(root):
                return PurePosixPath(*path.relative_to(root).parts)
        return None


@dataclass
class Batch:
    """Where to look again: note files to ingest, folders to walk with prune."""

    files: set[Path] = field(default_factory=set)
    folders: set[Path] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.files or self.folders)

    def merge(self, other: "Batch") -> None:
        self.files |= other.files
        self.folders |= other.folders

    def paths(self, roots: Sequence[Path]) -> list[Path]:
        """The folders (each moved up to the nearest one that still exists inside
        its root, and none inside another), then the files outside them."""
        folders = set()
        for folder in self.folders:
            root = next((r for r in roots if folder.is_relative_to(r)), None)
            while root is not None and folder != root and not folder.is_dir():
                folder = folder.parent
            if root is not None and folder.is_dir():
                folders.add(folder)
        outer = sorted(f for f in folders if not any(f != o and f.is_relative_to(o) for o in folders))
        files = sorted(f for f in self.files if not any(f.is_relative_to(o) for o in outer))
        return [*outer, *files]


def plan(changes: Iterable[tuple[int, str]], ignored: Ignored) -> Batch:
    """A batch from raw ``(change, path)`` events. A note that appeared or changed is
    re-read; a folder that appeared is walked (files written into a new folder
    before it was watched raise no event); a path that vanished (a note, or perhaps
    a whole folder moved out) has its parent walked with prune."""
    batch = Batch()
    for change, raw in changes:
        path = Path(raw)
        if ignored(path):
            continue
        if change == DELETED:
            if path.suffix.lower() in KINDS or not path.exists():
                batch.folders.add(path.parent)
        elif path.is_dir():
            batch.folders.add(path)
        elif path.suffix.lower() in KINDS:
            if path.is_file():
                batch.files.add(path)
            else:  # gone again already (a temp name renamed away): its folder decides
                batch.folders.add(path.parent)
    return batch


class Watcher:
    """Keeps ``ingestor``'s notebook in step with ``folders`` (``run``), after one
    catch-up scan. ``on_report`` receives each batch's ``IngestReport``."""

    def __init__(self, ingestor: Ingestor, folders: Iterable[str | Path], options: WatchOptions | None = None, *,
                 on_report: Callable[[IngestReport], None] | None = None) -> None:
        self.roots = [Path(f).resolve() for f in folders]
        if not self.roots:
            raise IngestError("watch needs at least one folder")
        for root in self.roots:
            if not root.is_dir():
                raise IngestError(f"watch needs folders; {root} is not one")
        self.options = options or WatchOptions()
        self.ignored = Ignored(self.roots, self.options.ignore)
        self.ingestor = ingestor
        ingestor.ignore = self.ignored  # the walks of the catch-up and of each batch skip the same paths
        self.on_report = on_report or (lambda report: None)
        self.ready = threading.Event()  # set once the catch-up scan is done and events are being watched

    def catch_up(self) -> IngestReport:
        """One full scan of the watched folders, with prune: what changed while no watcher ran."""
        return self._ingest(list(self.roots))

    def apply(self, batch: Batch) -> IngestReport | None:
        paths = batch.paths(self.roots)
        return self._ingest(paths) if paths else None

    def run(self, stop: threading.Event | None = None) -> None:
        """Catch up, then apply batches of events until ``stop`` is set. A batch that
        met another writer holding the lock past the notebook's bound is retried."""
        watch = _watchfiles()
        pending = Batch()
        events = watch(*self.roots, watch_filter=lambda change, path: not self.ignored(Path(path)),
                       debounce=self.options.debounce_ms, step=self.options.step_ms, stop_event=stop,
                       rust_timeout=WAKE_MS, yield_on_timeout=True, raise_interrupt=False)
        for changes in events:  # the first comes after a timeout at most: the watches are in place by then
            pending.merge(plan(((int(c), p) for c, p in changes), self.ignored))
            if not self.ready.is_set():
                if self._retrying(self.catch_up) is _BUSY:
                    continue
                self.ready.set()
                pending = Batch()  # the scan saw all of it
            if pending and self._retrying(lambda: self.apply(pending)) is not _BUSY:
                pending = Batch()

    def _retrying(self, work: Callable[[], IngestReport | None]):
        try:
            return work()
        except WriteLockTimeoutError as exc:
            log.warning("%s; retrying", exc)
            time.sleep(self.options.retry_seconds)
            return _BUSY

    def _ingest(self, paths: list[Path]) -> IngestReport:
        report = self.ingestor.ingest_paths(paths, prune=True)
        self.on_report(report)
        return report


_BUSY = object()


def _watchfiles():
    try:
        from watchfiles import watch
    except ImportError as exc:
        from runtime import MissingDependencyError

        raise MissingDependencyError("watchfiles", "watch mode", "watch") from exc
    return watch
