"""Amplification bombs and hostile markup for the loaders, generated here: every
limit that is hit is said in ``Loaded.notices`` (or refused with an IngestError
naming it), the note's body is never lost, and nothing takes long."""

from __future__ import annotations

import sys
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import CorruptFileError, ExpansionLimitError, FileTooLargeError, IngestError, UnsupportedFileError
from ingest.loaders import LoadLimits, Loaded, load_bytes
from tests.helpers import cpu_seconds, make_pdf, pdf_from_objects

BODY = "# Real note\n\nThe body must survive whatever the front matter does.\n"


def md(front: str, body: str = BODY) -> bytes:
    return f"---\n{front}\n---\n{body}".encode()


# Front matter ----------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["tags: *i"]
)


def test_alias_bomb_in_tags_is_refused_and_the_body_kept():
    assert len(BILLION_LAUGHS) < 600
    loaded, seconds = cpu_seconds(load_bytes, md(BILLION_LAUGHS), "laughs.md")
    assert seconds < 1 and loaded.tags == []
    assert loaded.text.endswith(BODY) and BILLION_LAUGHS in loaded.text  # kept as text, not lost
    assert len(loaded.text) < 1000 and loaded.title == "Real note"
    assert loaded.notices == ["front matter not read (it uses the YAML alias *a, and aliases are not expanded); it is kept as part of the text"]


def test_front_matter_over_the_size_limit_is_kept_as_text():
    front = "title: Big\ntags: [a]\nnotes: " + "x" * 20_000
    loaded = load_bytes(md(front), "big.md")
    assert loaded.title == "Real note" and loaded.tags == [] and front in loaded.text
    assert "max_front_matter_bytes=16,384" in loaded.notices[0]
    raised = load_bytes(md(front), "big.md", limits=LoadLimits(max_front_matter_bytes=64_000))
    assert (raised.title, raised.tags, raised.notices, raised.text) == ("Big", ["a"], [], BODY)


def test_deep_nesting_is_refused():
    loaded = load_bytes(md("tags: " + "[" * 5000 + "]" * 5000), "deep.md")
    assert "max_front_matter_depth=8" in loaded.notices[0] and loaded.text.endswith(BODY)


def test_tags_over_count_and_length_are_dropped_and_said():
    tags = [f"t{i}" for i in range(150)] + ["x" * 500]
    loaded = load_bytes(md(f"tags: [{', '.join(tags)}]"), "tags.md")
    assert loaded.tags == tags[:100] and loaded.text == BODY
    assert any("1 tag(s) longer than max_tag_chars=100 dropped" in n for n in loaded.notices)
    assert any("kept 100 of 150 tags (max_tags=100); dropped 't100' and the rest" in n for n in loaded.notices)
    wide = load_bytes(md(f"tags: [{', '.join(tags)}]"), "tags.md", limits=LoadLimits(max_tags=1000, max_tag_chars=1000))
    assert wide.tags == tags and wide.notices == []


@pytest.mark.parametrize("front,needle", [
    ("tags: {a: 1}", "front matter tags ignored: expected a list or comma-separated text, got a YAML dict"),
    ("tags: [a, [b, c], {d: e}]", "2 front matter tag(s) dropped"),
    ("title: [a, b]", "front matter title ignored"),
    ("title: 'unclosed", "front matter not read (not valid YAML"),
    ("- just\n- a list", "it is a YAML list, not a mapping"),
    ("x: !!python/object/apply:os.system ['true']", "not valid YAML"),
])
def test_odd_front_matter_is_reported(front, needle):
    loaded = load_bytes(md(front), "odd.md")
    assert any(needle in n for n in loaded.notices), loaded.notices
    assert loaded.text.endswith(BODY)


def test_good_front_matter_is_unchanged_and_silent():
    loaded = load_bytes(md("title: LoRA notes\ntags: [sd, lora]\ndate: 2024-05-01"), "lora.md")
    assert (loaded.title, loaded.tags, loaded.text, loaded.notices) == ("LoRA notes", ["sd", "lora"], BODY, [])
    comma = load_bytes(md("tags: sd, lora , "), "c.md")
    assert comma.tags == ["sd", "lora"] and comma.notices == []


