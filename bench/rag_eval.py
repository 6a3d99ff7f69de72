"""Retrieval and answer quality on the labelled sample questions (samples/qa.json).

    .venv/bin/python bench/rag_eval.py [--max-tokens N --overlap N] [--min-relative-score F]

Prints recall@5 and MRR for dense, lexical and fused retrieval (a hit is relevant
when its span contains the gold sentence's ``answer_contains`` text), the share of
questions whose extractive answer cites the gold sentence, and how many off-topic
questions are correctly answered "not covered".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OFF_TOPIC = [
    "What is the capital of Peru?",
    "How do I change a bicycle tyre?",
    "Who won the 1998 football world cup?",
    "What is a good recipe for lentil soup?",
    "How does the TCP three-way handshake work?",
]


def gold_span(nb, item):
    # the notes folder is ingested as the collection "notes": its files are stored as "notes/<name>"
    doc = nb.store.document_by_source(f"notes/{item['source']}")
    pos = doc["text"].find(item["answer_contains"])
    assert pos >= 0, item
    return doc["id"], pos, pos + len(item["answer_contains"])


def evaluate(nb, qa, k=5, **search):
    results = {}
    for mode in ("dense", "lexical", "hybrid"):
        recall, rr = 0, 0.0
        for item in qa:
            doc_id, a, b = gold_span(nb, item)
            hits = nb.search(item["question"], k=k, mode=mode, **search)
            for rank, h in enumerate(hits, start=1):
                if h.doc_id == doc_id and h.start <= a and b <= h.end:
                    recall += 1
                    rr += 1 / rank
                    break
        results[mode] = (recall / len(qa), rr / len(qa))
    cited = 0
    for item in qa:
        doc_id, a, b = gold_span(nb, item)
        answer = nb.ask(item["question"])
        if any(c.doc_id == doc_id and c.start < b and a < c.end for c in answer.citations):
            cited += 1
    refused = sum(not nb.ask(q).covered for q in OFF_TOPIC)
    return results, cited / len(qa), refused


def main() -> None:
    from ingest import ChunkSettings, Ingestor
    from retrieval import Notebook

    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="hybrid")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--min-relative-score", type=float, default=None, metavar="F",
                        help="search (not ask) with this cutoff (0: none) instead of the default")
    args = parser.parse_args()
    search = {} if args.min_relative_score is None else {"min_relative_score": args.min_relative_score}
    qa = json.loads((ROOT / "samples" / "qa.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        nb = Notebook(tmp)
        Ingestor(nb, ChunkSettings.of(args.method, max_tokens=args.max_tokens, overlap=args.overlap)).ingest_paths([ROOT / "samples" / "notes"])
        results, cited, refused = evaluate(nb, qa, **search)
    print(f"chunking {args.method} {args.max_tokens}/{args.overlap}, {len(qa)} questions")
    print("| retrieval | recall@5 | MRR |\n|---|---|---|")
    for mode, (recall, mrr) in results.items():
        print(f"| {mode} | {recall:.3f} | {mrr:.3f} |")
    print(f"answers citing the gold sentence: {cited:.3f}; off-topic answered 'not covered': {refused}/{len(OFF_TOPIC)}")


if __name__ == "__main__":
    main()
