"""Ingest: load, deduplicate by content hash, chunk, embed, store.

Every document is ``collection/path`` (see ``ingest.sources``). Re-ingesting is
incremental: a file whose stamp (size, mtime, ctime, inode) is unchanged is
skipped without being read; one whose content hash is unchanged is only
touched; a changed file (or a changed chunking setting) is re-chunked and only
its chunks are embedded; ``prune`` removes stored documents whose files are gone
from the folders walked, and nothing else. Documents are committed in batches
(one SQLite transaction each), so an ingest killed at any instant leaves whole
documents or none. An ``Engine`` (``ingest.ray_engine``) may read, chunk and embed
the files elsewhere; what it hands back is decided on and stored here, the same way.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

import chunkers
from retrieval import (Backend, ChunkRecord, Collection, DocumentRecord, EmbeddingMismatchError, Known, Notebook,
                       WriteSession)
from retrieval.records import LEGACY_COLLECTION, chunk_id, document_id, source_name

from .errors import EmptyDocumentError, IngestError, UnsupportedFileError
from .loaders import DEFAULT_LIMITS, KINDS, LoadLimits, Loaded, kind_of, load_bytes
from .sources import (UPLOADS_COLLECTION, FoundFile, check_collection_name, check_source_name, collection_name_for,
                      is_settled, read_note, relative_inside, stamp_of, walk)

# Chosen on the Chroma benchmark and the own sets (README, "Retrieval quality").
DEFAULT_CHUNKING = {"method": "hybrid", "max_tokens": 256, "overlap": 32, "min_section_tokens": 32}
_DEFAULT_PARAMS = tuple(sorted((k, v) for k, v in DEFAULT_CHUNKING.items() if k != "method"))


@dataclass(frozen=True)
class ChunkSettings:
    """Chunking method and parameters; stored per document, so a change re-chunks."""

    method: str = DEFAULT_CHUNKING["method"]
    params: tuple[tuple[str, Any], ...] = _DEFAULT_PARAMS
    threads: int | None = None  # threads encoding one long text: speed only, so not part of ``key``

    @classmethod
    def of(cls, method: str | None = None, *, threads: int | None = None, **params: Any) -> "ChunkSettings":
        if method is None:
            method = DEFAULT_CHUNKING["method"]
            params = {**dict(_DEFAULT_PARAMS), **params}
        settings = cls(method, tuple(sorted(params.items())), threads)
        settings.chunker()  # validate now: unknown names and bad values fail before any work
        return settings

    @classmethod
    def for_notes(cls, method: str | None = None, *, threads: int | None = None, **params: Any) -> "ChunkSettings":
        """``of``, with the ingest defaults (``DEFAULT_CHUNKING``) for the parameters not given that ``method``
        takes: ``--method hybrid`` alone chunks like the default, and ``--method recursive`` at the default
        budget, not at the classes' own 512/0 (hybrid 800/200), sized for documents rather than search hits."""
        if method is not None:
            accepted = chunkers.parameters(chunkers.registry.chunker_class(method))
            params = {**{k: v for k, v in _DEFAULT_PARAMS if k in accepted}, **params}
        return cls.of(method, threads=threads, **params)

    def chunker(self) -> chunkers.Chunker:
        return _chunker(self)

    @property
    def key(self) -> str:
        return json.dumps({"method": self.method, **dict(self.params)}, sort_keys=True)


@functools.lru_cache(maxsize=8)
def _chunker(settings: ChunkSettings) -> chunkers.Chunker:
    threads = {} if settings.threads is None else {"threads": settings.threads}
    return chunkers.get(settings.method, **dict(settings.params), **threads)


@dataclass
class Prepared:
    """A document loaded and chunked, not yet embedded: what a worker process
    hands back (``prepare`` needs no notebook and its result pickles)."""

    loaded: Loaded
    chunks: list[chunkers.Chunk] | None = None
    vectors: Any = None  # (len(chunks), dim) float32, when an engine embedded them already


def check_has_text(loaded: Loaded, name: str) -> Loaded:
    """One rule for the CLI and the API: a note with no text is skipped, not stored."""
    if not loaded.text.strip():
        raise EmptyDocumentError(f"{name}: skipped: empty (no text{' after the front matter' if loaded.kind == 'markdown' else ''})")
    return loaded


