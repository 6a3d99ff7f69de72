"""Headings in every form ``chunkers.headings`` reads, and what must stay text."""

from __future__ import annotations

import chunkers
from chunkers.levels import Source
from tests.invariants import check_chunks


def titles(text: str) -> list[tuple[int, str]]:
    return [(level, title) for _, level, title in Source(text).headings]


def test_setext_headings_take_markdown_levels():
    text = "Guide\n=====\n\nIntro.\n\nInstall\n-------\n\nRun it.\n\n### Flags\n\nMore.\n"
    assert titles(text) == [(1, "Guide"), (2, "Install"), (3, "Flags")]
    assert Source(text).headings[1][0] == text.index("Install")


def test_rest_levels_follow_first_appearance_and_overlines():
    text = "=====\n Top\n=====\n\nIntro.\n\nPart\n****\n\ntext\n\nDetail\n~~~~~~\n\nx\n\nOther part\n**********\n\ny\n"
    assert titles(text) == [(1, "Top"), (2, "Part"), (3, "Detail"), (2, "Other part")]
    assert Source(text).headings[0][0] == 0  # the overline starts the section


def test_html_and_bold_headings():
    text = "<h2 id='a'>Set <em>up</em> &amp; go</h2>\nText.\n\n**Caveats**\nDo not run as root.\n"
    assert titles(text) == [(2, "Set up & go"), (10, "Caveats")]


def test_lookalikes_stay_text():
    text = (
        "A paragraph line\nthat wraps\n---\n\n"  # a rule under a two-line paragraph
        "Short\n***\n\n"  # a markdown rule: reST wants the underline as long as the title
        "- item\n------\n\n"  # a list item is no title
        "**Bold sentence ends here.**\nMore.\n\n"  # a bolded sentence is emphasis
        "```\nCode\n====\n```\n"  # inside a fence
        "**Last words**\n"  # nothing follows
    )
    assert titles(text) == []


def test_heading_paths_reach_hybrid_chunks():
    text = "Manual\n======\n\nIntro text here.\n\nUsage\n-----\n\nCall run() with a path.\n"
    chunker = chunkers.get("hybrid", max_tokens=64, overlap=0)
    chunks = chunker(text)
    check_chunks(text, chunks, chunker)
    assert [c.meta["headings"] for c in chunks] == [["Manual"], ["Manual", "Usage"]]


def test_embedded_text_carries_title_and_heading_path():
    from ingest.pipeline import embedding_text

    text = "Options\n-------\n\n-a, --all  do not ignore entries starting with .\n"
    chunk = chunkers.get("hybrid", max_tokens=64, overlap=0)(text)[0]
    assert embedding_text("ls", chunk) == f"ls > Options\n{chunk.text}"
    titled = chunkers.get("hybrid", max_tokens=64, overlap=0)("# ls\n\nList files.\n")[0]
    assert embedding_text("ls", titled) == titled.text  # a chunk opening with its "# " heading is embedded as is