def test_a_note_that_only_starts_with_a_rule_loses_nothing():
    text = "---\nJust a rule, then prose: with a colon.\n\nMore prose.\n---\nTail.\n"
    loaded = load_bytes(text.encode(), "rule.md")
    assert loaded.text == text


def test_unclosed_front_matter_fence_is_text():
    data = b"---\n" + b"a: b\n" * 100_000
    loaded, seconds = cpu_seconds(load_bytes, data, "open.md")
    assert loaded.text == data.decode() and loaded.notices == [] and seconds < 1


def test_long_titles_are_cut_and_said():
    loaded = load_bytes(("# " + "word " * 1000 + "\n\nbody\n").encode(), "t.md")
    assert len(loaded.title) == 300 and loaded.title.endswith("…")
    assert loaded.notices == ["title cut from 4,999 to 300 characters (max_title_chars)"]


def test_file_size_limit_names_the_setting():
    with pytest.raises(FileTooLargeError, match=r"101 bytes is over the 100-byte limit \(max_file_bytes\)"):
        load_bytes(b"x" * 101, "a.txt", limits=LoadLimits(max_file_bytes=100))


def test_limits_are_validated():
    with pytest.raises(ValueError, match="LoadLimits.max_tags must be a positive int, got 0"):
        LoadLimits(max_tags=0)
    with pytest.raises(ValueError, match="max_pdf_pages must be a positive int, got 1.5"):
        LoadLimits(max_pdf_pages=1.5)
    assert LoadLimits(max_pdf_seconds=0.5).max_pdf_seconds == 0.5


def test_zalgo_runs_are_normalised_in_pieces_and_said():
    text = "Zalgo: a" + "\u0301\u0316" * 50_000 + " end. Café\n"
    loaded, seconds = cpu_seconds(load_bytes, text.encode(), "z.txt")
    assert seconds < 2 and loaded.text.endswith(" end. Café\n") and len(loaded.text) == len(text) - 1  # a + U+0301 composed
    assert "1 run(s) of more than 30 combining marks (the longest 100,000)" in loaded.notices[0]
    decomposed = load_bytes("Cafe\u0301\n".encode(), "d.txt")
    assert decomposed.text == "Café\n" and decomposed.notices == []


# PDF -------------------------------------------------------------------------

def _stream(raw: bytes, layers: int = 1) -> bytes:
    for _ in range(layers):
        raw = zlib.compress(raw, 9)
    filters = b" ".join([b"/FlateDecode"] * layers)
    return b"<< /Length %d /Filter [%s] >>\nstream\n" % (len(raw), filters) + raw + b"\nendstream"


def _text_ops(lines: int, line: str) -> bytes:
    return ("BT /F1 12 Tf 72 720 Td 14 TL\n" + f"({line}) Tj T*\n" * lines + "ET").encode()


def hostile_pdf(pages: int, lines: int, line: str = "All work and no play makes Jack a dull boy.", layers: int = 1) -> bytes:
    """Every page of the tree is the same page object, whose one content stream
    holds ``lines`` lines: a few kilobytes that read as megabytes of text."""
    return pdf_from_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join([b"3 0 R"] * pages), pages),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        _stream(_text_ops(lines, line), layers),
    ])


@pytest.fixture(params=["pypdfium2", "pypdf"])
def extractor(request, monkeypatch):
    """Each PDF test runs with PDFium and with the pypdf fallback."""
    if request.param == "pypdf":
        monkeypatch.setitem(sys.modules, "pypdfium2", None)  # import pypdfium2 -> ImportError
    return request.param


def test_pages_sharing_one_stream_are_capped_by_pages(extractor):
    data = hostile_pdf(pages=3000, lines=40)
    assert len(data) < 20_000
    loaded, seconds = cpu_seconds(load_bytes, data, "shared.pdf", limits=LoadLimits(max_pdf_pages=50))
    assert loaded.notices == ["read 50 of 3,000 pages (max_pdf_pages=50)"]
    assert loaded.text.count("All work") == 50 * 40 and seconds < 10


