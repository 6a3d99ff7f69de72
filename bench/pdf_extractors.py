#!/usr/bin/env python3
"""Which PDF text extractor keeps a document's words: each extractor against real
PDFs that ship with a text or HTML twin (the same document).

    apt-get download bash-doc r-doc-pdf r-doc-html maint-guide developers-reference debian-reference-en
    for d in *.deb; do dpkg-deb -x "$d" /tmp/pdfdocs/x; done
    .venv/bin/python bench/pdf_extractors.py --root /tmp/pdfdocs/x

pdfminer.six is not a dependency: to compare it too, run the script with a
Python that has it (and pypdf, pypdfium2) installed; missing ones are skipped.

pypdf's default mode lost nearly every space between words in some real PDFs, so
those could not be found by their words. Per extractor and document this prints
the share of the twin's words recovered (multiset overlap of lower-cased words:
sum of min(count in PDF, count in twin) / words in twin) and characters per
second. Twins differ from their PDFs (tables of contents, page headers), so read
the columns against each other, not against 100%. Extractors not installed are
skipped. Writes bench/results/pdf_extractors.md.
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402

# (pdf, twin) relative to --root; FAQ-style documents are held out of every choice.
PAIRS = [
    ("usr/share/doc/bash/bash.pdf", "usr/share/doc/bash/bash.html"),
    ("usr/share/doc/bash/bashref.pdf", "usr/share/doc/bash/bashref.html"),
    ("usr/share/R/doc/manual/R-intro.pdf", "usr/share/R/doc/manual/R-intro.html"),
    ("usr/share/R/doc/manual/R-data.pdf", "usr/share/R/doc/manual/R-data.html"),
    ("usr/share/R/doc/manual/R-lang.pdf", "usr/share/R/doc/manual/R-lang.html"),
    ("usr/share/doc/maint-guide/maint-guide.en.pdf", "usr/share/doc/maint-guide/maint-guide.en.txt.gz"),
    ("usr/share/developers-reference/developers-reference.pdf", "usr/share/developers-reference/developers-reference.txt.gz"),
    ("usr/share/debian-reference/debian-reference.en.pdf", "usr/share/debian-reference/debian-reference.en.txt.gz"),
]
_WORD = re.compile(r"[^\W_]+")


def _pypdf(data: bytes, mode: str) -> str:
    from pypdf import PdfReader

    return "\n".join(p.extract_text(extraction_mode=mode) or "" for p in PdfReader(io.BytesIO(data)).pages)


def _pdfium(data: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        return "\n".join(doc[i].get_textpage().get_text_bounded() for i in range(len(doc)))
    finally:
        doc.close()


def _pdfminer(data: bytes) -> str:
    from pdfminer.high_level import extract_text

    return extract_text(io.BytesIO(data))


def _noteloom(data: bytes) -> str:
    from ingest.loaders import load_bytes

    return load_bytes(data, "x.pdf").text


EXTRACTORS = {
    "pypdf (plain)": lambda d: _pypdf(d, "plain"),
    "pypdf (layout)": lambda d: _pypdf(d, "layout"),
    "pypdfium2": _pdfium,
    "pdfminer.six": _pdfminer,
    "noteloom load_bytes": _noteloom,
}


def twin_text(path: Path) -> str:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if ".htm" in path.name:
        from ingest.loaders import load_bytes

        return load_bytes(raw, "twin.html").text
    return raw.decode("utf-8", "replace")


def words(text: str) -> Counter:
    return Counter(w.lower() for w in _WORD.findall(text))


def recovered(pdf_words: Counter, twin_words: Counter) -> float:
    return sum(min(c, pdf_words[w]) for w, c in twin_words.items()) / max(1, sum(twin_words.values()))


def available() -> dict:
    out = {}
    for name, fn in EXTRACTORS.items():
        try:
            fn(_tiny_pdf())
            out[name] = fn
        except ImportError as exc:
            B.log(f"[skip] {name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. the project's own imports missing in a scratch venv
            B.log(f"[skip] {name}: {type(exc).__name__}: {exc}")
    return out


def _tiny_pdf() -> bytes:
    sys.path.insert(0, str(B.ROOT))
    from tests.helpers import make_pdf

    return make_pdf(["A tiny test line."])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/pdfdocs/x", help="folder the .deb packages were extracted into")
    parser.add_argument("--only", default="", help="comma-separated extractor names")
    args = parser.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # font warnings, one per page
    root = Path(args.root)
    pairs = [(root / p, root / t) for p, t in PAIRS if (root / p).exists() and (root / t).exists()]
    if not pairs:
        sys.exit(f"no PDF/twin pair under {root}: see the docstring for how to get them")
    extractors = available()
    if args.only:
        extractors = {k: v for k, v in extractors.items() if k in B.sections(args.only)}
    report = B.header("pdf_extractors", f"load average {B.loadavg()}")
    rows, totals = [], {name: [0.0, 0, 0.0, 0] for name in extractors}
    for pdf, twin in pairs:
        data, twin_words = pdf.read_bytes(), words(twin_text(twin))
        for name, fn in extractors.items():
            t0 = time.perf_counter()
            try:
                text = fn(data)
            except Exception as exc:  # noqa: BLE001 - one extractor's failure is a result, not a crash
                rows.append((pdf.name, name, "failed", type(exc).__name__, "–"))
                continue
            seconds = time.perf_counter() - t0
            share = recovered(words(text), twin_words)
            total = totals[name]
            total[0] += share * sum(twin_words.values())
            total[1] += sum(twin_words.values())
            total[2] += seconds
            total[3] += len(text)
            rows.append((pdf.name, name, f"{share:.1%}", f"{seconds:.2f}", B.fmt(len(text) / seconds, 0)))
            B.log(f"{pdf.name:32} {name:22} {share:6.1%} {seconds:6.2f}s")
    summary = [(name, f"{t[0] / max(1, t[1]):.1%}", f"{t[2]:.1f}", B.fmt(t[3] / max(t[2], 1e-9), 0)) for name, t in totals.items()]
    report += [
        f"{len(pairs)} PDFs with a text or HTML twin under {root}.",
        "",
        B.table(["extractor", "twin words recovered (all PDFs)", "seconds", "chars/s"], summary),
        "",
        B.table(["PDF", "extractor", "twin words recovered", "seconds", "chars/s"], rows),
    ]
    text = "\n".join(report)
    print(text)
    B.log(f"written to {B.write_results('pdf_extractors', text)}")


if __name__ == "__main__":
    main()