def prepare(data: bytes, name: str, kind: str | None, chunking: "ChunkSettings", limits: LoadLimits | None = None) -> Prepared:
    """Load and chunk one document's bytes."""
    loaded = check_has_text(load_bytes(data, name, kind, limits), name)
    return Prepared(loaded, chunking.chunker()(loaded.text))


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)  # what a loader cut or ignored, per source
    chunks_embedded: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged, "removed": self.removed,
            "failed": [{"source": s, "error": e} for s, e in self.failed],
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "notices": [{"source": s, "notice": n} for s, n in self.notices],
            "chunks_embedded": self.chunks_embedded, "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {self.unchanged} unchanged, "
                f"{len(self.removed)} removed, {len(self.skipped)} skipped, {len(self.failed)} failed; "
                f"{self.chunks_embedded} chunks embedded in {self.seconds:.2f}s")


@dataclass
class PendingDocument:
    """A document ready to embed and store (``Ingestor.write``)."""

    collection: str
    path: str
    prepared: Prepared
    mtime: float | None
    size: int | None
    stamp: str | None
    existed: bool

    @property
    def source(self) -> str:
        return source_name(self.collection, self.path)

    def record(self, chunker: str) -> DocumentRecord:
        loaded = self.prepared.loaded
        return DocumentRecord(self.source, loaded.title, loaded.kind, loaded.text, loaded.content_hash, self.mtime, self.size,
                              loaded.tags, chunker, self.collection, self.path, self.stamp, loaded.aliases, loaded.links,
                              loaded.line_offset)


def refresh_meta(writer: WriteSession, old: Known, pending: PendingDocument, chunker: str) -> bool:
    """Record an unchanged text's file identity, and its metadata (title, tags, aliases,
    links) when that changed. True when it did."""
    record = pending.record(chunker)
    changed = record.meta_hash != old.meta_hash
    writer.touch(record.id, pending.mtime, pending.size, pending.stamp, meta=record if changed else None)
    return changed


@dataclass(frozen=True)
class _Target:
    """A file to ingest and the document it is."""

    found: FoundFile
    collection: str
    path: str

    @property
    def source(self) -> str:
        return source_name(self.collection, self.path)


@dataclass(frozen=True)
class FileJob:
    """A file to read: its target, and the content hash that would make it
    unchanged (the stored hash when the chunking is the same, else None)."""

    target: _Target
    unchanged_hash: str | None

    @property
    def source(self) -> str:
        return self.target.source


@dataclass
class FileRead:
    """What reading one file gave: a loaded document (chunked and embedded when an
    engine did that too) with its stat, or why it is skipped or failed."""

    prepared: Prepared | None = None
    info: os.stat_result | None = None
    empty: str | None = None  # the note has no text: skipped (and removed if stored)
    error: str | None = None


def read_file(job: FileJob, limits: LoadLimits) -> FileRead:
    """Read and load one file; errors become values so an engine can ship them back."""
    path = job.target.found.path
    try:
        data, info = read_note(path, limits.max_file_bytes)
        loaded = check_has_text(load_bytes(data, str(path), kind_of(path.name), limits), job.source)
    except EmptyDocumentError as exc:
        return FileRead(empty=str(exc))
    except (IngestError, OSError) as exc:
        return FileRead(error=str(exc))
    return FileRead(Prepared(loaded), info)


class Engine(Protocol):
    """Reads, chunks and embeds files somewhere else (``ingest.ray_engine``); the
    ingest stores what it yields through its own writer, so storage is unchanged."""

    def read(self, jobs: Sequence[FileJob], chunking: ChunkSettings, limits: LoadLimits,
             embedding_model: str) -> Iterator[FileRead]:
        """One ``FileRead`` per job, in order; a document to store comes chunked, with its vectors."""