def test_pages_sharing_one_stream_are_capped_by_characters(extractor):
    data = hostile_pdf(pages=3000, lines=40)
    loaded, seconds = cpu_seconds(load_bytes, data, "shared.pdf", limits=LoadLimits(max_pdf_chars=20_000))
    assert len(loaded.text) < 20_100 and seconds < 10
    assert loaded.notices[0].startswith("stopped at max_pdf_chars=20,000: page 12 of 3,000 was cut to the ")
    assert loaded.notices[0].endswith(" characters left and later pages were not read")


def test_pages_sharing_one_stream_are_capped_by_time(extractor):
    data = hostile_pdf(pages=3000, lines=40)
    only_time = LoadLimits(max_pdf_seconds=0.3, max_pdf_chars=10**9, max_pdf_chars_per_byte=10**6)  # the other caps out of reach
    loaded, seconds = cpu_seconds(load_bytes, data, "shared.pdf", limits=only_time)
    assert seconds < 5 and len(loaded.notices) == 1
    assert "pages: reading took over max_pdf_seconds=0.3" in loaded.notices[0]


def test_tiny_pdf_with_megabytes_of_text_is_capped_by_ratio():
    data = hostile_pdf(pages=1, lines=100_000)
    assert len(data) < 20_000  # 4.3 million characters of text
    loaded, seconds = cpu_seconds(load_bytes, data, "flate.pdf")
    assert len(loaded.text) <= 100 * len(data) + 1 and seconds < 15
    assert loaded.notices[0].startswith(f"stopped at max_pdf_chars_per_byte=100 ({100 * len(data):,} characters for {len(data):,} bytes)")


def test_default_limits_bound_the_shared_stream_bomb():
    data = hostile_pdf(pages=5000, lines=40)
    loaded, seconds = cpu_seconds(load_bytes, data, "shared.pdf")
    assert len(loaded.text) <= 100 * len(data) + 2 * 5000 and seconds < 20 and loaded.notices


def test_nested_flate_bomb_is_refused_before_parsing(extractor):
    data = hostile_pdf(pages=1, lines=600_000, layers=2)
    assert len(data) < 2_000
    with pytest.raises(ExpansionLimitError, match=r"inflates past max_pdf_stream_bytes=16,777,216 \(2 Flate layer"):
        cpu_seconds(load_bytes, data, "nested.pdf")


def test_real_sized_pdf_reads_whole_and_silent(extractor):
    loaded = load_bytes(make_pdf([f"Line {i} of a perfectly ordinary note." for i in range(40)]), "ok.pdf")
    assert loaded.notices == [] and "Line 39 of a perfectly ordinary note." in loaded.text


def test_broken_pdfs_are_corrupt_file_errors(extractor):
    for data in (b"%PDF-1.4\n1 0 obj garbage", b"%PDF-" + bytes(range(256)) * 10, make_pdf(["x"])[:200]):
        with pytest.raises(CorruptFileError):
            load_bytes(data, "broken.pdf")


# HTML ------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"<![<![", b"<!", b"</", b"<", b"&#" + b"9" * 5000 + b";", b"<a href='x", b"<!--", b"<?x", b"<![CDATA[x"])
def test_hostile_html_never_raises(data):
    loaded = load_bytes(data, "x.html")
    assert isinstance(loaded, Loaded) and loaded.text.endswith("\n")


def test_html_structure_and_recovery():
    page = (b"<html><head><title>T &amp; U</title><meta charset=utf-8><body><h2 class=x>Head</h2>"
            b"<p>one  <b>two</b>\n three</p><pre>\n  code\n    indented</pre><ul><li>a<li>b</ul>"
            b"<script>var x = '<p>';</script><p a=\">\">after &lt;tag&gt;</p></body></html>")
    loaded = load_bytes(page, "p.html")
    assert loaded.title == "T & U" and loaded.notices == []
    assert loaded.text == "## Head\n\none two three\n\n```\n  code\n    indented\n```\n\n- a\n- b\n\nafter <tag>\n"


