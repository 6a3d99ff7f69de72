"""`make demo`: run noteloom on the bundled sample notes."""

from __future__ import annotations

import os
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


QUESTIONS = [
    "How many training steps does DreamBooth need?",
    "Why does CLIP cut my long prompt off?",
]


def rag_demo(data_dir: Path) -> None:
    from ingest import Ingestor
    from retrieval import Notebook

    nb = Notebook(data_dir)
    report = Ingestor(nb, progress=True).ingest_paths([NOTES])
    print(f"\n# Ingested {NOTES} into {data_dir}: {report.summary()}")
    status = nb.status()
    print(f"  {status['documents']} documents, {status['chunks']} chunks, {status['index']['kind']} index, "
          f"embedding {status['embedding']['model']} ({status['embedding']['dim']}-d)")
    for question in QUESTIONS:
        answer = nb.ask(question)
        print(f"\nQ: {question}\nA: {answer.answer}")
        for i, c in enumerate(answer.citations, start=1):
            print(f"   [{i}] {c.source} [{c.start}:{c.end}]")
    print(f"\nServe it:   .venv/bin/noteloom --data {data_dir} serve --port 8000")
    print('Then:       curl -s localhost:8000/ask -H "content-type: application/json" '
          '-d \'{"question": "What is reciprocal rank fusion?"}\'')
    print("OpenAPI:    http://127.0.0.1:8000/schema")


def main() -> None:
    chunk_demo()
    rag_demo(Path(os.environ.get("NOTELOOM_DATA", ".noteloom")))


if __name__ == "__main__":
    main()
