"""Ingest: load, deduplicate by content hash, chunk, embed, store.

Re-ingesting is incremental: a file whose size and modification time are
unchanged is skipped without being read; one whose content hash is unchanged
is only touched; a changed file (or a changed chunking setting) is re-chunked
and only its chunks are embedded; ``prune`` removes stored files that are gone.
Documents are committed in batches (one SQLite transaction each), so an ingest
killed at any instant leaves whole documents or none.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import chunkers
from retrieval.notebook import Notebook
from retrieval.store import ChunkRecord, DocumentRecord, chunk_id, document_id

from .errors import IngestError, UnsupportedFileError
from .loaders import KINDS, Loaded, load_bytes, load_file

DEFAULT_CHUNKING = {"method": "hybrid", "max_tokens": 256, "overlap": 32}


@dataclass(frozen=True)
class ChunkSettings:
    """Chunking method and parameters; stored per document, so a change re-chunks."""

    method: str = DEFAULT_CHUNKING["method"]
    params: tuple[tuple[str, Any], ...] = (("max_tokens", DEFAULT_CHUNKING["max_tokens"]), ("overlap", DEFAULT_CHUNKING["overlap"]))

    @classmethod
    def of(cls, method: str | None = None, **params: Any) -> "ChunkSettings":
        if method is None:
            method = DEFAULT_CHUNKING["method"]
            params = {"max_tokens": DEFAULT_CHUNKING["max_tokens"], "overlap": DEFAULT_CHUNKING["overlap"], **params}
        settings = cls(method, tuple(sorted(params.items())))
        settings.chunker()  # validate now: unknown names and bad values fail before any work
        return settings

    def chunker(self) -> chunkers.Chunker:
        return chunkers.get(self.method, **dict(self.params))

    @property
    def key(self) -> str:
        return json.dumps({"method": self.method, **dict(self.params)}, sort_keys=True)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged, "removed": self.removed,
            "failed": [{"source": s, "error": e} for s, e in self.failed], "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {self.unchanged} unchanged, "
                f"{len(self.removed)} removed, {len(self.failed)} failed; {self.chunks_embedded} chunks embedded "
                f"in {self.seconds:.2f}s")


@dataclass
class _Pending:
    source: str
    loaded: Loaded
    mtime: float | None
    size: int | None
    existed: bool


class Ingestor:
    def __init__(self, notebook: Notebook, chunking: ChunkSettings | None = None, *, batch_chunks: int = 256,
                 progress: bool = False) -> None:
        self.nb = notebook
        self.chunking = chunking or ChunkSettings.of()
        self.chunker = self.chunking.chunker()
        self.batch_chunks = batch_chunks
        self.progress = progress

    # --- public ---------------------------------------------------------------

    def ingest_paths(self, paths: Iterable[str | os.PathLike], *, prune: bool = False) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        files: list[tuple[str, Path]] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files += [(p.relative_to(path).as_posix(), p) for p in sorted(path.rglob("*"))
                          if p.is_file() and p.suffix.lower() in KINDS and not _hidden(p.relative_to(path))]
            elif path.is_file():
                files.append((path.name, path))
            else:
                report.failed.append((str(path), f"{path}: no such file or folder"))
        fingerprints = self.nb.store.fingerprints()
        seen = {source for source, _ in files}
        key = self.chunking.key
        with self.nb.writer() as writer:
            writer.set_meta("chunker", json.loads(key))
            pending: list[_Pending] = []
            for source, path in self._progress(files, "files"):
                try:
                    stat = path.stat()
                    known = fingerprints.get(source)
                    if known and known[0] == stat.st_mtime and known[1] == stat.st_size and known[3] == key:
                        report.unchanged += 1
                        continue
                    loaded = load_file(path)
                except (IngestError, OSError) as exc:
                    report.failed.append((source, str(exc)))
                    continue
                if known and known[2] == loaded.content_hash and known[3] == key:
                    writer.touch(document_id(source), stat.st_mtime, stat.st_size)
                    report.unchanged += 1
                    continue
                pending.append(_Pending(source, loaded, stat.st_mtime, stat.st_size, known is not None))
                if sum(len(p.loaded.text) for p in pending) > self.batch_chunks * 1500:
                    self._flush(writer, pending, report)
                    pending = []
            self._flush(writer, pending, report)
            if prune:
                for source, fp in fingerprints.items():
                    if source not in seen and fp[0] is not None:  # API texts have no mtime: never pruned
                        writer.delete(document_id(source))
                        report.removed.append(source)
        report.seconds = time.perf_counter() - started
        return report

    def ingest_loaded(self, loaded: Loaded, source: str) -> tuple[int, str]:
        """Store one already-loaded document (API uploads). Returns (id, status)."""
        if not isinstance(source, str) or not source.strip():
            raise IngestError("source must be a non-empty string")
        source = source.strip()
        if len(source) > 1024:
            raise IngestError(f"source is {len(source)} characters; the limit is 1024")
        if not loaded.text.strip():
            raise IngestError(f"{source}: the document has no text")
        known = self.nb.store.fingerprints().get(source)
        if known and known[2] == loaded.content_hash and known[3] == self.chunking.key:
            return document_id(source), "unchanged"
        report = IngestReport()
        with self.nb.writer() as writer:
            self._flush(writer, [_Pending(source, loaded, None, None, known is not None)], report)
        return document_id(source), "updated" if known else "added"

    def ingest_text(self, text: str, source: str, *, kind: str = "markdown") -> tuple[int, str]:
        if not isinstance(text, str):
            raise IngestError(f"text must be a string, got {type(text).__name__}")
        return self.ingest_loaded(load_bytes(text.encode("utf-8"), source or "text", kind), source)

    def ingest_upload(self, data: bytes, filename: str, source: str | None = None) -> tuple[int, str]:
        name = Path(filename or "").name
        if not name:
            raise UnsupportedFileError("the upload has no file name")
        return self.ingest_loaded(load_bytes(data, name), source or name)

    # --- internals --------------------------------------------------------------

    def _progress(self, items: Sequence, unit: str):
        if not self.progress:
            return items
        from tqdm import tqdm

        return tqdm(items, unit=unit, delay=1.0, leave=False)

    def _flush(self, writer, pending: list[_Pending], report: IngestReport) -> None:
        if not pending:
            return
        planned = []
        texts: list[str] = []
        for p in pending:
            chunks = self.chunker(p.loaded.text)
            planned.append((p, chunks))
            texts += [embedding_text(p.loaded.title, c) for c in chunks]
        vectors = self.nb.embed(texts) if texts else None
        batch = []
        at = 0
        for p, chunks in planned:
            doc = DocumentRecord(p.source, p.loaded.title, p.loaded.kind, p.loaded.text, p.loaded.content_hash,
                                 p.mtime, p.size, p.loaded.tags, self.chunking.key)
            records = [
                ChunkRecord(chunk_id(p.source, doc.content_hash, c.start, c.end), c.index, c.start, c.end, c.token_count,
                            list(c.meta.get("headings", [])), c.text, vectors[at + i])
                for i, c in enumerate(chunks)
            ]
            at += len(chunks)
            batch.append((doc, records))
            (report.updated if p.existed else report.added).append(p.source)
        writer.put(batch)
        report.chunks_embedded += len(texts)


def embedding_text(title: str, chunk: chunkers.Chunk) -> str:
    """What is embedded for a chunk: its heading path (or the title) as context, then the text."""
    headings = chunk.meta.get("headings") or []
    context = " > ".join(headings) if headings else title
    return f"{context}\n{chunk.text}" if context and not chunk.text.startswith("#") else chunk.text


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