class Ingestor:
    def __init__(self, notebook: Notebook, chunking: ChunkSettings | None = None, *, batch_chunks: int = 256,
                 progress: bool = False, limits: LoadLimits | None = None, follow_links: bool = False,
                 ignore: Callable[[Path], bool] | None = None, engine: Engine | None = None) -> None:
        self.nb = notebook
        self.engine = engine  # None: files are read, chunked and embedded here
        self.chunking = chunking or ChunkSettings.of()
        self.chunker = self.chunking.chunker()
        self.batch_chunks = batch_chunks
        self.progress = progress
        self.limits = limits or DEFAULT_LIMITS
        self.follow_links = follow_links
        self.ignore = ignore  # paths a folder walk leaves out besides hidden names (watch mode's globs)

    # --- folders and files ------------------------------------------------------

    def ingest_paths(self, paths: Iterable[str | os.PathLike], *, prune: bool = False,
                     collection: str | None = None) -> IngestReport:
        """Ingest files and folders. Each folder is a collection (named after it,
        or ``collection``); a file keeps the identity it already has under any
        collection. ``prune`` removes documents whose files are gone from the
        folders walked now, never from anywhere else."""
        started = time.perf_counter()
        report = IngestReport()
        paths = [Path(p) for p in paths]
        if collection is not None:
            check_collection_name(collection)
            if sum(p.is_dir() for p in paths) != 1:
                raise IngestError("--collection names one folder: give exactly one folder with it")
        key = self.chunking.key
        with self.nb.writer() as writer:
            known = self.nb.backend.known()  # under the write lock: no other writer changes it meanwhile
            writer.set_meta("chunker", json.loads(key))
            plan = _Plan(self, known, collection)
            for path in paths:
                plan.add(path, report)
            jobs = self._screen(plan.targets, known, key, report)
            reads = self.engine.read(jobs, self.chunking, self.limits, self.nb.embedding_model) if self.engine \
                else (read_file(job, self.limits) for job in jobs)
            pending: list[PendingDocument] = []
            pending_chars = 0
            now = time.time()
            for job, read in zip(self._progress(jobs, "files"), reads):
                target, old = job.target, known.get(job.source)
                source = job.source
                if read.empty is not None:
                    report.skipped.append((source, read.empty))
                    if old:  # the note was emptied: its stored text is gone from the file too
                        writer.delete(document_id(source))
                        report.removed.append(source)
                    continue
                if read.error is not None:
                    report.failed.append((source, read.error))
                    continue
                loaded, info = read.prepared.loaded, read.info
                report.notices += [(source, n) for n in loaded.notices]
                stamp = stamp_of(info) if is_settled(info, now) else None
                doc = PendingDocument(target.collection, target.path, read.prepared, info.st_mtime, info.st_size, stamp,
                                      old is not None)
                if old and old.content_hash == loaded.content_hash and old.chunker == key:
                    refresh_meta(writer, old, doc, key)  # the text is unchanged: nothing to embed
                    report.unchanged += 1
                    continue
                pending.append(doc)
                pending_chars += len(loaded.text)
                if pending_chars > self.batch_chunks * 1500:
                    self.write(writer, pending, report)
                    pending, pending_chars = [], 0
            self.write(writer, pending, report)
            if prune:
                for source in plan.gone():
                    writer.delete(document_id(source))
                    report.removed.append(source)
        report.seconds = time.perf_counter() - started
        return report

    # --- API documents ----------------------------------------------------------

    def ingest_prepared(self, prepared: Prepared, source: str, collection: str | None = None) -> tuple[int, str]:
        """Store one loaded (and perhaps chunked) document under ``collection/source``.
        Returns (id, "added" | "updated" | "unchanged")."""
        name = check_source_name(source)
        check_has_text(prepared.loaded, name)
        collection = self._upload_collection(name, collection)
        full = source_name(collection, name)
        old = self.nb.backend.known_source(full)
        doc = PendingDocument(collection, name, prepared, None, None, None, old is not None)
        if old and old.content_hash == prepared.loaded.content_hash and old.chunker == self.chunking.key:
            if old.meta_hash == doc.record(self.chunking.key).meta_hash:
                return document_id(full), "unchanged"
            with self.nb.writer() as writer:
                refresh_meta(writer, old, doc, self.chunking.key)
            return document_id(full), "updated"
        with self.nb.writer() as writer:
            self.write(writer, [doc], IngestReport())
        return document_id(full), "updated" if old else "added"

    def ingest_loaded(self, loaded: Loaded, source: str, collection: str | None = None) -> tuple[int, str]:
        return self.ingest_prepared(Prepared(loaded), source, collection)

    def ingest_text(self, text: str, source: str, *, kind: str = "markdown", collection: str | None = None) -> tuple[int, str]:
        if not isinstance(text, str):
            raise IngestError(f"text must be a string, got {type(text).__name__}")
        name = check_source_name(source)
        return self.ingest_prepared(prepare(text.encode("utf-8"), name, kind, self.chunking, self.limits), name, collection)

    def ingest_upload(self, data: bytes, filename: str, source: str | None = None,
                      collection: str | None = None) -> tuple[int, str]:
        name = Path(filename or "").name
        if not name:
            raise UnsupportedFileError("the upload has no file name")
        source = check_source_name(source or name)
        return self.ingest_prepared(prepare(data, name, None, self.chunking, self.limits), source, collection)

    def _upload_collection(self, name: str, requested: str | None) -> str:
        """Uploads go to a collection without a folder: ``uploads`` unless named.
        A document uploaded before collections existed keeps its bare name."""
        backend = self.nb.backend
        if requested is None:
            legacy = backend.known_source(name)
            if legacy and legacy.collection == LEGACY_COLLECTION and legacy.mtime is None:
                return LEGACY_COLLECTION
            requested = UPLOADS_COLLECTION
        check_collection_name(requested)
        existing = backend.collections().get(requested)
        if existing and existing.root:
            raise IngestError(f"collection {requested!r} is the folder {existing.root}: its documents come from its "
                              "files; upload to another collection")
        if existing is None:
            backend.add_collection(requested, None)
        return requested

    # --- internals --------------------------------------------------------------

    def _progress(self, items: Sequence, unit: str):
        if not self.progress:
            return items
        from tqdm import tqdm

        return tqdm(items, unit=unit, delay=1.0, leave=False)

    def _screen(self, targets: Sequence[_Target], known: dict[str, Known], key: str, report: IngestReport) -> list[FileJob]:
        """The targets to read: a file whose stamp and chunking are unchanged is not read."""
        jobs = []
        for target in targets:
            old = known.get(target.source)
            try:
                info = os.stat(target.found.path)
            except OSError as exc:
                report.failed.append((target.source, str(exc)))
                continue
            if old and old.stamp is not None and old.stamp == stamp_of(info) and old.chunker == key:
                report.unchanged += 1
                continue
            jobs.append(FileJob(target, old.content_hash if old and old.chunker == key else None))
        return jobs

    def write(self, writer: WriteSession, pending: list[PendingDocument], report: IngestReport) -> None:
        """Chunk (unless prepared), embed and store documents in one batch of ``writer``."""
        if not pending:
            return
        planned = []
        texts: list[str] = []  # of the documents not embedded yet
        for p in pending:
            loaded = p.prepared.loaded
            chunks = p.prepared.chunks if p.prepared.chunks is not None else self.chunker(loaded.text)
            planned.append((p, chunks))
            if p.prepared.vectors is None:
                texts += [embedding_text(loaded.title, c) for c in chunks]
        embedded = self.nb.embed(texts) if texts else None
        batch = []
        at = 0
        for p, chunks in planned:
            source = p.source
            if p.prepared.vectors is None:
                vectors, offset = embedded, at
                at += len(chunks)
            else:
                vectors, offset = _checked_vectors(self.nb, p.prepared.vectors, len(chunks), source), 0
            doc = p.record(self.chunking.key)
            records = [
                ChunkRecord(chunk_id(source, doc.content_hash, c.start, c.end), c.index, c.start, c.end, c.token_count,
                            list(c.meta.get("headings", [])), c.text, vectors[offset + i])
                for i, c in enumerate(chunks)
            ]
            batch.append((doc, records))
            (report.updated if p.existed else report.added).append(source)
        writer.put(batch)
        report.chunks_embedded += sum(len(chunks) for _, chunks in planned)


