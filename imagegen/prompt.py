"""The prompt builder: a user's idea plus what their notes say, written as a
Stable Diffusion prompt that fits CLIP's window, and a negative prompt.

1. The idea (and style) are parsed for emphasis and split into phrases at commas;
   the first idea phrase is the subject. Filler ("please", "an image of") goes.
2. Notes passages relevant to the idea and style are retrieved; candidate phrases
   are taken from them (parenthesised lists, comma lists, bullet items, quoted or
   backticked prompt examples), each keeping its exact source span, and sorted into
   sections by vocabulary: style/medium, lighting, camera, composition, quality,
   negative. The most relevant of each section (embedding similarity to the idea)
   join the draft.
3. The draft is ordered as the notes teach: subject, style/medium, details,
   lighting, camera, composition, quality. Exact and near duplicates are removed.
4. Compression: while the text the model sees is over ``budget`` CLIP tokens,
   the phrase with the lowest importance per sqrt(token cost) goes (importance =
   section priority + 6 x relevance to the whole idea - position); the subject and
   phrases the user emphasised are never dropped.
   Dropped phrases that fit again afterwards come back. Every phrase left out is
   reported in ``dropped``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from runtime import CONTENT_TOKENS, ClipCounter

from .emphasis import Piece, format_piece, parse
from .errors import PromptError

SECTIONS = ("subject", "style", "details", "lighting", "camera", "composition", "quality")
# Section vocabularies decide what a phrase in the notes is; "descriptor" marks the
# description of a bullet term (e.g. the "soft edges" of "- watercolor: soft edges").
# How much a phrase of each origin matters when the draft must shrink.
PRIORITY = {"subject": 100.0, "user_style": 3.0, "details": 2.5, "style": 1.4, "lighting": 1.2, "camera": 1.1, "composition": 1.0, "quality": 0.6}
PER_SECTION = {"style": 2, "lighting": 2, "camera": 2, "composition": 1, "quality": 3}
MIN_RELEVANCE = {"style": 0.3, "lighting": 0.12, "camera": 0.12, "composition": 0.12, "quality": -1.0}
DEFAULT_QUALITY = ["highly detailed", "sharp focus"]
DEFAULT_NEGATIVE = ["lowres", "blurry", "bad anatomy", "extra fingers", "deformed", "watermark", "text", "jpeg artifacts"]

_VOCAB = {
    "negative": r"deformed|bad anatomy|bad hands|extra (?:fingers|limbs|arms|legs)|missing fingers|blurry|lowres|low quality|worst quality|"
                r"watermark|signature|jpeg artifacts|mutated|disfigured|cropped|out of frame|duplicate|ugly|poorly drawn|username|error",
    "lighting": r"\blight(?:ing|s)?\b|\blit\b|golden hour|blue hour|sunset|sunrise|shadows?|softbox|rim light|backlit|backlight|volumetric|neon|glow|"
                r"chiaroscuro|ambient|moody|dramatic light|overcast|studio light(?:ing)?",
    "camera": r"\d+\s?mm\b|\blens\b|f/\d|aperture|depth of field|bokeh|dslr|exposure|macro|telephoto|wide[- ]angle|film grain|\biso\b|shutter|"
              r"\bshot\b|\bcamera\b",
    "composition": r"composition|rule of thirds|centered|symmetr|framing|close-up|closeup|wide shot|full body|portrait orientation|overhead|"
                   r"bird's[- ]eye|low angle|high angle|from above|from below|negative space|leading lines",
    "quality": r"masterpiece|best quality|high quality|highly detailed|\bdetailed\b|sharp focus|\b[48]k\b|\buhd\b|\bhdr\b|award[- ]winning|"
               r"intricate|trending on artstation|professional",
    "style": r"watercolou?r|oil painting|\bpainting\b|illustration|digital art|concept art|anime|ghibli|cyberpunk|isometric|3d render|"
             r"\brender\b|sketch|pencil|\bink\b|photorealistic|pixel art|art nouveau|impressionis|\bstyle\b|vaporwave|low poly|cel[- ]shad|"
             r"\bphoto(?:graph)?\b|cinematic|surreal|minimalis",
}
_VOCAB_RE = {name: re.compile(pattern, re.I) for name, pattern in _VOCAB.items()}
_FILLER_LEAD = re.compile(r"^(?:(?:please|pls|can you|could you|i want|i'd like|i would like|generate|create|make|draw|render|show)\b[\s,]*)+"
                          r"(?:(?:me|us)\s+)?(?:(?:an?|the)\s+)?(?:(?:image|picture|pic|illustration)\s+of\s+)?", re.I)
_FILLER_WORDS = re.compile(r"\b(?:very|really|super|extremely|quite|kind of|sort of)\s+", re.I)
_PHRASE_SPLIT = re.compile(r"[,;，、]")
_WORDY = re.compile(r"\w", re.UNICODE)


@dataclass
class Phrase:
    text: str
    weight: float = 1.0
    section: str = "details"
    origin: str = "idea"  # idea | style | notes | default
    relevance: float = 0.0
    position: int = 0
    protected: bool = False
    source: str | None = None
    start: int | None = None
    end: int | None = None
    describes: str | None = None  # for a descriptor: the term it describes
    break_after: bool = False  # the user wrote BREAK after this phrase

    def formatted(self) -> str:
        return format_piece(self.text, self.weight)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and k not in ("position", "break_after")}


@dataclass
class PromptResult:
    prompt: str
    negative_prompt: str
    prompt_plain: str
    negative_plain: str
    tokens: dict[str, int]
    budget: int
    dropped: list[str]
    negative_dropped: list[str]
    phrases: list[Phrase]
    negative_phrases: list[Phrase]
    context: list[dict[str, Any]]
    chunks: list[str] | None = None
    chunk_tokens: list[int] | None = None
    negative_chunks: list[str] | None = None

    @property
    def weights(self) -> list[dict[str, Any]]:
        return [{"text": p.text, "weight": p.weight} for p in self.phrases]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "prompt_plain": self.prompt_plain,
            "negative_plain": self.negative_plain,
            "tokens": self.tokens,
            "budget": self.budget,
            "dropped": self.dropped,
            "negative_dropped": self.negative_dropped,
            "weights": self.weights,
            "phrases": [p.to_dict() for p in self.phrases],
            "context": self.context,
        }
        if self.chunks is not None:
            out.update(chunks=self.chunks, chunk_tokens=self.chunk_tokens, negative_chunks=self.negative_chunks)
        return out


@dataclass
class Passage:
    """A piece of notes the builder may take phrases from (``start`` is its offset in the document)."""

    text: str
    source: str = "notes"
    start: int = 0

    @property
    def end(self) -> int:
        return self.start + len(self.text)


# --- parsing the user's words ---------------------------------------------------


def _user_phrases(text: str, origin: str, first_is_subject: bool) -> list[Phrase]:
    """Split ``text`` into weighted phrases at commas; BREAK ends a phrase."""
    pieces = parse(text)
    phrases: list[Phrase] = []
    current: list[tuple[str, float]] = []

    def close() -> None:
        words = "".join(t for t, _ in current).strip()
        if _WORDY.search(words):
            weights = {w for t, w in current if t.strip()}
            weight = max(weights, key=lambda w: abs(w - 1.0)) if weights else 1.0
            phrases.append(Phrase(re.sub(r"\s+", " ", words), weight, "details", origin, protected=abs(weight - 1.0) > 1e-6))
        current.clear()

    for piece in pieces:
        if not isinstance(piece, Piece):
            close()
            if phrases:
                phrases[-1].break_after = True
            continue
        parts = _PHRASE_SPLIT.split(piece.text)
        for i, part in enumerate(parts):
            if i:
                close()
            current.append((part, piece.weight))
    close()
    for p in phrases:
        if p.weight == 1.0:
            p.text = _FILLER_WORDS.sub("", p.text).strip()
    if phrases and first_is_subject:
        phrases[0].text = _FILLER_LEAD.sub("", phrases[0].text).strip() or phrases[0].text
        phrases[0].section = "subject"
        phrases[0].protected = True
    return [p for p in phrases if _WORDY.search(p.text)]


# --- phrases from notes ---------------------------------------------------------------

_PAREN_LIST = re.compile(r"\(([^()\n]{3,240}(?:,[^()\n]*)+)\)")
_QUOTED = re.compile(r"[\"“`]([^\"”`\n]{3,300},[^\"”`\n]*)[\"”`]")
_COLON_LIST = re.compile(r"^(?![ \t]*[-*+][ \t])[^\n:]{0,80}:[ \t]+([^\n:.]{3,300}(?:,[^\n:.]*){2,})", re.M)
_LIST_LINE = re.compile(r"^[ \t]*([^\n.:!?#*\-][^\n.:!?]{2,300}(?:,[^\n.:!?]*){2,})[ \t]*$", re.M)
_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+\**([^\n:*]{2,60}?)\**(?:[ \t]*:[ \t]*([^\n]*))?$", re.M)
_EDGE = " \t*_`\"“”'.!?"


def _classify(text: str) -> str | None:
    """The section whose vocabulary covers at least 30% of the phrase."""
    for section in ("negative", "quality", "lighting", "camera", "composition", "style"):
        covered = sum(len(m.group(0)) for m in _VOCAB_RE[section].finditer(text))
        if covered and covered >= 0.3 * len(text):
            return section
    return None


def _items(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Comma-separated items of ``text[a:b]`` as trimmed spans."""
    spans = []
    for m in re.finditer(r"[^,;]+", text[a:b]):
        s, e = a + m.start(), a + m.end()
        while s < e and text[s] in _EDGE:
            s += 1
        while e > s and text[e - 1] in _EDGE:
            e -= 1
        if s < e:
            spans.append((s, e))
    return spans


