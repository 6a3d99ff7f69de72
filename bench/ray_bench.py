#!/usr/bin/env python3
"""Ray ingest against local ingest on the same machine, and the scaling curve
predicted for N workers from measured per-core rates.

    .venv/bin/python bench/ray_bench.py                                      # the sample notes, copied to ~1 MB
    .venv/bin/python bench/ray_bench.py --source bench/corpus/markdown.txt --mb 2

Steps, each timed on its own:

1. The corpus: ``--source`` (a text file, cut at blank lines into notes of about
   ``--note-kb``) or the sample notes copied with a numbered line, ``--mb`` in all.
2. Local ingest (``Ingestor`` with ``--threads`` torch threads), the model warm.
3. Ray start-up (``ray.init(num_cpus=--cpus)``), reported apart.
4. Ray ingest into a fresh folder (the pool: one embedding actor per CPU but one),
   twice; chunk ids and texts are checked equal to the local ingest's and the
   largest vector difference is reported.
5. Per-core rates with one thread, the code the actors run: read + chunk
   (chunks/s) and embed (chunks/s, batches of ``files_per_batch`` files), and the
   driver's store rate: an ingest fed by an engine that hands back those
   already-embedded files (planning and writes only).
6. The model: ``T(N) = F + C / min(N·e, R·c, w)`` with ``C`` chunks, ``e`` embed and
   ``c`` read+chunk rates per CPU, ``R = ceil(N·e/c)`` reading CPUs, ``w`` the
   driver's store rate and ``F`` the fixed cost of a run (actors starting, model
   loading), taken from step 4 as ``T_ray − C/min(e, c, w)``.

Writes ``--output`` (markdown) and the same figures as JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it; the Ray workers inherit it

import numpy as np  # noqa: E402

import runtime  # noqa: E402
from ingest import ChunkSettings, Ingestor  # noqa: E402
from ingest.pipeline import embedding_text, read_file  # noqa: E402
from ingest.ray_engine import RayEngine  # noqa: E402
from retrieval import Notebook  # noqa: E402

WORKERS = (1, 2, 4, 8, 16, 32, 64, 128)


def make_notes(folder: Path, source: Path | None, mb: float, note_kb: float) -> int:
    folder.mkdir(parents=True)
    budget, written = int(mb * 1e6), 0
    if source is None:
        samples = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "samples" / "notes").glob("*.md"))]
        texts = (f"{samples[i % len(samples)]}\n\nCopy {i}.\n" for i in range(10**6))
    else:
        texts = _cut(source.read_text(encoding="utf-8", errors="replace"), int(note_kb * 1000))
    for i, text in enumerate(texts):
        if written >= budget:
            break
        (folder / f"note-{i:05d}.md").write_text(text, encoding="utf-8")
        written += len(text.encode("utf-8"))
    return len(list(folder.iterdir()))


def _cut(text: str, size: int):
    note: list[str] = []
    length = 0
    for paragraph in text.split("\n\n"):
        note.append(paragraph)
        length += len(paragraph) + 2
        if length >= size:
            yield "\n\n".join(note) + "\n"
            note, length = [], 0


def snapshot(nb: Notebook) -> list[tuple]:
    return sorted(nb.store.db.execute("SELECT id, doc_id, start, end, text FROM chunks").fetchall())


def max_vector_difference(a: Notebook, b: Notebook) -> float:
    ia, ib = a.index().index, b.index().index
    return max(float(np.abs(ia.reconstruct(cid) - ib.reconstruct(cid)).max()) for cid, *_ in snapshot(a))


class Replay:
    """An engine that hands back files already read, chunked and embedded: what is
    left is the driver's share (planning and storing)."""

    def __init__(self, reads: dict[str, object]) -> None:
        self.reads = reads

    def read(self, jobs, chunking, limits, embedding_model):
        return (self.reads[job.source] for job in jobs)


class Recorder:
    """An engine that does the actors' work here, with one thread, timing reading
    + chunking and embedding apart; it keeps what it made for ``Replay``."""

    def __init__(self, model: str, files_per_batch: int) -> None:
        runtime.configure(threads=1)
        runtime.configure_torch(1)
        self.embed = runtime.get_embedder(model)
        self.embed(["warm up"])
        self.files_per_batch = files_per_batch
        self.reads: dict[str, object] = {}
        self.chunk_seconds = self.embed_seconds = 0.0

    def read(self, jobs, chunking, limits, embedding_model):
        started = time.perf_counter()
        reads = [read_file(job, limits) for job in jobs]
        for read in reads:
            read.prepared.chunks = chunking.chunker()(read.prepared.loaded.text)
        self.chunk_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for at in range(0, len(reads), self.files_per_batch):
            group = [r.prepared for r in reads[at : at + self.files_per_batch]]
            vectors, offset = self.embed([embedding_text(p.loaded.title, c) for p in group for c in p.chunks]), 0
            for prepared in group:
                prepared.vectors, offset = vectors[offset : offset + len(prepared.chunks)], offset + len(prepared.chunks)
        self.embed_seconds += time.perf_counter() - started
        self.reads.update({job.source: read for job, read in zip(jobs, reads)})
        return iter(reads)


