"""Exact CLIP token counts, as Stable Diffusion's text encoder sees the text.

77 positions = start token + 75 content tokens + end token. Counts here are
content tokens: the text after open_clip's cleaning, without start/end. Learned
tokens (textual inversion, e.g. ``<cat-toy>``) count as one token each once
registered, as they do after the embedding is loaded into the pipeline.
"""

from __future__ import annotations

import copy
import functools
from typing import Iterable

from chunkers.tokenizers import clip_clean, clip_tokenizer

CONTEXT = 77
CONTENT_TOKENS = CONTEXT - 2


@functools.lru_cache(maxsize=16)
def tokenizer_with(added_tokens: tuple[str, ...] = ()):
    base = clip_tokenizer()
    if not added_tokens:
        return base
    tok = copy.deepcopy(base)
    tok.add_tokens(list(added_tokens))
    return tok


class ClipCounter:
    def __init__(self, added_tokens: Iterable[str] = ()) -> None:
        self.added_tokens = tuple(sorted(set(added_tokens)))
        self.tokenizer = tokenizer_with(self.added_tokens)
        self._cache: dict[str, int] = {}

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(clip_clean(text), add_special_tokens=False)["input_ids"]

    def __call__(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            n = len(self.ids(text))
            if len(self._cache) < 100_000:
                self._cache[text] = n
        return n
