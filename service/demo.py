"""`make demo`: run noteloom on the bundled sample notes."""

from __future__ import annotations

from pathlib import Path

import chunkers

NOTES = Path(__file__).resolve().parent.parent / "samples" / "notes"


def chunk_demo() -> None:
    note = NOTES / "chunking-recursive.md"
    text = note.read_text(encoding="utf-8")
    print(f"# Chunking {note.name} ({len(text)} characters) with every method, 128 tokens\n")
    for name in chunkers.available():
        params = {"max_tokens": 128}
        if name == "hybrid":
            params["overlap"] = 32
        chunks = chunkers.get(name, **params)(text)
        sizes = [c.token_count for c in chunks]
        first = chunks[0]
        print(f"{name:>10}: {len(chunks):3d} chunks, tokens mean {sum(sizes) / len(sizes):5.1f} max {max(sizes):3d}; "
              f"chunk 0 = [{first.start}:{first.end}] {first.text[:50]!r}")


def main() -> None:
    chunk_demo()


if __name__ == "__main__":
    main()
