#!/usr/bin/env python3
"""The Chroma chunking benchmark (5 corpora, 472 questions with gold character
spans), scored on noteloom end to end and on its chunkers alone.

    .venv/bin/python bench/chroma_bench.py                  # end to end + chunker rows
    .venv/bin/python bench/chroma_bench.py --only e2e       # just noteloom's own ingest + POST /search
    .venv/bin/python bench/chroma_bench.py --only chunkers --chunker recursive:250:125

End to end: the five corpora are ingested as notes by the `noteloom ingest` CLI
with its default settings into a fresh data folder, a real `noteloom serve`
answers `POST /search` (k=5, each mode), and each hit is scored by its
`start`/`end`. Chunkers alone: each corpus is chunked, the chunk texts are
embedded raw with the packaged all-MiniLM-L6-v2, and the 5 nearest chunks by
cosine are scored.

Scoring follows the benchmark's definitions (see the data's README): for each
question, over the gold character ranges of its corpus,
recall = gold characters covered / gold characters; precision = gold characters
covered / summed length of the 5 retrieved ranges (ranges from another corpus
count in that sum and cover nothing); IoU = covered / (summed retrieved length +
gold characters not covered). Means over the 472 questions, in percent.
The data stays in ../shared/benchmarks/chroma-chunking; nothing is copied.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CHROMA_BENCH_DATA", ROOT.parent / "shared" / "benchmarks" / "chroma-chunking"))
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The published table (all-MiniLM-L6-v2, 5 chunks), from the data's README.
PUBLISHED = [
    ("RecursiveCharacterTextSplitter 250/125", 78.7, 4.9, 4.9),
    ("TokenTextSplitter 250/125", 82.4, 3.6, 3.5),
    ("RecursiveCharacterTextSplitter 250/0", 78.5, 5.4, 5.4),
    ("TokenTextSplitter 250/0", 77.1, 3.3, 3.3),
    ("RecursiveCharacterTextSplitter 200/0", 75.7, 6.5, 6.5),
    ("TokenTextSplitter 200/0", 76.6, 4.1, 4.1),
    ("ClusterSemanticChunker 250/0", 77.3, 6.1, 6.0),
    ("ClusterSemanticChunker 200/0", 75.2, 7.2, 7.2),
]
DEFAULT_CHUNKERS = ("recursive:250:125", "recursive:200:0", "hybrid:256:32")


@dataclass(frozen=True)
class Question:
    text: str
    corpus: str
    gold: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Retrieved:
    corpus: str
    start: int
    end: int


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def load(data: Path) -> tuple[dict[str, str], list[Question]]:
    corpora = {p.stem: p.read_text(encoding="utf-8") for p in sorted((data / "corpora").glob("*.md"))}
    questions = []
    with open(data / "questions_df.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            refs = json.loads(row["references"])
            gold = tuple((int(r["start_index"]), int(r["end_index"])) for r in refs)
            text = corpora[row["corpus_id"]]
            for (start, end), ref in zip(gold, refs):  # the data must slice what it claims
                if text[start:end] != ref["content"]:
                    raise SystemExit(f"gold span {start}:{end} of {row['corpus_id']} does not slice its excerpt")
            questions.append(Question(row["question"], row["corpus_id"], gold))
    return corpora, questions


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _length(ranges) -> int:
    return sum(end - start for start, end in ranges)


def score(question: Question, retrieved: list[Retrieved]) -> tuple[float, float, float]:
    """(recall, precision, IoU) of one question, as fractions."""
    gold = _merge(list(question.gold))
    covered = _merge([
        (max(r.start, g0), min(r.end, g1))
        for r in retrieved if r.corpus == question.corpus
        for g0, g1 in gold if max(r.start, g0) < min(r.end, g1)
    ])
    hit = _length(covered)
    retrieved_length = _length((r.start, r.end) for r in retrieved)
    missed = _length(gold) - hit
    recall = hit / _length(gold) if gold else 0.0
    precision = hit / retrieved_length if retrieved_length else 0.0
    iou = hit / (retrieved_length + missed) if retrieved_length + missed else 0.0
    return recall, precision, iou


def mean_scores(questions: list[Question], retrievals: list[list[Retrieved]]) -> dict[str, float]:
    triples = [score(q, r) for q, r in zip(questions, retrievals)]
    n = len(triples)
    return {name: round(100 * sum(t[i] for t in triples) / n, 1) for i, name in enumerate(("recall", "precision", "iou"))}


# ---------------------------------------------------------------- end to end

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _noteloom() -> list[str]:
    return [sys.executable, "-m", "service.cli"]


def end_to_end(corpora: dict[str, str], questions: list[Question], modes: list[str], data_dir: Path | None,
               min_relative_score: float | None = None) -> dict:
    import httpx

    sys.path.insert(0, str(ROOT / "bench"))
    import benchlib

    work = Path(tempfile.mkdtemp(prefix="chroma-bench-"))
    data = data_dir or work / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([*_noteloom(), "--data", str(data), "ingest", str(DATA / "corpora"), "--collection", "chroma", "--json"],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ingest failed:\n{done.stderr[-2000:]}")
    ingest_s = time.perf_counter() - started
    log(f"ingested in {ingest_s:.0f} s")
    port = _free_port()
    server = subprocess.Popen([*_noteloom(), "--data", str(data), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            try:
                benchlib.wait_healthy(client, server, 180)
            except RuntimeError as exc:
                raise SystemExit(f"{exc}:\n{server.stderr.read()[-2000:] if server.stderr else ''}") from None
            rows = {}
            for mode in modes:
                retrievals, seconds = [], []
                for question in questions:
                    t0 = time.perf_counter()
                    body = {"query": question.text, "k": 5, "mode": mode}
                    if min_relative_score is not None:
                        body["min_relative_score"] = min_relative_score
                    reply = client.post("/search", json=body)
                    seconds.append(time.perf_counter() - t0)
                    reply.raise_for_status()
                    hits = reply.json()["hits"]
                    found = []
                    for hit in hits:
                        corpus = Path(hit["source"]).stem
                        if corpora[corpus][hit["start"]:hit["end"]] != hit["text"]:
                            raise SystemExit(f"hit {hit['source']} {hit['start']}:{hit['end']} does not slice the corpus file")
                        found.append(Retrieved(corpus, hit["start"], hit["end"]))
                    retrievals.append(found)
                seconds.sort()
                rows[mode] = {**mean_scores(questions, retrievals), "mean_hits": round(sum(map(len, retrievals)) / len(retrievals), 2),
                              "mean_chars": round(sum(r.end - r.start for rs in retrievals for r in rs) / max(1, sum(map(len, retrievals)))),
                              "p50_ms": round(1000 * seconds[len(seconds) // 2], 1)}
                log(f"e2e {mode}: {rows[mode]}")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {"ingest_s": round(ingest_s, 1), "min_relative_score": min_relative_score, "modes": rows}


# ---------------------------------------------------------------- chunkers alone

def _embed(texts: list[str]):
    """The packaged all-MiniLM-L6-v2, L2-normalised vectors."""
    from runtime import get_embedder

    return get_embedder().embed_batch(texts)


def chunkers_alone(corpora: dict[str, str], questions: list[Question], specs: list[str]) -> dict:
    import numpy as np

    import chunkers

    question_vectors = _embed([q.text for q in questions])
    rows = {}
    for spec in specs:
        method, size, overlap = spec.split(":")
        chunker = chunkers.get(method, max_tokens=int(size), overlap=int(overlap))
        spans = [Retrieved(name, c.start, c.end) for name, text in corpora.items() for c in chunker(text)]
        texts = [corpora[s.corpus][s.start:s.end] for s in spans]
        started = time.perf_counter()
        vectors = _embed(texts)
        log(f"{spec}: {len(spans)} chunks embedded in {time.perf_counter() - started:.0f} s")
        top = np.argsort(-(question_vectors @ vectors.T), axis=1)[:, :5]
        rows[spec] = {**mean_scores(questions, [[spans[i] for i in row] for row in top]), "chunks": len(spans)}
        log(f"{spec}: {rows[spec]}")
    return rows


def report(results: dict) -> str:
    lines = ["| system | recall | precision | IoU |", "|---|---:|---:|---:|"]
    lines += [f"| published: {name} | {r} | {p} | {i} |" for name, r, p, i in PUBLISHED]
    cutoff = results.get("e2e", {}).get("min_relative_score")
    for mode, row in results.get("e2e", {}).get("modes", {}).items():
        opt_in = f", `min_relative_score` {cutoff} ({row['mean_hits']} hits)" if cutoff is not None else ""
        lines.append(f"| **noteloom end to end, {mode}**{opt_in} (mean hit {row['mean_chars']} chars) | {row['recall']} | {row['precision']} | {row['iou']} |")
    for spec, row in results.get("chunkers", {}).items():
        lines.append(f"| noteloom chunker {spec}, dense, raw text | {row['recall']} | {row['precision']} | {row['iou']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["e2e", "chunkers"], default=None)
    parser.add_argument("--mode", action="append", choices=["hybrid", "dense", "lexical"], default=None,
                        help="search modes scored end to end (default: all three)")
    parser.add_argument("--chunker", action="append", default=None, help="method:max_tokens:overlap (repeatable)")
    parser.add_argument("--data", type=Path, default=None, help="data folder for the end-to-end run (default: a fresh temporary one)")
    parser.add_argument("--min-relative-score", type=float, default=None,
                        help="end to end: send this opt-in cutoff with every search (fewer hits when the rest are weak)")
    args = parser.parse_args(argv)
    corpora, questions = load(DATA)
    log(f"{len(corpora)} corpora, {sum(map(len, corpora.values())) / 1e6:.2f} M chars, {len(questions)} questions")
    results: dict = {}
    if args.only in (None, "e2e"):
        results["e2e"] = end_to_end(corpora, questions, args.mode or ["hybrid", "dense", "lexical"], args.data,
                                    args.min_relative_score)
    if args.only in (None, "chunkers"):
        results["chunkers"] = chunkers_alone(corpora, questions, args.chunker or list(DEFAULT_CHUNKERS))
    table = report(results)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "chroma_bench.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "chroma_bench.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
