"""The chunker interface: implement ``chunk(text)``; the rest is derived."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor
from typing import Any, ClassVar, Iterable

from .chunk import Chunk
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

    def __init__(self, *, max_tokens: int = 512, overlap: int = 0, tokenizer: Any = "cl100k_base") -> None:
        self.max_tokens = check_int("max_tokens", max_tokens, low=1)
        self.overlap = check_int("overlap", overlap, low=0)
        if self.overlap >= self.max_tokens:
            raise InvalidParameterError(f"overlap must be < max_tokens ({self.max_tokens}), got {overlap!r}")
        self.tokenizer_spec = tokenizer
        self.tokenizer: TokenCounter = get_tokenizer(tokenizer)

    @abstractmethod
    def chunk(self, text: str) -> list[Chunk]:
        """Split ``text``; empty or whitespace-only text gives ``[]``."""

    def __call__(self, text: str) -> list[Chunk]:
        return self.chunk(check_text(text))

    def params(self) -> dict[str, Any]:
        """The parameters this chunker was built with (JSON-friendly)."""
        out = {name: getattr(self, name) for name in self._param_names() if name != "tokenizer"}
        spec = self.tokenizer_spec
        out["tokenizer"] = spec if isinstance(spec, str) else self.tokenizer.name
        return out

    @classmethod
    def _param_names(cls) -> set[str]:
        from .registry import parameters

        return set(parameters(cls))

    def chunk_batch(self, texts: Iterable[str], *, workers: int | None = None) -> list[list[Chunk]]:
        """Chunk many texts. With ``workers`` > 1 (default: the CPU count when the
        batch is over ~2 MB and the chunker can be rebuilt by name in a worker
        process) the texts are spread over processes."""
        texts = [check_text(t) for t in texts]
        if workers is None:
            big = sum(map(len, texts)) > 2_000_000 and len(texts) > 1
            workers = min(len(texts), os.cpu_count() or 1) if big else 1
        spec = self._rebuild_spec()
        if workers <= 1 or spec is None:
            return [self.chunk(t) for t in texts]
        # Largest first, so one big document does not finish last on its own.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        results: list[list[Chunk]] = [[] for _ in texts]
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=spec) as pool:
            chunksize = max(1, len(texts) // (workers * 8))  # few, large messages between processes
            for i, chunks in zip(order, pool.map(_chunk_in_worker, [texts[i] for i in order], chunksize=chunksize)):
                results[i] = chunks
        return results

    def _rebuild_spec(self) -> tuple[str, dict[str, Any]] | None:
        params = self.params()
        if not isinstance(self.tokenizer_spec, str) or any(callable(v) for v in params.values()):
            return None  # a callable argument may not survive the trip to a process
        return self.name, params

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params().items()))
        return f"{type(self).__name__}({args})"


_worker_chunker: Chunker | None = None


def _init_worker(name: str, params: dict[str, Any]) -> None:
    global _worker_chunker
    # One encoding thread per worker: the workers already fill the cores.
    os.environ["NOTELOOM_ENCODE_THREADS"] = "1"
    from .registry import get

    _worker_chunker = get(name, **params)


def _chunk_in_worker(text: str) -> list[Chunk]:
    assert _worker_chunker is not None  # set by the pool initializer
    return _worker_chunker.chunk(text)

