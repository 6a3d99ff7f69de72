"""Retrieval over the notebook: SQLite store, FAISS index, hybrid search, answers.

Heavy modules (faiss, torch) load on first use, not on import.
"""

from .errors import DocumentNotFoundError, EmbeddingMismatchError, IndexCorruptError, RetrievalError
from .notebook import Hit, Notebook, fuse, resolve_data_dir

__all__ = [
    "DocumentNotFoundError",
    "EmbeddingMismatchError",
    "Hit",
    "IndexCorruptError",
    "Notebook",
    "RetrievalError",
    "fuse",
    "resolve_data_dir",
]
