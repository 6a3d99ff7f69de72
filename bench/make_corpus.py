#!/usr/bin/env python3
"""Build the benchmark corpus: >= 10 MB of real English prose from the
documentation that Debian ships in its doc packages (nobody on this project
wrote any of it).

    python bench/make_corpus.py            # builds bench/corpus/prose.txt if missing
    python bench/make_corpus.py --force    # rebuild

Each package below is fetched with ``apt-get download`` (nothing is installed),
unpacked with ``dpkg-deb -x`` into a temporary folder, and its HTML manuals are
reduced to plain text with the standard library's ``html.parser``: navigation,
sidebars, scripts and code listings (``<pre>``) are dropped, block elements
become paragraphs separated by one blank line, and a paragraph already seen
(the same text in a chapter page and its section page, repeated notes) is kept
only once. Files are concatenated in a fixed order with a blank line between
them, so the same package versions always give the same corpus.

Needs: Debian's ``apt-get`` and ``dpkg-deb`` and a reachable Debian mirror.
Standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS_DIR = HERE / "corpus"
CORPUS = CORPUS_DIR / "prose.txt"
MANIFEST = CORPUS_DIR / "SOURCES.json"
MIN_BYTES = 10 * 1024 * 1024
RECIPE_VERSION = 2  # bump when the extraction below changes

# (package, [glob patterns relative to the unpacked package root], [excluded globs])
# Ordered from the most narrative to the most reference-like.
SOURCES: list[tuple[str, list[str], list[str]]] = [
    (
        "debian-handbook",  # The Debian Administrator's Handbook (book-length prose)
        ["usr/share/doc/debian-handbook/html/en-US/*.html"],
        ["*/index.html", "*/ix01.html"],
    ),
    ("installation-guide-amd64", ["usr/share/doc/installation-guide-amd64/en/*.html"], ["*/index.html"]),
    ("debian-faq", ["usr/share/doc/debian/FAQ/*.en.html"], ["*/index.en.html"]),
    ("debian-kernel-handbook", ["usr/share/doc/debian-kernel-handbook/kernel-handbook.html/*.html"], ["*/index.html"]),
    (
        "developers-reference",
        ["usr/share/developers-reference/*.html"],
        ["*/developers-reference.html", "*/index.html", "*/search.html", "*/genindex.html"],
    ),
    ("maint-guide", ["usr/share/doc/maint-guide/html/*.en.html"], ["*/index.en.html"]),
    (
        "debian-policy",
        ["usr/share/doc/debian-policy/policy.html/*.html", "usr/share/doc/debian-policy/perl-policy.html/*.html"],
        ["*/index.html", "*/search.html", "*/genindex.html"],
    ),
    ("gnu-standards", ["usr/share/doc/gnu-standards/standards.html", "usr/share/doc/gnu-standards/maintain.html"], []),
    (
        "python-django-doc",  # Django's introduction, topic guides, HOWTOs, FAQ, internals, reference (no release notes)
        [
            f"usr/share/doc/python-django-doc/html/{part}/**/*.html"
            for part in ("intro", "topics", "howto", "faq", "internals", "misc", "ref")
        ]
        + ["usr/share/doc/python-django-doc/html/glossary.html"],
        ["*/index.html"],
    ),
    (
        "python3.11-doc",  # tutorial, language reference, HOWTOs, FAQ, library reference
        [
            f"usr/share/doc/python3.11/html/{part}/*.html"
            for part in ("tutorial", "howto", "faq", "reference", "using", "extending", "installing", "distributing", "library")
        ]
        + ["usr/share/doc/python3.11/html/glossary.html"],
        ["*/index.html", "*/genindex*.html", "*/search.html"],
    ),
    (
        "postgresql-doc-15",  # the PostgreSQL 15 manual (tutorial, concepts, administration, reference)
        ["usr/share/doc/postgresql-doc-15/html/*.html"],
        ["*/index.html", "*/bookindex.html", "*/release-*.html", "*/errcodes-appendix.html"],
    ),
    ("bash-doc", ["usr/share/doc/bash/bashref.html"], []),
]

BLOCK = {
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "ol", "p", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul", "br",
}
CELL = {"td", "th"}
SKIP_TAGS = {"script", "style", "head", "title", "pre", "nav", "noscript", "svg", "math", "object", "iframe", "button", "select"}
# class / id / role values of navigation and chrome in Sphinx, Publican (DocBook) and texinfo output
SKIP_CLASSES = {
    "sphinxsidebar", "related", "footer", "docnav", "toc", "highlight", "headerlink", "indexterm", "banner", "navfooter",
    "navheader", "header", "nav-panel", "contents", "linenos", "copyright", "mobile-nav", "menu", "screen",
    "programlisting", "literallayout", "synopsis", "example-contents", "doctest", "literal-block", "sidebar-toc",
    "clearer", "breadcrumbs", "topic", "legalnotice", "copiable-anchor", "copiable-link",
}
SKIP_IDS = {"banner", "title", "sidebar", "footer", "header", "search", "searchbox"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
WS = re.compile(r"\s+")


class ProseExtractor(HTMLParser):
    """Plain text of an HTML page: one paragraph per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.skip_tag: str | None = None  # tag that opened the region being skipped
        self.skip_depth = 0

    def _flush(self) -> None:
        text = WS.sub(" ", "".join(self.current)).strip()
        self.current = []
        if text:
            self.paragraphs.append(text)

    def _skipped(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag in SKIP_TAGS:
            return True
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        if classes & SKIP_CLASSES:
            return True
        if (values.get("id") or "") in SKIP_IDS or (values.get("role") or "") == "navigation":
            return True
        return False

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag and tag not in VOID:
                self.skip_depth += 1
            return
        if tag not in VOID and self._skipped(tag, attrs):
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag in BLOCK:
            self._flush()
        elif tag in CELL:
            self.current.append(" ")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if self.skip_tag is None and tag in BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            if tag == self.skip_tag:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skip_tag = None
            return
        if tag in BLOCK:
            self._flush()
        elif tag in CELL:
            self.current.append(" ")

    def handle_data(self, data: str) -> None:
        if self.skip_tag is None:
            self.current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_paragraphs(raw: bytes) -> list[str]:
    parser = ProseExtractor()
    parser.feed(raw.decode("utf-8", errors="replace"))
    parser.close()
    return parser.paragraphs


def is_prose(paragraph: str) -> bool:
    """Drop navigation leftovers: bare symbols, page numbers, 'Next'/'Prev' links."""
    words = paragraph.split()
    if not words:
        return False
    letters = sum(ch.isalpha() for ch in paragraph)
    return letters >= 0.5 * len(paragraph) or len(words) >= 8


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def fetch(packages: list[str], workdir: Path) -> dict[str, Path]:
    """apt-get download each package into ``workdir`` (running ``apt-get update``
    once if the package lists are missing); returns package -> .deb path."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            sys.exit(f"make_corpus: `{tool}` not found: the corpus is built from Debian doc packages, so this needs a Debian/Ubuntu machine")
    res = run(["apt-get", "download", *packages], workdir)
    if res.returncode != 0:
        print("make_corpus: apt-get download failed; running `apt-get update` once and retrying", file=sys.stderr)
        upd = run(["apt-get", "update"], workdir)
        if upd.returncode != 0:
            print(upd.stderr.strip()[-2000:], file=sys.stderr)
        res = run(["apt-get", "download", *packages], workdir)
    if res.returncode != 0:
        sys.exit(
            "make_corpus: could not fetch the Debian doc packages "
            f"{', '.join(packages)} with `apt-get download` (is a Debian mirror reachable? "
            "as root, try `apt-get update`):\n" + (res.stderr.strip()[-2000:] or res.stdout.strip()[-2000:])
        )
    debs = {}
    for pkg in packages:
        found = sorted(workdir.glob(f"{pkg}_*.deb"))
        if not found:
            sys.exit(f"make_corpus: apt-get download reported success but no {pkg}_*.deb was written in {workdir}")
        debs[pkg] = found[-1]
    return debs


def select(root: Path, patterns: list[str], excludes: list[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            rel = "/" + path.relative_to(root).as_posix()
            if path.is_file() and not any(fnmatch.fnmatch(rel, ex) for ex in excludes) and path not in files:
                files.append(path)
    return files


def build(out: Path) -> dict:
    packages = [pkg for pkg, _, _ in SOURCES]
    manifest: dict = {"recipe": RECIPE_VERSION, "packages": {}}
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="chunkers-corpus-") as tmp:
        tmpdir = Path(tmp)
        debs = fetch(packages, tmpdir)
        tmp_out = out.with_suffix(".tmp")
        with tmp_out.open("w", encoding="utf-8") as sink:
            first = True
            for pkg, patterns, excludes in SOURCES:
                root = tmpdir / "x" / pkg
                root.mkdir(parents=True)
                res = run(["dpkg-deb", "-x", str(debs[pkg]), str(root)], tmpdir)
                if res.returncode != 0:
                    sys.exit(f"make_corpus: dpkg-deb -x {debs[pkg].name} failed: {res.stderr.strip()}")
                files = select(root, patterns, excludes)
                if not files:
                    sys.exit(f"make_corpus: no files matched {patterns} in {debs[pkg].name}; has the package layout changed?")
                chars = 0
                for path in files:
                    kept = []
                    for para in html_paragraphs(path.read_bytes()):
                        if not is_prose(para):
                            continue
                        if len(para) >= 40:  # short lines (headings, "Note") may legitimately repeat
                            key = hashlib.sha1(para.encode("utf-8")).hexdigest()
                            if key in seen:
                                continue
                            seen.add(key)
                        kept.append(para)
                    if not kept:
                        continue
                    body = "\n\n".join(kept)
                    if not first:
                        sink.write("\n\n")
                    sink.write(body)
                    first = False
                    chars += len(body)
                manifest["packages"][pkg] = {"deb": debs[pkg].name, "files": len(files), "chars": chars}
        os.replace(tmp_out, out)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if the corpus exists")
    ap.add_argument("--out", type=Path, default=CORPUS, help=f"output file (default {CORPUS})")
    args = ap.parse_args(argv)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest_path = out.parent / "SOURCES.json"
    if not args.force and out.is_file() and out.stat().st_size >= MIN_BYTES and manifest_path.is_file():
        try:
            recipe = json.loads(manifest_path.read_text()).get("recipe")
        except ValueError:
            recipe = None
        if recipe == RECIPE_VERSION:
            print(f"corpus: {out} already built, {out.stat().st_size / 1e6:.1f} MB ({out.stat().st_size} bytes)")
            return 0
    manifest = build(out)
    size = out.stat().st_size
    manifest["bytes"] = size
    manifest["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for pkg, info in manifest["packages"].items():
        print(f"  {info['deb']}: {info['files']} files, {info['chars'] / 1e6:.2f} M chars")
    print(f"corpus: {out}, {size / 1e6:.1f} MB ({size} bytes)")
    if size < MIN_BYTES:
        print(f"make_corpus: the corpus is only {size} bytes, under the {MIN_BYTES} the benchmark needs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
