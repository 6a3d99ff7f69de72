"""runtime: the model runtime that chunkers, retrieval and imagegen share.

- embedders: the ``Embedder`` protocol (``embed_batch``, ``dim``, ``name``), the
  offline all-MiniLM-L6-v2 embedder and the torch-free ``HashingEmbedder``; model
  backends (``BACKENDS``: torch, or ONNX Runtime fp32/int8 in ``OnnxEmbedder``)
  named in a spec ``"<model>@<backend>"`` (``embedder_spec``);
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
    AUTO,
    BACKENDS,
    DEFAULT_MODEL,
    EmbedFn,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    backend_of,
    embedder_spec,
    get_embedder,
    normalise,
    onnx_available,
    resolve_model_path,
    split_spec,
)
from .onnx_embedder import OnnxEmbedder, onnx_file
from .errors import InvalidSettingError, MissingDependencyError
from .torch_setup import configure_torch, pick_device

__all__ = [
    "AUTO",
    "BACKENDS",
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
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "backend_of",
    "cache_dir",
    "clip_clean",
    "clip_tokenizer",
    "clip_tokenizer_folder",
    "clip_vocab_path",
    "configure",
    "configure_torch",
    "cpu_threads",
    "embedder_spec",
    "get_embedder",
    "hf_tokenizer_counter",
    "normalise",
    "onnx_available",
    "onnx_file",
    "pick_device",
    "resolve_model_path",
    "split_spec",
    "tokenizer_with",
]
