"""Exceptions of the ingest package (each subclasses a builtin):

- ``IngestError(ValueError)``: base.
- ``UnsupportedFileError(IngestError)``: a file type noteloom does not read, or binary data.
- ``CorruptFileError(IngestError)``: a supported type that cannot be read (invalid
  UTF-8, a broken PDF).
- ``FileTooLargeError(IngestError)``: over the size limit.
"""


class IngestError(ValueError):
    pass


class UnsupportedFileError(IngestError):
    pass


class CorruptFileError(IngestError):
    pass


class FileTooLargeError(IngestError):
    pass