def _candidate(text: str, s: int, e: int, passage: "Passage", describes: str | None = None) -> Phrase | None:
    phrase = text[s:e]
    if not 1 <= len(phrase.split()) <= 5 or re.search(r"[:=(){}\[\]|]|https?:", phrase):
        return None
    section = "descriptor" if describes else _classify(phrase)
    if section is None:
        return None
    p = Phrase(phrase, 1.0, section, "notes", source=passage.source, start=passage.start + s, end=passage.start + e)
    p.describes = describes
    return p


def extract_phrases(passage: Passage) -> list[Phrase]:
    """Candidate prompt phrases in a notes passage, with exact document offsets.

    From bullet items ``- term: description`` the term is the phrase and the
    description's items become its descriptors (used to expand a style the user
    asked for); also the items of parenthesised lists, quoted prompt examples and
    comma lists after a colon."""
    text = passage.text
    found: dict[tuple[int, int], Phrase] = {}

    def add(p: Phrase | None) -> None:
        if p is not None:
            found.setdefault((p.start, p.end, p.section), p)

    for m in _BULLET.finditer(text):
        s, e = m.span(1)
        terms = _items(text, s, e)
        for ts, te in terms:
            add(_candidate(text, ts, te, passage))
        if m.group(2) and len(terms) == 1:
            term = text[terms[0][0] : terms[0][1]]
            for ds, de in _items(text, *m.span(2)):
                add(_candidate(text, ds, de, passage, describes=term))
    for pattern in (_PAREN_LIST, _QUOTED, _COLON_LIST, _LIST_LINE):
        for m in pattern.finditer(text):
            for s, e in _items(text, *m.span(1)):
                add(_candidate(text, s, e, passage))
    return [found[k] for k in sorted(found)]


