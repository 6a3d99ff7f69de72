#!/usr/bin/env python3
"""Build the benchmark corpora from the documentation that Debian ships in its
doc packages (nobody on this project wrote any of it): ``prose.txt``, >= 10 MB
of English prose, and two markup-heavy ones of about 10 MB each, ``rst.txt``
(reStructuredText sources) and ``markdown.txt`` (markdown sources).

    python bench/make_corpus.py                  # builds every corpus that is missing
    python bench/make_corpus.py --corpus rst     # only one of them
    python bench/make_corpus.py --force          # rebuild

Each package below is fetched with ``apt-get download`` (nothing is installed)
and unpacked with ``dpkg-deb -x`` into a temporary folder. For the prose corpus
its HTML manuals are reduced to plain text with the standard library's
``html.parser``: navigation, sidebars, scripts and code listings (``<pre>``) are
dropped, block elements become paragraphs separated by one blank line, and a
paragraph already seen (the same text in a chapter page and its section page,
repeated notes) is kept only once. The markup corpora keep their source files
as they are (the markup is what they are for), gunzipped where Debian
compressed them, with a file identical to one already taken left out. Files are
concatenated in a fixed order (package by package, then by path) with one blank
line between them, so the same package versions always give the same corpus.
``bench/corpus/SOURCES.json`` records, per corpus, the packages, their versions
and the size and hash of the result.

Needs: Debian's ``apt-get`` and ``dpkg-deb`` and a reachable Debian mirror.
Standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS_DIR = HERE / "corpus"
MANIFEST = CORPUS_DIR / "SOURCES.json"
MIN_BYTES = 10_000_000


@dataclass(frozen=True)
class Package:
    name: str
    include: tuple[str, ...]  # globs relative to the unpacked package root
    exclude: tuple[str, ...] = ()  # fnmatch patterns on "/" + that relative path


@dataclass(frozen=True)
class Corpus:
    name: str  # the corpus is bench/corpus/<name>.txt
    kind: str  # "html-prose": HTML reduced to paragraphs; "markup": source files kept as they are
    recipe: int  # bump when the recipe of this corpus changes
    packages: tuple[Package, ...]

    @property
    def path(self) -> Path:
        return CORPUS_DIR / f"{self.name}.txt"


# Ordered from the most narrative to the most reference-like.
PROSE = Corpus("prose", "html-prose", 2, (
    Package(
        "debian-handbook",  # The Debian Administrator's Handbook (book-length prose)
        ("usr/share/doc/debian-handbook/html/en-US/*.html",),
        ("*/index.html", "*/ix01.html"),
    ),
    Package("installation-guide-amd64", ("usr/share/doc/installation-guide-amd64/en/*.html",), ("*/index.html",)),
    Package("debian-faq", ("usr/share/doc/debian/FAQ/*.en.html",), ("*/index.en.html",)),
    Package("debian-kernel-handbook", ("usr/share/doc/debian-kernel-handbook/kernel-handbook.html/*.html",), ("*/index.html",)),
    Package(
        "developers-reference",
        ("usr/share/developers-reference/*.html",),
        ("*/developers-reference.html", "*/index.html", "*/search.html", "*/genindex.html"),
    ),
    Package("maint-guide", ("usr/share/doc/maint-guide/html/*.en.html",), ("*/index.en.html",)),
    Package(
        "debian-policy",
        ("usr/share/doc/debian-policy/policy.html/*.html", "usr/share/doc/debian-policy/perl-policy.html/*.html"),
        ("*/index.html", "*/search.html", "*/genindex.html"),
    ),
    Package("gnu-standards", ("usr/share/doc/gnu-standards/standards.html", "usr/share/doc/gnu-standards/maintain.html")),
    Package(
        "python-django-doc",  # Django's introduction, topic guides, HOWTOs, FAQ, internals, reference (no release notes)
        tuple(
            f"usr/share/doc/python-django-doc/html/{part}/**/*.html"
            for part in ("intro", "topics", "howto", "faq", "internals", "misc", "ref")
        )
        + ("usr/share/doc/python-django-doc/html/glossary.html",),
        ("*/index.html",),
    ),
    Package(
        "python3.11-doc",  # tutorial, language reference, HOWTOs, FAQ, library reference
        tuple(
            f"usr/share/doc/python3.11/html/{part}/*.html"
            for part in ("tutorial", "howto", "faq", "reference", "using", "extending", "installing", "distributing", "library")
        )
        + ("usr/share/doc/python3.11/html/glossary.html",),
        ("*/index.html", "*/genindex*.html", "*/search.html"),
    ),
    Package(
        "postgresql-doc-15",  # the PostgreSQL 15 manual (tutorial, concepts, administration, reference)
        ("usr/share/doc/postgresql-doc-15/html/*.html",),
        ("*/index.html", "*/bookindex.html", "*/release-*.html", "*/errcodes-appendix.html"),
    ),
    Package("bash-doc", ("usr/share/doc/bash/bashref.html",)),
))

# The Linux kernel's own documentation sources (Documentation/**/*.rst): headings,
# directives, literal blocks, tables, lists. The guides and the core subsystems;
# not the translations, nor the long per-driver reference sets (networking,
# driver-api, hwmon), which would bring it well over 10 MB.
KERNEL_DOC = "usr/share/doc/linux-doc-6.1/Documentation"
RST = Corpus("rst", "markup", 1, (
    Package(
        "linux-doc-6.1",
        tuple(
            f"{KERNEL_DOC}/{part}/**/*.rst"
            for part in (
                "process", "admin-guide", "filesystems", "core-api", "kernel-hacking", "dev-tools", "trace", "RCU",
                "locking", "mm", "scheduler", "block", "bpf", "security", "kbuild", "virt", "userspace-api",
            )
        ),
    ),
))

# Markdown as people write it in technical notes: API references with fenced
# code (Node.js), a long user manual (rclone), command references and guides
# (Docker, LXD, npm, Buildah, Podman, containers/common, Moby's specs), and the READMEs of Ansible's collections
# and roles (headings, tables, YAML examples). No changelogs, release notes,
# codes of conduct or translations.
MARKDOWN = Corpus("markdown", "markup", 1, (
    Package("nodejs-doc", ("usr/share/doc/nodejs/api/*.md",)),
    Package("rclone", ("usr/share/doc/rclone/MANUAL.md",)),
    Package(
        "docker-doc",  # of the Engine API references, only the newest version (the older ones repeat it)
        ("usr/share/doc/docker-doc/**/*.md",),
        ("*/api/v1.1*.md", "*/api/v1.2[0-3].md"),
    ),
    Package("lxd", ("usr/share/doc/lxd/**/*.md",)),
    Package("npm", ("usr/share/doc/npm/**/*.md",)),
    Package("buildah", ("usr/share/doc/buildah/**/*.md",), ("*/release-announcements/*",)),
    Package("podman", ("usr/share/doc/podman/**/*.md",), ("*/RELEASE_NOTES.md", "*_cn.md")),
    Package("golang-github-containers-common-dev", ("usr/share/gocode/src/github.com/containers/common/**/*.md",), ("*/.github/*",)),
    Package("golang-github-docker-docker-dev", ("usr/share/gocode/src/github.com/**/*.md",), ("*/.github/*",)),
    Package(
        "ansible",
        ("usr/lib/python3/dist-packages/ansible_collections/**/*.md",),
        ("*/CHANGELOG*", "*/CODE_OF_CONDUCT*", "*/changelogs/*", "*/tests/*"),
    ),
))

CORPORA = {c.name: c for c in (PROSE, RST, MARKDOWN)}

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


def _logical(path: Path) -> str:
    """The file's name before Debian gzipped it (dh_compress does so by size)."""
    return path.as_posix()[:-3] if path.name.endswith(".gz") else path.as_posix()


