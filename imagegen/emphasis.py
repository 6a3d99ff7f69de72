"""Prompt emphasis syntax as the popular web UIs write it.

- ``(text)`` multiplies the weight by 1.1, ``((text))`` by 1.21, ``[text]`` divides by 1.1;
- ``(text:1.3)`` sets the weight to 1.3 (inside other brackets, multiplied by theirs);
- ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are literal characters;
- ``BREAK`` (upper case, a word on its own) starts a new 75-token chunk.

``parse`` gives ``Piece(text, weight)`` runs and ``BREAK`` markers; the text the
model sees is the pieces' text with the syntax removed. ``format_pieces`` prints
pieces back in the syntax. Unlike the web UIs, which guess, unbalanced brackets
and weights outside ``[MIN_WEIGHT, MAX_WEIGHT]`` are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import PromptError

UP = 1.1
MIN_WEIGHT = 0.0
MAX_WEIGHT = 3.0
BREAK = "BREAK"

_TOKEN = re.compile(r"\\[\\()\[\]]|\\|\(|\)|\[|\]|:\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*\)|\bBREAK\b|[^\\()\[\]:B]+|:|B")


_CLOSING = {")": ("(", UP), "]": ("[", 1 / UP)}  # closing bracket -> (its opener, weight factor)


@dataclass(frozen=True)
class Piece:
    text: str
    weight: float = 1.0


def parse(prompt: str) -> list[Piece | str]:
    """Pieces of text with weights; the string ``BREAK`` where a chunk break is."""
    if not isinstance(prompt, str):
        raise PromptError(f"prompt must be a string, got {type(prompt).__name__}")
    out: list[Piece | str] = []
    stack: list[tuple[str, int, int]] = []  # (bracket, index in out where it opened, position in prompt)
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            out.append(Piece("".join(buffer), 1.0))
            buffer.clear()

    def scale(start: int, factor: float) -> None:
        for i in range(start, len(out)):
            item = out[i]
            if isinstance(item, Piece):
                out[i] = Piece(item.text, item.weight * factor)

    for m in _TOKEN.finditer(prompt):
        tok = m.group(0)
        if tok.startswith("\\"):
            buffer.append(tok[1:] if len(tok) == 2 else tok)
        elif tok in ("(", "["):
            flush()
            stack.append((tok, len(out), m.start()))
        elif tok.startswith(":") and tok.endswith(")") and stack and stack[-1][0] == "(":
            flush()
            value = float(tok[1:-1])
            if not (MIN_WEIGHT <= value <= MAX_WEIGHT):
                raise PromptError(f"emphasis weight {tok[1:-1].strip()} at position {m.start()} is outside {MIN_WEIGHT}..{MAX_WEIGHT}")
            _bracket, start, _pos = stack.pop()
            scale(start, value)
        elif tok in _CLOSING:
            opener, factor = _CLOSING[tok]
            if not stack or stack[-1][0] != opener:
                raise PromptError(f"unbalanced {tok!r} at position {m.start()} in prompt {prompt!r}")
            flush()
            _bracket, start, _pos = stack.pop()
            scale(start, factor)
        elif tok == BREAK:
            flush()
            out.append(BREAK)
        else:
            if tok.startswith(":") and tok.endswith(")"):
                raise PromptError(f"unbalanced ')' at position {m.end() - 1} in prompt {prompt!r}")
            buffer.append(tok)
    flush()
    if stack:
        bracket, _start, pos = stack[-1]
        raise PromptError(f"unbalanced {bracket!r} opened at position {pos} in prompt {prompt!r}")
    return _merge(out)


def _merge(items: list[Piece | str]) -> list[Piece | str]:
    """Join neighbouring pieces of equal weight; drop empty ones; round weights."""
    merged: list[Piece | str] = []
    for item in items:
        if isinstance(item, Piece):
            item = Piece(item.text, round(item.weight, 4))
            if not item.text:
                continue
            if merged and isinstance(merged[-1], Piece) and merged[-1].weight == item.weight:
                merged[-1] = Piece(merged[-1].text + item.text, item.weight)
                continue
        merged.append(item)
    return merged


def plain_text(prompt: str) -> str:
    """The text the model sees: syntax removed, BREAK as a comma."""
    parts = [p.text if isinstance(p, Piece) else ", " for p in parse(prompt)]
    return re.sub(r"\s*,(\s*,)*", ",", re.sub(r"\s+", " ", "".join(parts))).replace(",", ", ").replace(",  ", ", ").strip(" ,")


def escape(text: str) -> str:
    return re.sub(r"([\\()\[\]])", r"\\\1", text)


def format_piece(text: str, weight: float) -> str:
    """One piece in the syntax: plain at weight 1, else ``(text:w)``."""
    text = escape(text)
    if abs(weight - 1.0) < 1e-6:
        return text
    return f"({text}:{round(weight, 4):g})"


def format_pieces(pieces: list[Piece | str]) -> str:
    out = []
    for p in pieces:
        if not isinstance(p, Piece):
            out.append(f" {BREAK} ")
            continue
        core = p.text.strip()
        if not core:
            out.append(p.text)
            continue
        lead = p.text[: len(p.text) - len(p.text.lstrip())]
        trail = p.text[len(p.text.rstrip()) :]
        out.append(lead + format_piece(core, p.weight) + trail)
    return re.sub(r"\s{2,}", " ", "".join(out)).strip()
