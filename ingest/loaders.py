"""Read notes into normalised text: markdown (YAML front matter becomes title and
tags), plain text, HTML (headings and lists kept as markdown so chunkers see the
structure) and PDF (text per page). The normalised text is what is stored and
what every citation's offsets point into.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from .errors import CorruptFileError, FileTooLargeError, UnsupportedFileError

KINDS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".pdf": "pdf"}
MAX_FILE_BYTES = 50 * 1024 * 1024
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FIRST_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


@dataclass
class Loaded:
    text: str
    title: str
    kind: str
    tags: list[str] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def kind_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in KINDS:
        raise UnsupportedFileError(f"{name}: unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(KINDS))}")
    return KINDS[suffix]


def normalise(text: str) -> str:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def decode_utf8(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise UnsupportedFileError(f"{name}: looks like a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{name}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def load_bytes(data: bytes, name: str, kind: str | None = None) -> Loaded:
    """Parse a file's bytes; ``name`` is used for messages and the fallback title."""
    kind = kind or kind_of(name)
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLargeError(f"{name}: {len(data)} bytes is over the {MAX_FILE_BYTES}-byte limit")
    stem = Path(name).stem or name
    if kind == "pdf":
        return _load_pdf(data, name, stem)
    text = normalise(decode_utf8(data, name))
    if kind == "html":
        return _load_html(text, stem)
    if kind == "markdown":
        return _load_markdown(text, stem)
    if kind == "text":
        return Loaded(text, stem, "text")
    raise UnsupportedFileError(f"{name}: unsupported kind {kind!r}")


def load_file(path: str | Path) -> Loaded:
    path = Path(path)
    kind = kind_of(path.name)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FileTooLargeError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit")
    return load_bytes(path.read_bytes(), str(path), kind)


def _load_markdown(text: str, stem: str) -> Loaded:
    title, tags = None, []
    m = _FRONT_MATTER.match(text)
    if m:
        meta = _parse_front_matter(m.group(1))
        title = meta.get("title") if isinstance(meta.get("title"), str) else None
        raw_tags = meta.get("tags") or []
        if isinstance(raw_tags, str):
            raw_tags = [t.strip() for t in raw_tags.split(",")]
        tags = [str(t) for t in raw_tags if str(t).strip()]
        text = text[m.end() :]
    if title is None:
        heading = _FIRST_HEADING.search(text)
        title = heading.group(1).strip() if heading else stem
    return Loaded(text, title, "markdown", tags)


def _parse_front_matter(block: str) -> dict:
    try:
        import yaml

        meta = yaml.safe_load(block)
        return meta if isinstance(meta, dict) else {}
    except Exception:  # noqa: BLE001 - malformed front matter is not fatal: keep the body
        return {}


_BLOCK_TAGS = {"p", "div", "section", "article", "header", "footer", "main", "table", "tr", "ul", "ol", "blockquote", "pre", "br", "hr"}
_SKIP_TAGS = {"script", "style", "head", "noscript", "svg"}


class _HTMLToText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self.in_title = False
        self.pre = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        if tag == "title":
            self.in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "pre":
            self.pre += 1
            self.parts.append("\n\n```\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        if tag == "title":
            self.in_title = False
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self.parts.append("\n```\n\n")
        elif re.fullmatch(r"h[1-6]", tag) or tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        elif not self.skip:
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def _load_html(text: str, stem: str) -> Loaded:
    parser = _HTMLToText()
    parser.feed(text)
    parser.close()
    body = "".join(parser.parts)
    body = re.sub(r"[ \t]+\n", "\n", body)
    body = re.sub(r"\n[ \t]+(?=\S)", "\n", body)
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    title = html.unescape(parser.title).strip()
    if not title:
        heading = _FIRST_HEADING.search(body)
        title = heading.group(1).strip() if heading else stem
    return Loaded(body, title, "html")


def _load_pdf(data: bytes, name: str, stem: str) -> Loaded:
    if not data.startswith(b"%PDF"):
        raise CorruptFileError(f"{name}: not a PDF (no %PDF header)")
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover - core dependency
        raise UnsupportedFileError(f"{name}: reading PDF needs pypdf (pip install pypdf)") from exc
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise CorruptFileError(f"{name}: the PDF is encrypted")
        pages = [normalise(page.extract_text() or "").strip() for page in reader.pages]
        title = (reader.metadata.title if reader.metadata and reader.metadata.title else "") or stem
    except CorruptFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise CorruptFileError(f"{name}: broken PDF ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise CorruptFileError(f"{name}: the PDF has no extractable text (scanned images?)")
    return Loaded(text + "\n", str(title), "pdf")