# --- dedup and compression --------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"[^\w<>\- ]+", "", text.casefold()).strip()


def _near_duplicate(a: str, b: str, *, exact: bool = False) -> bool:
    na, nb = _norm(a), _norm(b)
    if exact or not na or not nb:
        return na == nb
    if na == nb or re.search(rf"(?:^| ){re.escape(na)}(?: |$)", nb) or re.search(rf"(?:^| ){re.escape(nb)}(?: |$)", na):
        return True
    wa, wb = set(na.split()), set(nb.split())
    return len(wa & wb) / len(wa | wb) >= 0.8


def dedupe(phrases: Iterable[Phrase]) -> list[Phrase]:
    """Keep the first of every group of duplicates, by draft order. The user's own
    phrases are only compared exactly with each other (they are meant); anything
    from the notes or defaults also goes when it is contained in, or shares 80% of
    its words with, a phrase already kept."""
    kept: list[Phrase] = []
    user = ("idea", "style")
    for p in phrases:
        if any(_near_duplicate(p.text, k.text, exact=p.origin in user and k.origin in user) for k in kept):
            continue
        kept.append(p)
    return kept


def join_plain(phrases: Sequence[Phrase]) -> str:
    return ", ".join(p.text for p in phrases)


def join_formatted(phrases: Sequence[Phrase]) -> str:
    return ", ".join(p.formatted() for p in phrases)