class _Plan:
    """Which document each file found is, and which folders were walked."""

    def __init__(self, ingestor: Ingestor, known: dict[str, Known], wanted: str | None) -> None:
        self.ingestor = ingestor
        self.backend: Backend = ingestor.nb.backend
        self.known = known
        self.wanted = wanted
        self.collections = self.backend.collections()
        self.by_file = {Path(self.collections[k.collection].root, k.path): k for k in known.values()
                        if k.collection in self.collections and self.collections[k.collection].root}
        self.targets: list[_Target] = []
        self.scopes: list[Path] = []
        self._sources: set[str] = set()

    def add(self, path: Path, report: IngestReport) -> None:
        if path.is_dir():
            root = path.resolve()
            collection = self._collection_for(root, self.wanted)
            found = walk(root, set(KINDS), follow_outside=self.ingestor.follow_links, ignore=self.ingestor.ignore)
            report.skipped += found.skipped
            self.scopes.append(root)
            for f in found.files:
                self._target(f, collection)
        elif path.exists() or path.is_symlink():
            parent = path.absolute().parent.resolve()
            found = FoundFile(parent / path.name, Path(os.path.realpath(path)))
            if not found.real.is_relative_to(parent) and not self.ingestor.follow_links:
                report.skipped.append((str(path), f"skipped: a link to {found.real}, outside its folder "
                                                  "(pass --follow-links to read links that leave the folder)"))
                return
            inner = self._innermost(found.real)
            self._target(found, inner.name if inner else self._collection_for(parent, None))
        else:
            report.failed.append((str(path), f"{path}: no such file or folder"))

    def _target(self, found: FoundFile, collection: str) -> None:
        known = self.by_file.get(found.real)
        if known:  # a file keeps the identity it has, whichever folder reached it
            target = _Target(found, known.collection, known.path)
        else:
            root = Path(self.collections[collection].root)
            where = found.real if found.real.is_relative_to(root) else found.path
            target = _Target(found, collection, relative_inside(where, root))
        if target.source not in self._sources:
            self._sources.add(target.source)
            self.targets.append(target)

    def _innermost(self, path: Path) -> Collection | None:
        holding = [c for c in self.collections.values() if c.root and path.is_relative_to(c.root)]
        return max(holding, key=lambda c: len(c.root), default=None)

    def _collection_for(self, root: Path, wanted: str | None) -> str:
        exact = next((c for c in self.collections.values() if c.root == str(root)), None)
        if exact:
            if wanted is not None and wanted != exact.name:
                raise IngestError(f"folder {root} is already the collection {exact.name!r}")
            return exact.name
        if wanted is None:
            holding = self._innermost(root)
            if holding:
                return holding.name
            legacy = self.collections.get(LEGACY_COLLECTION)
            if legacy and legacy.root is None and any(
                    k.collection == LEGACY_COLLECTION and k.mtime is not None and (root / k.path).is_file()
                    for k in self.known.values()):
                return self._save(LEGACY_COLLECTION, root, claim=True)
            return self._save(collection_name_for(root, set(self.collections)), root)
        if wanted in self.collections:
            raise IngestError(f"collection {wanted!r} already holds {self.collections[wanted].root or 'uploads'}")
        return self._save(wanted, root)

    def _save(self, name: str, root: Path, *, claim: bool = False) -> str:
        if claim:
            collection = self.backend.set_collection_root(name, str(root))
        else:
            collection = self.backend.add_collection(name, str(root))
        self.collections[name] = collection
        self.by_file.update({root / k.path: k for k in self.known.values() if k.collection == name})
        return name

    def gone(self) -> list[str]:
        """Stored file documents under the folders walked whose files were not found."""
        out = []
        for source, k in self.known.items():
            collection = self.collections.get(k.collection)
            if source in self._sources or k.mtime is None or not collection or not collection.root:
                continue  # seen now, an upload, or not a folder's
            if any(Path(collection.root, k.path).is_relative_to(scope) for scope in self.scopes):
                out.append(source)
        return sorted(out)


def _checked_vectors(nb: Notebook, vectors: Any, count: int, source: str) -> np.ndarray:
    """An engine's vectors for one document: one row per chunk, of the store's dimension."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != count:
        raise IngestError(f"{source}: the engine gave vectors of shape {vectors.shape} for {count} chunks")
    recorded = nb.backend.embedding()
    if recorded and vectors.shape[1] != recorded.dim:
        raise EmbeddingMismatchError(f"the engine's embedder gives {vectors.shape[1]} dimensions but data folder "
                                     f"{nb.folder} holds {recorded.dim}-dimensional vectors")
    return vectors


def embedding_text(title: str, chunk: chunkers.Chunk) -> str:
    """What is embedded for a chunk: the title and its heading path as context,
    then the text. The title stays when there are headings: a man page's
    "Options" section is about its command only through the title."""
    headings = list(chunk.meta.get("headings") or [])
    if title and (not headings or headings[0].strip().lower() != title.strip().lower()):
        headings.insert(0, title)
    context = " > ".join(headings)
    return f"{context}\n{chunk.text}" if context and not chunk.text.startswith("#") else chunk.text

