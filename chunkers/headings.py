"""Headings in the forms people write them, as ``(offset, level, title)``.

- ATX: ``## Title`` (level = number of ``#``).
- Setext: a one-line paragraph over a line of ``===`` (level 1) or ``---`` (level 2).
- reStructuredText: a title under (and optionally over) a line of one repeated
  punctuation character at least as long as the title. As in docutils, levels go
  by order of first appearance of each style (character, with or without
  overline); ``=`` and ``-`` without overline keep their setext levels when the
  text uses no other style, so a markdown note reads as markdown.
- HTML: ``<h1>``..``<h6>`` alone on a line.
- Bold-only lines: ``**Title**`` (or ``__Title__``) alone between a blank line and
  text, not a sentence (no closing ``.``, ``!``, ``?``): the innermost level.

A heading starts at its first line (the overline for reST). Lines inside fenced
code blocks are never headings; that test is the caller's (``inside``).
"""

from __future__ import annotations

import html
import re
from typing import Callable

# A heading line; its title is the rest of the line less any closing ``#`` run
# and trailing blanks. That tail is stripped with ``str.rstrip``: a lazy title
# followed by ``[ \t#]*$`` backtracks quadratically on a long "# # # ... x" line.
_ATX = re.compile(r"^(#{1,6})[ \t]+(\S[^\n]*)$", re.M)
# An adornment line: one punctuation character repeated. ``.``, ``<`` and ``>`` are
# left out (``...`` and ``>>>`` are interpreter prompts far more often than titles).
_ADORNMENT = re.compile(r"\n([=\-~^\"'`:+*#_])\1{2,}[ \t]*(?=\n|\Z)")
_HTML = re.compile(r"[ \t]{0,3}<h([1-6])(?:\s[^>\n]*)?>([^\n]*?)</h\1\s*>[ \t]*$", re.I)
_TAG = re.compile(r"<[^>\n]*>")
_TAG_MARKS = r"<[hH]|\*\*|__"  # where an HTML heading or a bold line starts
_BOLD = re.compile(r"(\*\*|__)(?=\S)([^\n*_]{1,80}?)(?<=\S)\1[ \t]*:?[ \t]*$")
_NOT_TITLE = re.compile(r"[ \t]{4}|[ \t]*(?:[-*+•>|#]|\d{1,3}[.)])(?:[ \t]|$)|[ \t]*$")
MAX_TITLE = 120  # characters: a longer line over an underline is a paragraph, not a title
BOLD_LEVEL = 10  # deeper than any ATX or adornment level: a bold line nests under them
SETEXT_LEVELS = {"=": 1, "-": 2}

Inside = Callable[[int], bool]  # True where a position lies inside a fenced code block


def find_headings(text: str, inside: Inside) -> list[tuple[int, int, str]]:
    """Every heading of ``text`` outside code blocks, ordered by offset."""
    found = atx_headings(text, inside) + _adorned(text, inside) + _tagged(text, inside)
    found.sort()
    return found


def marked_line_starts(text: str, marks: str) -> list[int]:
    """Starts of the lines with one of ``marks`` (a regex alternation) beginning in
    their first four characters, ascending. One scan led by the line break (fast
    on wide strings, unlike a ``str.find`` per mark), plus the text's first line."""
    starts = [m.end() for m in re.finditer(rf"\n(?=[^\n]{{0,3}}(?:{marks}))", text)]
    if re.match(rf"[^\n]{{0,3}}(?:{marks})", text):
        starts.insert(0, 0)
    return starts


def heading_title(rest: str) -> str:
    """The title in the rest of an ATX heading line (from its first non-blank
    character): its first character, then the rest less trailing blanks and
    ``#``s, stripped."""
    return (rest[:1] + rest[1:].rstrip(" \t#")).strip()


def _line_at(text: str, start: int) -> str:
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _line_before(text: str, end: int) -> tuple[int, str] | None:
    """The line ending just before ``end`` (a position after a newline), with its start."""
    if end <= 0:
        return None
    start = text.rfind("\n", 0, end - 1) + 1
    return start, text[start:end - 1]


