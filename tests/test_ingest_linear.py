"""Every loader runs in time linear in its input: each shape below, benign or
hostile, is loaded at n and 4n bytes (best of 3) and the time may grow at most
8x (quadratic would be 16x). Shapes are the ones that froze the server before
(spaces in <pre>, floods of "<!--", "# # #" lines) and their relatives."""

from __future__ import annotations

import zlib

import pytest

from ingest.loaders import load_bytes
from tests.helpers import cpu_seconds, pdf_from_objects

N = 100_000
STEP = 4
MAX_RATIO = 8
FLOOR_S = 0.02  # under this at 4n, nothing is freezing: timer and cache noise dominate


def repeat(unit: str, size: int, head: str = "", tail: str = "") -> bytes:
    return (head + unit * max(1, (size - len(head) - len(tail)) // len(unit)) + tail).encode()


PROSE = "Reciprocal rank fusion merges rankings by summing 1/(k + rank). It needs no score calibration.\n\n"

MARKDOWN = {
    "prose": lambda n: repeat("## A heading\n\n" + PROSE * 3, n),
    "hash-space lines": lambda n: repeat("# " * 40 + "\n", n),
    "hash-space line ending in x": lambda n: repeat("# ", n, tail="x"),
    "hash-tab soup": lambda n: repeat("#\t #", n, tail="x"),
    "seven hashes": lambda n: repeat("####### x\n", n),
    "unclosed front matter": lambda n: repeat("a: b\n", n, head="---\n"),
    "many fences": lambda n: repeat("---x\n--- y\n", n, head="---\n"),
    "front matter over the limit": lambda n: repeat("k: v\n", n, head="---\n", tail="---\nbody\n"),
    "long line, no spaces": lambda n: repeat("x", n),
    "CR line endings": lambda n: repeat("line\r", n),
    "combining marks": lambda n: repeat("\u0301\u0316", n, head="a"),
    # Obsidian conventions (ingest.obsidian): links, embeds, tags and code spans on one line
    "wiki link flood": lambda n: repeat("[[a#b|c]] ", n), "unclosed wiki links": lambda n: repeat("[[x", n),
    "bracket flood": lambda n: repeat("[", n), "embed flood": lambda n: repeat("![[p.png]]", n),
    "tag flood": lambda n: repeat("#a ", n), "backtick runs": lambda n: repeat("`a``", n),
    "links in code spans": lambda n: repeat("`[[x]] #t` ", n), "fence flood": lambda n: repeat("```\n[[x]]\n", n),
    "comment openers in code spans": lambda n: repeat("`<!--` [[x]] ", n), "comment flood": lambda n: repeat("<!-- [[x]] -->", n),
    "unclosed comment": lambda n: repeat("[[x]] #t\n", n, head="<!-- "),
}
TEXT = {
    "prose": lambda n: repeat(PROSE, n),
    "long line, no spaces": lambda n: repeat("abcdefgh", n),
    "CR line endings": lambda n: repeat("\r", n),
    "combining marks": lambda n: repeat("\u0316\u0301", n, head="e"),
    "decomposed accents": lambda n: repeat("e\u0301", n),
    "random junk": lambda n: bytes(range(1, 128)) * (n // 127),
}
HTML = {
    "page": lambda n: repeat(f"<h2>Title</h2><p>{PROSE}</p><ul><li>one</li><li>two &amp; three</li></ul>", n,
                             head="<html><head><title>T</title></head><body>", tail="</body></html>"),
    "spaces in pre": lambda n: repeat(" ", n, head="<pre>", tail="x</pre>"),
    "spaces in p": lambda n: repeat(" ", n, head="<p>", tail="x"),
    "newline then spaces in pre": lambda n: repeat(" ", n, head="<pre>\n", tail="x</pre>"),
    "comment openers": lambda n: repeat("<!--", n),
    "quote in tag": lambda n: repeat('<a "', n),
    "open quoted values": lambda n: repeat('<a x="', n),
    "lt flood": lambda n: repeat("<", n),
    "end-tag openers": lambda n: repeat("</", n),
    "bang openers": lambda n: repeat("<!", n),
    "pi openers": lambda n: repeat("<?", n),
    "cdata openers": lambda n: repeat("<![CDATA[", n),
    "bogus markup": lambda n: repeat("<![<![", n),
    "amp flood": lambda n: repeat("&", n),
    "charref digits": lambda n: repeat("9", n, head="&#"),
    "named refs": lambda n: repeat("&amp", n),
    "nested divs": lambda n: repeat("<div>", n),
    "unclosed p": lambda n: repeat("<p>x", n),
    "script openers": lambda n: repeat("<script>", n),
    "title openers": lambda n: repeat("<title>", n),
    "svg openers": lambda n: repeat("<svg>x", n),
    "long attribute": lambda n: repeat("a", n, head='<p title="', tail='">x</p>'),
    "equals in tag": lambda n: repeat("=", n, head="<p "),
    "long tag name": lambda n: repeat("a", n, head="<"),
    "CR line endings": lambda n: repeat("<p>x</p>\r", n),
}


def pdf_pages(size: int, line: str, lines_per_page: int, shared: bool) -> bytes:
    """Pages of text, each with its own content stream (or all sharing one), grown to ``size`` bytes."""
    ops = ("BT /F1 12 Tf 72 720 Td 14 TL\n" + f"({line}) Tj T*\n" * lines_per_page + "ET").encode()
    content = zlib.compress(ops)
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream"
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
    per_page = len(page) + 40 + (0 if shared else len(stream) + 40)
    count = max(1, size // per_page)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    if shared:
        objects.append(stream)
        objects += [page % 4 for _ in range(count)]
    else:
        for _ in range(count):
            objects += [page % (len(objects) + 2), stream]
    kids = [b"%d 0 R" % (i + 1) for i, body in enumerate(objects) if body.startswith(b"<< /Type /Page ")]
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return pdf_from_objects(objects)


PDF = {
    "pages of prose": lambda n: pdf_pages(n, "Reciprocal rank fusion merges rankings without calibration.", 30, shared=False),
    "pages sharing one stream": lambda n: pdf_pages(n, "All work and no play makes Jack a dull boy.", 40, shared=True),
    "long lines, no spaces": lambda n: pdf_pages(n // 2, "x" * 2000, 5, shared=False),
}

CASES = [(kind, name, gen) for kind, table in (("markdown", MARKDOWN), ("text", TEXT), ("html", HTML), ("pdf", PDF))
         for name, gen in table.items()]
EXT = {"markdown": "md", "text": "txt", "html": "html", "pdf": "pdf"}


def best_times(small, large, reps: int = 3) -> tuple[float, float]:
    """Best of ``reps`` CPU seconds of this process for each, measured in turn
    (CPU time, not wall time: other processes on a busy machine stretch the
    latter, not the work done)."""
    best = [float("inf"), float("inf")]
    for _ in range(reps):
        for i, fn in enumerate((small, large)):
            best[i] = min(best[i], cpu_seconds(fn)[1])
    return best[0], best[1]


@pytest.mark.parametrize("kind,name,gen", CASES, ids=[f"{k}-{n}" for k, n, _ in CASES])
def test_loader_time_is_linear(kind, name, gen):
    small, large = gen(N), gen(N * STEP)
    assert 0.8 * STEP < len(large) / len(small) < 1.2 * STEP, (len(small), len(large))
    file = f"x.{EXT[kind]}"
    load_bytes(small, file)  # warm-up: imports, regex caches
    ratios = []
    for _attempt in range(3):  # a busy machine can spoil one measurement; quadratic work fails all three
        t_small, t_large = best_times(lambda: load_bytes(small, file), lambda: load_bytes(large, file))
        if t_large < FLOOR_S:
            return
        ratios.append(t_large / max(t_small, FLOOR_S / STEP))
        if ratios[-1] < MAX_RATIO:
            return
    pytest.fail(f"{kind} {name}: {t_small * 1e3:.1f} ms at {len(small):,} B, {t_large * 1e3:.1f} ms at {len(large):,} B; "
                f"ratios {', '.join(f'{r:.1f}' for r in ratios)} (limit {MAX_RATIO})")
