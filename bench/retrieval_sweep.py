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
fused score plus a weight times their enclosing larger chunk's. Rows go to stdout as
a markdown table and to ``bench/results/retrieval_sweep.jsonl``.
With ``--focus``, each setting's top hits are also post-processed and scored as
one row per focus (``+``-joined steps, applied in this order):
``cutoff:fused|dense|lexical:F`` keeps the first hit and those scoring at least F
times the best of the candidates (``cutoff:either|both:L:D``: BM25 at L, cosine at
D, either or both), ``merge`` / ``merge-fill`` joins a hit overlapping or touching
a higher-ranked one of the same document into it (``-fill`` reads on until k),
``passage:CHARS[:FROM_RANK[:MIN_CHARS]]`` scores Chroma by each hit's best run of
whole sentences of at most CHARS characters (query terms weighted by IDF over the
chunks) grown to MIN_CHARS, from rank FROM_RANK on; ``narrow:F:CHARS[:MIN_CHARS]``
keeps the top k in their order and narrows the hits failing ``cutoff:either:F:F`` to
such a passage (the sets scored by it too); ``agree:N`` applies the cutoff only when
the first hit is among the top N of both the dense and the BM25 list;
``min-relative:F`` is ``Searcher.search(min_relative_score=F)`` itself (its default
cutoff); ``chunks`` is the hits as they are.
``--context prev|next|prev+next`` embeds each chunk with its neighbouring
sentence(s). ``--record CHROMA_DATA SETS_ROOT --fraction F`` scores
``Notebook.search(min_relative_score=F)`` over folders the CLI ingested
(``chroma_bench.py --data``, ``evalsets/score.py --keep``).
The figures of record still come from ``chroma_bench.py`` and ``evalsets/score.py``
(a real server, the CLI's ingest); this script is for choosing among settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
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


def ingest(embedder: CachedEmbedder, notes: Path, folder: Path, method: str, params: dict, context: str | None = None):
    from ingest import ChunkSettings, Ingestor
    from retrieval import Notebook

    notebook = Notebook(folder, embedder=embedder)
    ingestor = Ingestor(notebook, ChunkSettings.of(method, **params))
    if context:
        ingestor.chunker = with_neighbours(ingestor.chunker, context)
    with embedding_context(context):
        report = ingestor.ingest_paths([notes], collection="set")
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed[:3]}")
    return notebook


NEIGHBOUR_CHARS = 300  # how far a neighbouring sentence is looked for


def neighbour_sentence(text: str, start: int, end: int, side: str) -> str:
    """The last whole sentence (or line) before ``start``, or the first after ``end``."""
    if side == "prev":
        window = text[max(0, start - NEIGHBOUR_CHARS):start].rstrip()
        pieces = [p for p in _SENTENCE_END.split(window) if p.strip()]
        return pieces[-1].strip() if pieces and start > 0 else ""
    window = text[end:end + NEIGHBOUR_CHARS].lstrip()
    pieces = [p for p in _SENTENCE_END.split(window) if p.strip()]
    return pieces[0].strip() if pieces and end < len(text) else ""


def with_neighbours(chunker, context: str):
    """The chunker, its chunks carrying their neighbouring sentences in ``meta`` (an experiment:
    ``--context prev|next|prev+next`` puts them in what is embedded, not in the stored text)."""
    def chunk(text: str):
        chunks = chunker(text)
        for c in chunks:
            c.meta["neighbours"] = [neighbour_sentence(text, c.start, c.end, side) for side in context.split("+")]
        return chunks
    return chunk


class embedding_context:
    """While active, ``ingest.pipeline.embedding_text`` adds the chunk's neighbour sentences."""

    def __init__(self, context: str | None) -> None:
        self.context = context

    def __enter__(self):
        import ingest.pipeline as pipeline

        self.original = pipeline.embedding_text
        if self.context:
            def embedding_text(title, chunk, original=self.original):
                extra = [n for n in chunk.meta.get("neighbours", []) if n]
                base = original(title, chunk)
                return base + "\n" + "\n".join(extra) if extra else base
            pipeline.embedding_text = embedding_text
        return self

    def __exit__(self, *exc) -> None:
        import ingest.pipeline as pipeline

        pipeline.embedding_text = self.original


