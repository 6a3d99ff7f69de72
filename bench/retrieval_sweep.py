#!/usr/bin/env python3
"""Chunking and fusion settings scored on the Chroma benchmark and the own sets
in one run, in process, so a sweep of many settings is cheap.

    .venv/bin/python bench/retrieval_sweep.py --chunking hybrid:256:32 --chunking hybrid:256:32:64
    .venv/bin/python bench/retrieval_sweep.py --chunking hybrid:192:24 --weights 1:1 --weights 1:2
    .venv/bin/python bench/retrieval_sweep.py --chunking hybrid:128:16 --weights 1:3 --parent hybrid:256:32   # small-to-big

``--chunking`` is ``method:max_tokens:overlap[:min_section_tokens]``; ``--weights``
is ``dense:lexical`` for reciprocal rank fusion (``retrieval.fuse``). Each
chunking is ingested by ``ingest.Ingestor`` (what `noteloom ingest` runs) into
fresh folders, one per set; every weighting then searches the same folders the
way ``Searcher.search`` does (top ``max(4k, 20)`` of each list, fused), k=5 for
Chroma (recall / precision / IoU, ``chroma_bench.score``) and k=10 for the own
sets (nDCG@10, ``evalsets/score.py``). Vectors are cached by text across
settings (``--cache``), so only new chunk texts are embedded; the default
embedding spec is what a new data folder gets (onnx-int8 when installed).
With ``--parent``, Chroma is also scored small-to-big: small hits ranked by their
fused score plus a weight times their enclosing larger chunk's. Rows go to stdout as a markdown table and to ``bench/results/retrieval_sweep.jsonl``.
The figures of record still come from ``chroma_bench.py`` and ``evalsets/score.py``
(a real server, the CLI's ingest); this script is for choosing among settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE, HERE / "evalsets"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import chroma_bench  # noqa: E402
import score as evalsets  # noqa: E402

SETS = ("manpages-structured", "manpages-unstructured", "readmes-structured", "readmes-unstructured")


class CachedEmbedder:
    """An embedder that remembers every text's vector (by SHA-1), on disk between runs."""

    def __init__(self, spec: str, path: Path) -> None:
        from runtime import get_embedder

        self.inner, self.name, self.path = get_embedder(spec), spec, path
        self.vectors: dict[bytes, np.ndarray] = pickle.loads(path.read_bytes()) if path.exists() else {}
        self.embedded = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).digest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.vectors))
        if missing:
            by_key = dict(zip(keys, texts))
            fresh = self.inner.embed_batch([by_key[k] for k in missing])
            self.vectors.update(zip(missing, np.asarray(fresh, dtype=np.float32)))
            self.embedded += len(missing)
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)

    def save(self) -> None:
        self.path.write_bytes(pickle.dumps(self.vectors))


@dataclass(frozen=True)
class Hit:
    source: str
    start: int
    end: int
    text: str


def parse_chunking(spec: str) -> tuple[str, dict]:
    """``method:max_tokens:overlap[:min_section_tokens]``, then an optional
    ``@label`` (a new folder name, e.g. after a code change)."""
    parts = spec.split("@")[0].split(":")
    method, params = parts[0], {"max_tokens": int(parts[1]), "overlap": int(parts[2])}
    if len(parts) > 3:
        params["min_section_tokens"] = int(parts[3])
    return method, params


def ingest(embedder: CachedEmbedder, notes: Path, folder: Path, method: str, params: dict):
    from ingest import ChunkSettings, Ingestor
    from retrieval import Notebook

    notebook = Notebook(folder, embedder=embedder)
    report = Ingestor(notebook, ChunkSettings.of(method, **params)).ingest_paths([notes], collection="set")
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed[:3]}")
    return notebook


def search(notebook, embedder: CachedEmbedder, query: str, k: int, weights: tuple[float, float]) -> list[Hit]:
    """``Searcher.search`` in hybrid mode with weighted fusion."""
    from retrieval import fuse

    backend, candidates = notebook.backend, max(k * 4, 20)
    query = query.strip()
    dense = backend.vector_search(embedder.embed_batch([query])[0], candidates, None)
    lexical = backend.lexical_search(query, candidates, None)
    ranked = fuse([dense, lexical], weights=weights)[: k * 2]
    rows = backend.chunks(cid for cid, _ in ranked)
    hits = [Hit(r.source, r.start, r.end, r.text) for cid, _ in ranked if (r := rows.get(cid)) is not None]
    return hits[:k]


def score_chroma(notebook, embedder, corpora, questions, weights) -> dict:
    retrievals = []
    for q in questions:
        hits = search(notebook, embedder, q.text, 5, weights)
        for h in hits:
            if corpora[Path(h.source).stem][h.start:h.end] != h.text:
                raise SystemExit(f"hit {h.source} {h.start}:{h.end} does not slice its corpus")
        retrievals.append([chroma_bench.Retrieved(Path(h.source).stem, h.start, h.end) for h in hits])
    chars = [r.end - r.start for rs in retrievals for r in rs]
    return {**chroma_bench.mean_scores(questions, retrievals), "mean_chars": round(sum(chars) / max(1, len(chars)))}


