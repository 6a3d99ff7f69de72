"""chunkers: split text into chunks with exact character offsets.

    >>> import chunkers
    >>> chunker = chunkers.get("recursive", max_tokens=64)
    >>> chunks = chunker("# Notes\\n\\nShort text.")
    >>> chunks[0].text, chunks[0].start, chunks[0].end
    ('# Notes\\n\\nShort text.', 0, 20)

Importing this package loads no ML framework: torch, transformers and
sentence-transformers are imported only when the semantic chunker (or a tokenizer
that needs them) is used.
"""

from . import builtin as _builtin  # noqa: F401  (registers the built-ins)
from . import semantic as _semantic  # noqa: F401
from .base import Chunker
from .chunk import SPAN_SEPARATOR, Chunk
from .errors import (
    ChunkingError,
    InvalidParameterError,
    MissingDependencyError,
    UnknownChunkerError,
    UnknownTokenizerError,
    UnsupportedVersionError,
)
from .registry import available, get, parameters, register
from .tokenizers import TokenCounter, get_tokenizer

__all__ = [
    "Chunk",
    "Chunker",
    "ChunkingError",
    "InvalidParameterError",
    "MissingDependencyError",
    "SPAN_SEPARATOR",
    "TokenCounter",
    "UnknownChunkerError",
    "UnknownTokenizerError",
    "UnsupportedVersionError",
    "available",
    "get",
    "get_tokenizer",
    "parameters",
    "register",
]
