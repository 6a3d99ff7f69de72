"""Read notes into normalised text: markdown (YAML front matter becomes title and
tags), plain text, HTML (headings and lists kept as markdown so chunkers see the
structure) and PDF (text per page). The normalised text is what is stored and
what every citation's offsets point into.

Every loader runs in time linear in its input, and one file cannot make it
produce unbounded output: ``LoadLimits`` bounds front matter, tags, titles and
PDF pages, characters and seconds. Hitting a limit never truncates silently:
what was cut or ignored, and which limit did it, is said in ``Loaded.notices``
(too large a file is refused with ``FileTooLargeError``). A note's body is never
dropped because its metadata was hostile.

The formats' parsers live beside this module: ``frontmatter`` (bounded YAML),
``htmltext`` (a forward-only HTML scanner), ``pdf`` (PDFium, pypdf fallback, with
caps) and ``text`` (NFC normalisation); this module picks one by kind and builds
the ``Loaded`` result.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from retrieval.records import Link

from .errors import CorruptFileError, FileTooLargeError, UnsupportedFileError
from .frontmatter import split_front_matter
from .htmltext import html_to_text
from .obsidian import render
from .pdf import pdf_text
from .text import normalise

KINDS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".pdf": "pdf"}
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class LoadLimits:
    """What one file may cost. Defaults fit real notes and books with room to
    spare; raise a field to accept more (``LoadLimits(max_pdf_pages=20_000)``)."""

    max_file_bytes: int = MAX_FILE_BYTES  # larger files are refused
    max_front_matter_bytes: int = 16 * 1024  # a larger block is kept as text, not parsed
    max_front_matter_depth: int = 8  # nesting of YAML lists and mappings
    max_tags: int = 100
    max_tag_chars: int = 100  # longer tags are dropped, not cut
    max_title_chars: int = 300  # a longer title is cut (the full text stays in the body)
    max_pdf_pages: int = 5_000
    max_pdf_chars: int = 5_000_000
    max_pdf_chars_per_byte: int = 100  # extracted characters per byte of PDF: real PDFs stay under 5
    max_pdf_seconds: float = 60.0  # checked after each page
    max_pdf_stream_bytes: int = 16 * 1024 * 1024  # one inflated content stream; a larger one is refused
    max_blank_run: int = 100_000  # spaces/tabs in a row: tokenizers fail on ~1 MB runs; a longer run is shortened

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kinds = int if f.type == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
                raise ValueError(f"LoadLimits.{f.name} must be a positive {f.type}, got {value!r}")


DEFAULT_LIMITS = LoadLimits()


@dataclass
class Loaded:
    text: str
    title: str
    kind: str
    tags: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what was cut or ignored, and which limit did it
    aliases: list[str] = field(default_factory=list)  # front matter ``aliases``: other titles of the note
    links: list[Link] = field(default_factory=list)  # wiki links and embeds (see ``ingest.obsidian``)
    line_offset: int = 0  # lines of the file before ``text`` (the front matter)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def kind_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in KINDS:
        raise UnsupportedFileError(f"{name}: unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(KINDS))}")
    return KINDS[suffix]


def decode_utf8(data: bytes, name: str) -> str:
    nul = data.find(b"\x00")  # anywhere, not just the start: the API refuses a NUL in JSON text the same way
    if nul >= 0:
        raise UnsupportedFileError(f"{name}: looks like a binary file, not text (a NUL byte at offset {nul})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{name}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def load_bytes(data: bytes, name: str, kind: str | None = None, limits: LoadLimits | None = None) -> Loaded:
    """Parse a file's bytes; ``name`` is used for messages and the fallback title.
    The main entry point: callers that open files themselves pass the bytes here."""
    kind = kind or kind_of(name)
    limits = limits or DEFAULT_LIMITS
    if len(data) > limits.max_file_bytes:
        raise FileTooLargeError(f"{name}: {len(data)} bytes is over the {limits.max_file_bytes}-byte limit (max_file_bytes)")
    stem = Path(name).stem or name
    if kind == "pdf":
        return _shorten_blank_runs(_load_pdf(data, name, stem, limits), limits.max_blank_run)
    notices: list[str] = []
    text = normalise(decode_utf8(data, name), notices)
    if kind == "html":
        loaded = _load_html(text, name, stem, limits)
    elif kind == "markdown":
        loaded = _load_markdown(text, stem, limits)
    elif kind == "text":
        loaded = Loaded(text, stem, "text")
    else:
        raise UnsupportedFileError(f"{name}: unsupported kind {kind!r}")
    loaded.notices[:0] = notices
    return _shorten_blank_runs(loaded, limits.max_blank_run)


def _shorten_blank_runs(loaded: Loaded, limit: int) -> Loaded:
    """Runs of blanks over ``limit`` keep their first ``limit`` characters, and a
    notice says so: tiktoken's pre-tokenizer fails on a run of about a million
    blanks, which would fail the whole note. The look-behind starts a match only
    at a run's start, so each run is scanned once. Links move with their text."""
    runs = list(re.finditer(r"(?<![^\S\n])[^\S\n]{%d,}" % (limit + 1), loaded.text))
    if not runs:
        return loaded
    parts, at = [], 0
    for m in runs:
        parts += [loaded.text[at : m.start() + limit]]
        at = m.end()
    loaded.text = "".join(parts) + loaded.text[at:]

    def moved(offset: int) -> int:
        return offset - sum(max(0, min(offset, m.end()) - (m.start() + limit)) for m in runs)

    loaded.links = [replace(link, start=moved(link.start), end=moved(link.end)) for link in loaded.links]
    loaded.notices.append(f"{len(runs)} run(s) of blanks longer than {limit:,} characters (the longest "
                          f"{max(len(m.group()) for m in runs):,}) were shortened to {limit:,} (max_blank_run)")
    return loaded


