#!/usr/bin/env python3
"""nDCG@10 and Recall@10 of noteloom on the labelled sets in this folder.

    .venv/bin/python bench/evalsets/score.py                    # every set, default settings
    .venv/bin/python bench/evalsets/score.py --keep /tmp/sets   # keep (and reuse) the ingested folders

Each set's documents are written as markdown files and ingested by the
`noteloom ingest` CLI with its default settings; questions go through
``Notebook.search`` (k=10, hybrid) in process. A hit is relevant when it lies in
the question's document and overlaps its gold span by at least one character;
only the first relevant hit counts (one gold span per question, so the ideal DCG
is 1): nDCG@10 = mean of 1/log2(1 + rank of the first relevant hit), Recall@10 =
share of questions with a relevant hit in the top 10. Every hit must slice its
document exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def ingest(docs: dict[str, str], folder: Path) -> Path:
    data = folder / "data"
    if (data / "done").exists():
        return data
    notes = folder / "notes"
    notes.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (notes / f"{name}.md").write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "service.cli", "--data", str(data), "ingest", str(notes),
                           "--collection", "set", "--json"], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"ingest failed:\n{done.stderr[-2000:]}")
    (data / "done").write_text("")
    return data


def rank_of_gold(hits, question: dict, docs: dict[str, str]) -> int | None:
    for rank, hit in enumerate(hits, start=1):
        name = Path(hit.source).stem
        if docs[name][hit.start:hit.end] != hit.text:
            raise SystemExit(f"hit {hit.source} {hit.start}:{hit.end} does not slice its document")
        if name == question["document"] and hit.start < question["end"] and question["start"] < hit.end:
            return rank
    return None


def score_set(path: Path, folder: Path, k: int = 10, **search) -> dict:
    from retrieval import Notebook

    labelled = json.loads(path.read_text(encoding="utf-8"))
    docs, questions = labelled["documents"], labelled["questions"]
    notebook = Notebook(ingest(docs, folder))
    ranks = [rank_of_gold(notebook.search(q["question"], k=k, **search), q, docs) for q in questions]
    found = [r for r in ranks if r is not None]
    return {"questions": len(questions), "ndcg@10": round(sum(1 / math.log2(1 + r) for r in found) / len(ranks), 3),
            "recall@10": round(len(found) / len(ranks), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, default=None, help="folder for the ingested sets (reused when present)")
    parser.add_argument("--set", action="append", default=None, help="set name, e.g. manpages-unstructured (repeatable)")
    parser.add_argument("--min-relative-score", type=float, default=None, metavar="F",
                        help="search with this cutoff (0: none) instead of the default")
    args = parser.parse_args(argv)
    search = {} if args.min_relative_score is None else {"min_relative_score": args.min_relative_score}
    root = args.keep or Path(tempfile.mkdtemp(prefix="evalsets-"))
    names = args.set or sorted(p.stem for p in HERE.glob("*.json"))
    results = {}
    for name in names:
        results[name] = score_set(HERE / f"{name}.json", root / name, **search)
        print(f"{name}: {results[name]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
