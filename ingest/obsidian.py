"""Obsidian's markdown conventions in a note's body: wiki links, embeds and inline tags.

- ``[[Note]]``, ``[[Note|label]]``, ``[[Note#Heading]]`` are stored as the reader
  sees them in Obsidian's reading view: ``Note``, ``label``, ``Note > Heading``
  (``[[#Heading]]``, a link within the note, as ``Heading``). Each becomes a
  ``Link`` whose ``start``/``end`` index the stored text and whose ``raw`` is the
  markup, so ``text[:start] + raw + text[end:]`` restores it.
- ``![[image.png]]`` (an embed) is not text: it is removed, and recorded as a
  ``Link`` with ``start == end`` and ``embed=True``.
- ``#tag`` is a tag when it starts a line or follows a blank, and is letters,
  digits, ``_``, ``-`` or ``/`` with at least one non-digit (``#1`` is not a tag;
  ``# Heading`` and ``https://x/#part`` are not either).

Nothing inside fenced code blocks, inline code spans or HTML comments (``<!-- -->``,
hidden in Obsidian's reading view, and where tools keep markers such as cog's
``[[[end]]]``) is a link or a tag. A link never spans lines, so the stored text keeps
every line break of the file.
One pass over the lines, each scanned forward once: linear on any input.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from retrieval.records import Link

MAX_LINK_CHARS = 1000  # between [[ and ]]; a longer run is left as text
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_TICKS = re.compile(r"`+")
_WIKI = re.compile(r"(!?)\[\[([^\[\]\n]{1,%d})\]\]" % MAX_LINK_CHARS)
_TAG = re.compile(r"(?<!\S)#([\w/-]+)")


@dataclass
class Rendered:
    """A body with its wiki links rendered; the links and inline tags found."""

    text: str
    links: list[Link] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # in order of first appearance, each once


def render(body: str) -> Rendered:
    """The body as stored: wiki links as their visible text, embeds removed."""
    if "[[" not in body and "#" not in body:
        return Rendered(body)  # the common case: nothing to find
    out: list[str] = []
    result = Rendered("")
    at = 0  # length of the stored text so far
    fence: str | None = None
    in_comment = False  # inside an HTML comment that began on an earlier line
    for line in _lines(body):
        opened = _FENCE.match(line)
        if fence is not None:  # inside a fenced block until a fence of the same kind, at least as long
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) and not line[opened.end():].strip():
                fence = None
            out.append(line)
            at += len(line)
            continue
        if opened:
            fence = opened.group(1)
            out.append(line)
            at += len(line)
            continue
        if in_comment or "<!--" in line:
            pieces, in_comment = _comment_pieces(line, in_comment)
            rendered = []
            for piece, hidden in pieces:
                if not hidden and ("[[" in piece or "#" in piece):
                    piece = _render_line(piece, at, result)
                rendered.append(piece)
                at += len(piece)
            out.append("".join(rendered))
            continue
        if "[[" in line or "#" in line:
            line = _render_line(line, at, result)
        out.append(line)
        at += len(line)
    result.text = "".join(out)
    return result


def _lines(body: str):
    """Lines split at ``\n`` only (``str.splitlines`` also splits at form feeds and
    U+2028), each with its line break."""
    at = 0
    while at < len(body):
        end = body.find("\n", at)
        end = len(body) if end < 0 else end + 1
        yield body[at:end]
        at = end


def _comment_pieces(line: str, in_comment: bool) -> tuple[list[tuple[str, bool]], bool]:
    """The line cut into ``(piece, inside an HTML comment)`` in order, and whether a
    comment is still open at its end. ``<!--`` inside a code span opens nothing."""
    code = _code_spans(line) if "`" in line else []
    code_starts = [a for a, _ in code]
    pieces: list[tuple[str, bool]] = []
    i = 0
    while i < len(line):
        if in_comment:
            end = line.find("-->", i)
            if end < 0:
                pieces.append((line[i:], True))
                return pieces, True
            pieces.append((line[i : end + 3], True))
            i, in_comment = end + 3, False
            continue
        start = line.find("<!--", i)
        while start >= 0 and _inside(start, code, code_starts):
            start = line.find("<!--", start + 1)
        if start < 0:
            pieces.append((line[i:], False))
            return pieces, False
        pieces += [(line[i:start], False), ("<!--", True)]
        i, in_comment = start + 4, True
    return pieces, in_comment


def _code_spans(line: str) -> list[tuple[int, int]]:
    """Inline code spans: a run of n backticks up to the next run of exactly n."""
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(line)]
    spans, i = [], 0
    next_of_length: dict[int, list[int]] = {}
    for j, (a, b) in enumerate(runs):
        next_of_length.setdefault(b - a, []).append(j)
    cursor = {n: 0 for n in next_of_length}  # per length, the first run not yet passed
    while i < len(runs):
        a, b = runs[i]
        same = next_of_length[b - a]
        while cursor[b - a] < len(same) and same[cursor[b - a]] <= i:
            cursor[b - a] += 1
        if cursor[b - a] == len(same):
            i += 1  # no closer: the backticks are literal
            continue
        close = same[cursor[b - a]]
        spans.append((a, runs[close][1]))
        i = close + 1
    return spans


def _render_line(line: str, at: int, result: Rendered) -> str:
    """One line outside code fences, rendered; links and tags added to ``result``."""
    code = _code_spans(line)
    code_starts = [a for a, _ in code]
    parts: list[str] = []
    links: list[tuple[int, int]] = []  # spans of the line's links, for tags
    done = 0
    for m in _WIKI.finditer(line) if "[[" in line else ():
        link = None if _inside(m.start(), code, code_starts) else _parse(m.group(2), embed=bool(m.group(1)))
        if link is None:
            continue
        shown, target, heading = link
        parts.append(line[done : m.start()])
        at += m.start() - done
        result.links.append(Link(at, at + len(shown), target, heading, m.group(0), bool(m.group(1))))
        parts.append(shown)
        at += len(shown)
        done = m.end()
        links.append((m.start(), done))
    parts.append(line[done:])
    if "#" in line:
        seen = set(result.tags)
        link_starts = [a for a, _ in links]
        for m in _TAG.finditer(line):
            tag = m.group(1)
            if (tag not in seen and not tag.isdigit() and not _inside(m.start(), code, code_starts)
                    and not _inside(m.start(), links, link_starts)):
                seen.add(tag)
                result.tags.append(tag)
    return "".join(parts)


def _inside(offset: int, spans: list[tuple[int, int]], starts: list[int]) -> bool:
    i = bisect.bisect_right(starts, offset) - 1
    return i >= 0 and offset < spans[i][1]


def _parse(inner: str, *, embed: bool) -> tuple[str, str, str | None] | None:
    """(what the reader sees, target, heading) of ``[[inner]]``; None if it is no link."""
    ref, bar, label = inner.partition("|")
    ref = ref.removesuffix("\\")  # ``[[Note\|label]]``: the bar escaped inside a table
    target, hash_, heading = ref.partition("#")
    target, heading = target.strip(), heading.strip() if hash_ else None
    if not target and not heading:
        return None
    if embed:
        return "", target, heading
    if bar and label.strip():
        return label.strip(), target, heading
    path = [p.strip() for p in heading.split("#") if p.strip()] if heading else []
    return " > ".join(([target] if target else []) + path), target, heading
