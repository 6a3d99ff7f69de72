"""The built-in chunkers. All but ``semantic`` are configurations of the level
engine: they differ only in their split levels and merge policy."""

from __future__ import annotations

from typing import Any

from .base import check_int
from .engine import LevelChunker
from .errors import InvalidParameterError
from .levels import BLANK_LINES, CLAUSES, HEADINGS, LINES, SENTENCES, WORDS
from .registry import register


@register("fixed")
class FixedChunker(LevelChunker):
    """Equal windows of ``max_tokens`` tokens (or characters, with
    ``tokenizer="chars"``), consecutive windows sharing ``overlap`` tokens.
    Fastest; cuts wherever the window ends, mid-sentence included."""

    levels = ()


@register("sentence")
class SentenceChunker(LevelChunker):
    """Whole sentences (NLTK Punkt, offline), up to ``sentences_per_chunk`` of them
    and within ``max_tokens``; a sentence over budget is split at clauses, then
    words, then token windows. Paragraph breaks always end a sentence."""

    def __init__(self, *, sentences_per_chunk: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        if sentences_per_chunk is not None:
            check_int("sentences_per_chunk", sentences_per_chunk, low=1)
        self.sentences_per_chunk = sentences_per_chunk
        # with a count every sentence matters, so only without one are sentences found lazily
        sentences = SENTENCES.with_(eager=True, max_pieces=sentences_per_chunk, lazy=sentences_per_chunk is None)
        self.levels = (sentences, CLAUSES, WORDS)


@register("paragraph")
class ParagraphChunker(LevelChunker):
    """One paragraph (blank-line separated) per chunk; paragraphs under
    ``min_tokens`` are merged with the next ones (within the budget), paragraphs
    over the budget are split at line breaks, sentences, clauses and words."""

    levels = (BLANK_LINES.with_(eager=True), LINES, SENTENCES, CLAUSES, WORDS)

    def __init__(self, *, min_tokens: int = 64, **common: Any) -> None:
        super().__init__(**common)
        self.min_tokens = check_int("min_tokens", min_tokens, low=0)
        if self.min_tokens > self.max_tokens:
            raise InvalidParameterError(f"min_tokens must be <= max_tokens ({self.max_tokens}), got {min_tokens!r}")


@register("recursive")
class RecursiveChunker(LevelChunker):
    """Largest boundaries first — markdown headings, blank lines, structural line
    breaks, sentence ends, clauses, words, then token windows — recursing only
    into pieces over the budget and merging neighbours up to it. Never cuts inside
    a fenced code block unless the block alone is over budget."""

    levels = (HEADINGS, BLANK_LINES, LINES, SENTENCES, CLAUSES, WORDS)


@register("hybrid")
class HybridChunker(LevelChunker):
    """Sections by heading, then paragraphs, sentences and words merged into
    windows of ``max_tokens`` with ``overlap`` tokens shared between neighbours in
    a section. Sections are never merged with each other, except that with
    ``min_section_tokens`` a section under that many tokens is joined with the
    sections after it (of its heading's level or deeper) until the join reaches
    that size, then split like one section (``engine.Plan.join_sections``), so a
    chunk is not just a heading and a line. Every chunk carries in
    ``meta["headings"]`` the heading path where it starts: for a chunk of joined
    sections, that of its first heading."""

    levels = (HEADINGS.with_(hard=True), BLANK_LINES, SENTENCES, WORDS)

    def __init__(self, *, max_tokens: int = 800, overlap: int = 200, min_section_tokens: int = 0, **common: Any) -> None:
        super().__init__(max_tokens=max_tokens, overlap=overlap, **common)
        self.min_section_tokens = check_int("min_section_tokens", min_section_tokens, low=0, high=self.max_tokens)
        if self.min_section_tokens:
            self.levels = (HEADINGS.with_(hard=True, min_section=self.min_section_tokens), *self.levels[1:])
