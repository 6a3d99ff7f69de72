"""Where notes come from, and what they are called.

A document's identity is ``collection/path``. A *collection* is a folder that was
ingested (its absolute ``root``) or a name API uploads go to (no root); ``path``
is the file's place inside the collection's root. So two folders with a
``same.md`` each hold two documents, one file always maps to one document
whichever folder or file name it was reached through, and ``--prune`` only ever
syncs the folders it walked.

Reading is confined: a file whose resolved path is outside the folder being
walked is skipped unless the caller opts in, and only regular files are read,
never FIFOs, devices, sockets or kernel pseudo-files (``/proc`` reports size 0
and can be endless), each read bounded by the size limit whatever ``stat`` says.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from .errors import FileTooLargeError, IngestError, InvalidSourceError, UnsupportedFileError

MAX_SOURCE_CHARS = 1024
MAX_COLLECTION_CHARS = 64
UPLOADS_COLLECTION = "uploads"  # where API documents go unless a collection is named
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_source_name(name: object) -> str:
    """A document name inside a collection: a relative POSIX path with no ``..``."""
    if not isinstance(name, str):
        raise InvalidSourceError(f"source must be a string, got {type(name).__name__}")
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise InvalidSourceError("source must not be empty")
    if len(name) > MAX_SOURCE_CHARS:
        raise InvalidSourceError(f"source is {len(name)} characters; the limit is {MAX_SOURCE_CHARS}")
    bad = next((ch for ch in name if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        raise InvalidSourceError(f"source {name!r} contains the control character U+{ord(bad):04X}")
    if "\\" in name:
        raise InvalidSourceError(f"source {name!r} contains a backslash; use / between folders")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise InvalidSourceError(f"source {name!r} is an absolute path; give a name inside the collection")
    parts = name.split("/")
    if ".." in parts:
        raise InvalidSourceError(f"source {name!r} contains a '..' segment")
    if any(part in ("", ".") for part in parts):
        raise InvalidSourceError(f"source {name!r} has an empty or '.' segment")
    return name


def check_collection_name(name: object) -> str:
    if not isinstance(name, str) or not _COLLECTION_NAME.fullmatch(name) or len(name) > MAX_COLLECTION_CHARS:
        raise InvalidSourceError(
            f"collection must be 1..{MAX_COLLECTION_CHARS} letters, digits, '.', '_' or '-' starting with a letter "
            f"or digit, got {name!r}")
    return name


def collection_name_for(folder: Path, taken: set[str]) -> str:
    """A free collection name derived from a folder's name: ``notes``, ``notes-2``..."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.")[:MAX_COLLECTION_CHARS - 4] or "notes"
    if not base[0].isalnum():
        base = "n" + base
    name, n = base, 1
    while name in taken or name == UPLOADS_COLLECTION:
        n += 1
        name = f"{base}-{n}"
    return name


@dataclass(frozen=True)
class FoundFile:
    path: Path  # as reached through the walked folder (links not resolved)
    real: Path  # resolved


@dataclass
class Walk:
    files: list[FoundFile]
    skipped: list[tuple[str, str]]  # (path, reason): never silent


def walk(root: Path, suffixes: set[str], *, follow_outside: bool = False,
         ignore: Callable[[Path], bool] | None = None) -> Walk:
    """Every note file under ``root`` (resolved), hidden names skipped, and the
    folders and files for which ``ignore(path)`` is true. Links are followed only
    while they stay inside ``root`` unless ``follow_outside``; each real folder is
    entered once, so link loops end."""
    found, skipped, seen_dirs = [], [], set()

    def unreadable(exc: OSError) -> None:
        skipped.append((str(exc.filename), f"skipped: cannot read the folder ({exc.strerror})"))

    for folder, dirs, names in os.walk(root, followlinks=True, onerror=unreadable):
        real_folder = Path(os.path.realpath(folder))
        if real_folder in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add(real_folder)
        kept = []
        for d in sorted(dirs):
            link = Path(folder, d)
            if d.startswith(".") or (ignore and ignore(link)):
                continue
            reason = _outside(root, Path(os.path.realpath(link)), follow_outside)
            if reason:
                skipped.append((str(link), f"skipped: {reason}"))
            else:
                kept.append(d)
        dirs[:] = kept
        for name in sorted(names):
            path = Path(folder, name)
            if name.startswith(".") or path.suffix.lower() not in suffixes or (ignore and ignore(path)):
                continue
            real = Path(os.path.realpath(path))
            reason = _outside(root, real, follow_outside)
            if reason:
                skipped.append((str(path), f"skipped: {reason}"))
            else:
                found.append(FoundFile(path, real))
    return Walk(found, skipped)


def _outside(root: Path, real: Path, follow_outside: bool) -> str | None:
    if real.is_relative_to(root):
        return None
    if follow_outside and not _pseudo(real):
        return None
    where = "a kernel pseudo-file" if _pseudo(real) else "outside the folder"
    return f"a link to {real}, {where} (pass --follow-links to read links that leave the folder)"


def _pseudo(path: Path) -> bool:
    return any(path == Path(p) or path.is_relative_to(p) for p in PSEUDO_FILESYSTEMS)


def read_note(path: Path, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes (at most ``max_bytes``) and its stat, from one open:
    what was checked is what is read."""
    real = Path(os.path.realpath(path))
    if _pseudo(real):
        raise UnsupportedFileError(f"{path}: {real} is a kernel pseudo-file, not a note")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # a FIFO cannot block the open
    except OSError as exc:
        raise IngestError(f"{path}: cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsupportedFileError(f"{path}: not a regular file ({_file_type(info.st_mode)})")
        if info.st_size > max_bytes:
            raise FileTooLargeError(f"{path}: {info.st_size} bytes is over the {max_bytes}-byte limit")
        chunks, left = [], max_bytes + 1
        while left and (block := fh.read(min(left, 1 << 20))):
            chunks.append(block)
            left -= len(block)
        data = b"".join(chunks)
    if len(data) > max_bytes:
        raise FileTooLargeError(f"{path}: over the {max_bytes}-byte limit (it grew while read)")
    return data, info


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"


def stamp_of(info: os.stat_result) -> str:
    """A file's identity for skipping unchanged files without reading them:
    size, mtime, ctime and inode (ctime cannot be set back by ``touch``, so a
    same-size edit with a restored mtime is still seen)."""
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"


def is_settled(info: os.stat_result, now: float) -> bool:
    """A file changed in the last two seconds is not stamped: its next change
    could fall in the same clock tick, so it is re-read next time (git's "racy"
    rule)."""
    return now - max(info.st_ctime, info.st_mtime) >= 2.0


def relative_inside(path: Path, root: Path) -> str:
    return PurePosixPath(*path.relative_to(root).parts).as_posix()
