"""``python -m chunkers`` / ``noteloom chunk``: chunk files and print the chunks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import ChunkingError
from .registry import available, get

USAGE_ERROR = 2
FILE_ERROR = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="text or markdown files (UTF-8)")
    parser.add_argument("--method", "-m", default="recursive", help=f"chunker: {', '.join(available())} (default recursive)")
    parser.add_argument("--max-tokens", type=int, default=None, help="token budget per chunk (default: the method's)")
    parser.add_argument("--overlap", type=int, default=None, help="tokens shared with the next chunk")
    parser.add_argument("--tokenizer", default=None, help="cl100k_base, o200k_base, clip, words, chars or a tokenizer folder")
    parser.add_argument(
        "--option", "-o", action="append", default=[], metavar="KEY=VALUE",
        help="a method parameter, e.g. -o sentences_per_chunk=3 -o mode=group (VALUE parsed as JSON when it can be)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per chunk, then one per file summary")


def _option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ChunkingError(f"--option must look like KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(raw)
    except json.JSONDecodeError:
        return key.replace("-", "_"), raw


def build_chunker(args: argparse.Namespace):
    params: dict[str, Any] = dict(_option(o) for o in args.option)
    for key in ("max_tokens", "overlap", "tokenizer"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    return get(args.method, **params)


def read_text(path: str) -> str:
    """Read a UTF-8 file, raising ``OSError``/``ValueError`` with a message naming it."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{path}: is a directory")
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def run(args: argparse.Namespace, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        chunker = build_chunker(args)
    except (ChunkingError, TypeError) as exc:
        print(f"noteloom chunk: error: {exc}", file=err)
        return USAGE_ERROR
    status = 0
    for path in args.files:
        try:
            text = read_text(path)
        except (OSError, ValueError) as exc:
            print(f"noteloom chunk: error: {exc}", file=err)
            status = FILE_ERROR
            continue
        chunks = chunker(text)
        for c in chunks:
            if args.json:
                record = c.to_dict()
                record.pop("index")
                out.write(json.dumps({"file": path, "index": c.index, **record}, ensure_ascii=False) + "\n")
            else:
                where = " > ".join(c.meta.get("headings", []))
                out.write(f"--- {path} #{c.index} [{c.start}:{c.end}] {c.token_count} tokens{'  ' + where if where else ''}\n{c.text}\n")
        counts = [c.token_count for c in chunks]
        summary = {
            "file": path,
            "method": chunker.name,
            "chunks": len(chunks),
            "tokens_mean": round(sum(counts) / len(counts), 1) if counts else 0,
            "tokens_max": max(counts, default=0),
        }
        if args.json:
            out.write(json.dumps({"summary": summary}) + "\n")
        else:
            out.write(
                f"== {path}: {summary['chunks']} chunks ({chunker.name}), tokens mean {summary['tokens_mean']}, max {summary['tokens_max']}\n"
            )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chunkers", description="Split files into chunks with exact offsets.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
