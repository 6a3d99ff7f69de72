"""RAG benchmarks: ingest throughput against the embedding model's own throughput,
re-ingest of an unchanged corpus, search / ask latency at ~1k and 100k chunks,
the HTTP server's peak memory, and MiniLM throughput with 1 vs 2 torch threads.

    .venv/bin/python bench/rag_bench.py                      # everything (~15-25 min on 2 cores)
    .venv/bin/python bench/rag_bench.py --only ingest,latency1k
    .venv/bin/python bench/rag_bench.py --big-data /tmp/nl100k   # keep (and later reuse) the 100k folder

Sections: ingest (throughput + re-ingest), latency1k, latency100k, server, threads.
Prints a markdown report and writes it to bench/results/rag_bench.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402  (sets OMP_WAIT_POLICY / HF_HUB_OFFLINE first)

import numpy as np  # noqa: E402

SECTIONS = ("ingest", "latency1k", "latency100k", "server", "threads")
FILE_BYTES = 3000
N_FILES = 150
BIG_CHUNKS = 100_000
BIG_DOC_CHUNKS = 20
BIG_TXN_CHUNKS = 5_000
BASE_VECTORS = 3_000
NOISE_SIGMA = 0.02  # per component; unit vectors have components ~0.05, so copies stay at cos ~0.93 of their base

# Paraphrases of the labelled questions (same topics, other words), cycled with the originals.
PARAPHRASES = [
    "how much overlap should neighbouring fixed-size chunks share",
    "why does a long chunk get truncated by the embedding model",
    "splitting text into sentences without breaking at abbreviations",
    "how many sentences go into one chunk",
    "order of separators used by recursive character splitting",
    "keeping character offsets right after splitting",
    "grouping far apart sentences on the same topic",
    "which FAISS index to use for a million vectors",
    "combining BM25 and vector search results",
    "how to cite the exact source span of an answer",
    "measuring retrieval quality with recall and MRR",
    "what guidance scale to use for stable diffusion",
    "best scheduler for few inference steps",
    "how many training images does a LoRA need",
    "dreambooth learning rate and number of steps",
    "textual inversion token for a new concept",
    "negative prompt to avoid deformed hands",
    "where to put the subject in a stable diffusion prompt",
    "prompt emphasis with parentheses weights",
    "what is the CLIP token limit of a prompt",
]


def queries() -> list[str]:
    qa = json.loads(B.QA.read_text())
    return [item["question"] for item in qa] + PARAPHRASES


# --- corpus ------------------------------------------------------------------------------


def prose_paragraphs() -> list[str]:
    if not B.CORPUS.is_file():
        raise SystemExit(f"{B.CORPUS} is missing: run .venv/bin/python bench/make_corpus.py first")
    return B.paragraphs(B.CORPUS.read_text(encoding="utf-8"))


def write_files(paras: list[str], folder: Path, first: int, count: int, start_para: int) -> int:
    """Files doc{first..first+count}.txt of ~FILE_BYTES each, cut at paragraph
    boundaries from ``paras[start_para:]``. Returns the next paragraph index."""
    folder.mkdir(parents=True, exist_ok=True)
    i = start_para
    for n in range(first, first + count):
        parts, size = [], 0
        while size < FILE_BYTES:
            p = paras[i % len(paras)]
            i += 1
            parts.append(p)
            size += len(p.encode()) + 2
        (folder / f"doc{n:03d}.txt").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return i


def ingest_groups(folder: Path, ingestor) -> list[list[str]]:
    """The embedding texts exactly as Ingestor.ingest_paths would embed them for a
    fresh data folder: same loader, chunker, embedding_text and flush grouping."""
    from ingest.loaders import load_file
    from ingest.pipeline import embedding_text

    groups, pending = [], []

    def flush():
        texts = []
        for loaded in pending:
            texts += [embedding_text(loaded.title, c) for c in ingestor.chunker(loaded.text)]
        if texts:
            groups.append(texts)

    for path in sorted(folder.rglob("*.txt")):
        pending.append(load_file(path))
        if sum(len(p.text) for p in pending) > ingestor.batch_chunks * 1500:
            flush()
            pending = []
    flush()
    return groups


def profile_top(fn, lines: int = 22) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(lines)
    text = out.getvalue()
    keep = [line for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(keep) if "ncalls" in line), 0)
    return "\n".join(keep[start:])


# --- ingest ------------------------------------------------------------------------------


def bench_ingest(work: Path, report: list[str], reps: int) -> Path:
    from ingest import Ingestor
    from retrieval import Notebook

    paras = prose_paragraphs()
    corpus_a, corpus_b = work / "corpus-a", work / "corpus-b"
    nxt = write_files(paras, corpus_a, 0, N_FILES, start_para=1000)
    write_files(paras, corpus_b, N_FILES, N_FILES, start_para=nxt)
    size_kb = sum(p.stat().st_size for p in corpus_a.iterdir()) / 1024

    probe = Notebook(work / "probe")
    probe.embed(["warm"])  # load the model once for the process
    groups = ingest_groups(corpus_a, Ingestor(probe))
    texts = [t for g in groups for t in g]
    n_chunks = len(texts)
    tok = probe.embedder.model.tokenizer
    tokens = [len(ids) for ids in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]]
    B.log(f"[ingest] {N_FILES} files, {size_kb:.0f} KB, {n_chunks} chunks in {len(groups)} flush groups; "
          f"MiniLM tokens mean {np.mean(tokens):.0f}, max {max(tokens)}")

    embed_times, ingest_times, reports = [], [], []
    last_folder = None
    meter = B.LoadMeter()
    for rep in range(reps):
        # embedding model alone, on the very texts and groups the ingest embeds
        t0 = time.perf_counter()
        for g in groups:
            probe.embed(g)
        embed_times.append(time.perf_counter() - t0)
        # end-to-end ingest into a fresh data folder, model already loaded
        folder = work / f"ingest-{rep}"
        nb = Notebook(folder)
        nb.embed(["warm"])
        ingestor = Ingestor(nb)
        ingestor.chunker("Warm the chunker's tokenizer. Two sentences.")
        t0 = time.perf_counter()
        rep_report = ingestor.ingest_paths([corpus_a])
        ingest_times.append(time.perf_counter() - t0)
        reports.append(rep_report)
        assert rep_report.chunks_embedded == n_chunks and not rep_report.failed, rep_report.summary()
        B.log(f"[ingest] rep {rep}: embed-only {embed_times[-1]:.2f}s, ingest {ingest_times[-1]:.2f}s")
        if last_folder is not None:
            nb.store.close()
            shutil.rmtree(last_folder, ignore_errors=True)
        last_folder = folder
    load = meter.stop()

    embed_best, ingest_best = min(embed_times), min(ingest_times)
    embed_med, ingest_med = B.median(embed_times), B.median(ingest_times)
    ratio_best = (n_chunks / ingest_best) / (n_chunks / embed_best)
    ratio_med = (n_chunks / ingest_med) / (n_chunks / embed_med)

    # re-ingest of the unchanged corpus: same Notebook (warm), and a fresh Notebook (index from disk)
    nb = Notebook(last_folder)
    ingestor = Ingestor(nb)
    ingestor.ingest_paths([corpus_a])  # warm the path (index load, fingerprints)
    warm_times = []
    for _ in range(10):
        t0 = time.perf_counter()
        r = ingestor.ingest_paths([corpus_a])
        warm_times.append(time.perf_counter() - t0)
        assert r.unchanged == N_FILES and r.chunks_embedded == 0, r.summary()
    fresh_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fresh = Notebook(last_folder)
        r = Ingestor(fresh).ingest_paths([corpus_a])
        fresh_times.append(time.perf_counter() - t0)
        fresh.store.close()
        assert r.unchanged == N_FILES
    re_warm, re_fresh = B.median(warm_times), B.median(fresh_times)

    rows = [
        ["embedding model alone (nb.embed, same texts and groups)", f"{n_chunks}", f"{embed_best:.2f}", f"{embed_med:.2f}",
         B.fmt(n_chunks / embed_best), "", ""],
        ["ingest end to end (fresh data folder, model warm)", f"{n_chunks}", f"{ingest_best:.2f}", f"{ingest_med:.2f}",
         B.fmt(n_chunks / ingest_best), f"{ratio_best:.3f} (median {ratio_med:.3f})", "PASS" if ratio_best >= 0.9 else "MISS"],
    ]
    report += [
        "## Ingest throughput",
        "",
        f"Corpus: {N_FILES} files of ~{FILE_BYTES // 1000} KB ({size_kb:.0f} KB) cut from bench/corpus/prose.txt at paragraph "
        f"boundaries; default chunking (hybrid 256/32, cl100k tokens) gives {n_chunks} chunks; embedded texts are "
        f"{np.mean(tokens):.0f} MiniLM tokens on average (max {max(tokens)}, the model truncates at 256). "
        f"{reps} alternating repetitions of each; best and median wall time. "
        f"Embedding batch size {probe.embedder.batch_size}, torch threads {__import__('torch').get_num_threads()}.",
        "",
        B.table(["what", "chunks", "best s", "median s", "chunks/s (best)", "ingest / model", "target >= 0.9"], rows),
        "",
        f"Load during this section: {load}",
        "",
        "## Re-ingest of the unchanged corpus",
        "",
        B.table(["what", "median s", "first ingest / re-ingest", "target >= 50x"], [
            ["re-ingest, same Notebook and Ingestor (10 runs)", f"{re_warm * 1000:.1f} ms", f"{ingest_best / re_warm:,.0f}x",
             "PASS" if ingest_best / re_warm >= 50 else "MISS"],
            ["re-ingest, fresh Notebook (opens SQLite, loads the index file; 5 runs)", f"{re_fresh * 1000:.1f} ms",
             f"{ingest_best / re_fresh:,.0f}x", "PASS" if ingest_best / re_fresh >= 50 else "MISS"],
        ]),
        "",
    ]
    if ratio_best < 0.9:
        def one():
            folder = work / "ingest-profile"
            nbp = Notebook(folder)
            nbp.embed(["warm"])
            Ingestor(nbp).ingest_paths([corpus_a])
        report += ["Ingest/model ratio below target; cProfile of one ingest (cumulative):", "", "```", profile_top(one), "```", ""]
    # the 1k folder: this ingest + corpus B + the sample notes
    nb = Notebook(last_folder)
    Ingestor(nb).ingest_paths([corpus_b])
    Ingestor(nb).ingest_paths([B.NOTES])
    nb.store.close()
    return last_folder


# --- 100k synthetic folder ------------------------------------------------------------------------


def base_vectors(paras: list[str], nb) -> np.ndarray:
    """Real MiniLM embeddings of BASE_VECTORS distinct prose paragraphs (cached)."""
    rng = random.Random(7)
    pool = [p for p in dict.fromkeys(paras) if 200 <= len(p) <= 1500]
    chosen = rng.sample(pool, BASE_VECTORS)
    key = hashlib.sha1("\x1f".join(chosen).encode()).hexdigest()[:16]
    cache = B.RESULTS / ".cache" / f"base-vectors-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    B.log(f"[100k] embedding {BASE_VECTORS} base paragraphs (cached in {cache})")
    t0 = time.perf_counter()
    vectors = nb.embed(chosen)
    B.log(f"[100k] base vectors in {time.perf_counter() - t0:.1f}s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def fill_big(folder: Path) -> dict:
    """100k synthetic chunk rows through the store API (see the README for the recipe)."""
    from ingest import ChunkSettings, Ingestor
    from retrieval import Notebook
    from retrieval.store import ChunkRecord, DocumentRecord, chunk_id

    nb = Notebook(folder)
    Ingestor(nb).ingest_paths([B.NOTES])  # the real sample notes, so qa.json questions find their answers
    paras = prose_paragraphs()
    base = base_vectors(paras, nb)
    dim = base.shape[1]
    rng = np.random.default_rng(11)
    key = ChunkSettings.of().key
    t0 = time.perf_counter()
    n_docs = BIG_CHUNKS // BIG_DOC_CHUNKS
    docs_per_txn = BIG_TXN_CHUNKS // BIG_DOC_CHUNKS
    made = 0
    for txn_start in range(0, n_docs, docs_per_txn):
        with nb.store.transaction() as db:
            if txn_start == 0:
                nb.store.set_meta(db, "embedding", {"model": nb.embedding_model, "dim": dim})
            for d in range(txn_start, min(n_docs, txn_start + docs_per_txn)):
                texts = []
                for _ in range(BIG_DOC_CHUNKS):  # a window of consecutive real paragraphs, 500-1200 chars
                    i = int(rng.integers(len(paras)))
                    parts, size = [], 0
                    while size < 500:
                        p = paras[i % len(paras)][:1200 - size] if size else paras[i % len(paras)][:1200]
                        parts.append(p)
                        size += len(p) + 2
                        i += 1
                    texts.append("\n\n".join(parts))
                doc_text = "\n\n".join(texts)
                source = f"synthetic/doc{d:05d}.txt"
                chash = hashlib.sha256(doc_text.encode()).hexdigest()
                doc = DocumentRecord(source, f"Synthetic {d}", "text", doc_text, chash, None, len(doc_text), [], key)
                picks = rng.integers(len(base), size=BIG_DOC_CHUNKS)
                vecs = base[picks] + rng.normal(0, NOISE_SIGMA, size=(BIG_DOC_CHUNKS, dim)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                chunks, at = [], 0
                for j, t in enumerate(texts):
                    chunks.append(ChunkRecord(chunk_id(source, chash, at, at + len(t)), j, at, at + len(t), max(1, len(t) // 4), [], t,
                                              vecs[j].astype(np.float32)))
                    at += len(t) + 2
                nb.store.replace_document(db, doc, chunks)
                made += len(chunks)
        B.log(f"[100k] {made} rows, {time.perf_counter() - t0:.0f}s")
    fill_s = time.perf_counter() - t0
    counts = nb.store.counts()
    nb.store.close()
    return {"fill_s": fill_s, **counts.to_dict()}


# --- latency ------------------------------------------------------------------------------------


def latency(folder: Path, label: str, report: list[str], n_search: int, n_ask: int) -> None:
    from retrieval import Notebook

    meter = B.LoadMeter()
    t0 = time.perf_counter()
    nb = Notebook(folder)
    nb.embed(["warm"])
    t_model = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = nb.index()
    t_index = time.perf_counter() - t0
    kind, count = index.kind, index.count
    # the build alone, from the vectors in SQLite (what a stale or missing index file costs)
    from retrieval.vectors import VectorIndex

    t0 = time.perf_counter()
    ids, vecs = [], []
    for batch_ids, batch_vectors in nb.store.iter_vectors():
        ids.append(batch_ids)
        vecs.append(batch_vectors)
    ids, vecs = np.concatenate(ids), np.concatenate(vecs)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    built = VectorIndex.build(ids, vecs, vecs.shape[1])
    t_build = time.perf_counter() - t0
    built_kind = built.kind
    del built, ids, vecs
    # a second fresh Notebook: the persisted index file is loaded instead of built
    t0 = time.perf_counter()
    again = Notebook(folder)
    again.index()
    t_load = time.perf_counter() - t0
    again.store.close()
    qs = queries()
    results = {}
    for mode in ("dense", "lexical", "hybrid"):
        for q in qs[:10]:
            nb.search(q, mode=mode)  # warm-up
        times = []
        for i in range(n_search):
            t0 = time.perf_counter()
            nb.search(qs[i % len(qs)], k=5, mode=mode)
            times.append(time.perf_counter() - t0)
        results[f"search {mode}"] = times
    for q in qs[:5]:
        nb.ask(q)
    times = []
    # time spent embedding inside ask (question + candidate sentences), via an instance wrapper
    embed_spent, embed_texts, real_embed = [0.0], [0], nb.embed

    def timed_embed(texts):
        t1 = time.perf_counter()
        try:
            return real_embed(texts)
        finally:
            embed_spent[0] += time.perf_counter() - t1
            embed_texts[0] += len(texts)

    nb.embed = timed_embed
    for i in range(n_ask):
        t0 = time.perf_counter()
        nb.ask(qs[i % len(qs)])
        times.append(time.perf_counter() - t0)
    del nb.embed
    results["ask"] = times
    ask_embed_share = embed_spent[0] / sum(times)
    ask_texts = embed_texts[0] / n_ask
    # where a search's time goes: the query embedding alone
    emb = []
    for i in range(n_search):
        t0 = time.perf_counter()
        nb.embed([qs[i % len(qs)]])
        emb.append(time.perf_counter() - t0)
    results["(query embedding alone)"] = emb
    load = meter.stop()
    big = count >= 50_000
    rows = []
    for name, times in results.items():
        p50, p99 = B.pct(times, 50) * 1000, B.pct(times, 99) * 1000
        if big and name.startswith("search"):
            verdict = "PASS" if p50 <= 20 and p99 <= 50 else "MISS"
        else:
            verdict = ""
        rows.append([name, len(times), f"{p50:.1f}", f"{p99:.1f}", f"{B.pct(times, 90) * 1000:.1f}", f"{max(times) * 1000:.1f}", verdict])
    counts = nb.store.counts()
    report += [
        f"## Search and ask latency, {label}",
        "",
        f"{counts['chunks']:,} chunks in {counts['documents']:,} documents; index kind **{kind}** ({count:,} vectors). "
        f"Opening the Notebook and loading the model: {t_model:.2f}s; first `nb.index()` (build from the vectors in SQLite "
        f"and persist, when the manifest is stale, else load the file): {t_index:.2f}s; index build alone, timed separately: "
        f"reading the vectors from SQLite {t_read:.2f}s + `VectorIndex.build` ({built_kind}) {t_build:.2f}s; a second fresh "
        f"Notebook loading the persisted index file: {t_load:.2f}s. Queries: the {len(qs) - len(PARAPHRASES)} qa.json questions and {len(PARAPHRASES)} paraphrases, cycled; "
        f"k=5; warm (10 warm-up queries per mode).",
        "",
        B.table(["operation", "n", "p50 ms", "p99 ms", "p90 ms", "max ms", "target (100k: p50 <= 20, p99 <= 50)"], rows),
        "",
        f"Inside `ask`, {ask_embed_share * 100:.0f}% of the time is spent in `nb.embed` (the question for the search, then the "
        f"question and up to 24 candidate sentences: {ask_texts:.1f} texts embedded per ask on average).",
        "",
        f"Load during this section: {load}",
        "",
    ]
    misses = [name for name, times in results.items() if big and name.startswith("search")
              and (B.pct(times, 50) > 0.020 or B.pct(times, 99) > 0.050)]
    for name in misses:
        mode = name.split()[1]
        def run(mode=mode):
            for i in range(60):
                nb.search(qs[i % len(qs)], k=5, mode=mode)
        report += [f"`{name}` misses the target; cProfile of 60 searches (cumulative):", "", "```", profile_top(run, 18), "```", ""]
    if big:
        report += fts_analysis(nb, qs, counts["chunks"])
    nb.store.close()


def fts_analysis(nb, qs: list[str], total: int, df_limit: float = 0.05) -> list[str]:
    """Where the FTS5 step's time goes: rows matched per query, and (an experiment
    in SQL only, the library is unchanged) the same query without its terms that
    occur in more than ``df_limit`` of the chunks."""
    from retrieval.store import _FTS_TERM, STOP_WORDS

    db = nb.store.db
    sql = "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) LIMIT ?"
    df_cache: dict[str, int] = {}

    def df(term: str) -> int:
        if term not in df_cache:
            df_cache[term] = db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{term}"',)).fetchone()[0]
        return df_cache[term]

    def timed(match: str) -> float:
        t0 = time.perf_counter()
        for _ in range(3):
            db.execute(sql, (match, 20)).fetchall()
        return (time.perf_counter() - t0) / 3 * 1000

    rows, actual, pruned = [], [], []
    for q in qs:
        terms = [t for t in _FTS_TERM.findall(q.lower()) if t not in STOP_WORDS]
        if not terms:
            continue
        match = " OR ".join(f'"{t}"' for t in terms)
        matched = db.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()[0]
        t_actual = timed(match)
        rare = [t for t in terms if df(t) <= df_limit * total] or sorted(terms, key=df)[:2]
        t_pruned = timed(" OR ".join(f'"{t}"' for t in rare))
        common = sorted((t for t in terms if t not in rare), key=lambda t: -df(t))
        actual.append(t_actual)
        pruned.append(t_pruned)
        rows.append((t_actual, q, matched, ", ".join(f"{t} ({df(t) / total * 100:.0f}%)" for t in common[:5]), t_pruned))
    rows.sort(reverse=True)
    return [
        f"Where the FTS5 step's time goes (`store.lexical`'s SQL, `MATCH 't1' OR 't2' ... ORDER BY bm25 LIMIT 20`, mean of 3): "
        f"FTS5 scores every row that matches any term before it can sort, so the time follows the rows matched. Slowest queries, "
        f"with their terms found in more than {df_limit * 100:.0f}% of the chunks (share in brackets), and the time of the same "
        f"query without those terms (an experiment in SQL, the library is unchanged):",
        "",
        B.table(["ms", "rows matched", "query", "common terms", "ms without them"],
                [[f"{ms:.1f}", f"{n:,}", q, common or "–", f"{ms2:.1f}"] for ms, q, n, common, ms2 in rows[:6]]),
        "",
        f"Over all {len(actual)} queries, FTS5 step p50 / p99: {B.pct(actual, 50):.1f} / {B.pct(actual, 99):.1f} ms as is, "
        f"{B.pct(pruned, 50):.1f} / {B.pct(pruned, 99):.1f} ms without the terms in more than {df_limit * 100:.0f}% of the chunks.",
        "",
    ]


# --- server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            name, value = line.split(":")
            out[name] = int(value.split()[0])
    return out


def bench_server(folder: Path, report: list[str], n_search: int = 100, n_ask: int = 20) -> None:
    import httpx

    port = free_port()
    log_file = open(folder.parent / "server.log", "w")
    meter = B.LoadMeter()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [B.PYTHON, "-m", "service.cli", "--data", str(folder), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=B.ROOT, stdout=log_file, stderr=log_file, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            try:
                B.wait_healthy(client, proc, 300)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}: see {log_file.name}") from None
            startup = time.perf_counter() - t0
            after_start = status_kb(proc.pid)
            qs = queries()
            search_t, ask_t = [], []
            modes = ("hybrid", "dense", "lexical")
            for i in range(n_search):
                t1 = time.perf_counter()
                r = client.post("/search", json={"query": qs[i % len(qs)], "k": 5, "mode": modes[i % 3]})
                search_t.append(time.perf_counter() - t1)
                r.raise_for_status()
            for i in range(n_ask):
                t1 = time.perf_counter()
                r = client.post("/ask", json={"question": qs[i % len(qs)]})
                ask_t.append(time.perf_counter() - t1)
                r.raise_for_status()
            final = status_kb(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except Exception:
            proc.kill()
            proc.wait()
        log_file.close()
    load = meter.stop()
    db_mb = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20
    report += [
        "## Server peak memory (100k folder)",
        "",
        f"`python -m service.cli --data DIR serve` on 127.0.0.1; the data folder holds {db_mb:,.0f} MiB on disk. "
        f"Ready (model and index loaded) after {startup:.1f}s; then {n_search} POST /search (modes hybrid/dense/lexical in turn) "
        f"and {n_ask} POST /ask, sequential, with httpx.",
        "",
        B.table(["measure", "value"], [
            ["VmRSS after start-up", f"{after_start['VmRSS'] / 1024:,.0f} MiB"],
            ["VmRSS after the requests", f"{final['VmRSS'] / 1024:,.0f} MiB"],
            ["**VmHWM (peak RSS)**", f"**{final['VmHWM'] / 1024:,.0f} MiB**"],
            ["HTTP /search p50 / p99 (client side)", f"{B.pct(search_t, 50) * 1000:.1f} / {B.pct(search_t, 99) * 1000:.1f} ms"],
            ["HTTP /ask p50 / p99 (client side)", f"{B.pct(ask_t, 50) * 1000:.1f} / {B.pct(ask_t, 99) * 1000:.1f} ms"],
        ]),
        "",
        f"Load during this section: {load}",
        "",
    ]


# --- threads ----------------------------------------------------------------------------------------


def embed_worker(path: str) -> None:
    """Subprocess: MiniLM throughput with this process's NOTELOOM_THREADS."""
    import torch

    from runtime import get_embedder

    data = json.loads(Path(path).read_text())
    embed = get_embedder()
    embed(["warm up"] * 8)
    embed(data["chunks"][:16])
    out = {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)")}
    for name in ("sentences", "chunks"):
        texts = data[name]
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            embed(texts)
            best = min(best, time.perf_counter() - t0)
        out[name] = {"n": len(texts), "best_s": best, "per_s": len(texts) / best}
    print(json.dumps(out))


