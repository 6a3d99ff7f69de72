"""Ingest notes into a notebook: load, deduplicate, chunk, embed, store."""

from .errors import (CorruptFileError, EmptyDocumentError, FileTooLargeError, IngestError, InvalidSourceError,
                     UnsupportedFileError)
from .loaders import DEFAULT_LIMITS, KINDS, Loaded, LoadLimits, load_bytes, load_file
from .pipeline import ChunkSettings, IngestReport, Ingestor, Prepared, prepare
from .sources import check_source_name

__all__ = [
    "ChunkSettings",
    "CorruptFileError",
    "EmptyDocumentError",
    "FileTooLargeError",
    "IngestError",
    "IngestReport",
    "Ingestor",
    "InvalidSourceError",
    "DEFAULT_LIMITS",
    "KINDS",
    "LoadLimits",
    "Loaded",
    "Prepared",
    "UnsupportedFileError",
    "check_source_name",
    "load_bytes",
    "load_file",
    "prepare",
]
