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
"""

from __future__ import annotations

import functools
import hashlib
import html
import io
import re
import threading
import time
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import CorruptFileError, ExpansionLimitError, FileTooLargeError, UnsupportedFileError

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

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def kind_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in KINDS:
        raise UnsupportedFileError(f"{name}: unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(KINDS))}")
    return KINDS[suffix]


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
    at a run's start, so each run is scanned once."""
    runs = list(re.finditer(r"(?<![^\S\n])[^\S\n]{%d,}" % (limit + 1), loaded.text))
    if not runs:
        return loaded
    parts, at = [], 0
    for m in runs:
        parts += [loaded.text[at : m.start() + limit]]
        at = m.end()
    loaded.text = "".join(parts) + loaded.text[at:]
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
    notices: list[str] = []
    meta, body = _split_front_matter(text, limits, notices)
    title = meta.title or heading_title(body) or stem
    return Loaded(body, clip_title(title, limits, notices), "markdown", meta.tags, notices)


def _load_html(text: str, name: str, stem: str, limits: LoadLimits) -> Loaded:
    notices: list[str] = []
    try:
        body, title = html_to_text(text, notices)
    except (ValueError, AssertionError, IndexError, RecursionError) as exc:  # a scanner bug must not become a 500
        raise CorruptFileError(f"{name}: could not read the HTML ({type(exc).__name__}: {exc})") from None
    title = title or heading_title(body) or stem
    return Loaded(body, clip_title(title, limits, notices), "html", [], notices)


# Front matter -------------------------------------------------------------

_FENCE_OPEN = re.compile(r"---[ \t]*\n")
_FENCE_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)  # tried at line starts only: linear


@dataclass
class _Meta:
    title: str | None = None
    tags: list[str] = field(default_factory=list)


class _Refused(Exception):
    """Front matter left unparsed; the message says why."""


def _split_front_matter(text: str, limits: LoadLimits, notices: list[str]) -> tuple[_Meta, str]:
    """Title, tags and the body after the front matter. A block that is too large,
    not YAML, not a mapping, or uses aliases or deep nesting is not parsed: it
    stays in the body (nothing is lost) and a notice says why."""
    opened = _FENCE_OPEN.match(text)
    closed = _FENCE_CLOSE.search(text, opened.end()) if opened else None
    if not closed:
        return _Meta(), text
    block = text[opened.end() : closed.start()]
    size = len(block.encode("utf-8"))
    try:
        if size > limits.max_front_matter_bytes:
            raise _Refused(f"{size:,} bytes is over max_front_matter_bytes={limits.max_front_matter_bytes:,}")
        meta = _parse_yaml(block, limits.max_front_matter_depth)
    except _Refused as exc:
        notices.append(f"front matter not read ({exc}); it is kept as part of the text")
        return _Meta(), text
    end = closed.end() + (text.startswith("\n", closed.end()))
    return _Meta(_meta_title(meta.get("title"), notices), _meta_tags(meta.get("tags"), limits, notices)), text[end:]


