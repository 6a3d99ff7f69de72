"""Exceptions of the ingest package (each subclasses a builtin):

- ``IngestError(ValueError)``: base.
- ``UnsupportedFileError(IngestError)``: a file type noteloom does not read, or binary data.
- ``CorruptFileError(IngestError)``: a supported type that cannot be read (invalid
  UTF-8, a broken PDF).
- ``FileTooLargeError(IngestError)``: over the size limit.
- ``EmptyDocumentError(IngestError)``: no text (empty, whitespace or front matter only):
  skipped, never stored, by the CLI and the API alike.
- ``InvalidSourceError(IngestError)``: a source or collection name that could escape its
  collection (``..``, absolute, backslashes) or holds control characters.
"""


class IngestError(ValueError):
    pass


class UnsupportedFileError(IngestError):
    pass


class CorruptFileError(IngestError):
    pass


class FileTooLargeError(IngestError):
    pass


class EmptyDocumentError(IngestError):
    """A note with no text (empty, whitespace, or front matter only): skipped, never stored."""


class InvalidSourceError(IngestError):
    """A source or collection name that could escape its collection or is unreadable."""


class ExpansionLimitError(IngestError):
    pass
