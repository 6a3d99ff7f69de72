#!/usr/bin/env python3
"""Ray ingest against local ingest on the same machine, and the scaling curve
predicted for N actors from measured per-core rates.

    .venv/bin/python bench/ray_bench.py --source bench/corpus/markdown.txt --mb 2
    .venv/bin/python bench/ray_bench.py --model all-MiniLM-L6-v2          # the torch backend

Steps, each timed on its own:

1. The corpus: ``--source`` (a text file, cut at blank lines into notes of about
   ``--note-kb``) or the sample notes copied with a numbered line, ``--mb`` in all.
2. Start-up, reported apart: ``ray.init(num_cpus=--cpus)``, then ``RayEngine.warm``
   (the actors start and load the model).
3. ``--rounds`` rounds of a local ingest (``Ingestor`` with ``--threads`` threads,
   the model warm) and a Ray ingest on the warm pool, each into a fresh folder and
   interleaved, so that load from other processes falls on both alike; chunk ids and
   texts are checked equal to the local ingest's, the largest vector difference reported.
4. Per-core rates with one thread, the code the actors run: read + chunk and embed
   (chunks/s, batches of ``files_per_batch`` files), and the driver's store rate: an
   ingest fed by an engine that hands back those already-embedded files.
5. The model: ``T(N) = C / min(N·a, w)`` for ``N`` actors on ``N + 1`` CPUs (one
   thread each), ``a = 1 / (1/e + 1/c)`` an actor's rate (it reads, chunks and embeds),
   ``w`` the driver's store rate, ``C`` chunks; start-up is paid once per session.

Writes ``--output`` (markdown) and the same figures as JSON beside it.
"""

from __future__ import annotations

import argparse
import json
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


def one_thread_embedder(model: str):
    """``model`` with one thread: a new ONNX session (the shared one keeps its threads), or torch set to one."""
    name, backend = runtime.split_spec(model)
    if backend.startswith("onnx"):
        return runtime.OnnxEmbedder(runtime.resolve_model_path(name), variant="int8" if backend == "onnx-int8" else "fp32",
                                    name=model, threads=1)
    runtime.configure(threads=1)
    runtime.configure_torch(1)
    return runtime.get_embedder(model)


class Recorder:
    """An engine that does the actors' work here, with one thread, timing reading
    + chunking and embedding apart; it keeps what it made for ``Replay``."""

    def __init__(self, model: str, files_per_batch: int) -> None:
        self.embed = one_thread_embedder(model)
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


def predict(chunks: int, e: float, c: float, w: float) -> list[dict]:
    actor = 1 / (1 / e + 1 / c)  # an actor reads, chunks and embeds its batches in turn
    rows = []
    for n in WORKERS:
        rate = min(n * actor, w)
        rows.append({"actors": n, "cpus": n + 1, "seconds": chunks / rate, "chunks_per_s": rate,
                     "bound": "driver" if rate == w else "actors"})
    return rows


