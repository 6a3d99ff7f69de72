"""Unicode normalisation of note text, linear on hostile input."""

from __future__ import annotations

import functools
import re
import unicodedata

_MAX_MARKS = 30  # Unicode's stream-safe bound on a run of combining marks


@functools.cache
def _long_mark_run() -> re.Pattern:
    marks = [c for c in range(0x110000) if unicodedata.combining(chr(c))]
    ranges, start = [], marks[0]
    for prev, cur in zip(marks, marks[1:] + [-1]):
        if cur != prev + 1:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
            start = cur
    return re.compile(f"[{''.join(ranges)}]{{{_MAX_MARKS + 1},}}")


def normalise(text: str, notices: list[str] | None = None) -> str:
    """Line endings to ``\\n`` and Unicode to NFC. CPython sorts a run of combining
    marks by insertion (quadratic), so runs longer than 30 marks (only seen in
    "Zalgo" text) are normalised 30 marks at a time, and a notice says so."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if unicodedata.is_normalized("NFC", text):
        return text
    runs = list(_long_mark_run().finditer(text))
    if not runs:
        return unicodedata.normalize("NFC", text)
    cuts = [0] + [i for m in runs for i in range(m.start() + _MAX_MARKS, m.end(), _MAX_MARKS)] + [len(text)]
    if notices is not None:
        notices.append(f"{len(runs)} run(s) of more than {_MAX_MARKS} combining marks (the longest {max(len(m.group()) for m in runs):,}) "
                       f"were put in canonical order {_MAX_MARKS} marks at a time")
    return "".join(unicodedata.normalize("NFC", text[a:b]) for a, b in zip(cuts, cuts[1:]))
