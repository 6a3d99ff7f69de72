"""Two chunkers trees side by side in one process, as × single-thread tiktoken.

    git worktree add /tmp/before <rev>
    python bench/engine_compare.py --before /tmp/before --corpus prose,rst,markdown

Each round times tiktoken's ``encode_ordinary`` and then every tree's chunker on
the same text, in turn (3 MB of each corpus built by ``make_corpus.py``, 512 tokens
cl100k_base, overlap 0 and 102, default threads); the best of ``--rounds`` is kept
for each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(tree: Path):
    """The ``chunkers`` package of ``tree``, imported afresh."""
    for name in [m for m in sys.modules if m == "chunkers" or m.startswith("chunkers.")]:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        import chunkers
    finally:
        sys.path.pop(0)
    return chunkers


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="a tree (e.g. a git worktree of an older revision)")
    ap.add_argument("--after", type=Path, default=HERE.parent, help="default: this tree")
    ap.add_argument("--corpus", default="prose,rst,markdown")
    ap.add_argument("--methods", default="fixed,sentence,paragraph,recursive,hybrid")
    ap.add_argument("--size-mb", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    trees = {"before": load(args.before), "after": load(args.after)}
    from chunkers.adapters.tiktoken import encoding  # the after tree's, still loaded

    enc = encoding("cl100k_base")
    print("| corpus | method | overlap | × tiktoken before | × tiktoken after |\n|---|---|---:|---:|---:|")
    for corpus in args.corpus.split(","):
        text = (HERE / "corpus" / f"{corpus}.txt").read_text()[: int(args.size_mb * 1_000_000)]
        for method in args.methods.split(","):
            for overlap in (0, 102):
                chunkers = {k: mod.get(method, max_tokens=512, overlap=overlap) for k, mod in trees.items()}
                for chunker in chunkers.values():
                    chunker(text[:10_000])
                runs: dict[str, list[float]] = {"tiktoken": [], **{k: [] for k in chunkers}}
                for _ in range(args.rounds):  # in turn, so a burst of load falls on all alike
                    runs["tiktoken"].append(seconds(lambda: enc.encode_ordinary(text)))
                    for k, chunker in chunkers.items():
                        runs[k].append(seconds(lambda: chunker(text)))
                ratio = {k: min(runs["tiktoken"]) / min(runs[k]) for k in chunkers}
                print(f"| {corpus} | {method} | {overlap} | {ratio['before']:.2f} | {ratio['after']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
