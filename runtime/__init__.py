"""runtime: the model runtime that chunkers, retrieval and imagegen share.

- embedders: the ``Embedder`` protocol (``embed_batch``, ``dim``, ``name``), the
  offline all-MiniLM-L6-v2 embedder and the torch-free ``HashingEmbedder``;
- torch setup: ``configure_torch`` (threads) and ``pick_device``;
- tokenizers: the offline CLIP tokenizer and one ``ClipCounter`` for chunk budgets
  and prompt fitting, and counters for local Hugging Face tokenizer folders;
- ``configure``: the process's thread count and cache folder, given by the
  application (this package never reads the environment).

Importing this package loads no ML framework: torch, transformers and
sentence-transformers are imported when a model or tokenizer is built.

    >>> import runtime
    >>> embedder = runtime.HashingEmbedder(dim=64)
    >>> embedder.embed_batch(["a cat", "a dog"]).shape
    (2, 64)
"""

from .clip import (
    CLIP_VOCAB_FILE,
    CONTENT_TOKENS,
    CONTEXT,
    ClipCounter,
    HFTokenizerCounter,
    clip_clean,
    clip_tokenizer,
    clip_tokenizer_folder,
    clip_vocab_path,
    hf_tokenizer_counter,
    tokenizer_with,
)
from .config import cache_dir, configure, cpu_threads
from .embedders import (
    DEFAULT_MODEL,
    EmbedFn,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
    normalise,
    resolve_model_path,
)
from .errors import InvalidSettingError, MissingDependencyError
from .torch_setup import configure_torch, pick_device

__all__ = [
    "CLIP_VOCAB_FILE",
    "CONTENT_TOKENS",
    "CONTEXT",
    "ClipCounter",
    "DEFAULT_MODEL",
    "EmbedFn",
    "Embedder",
    "HFTokenizerCounter",
    "HashingEmbedder",
    "InvalidSettingError",
    "MissingDependencyError",
    "SentenceTransformerEmbedder",
    "cache_dir",
    "clip_clean",
    "clip_tokenizer",
    "clip_tokenizer_folder",
    "clip_vocab_path",
    "configure",
    "configure_torch",
    "cpu_threads",
    "get_embedder",
    "hf_tokenizer_counter",
    "normalise",
    "pick_device",
    "resolve_model_path",
    "tokenizer_with",
]