RELEVANCE_WEIGHT = 6.0  # chosen on bench/prompt_bench.py's drafts (see README)


def importance(p: Phrase) -> float:
    key = "user_style" if p.origin == "style" else ("details" if p.origin == "idea" and p.section == "details" else p.section)
    return PRIORITY.get(key, 1.0) + RELEVANCE_WEIGHT * p.relevance - 0.01 * p.position


def compress(phrases: list[Phrase], budget: int, count: Callable[[str], int]) -> tuple[list[Phrase], list[Phrase]]:
    """Drop unprotected phrases until the text fits, lowest importance per
    sqrt(token cost) first (a long phrase of middling value goes before several
    short ones); then put back dropped phrases, most important first, that fit."""
    kept = list(phrases)
    dropped: list[Phrase] = []
    while count(join_plain(kept)) > budget:
        candidates = [p for p in kept if not p.protected]
        if not candidates:
            protected = join_plain(kept)
            raise PromptError(
                f"the subject and the emphasised phrases alone are {count(protected)} CLIP tokens, over the budget of "
                f"{budget}: shorten them ({protected[:120]!r})"
            )
        victim = min(candidates, key=lambda p: (importance(p) / (count(p.text) + 1) ** 0.5, -p.position))
        kept.remove(victim)
        dropped.append(victim)
    for p in sorted(dropped, key=lambda p: -importance(p)):
        trial = sorted(kept + [p], key=lambda q: q.position)
        if count(join_plain(trial)) <= budget:
            kept = trial
            dropped.remove(p)
    dropped.sort(key=lambda p: p.position)
    return kept, dropped


def split_chunks(phrases: list[Phrase], breaks: set[int], budget: int, count: Callable[[str], int]) -> list[list[Phrase]]:
    """Group phrases into chunks of at most ``budget`` tokens at phrase boundaries
    (a new chunk also starts after each index in ``breaks``)."""
    chunks: list[list[Phrase]] = [[]]
    for i, p in enumerate(phrases):
        if count(p.text) > budget:
            raise PromptError(f"phrase {p.text[:60]!r} alone is {count(p.text)} CLIP tokens, over the chunk budget of {budget}")
        if chunks[-1] and count(join_plain(chunks[-1] + [p])) > budget:
            chunks.append([])
        chunks[-1].append(p)
        if i in breaks and i != len(phrases) - 1:
            chunks.append([])
    return [c for c in chunks if c]


# --- the builder ---------------------------------------------------------------------------


