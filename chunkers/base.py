"""The chunker interface: implement ``chunk(text)``; the rest is derived."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable

from .chunk import Chunk
from .concurrency import DEFAULT_THREADS, check_threads, chunk_in_processes
from .errors import InvalidParameterError
from .tokenizers import TokenCounter, get_tokenizer


def check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    return text


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise InvalidParameterError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise InvalidParameterError(f"{name} must be <= {high}, got {value!r}")
    return value


class Chunker(ABC):
    """Splits a text into ``Chunk`` objects with exact offsets.

    Subclasses implement ``chunk``; calling the chunker, ``chunk_batch`` and the
    parameter record come from here. ``name`` is set by ``@register``.
    """

    name: ClassVar[str] = "?"

    def __init__(self, *, max_tokens: int = 512, overlap: int = 0, tokenizer: Any = "cl100k_base",
                 threads: int = DEFAULT_THREADS) -> None:
        self.max_tokens = check_int("max_tokens", max_tokens, low=1)
        self.overlap = check_int("overlap", overlap, low=0)
        if self.overlap >= self.max_tokens:
            raise InvalidParameterError(f"overlap must be < max_tokens ({self.max_tokens}), got {overlap!r}")
        self.threads = check_threads(threads)  # encoding threads per text, see ``concurrency``
        self.tokenizer_spec = tokenizer
        self.tokenizer: TokenCounter = get_tokenizer(tokenizer, threads=self.threads)

    @abstractmethod
    def chunk(self, text: str) -> list[Chunk]:
        """Split ``text``; empty or whitespace-only text gives ``[]``."""

    def __call__(self, text: str) -> list[Chunk]:
        return self.chunk(check_text(text))

    def params(self) -> dict[str, Any]:
        """The parameters this chunker was built with (JSON-friendly); ``threads``
        is left out: it changes how fast chunks come, never which."""
        out = {name: getattr(self, name) for name in self._param_names() if name not in ("tokenizer", "threads")}
        spec = self.tokenizer_spec
        out["tokenizer"] = spec if isinstance(spec, str) else self.tokenizer.name
        return out

    @classmethod
    def _param_names(cls) -> set[str]:
        from .registry import parameters

        return set(parameters(cls))

    def chunk_batch(self, texts: Iterable[str], *, workers: int | None = None, threads: int | None = None) -> list[list[Chunk]]:
        """Chunk many texts. With ``workers`` > 1 the texts are spread over that
        many processes, each rebuilding this chunker by name with ``threads=1``
        (default: the CPU count when the batch is over ~2 MB and the chunker can
        be rebuilt by name; else 1). In this process, ``threads`` encoding
        threads per text (default: the chunker's own)."""
        texts = [check_text(t) for t in texts]
        if threads is not None and check_threads(threads) != self.threads and self._rebuild_spec() is not None:
            from .registry import get

            return get(self.name, **{**self.params(), "threads": threads}).chunk_batch(texts, workers=workers)
        if workers is None:
            big = sum(map(len, texts)) > 2_000_000 and len(texts) > 1
            workers = min(len(texts), os.cpu_count() or 1) if big else 1
        check_int("workers", workers, low=1)
        spec = self._rebuild_spec()
        if workers <= 1 or spec is None:
            return [self.chunk(t) for t in texts]
        return chunk_in_processes(*spec, texts, workers)

    def _rebuild_spec(self) -> tuple[str, dict[str, Any]] | None:
        params = self.params()
        if not isinstance(self.tokenizer_spec, str) or any(callable(v) for v in params.values()):
            return None  # a callable argument may not survive the trip to a process
        return self.name, params

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params().items()))
        return f"{type(self).__name__}({args})"