def small_to_big(small, big, embedder, corpora, questions, weights, parent_weights: list[float]) -> dict:
    """Chroma with small-chunk hits ranked by their own fused score plus ``w`` times
    the best fused score of an overlapping chunk of ``big`` (top 40 of each)."""
    from retrieval import fuse

    lists = []
    for q in questions:
        vector = embedder.embed_batch([q.text])[0]
        found = []
        for notebook in (small, big):
            ranked = fuse([notebook.backend.vector_search(vector, 40, None), notebook.backend.lexical_search(q.text, 40, None)],
                          weights=weights)
            rows = notebook.backend.chunks(cid for cid, _ in ranked)
            found.append([(rows[cid], score) for cid, score in ranked if cid in rows])
        lists.append(found)
    rows = {}
    for w in parent_weights:
        retrievals = []
        for small_hits, big_hits in lists:
            def parent(row):
                return max((s for b, s in big_hits if b.source == row.source and b.start < row.end and row.start < b.end), default=0.0)
            best = sorted(small_hits, key=lambda hit: -(hit[1] + w * parent(hit[0])))[:5]
            retrievals.append([chroma_bench.Retrieved(Path(r.source).stem, r.start, r.end) for r, _ in best])
        rows[w] = chroma_bench.mean_scores(questions, retrievals)
    return rows


def score_set(notebook, embedder, labelled: dict, weights) -> dict:
    docs, questions = labelled["documents"], labelled["questions"]
    ranks = [evalsets.rank_of_gold(search(notebook, embedder, q["question"], 10, weights), q, docs) for q in questions]
    found = [r for r in ranks if r is not None]
    return {"ndcg@10": round(sum(1 / np.log2(1 + r) for r in found) / len(ranks), 3), "recall@10": round(len(found) / len(ranks), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunking", action="append", required=True, help="method:max_tokens:overlap[:min_section_tokens][@label]")
    parser.add_argument("--weights", action="append", default=None, help="dense:lexical fusion weights (default 1:1)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "noteloom-sweep-vectors.pkl")
    parser.add_argument("--work", type=Path, default=None, help="folder for the ingested sets (default: a fresh temporary one)")
    parser.add_argument("--spec", default=None, help="embedding spec (default: what a new data folder gets)")
    parser.add_argument("--parent", default=None, help="a larger chunking: also score Chroma small-to-big against it")
    parser.add_argument("--parent-weight", action="append", type=float, default=None, help="weights of the parent score (repeatable)")
    args = parser.parse_args(argv)
    import runtime

    spec = args.spec or runtime.embedder_spec("all-MiniLM-L6-v2", "auto")
    embedder = CachedEmbedder(spec, args.cache)
    weightings = [tuple(float(x) for x in w.split(":")) for w in (args.weights or ["1:1"])]
    corpora, questions = chroma_bench.load(chroma_bench.DATA)
    work = args.work or Path(tempfile.mkdtemp(prefix="retrieval-sweep-"))
    labelled = {name: json.loads((HERE / "evalsets" / f"{name}.json").read_text(encoding="utf-8")) for name in SETS}
    for name, data in labelled.items():
        notes = work / "notes" / name
        notes.mkdir(parents=True, exist_ok=True)
        for doc, text in data["documents"].items():
            (notes / f"{doc}.md").write_text(text, encoding="utf-8")
    out = ROOT / "bench" / "results" / "retrieval_sweep.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    print("| chunking | weights | chunks | recall | precision | IoU | mean chars | " + " | ".join(SETS) + " |")
    print("|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(SETS), flush=True)
    for chunking in args.chunking:
        method, params = parse_chunking(chunking)
        started, before = time.perf_counter(), embedder.embedded
        folder = work / chunking.replace(":", "-").replace("@", "-")
        books = {"chroma": ingest(embedder, chroma_bench.DATA / "corpora", folder / "chroma", method, params)}
        for name in SETS:
            books[name] = ingest(embedder, work / "notes" / name, folder / name, method, params)
        embedder.save()
        chunks = books["chroma"].counts().chunks
        print(f"<!-- {chunking}: ingested in {time.perf_counter() - started:.0f} s, "
              f"{embedder.embedded - before} new texts embedded -->", file=sys.stderr, flush=True)
        for weights in weightings:
            row = {"chunking": chunking, "weights": weights, "chroma_chunks": chunks,
                   "chroma": score_chroma(books["chroma"], embedder, corpora, questions, weights)}
            row.update({name: score_set(books[name], embedder, labelled[name], weights) for name in SETS})
            c = row["chroma"]
            print(f"| {chunking} | {weights[0]:g}:{weights[1]:g} | {chunks} | {c['recall']} | {c['precision']} | {c['iou']} | "
                  f"{c['mean_chars']} | " + " | ".join(f"{row[n]['ndcg@10']:.3f}" for n in SETS) + " |", flush=True)
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        if args.parent:
            big = ingest(embedder, chroma_bench.DATA / "corpora", work / args.parent.replace(":", "-").replace("@", "-") / "chroma",
                         *parse_chunking(args.parent))
            for weights in weightings:
                for w, scores in small_to_big(books["chroma"], big, embedder, corpora, questions, weights,
                                              args.parent_weight or [0.0, 0.5, 1.0, 2.0]).items():
                    print(f"<!-- {chunking} hits, {args.parent} parents x {w:g}, fusion {weights[0]:g}:{weights[1]:g}: "
                          f"{scores} -->", flush=True)
            big.close()
        for notebook in books.values():
            notebook.close()
        embedder.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