@functools.cache
def _bounded_loader():
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases (a 422-byte alias tree once expanded to
        312 million characters of tags) and nesting deeper than ``max_depth``."""

        def __init__(self, stream: str, max_depth: int) -> None:
            super().__init__(stream)
            self.max_depth, self.depth = max_depth, 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise _Refused(f"it uses the YAML alias *{self.peek_event().anchor}, and aliases are not expanded")
            self.depth += 1
            try:
                if self.depth > self.max_depth:
                    raise _Refused(f"it nests deeper than max_front_matter_depth={self.max_depth}")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


def _parse_yaml(block: str, max_depth: int) -> dict:
    try:
        loader_class = _bounded_loader()
    except ImportError:
        raise _Refused("reading it needs PyYAML (pip install pyyaml)") from None
    loader = None
    try:
        loader = loader_class(block, max_depth)  # the reader already refuses control characters here
        data = loader.get_single_data()
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - any YAML failure only means "not front matter"
        reason = " ".join(str(exc).split())[:200]
        raise _Refused(f"not valid YAML: {type(exc).__name__}: {reason}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _Refused(f"it is a YAML {type(data).__name__}, not a mapping of keys")
    return data


def _is_scalar(value) -> bool:
    import datetime

    return isinstance(value, (str, int, float, datetime.date))


def _meta_title(value, notices: list[str]) -> str | None:
    if value is None:
        return None
    if not _is_scalar(value):
        notices.append(f"front matter title ignored: expected text, got a YAML {type(value).__name__}")
        return None
    return str(value).strip() or None


def _meta_tags(value, limits: LoadLimits, notices: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    elif _is_scalar(value):
        items = [value]
    else:
        notices.append(f"front matter tags ignored: expected a list or comma-separated text, got a YAML {type(value).__name__}")
        return []
    tags, nested, too_long = [], 0, []
    for item in items:
        if not _is_scalar(item):
            nested += 1
        elif len(tag := str(item).strip()) > limits.max_tag_chars:
            too_long.append(tag)
        elif tag:
            tags.append(tag)
    if nested:
        notices.append(f"{nested} front matter tag(s) dropped: a tag is text, not a list or mapping")
    if too_long:
        notices.append(f"{len(too_long)} tag(s) longer than max_tag_chars={limits.max_tag_chars} dropped "
                       f"(the first has {len(too_long[0]):,} characters: {too_long[0][:40]!r}…)")
    if len(tags) > limits.max_tags:
        notices.append(f"kept {limits.max_tags} of {len(tags):,} tags (max_tags={limits.max_tags}); dropped {tags[limits.max_tags]!r} and the rest")
        tags = tags[: limits.max_tags]
    return tags


# HTML ----------------------------------------------------------------------
# A forward-only scanner instead of html.parser, which is quadratic on floods of
# "<!--", "<a \"", "</" and long runs of spaces, and raises AssertionError on
# "<![<![". Every search below either moves the position forward or, through a
# remembered "no match after here", ends the scan: the work is linear.

_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "main", "table", "tr", "ul", "ol", "blockquote", "hr", "nav", "aside", "figure", "dl", "dt", "dd"}
_HIDDEN_TAGS = {"head", "noscript", "svg", "template"}  # content is not text
_RAW_TAGS = {"script", "style"}  # content is not markup either: skipped to the end tag
_TAG_NAME = re.compile(r"[A-Za-z][^\s/>]*")
_ATTR_STOP = re.compile(r"[>=]")
_ATTR_SPACE = re.compile(r"[ \t\n\f]*")
_SPACE_RUN = re.compile(r"\s+")
# html.unescape raises ValueError past int()'s 4,300 digits; such code points do not exist.
_HUGE_CHARREF = re.compile(r"&#(?:[xX]0*[0-9a-fA-F]{7,}|0*[0-9]{8,});?")


def _unescape(raw: str) -> str:
    return html.unescape(_HUGE_CHARREF.sub("\ufffd", raw)) if "&" in raw else raw


class _Finder:
    """The next match at or after a position, remembered: the scanner only moves
    forward, so each stretch of text is searched once for each pattern."""

    def __init__(self, text: str, pattern: str) -> None:
        self.text, self.rx = text, re.compile(pattern, re.I)
        self.start, self.found = 0, None  # no match in text[start:found]; -1: none after start

    def __call__(self, pos: int) -> int:
        if self.found is None or pos < self.start or (self.found != -1 and pos > self.found):
            m = self.rx.search(self.text, pos)
            self.start, self.found = pos, (m.start() if m else -1)
        return self.found


class _TextWriter:
    """Text as a reader sees it: spaces collapse, none at a line's ends, at most one
    blank line in a row; ``<pre>`` text is kept as it is. Done while writing:
    regexes over the joined text (``[ \\t]+\\n``) were quadratic on runs of spaces."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # line breaks to write before the next text
        self.trim = True  # drop the next text's leading space
        self.last_pre = False

    def brk(self, lines: int) -> None:
        self.pending = max(self.pending, lines)

    def mark(self, markup: str) -> None:
        self._flush()
        self.parts.append(markup)
        self.trim, self.last_pre = True, False

    def text(self, s: str, pre: bool = False) -> None:
        if not pre and (self.trim or self.pending):
            s = s.lstrip(" ")
        if not s:
            return
        self._flush()
        self.parts.append(s)
        self.trim, self.last_pre = (not pre and s.endswith(" ")), pre

    def close_fence(self) -> None:
        self._flush()
        self.mark("```" if self.parts and self.parts[-1].endswith("\n") else "\n```")
        self.brk(2)

    def _flush(self) -> None:
        if self.pending and self.parts:
            if not self.last_pre:
                self.parts[-1] = self.parts[-1].rstrip(" ")
            self.parts.append("\n" * self.pending)
        self.pending = 0

    def value(self) -> str:
        return "".join(self.parts).strip() + "\n"


