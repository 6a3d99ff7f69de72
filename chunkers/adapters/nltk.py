"""NLTK Punkt internals that ``FastPunkt`` reads to make Punkt's decisions with
NLTK's own parameters and patterns.

Tested with nltk 3.10 (requirements.lock pins 3.10.4). Private names read:
``PunktSentenceTokenizer._lang_vars`` and ``._params``,
``PunktLanguageVars._word_tokenizer_re``, ``PunktToken._RE_NUMERIC``,
``._RE_INITIAL``, ``._RE_ELLIPSIS``, the ``_ORTHO_*`` flags, and the ``_rx``
pattern inside NLTK 3.10's timed regex wrapper (the wall-clock guard raises
``TimeoutError`` once one call takes 5 s, about 40 MB of text; the patterns are
NLTK's fixed ones, not user input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import check_version

TESTED = ("3.10",)


def _unguarded(pattern):
    """The compiled pattern inside NLTK's timed wrapper."""
    return getattr(pattern, "_rx", pattern)


def _leading_class(pattern: str) -> str:
    """The character class ``pattern`` starts with (``[...]``)."""
    m = re.match(r"\[(?:\\.|[^\\\]])*\]", pattern)
    if m is None:
        raise ValueError(f"NLTK's realignment pattern no longer starts with a character class: {pattern!r}")
    return m.group()


@dataclass(frozen=True)
class PunktParts:
    """What FastPunkt needs from a ``PunktSentenceTokenizer``."""

    params: Any
    sent_end_chars: frozenset
    punctuation: frozenset
    candidates: Any  # period context pattern
    words: Any  # word tokenizer pattern
    realignment: Any
    realignment_start: str  # the character class a realignment match starts with
    numeric: Any
    initial: Any
    ellipsis: Any
    lower_any: int
    upper_any: int
    upper_mid: int
    lower_begin: int


def punkt_parts(tokenizer) -> PunktParts:
    check_version("nltk", TESTED, "sentence splitting")
    from nltk.tokenize import punkt

    lang = tokenizer._lang_vars  # noqa: SLF001 - NLTK exposes no accessors
    token = punkt.PunktToken
    return PunktParts(
        params=tokenizer._params,  # noqa: SLF001
        sent_end_chars=frozenset(lang.sent_end_chars),
        punctuation=frozenset(tokenizer.PUNCTUATION),
        candidates=_unguarded(lang.period_context_re()),
        words=_unguarded(lang._word_tokenizer_re()),  # noqa: SLF001
        realignment=_unguarded(lang.re_boundary_realignment),
        realignment_start=_leading_class(_unguarded(lang.re_boundary_realignment).pattern),
        numeric=_unguarded(token._RE_NUMERIC),  # noqa: SLF001
        initial=_unguarded(token._RE_INITIAL),  # noqa: SLF001
        ellipsis=_unguarded(token._RE_ELLIPSIS),  # noqa: SLF001
        lower_any=punkt._ORTHO_LC,  # noqa: SLF001
        upper_any=punkt._ORTHO_UC,  # noqa: SLF001
        upper_mid=punkt._ORTHO_MID_UC,  # noqa: SLF001
        lower_begin=punkt._ORTHO_BEG_LC,  # noqa: SLF001
    )
