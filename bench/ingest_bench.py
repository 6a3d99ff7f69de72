#!/usr/bin/env python3
"""Ingest cost per MB for each format, on benign and pathological input.

    .venv/bin/python bench/ingest_bench.py                   # default shapes, ~2-4 minutes
    .venv/bin/python bench/ingest_bench.py --shapes all      # every shape of tests/test_ingest_linear.py
    .venv/bin/python bench/ingest_bench.py --only html,pdf --sizes 20,40,80

For each (format, shape) and input size (default 20, 40, 80, 160 KB and 1 MB)
this times ``ingest.load_bytes`` alone and ``load_bytes`` followed by the default
chunking (``chunkers.get("hybrid", max_tokens=256, overlap=32)``), best of
``--repeats``, and prints milliseconds per MB of input. Linear work keeps the
per-MB cost flat across sizes: the "max/min" column is the largest per-MB cost
over the smallest (1.0 is perfectly flat; a quadratic step would show the size
ratio, 50x from 20 KB to 1 MB). The inputs are the generators of
``tests/test_ingest_linear.py`` (one definition of each hostile shape).

Each shape runs in its own process with ``--max-seconds`` for all its sizes; a
shape that runs over is reported with the sizes it finished. Writes
``bench/results/ingest_bench.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

DEFAULT_SHAPES = {
    "markdown": ["prose", "hash-space lines", "hash-space line ending in x", "unclosed front matter", "combining marks"],
    "text": ["prose", "CR line endings", "combining marks"],
    "html": ["page", "spaces in pre", "comment openers", "quote in tag", "lt flood", "nested divs"],
    "pdf": ["pages of prose", "pages sharing one stream"],
}


def shapes() -> dict[str, dict]:
    from tests.test_ingest_linear import HTML, MARKDOWN, PDF, TEXT

    return {"markdown": MARKDOWN, "text": TEXT, "html": HTML, "pdf": PDF}


def worker(kind: str, shape: str, sizes: list[int], repeats: int) -> None:
    """Print one JSON line per size: bytes, load seconds, load+chunk seconds, chunks."""
    import chunkers
    from ingest.loaders import load_bytes

    chunker = chunkers.get("hybrid", max_tokens=256, overlap=32)
    from tests.test_ingest_linear import EXT

    gen, name = shapes()[kind][shape], f"x.{EXT[kind]}"
    chunker(load_bytes(gen(20_000), name).text)  # warm-up: tokenizer, regex caches
    for size in sizes:
        data = gen(size)
        load_s = B.best_of(lambda: load_bytes(data, name), repeats)[0]
        chunks: list = []

        def both() -> None:
            chunks[:] = chunker(load_bytes(data, name).text)

        total_s = B.best_of(both, repeats)[0]
        print(json.dumps({"bytes": len(data), "load_s": load_s, "total_s": total_s, "chunks": len(chunks)}), flush=True)


def run_shape(kind: str, shape: str, sizes: list[int], repeats: int, max_seconds: float) -> tuple[list[dict], str]:
    args = [B.PYTHON, __file__, "--worker", kind, shape, "--sizes", ",".join(str(s // 1000) for s in sizes), "--repeats", str(repeats)]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=max_seconds, cwd=B.ROOT)
        out, note = proc.stdout, "" if proc.returncode == 0 else f"worker failed: {proc.stderr.strip().splitlines()[-1:]}"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        note = f"stopped after {max_seconds:g}s"
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")], note


def per_mb_row(kind: str, shape: str, rows: list[dict], sizes: list[int], key: str, note: str) -> list[str]:
    """Cost per MB of the actual bytes (a shape's generator counts characters)."""
    cells, per_mb = [], []
    for i in range(len(sizes)):
        row = rows[i] if i < len(rows) else None  # the worker prints one row per size, in order
        if row is None:
            cells.append("–")
            continue
        ms = 1e3 * row[key] / (row["bytes"] / 1e6)
        per_mb.append(ms)
        cells.append(B.fmt(ms, 0))
    spread = f"{max(per_mb) / min(per_mb):.1f}" if len(per_mb) > 1 and min(per_mb) > 0 else "–"
    return [kind, shape, *cells, spread, note]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,40,80,160,1000", help="input sizes in KB (default 20,40,80,160,1000)")
    parser.add_argument("--only", default="", help="formats, comma-separated (markdown,text,html,pdf)")
    parser.add_argument("--shapes", default="default", help="'default', 'all', or comma-separated shape names")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=120, help="per shape, all sizes together")
    parser.add_argument("--max-wait", type=float, default=300)
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) * 1000 for s in B.sections(args.sizes)]
    if args.worker:
        return worker(*args.worker, sizes, args.repeats)

    table = shapes()
    kinds = B.sections(args.only) or list(table)
    picked = [(k, s) for k in kinds for s in (
        table[k] if args.shapes == "all" else DEFAULT_SHAPES[k] if args.shapes == "default" else
        [s for s in B.sections(args.shapes) if s in table[k]])]
    report = B.start("ingest_bench", args.max_wait)
    load = B.LoadMeter()
    results = []
    for kind, shape in picked:
        t0 = time.perf_counter()
        rows, note = run_shape(kind, shape, sizes, args.repeats, args.max_seconds)
        B.log(f"{kind:8} {shape:30} {time.perf_counter() - t0:6.1f}s {note}")
        results.append((kind, shape, rows, note))
    head = ["format", "input", *[f"{s // 1000} KB" for s in sizes], "max/min", "note"]
    report += [
        f"Milliseconds per MB of input, best of {args.repeats}; chunking is `hybrid`, max_tokens 256, overlap 32.",
        "Inputs: the generators of tests/test_ingest_linear.py.",
        "",
        "Load (`load_bytes`) alone:",
        "",
        B.table(head, [per_mb_row(k, s, rows, sizes, "load_s", note) for k, s, rows, note in results]),
        "",
        "Load and chunk:",
        "",
        B.table(head, [per_mb_row(k, s, rows, sizes, "total_s", note) for k, s, rows, note in results]),
        "",
        f"Load during the run: {load.stop()}",
        "",
        f"At the end of the run: {B.code_version()}.",
    ]
    text = "\n".join(report)
    print(text)
    B.log(f"written to {B.write_results('ingest_bench', text)}")


if __name__ == "__main__":
    main()