class PromptBuilder:
    """Builds prompts; holds caches so warm calls are fast. ``notebook`` gives
    retrieval (any object with ``search(query, k)`` returning hits with ``text``,
    ``source``, ``start``); ``embed`` scores relevance (defaults to the notebook's)."""

    def __init__(self, notebook=None, *, embed: Callable[[Sequence[str]], np.ndarray] | None = None,
                 added_tokens: Iterable[str] = ()) -> None:
        self.notebook = notebook
        self._embed = embed
        self.counter = ClipCounter(added_tokens)
        self._vectors: dict[str, np.ndarray] = {}
        self._extracted: dict[tuple[str, int, str], list[Phrase]] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            fn = self._embed or (self.notebook.embed if self.notebook is not None else None)
            if fn is None:
                from runtime import get_embedder

                fn = self._embed = get_embedder()
            vectors = np.asarray(fn(missing), dtype=np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            if len(self._vectors) > 50_000:
                self._vectors.clear()
            self._vectors.update(zip(missing, vectors))
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)

    def retrieve(self, query: str, k: int) -> list[Passage]:
        if self.notebook is None or k == 0:
            return []
        try:
            hits = self.notebook.search(query, k=k)
        except LookupError:
            return []
        return [Passage(h.text, h.source, h.start) for h in hits]

    def _phrases_from(self, passages: Sequence[Passage]) -> list[Phrase]:
        out = []
        for passage in passages:
            key = (passage.source, passage.start, passage.text)
            if key not in self._extracted:
                self._extracted[key] = extract_phrases(passage)
            out += [Phrase(**asdict(p)) for p in self._extracted[key]]
        return out

    def build(self, idea: str, *, style: str | None = None, k: int = 5, budget: int = CONTENT_TOKENS, negative: bool = True,
              long: bool = False, passages: Sequence[Passage] | None = None, negative_budget: int = CONTENT_TOKENS) -> PromptResult:
        idea_phrases = self._check(idea, style, k, budget, negative_budget)
        style_phrases = _user_phrases(style, "style", first_is_subject=False) if style else []
        for p in style_phrases:
            p.section = "style"
        query = ", ".join([idea] + ([style] if style else []))
        if passages is None:
            passages = self.retrieve(re.sub(r"[()\[\]]|:\d+(?:\.\d+)?", " ", query), k)
        candidates = self._phrases_from(passages)
        positive_candidates = [p for p in candidates if p.section != "negative"]
        chosen = self._choose(query, positive_candidates, style_phrases)
        if not any(p.section == "quality" for p in chosen):
            chosen += [Phrase(t, section="quality", origin="default") for t in DEFAULT_QUALITY]
        order = {s: i for i, s in enumerate(SECTIONS)}
        subject, details = idea_phrases[:1], idea_phrases[1:]
        styled = [p for p in chosen if p.section == "style"]  # the named style's own descriptors
        rest = sorted((p for p in chosen if p.section != "style"), key=lambda p: (order[p.section], -p.relevance))
        draft = subject + style_phrases + styled + details + rest
        draft = dedupe(draft)
        for i, p in enumerate(draft):
            p.position = i
        if not long and self.counter(join_plain(draft)) > budget:  # relevance only matters when something must go
            self._score_relevance(query, [p for p in draft if not p.protected and p.origin != "notes"])
        user_breaks = {i for i, p in enumerate(draft) if p.break_after and p.origin == "idea"}  # new chunks in long mode
        count = self.counter
        if long:
            groups = split_chunks(draft, user_breaks, budget, count)
            kept, dropped = draft, []
        else:
            kept, dropped = compress(draft, budget, count)
            groups = None
        neg_kept, neg_dropped = ([], [])
        if negative:
            negative_candidates = [p for p in candidates if p.section == "negative"]
            if self.notebook is not None and not negative_candidates:
                negative_candidates = [p for p in self._phrases_from(self.retrieve("negative prompt bad anatomy deformed", k))
                                       if p.section == "negative"]
            neg_draft = dedupe(negative_candidates + [Phrase(t, section="negative", origin="default") for t in DEFAULT_NEGATIVE])
            for i, p in enumerate(neg_draft):
                p.position = i
                p.relevance = 1.0 if p.origin == "notes" else 0.0
            if long:
                neg_kept, neg_dropped = neg_draft, []
            else:
                neg_kept, neg_dropped = compress(neg_draft, negative_budget, count)
        used = {(p.source, p.start) for p in kept + neg_kept if p.origin == "notes"}
        context = [
            {"source": ps.source, "start": ps.start, "end": ps.end, "text": ps.text}
            for ps in passages if any(src == ps.source and ps.start <= (st or -1) < ps.end for src, st in used)
        ]
        result = PromptResult(
            prompt=join_formatted(kept), negative_prompt=join_formatted(neg_kept), prompt_plain=join_plain(kept),
            negative_plain=join_plain(neg_kept),
            tokens={"prompt": count(join_plain(kept)), "negative_prompt": count(join_plain(neg_kept))},
            budget=budget, dropped=[p.text for p in dropped], negative_dropped=[p.text for p in neg_dropped],
            phrases=kept, negative_phrases=neg_kept, context=context,
        )
        if groups is not None:
            result.chunks = [join_formatted(g) for g in groups]
            result.chunk_tokens = [count(join_plain(g)) for g in groups]
            neg_groups = split_chunks(neg_kept, set(), budget, count) if neg_kept else []
            result.negative_chunks = [join_formatted(g) for g in neg_groups]
        return result

    def _check(self, idea: Any, style: Any, k: Any, budget: Any, negative_budget: Any) -> list[Phrase]:
        if not isinstance(idea, str):
            raise PromptError(f"idea must be a string, got {type(idea).__name__}")
        if not idea.strip():
            raise PromptError("idea must not be empty")
        if len(idea) > 4000:
            raise PromptError(f"idea is {len(idea)} characters; the limit is 4000")
        if style is not None and not isinstance(style, str):
            raise PromptError(f"style must be a string, got {type(style).__name__}")
        for name, value in (("budget", budget), ("negative_budget", negative_budget)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CONTENT_TOKENS:
                raise PromptError(f"{name} must be an integer from 1 to {CONTENT_TOKENS} (CLIP's 77 minus start and end), got {value!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 50:
            raise PromptError(f"k must be an integer from 0 to 50, got {k!r}")
        phrases = _user_phrases(idea, "idea", first_is_subject=True)
        if not phrases:
            raise PromptError(f"idea has no words: {idea[:80]!r}")
        return phrases

    def _score_relevance(self, query: str, phrases: list[Phrase]) -> None:
        """How central each phrase is to the whole idea (cosine), so compression keeps
        the phrases that carry the idea's meaning."""
        if not phrases:
            return
        anchor = self.embed([query])[0]  # alone: batched with short phrases it would pad them all to its length
        vectors = self.embed([p.text for p in phrases])
        for p, v in zip(phrases, vectors):
            p.relevance = round(float(v @ anchor), 4)

    def _choose(self, query: str, candidates: list[Phrase], styles: Sequence[Phrase]) -> list[Phrase]:
        """The most relevant notes phrases per section. Styles are never added
        (mixing styles muddies the image); a style the user named is expanded with
        its descriptors from the notes ("watercolor: soft edges, paper texture")."""
        chosen = []
        for style in styles:
            chosen += [
                Phrase(**{**asdict(p), "section": "style"}) for p in candidates
                if p.section == "descriptor" and p.describes and _near_duplicate(p.describes, style.text)
            ][: PER_SECTION["style"]]
        unique = dedupe(p for p in candidates if p.section in PER_SECTION and p.section != "style")
        if not unique:
            return chosen
        anchor = self.embed([query])[0]
        vectors = self.embed([p.text for p in unique])
        for p, v in zip(unique, vectors):
            p.relevance = round(float(v @ anchor), 4)
        for section, limit in PER_SECTION.items():
            pool = sorted((p for p in unique if p.section == section and p.relevance >= MIN_RELEVANCE[section]),
                          key=lambda p: (-p.relevance, p.text))
            chosen += pool[:limit]
        return chosen


def build_prompt(idea: str, *, style: str | None = None, k: int = 5, budget: int = CONTENT_TOKENS, negative: bool = True,
                 notebook=None, long: bool = False, passages: Sequence[Passage] | None = None,
                 added_tokens: Iterable[str] = ()) -> PromptResult:
    """One-off build; keep a ``PromptBuilder`` for repeated calls (it caches)."""
    return PromptBuilder(notebook, added_tokens=added_tokens).build(
        idea, style=style, k=k, budget=budget, negative=negative, long=long, passages=passages
    )
