"""Ingest notes into a notebook: load, deduplicate, chunk, embed, store."""

from .errors import CorruptFileError, FileTooLargeError, IngestError, UnsupportedFileError
from .loaders import KINDS, Loaded, load_bytes, load_file
from .pipeline import ChunkSettings, IngestReport, Ingestor

__all__ = [
    "ChunkSettings",
    "CorruptFileError",
    "FileTooLargeError",
    "IngestError",
    "IngestReport",
    "Ingestor",
    "KINDS",
    "Loaded",
    "UnsupportedFileError",
    "load_bytes",
    "load_file",
]
