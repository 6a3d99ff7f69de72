"""Answers without an LLM: the best 1-3 sentences of the retrieved passages, each
cited by exact offsets into the stored document text.

Candidate sentences (Punkt spans inside each hit) are pre-ranked by the hit's rank
and word overlap with the question; the best ``MAX_CANDIDATES`` are embedded (with
their heading path) and scored ``0.6 * cos(question, sentence) + 0.25 * cos(question,
chunk) + 0.15 * word overlap``; a sentence is kept when its score reaches
``min_score`` and is within ``SPREAD`` of the best. Below that the answer says the
notes do not cover the question. With an OpenAI-compatible endpoint configured,
a generated answer with numbered citations comes alongside.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import chunkers

from .chat import LLMConfig, generate_answer
from .records import Hit, Record
from .search import Embed, check_k, check_query

MIN_SCORE = 0.30
SPREAD = 0.1
MAX_CANDIDATES = 24
NOT_COVERED = "The notes do not seem to cover this."
_WORD = re.compile(r"[a-z0-9][a-z0-9\-']+")
_MARKUP_ONLY = re.compile(r"^[#>\-*+|`\s\d.)]*$")


Search = Callable[..., list[Hit]]  # search(question, k=k) -> hits, best first


@dataclass(frozen=True)
class Citation(Record):
    """A sentence of the answer: ``text`` is exactly ``document.text[start:end]``."""

    source: str
    doc_id: int
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Answer(Record):
    question: str
    answer: str
    citations: list[Citation]
    covered: bool
    hits: list[Hit] = field(default_factory=list)
    generated: dict[str, Any] | None = None

    def to_dict(self, with_hits: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "question": self.question,
            "answer": self.answer,
            "covered": self.covered,
            "citations": [c.to_dict() for c in self.citations],
        }
        if self.generated is not None:
            out["generated"] = self.generated
        if with_hits:
            out["hits"] = [h.to_dict() for h in self.hits]
        return out


@functools.cache
def _sentences() -> chunkers.Chunker:
    """Sentences as the sentence chunker finds them: Punkt, plus paragraph and
    structural line breaks, so a heading or list item is never glued to a sentence."""
    return chunkers.get("sentence", max_tokens=2000, sentences_per_chunk=1, tokenizer="chars")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def answer_question(search: Search, embed: Embed, question: str, k: int = 5, *, min_score: float = MIN_SCORE,
                    max_sentences: int = 3, llm: LLMConfig | None = None) -> Answer:
    """The best sentences of ``search``'s hits for ``question``; with ``llm``, a generated answer beside."""
    question = check_query(question, "question")
    k = check_k(k)
    hits = search(question, k=k)
    q_words = _words(question)
    candidates: list[tuple[float, Hit, int, int]] = []
    for rank, hit in enumerate(hits):
        for unit in _sentences()(hit.text):
            a, sentence = unit.start, unit.text
            if len(sentence) < 12 or _MARKUP_ONLY.match(sentence) or sentence.startswith("#"):
                continue
            overlap = len(q_words & _words(sentence)) / (1 + len(q_words))
            candidates.append((overlap - 0.05 * rank, hit, hit.start + a, hit.start + a + len(sentence)))
    candidates.sort(key=lambda c: -c[0])
    candidates = candidates[:MAX_CANDIDATES]
    citations: list[Citation] = []
    if candidates:
        texts = [h.text[s - h.start : e - h.start] for _, h, s, e in candidates]
        # A sentence is embedded with its heading path: "Hyperparameters" tells the
        # model that "800 to 1,200 steps" is about DreamBooth.
        contexts = [" > ".join(h.headings[-2:]) for _, h, _, _ in candidates]
        vectors = embed([question, *[f"{c}: {t}" if c else t for c, t in zip(contexts, texts)]])
        similarity = vectors[1:] @ vectors[0]
        chunk_similarity = np.array([h.dense_score if h.dense_score is not None else 0.0 for _, h, _, _ in candidates])
        overlap = np.array([len(q_words & _words(t)) / (1 + len(q_words)) for t in texts])
        scores = 0.6 * similarity + 0.25 * chunk_similarity + 0.15 * overlap
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        if best >= min_score:
            for i in order[:max_sentences]:
                if scores[i] < max(min_score, best - SPREAD):
                    break
                _, hit, s, e = candidates[i]
                citations.append(Citation(hit.source, hit.doc_id, s, e, texts[i], round(float(scores[i]), 4)))
    # Read in document order when several sentences come from one note.
    if citations:
        lead = citations[0].source
        citations.sort(key=lambda c: (c.source != lead, c.source, c.start))
    text = " ".join(c.text for c in citations) if citations else NOT_COVERED
    generated = generate_answer(question, hits, llm) if llm is not None else None
    return Answer(question, text, citations, bool(citations), hits, generated)
