"""PDF text per page within ``LoadLimits`` (pages, characters, seconds, inflated
stream size); every cut is said in notices."""

from __future__ import annotations

import io
import re
import threading
import time
import zlib
from typing import TYPE_CHECKING

from .errors import CorruptFileError, ExpansionLimitError, UnsupportedFileError
from .text import normalise

if TYPE_CHECKING:
    from .loaders import LoadLimits

# pypdfium2 (PDFium) is the extractor: on eight real PDFs with a text or HTML
# twin it recovered far more of the twin's words than pypdf, which loses the
# spaces between words in some PDFs, and runs many times faster (bench/
# pdf_extractors.py). pypdf is the fallback when pypdfium2 is not installed.

_PDFIUM_LOCK = threading.Lock()  # PDFium is not thread-safe
_PDF_JUNK = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # PDFium marks a hyphen it joined with U+FFFE


class _PdfStop(Exception):
    """A PDF limit was reached: stop reading pages."""


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
        raise UnsupportedFileError(f"{name}: reading PDF needs pypdfium2 or pypdf (pip install 'noteloom[rag]')") from exc
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


def pdf_text(data: bytes, name: str, limits: LoadLimits, notices: list[str]) -> tuple[str, str]:
    """The text of a PDF's pages (blank-line separated) and its title, within ``limits``."""
    if not data.startswith(b"%PDF"):
        raise CorruptFileError(f"{name}: not a PDF (no %PDF header)")
    _check_pdf_streams(data, name, limits)
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
    return text + "\n", title