class _HtmlScanner:
    def __init__(self, src: str) -> None:
        self.src, self.out = src, _TextWriter()
        self.gt, self.comment_end, self.cdata_end = _Finder(src, ">"), _Finder(src, "-->"), _Finder(src, r"\]\]>")
        self.closers: dict[str, _Finder] = {}
        self.title: str | None = None
        self.pre = 0
        self.hidden: Counter[str] = Counter()  # open tags whose content is not text
        self.hidden_first, self.hidden_chars = "", 0
        self.notices: list[str] = []

    def run(self) -> tuple[str, str | None, list[str]]:
        src, pos = self.src, 0
        while pos < len(src):
            lt = src.find("<", pos)
            if lt < 0:
                self.data(src[pos:])
                break
            self.data(src[pos:lt])
            pos = self.markup(lt)
            if pos < 0:  # no tag can end after lt: the rest is text
                self.data(src[lt:])
                break
        if self.hidden.total():
            self.notices.append(f"<{self.hidden_first}> is never closed: the {self.hidden_chars:,} characters of text after it were dropped with it")
        return self.out.value(), self.title, self.notices

    def closer(self, name: str) -> _Finder:
        if name not in self.closers:
            self.closers[name] = _Finder(self.src, rf"</{name}(?=[\s/>])")
        return self.closers[name]

    def skip_to_gt(self, pos: int) -> int:
        gt = self.gt(pos)
        return gt + 1 if gt >= 0 else -1

    def markup(self, lt: int) -> int:
        """Handle the markup at ``lt``; returns where the text goes on, or -1."""
        src, nxt = self.src, self.src[lt + 1 : lt + 2]
        if nxt.isascii() and nxt.isalpha():
            return self.start_tag(lt)
        if nxt == "/":
            m = _TAG_NAME.match(src, lt + 2)
            end = self.skip_to_gt(m.end() if m else lt + 2)
            if m and end >= 0:
                self.end_tag(m.group().lower())
            return end
        if src.startswith("<!--", lt):
            for empty in ("<!-->", "<!--->"):
                if src.startswith(empty, lt):
                    return lt + len(empty)
            end = self.comment_end(lt + 4)
            if end < 0:  # unclosed: a browser would hide the rest of the note; keep it as text
                self.data("<!--")
                return lt + 4
            return end + 3
        if src.startswith("<![CDATA[", lt) and (end := self.cdata_end(lt + 9)) >= 0:
            self.data(src[lt + 9 : end], cdata=True)
            return end + 3
        if nxt in ("!", "?"):
            return self.skip_to_gt(lt + 2)
        self.data("<")
        return lt + 1

    def start_tag(self, lt: int) -> int:
        m = _TAG_NAME.match(self.src, lt + 1)
        end = self.tag_end(m.end())
        if end < 0:
            self.notices.append(f"the tag at offset {lt:,} is never closed (no '>'): the {len(self.src) - lt:,} characters from it on are kept as plain text")
            return -1
        name = m.group().lower()
        if name in _RAW_TAGS:
            close = self.closer(name)(end)
            if close < 0:
                self.notices.append(f"<{name}> at offset {lt:,} is never closed: the {len(self.src) - end:,} characters after it were dropped with it")
                return len(self.src)
            return close
        if name == "title" and self.hidden.total() == self.hidden["head"] and (close := self.closer("title")(end)) >= 0:
            self.title = self.title or " ".join(_unescape(self.src[end:close]).split()) or None
            return close
        self.start(name)
        return end + 1 if name == "pre" and self.src.startswith("\n", end) else end

    def tag_end(self, i: int) -> int:
        """Just past the '>' that ends a start tag ('>' inside a quoted value does not), or -1."""
        src = self.src
        while m := _ATTR_STOP.search(src, i):
            if m.group() == ">":
                return m.end()
            i = _ATTR_SPACE.match(src, m.end()).end()
            if src[i : i + 1] in ('"', "'"):
                close = src.find(src[i], i + 1)
                if close < 0:
                    return -1
                i = close + 1
        return -1

    def start(self, name: str) -> None:
        out = self.out
        if name in _HIDDEN_TAGS:
            if not self.hidden.total():
                self.hidden_first, self.hidden_chars = name, 0
            self.hidden[name] += 1
        elif name == "body":
            self.hidden.pop("head", None)  # </head> is optional
        elif self.hidden.total():
            return
        elif name in _HEADINGS:
            out.brk(2)
            out.mark("#" * _HEADINGS[name] + " ")
        elif name == "li":
            out.brk(1)
            out.mark("- ")
        elif name == "pre":
            self.pre += 1
            out.brk(2)
            out.mark("```\n")
        elif name == "br":
            out.brk(1)
        elif name in _BLOCK_TAGS:
            out.brk(2)

    def end_tag(self, name: str) -> None:
        if self.hidden[name] and name in _HIDDEN_TAGS:
            self.hidden[name] -= 1
            self.hidden += Counter()  # drop zero counts
        elif self.hidden.total():
            return
        elif name == "pre" and self.pre:
            self.pre -= 1
            self.out.close_fence()
        elif name in _HEADINGS or name in _BLOCK_TAGS:
            self.out.brk(2)

    def data(self, raw: str, cdata: bool = False) -> None:
        if not raw:
            return
        if self.hidden.total():
            self.hidden_chars += len(raw)
        elif self.pre:
            self.out.text(raw if cdata else _unescape(raw), pre=True)
        else:
            self.out.text(_SPACE_RUN.sub(" ", raw if cdata else _unescape(raw)))