def _blank_before(text: str, start: int) -> bool:
    above = _line_before(text, start)
    return above is None or not above[1].strip()


def atx_headings(text: str, inside: Inside) -> list[tuple[int, int, str]]:
    """The ``#`` headings alone."""
    found = []
    # Candidate lines found with str.find (C speed), the full pattern only there.
    pos = 0 if text.startswith("#") else text.find("\n#") + 1
    while pos > 0 or (pos == 0 and text.startswith("#")):
        m = _ATX.match(text, pos)
        if m and not inside(m.start() + 1):
            found.append((m.start(), len(m.group(1)), heading_title(m.group(2))))
        nxt = text.find("\n#", pos + 1)
        if nxt < 0:
            break
        pos = nxt + 1
    return found


def _adorned(text: str, inside: Inside) -> list[tuple[int, int, str]]:
    """Setext and reST titles: ``(offset, style, title)`` first, levels after."""
    styled: list[tuple[int, tuple[str, bool], str]] = []
    for m in _ADORNMENT.finditer(text):
        line_start = m.start() + 1
        run = m.group(0).strip()
        title_line = _line_before(text, line_start)
        if title_line is None:
            continue
        t_start, title_raw = title_line
        title = title_raw.strip()
        if not title or len(title) > MAX_TITLE or _NOT_TITLE.match(title_raw) or inside(t_start + 1):
            continue
        if run[0] not in SETEXT_LEVELS and len(run) < len(title):
            continue  # reST wants an underline as long as the title; "***" under text is a rule
        over = _line_before(text, t_start)
        overlined = over is not None and over[1].strip() == run and _blank_before(text, over[0])
        if overlined:
            styled.append((over[0], (run[0], True), title))
            continue
        if _ADORNMENT.fullmatch("\n" + title) or not _blank_before(text, t_start):
            continue  # an overline (its underline comes next) or a paragraph's last line
        styled.append((t_start, (run[0], False), title))
    return _levels(styled)


def _levels(styled: list[tuple[int, tuple[str, bool], str]]) -> list[tuple[int, int, str]]:
    styles = list(dict.fromkeys(style for _, style, _ in styled))
    if all(not over and char in SETEXT_LEVELS for char, over in styles):
        return [(offset, SETEXT_LEVELS[char], title) for offset, (char, _), title in styled]
    rank = {style: i + 1 for i, style in enumerate(styles)}
    return [(offset, rank[style], title) for offset, style, title in styled]


def _tagged(text: str, inside: Inside) -> list[tuple[int, int, str]]:
    """HTML ``<hN>`` lines and bold-only lines: each mark's first place on a line,
    if it starts within the line's first four characters."""
    found = []
    for start in marked_line_starts(text, _TAG_MARKS):
        head_end = start + 5  # a two-character mark starting in the first four characters ends by here
        newline = text.find("\n", start, head_end)
        head_end = head_end if newline < 0 else newline
        for marker in ("<h", "<H", "**", "__"):
            if text.find(marker, start, head_end) >= 0 and not inside(start + 1):
                heading = _html_heading(text, start) if marker[0] == "<" else _bold_heading(text, start)
                if heading is not None:
                    found.append(heading)
    return found


def _html_heading(text: str, start: int) -> tuple[int, int, str] | None:
    m = _HTML.match(_line_at(text, start))
    if not m:
        return None
    title = " ".join(html.unescape(_TAG.sub("", m.group(2))).split())
    return (start, int(m.group(1)), title) if title else None


def _bold_heading(text: str, start: int) -> tuple[int, int, str] | None:
    m = _BOLD.fullmatch(_line_at(text, start))
    if not m or m.group(2).rstrip().endswith((".", "!", "?", ",", ";")) or not _blank_before(text, start):
        return None
    after = text.find("\n", start)
    if after < 0 or not text[after:after + 400].strip():
        return None  # a bold line with nothing after it closes a note: emphasis
    return start, BOLD_LEVEL, m.group(2).strip()
