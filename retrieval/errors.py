"""Exceptions of the retrieval package (each subclasses a builtin):

- ``RetrievalError(ValueError)``: base; bad queries (empty, ``k`` out of range, bad filter).
- ``DocumentNotFoundError(RetrievalError, LookupError)``: no document with that id.
- ``EmbeddingMismatchError(RetrievalError)``: the data folder was built with another
  embedding model or dimension than the one requested.
- ``IndexCorruptError(RuntimeError)``: an index file failed its checksum (the
  notebook rebuilds it from SQLite; callers rarely see this).
- ``StorageError(RuntimeError)``: the data folder cannot be used as it is; the
  message is one line that says what to do.
- ``StoreDamagedError(StorageError)``: ``notes.sqlite`` is damaged, missing beside
  an index, or not a database; ``noteloom repair`` recovers what can be read.
- ``StorageFullError(StorageError)``: the disk is full (``ENOSPC``, SQLite's
  "database or disk is full"); what was committed before stays stored.
- ``WriteLockTimeoutError(RuntimeError)``: another writer (a CLI ingest, say) held
  the data folder's write lock longer than the caller's bound
  (``Notebook.write_timeout``); nothing was written, and trying again later can work.
"""


class RetrievalError(ValueError):
    pass


class DocumentNotFoundError(RetrievalError, LookupError):
    pass


class EmbeddingMismatchError(RetrievalError):
    pass


class IndexCorruptError(RuntimeError):
    pass


class StorageError(RuntimeError):
    pass


class StoreDamagedError(StorageError):
    pass


class StorageFullError(StorageError):
    pass


class WriteLockTimeoutError(RuntimeError):
    pass