@pytest.mark.parametrize("page,needle,kept", [
    (b"<p>before</p><script>never closed", "<script> at offset 13 is never closed", "before"),
    (b"<p>before</p><svg><text>hidden", "<svg> is never closed: the 6 characters", "before"),
    (b"<p>before</p><a href=\"x>after", "the tag at offset 13 is never closed", "<a href=\"x>after"),
])
def test_html_cuts_are_said(page, needle, kept):
    loaded = load_bytes(page, "p.html")
    assert any(needle in n for n in loaded.notices), loaded.notices
    assert kept in loaded.text


TAGS = st.sampled_from(["<p>", "</p>", "<pre>", "</pre>", "<h1>", "<li>", "<br/>", "<!--", "-->", "<script>", "</script>",
                        "<svg>", "</svg>", "<head>", "<body>", "<title>", "</title>", "<![CDATA[", "]]>", "<!", "<?", "</",
                        "<a href=\"", "'", "\"", ">", "<", "&", "&#", "&amp;", "&#x1F600;", "=", " ", "\n", "\t", "\r"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(TAGS, st.text(max_size=8)), max_size=40))
def test_html_fuzz_tag_soup(pieces):
    _only_loaded_or_ingest_error("".join(pieces).encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_html_fuzz_bytes(data):
    _only_loaded_or_ingest_error(data)


FRONT = st.sampled_from(["---\n", "...\n", "tags: ", "title: ", "&a ", "*a", "[", "]", "{", "}", ", ", "- ", "\n", "  ", ": ", "'", '"',
                          "!!str ", "!!python/name:os.system ", "# ", "<<: ", "? ", "|\n", "1e400", "~"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(FRONT, st.text(max_size=6)), max_size=40))
def test_markdown_fuzz_front_matter(pieces):
    data = ("---\n" + "".join(pieces) + "\n---\n" + BODY).encode("utf-8", "surrogatepass")
    try:
        loaded = load_bytes(data, "fuzz.md")
    except IngestError:
        return
    assert loaded.text.endswith(BODY) and all(isinstance(t, str) and t for t in loaded.tags)


def _only_loaded_or_ingest_error(data: bytes) -> None:
    try:
        loaded = load_bytes(data, "fuzz.html")
    except IngestError:
        return
    assert isinstance(loaded, Loaded) and isinstance(loaded.title, str) and loaded.text.endswith("\n")


def test_a_nul_byte_anywhere_makes_a_file_binary():
    """One rule for files and JSON text: a NUL past the first 8 KB is refused too."""
    with pytest.raises(UnsupportedFileError, match="NUL byte at offset 20000"):
        load_bytes(b"a" * 20000 + b"\x00 tail", "late.md")


def test_a_million_blanks_are_shortened_and_said_so_the_note_chunks():
    """tiktoken fails on a run of ~1 MB of blanks (its pre-tokenizer's stack, or a
    panic that passes `except Exception`): such runs are shortened, with a notice."""
    import chunkers

    data = ("# Note\n\nbefore" + " " * 600_000 + "\t" * 500_000 + "after\n\nend " + "\u3000" * 200_001 + "x\n").encode()
    loaded = load_bytes(data, "blank.md")
    assert "2 run(s) of blanks longer than 100,000 characters (the longest 1,100,000)" in loaded.notices[-1]
    assert "max_blank_run" in loaded.notices[-1]
    assert loaded.text.startswith("# Note\n\nbefore" + " " * 100_000 + "after\n\nend " + "\u3000" * 99_999 + "x")  # the run began at the space
    chunks = chunkers.get("hybrid", max_tokens=256, overlap=32)(loaded.text)
    assert "after" in "".join(c.text for c in chunks)
    assert load_bytes(b"a" + b" " * 100_000 + b"b", "ok.txt").notices == []