def predict(chunks: int, fixed: float, e: float, c: float, w: float) -> list[dict]:
    rows = []
    for n in WORKERS:
        readers = math.ceil(n * e / c)
        rate = min(n * e, readers * c, w)
        rows.append({"embed_actors": n, "read_actors": readers, "cpus": n + readers, "seconds": fixed + chunks / rate,
                     "chunks_per_s": rate, "bound": "driver" if rate == w else "embedding" if rate == n * e else "reading"})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None, help="a text file cut into notes (default: the sample notes, copied)")
    parser.add_argument("--mb", type=float, default=1.0, help="corpus size in MB (default 1)")
    parser.add_argument("--note-kb", type=float, default=4.0, help="note size when cutting --source (default 4)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the local ingest (default 2)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "ray.md")
    args = parser.parse_args()
    chunking = ChunkSettings.of()
    loads = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    try:
        folder = work / "notes"
        files = make_notes(folder, args.source, args.mb, args.note_kb)
        runtime.configure(threads=args.threads)
        local = Notebook(work / "local", embedding_model=args.model)
        local.embed(["warm up"])
        started = time.perf_counter()
        report = Ingestor(local, chunking).ingest_paths([folder])
        t_local, chunks = time.perf_counter() - started, report.chunks_embedded
        print(f"local: {files} files, {chunks} chunks in {t_local:.1f}s (load {os.getloadavg()[0]:.1f})", flush=True)

        engine = RayEngine(num_cpus=args.cpus, stall_seconds=600)
        started = time.perf_counter()
        engine.connect()
        t_start = time.perf_counter() - started
        pool = engine.pool()
        t_ray = []
        for run in (1, 2):
            remote = Notebook(work / f"ray{run}", embedding_model=args.model)
            started = time.perf_counter()
            Ingestor(remote, chunking, engine=engine).ingest_paths([folder])
            t_ray.append(time.perf_counter() - started)
            if snapshot(remote) != snapshot(local):
                raise SystemExit("the Ray ingest stored other chunks than the local one")
            print(f"ray run {run}: {t_ray[-1]:.1f}s ({t_ray[-1] / t_local:.2f}x local; load {os.getloadavg()[0]:.1f})", flush=True)
        difference = max_vector_difference(local, remote)
        engine.close()

        recorder = Recorder(args.model, engine.files_per_batch)
        Ingestor(Notebook(work / "recorded", embedding_model=args.model), chunking, engine=recorder).ingest_paths([folder])
        e, c = chunks / recorder.embed_seconds, chunks / recorder.chunk_seconds
        replay = Notebook(work / "replay", embedding_model=args.model)
        started = time.perf_counter()
        Ingestor(replay, chunking, engine=Replay(recorder.reads)).ingest_paths([folder])
        w = chunks / (time.perf_counter() - started)
        loads.append(os.getloadavg()[0])
        best = min(t_ray)
        fixed = max(0.0, best - chunks / min(e, c, w))
        figures = {"files": files, "chunks": chunks, "model": args.model, "cpus": args.cpus, "local_threads": args.threads,
                   "local_seconds": t_local, "ray_start_seconds": t_start, "ray_seconds": t_ray, "ratio": best / t_local,
                   "pool": pool, "load_average": loads, "max_vector_difference": difference, "embed_per_core_per_s": e,
                   "chunk_per_core_per_s": c, "driver_store_per_s": w, "fixed_seconds": fixed,
                   "predicted": predict(chunks, fixed, e, c, w)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(args.output, figures)
    print(args.output.read_text())
    return 0


def write_report(path: Path, f: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(f, indent=2))
    lines = [
        f"Corpus: {f['files']} notes, {f['chunks']} chunks (hybrid 256/32), model {f['model']}; Ray on {f['cpus']} CPUs "
        f"({f['pool']['actors']} embedding actor, {f['pool']['read_cpus']} reading), local with {f['local_threads']} torch threads; "
        f"1-minute load average {f['load_average'][0]:.1f} at the start, {f['load_average'][1]:.1f} at the end.",
        "",
        "| | seconds | chunks/s | vs local |",
        "|---|---|---|---|",
        f"| local ingest | {f['local_seconds']:.1f} | {f['chunks'] / f['local_seconds']:.0f} | 1.00x |",
    ]
    for run, seconds in enumerate(f["ray_seconds"], start=1):
        lines.append(f"| Ray ingest, run {run} (Ray up) | {seconds:.1f} | {f['chunks'] / seconds:.0f} | {seconds / f['local_seconds']:.2f}x |")
    lines += [
        f"| Ray start-up (`ray.init`), apart | {f['ray_start_seconds']:.1f} | | |",
        "",
        f"Same chunk ids, offsets and texts as the local ingest; largest vector difference {f['max_vector_difference']:.1e}.",
        f"Per core (one thread): embed {f['embed_per_core_per_s']:.0f} chunks/s, read + chunk {f['chunk_per_core_per_s']:.0f} "
        f"chunks/s; the driver stores {f['driver_store_per_s']:.0f} chunks/s; fixed cost of a run F = {f['fixed_seconds']:.1f}s.",
        "",
        f"Predicted for this corpus ({f['chunks']} chunks) and for 10 million chunks:",
        "",
        "| embedding actors | reading actors | CPUs | seconds, this corpus | hours, 10M chunks | bound by |",
        "|---|---|---|---|---|---|",
    ]
    for row in f["predicted"]:
        hours = (f["fixed_seconds"] + 10_000_000 / row["chunks_per_s"]) / 3600
        lines.append(f"| {row['embed_actors']} | {row['read_actors']} | {row['cpus']} | {row['seconds']:.1f} | {hours:.1f} | {row['bound']} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