def select(root: Path, package: Package, compressed_too: bool) -> list[Path]:
    """Files matching the package's globs (also ``<glob>.gz`` when
    ``compressed_too``), pattern by pattern, each in path order."""
    files: list[Path] = []
    taken: set[Path] = set()
    for pattern in package.include:
        found = set(root.glob(pattern)) | (set(root.glob(pattern + ".gz")) if compressed_too else set())
        for path in sorted(found, key=_logical):
            rel = "/" + _logical(path.relative_to(root))
            if path.is_file() and path not in taken and not any(fnmatch.fnmatch(rel, ex) for ex in package.exclude):
                files.append(path)
                taken.add(path)
    return files


def prose_text(paths: list[Path], seen: set[str]) -> list[str]:
    """One string per file: its prose paragraphs joined by blank lines."""
    bodies = []
    for path in paths:
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
        if kept:
            bodies.append("\n\n".join(kept))
    return bodies


def markup_text(paths: list[Path], seen: set[str]) -> list[str]:
    """One string per file: the source as it is, without its leading and
    trailing blank lines; a file identical to one already taken is skipped."""
    bodies = []
    for path in paths:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        body = raw.decode("utf-8", errors="replace").strip("\r\n")
        key = hashlib.sha1(body.encode("utf-8")).hexdigest()
        if not body.strip() or key in seen:
            continue
        seen.add(key)
        bodies.append(body)
    return bodies


