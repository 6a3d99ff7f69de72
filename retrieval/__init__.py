"""Retrieval over the notebook: a storage ``Backend`` (SQLite + FAISS by default),
hybrid search, answers with exact citations.

Heavy modules (faiss, torch) load on first use, not on import.
"""

from .answer import Answer, Citation
from .backend import Backend, WriteSession
from .chat import LLMConfig
from .errors import (DocumentNotFoundError, EmbeddingMismatchError, IndexCorruptError, RetrievalError, StorageError,
                     StorageFullError, StoreDamagedError, WriteLockTimeoutError)
from .notebook import DEFAULT_EMBEDDING_MODEL, Notebook, resolve_data_dir
from .records import (Backlink, ChunkRecord, Collection, Counts, Document, DocumentInfo, DocumentRecord, DocumentSummary,
                      EmbeddingInfo, Filter, Hit, IndexState, Known, Link, LinkOut, NoteLinks, StoredChunk)
from .search import Searcher, fuse
from .sqlite_faiss import SqliteFaissBackend

__all__ = [
    "Answer",
    "Backend",
    "Backlink",
    "ChunkRecord",
    "Citation",
    "Collection",
    "Counts",
    "DEFAULT_EMBEDDING_MODEL",
    "Document",
    "DocumentInfo",
    "DocumentNotFoundError",
    "DocumentRecord",
    "DocumentSummary",
    "EmbeddingInfo",
    "EmbeddingMismatchError",
    "Filter",
    "Hit",
    "IndexCorruptError",
    "IndexState",
    "Known",
    "LLMConfig",
    "Link",
    "LinkOut",
    "NoteLinks",
    "Notebook",
    "RetrievalError",
    "Searcher",
    "SqliteFaissBackend",
    "StorageError",
    "StorageFullError",
    "StoreDamagedError",
    "StoredChunk",
    "WriteLockTimeoutError",
    "WriteSession",
    "fuse",
    "resolve_data_dir",
]
