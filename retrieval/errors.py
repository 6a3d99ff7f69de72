"""Exceptions of the retrieval package (each subclasses a builtin):

- ``RetrievalError(ValueError)``: base; bad queries (empty, ``k`` out of range, bad filter).
- ``DocumentNotFoundError(RetrievalError, LookupError)``: no document with that id.
- ``EmbeddingMismatchError(RetrievalError)``: the data folder was built with another
  embedding model or dimension than the one requested.
- ``IndexCorruptError(RuntimeError)``: an index file failed its checksum (the
  notebook rebuilds it from SQLite; callers rarely see this).
"""


class RetrievalError(ValueError):
    pass


class DocumentNotFoundError(RetrievalError, LookupError):
    pass


class EmbeddingMismatchError(RetrievalError):
    pass


class IndexCorruptError(RuntimeError):
    pass
