"""hybrid's ``min_section_tokens``: tiny heading sections joined with the ones after them."""

import pytest

import chunkers
from chunkers import InvalidParameterError
from tests.invariants import check_chunks

# one short paragraph per option, as in a man page
DESCRIPTION = "\n\n       ".join(f"-{chr(97 + i)}  The listing shows entry {i} with its size, owner and time of last change."
                                  for i in range(12))
MANPAGE = f"""ls
===

Name
----
       ls - list directory contents

Synopsis
--------
       ls [OPTION]... [FILE]...

Description
-----------
       {DESCRIPTION}

See also
--------
       dir(1)
"""


def headings_of(chunks):
    return [c.meta["headings"] for c in chunks]


def test_without_it_every_section_is_its_own_chunk():
    chunks = chunkers.get("hybrid", max_tokens=256, overlap=32)(MANPAGE)
    assert headings_of(chunks)[:3] == [["ls"], ["ls", "Name"], ["ls", "Synopsis"]]
    assert chunks[1].text == "Name\n----\n       ls - list directory contents"  # a heading and a line
    assert headings_of(chunks)[3:-1] == [["ls", "Description"]] * (len(chunks) - 4)
    assert chunks[-1].text == "See also\n--------\n       dir(1)"
    assert chunks == chunkers.get("hybrid", max_tokens=256, overlap=32, min_section_tokens=0)(MANPAGE)


def test_tiny_sections_join_the_sections_after_them():
    chunker = chunkers.get("hybrid", max_tokens=256, overlap=32, min_section_tokens=32)
    chunks = chunker(MANPAGE)
    check_chunks(MANPAGE, chunks, chunker)
    first = chunks[0]
    assert first.start == 0 and first.meta["headings"] == ["ls"]  # the path where the chunk starts
    assert "Name\n----" in first.text and "Synopsis\n--------" in first.text
    assert all(c.token_count >= 32 for c in chunks)  # no chunk is a heading and a line
    # nothing follows the tiny "See also": it goes to the end of the join before it
    assert chunks[-1].text.endswith("See also\n--------\n       dir(1)") and not chunks[-1].text.startswith("See also")


def test_a_tiny_section_starts_the_first_chunk_of_a_long_next_one():
    text = MANPAGE.replace(DESCRIPTION, "\n\n       ".join([DESCRIPTION] * 3))
    chunker = chunkers.get("hybrid", max_tokens=128, overlap=16, min_section_tokens=48)
    chunks = chunker(text)
    check_chunks(text, chunks, chunker)
    assert len(chunks) > 3
    first = chunks[0]
    assert first.meta["headings"] == ["ls"] and "Synopsis" in first.text and "Description\n-----------" in first.text
    assert "entry 0 " in first.text  # the description's first paragraphs come with the headings
    # later chunks carry the heading path where they start
    assert all(c.meta["headings"] == ["ls", "Description"] for c in chunks[1:])
    assert "See also" not in chunks[-1].text[:20] and chunks[-1].text.endswith("dir(1)")


def test_a_join_never_crosses_to_a_shallower_heading():
    text = "## Usage\n\nRun it.\n\n# Install\n\nPip installs it.\n\n### Extras\n\nOptional parts."
    chunker = chunkers.get("hybrid", max_tokens=128, overlap=0, min_section_tokens=100)
    chunks = chunker(text)
    check_chunks(text, chunks, chunker)
    # "Usage" (level 2) stops before "Install" (level 1); "Install" takes in its deeper "Extras"
    assert [c.text for c in chunks] == ["## Usage\n\nRun it.", "# Install\n\nPip installs it.\n\n### Extras\n\nOptional parts."]
    assert headings_of(chunks) == [["Usage"], ["Install"]]


def test_same_level_sections_join_and_text_before_the_first_heading_takes_any():
    text = "A preface line.\n\n# One\n\nfirst.\n\n# Two\n\nsecond."
    chunker = chunkers.get("hybrid", max_tokens=64, overlap=0, min_section_tokens=64)
    chunks = chunker(text)
    check_chunks(text, chunks, chunker)
    assert [(c.start, c.end) for c in chunks] == [(0, len(text))] and chunks[0].meta["headings"] == []


def test_a_join_over_the_budget_is_split_like_a_section():
    sections = "\n\n".join(f"## Part {i}\n\n" + "word " * 6 for i in range(8))  # ~11 tokens each
    chunker = chunkers.get("hybrid", max_tokens=40, overlap=8, min_section_tokens=40)
    chunks = chunker(sections)
    check_chunks(sections, chunks, chunker)  # every chunk within max_tokens, offsets exact
    assert len(chunks) < 8  # sections joined


@pytest.mark.parametrize("bad", [-1, 1.5, "32", True, None, 257])
def test_bad_values_are_refused_with_the_value(bad):
    with pytest.raises(InvalidParameterError, match="min_section_tokens"):
        chunkers.get("hybrid", max_tokens=256, overlap=32, min_section_tokens=bad)


def test_it_is_a_recorded_parameter():
    chunker = chunkers.get("hybrid", max_tokens=256, overlap=32, min_section_tokens=48)
    assert chunker.params()["min_section_tokens"] == 48
    assert chunkers.get("hybrid").params()["min_section_tokens"] == 0
