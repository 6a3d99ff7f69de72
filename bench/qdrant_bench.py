#!/usr/bin/env python3
"""The Qdrant backend (local mode, and Qdrant's engine in process) beside SQLite + FAISS.

    .venv/bin/python bench/qdrant_bench.py                        # both parts
    .venv/bin/python bench/qdrant_bench.py --only chroma          # quality on the Chroma benchmark
    .venv/bin/python bench/qdrant_bench.py --only latency --sizes 10000,100000

chroma: the five corpora of ../shared/benchmarks/chroma-chunking are ingested
once (default chunking, all-MiniLM-L6-v2) into SQLite + FAISS; the same
documents, chunks and vectors are then written to Qdrant local mode (no second
embedding). The 472 questions are embedded once and asked (k=5) of: today's
hybrid (SQLite FTS5 + FAISS, noteloom's fusion), Qdrant dense, Qdrant BM25
(sparse vectors, IDF in the engine), Qdrant hybrid with noteloom's fusion, and
Qdrant hybrid fused in the engine (one query: prefetch both, RRF). Scored as
bench/chroma_bench.py scores; also the share of questions whose dense top 5
equals FAISS's, and the mean hybrid top-5 overlap with today's.

latency: synthetic chunks (random unit 384-d vectors, 60 words each from a
Zipf vocabulary: embedding 100k real chunks would take an hour on 2 cores) are
written in batches of 256 to both backends (chunks/s, writes only), then 200
dense and 200 three-word lexical queries (k=20, the candidates a k=5 search
takes) give p50/p99 per backend. Backends: SQLite + FAISS, qdrant-client's local
mode in memory (and in a folder up to --persisted-max chunks), and the edge
engine (qdrant-edge-py) in a folder. Each row records the load average (1 min)
before its writes and after its searches: the machine is shared. Writes
bench/results/qdrant_bench.{json,md}.
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the service sets it: spinning OpenMP threads slow FAISS on 2 cores
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import chroma_bench  # noqa: E402

from retrieval import ChunkRecord, DocumentRecord, Notebook, Searcher, SqliteFaissBackend  # noqa: E402
from retrieval.qdrant_backend import QdrantBackend  # noqa: E402
from retrieval.records import chunk_id  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BATCH = 256


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


# ---------------------------------------------------------------- chroma

def copy_into(source: SqliteFaissBackend, target: QdrantBackend, model: str) -> float:
    """Every document with its chunks and stored vectors, written to ``target``; seconds taken."""
    db = source.store.db
    started = time.perf_counter()
    with target.writer(None, embedding_model=model) as session:
        for info in source.documents(limit=10**9):
            doc = source.document(info.id)
            rows = db.execute("SELECT id, idx, start, end, token_count, headings, text, vector FROM chunks WHERE doc_id=? "
                              "ORDER BY idx", (doc.id,)).fetchall()
            chunks = [ChunkRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], np.frombuffer(r[7], dtype=np.float32))
                      for r in rows]
            record = DocumentRecord(doc.source, doc.title, doc.kind, doc.text, doc.content_hash, doc.mtime, doc.size,
                                    list(doc.tags), doc.chunker, doc.collection, doc.path)
            session.put([(record, chunks)])
    return time.perf_counter() - started


def chroma(work: Path) -> dict:
    from ingest import ChunkSettings, Ingestor
    from runtime import get_embedder

    corpora, questions = chroma_bench.load(chroma_bench.DATA)
    embedder = get_embedder()
    nb = Notebook(work / "faiss", embedder=embedder)
    started = time.perf_counter()
    Ingestor(nb, ChunkSettings.of(None), batch_chunks=BATCH).ingest_paths([chroma_bench.DATA / "corpora"])
    log(f"ingested {nb.counts()} in {time.perf_counter() - started:.0f} s (index {nb.index().kind})")
    qdrant = QdrantBackend(path=work / "qdrant")
    copy_s = copy_into(nb.backend, qdrant, nb.embedding_model)
    chunks = nb.counts().chunks
    log(f"written to Qdrant local mode in {copy_s:.1f} s ({chunks / copy_s:.0f} chunks/s)")
    vectors = dict(zip((q.text for q in questions), embedder.embed_batch([q.text for q in questions])))
    lookup = lambda texts: np.stack([vectors[t] for t in texts])  # noqa: E731  (questions embedded once)
    today, on_qdrant = Searcher(nb.backend, lookup), Searcher(qdrant, lookup)
    runs = {
        "today: hybrid (FTS5 + FAISS)": lambda q: today.search(q, 5, mode="hybrid"),
        "today: dense (FAISS)": lambda q: today.search(q, 5, mode="dense"),
        "Qdrant dense": lambda q: on_qdrant.search(q, 5, mode="dense"),
        "Qdrant BM25 (sparse, engine IDF)": lambda q: on_qdrant.search(q, 5, mode="lexical"),
        "Qdrant hybrid, noteloom's fusion": lambda q: on_qdrant.search(q, 5, mode="hybrid"),
        "Qdrant hybrid, engine fusion (RRF)": lambda q: engine_hits(qdrant, q, vectors[q]),
    }
    rows, tops, top_texts = {}, {}, {}
    for name, run in runs.items():
        retrievals, seconds, ids, texts = [], [], [], []
        for question in questions:
            t0 = time.perf_counter()
            hits = run(question.text)
            seconds.append(time.perf_counter() - t0)
            for h in hits:
                if corpora[Path(h.source).stem][h.start:h.end] != h.text:
                    raise SystemExit(f"{name}: hit {h.source} {h.start}:{h.end} does not slice its corpus")
            retrievals.append([chroma_bench.Retrieved(Path(h.source).stem, h.start, h.end) for h in hits])
            ids.append([h.chunk_id for h in hits])
            texts.append([h.text for h in hits])
        tops[name], top_texts[name] = ids, texts
        rows[name] = {**chroma_bench.mean_scores(questions, retrievals), **percentiles(seconds)}
        log(f"{name}: {rows[name]}")
    n = len(questions)
    parity = {
        "dense_top5_equal": round(sum(a == b for a, b in zip(tops["today: dense (FAISS)"], tops["Qdrant dense"])) / n, 3),
        # chunks of equal text have equal vectors, so equal scores, and the two engines order ties differently
        "dense_top5_equal_texts": round(sum(a == b for a, b in zip(top_texts["today: dense (FAISS)"], top_texts["Qdrant dense"])) / n, 3),
        "duplicate_chunks": duplicates(nb),
        "hybrid_top5_overlap_noteloom_fusion": overlap(tops["today: hybrid (FTS5 + FAISS)"], tops["Qdrant hybrid, noteloom's fusion"]),
        "hybrid_top5_overlap_engine_fusion": overlap(tops["today: hybrid (FTS5 + FAISS)"], tops["Qdrant hybrid, engine fusion (RRF)"]),
    }
    log(f"parity: {parity}")
    qdrant.close()
    nb.close()
    return {"chunks": chunks, "qdrant_write_chunks_per_s": round(chunks / copy_s), "modes": rows, "parity": parity}


def duplicates(nb: Notebook) -> int:
    """Chunks whose text another chunk has too."""
    return nb.store.db.execute("SELECT COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM chunks GROUP BY text HAVING n > 1)").fetchone()[0]


def engine_hits(backend: QdrantBackend, text: str, vector: np.ndarray):
    from retrieval import Hit

    ranked = backend.hybrid_search(text, vector, 5)
    rows = backend.chunks(cid for cid, _ in ranked)
    return [Hit(cid, rows[cid].doc_id, rows[cid].source, rows[cid].title, rows[cid].start, rows[cid].end, rows[cid].text, score)
            for cid, score in ranked if cid in rows]


def overlap(a: list[list[int]], b: list[list[int]]) -> float:
    return round(sum(len(set(x) & set(y)) / 5 for x, y in zip(a, b)) / len(a), 3)


# ---------------------------------------------------------------- latency

def synthetic(n: int, dim: int, rng: np.random.Generator):
    """Documents of 10 chunks: random unit vectors, 60 Zipf-drawn words each."""
    vocab = [f"w{i}" for i in range(5000)]
    words = np.minimum(rng.zipf(1.3, size=(n, 60)), len(vocab)) - 1
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    batch = []
    for d in range(0, n, 10):
        texts = [" ".join(vocab[w] for w in words[i]) for i in range(d, min(d + 10, n))]
        text = "\n".join(texts)
        source = f"synthetic/d{d // 10}.md"
        doc = DocumentRecord(source, source, "markdown", text, f"h{d}", collection="synthetic", path=f"d{d // 10}.md")
        chunks, start = [], 0
        for j, t in enumerate(texts):
            chunks.append(ChunkRecord(chunk_id(source, doc.content_hash, start, start + len(t)), j, start, start + len(t),
                                      60, [], t, vectors[d + j]))
            start += len(t) + 1
        batch.append((doc, chunks))
    return batch, vocab


def write_all(backend, docs, model: str = "synthetic-384") -> float:
    started = time.perf_counter()
    with backend.writer(None, embedding_model=model) as session:
        for i in range(0, len(docs), BATCH // 10):
            session.put(docs[i: i + BATCH // 10])
    return time.perf_counter() - started


def latency(work: Path, sizes: list[int], persisted_max: int, queries: int = 200) -> dict:
    rng = np.random.default_rng(15)
    out = {}
    for n in sizes:
        docs, vocab = synthetic(n, 384, rng)
        dense = rng.standard_normal((queries, 384)).astype(np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        lexical = [" ".join(vocab[int(w)] for w in rng.integers(0, 300, 3)) for _ in range(queries)]
        row = {}
        makers = {"sqlite-faiss": lambda: SqliteFaissBackend(work / f"faiss-{n}"),
                  "qdrant-local :memory:": lambda: QdrantBackend(path=":memory:", lexical_avg_len=60)}
        if n <= persisted_max:
            makers["qdrant-local folder"] = lambda: QdrantBackend(path=work / f"qdrant-{n}", lexical_avg_len=60)
        makers["qdrant-edge folder"] = lambda: QdrantBackend(path=work / f"edge-{n}", lexical_avg_len=60, engine="edge")
        for name, make in makers.items():
            load_before = os.getloadavg()[0]
            backend = make()
            write_s = write_all(backend, docs)
            backend.warm()
            kind = backend.index_state().kind
            backend.vector_search(dense[0], 20)  # first search loads what it needs
            d = timed(lambda q: backend.vector_search(q, 20), dense)
            # local mode scores sparse vectors in Python, point by point: fewer queries past 10k chunks
            lx = timed(lambda q: backend.lexical_search(q, 20), lexical[: queries if n <= 10_000 else 20])
            row[name] = {"index": kind, "write_chunks_per_s": round(n / write_s), "dense": d, "lexical": lx,
                         "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
            log(f"{n} chunks, {name}: {row[name]}")
            backend.close()
        out[str(n)] = row
    return out


def timed(search, queries) -> dict[str, float]:
    seconds = []
    for q in queries:
        t0 = time.perf_counter()
        search(q)
        seconds.append(time.perf_counter() - t0)
    return percentiles(seconds)


def report(results: dict) -> str:
    lines = []
    if "chroma" in results:
        c = results["chroma"]
        lines += [f"Chroma benchmark, {c['chunks']} chunks, k=5 (Qdrant local-mode writes: {c['qdrant_write_chunks_per_s']} chunks/s)",
                  "", "| system | recall | precision | IoU | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {name} | {r['recall']} | {r['precision']} | {r['iou']} | {r['p50_ms']} | {r['p99_ms']} |"
                  for name, r in c["modes"].items()]
        lines += ["", f"parity: {c['parity']}", ""]
    for n, row in results.get("latency", {}).items():
        lines += [f"{n} synthetic chunks (384-d), k=20", "",
                  "| backend | index | writes chunks/s | dense p50/p99 ms | lexical p50/p99 ms | load before / after |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {r['index']} | {r['write_chunks_per_s']} | {r['dense']['p50_ms']} / {r['dense']['p99_ms']} | "
                  f"{r['lexical']['p50_ms']} / {r['lexical']['p99_ms']} | {' / '.join(map(str, r.get('load_1min', [])))} |"
                  for name, r in row.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["chroma", "latency"], default=None)
    parser.add_argument("--sizes", default="10000,100000", help="synthetic chunk counts for the latency part")
    parser.add_argument("--persisted-max", type=int, default=2000,
                        help="largest size also written to a local-mode folder (it commits point by point)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="qdrant-bench-"))
    results: dict = {}
    try:
        if args.only in (None, "chroma"):
            results["chroma"] = chroma(work)
        if args.only in (None, "latency"):
            results["latency"] = latency(work, [int(s) for s in args.sizes.split(",")], args.persisted_max)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = report(results)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "qdrant_bench" + (f"_{args.only}" if args.only else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{name}.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