def search(notebook, embedder: CachedEmbedder, query: str, k: int, weights: tuple[float, ...]) -> list[Hit]:
    """``Searcher.search`` in hybrid mode with weighted fusion, without a cutoff; ``weights``
    may go on with the RRF constant and the candidates per list (``dense:lexical[:rrf_k[:depth]]``);
    the named notes' list counts ``NAMED_WEIGHT`` times the dense weight, as in ``Searcher``."""
    from retrieval import fuse
    from retrieval.search import NAMED_WEIGHT, RRF_K

    dense_w, lexical_w, *rest = weights
    rrf_k = rest[0] if rest else RRF_K
    depth = int(rest[1]) if len(rest) > 1 else max(k * 4, 20)
    backend = notebook.backend
    query = query.strip()
    dense = backend.vector_search(embedder.embed_batch([query])[0], depth, None)
    lexical = backend.lexical_search(query, depth, None)
    named = backend.named_search(query, depth, None)
    ranked = fuse([dense, lexical, named], k=rrf_k, weights=(dense_w, lexical_w, NAMED_WEIGHT * dense_w))[: k * 2]
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


# ---------------------------------------------------------------- focused hits

@dataclass(frozen=True)
class Candidate:
    """A fused hit with its scores; missing from a list, it gets that list's last score."""

    source: str
    start: int
    end: int
    fused: float
    dense: float
    lexical: float


@dataclass(frozen=True)
class Focus:
    """One ``--focus`` spec, parsed."""

    label: str
    cutoff: tuple | None = None  # (signal, fraction) or ("either"|"both", lexical fraction, dense fraction)
    merge: str | None = None  # "merge" or "merge-fill"
    passage: tuple[int, int, int] | None = None  # (max chars, from rank, min chars)
    relative: float | None = None  # Searcher.search(min_relative_score=...) itself
    narrow: tuple | None = None  # (fraction, max chars, min chars): weak hits narrowed to a passage, ranks kept
    agree: int = 0  # cut only when the top hit is within the top N of both lists (0: always)


def parse_focus(spec: str) -> Focus:
    cutoff = merge = passage = relative = narrow = None
    agree = 0
    for step in spec.split("+"):
        name, *args = step.split(":")
        if name == "cutoff" and len(args) == 2 and args[0] in ("fused", "dense", "lexical"):
            cutoff = (args[0], float(args[1]))
        elif name == "cutoff" and len(args) == 3 and args[0] in ("either", "both"):
            cutoff = (args[0], float(args[1]), float(args[2]))
        elif name == "min-relative" and len(args) == 1:
            relative = float(args[0])
        elif name == "agree" and len(args) == 1:
            agree = int(args[0])
        elif name == "narrow" and 2 <= len(args) <= 3:
            narrow = (float(args[0]), int(args[1]), int(args[2]) if len(args) > 2 else 0)
        elif name in ("merge", "merge-fill") and not args:
            merge = name
        elif name == "passage" and 1 <= len(args) <= 3:
            passage = (int(args[0]), int(args[1]) if len(args) > 1 else 1, int(args[2]) if len(args) > 2 else 0)
        elif name != "chunks":
            raise SystemExit(f"--focus: unknown step {step!r}")
    return Focus(spec, cutoff, merge, passage, relative, narrow, agree)


