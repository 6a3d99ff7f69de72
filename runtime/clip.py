"""Exact token counts with Hugging Face tokenizers, and the CLIP tokenizer that
Stable Diffusion's text encoder uses, built offline from the BPE vocabulary file
shipped inside open_clip.

77 positions = start token + 75 content tokens + end token. Counts here are
content tokens: the text after open_clip's cleaning, without start/end. Learned
tokens (textual inversion, e.g. ``<cat-toy>``) count as one token each once
registered, as they do after the embedding is loaded into the pipeline.

One ``ClipCounter`` serves chunk budgets (``chunkers.get_tokenizer("clip")``) and
prompt fitting (``imagegen``). Nothing here imports torch.
"""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import html
import importlib.util
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from . import config
from .errors import InvalidSettingError, MissingDependencyError

CLIP_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
CONTEXT = 77
CONTENT_TOKENS = CONTEXT - 2
MEMO_CHARS = 1000  # texts up to this long have their count remembered (prompt phrases are counted again and again)
MEMO_ENTRIES = 100_000


class HFTokenizerCounter:
    """Counts with a ``tokenizers.Tokenizer`` (no special tokens counted), after
    ``clean`` when given; ``token_ends`` gives the token boundaries of raw text."""

    def __init__(self, backend, name: str, clean: Callable[[str], str] | None = None) -> None:
        self.backend = backend
        self.name = name
        self.clean = clean
        self._memo: dict[str, int] = {}

    def ids(self, text: str) -> list[int]:
        if self.clean is not None:
            text = self.clean(text)
        return self.backend.encode(text, add_special_tokens=False).ids

    def count(self, text: str) -> int:
        n = self._memo.get(text)
        if n is None:
            n = len(self.ids(text))
            if len(text) <= MEMO_CHARS and len(self._memo) < MEMO_ENTRIES:
                self._memo[text] = n
        return n

    __call__ = count

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if self.clean is not None:
            texts = [self.clean(t) for t in texts]
        return [len(e.ids) for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def token_ends(self, text: str) -> np.ndarray:
        """Character offsets in ``text`` (uncleaned) where its tokens end, non-decreasing.
        Cleaning can change counts, so these plan cuts and exact counts verify them."""
        offsets = self.backend.encode(text, add_special_tokens=False).offsets
        if not offsets:
            return np.zeros(0, dtype=np.int64)
        return np.maximum.accumulate(np.array([end for _start, end in offsets], dtype=np.int64))

    def __repr__(self) -> str:
        return f"<tokenizer {self.name}>"


def hf_tokenizer_counter(path: str | os.PathLike) -> HFTokenizerCounter:
    """A counter for a local Hugging Face tokenizer folder (never downloads)."""
    folder = Path(path)
    if (folder / "tokenizer.json").is_file():
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError("tokenizers", f"tokenizer folder {str(path)!r}", "semantic") from exc
        return HFTokenizerCounter(Tokenizer.from_file(str(folder / "tokenizer.json")), name=str(folder))
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError("transformers", f"tokenizer folder {str(path)!r}", "semantic") from exc
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise InvalidSettingError(f"tokenizer folder {str(path)!r} has no fast tokenizer (tokenizer.json)")
    return HFTokenizerCounter(backend, name=str(folder))


# --- CLIP ----------------------------------------------------------------------


def clip_vocab_path() -> Path:
    """The CLIP BPE merges file shipped inside open_clip, found without importing it
    (importing open_clip imports torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("open_clip_torch", "the 'clip' tokenizer", "imagegen")
    return Path(spec.submodule_search_locations[0]) / CLIP_VOCAB_FILE


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def clip_clean(text: str) -> str:
    """open_clip's text cleaning: fix mojibake, unescape HTML twice, collapse whitespace."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # pragma: no cover - ftfy comes with open_clip
        pass
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def _folder(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else config.cache_dir()


def clip_tokenizer_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """Write CLIP's vocab.json and merges.txt (derived from open_clip's file) once
    into ``cache_dir`` (None: ``runtime.cache_dir()``), so that
    ``transformers.CLIPTokenizer`` loads them offline; returns their folder."""
    return _write_clip_files(_folder(cache_dir))


@functools.lru_cache(maxsize=4)
def _write_clip_files(cache: Path) -> Path:
    import json
    import tempfile

    source = clip_vocab_path()
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    folder = cache / f"clip-bpe-{digest}"
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return folder
    lines = gzip.open(source, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent))
    (tmp / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}), encoding="utf-8")
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    for name in ("vocab.json", "merges.txt"):
        os.replace(tmp / name, folder / name)  # atomic: concurrent builders agree
    tmp.rmdir()
    return folder


def clip_tokenizer(cache_dir: str | os.PathLike | None = None):
    """``transformers.CLIPTokenizer`` built offline (ids match open_clip after ``clip_clean``)."""
    return tokenizer_with((), cache_dir)


def tokenizer_with(added_tokens: Iterable[str] = (), cache_dir: str | os.PathLike | None = None):
    """The CLIP tokenizer with learned tokens (textual inversion) registered, each one token."""
    return _tokenizer(tuple(sorted(set(added_tokens))), _folder(cache_dir))


@functools.lru_cache(maxsize=16)
def _tokenizer(added_tokens: tuple[str, ...], cache: Path):
    if added_tokens:
        tok = copy.deepcopy(_tokenizer((), cache))
        tok.add_tokens(list(added_tokens))
        return tok
    try:
        from transformers import CLIPTokenizer
    except ImportError as exc:
        raise MissingDependencyError("transformers", "the 'clip' tokenizer", "imagegen") from exc
    return CLIPTokenizer.from_pretrained(str(_write_clip_files(cache)), model_max_length=CONTEXT)


class ClipCounter(HFTokenizerCounter):
    """CLIP content tokens of a text, as Stable Diffusion's text encoder sees it;
    ``added_tokens`` (learned tokens) count as one token each."""

    def __init__(self, added_tokens: Iterable[str] = (), *, cache_dir: str | os.PathLike | None = None) -> None:
        self.added_tokens = tuple(sorted(set(added_tokens)))
        self.tokenizer = tokenizer_with(self.added_tokens, cache_dir)
        super().__init__(self.tokenizer.backend_tokenizer, name="clip", clean=clip_clean)