def html_to_text(text: str, notices: list[str]) -> tuple[str, str | None]:
    body, title, found = _HtmlScanner(text).run()
    notices += found
    return body, title


# PDF -----------------------------------------------------------------------
# pypdfium2 (PDFium) is the extractor: on eight real PDFs with a text or HTML
# twin it recovered far more of the twin's words than pypdf, which loses the
# spaces between words in some PDFs, and runs many times faster (bench/
# pdf_extractors.py). pypdf is the fallback when pypdfium2 is not installed.

_PDFIUM_LOCK = threading.Lock()  # PDFium is not thread-safe
_PDF_JUNK = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # PDFium marks a hyphen it joined with U+FFFE


class _PdfStop(Exception):
    """A PDF limit was reached: stop reading pages."""


def _load_pdf(data: bytes, name: str, stem: str, limits: LoadLimits) -> Loaded:
    if not data.startswith(b"%PDF"):
        raise CorruptFileError(f"{name}: not a PDF (no %PDF header)")
    _check_pdf_streams(data, name, limits)
    notices: list[str] = []
    try:
        import pypdfium2  # noqa: F401
    except ImportError:
        pages, title = _pypdf_pages(data, name, limits, notices)
    else:
        with _PDFIUM_LOCK:
            pages, title = _pdfium_pages(data, name, limits, notices)
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise CorruptFileError(f"{name}: the PDF has no extractable text (scanned images?)")
    return Loaded(text + "\n", clip_title(title or stem, limits, notices), "pdf", [], notices)


class _PageBudget:
    """Pages, characters and seconds left for one PDF; each cut is reported."""

    def __init__(self, total_pages: int, file_bytes: int, limits: LoadLimits, notices: list[str]) -> None:
        self.total, self.limits, self.notices = total_pages, limits, notices
        self.pages = min(total_pages, limits.max_pdf_pages)
        by_ratio = limits.max_pdf_chars_per_byte * file_bytes
        self.chars = min(limits.max_pdf_chars, by_ratio)
        self.chars_limit = (f"max_pdf_chars={limits.max_pdf_chars:,}" if limits.max_pdf_chars <= by_ratio else
                            f"max_pdf_chars_per_byte={limits.max_pdf_chars_per_byte} ({by_ratio:,} characters for {file_bytes:,} bytes)")
        self.deadline = time.monotonic() + limits.max_pdf_seconds
        if self.pages < total_pages:
            notices.append(f"read {self.pages:,} of {total_pages:,} pages (max_pdf_pages={limits.max_pdf_pages:,})")

    def take(self, page_no: int, text: str, cut: bool) -> str:
        """The part of a page's text that fits (``cut``: the extractor already stopped
        at the budget); raises _PdfStop once a limit is reached."""
        text = normalise(_PDF_JUNK.sub("", text), self.notices).strip()
        if cut or len(text) > self.chars:
            later = " and later pages were not read" if page_no + 1 < self.pages else ""
            self.notices.append(f"stopped at {self.chars_limit}: page {page_no + 1:,} of {self.total:,} was cut to "
                                f"the {self.chars:,} characters left{later}")
            raise _PdfStop(text[: self.chars])
        self.chars -= len(text)
        if time.monotonic() > self.deadline and page_no + 1 < self.pages:
            self.notices.append(f"stopped after {page_no + 1:,} of {self.total:,} pages: reading took over max_pdf_seconds={self.limits.max_pdf_seconds:g}")
            raise _PdfStop(text)
        return text


