#!/usr/bin/env python3
"""Build the labelled sets in this folder from documentation installed offline.

    .venv/bin/python bench/evalsets/build.py      # rewrites *.json here

Two sources, each written twice: with its section headings (``-structured``) and
with every heading line removed (``-unstructured``, as in held-out evaluations of
documentation whose headings were lost). Questions are generated, never tuned:

- ``manpages``: ``man -P cat`` pages of common commands (MANWIDTH=80, LANG=C).
  Section headings become setext headings (``Options`` over ``-------``). For every
  third option entry: "What does the <flag> option of <command> do?" (the long
  flag when there is one); gold = the option's description lines.
- ``readmes``: the long descriptions (markdown) in installed packages' METADATA.
  For each section whose body holds 150-2500 characters: "<package>: <heading>?";
  gold = the section's body (heading lines excluded).

Each file holds ``documents`` ({name: text}) and ``questions`` ({question,
document, start, end}); every gold span slices its document (checked here and by
score.py). The JSON is the set: the build is kept to show the method, and its
output depends on the installed versions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from email.parser import Parser
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

COMMANDS = ("ls", "cp", "mv", "rm", "mkdir", "ln", "chmod", "touch", "head", "tail", "sort", "uniq", "cut", "wc",
            "du", "df", "date", "tr", "xargs", "split", "tee", "diff", "gzip")
PACKAGES = ("httpx", "litestar", "msgspec", "faiss-cpu", "hypothesis", "tiktoken", "numpy", "requests", "rich",
            "attrs", "sentence-transformers", "uvicorn")
_SECTION = re.compile(r"^([A-Z][A-Z /-]+)$")
_OPTION = re.compile(r"^ {7}(-\S[^\n]*)$")
_FLAG = re.compile(r"--?[\w-]+")


def man_page(command: str) -> str:
    env = {**os.environ, "MANWIDTH": "80", "LANG": "C", "LC_ALL": "C", "MAN_KEEP_FORMATTING": ""}
    out = subprocess.run(["man", "-P", "cat", command], env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()[1:-1]  # the running header and footer
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def _setext(text: str) -> str:
    """Man's all-capitals section lines as setext headings ("Options" over dashes)."""
    out = []
    for line in text.split("\n"):
        if _SECTION.match(line):
            title = line.capitalize()
            out += [title, "-" * len(title)]
        else:
            out.append(line)
    return "\n".join(out)


def man_questions(name: str, text: str) -> list[dict]:
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    entries = []
    for i, line in enumerate(lines):
        m = _OPTION.match(line)
        if not m:
            continue
        flags = _FLAG.findall(m.group(1))
        j = i + 1
        while j < len(lines) and lines[j].startswith(" " * 14):
            j += 1
        if not flags or j == i + 1:
            continue
        flag = next((f for f in flags if f.startswith("--")), flags[0])
        start, end = offsets[i + 1] + 14, offsets[j] - 1
        entries.append({"question": f"What does the {flag} option of {name} do?", "document": name, "start": start, "end": end})
    return entries[::3]


def readme(package: str) -> str:
    body = Parser().parsestr(metadata.distribution(package).read_text("METADATA") or "").get_payload()
    return body.strip() + "\n"


def readme_questions(name: str, text: str) -> list[dict]:
    from chunkers.levels import Source

    headings = Source(text).headings
    out = []
    for (at, _level, title), nxt in zip(headings, [h[0] for h in headings[1:]] + [len(text)]):
        start = text.find("\n", at) + 1
        while start < nxt and (not text[start:text.find("\n", start)].strip() or set(text[start:text.find("\n", start)].strip()) <= set("=-~")):
            start = text.find("\n", start) + 1
        end = len(text[:nxt].rstrip())
        if 150 <= end - start <= 2500 and title:
            out.append({"question": f"{name}: {title}?", "document": name, "start": start, "end": end})
    return out


def without_headings(docs: dict[str, str], questions: list[dict]) -> tuple[dict[str, str], list[dict]]:
    """The same documents with every heading line (and underline) removed, gold shifted."""
    from chunkers.levels import Source

    out_docs, shifts = {}, {}
    for name, text in docs.items():
        cut: list[tuple[int, int]] = []
        for at, _, _ in Source(text).headings:
            end = text.find("\n", at) + 1 or len(text)
            nxt = text.find("\n", end) + 1 or len(text)
            if set(text[end:nxt].strip()) <= set("=-~*^") and text[end:nxt].strip():
                end = nxt
            cut.append((at, end))
        kept, removed, pos = [], [], 0
        for a, b in cut:
            kept.append(text[pos:a])
            removed.append((a, b))
            pos = b
        kept.append(text[pos:])
        out_docs[name] = "".join(kept)
        shifts[name] = removed
    moved = []
    for q in questions:
        def shift(p: int) -> int:
            return p - sum(min(b, p) - a for a, b in shifts[q["document"]] if a < p)
        moved.append({**q, "start": shift(q["start"]), "end": shift(q["end"])})
    return out_docs, moved


def write(name: str, docs: dict[str, str], questions: list[dict]) -> None:
    for q in questions:
        gold = docs[q["document"]][q["start"]:q["end"]]
        if not gold.strip():
            raise SystemExit(f"{name}: empty gold span for {q['question']!r}")
    path = HERE / f"{name}.json"
    path.write_text(json.dumps({"documents": docs, "questions": questions}, indent=1, ensure_ascii=False) + "\n")
    print(f"{path.name}: {len(docs)} documents, {sum(map(len, docs.values())) / 1e3:.0f} k chars, {len(questions)} questions")


def main() -> int:
    man = {c: _setext(man_page(c)) for c in COMMANDS}
    man_q = [q for c, text in man.items() for q in man_questions(c, text)]
    readmes = {p: readme(p) for p in PACKAGES}
    readme_q = [q for p, text in readmes.items() for q in readme_questions(p, text)]
    for name, (docs, questions) in {"manpages": (man, man_q), "readmes": (readmes, readme_q)}.items():
        write(f"{name}-structured", docs, questions)
        write(f"{name}-unstructured", *without_headings(docs, questions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