def candidates(notebook, embedder, query: str, k: int, weights) -> list[Candidate]:
    """The top ``2k`` fused hits with their dense and lexical scores (``search``'s candidate lists)."""
    from retrieval import fuse
    from retrieval.search import NAMED_WEIGHT

    backend, n = notebook.backend, max(k * 4, 20)
    query = query.strip()
    dense = backend.vector_search(embedder.embed_batch([query])[0], n, None)
    lexical = backend.lexical_search(query, n, None)
    named = backend.named_search(query, n, None)
    ranked = fuse([dense, lexical, named], weights=(*weights[:2], NAMED_WEIGHT * weights[0]))[: k * 2]
    rows, d, l = backend.chunks(cid for cid, _ in ranked), dict(dense), dict(lexical)
    # A hit missing from a list scored at most that list's last score: the bound stands in for it.
    floor_d, floor_l = (dense[-1][1] if dense else 0.0), (lexical[-1][1] if lexical else 0.0)
    return [Candidate(Path(r.source).stem, r.start, r.end, score, d.get(cid, floor_d), l.get(cid, floor_l))
            for cid, score in ranked if (r := rows.get(cid)) is not None]


def apply_cutoff(cands: list[Candidate], cutoff: tuple | None) -> list[Candidate]:
    """The top hit and the candidates scoring at least a fraction of the best score of
    the list (all of them without a cutoff); ``either``/``both`` combine BM25 and cosine."""
    if cutoff is None or not cands:
        return cands
    best = {signal: max(getattr(c, signal) for c in cands) for signal in ("fused", "dense", "lexical")}

    def passes(c: Candidate, signal: str, fraction: float) -> bool:
        return best[signal] <= 0 or getattr(c, signal) >= fraction * best[signal]

    if cutoff[0] in ("either", "both"):
        join = any if cutoff[0] == "either" else all
        keep = [c for c in cands if join((passes(c, "lexical", cutoff[1]), passes(c, "dense", cutoff[2])))]
    else:
        keep = [c for c in cands if passes(c, *cutoff)]
    return [cands[0]] + [c for c in keep if c is not cands[0]]


def apply_merge(cands: list[Candidate], k: int, how: str | None, docs: dict[str, str]) -> list[list]:
    """Spans ``[source, start, end]`` in rank order. With a merge, a hit overlapping or
    touching (across blanks) a kept span of its document widens that span, keeping the
    span's rank, so no character counts twice; ``merge`` reads the top k hits,
    ``merge-fill`` reads on until it has k spans."""
    spans: list[list] = []
    for c in cands if how == "merge-fill" else cands[:k]:
        if len(spans) == k:
            break
        joined = next((s for s in spans if touches(s, c, docs)), None) if how is not None else None
        if joined is not None:
            joined[1], joined[2] = min(joined[1], c.start), max(joined[2], c.end)
        else:
            spans.append([c.source, c.start, c.end])
    return spans


def touches(span: list, c: Candidate, docs: dict[str, str]) -> bool:
    """Whether ``c`` overlaps ``span`` or only blank text lies between them."""
    source, start, end = span
    if source != c.source:
        return False
    gap = docs[source][end:c.start] if end <= c.start else docs[source][c.end:start] if c.end <= start else ""
    return not gap.strip()


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TERM = re.compile(r"[\w][\w\-']*", re.UNICODE)