def build(corpus: Corpus) -> dict:
    """Writes ``corpus.path``; returns its manifest entry."""
    packages = [pkg.name for pkg in corpus.packages]
    entry: dict = {"recipe": corpus.recipe, "packages": {}}
    seen: set[str] = set()
    markup = corpus.kind == "markup"
    out = corpus.path
    with tempfile.TemporaryDirectory(prefix="chunkers-corpus-") as tmp:
        tmpdir = Path(tmp)
        debs = fetch(packages, tmpdir)
        tmp_out = out.with_suffix(".tmp")
        with tmp_out.open("w", encoding="utf-8") as sink:
            first = True
            for pkg in corpus.packages:
                root = tmpdir / "x" / pkg.name
                root.mkdir(parents=True)
                res = run(["dpkg-deb", "-x", str(debs[pkg.name]), str(root)], tmpdir)
                if res.returncode != 0:
                    sys.exit(f"make_corpus: dpkg-deb -x {debs[pkg.name].name} failed: {res.stderr.strip()}")
                files = select(root, pkg, compressed_too=markup)
                if not files:
                    sys.exit(f"make_corpus: no files matched {list(pkg.include)} in {debs[pkg.name].name}; has the package layout changed?")
                bodies = (markup_text if markup else prose_text)(files, seen)
                for body in bodies:
                    if not first:
                        sink.write("\n\n")
                    sink.write(body)
                    first = False
                entry["packages"][pkg.name] = {
                    "deb": debs[pkg.name].name,
                    "files": len(files),
                    "kept": len(bodies),
                    "chars": sum(map(len, bodies)),
                }
        os.replace(tmp_out, out)
    return entry


def read_manifest() -> dict:
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def is_built(corpus: Corpus) -> bool:
    out = corpus.path
    entry = read_manifest().get(corpus.name)
    return out.is_file() and out.stat().st_size >= MIN_BYTES and isinstance(entry, dict) and entry.get("recipe") == corpus.recipe


def ensure(corpus: Corpus, force: bool = False) -> int:
    out = corpus.path
    if not force and is_built(corpus):
        print(f"corpus: {out} already built, {out.stat().st_size / 1e6:.1f} MB ({out.stat().st_size} bytes)")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    entry = build(corpus)
    size = out.stat().st_size
    entry["bytes"] = size
    entry["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    manifest = read_manifest()
    manifest = {name: manifest[name] for name in CORPORA if isinstance(manifest.get(name), dict)}  # drops an older layout
    manifest[corpus.name] = entry
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    for info in entry["packages"].values():
        print(f"  {info['deb']}: {info['files']} files ({info['kept']} kept), {info['chars'] / 1e6:.2f} M chars")
    print(f"corpus: {out}, {size / 1e6:.1f} MB ({size} bytes)")
    if size < MIN_BYTES:
        print(f"make_corpus: {out.name} is only {size} bytes, under the {MIN_BYTES} the benchmark needs", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", choices=sorted(CORPORA), help="build only this corpus (repeatable; default: all)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the corpus exists")
    args = ap.parse_args(argv)
    status = 0
    for name in args.corpus or list(CORPORA):
        status = max(status, ensure(CORPORA[name], args.force))
    return status


if __name__ == "__main__":
    sys.exit(main())
