#!/usr/bin/env python3
"""Embedding speed against quality, same run: chunks/s of each embedding backend
beside today's PyTorch model, and what each costs in quality.

    .venv/bin/python bench/embed_bench.py                    # torch, onnx, onnx-int8 (+ static if model2vec is installed)
    .venv/bin/python bench/embed_bench.py --quality          # + Chroma dense top-5 per backend (slow: every chunk)
    .venv/bin/python bench/embed_bench.py --timing-chunks 300 --threads 1
    .venv/bin/python bench/embed_bench.py --e2e              # also a first ingest of the Chroma corpora per backend

Chunks: the five Chroma benchmark corpora cut by the default chunker (hybrid
256/32). Speed: wall-clock chunks/s and CPU milliseconds per chunk over an
evenly spread sample of those chunks; torch runs first and last and its mean is
the baseline (the machine is shared: both figures are printed). Quality: mean
and lowest cosine of each backend's vectors of the timed chunks to torch's, and
with ``--quality`` the Chroma benchmark's dense top-5 recall / precision / IoU
over all chunks with the questions embedded by the same backend. ``static`` is model2vec distilled offline
from the packaged model folder (cached), a point on the curve, not a setting.
``--e2e`` runs `noteloom ingest` + `POST /search` (bench/chroma_bench.py) once per
backend through the `embedding_backend` setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the service's default, read when torch loads
ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import chroma_bench  # noqa: E402  (the benchmark's loader and scoring)

RESULTS = ROOT / "bench" / "results"
MODEL = "all-MiniLM-L6-v2"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def static_embedder(cache: Path, dims: int):
    """model2vec distilled offline from the packaged folder, cached under ``cache``."""
    try:
        from model2vec import StaticModel
    except ImportError:
        return None
    import runtime

    folder = cache / f"model2vec-{MODEL}-pca{dims}"
    if not (folder / "model.safetensors").is_file():
        from model2vec.distill import distill

        log(f"distilling static embeddings into {folder} (minutes)")
        distill(model_name=runtime.resolve_model_path(MODEL), pca_dims=dims, device="cpu").save_pretrained(str(folder))
    model = StaticModel.from_pretrained(str(folder))
    return lambda texts: runtime.normalise(model.encode(list(texts)))


def backends(names: list[str], cache: Path, static_dims: int) -> dict:
    import runtime

    found = {}
    for name in names:
        if name == "static":
            embed = static_embedder(cache, static_dims)
            if embed is None:
                log("static: model2vec is not installed, row skipped")
                continue
            found[name] = embed
        else:
            found[name] = runtime.get_embedder(runtime.embedder_spec(MODEL, name)).embed_batch
    return found


def speed(embed, texts: list[str]) -> tuple[dict, np.ndarray]:
    embed(texts[:8])  # load and build outside the clock
    wall, cpu = time.perf_counter(), cpu_seconds()
    vectors = embed(texts)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"chunks_s": round(len(texts) / wall, 2), "cpu_ms_per_chunk": round(1000 * cpu / len(texts), 1)}, vectors


def cosine(vectors: np.ndarray, reference: np.ndarray) -> dict:
    cos = np.sum(vectors * reference, axis=1)
    return {"cos_mean": round(float(cos.mean()), 4), "cos_min": round(float(cos.min()), 4)}


def quality(embed, texts, spans, questions) -> dict:
    vectors = embed(texts)
    top = np.argsort(-(embed([q.text for q in questions]) @ vectors.T), axis=1)[:, :5]
    return chroma_bench.mean_scores(questions, [[spans[i] for i in row] for row in top])


def end_to_end(corpora, questions, name: str) -> dict:
    os.environ["NOTELOOM_EMBEDDING_BACKEND"] = name  # the CLI subprocesses read the setting
    try:
        return chroma_bench.end_to_end(corpora, questions, ["hybrid", "dense"], None)
    finally:
        del os.environ["NOTELOOM_EMBEDDING_BACKEND"]


def table(rows: dict) -> str:
    lines = ["| backend | chunks/s | CPU ms/chunk | speed-up (wall) | speed-up (CPU) | cosine to torch (mean / min) "
             "| recall | precision | IoU |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        cos = f"{r['cos_mean']:.4f} / {r['cos_min']:.4f}" if "cos_mean" in r else ("1 (reference)" if name == "torch" else "—")
        lines.append(f"| {name} | {r['chunks_s']} | {r['cpu_ms_per_chunk']} | {r['speedup_wall']}× | {r['speedup_cpu']}× "
                     f"| {cos} | {r.get('recall', '')} | {r.get('precision', '')} | {r.get('iou', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", default=None, help="torch, onnx, onnx-int8, static (repeatable)")
    parser.add_argument("--timing-chunks", type=int, default=400, help="chunks in the timed sample (0: all)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    parser.add_argument("--static-dims", type=int, default=256, help="PCA dimensions of the static embeddings")
    parser.add_argument("--quality", action="store_true",
                        help="also the Chroma dense top-5 scores over all chunks (embeds every chunk once per backend)")
    parser.add_argument("--e2e", action="store_true", help="also ingest + search the corpora end to end per backend")
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end runs")
    args = parser.parse_args(argv)
    import chunkers
    import runtime

    runtime.configure(threads=args.threads)
    cache = runtime.cache_dir()
    corpora, questions = chroma_bench.load(chroma_bench.DATA)
    chunker = chunkers.get("hybrid", max_tokens=256, overlap=32)
    spans = [chroma_bench.Retrieved(name, c.start, c.end) for name, text in corpora.items() for c in chunker(text)]
    texts = [corpora[s.corpus][s.start:s.end] for s in spans]
    step = max(1, len(texts) // args.timing_chunks) if args.timing_chunks else 1
    sample = texts[::step][: args.timing_chunks or None]
    log(f"{len(texts)} chunks, timing {len(sample)}, threads {runtime.cpu_threads()}")
    names = args.backend or ["torch", "onnx", "onnx-int8", "static"]
    if args.e2e_only:
        runs = {name: end_to_end(corpora, questions, name) for name in names if name != "static"}
        print(json.dumps(runs, indent=2))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "embed_bench_e2e.json").write_text(json.dumps(runs, indent=2))
        return 0
    embedders = backends(["torch", *[n for n in names if n != "torch"]], cache, args.static_dims)
    timed = {name: speed(embed, sample) for name, embed in embedders.items()}
    again, _ = speed(embedders["torch"], sample)  # torch last as well: load drift shows as a gap between the two
    log(f"torch first {timed['torch'][0]}, last {again}")
    base = {k: (timed["torch"][0][k] + again[k]) / 2 for k in again}
    reference = timed["torch"][1]
    rows = {}
    for name, embed in embedders.items():
        figures, vectors = timed[name]
        row = figures | {"speedup_wall": round(figures["chunks_s"] / base["chunks_s"], 2),
                         "speedup_cpu": round(base["cpu_ms_per_chunk"] / figures["cpu_ms_per_chunk"], 2)}
        if name != "torch" and vectors.shape == reference.shape:  # static vectors live in another space
            row |= cosine(vectors, reference)
        if args.quality:
            row |= quality(embed, texts, spans, questions)
        rows[name] = row
        log(f"{name}: {row}")
    results = {"chunks": len(texts), "timed": len(sample), "threads": runtime.cpu_threads(), "torch_last": again, "rows": rows}
    if args.e2e:
        results["e2e"] = {name: end_to_end(corpora, questions, name) for name in names if name != "static"}
    print(table(rows))
    for name, run in results.get("e2e", {}).items():
        print(f"end to end, {name}: ingest {run['ingest_s']} s, " + ", ".join(f"{m} {r['recall']}/{r['iou']}" for m, r in run["modes"].items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed_bench.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "embed_bench.md").write_text(table(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
