"""Golden cases: expected chunks per (input x chunker x size), stored as JSON so an
intended change to the algorithm shows up in review."""

from pathlib import Path

import chunkers
from tests.test_chunkers_invariants import hashing_embedder

NOTES = Path(__file__).resolve().parents[2] / "samples" / "notes"

INPUTS = {
    "recursive-note": lambda: (NOTES / "chunking-recursive.md").read_text(encoding="utf-8"),
    "snippet-note": lambda: (NOTES / "sd-diffusers-snippet.md").read_text(encoding="utf-8"),
    "messy": lambda: "Dr. Smith's notes\r\n\r\n\r\n- item one\n- item two: e.g. LoRA at 3.5 steps.\n\n"
    + "supercalifragilistic" * 12
    + "\n\n### Tail\nno trailing newline, 日本語 and 🦙",
}

CASES = {
    "fixed-64-overlap16-recursive-note": ("fixed", dict(max_tokens=64, overlap=16), "recursive-note"),
    "sentence-48-n3-recursive-note": ("sentence", dict(max_tokens=48, sentences_per_chunk=3), "recursive-note"),
    "paragraph-80-min20-snippet-note": ("paragraph", dict(max_tokens=80, min_tokens=20), "snippet-note"),
    "recursive-64-snippet-note": ("recursive", dict(max_tokens=64), "snippet-note"),
    "recursive-16-messy": ("recursive", dict(max_tokens=16), "messy"),
    "hybrid-96-overlap24-recursive-note": ("hybrid", dict(max_tokens=96, overlap=24), "recursive-note"),
    "hybrid-default-messy": ("hybrid", dict(), "messy"),
    "semantic-hashing-64-recursive-note": ("semantic", dict(max_tokens=64, embedder=hashing_embedder), "recursive-note"),
}


def run_case(name, params, text):
    chunker = chunkers.get(name, **params)
    return {
        "chunker": name,
        "params": {k: v for k, v in params.items() if k != "embedder"},
        "chunks": [[c.start, c.end, c.token_count, c.meta.get("headings", [])] for c in chunker(text)],
    }