def load_file(path: str | Path, limits: LoadLimits | None = None) -> Loaded:
    path = Path(path)
    kind = kind_of(path.name)
    limit = (limits or DEFAULT_LIMITS).max_file_bytes
    size = path.stat().st_size
    if size > limit:
        raise FileTooLargeError(f"{path}: {size} bytes is over the {limit}-byte limit (max_file_bytes)")
    return load_bytes(path.read_bytes(), str(path), kind, limits)


def clip_title(title: str, limits: LoadLimits, notices: list[str]) -> str:
    """A title within ``max_title_chars``; a longer one is cut, and a notice says so."""
    title = " ".join(title.split())
    if len(title) <= limits.max_title_chars:
        return title
    notices.append(f"title cut from {len(title):,} to {limits.max_title_chars} characters (max_title_chars)")
    return title[: limits.max_title_chars - 1] + "…"


# A heading's text must start with a non-space: no backtracking over long runs
# of '#', spaces or tabs (`(.+?)[ \t#]*$` was quadratic on `# # # … x` lines).
_FIRST_HEADING = re.compile(r"^#{1,6}[ \t]+(\S[^\n]*)", re.M)


def heading_title(text: str) -> str | None:
    m = _FIRST_HEADING.search(text)
    if not m:
        return None
    return m.group(1).rstrip(" \t#") or m.group(1).strip()


def _load_markdown(text: str, stem: str, limits: LoadLimits) -> Loaded:
    """Front matter gives title, tags and aliases; the body's wiki links are stored
    as the reader sees them and its inline ``#tags`` join the tags (``ingest.obsidian``)."""
    notices: list[str] = []
    meta, body = split_front_matter(text, limits, notices)
    line_offset = text.count("\n", 0, len(text) - len(body))
    rendered = render(body)
    title = meta.title or heading_title(rendered.text) or stem
    tags = _merge_tags(meta.tags, rendered.tags, limits, notices)
    return Loaded(rendered.text, clip_title(title, limits, notices), "markdown", tags, notices, meta.aliases,
                  rendered.links, line_offset)


def _merge_tags(front: list[str], inline: list[str], limits: LoadLimits, notices: list[str]) -> list[str]:
    """Front matter tags, then inline tags not among them, within ``max_tags`` and ``max_tag_chars``."""
    known = set(front)
    fresh = [t for t in inline if t not in known]
    long = [t for t in fresh if len(t) > limits.max_tag_chars]
    if long:
        notices.append(f"{len(long)} inline tag(s) longer than max_tag_chars={limits.max_tag_chars} dropped "
                       f"(the first has {len(long[0]):,} characters: {long[0][:40]!r}…)")
    tags = front + [t for t in fresh if len(t) <= limits.max_tag_chars]
    if len(tags) > limits.max_tags:
        notices.append(f"kept {limits.max_tags} of {len(tags):,} tags with the inline ones (max_tags={limits.max_tags}); "
                       f"dropped {tags[limits.max_tags]!r} and the rest")
        tags = tags[: limits.max_tags]
    return tags


def _load_html(text: str, name: str, stem: str, limits: LoadLimits) -> Loaded:
    notices: list[str] = []
    try:
        body, title = html_to_text(text, notices)
    except (ValueError, AssertionError, IndexError, RecursionError) as exc:  # a scanner bug must not become a 500
        raise CorruptFileError(f"{name}: could not read the HTML ({type(exc).__name__}: {exc})") from None
    title = title or heading_title(body) or stem
    return Loaded(body, clip_title(title, limits, notices), "html", [], notices)


def _load_pdf(data: bytes, name: str, stem: str, limits: LoadLimits) -> Loaded:
    notices: list[str] = []
    text, title = pdf_text(data, name, limits, notices)
    return Loaded(text, clip_title(title or stem, limits, notices), "pdf", [], notices)
