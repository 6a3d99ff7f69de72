"""The ``noteloom`` command. Each subcommand's module is imported only when used."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    from chunkers import cli as chunk_cli

    parser = argparse.ArgumentParser(prog="noteloom", description="RAG over your notes, and Stable Diffusion prompts from them.")
    sub = parser.add_subparsers(dest="command", required=True)
    chunk = sub.add_parser("chunk", help="split files into chunks with exact offsets")
    chunk_cli.add_arguments(chunk)
    chunk.set_defaults(handler=chunk_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
