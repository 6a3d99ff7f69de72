#!/usr/bin/env python3
"""Semantic chunking against the embedding model it waits on.

    .venv/bin/python bench/semantic_bench.py              # = make bench-semantic
    .venv/bin/python bench/semantic_bench.py --chars 100000 --repeats 2

The semantic chunker embeds one unit per sentence, so the embedding model is its
ceiling. On the same text this times (best of ``--repeats``, after a warm-up):
the model alone (``SentenceTransformerEmbedder``, the one the chunker uses) on the
chunker's own units, and the chunker end to end in ``split`` and ``group`` mode.
The issue's target is the chunker at >= 0.9 of the model's sentences/s.

Text: the first ``--chars`` characters of ``bench/corpus/prose.txt`` (Debian
documentation, made by ``bench/make_corpus.py``), cut at a paragraph break.
Prints a markdown report and writes it to ``bench/results/semantic_bench.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

CORPUS = B.ROOT / "bench" / "corpus" / "prose.txt"


def best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: model load, first-batch allocations
    return B.best_of(fn, repeats)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=200_000, help="characters of the corpus to chunk (default 200000)")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-wait", type=float, default=600)
    args = parser.parse_args()
    if not CORPUS.exists():
        sys.exit(f"{CORPUS} is missing: run bench/make_corpus.py first (or make bench-chunkers, which does)")
    text = CORPUS.read_text(encoding="utf-8")
    cut = text.rfind("\n\n", 0, args.chars)
    text = text[: cut if cut > 0 else args.chars]

    report = B.start("semantic_bench", args.max_wait)
    load = B.LoadMeter()
    import chunkers
    from runtime import get_embedder

    split = chunkers.get("semantic", max_tokens=args.max_tokens)
    group = chunkers.get("semantic", max_tokens=args.max_tokens, mode="group")
    units = [u.text for u in split._units.chunk(text)]  # what the chunker embeds
    embed = get_embedder(None)
    rows = []
    model_s = best_seconds(lambda: embed(units), args.repeats)
    rows.append(("model alone (all-MiniLM-L6-v2)", "–", model_s, None))
    for name, chunker in (("chunkers semantic, split", split), ("chunkers semantic, group", group)):
        out = chunker(text)
        seconds = best_seconds(lambda c=chunker: c(text), args.repeats)
        rows.append((name, len(out), seconds, model_s / seconds))
    report += [
        f"{len(text):,} characters of {CORPUS.relative_to(B.ROOT)}; {len(units):,} units (sentences), "
        f"max_tokens {args.max_tokens}; best of {args.repeats} runs after a warm-up.",
        "",
        B.table(
            ["what", "chunks", "seconds", "sentences/s", "× model"],
            [(what, n, f"{s:.2f}", B.fmt(len(units) / s), "1.00" if r is None else f"{r:.2f}") for what, n, s, r in rows],
        ),
        "",
        f"Load during the run: {load.stop()}",
        "",
        f"At the end of the run: {B.code_version()}.",
    ]
    out_text = "\n".join(report)
    print(out_text)
    B.log(f"written to {B.write_results('semantic_bench', out_text)}")


if __name__ == "__main__":
    main()
