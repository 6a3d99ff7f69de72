"""Obsidian's rules, shared by every backend: which document a wiki link opens,
and the URL that opens a cited place in the user's own editor.

A link opens a document of the same collection (a vault is one folder). Its
target is matched case-insensitively, without a ``.md`` extension, against the
whole path inside the collection or against the path's tail (``[[Note]]`` and
``[[folder/Note]]`` both open ``notes/folder/Note.md``); when several match, the
shortest path wins, then the first in sort order: Obsidian's "shortest path
when possible".
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable
from urllib.parse import quote

NOTE_SUFFIX = ".md"
VAULT_MARKER = ".obsidian"  # a folder holding this sub-folder is an Obsidian vault
# A query names a note when it holds the note's name key (its file name, lower case,
# without ``.md``): up to NAME_WORDS consecutive words joined by a space, '-', '_' or
# '.', or followed by the suffix of another loadable file. A name more than
# MAX_NAMESAKES notes share names none of them ("index", "readme"), and a query names
# at most MAX_NAMED_NOTES notes.
NAME_WORDS = 4
NAME_JOINS = (" ", "-", "_", ".")
NAME_SUFFIXES = ("", ".txt", ".markdown", ".rst", ".html", ".htm", ".pdf")
MAX_NAMESAKES = 3
MAX_NAMED_NOTES = 64
MAX_NAME_QUERY_WORDS = 64  # words of a query looked at for names
_WORD = re.compile(r"[^\W_]+")  # '_' joins words in file names, so it splits them here


def link_key(target_or_path: str) -> str:
    """A link target or a document path in the form they are compared in."""
    key = target_or_path.strip().replace("\\", "/").lstrip("/").lower()
    while key.startswith("./"):
        key = key[2:]
    return key[: -len(NOTE_SUFFIX)] if key.endswith(NOTE_SUFFIX) else key


def name_key(target_or_path: str) -> str:
    """The last segment of ``link_key``: what a link and the documents it may open share."""
    return link_key(target_or_path).rsplit("/", 1)[-1]


def names_in(query: str) -> list[str]:
    """The name keys ``query`` may hold, to look up among the documents' ``name_key``s."""
    words = _WORD.findall(query.lower())[:MAX_NAME_QUERY_WORDS]
    runs = dict.fromkeys(words)
    for size in range(2, NAME_WORDS + 1):
        for i in range(len(words) - size + 1):
            runs.update((join.join(words[i:i + size]), None) for join in NAME_JOINS)
    return [run + suffix for run in runs for suffix in NAME_SUFFIXES]


def named_documents(found: Iterable[tuple[str, int]], stop_words: frozenset[str] = frozenset()) -> dict[str, list[int]]:
    """``{name key: document ids}`` from the (name key, id) pairs a lookup of ``names_in``
    found, leaving out names too many documents share and names that are only stop
    words; at most ``MAX_NAMED_NOTES`` documents in all."""
    by_name: dict[str, list[int]] = {}
    for name, doc_id in found:
        by_name.setdefault(name, []).append(doc_id)
    named, count = {}, 0
    for name in sorted(by_name):
        ids = sorted(set(by_name[name]))
        if len(ids) > MAX_NAMESAKES or set(_WORD.findall(_without_suffix(name))) <= stop_words:
            continue
        if count + len(ids) > MAX_NAMED_NOTES:
            break
        named[name], count = ids, count + len(ids)
    return named


def named_notes(query: str, lookup: Callable[[list[str]], Iterable[tuple[str, int]]],
                stop_words: frozenset[str] = frozenset()) -> tuple[list[int], str]:
    """The ids of the documents ``query`` names and the words left to rank their chunks
    by (``([], "")`` when it names none). ``lookup(keys)`` gives the (name key, id) of
    the documents whose name key is among ``keys``: each backend's own query."""
    named = named_documents(lookup(names_in(query)), stop_words)
    if not named:
        return [], ""
    return sorted({i for ids in named.values() for i in ids}), without_names(query, named)


def without_names(query: str, names: Iterable[str]) -> str:
    """``query``'s words less those of ``names``: what ranks the named notes' chunks."""
    spent = {word for name in names for word in _WORD.findall(name.lower())}
    return " ".join(word for word in _WORD.findall(query.lower()) if word not in spent)


def _without_suffix(name: str) -> str:
    return next((name[: -len(s)] for s in NAME_SUFFIXES[1:] if name.endswith(s)), name)


def resolve(target: str, documents: Iterable[tuple[int, str]]) -> int | None:
    """The id among ``documents`` ((id, path in the collection), ...) that ``target`` opens."""
    wanted = link_key(target)
    if not wanted:
        return None
    matches = [(len(path), path, doc_id) for doc_id, path in documents
               if (key := link_key(path)) == wanted or key.endswith("/" + wanted)]
    return min(matches)[2] if matches else None


def is_vault(root: str | os.PathLike) -> bool:
    return Path(root, VAULT_MARKER).is_dir()


def open_url(root: str | None, path: str, kind: str, line: int | None) -> str | None:
    """Where a cited document opens: ``obsidian://open?vault=…&file=…`` inside a vault,
    else a ``file://`` URL with ``#L<line>`` for text notes. None for a document that
    has no folder (an API upload)."""
    if not root:
        return None
    if is_vault(root):
        file = path[: -len(NOTE_SUFFIX)] if path.lower().endswith(NOTE_SUFFIX) else path
        return f"obsidian://open?vault={quote(Path(root).name, safe='')}&file={quote(file, safe='')}"
    url = Path(root, *PurePosixPath(path).parts).as_uri()
    return f"{url}#L{line}" if line is not None and kind in ("markdown", "text") else url


def line_at(text: str, offset: int, line_offset: int = 0) -> int:
    """The 1-based line of the file at ``offset`` into the stored ``text``: stored text
    keeps every line break of the body, so only the lines before it (front matter) add."""
    return line_offset + text.count("\n", 0, offset) + 1