def sentence_units(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Whole sentences (or lines) of ``text[start:end]`` as absolute offsets, blanks trimmed."""
    units, at = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        if m.start() > at:
            units.append((at, m.start()))
        at = m.end()
    if at < end:
        units.append((at, end))
    return units or [(start, end)]


def best_passage(text: str, start: int, end: int, weights: dict[str, float], max_chars: int,
                 min_chars: int = 0) -> tuple[int, int]:
    """The run of whole sentences within ``max_chars`` (at least one sentence) whose
    distinct query terms weigh most, ties to the shorter run, then grown by the next
    (or else the previous) sentence until it has ``min_chars``."""
    units = sentence_units(text, start, end)
    terms = [set(_TERM.findall(text[a:b].lower())) & weights.keys() for a, b in units]
    best_key, best_score = (0, 0), None
    for i in range(len(units)):
        seen: set[str] = set()
        for j in range(i, len(units)):
            if j > i and units[j][1] - units[i][0] > max_chars:
                break
            seen |= terms[j]
            key = (sum(weights[t] for t in seen), -(units[j][1] - units[i][0]))
            if best_score is None or key > best_score:
                best_score, best_key = key, (i, j)
    i, j = best_key
    while units[j][1] - units[i][0] < min_chars and (i > 0 or j < len(units) - 1):
        if j < len(units) - 1:
            j += 1
        else:
            i -= 1
    return units[i][0], units[j][1]


class TermWeights:
    """IDF of query terms over a notebook's chunks (what BM25 weighs them by)."""

    def __init__(self, notebook) -> None:
        import math
        from collections import Counter

        rows = notebook.backend.store.db.execute("SELECT text FROM chunks").fetchall()
        df = Counter(t for (text,) in rows for t in set(_TERM.findall(text.lower())))
        n = len(rows)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def of(self, query: str) -> dict[str, float]:
        from retrieval.store import STOP_WORDS  # the lexical index's stop words

        return {t: self.idf[t] for t in set(_TERM.findall(query.lower())) - STOP_WORDS if t in self.idf}


def focused(cands: list[Candidate], k: int, focus: Focus, docs: dict[str, str], query: str,
            weights: TermWeights | None) -> list[tuple[str, int, int]]:
    if focus.narrow is not None:
        fraction, max_chars, min_chars = focus.narrow
        strong = apply_cutoff(cands, ("either", fraction, fraction))
        terms = weights.of(query)
        return [(c.source, c.start, c.end) if any(c is s for s in strong)
                else (c.source, *best_passage(docs[c.source], c.start, c.end, terms, max_chars, min_chars))
                for c in cands[:k]]
    cutoff = focus.cutoff
    if focus.agree and cands:
        top = cands[0]
        dense_rank = sum(c.dense > top.dense for c in cands)
        lexical_rank = sum(c.lexical > top.lexical for c in cands)
        if max(dense_rank, lexical_rank) >= focus.agree:
            cutoff = None
    spans = apply_merge(apply_cutoff(cands, cutoff), k, focus.merge, docs)
    if focus.passage is None:
        return [tuple(s) for s in spans]
    max_chars, from_rank, min_chars = focus.passage
    terms = weights.of(query)
    return [tuple(s) if rank < from_rank else (s[0], *best_passage(docs[s[0]], s[1], s[2], terms, max_chars, min_chars))
            for rank, s in enumerate(spans, start=1)]


def searched(notebook, embedder, query: str, k: int, weights, fraction: float) -> list[tuple[str, int, int]]:
    """``Searcher.search`` itself with ``min_relative_score`` (fusion weights must be 1:w)."""
    from retrieval import Searcher

    searcher = Searcher(notebook.backend, embedder.embed_batch, lexical_weight=weights[1] / weights[0], min_relative_score=0)
    return [(Path(h.source).stem, h.start, h.end) for h in searcher.search(query, k, min_relative_score=fraction)]


def score_focus(chroma_cands, set_cands, focus: Focus, corpora, questions, labelled, terms: TermWeights, books,
                embedder, fusion) -> dict:
    set_terms = {name: TermWeights(books[name]) for name in SETS} if focus.narrow else {}

    def spans_of(name, cands, k, focus, docs, query, weights):
        if focus.relative is not None:
            return searched(books[name], embedder, query, k, fusion, focus.relative)
        return focused(cands, k, focus, docs, query, weights)

    retrievals = []
    for q, cands in zip(questions, chroma_cands):
        spans = spans_of("chroma", cands, 5, focus, corpora, q.text, terms)
        retrievals.append([chroma_bench.Retrieved(*s) for s in spans])
    chars = [r.end - r.start for rs in retrievals for r in rs]
    row = {"focus": focus.label, "chroma": {**chroma_bench.mean_scores(questions, retrievals),
                                            "mean_chars": round(sum(chars) / max(1, len(chars))),
                                            "mean_hits": round(len(chars) / len(retrievals), 2)}}
    for name in SETS:
        docs, ranks = labelled[name]["documents"], []
        for q, cands in zip(labelled[name]["questions"], set_cands[name]):
            spans = spans_of(name, cands, 10, Focus(focus.label, focus.cutoff, focus.merge, None, focus.relative, focus.narrow, focus.agree),
                             docs, q["question"], set_terms[name] if focus.narrow else None)
            hits = [Hit(s, a, b, docs[s][a:b]) for s, a, b in spans]
            ranks.append(evalsets.rank_of_gold(hits, q, docs))
        found = [r for r in ranks if r is not None]
        row[name] = {"ndcg@10": round(sum(1 / np.log2(1 + r) for r in found) / len(ranks), 3),
                     "recall@10": round(len(found) / len(ranks), 3)}
    return row


def focus_rows(books, embedder, corpora, questions, labelled, weights, specs: list[str]) -> list[dict]:
    started = time.perf_counter()
    chroma_cands = [candidates(books["chroma"], embedder, q.text, 5, weights) for q in questions]
    set_cands = {name: [candidates(books[name], embedder, q["question"], 10, weights) for q in labelled[name]["questions"]]
                 for name in SETS}
    print(f"<!-- candidates in {time.perf_counter() - started:.0f} s -->", file=sys.stderr, flush=True)
    term_weights = TermWeights(books["chroma"])
    rows = []
    for spec in specs:
        focus = parse_focus(spec)
        started = time.perf_counter()
        row = score_focus(chroma_cands, set_cands, focus, corpora, questions, labelled, term_weights, books, embedder, weights)
        row["ms_per_query"] = round(1000 * (time.perf_counter() - started) / (len(questions) + sum(len(v) for v in set_cands.values())), 2)
        rows.append(row)
    return rows


def score_set(notebook, embedder, labelled: dict, weights) -> dict:
    docs, questions = labelled["documents"], labelled["questions"]
    ranks = [evalsets.rank_of_gold(search(notebook, embedder, q["question"], 10, weights), q, docs) for q in questions]
    found = [r for r in ranks if r is not None]
    return {"ndcg@10": round(sum(1 / np.log2(1 + r) for r in found) / len(ranks), 3), "recall@10": round(len(found) / len(ranks), 3)}


def print_focus(chunking, books, embedder, corpora, questions, labelled, weightings, specs, out: Path) -> None:
    print("\n| chunking | weights | focus | recall | precision | IoU | mean chars | mean hits | "
          + " | ".join(SETS) + " | recall@10 | ms/query |")
    print("|---|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(SETS) + "---|---:|", flush=True)
    for weights in weightings:
        for row in focus_rows(books, embedder, corpora, questions, labelled, weights, specs):
            c = row["chroma"]
            print(f"| {chunking} | {':'.join(f'{w:g}' for w in weights)} | {row['focus']} | {c['recall']} | {c['precision']} | "
                  f"{c['iou']} | {c['mean_chars']} | {c['mean_hits']} | " + " | ".join(f"{row[n]['ndcg@10']:.3f}" for n in SETS)
                  + " | " + " / ".join(f"{row[n]['recall@10']:.3f}" for n in SETS) + f" | {row['ms_per_query']} |", flush=True)
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"chunking": chunking, "weights": weights, **row}) + "\n")


