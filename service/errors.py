"""The one place where library exceptions become HTTP statuses."""

from __future__ import annotations

import logging
import sqlite3

from litestar import Request, Response
from litestar.exceptions import HTTPException

from chunkers.errors import ChunkingError
from imagegen.errors import (BusyError, GenerationError, ImageTooLargeError, ModelNotFoundError, PromptError,
                             UnsupportedImageError)
from imagegen.generate import Cancelled
from ingest.errors import FileTooLargeError, IngestError, UnsupportedFileError
from ingest.isolation import WorkerLimitError
from retrieval.errors import DocumentNotFoundError, EmbeddingMismatchError, RetrievalError, StorageFullError, StoreDamagedError
from retrieval.integrity import translate

log = logging.getLogger("noteloom.service")

# Most specific first: the first matching class decides the status.
STATUS_BY_EXCEPTION: list[tuple[type[BaseException], int]] = [
    (DocumentNotFoundError, 404),
    (FileTooLargeError, 413),
    (ImageTooLargeError, 413),
    (UnsupportedFileError, 415),
    (UnsupportedImageError, 415),
    (EmbeddingMismatchError, 409),
    (StoreDamagedError, 503),
    (StorageFullError, 507),
    (BusyError, 429),
    (Cancelled, 409),
    (ModelNotFoundError, 503),
    (WorkerLimitError, 422),
    (PromptError, 400),
    (GenerationError, 400),
    (IngestError, 400),
    (RetrievalError, 400),
    (ChunkingError, 400),
    (LookupError, 404),
    (ValueError, 400),
    (TypeError, 400),
]


def status_for(exc: BaseException) -> int:
    for cls, status in STATUS_BY_EXCEPTION:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(status: int, error: str, detail: str, extra: dict | None = None) -> Response:
    return Response({"status_code": status, "error": error, "detail": detail, **(extra or {})}, status_code=status)


def library_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, (sqlite3.DatabaseError, OSError)):  # met outside the notebook's own guard
        nb = getattr(request.app.state, "notebook", None)
        exc = translate(exc, nb.folder if nb is not None else "(unknown)") or exc
    status = status_for(exc)
    if status == 500:
        log.exception("unexpected error")
        return error_response(500, "InternalServerError", "internal error; see the server log")
    return error_response(status, type(exc).__name__, str(exc))


def http_error(_request: Request, exc: HTTPException) -> Response:
    extra = {"extra": exc.extra} if getattr(exc, "extra", None) else None
    return error_response(exc.status_code, type(exc).__name__, exc.detail, extra)


EXCEPTION_HANDLERS = {HTTPException: http_error, Exception: library_error}
