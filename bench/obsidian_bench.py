"""What Obsidian vault support costs: rendering links and tags while loading,
``links`` (outgoing + backlinks) per document, and ``open_urls`` per search, on a
synthetic vault of N notes (each linking to 5 others, with tags and an alias).

    .venv/bin/python bench/obsidian_bench.py [--notes 10000] [--repeats 200]

Torch-free: the store embeds with ``runtime.HashingEmbedder``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest import Ingestor, load_bytes  # noqa: E402
from ingest.obsidian import render  # noqa: E402
from retrieval import Notebook  # noqa: E402
from runtime import HashingEmbedder  # noqa: E402

WORDS = "lantern beacon harbour tide amber glass cell diffuser prototype paraffin spring ledger sketch".split()


def make_vault(folder: Path, notes: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    (folder / ".obsidian").mkdir(parents=True)
    for i in range(notes):
        links = " ".join(f"[[Note {rng.randrange(notes)}|see {j}]]" for j in range(5))
        body = " ".join(rng.choice(WORDS) for _ in range(120))
        text = (f"---\ntags: [t{i % 50}]\naliases: [Alias {i}]\n---\n# Note {i}\n\n{body} #topic{i % 20}\n\n"
                f"Related: {links} ![[img{i}.png]]\n\n`[[code]] #no`\n")
        path = folder / f"folder{i % 100}" / f"Note {i}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3  # noqa: E731
    return f"p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "Vault"
        make_vault(vault, args.notes)
        files = sorted(vault.rglob("*.md"))
        data = [f.read_bytes() for f in files[:1000]]
        megabytes = sum(map(len, data)) / 1e6
        started = time.perf_counter()
        for raw in data:
            load_bytes(raw, "n.md")
        print(f"load a note (YAML front matter included): {(time.perf_counter() - started) / megabytes * 1e3:.0f} ms per MB")
        bodies = [raw.decode().split("---\n", 2)[2] for raw in data]
        started = time.perf_counter()
        for body in bodies:
            render(body)
        print(f"of which links, embeds and inline tags (ingest.obsidian.render): "
              f"{(time.perf_counter() - started) / megabytes * 1e3:.0f} ms per MB")
        nb = Notebook(Path(tmp) / "data", embedder=HashingEmbedder(dim=64))
        started = time.perf_counter()
        report = Ingestor(nb).ingest_paths([vault])
        print(f"ingest {args.notes} notes: {time.perf_counter() - started:.1f} s ({report.summary()})")
        ids = [d.id for d in nb.documents(limit=args.notes)]
        rng = random.Random(1)
        times = []
        for _ in range(args.repeats):
            doc_id = rng.choice(ids)
            t0 = time.perf_counter()
            nb.links(doc_id)
            times.append(time.perf_counter() - t0)
        print(f"links + backlinks of one note, {args.notes} in the vault: {percentiles(times)}")
        hits = nb.search("amber lantern diffuser", k=5)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            nb.open_urls([(h.doc_id, h.start) for h in hits])
            times.append(time.perf_counter() - t0)
        print(f"open_urls for 5 hits: {percentiles(times)} (mean {statistics.mean(times) * 1e3:.2f} ms)")
        nb.close()


if __name__ == "__main__":
    main()