def ingest(folder: Path, work: Path, name: str, model: str, chunking, engine=None) -> tuple[float, Notebook, int]:
    nb = Notebook(work / name, embedding_model=model)
    started = time.perf_counter()
    report = Ingestor(nb, chunking, engine=engine).ingest_paths([folder])
    return time.perf_counter() - started, nb, report.chunks_embedded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None, help="a text file cut into notes (default: the sample notes, copied)")
    parser.add_argument("--mb", type=float, default=1.0, help="corpus size in MB (default 1)")
    parser.add_argument("--note-kb", type=float, default=4.0, help="note size when cutting --source (default 4)")
    parser.add_argument("--model", default=runtime.embedder_spec(runtime.DEFAULT_MODEL, runtime.AUTO),
                        help="embedding model spec (default: what a new data folder gets, e.g. all-MiniLM-L6-v2@onnx-int8)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="embedding threads of the local ingest (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="local + Ray rounds (default 2)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "ray.md")
    args = parser.parse_args()
    chunking = ChunkSettings.of()
    loads = [os.getloadavg()[0]]
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    try:
        folder = work / "notes"
        files = make_notes(folder, args.source, args.mb, args.note_kb)
        runtime.configure(threads=args.threads)
        runtime.get_embedder(args.model)(["warm up"])  # the local ingest's model, loaded before it is timed

        engine = RayEngine(num_cpus=args.cpus, stall_seconds=600)
        started = time.perf_counter()
        engine.connect()
        t_init = time.perf_counter() - started
        started = time.perf_counter()
        engine.warm(args.model)
        t_warm = time.perf_counter() - started
        print(f"start-up: ray.init {t_init:.1f}s, pool warm-up {t_warm:.1f}s", flush=True)
        rounds = []
        for run in range(1, args.rounds + 1):
            t_local, local, chunks = ingest(folder, work, f"local{run}", args.model, chunking)
            t_ray, remote, _ = ingest(folder, work, f"ray{run}", args.model, chunking, engine)
            if snapshot(remote) != snapshot(local):
                raise SystemExit("the Ray ingest stored other chunks than the local one")
            rounds.append({"local": t_local, "ray": t_ray, "ratio": t_ray / t_local, "load": os.getloadavg()[0]})
            print(f"round {run}: local {t_local:.1f}s, Ray {t_ray:.1f}s ({t_ray / t_local:.2f}x; "
                  f"load {rounds[-1]['load']:.1f})", flush=True)
        difference = max_vector_difference(local, remote)
        pool = engine.pool()
        engine.close()

        recorder = Recorder(args.model, engine.files_per_batch)
        Ingestor(Notebook(work / "recorded", embedding_model=args.model), chunking, engine=recorder).ingest_paths([folder])
        e, c = chunks / recorder.embed_seconds, chunks / recorder.chunk_seconds
        replay = Notebook(work / "replay", embedding_model=args.model)
        started = time.perf_counter()
        Ingestor(replay, chunking, engine=Replay(recorder.reads)).ingest_paths([folder])
        w = chunks / (time.perf_counter() - started)
        loads.append(os.getloadavg()[0])
        figures = {"files": files, "chunks": chunks, "model": args.model, "cpus": args.cpus, "local_threads": args.threads,
                   "ray_init_seconds": t_init, "warm_seconds": t_warm, "rounds": rounds, "pool": pool,
                   "load_average": loads, "max_vector_difference": difference, "embed_per_core_per_s": e,
                   "chunk_per_core_per_s": c, "driver_store_per_s": w, "predicted": predict(chunks, e, c, w)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(args.output, figures)
    print(args.output.read_text())
    return 0


def write_report(path: Path, f: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(f, indent=2))
    pool, chunks = f["pool"], f["chunks"]
    lines = [
        f"Corpus: {f['files']} notes, {chunks} chunks (hybrid 256/32), model {f['model']}; Ray on {f['cpus']} CPUs "
        f"({pool['actors']} actor with {pool['threads']} threads), local with {f['local_threads']} threads; "
        f"1-minute load average {f['load_average'][0]:.1f} at the start, {f['load_average'][1]:.1f} at the end.",
        "",
        f"Start-up, once per session: `ray.init` {f['ray_init_seconds']:.1f} s, pool warm-up (actors start, model "
        f"loads) {f['warm_seconds']:.1f} s.",
        "",
        "| round | load | local | chunks/s | Ray (warm pool) | chunks/s | Ray / local |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for run, r in enumerate(f["rounds"], start=1):
        lines.append(f"| {run} | {r['load']:.1f} | {r['local']:.1f} s | {chunks / r['local']:.0f} | {r['ray']:.1f} s | "
                     f"{chunks / r['ray']:.0f} | {r['ratio']:.2f}x |")
    ratios = sorted(r["ratio"] for r in f["rounds"])
    median = (ratios[(len(ratios) - 1) // 2] + ratios[len(ratios) // 2]) / 2
    lines += [
        "",
        f"Median Ray / local over {len(ratios)} rounds: {median:.2f}x (from {ratios[0]:.2f}x to {ratios[-1]:.2f}x).",
        "",
        f"Same chunk ids, offsets and texts as the local ingest; largest vector difference {f['max_vector_difference']:.1e}.",
        f"Per core (one thread): embed {f['embed_per_core_per_s']:.0f} chunks/s, read + chunk {f['chunk_per_core_per_s']:.0f} "
        f"chunks/s; the driver stores {f['driver_store_per_s']:.0f} chunks/s.",
        "",
        f"Predicted, N actors of one thread on N + 1 CPUs, for this corpus ({chunks} chunks) and for 10 million chunks "
        "(start-up apart):",
        "",
        "| actors | CPUs | chunks/s | seconds, this corpus | hours, 10M chunks | bound by |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in f["predicted"]:
        lines.append(f"| {row['actors']} | {row['cpus']} | {row['chunks_per_s']:.0f} | {row['seconds']:.1f} | "
                     f"{10_000_000 / row['chunks_per_s'] / 3600:.1f} | {row['bound']} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