def _read_pages(budget: _PageBudget, page_text) -> list[str]:
    pages = []
    for i in range(budget.pages):
        try:
            pages.append(budget.take(i, *page_text(i, budget.chars)))
        except _PdfStop as stop:
            pages.append(stop.args[0])
            break
    return pages


def _pdfium_pages(data: bytes, name: str, limits: LoadLimits, notices: list[str]) -> tuple[list[str], str]:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise CorruptFileError(f"{name}: the PDF is encrypted") from None
        raise CorruptFileError(f"{name}: broken PDF ({exc})") from None

    def page_text(i: int, max_chars: int) -> tuple[str, bool]:
        page = doc[i]
        textpage = page.get_textpage()
        try:  # read at most what the budget can take
            count = textpage.count_chars()
            return textpage.get_text_range(0, min(count, max_chars)), count > max_chars
        finally:
            textpage.close()
            page.close()

    try:
        budget = _PageBudget(len(doc), len(data), limits, notices)
        return _read_pages(budget, page_text), doc.get_metadata_value("Title").strip()
    except pdfium.PdfiumError as exc:
        raise CorruptFileError(f"{name}: broken PDF ({exc})") from None
    finally:
        doc.close()


def _pypdf_pages(data: bytes, name: str, limits: LoadLimits, notices: list[str]) -> tuple[list[str], str]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover - core dependency
        raise UnsupportedFileError(f"{name}: reading PDF needs pypdfium2 or pypdf (pip install pypdfium2)") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise CorruptFileError(f"{name}: the PDF is encrypted")
        budget = _PageBudget(len(reader.pages), len(data), limits, notices)
        pages = _read_pages(budget, lambda i, _max_chars: (reader.pages[i].extract_text() or "", False))
        title = reader.metadata.title if reader.metadata and reader.metadata.title else ""
    except CorruptFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise CorruptFileError(f"{name}: broken PDF ({type(exc).__name__}: {exc})") from None
    return pages, str(title)


# A 1,279-byte PDF whose content stream is Flate inside Flate inflates to 54 MB,
# and PDFium then aborts the whole process for want of memory. Streams can never
# sit inside object streams, so scanning the file's bytes finds them all; each
# Flate-encoded stream is inflated piecewise (nothing kept) and measured first.
_STREAM_KEYWORD = re.compile(rb"(?<!end)stream\r?\n")
_FILTERS = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[A-Za-z0-9]+)")
_NOT_CONTENT = re.compile(rb"/Subtype\s*/(?:Image|Type1C|CIDFontType0C|OpenType)|/Length[123]\b|/(?:XRef|ObjStm|EmbeddedFile)\b")


class _Inflated(Exception):
    pass


def _check_pdf_streams(data: bytes, name: str, limits: LoadLimits) -> None:
    """Refuse a PDF with a content stream that inflates past max_pdf_stream_bytes."""
    budget, last_end = limits.max_pdf_stream_bytes, 0
    for m in _STREAM_KEYWORD.finditer(data):
        head = data[max(last_end, m.start() - 4096) : m.start()]
        last_end = m.end()
        head = head[head.rfind(b"obj") + 1 :]
        filters = _FILTERS.search(head)
        if not filters or _NOT_CONTENT.search(head):
            continue
        layers = 0
        for f in re.findall(rb"/([A-Za-z0-9]+)", filters.group(1)):
            if f not in (b"FlateDecode", b"Fl"):
                break
            layers += 1
        end = data.find(b"endstream", m.end())
        try:
            _inflate_measure(data[m.end() : end if end >= 0 else len(data)], layers, budget)
        except _Inflated:
            raise ExpansionLimitError(f"{name}: a content stream at byte {m.end():,} inflates past max_pdf_stream_bytes="
                                      f"{budget:,} ({layers} Flate layer(s)); refused before parsing") from None


def _inflate_measure(raw: bytes, layers: int, budget: int) -> None:
    """Inflate ``layers`` nested Flate encodings piece by piece; raise _Inflated past ``budget`` bytes."""
    decoders = [zlib.decompressobj() for _ in range(layers)]
    total = 0

    def feed(level: int, chunk: bytes) -> None:
        nonlocal total
        while chunk:
            out = decoders[level].decompress(chunk, 1 << 20)
            chunk = decoders[level].unconsumed_tail
            if level + 1 < layers:
                feed(level + 1, out)
            else:
                total += len(out)
                if total > budget:
                    raise _Inflated
            if not out:
                break

    if layers:
        try:
            feed(0, raw)
        except zlib.error:  # broken data: the parser will say so
            pass