def record_rows(chroma_data: Path, sets_root: Path, fractions: list[float]) -> None:
    """``Notebook.search(min_relative_score=F)`` over folders the CLI ingested with default
    settings (``chroma_bench.py --data``, ``evalsets/score.py --keep``): the tools of record's
    ingest, searched in process (the HTTP API has no such parameter)."""
    from retrieval import Notebook

    corpora, questions = chroma_bench.load(chroma_bench.DATA)
    print("| min_relative_score | recall | precision | IoU | mean hits | " + " | ".join(SETS) + " | recall@10 |")
    print("|---:|---:|---:|---:|---:|" + "---:|" * len(SETS) + "---|", flush=True)
    notebook = Notebook(chroma_data)
    try:
        for fraction in fractions:
            search = {"min_relative_score": fraction}  # 0: no cutoff
            retrievals = [[chroma_bench.Retrieved(Path(h.source).stem, h.start, h.end)
                           for h in notebook.search(q.text, k=5, **search)] for q in questions]
            c = chroma_bench.mean_scores(questions, retrievals)
            sets = {name: evalsets.score_set(HERE / "evalsets" / f"{name}.json", sets_root / name, **search) for name in SETS}
            print(f"| {fraction or 'none'} | {c['recall']} | {c['precision']} | {c['iou']} | "
                  f"{sum(map(len, retrievals)) / len(retrievals):.2f} | " + " | ".join(f"{sets[n]['ndcg@10']:.3f}" for n in SETS)
                  + " | " + " / ".join(f"{sets[n]['recall@10']:.3f}" for n in SETS) + " |", flush=True)
    finally:
        notebook.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", nargs=2, type=Path, default=None, metavar=("CHROMA_DATA", "SETS_ROOT"),
                        help="instead of a sweep: min_relative_score rows over folders the CLI ingested")
    parser.add_argument("--fraction", action="append", type=float, default=None, help="min_relative_score for --record (0: none)")
    parser.add_argument("--chunking", action="append", help="method:max_tokens:overlap[:min_section_tokens][@label]")
    parser.add_argument("--weights", action="append", default=None, help="dense:lexical[:rrf_k[:depth]] fusion weights, RRF constant, candidates per list (default 1:1)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "noteloom-sweep-vectors.pkl")
    parser.add_argument("--work", type=Path, default=None, help="folder for the ingested sets (default: a fresh temporary one)")
    parser.add_argument("--spec", default=None, help="embedding spec (default: what a new data folder gets)")
    parser.add_argument("--parent", default=None, help="a larger chunking: also score Chroma small-to-big against it")
    parser.add_argument("--context", default=None, choices=["prev", "next", "prev+next"],
                        help="embed each chunk with its neighbouring sentence(s) appended (an experiment)")
    parser.add_argument("--focus", action="append", default=None,
                        help="post-process the top hits: cutoff:SIGNAL:F, merge, merge-fill, passage:CHARS[:FROM_RANK], +-joined")
    parser.add_argument("--parent-weight", action="append", type=float, default=None, help="weights of the parent score (repeatable)")
    args = parser.parse_args(argv)
    if args.record:
        record_rows(*args.record, args.fraction or [0, 0.8, 0.85])
        return 0
    if not args.chunking:
        parser.error("--chunking is required")
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
        folder = folder.with_name(folder.name + (f"-{args.context}" if args.context else ""))
        books = {"chroma": ingest(embedder, chroma_bench.DATA / "corpora", folder / "chroma", method, params, args.context)}
        for name in SETS:
            books[name] = ingest(embedder, work / "notes" / name, folder / name, method, params, args.context)
        embedder.save()
        chunks = books["chroma"].counts().chunks
        print(f"<!-- {chunking}: ingested in {time.perf_counter() - started:.0f} s, "
              f"{embedder.embedded - before} new texts embedded -->", file=sys.stderr, flush=True)
        for weights in weightings:
            row = {"chunking": chunking, "weights": weights, "chroma_chunks": chunks,
                   "chroma": score_chroma(books["chroma"], embedder, corpora, questions, weights)}
            row.update({name: score_set(books[name], embedder, labelled[name], weights) for name in SETS})
            c = row["chroma"]
            print(f"| {chunking} | {':'.join(f'{w:g}' for w in weights)} | {chunks} | {c['recall']} | {c['precision']} | {c['iou']} | "
                  f"{c['mean_chars']} | " + " | ".join(f"{row[n]['ndcg@10']:.3f}" for n in SETS) + " |", flush=True)
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        if args.focus:
            print_focus(chunking, books, embedder, corpora, questions, labelled, weightings, args.focus, out)
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