def bench_threads(work: Path, report: list[str], max_wait: float) -> None:
    from ingest import Ingestor
    from retrieval import Notebook

    paras = prose_paragraphs()
    corpus = work / "threads-corpus"
    write_files(paras, corpus, 0, 40, start_para=20000)
    nb = Notebook(work / "threads-probe")
    groups = ingest_groups(corpus, Ingestor(nb))
    chunk_texts = [t for g in groups for t in g][:128]
    rng = random.Random(3)
    sentences = []
    for p in paras[5000:60000]:
        for s in p.replace("\n", " ").split(". "):
            if 6 <= len(s.split()) <= 20:
                sentences.append(s.strip() + ".")
    sentences = rng.sample(sentences, 1000)
    tok = nb.embedder.model.tokenizer
    chunk_tok = np.mean([len(x) for x in tok(chunk_texts)["input_ids"]])
    sent_tok = np.mean([len(x) for x in tok(sentences)["input_ids"]])
    data = work / "threads.json"
    data.write_text(json.dumps({"chunks": chunk_texts, "sentences": sentences}))
    def run_worker(threads: str, policy: str | None) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        env["NOTELOOM_THREADS"] = threads
        if policy is None:
            env["BENCH_OMP_UNSET"] = "1"
        else:
            env["OMP_WAIT_POLICY"] = policy
        proc = subprocess.run([B.PYTHON, __file__, "--embed-worker", str(data)], capture_output=True, text=True, cwd=B.ROOT,
                              env=env, timeout=900)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        B.log(f"[threads] {threads} {policy}: {res}")
        return res

    quiet = B.wait_for_quiet(max_wait=max_wait)
    meter = B.LoadMeter()
    runs: dict[tuple[str, str | None, bool], list[dict]] = {}
    for threads, policy in [("1", "PASSIVE"), ("2", "PASSIVE"), ("1", "PASSIVE"), ("2", "PASSIVE"), ("2", None)]:
        runs.setdefault((threads, policy, False), []).append(run_worker(threads, policy))
    load = meter.stop()
    # the same with one core kept busy by a spinning process (a shared machine)
    hog = subprocess.Popen([B.PYTHON, "-c", "while True: pass"])
    try:
        time.sleep(1)
        for threads, policy in [("1", "PASSIVE"), ("2", "PASSIVE"), ("2", None)]:
            runs.setdefault((threads, policy, True), []).append(run_worker(threads, policy))
    finally:
        hog.kill()
        hog.wait()
    rows = []
    for (threads, policy, busy), results in runs.items():
        sent = max(r["sentences"]["per_s"] for r in results)
        chunks = max(r["chunks"]["per_s"] for r in results)
        rows.append(["one core busy (spinning process)" if busy else "idle", threads, results[0]["threads"],
                     results[0]["omp_wait_policy"] if policy else "(unset: libgomp default)", len(results), B.fmt(sent), B.fmt(chunks)])
    best = lambda key: max(r[key[3]]["per_s"] for r in runs[key[:3]])  # noqa: E731
    s1, s2 = best(("1", "PASSIVE", False, "sentences")), best(("2", "PASSIVE", False, "sentences"))
    c1, c2 = best(("1", "PASSIVE", False, "chunks")), best(("2", "PASSIVE", False, "chunks"))
    bs1, bs2 = best(("1", "PASSIVE", True, "sentences")), best(("2", "PASSIVE", True, "sentences"))
    bc1, bc2 = best(("1", "PASSIVE", True, "chunks")), best(("2", "PASSIVE", True, "chunks"))
    report += [
        "## Torch threads for MiniLM (NOTELOOM_THREADS)",
        "",
        f"Each configuration in a fresh subprocess (torch threads are set when the model loads); best of 3 passes after a "
        f"warm-up; the two PASSIVE configurations alternate twice and the best run counts. {len(sentences)} short sentences "
        f"({sent_tok:.0f} MiniLM tokens on average) and {len(chunk_texts)} ingest chunk texts ({chunk_tok:.0f} tokens on average), "
        f"embedding batch size 64.",
        "",
        B.table(["machine", "NOTELOOM_THREADS", "torch threads", "OMP_WAIT_POLICY", "runs", "sentences/s", "chunks/s"], rows),
        "",
        f"2 threads / 1 thread (PASSIVE), idle machine: sentences x{s2 / s1:.2f}, chunks x{c2 / c1:.2f}; with one core busy: "
        f"sentences x{bs2 / bs1:.2f}, chunks x{bc2 / bc1:.2f}.",
        "",
        f"Machine before the section: {quiet}. Load during the idle rows: {load}. The 'one core busy' rows run beside a "
        f"`while True: pass` process this benchmark starts and stops itself.",
        "",
    ]


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    global BIG_CHUNKS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--big-data", default=None, help="folder for the 100k data (kept; reused when it already holds 100k chunks)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the ingest / embed-only pair")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--asks", type=int, default=50)
    parser.add_argument("--big-chunks", type=int, default=BIG_CHUNKS, help="synthetic rows in the big folder (smoke tests: fewer)")
    parser.add_argument("--max-wait", type=float, default=600, help="longest wait for a quiet machine, seconds")
    parser.add_argument("--embed-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embed_worker:
        embed_worker(args.embed_worker)
        return
    BIG_CHUNKS = args.big_chunks
    only = B.sections(args.only)
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")

    started = time.time()
    report = B.start("rag_bench", args.max_wait)
    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        if "ingest" in only or "latency1k" in only:
            small = bench_ingest(work, report, args.reps) if "ingest" in only else None
            if small is None:
                from ingest import Ingestor
                from retrieval import Notebook

                paras = prose_paragraphs()
                nxt = write_files(paras, work / "corpus-a", 0, N_FILES, start_para=1000)
                write_files(paras, work / "corpus-b", N_FILES, N_FILES, start_para=nxt)
                small = work / "small"
                nb = Notebook(small)
                for f in (work / "corpus-a", work / "corpus-b", B.NOTES):
                    Ingestor(nb).ingest_paths([f])
                nb.store.close()
            if "latency1k" in only:
                latency(small, "~1k chunks (real ingest)", report, args.searches, args.asks)
        big = Path(args.big_data) if args.big_data else work / "big"
        if {"latency100k", "server"} & set(only):
            from retrieval import Notebook

            existing = Notebook(big).store.counts()["chunks"] if (big / "notes.sqlite").is_file() else 0
            if existing < BIG_CHUNKS:
                if big.exists():
                    shutil.rmtree(big)
                info = fill_big(big)
                report += [
                    "## The 100k folder",
                    "",
                    f"Filled through the store API in {info['fill_s']:.0f}s ({info['chunks']:,} chunks, {info['documents']:,} documents, "
                    f"transactions of {BIG_TXN_CHUNKS:,} chunks). See bench/README.md for the recipe.",
                    "",
                ]
            else:
                report += [f"(100k folder reused from {big}: {existing:,} chunks)", ""]
            if "latency100k" in only:
                latency(big, "100k chunks (synthetic rows + the sample notes)", report, args.searches, args.asks)
            if "server" in only:
                bench_server(big, report)
        if "threads" in only:
            bench_threads(work, report, args.max_wait)
    except Exception:
        import traceback

        report += ["## ERROR", "", "```", traceback.format_exc(), "```", ""]
        B.log(traceback.format_exc())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.append(f"Total run time {time.time() - started:.0f}s.")
    report.append(f"At the end of the run: {B.code_version()} (a different hash means the code changed during the run).")
    text = "\n".join(report)
    print(text)
    path = B.write_results("rag_bench", text)
    B.log(f"written to {path}")


if __name__ == "__main__":
    main()
