"""The one place where exceptions become HTTP statuses.

Only the project's own exception classes (and the framework's explicit HTTP
errors) are the client's fault: each maps to a 4xx here. Anything else, a bare
``ValueError`` or ``KeyError`` included, is a bug: a 500 whose body carries an
``error_id`` and whose traceback is logged under that id. Every error body has
the shape of ``service.models.Error``."""

from __future__ import annotations

import logging
import sqlite3
import uuid

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from chunkers.errors import ChunkingError
from imagegen import (BusyError, Cancelled, GenerationError, ImageTooLargeError, ModelNotFoundError, PromptError,
                      UnsupportedImageError)
from ingest.errors import FileTooLargeError, IngestError, UnsupportedFileError
from ingest.isolation import WorkerLimitError
from retrieval.errors import (DocumentNotFoundError, EmbeddingMismatchError, RetrievalError, StorageFullError, StoreDamagedError,
                              WriteLockTimeoutError)
from retrieval.integrity import translate

from .models import Error, sent_value, short_repr

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
    (WriteLockTimeoutError, 503),
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
]

MULTIPART_LIMIT = "Request Entity Too Large"  # litestar's 400 for a multipart body over its part or header limits


def status_for(exc: BaseException) -> int:
    for cls, status in STATUS_BY_EXCEPTION:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(status: int, error: str, detail: str, *, extra=None, error_id: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = Error(status_code=status, error=error, detail=detail, extra=extra or None, error_id=error_id)
    return Response(body, status_code=status, headers=headers)


def internal_error(exc: BaseException, where: str) -> Error:
    """Log ``exc`` with its traceback under a new error id; the body to send."""
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error %s %s", error_id, where, exc_info=exc)
    return Error(status_code=500, error="InternalServerError", error_id=error_id,
                 detail=f"internal error {error_id}; the server log has its traceback")


def library_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, (sqlite3.DatabaseError, OSError)):  # met outside the notebook's own guard
        nb = getattr(request.app.state, "notebook", None)
        exc = translate(exc, nb.folder if nb is not None else "(unknown)") or exc
    status = status_for(exc)
    if status == 500:
        body = internal_error(exc, f"in {request.method} {request.url.path}")
        return Response(body, status_code=500)
    return error_response(status, type(exc).__name__, str(exc))


def http_error(request: Request, exc: HTTPException) -> Response:
    status, detail, extra = exc.status_code, exc.detail, getattr(exc, "extra", None)
    if status == 400 and detail == MULTIPART_LIMIT:
        status = 413
        detail = (f"multipart body over its limits: at most {request.app.multipart_form_part_limit} parts, "
                  "and part headers of at most 8 KiB")
    elif status == 405 and exc.headers and exc.headers.get("allow"):
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {exc.headers['allow']}"
    elif status == 404 and detail == "Not Found":  # litestar's: no route matched
        detail = f"no route {request.method} {request.url.path[:200]}"
    elif isinstance(exc, ValidationException) and isinstance(extra, list) and extra:
        detail = "; ".join(_named(request, item) for item in extra if isinstance(item, dict)) or detail
    if status == 500:  # litestar's InternalServerException: a bug like any other
        return Response(internal_error(exc, f"in {request.method} {request.url.path}"), status_code=500)
    return error_response(status, type(exc).__name__ if status == exc.status_code else "RequestEntityTooLarge", detail,
                          extra=extra if isinstance(extra, (list, dict)) else None, headers=exc.headers)


def _named(request: Request, item: dict) -> str:
    """``{"key": "k", "source": "body", "message": "Expected `int` >= 1"}`` as
    ``k (body): Expected `int` >= 1, got 0``: the field, the limit, the value."""
    key, message = item.get("key"), item.get("message", "invalid")
    source = getattr(item.get("source"), "value", item.get("source"))
    where = f"{key} ({source})" if key and source else key or source
    found = _sent(request, source, key) if key else None
    return (f"{where}: {message}" if where else str(message)) + ("" if found is None else f", got {found}")


def _sent(request: Request, source: str | None, key: str) -> str | None:
    """The value the client sent at ``key``, shortened, or None."""
    if source == "path":
        value = request.path_params.get(key)
    elif source == "query":
        value = request.query_params.get(key)
    elif source == "body":
        return sent_value(getattr(request.state, "json_body", None), key)
    else:
        return None
    return None if value is None else short_repr(value)


EXCEPTION_HANDLERS = {HTTPException: http_error, Exception: library_error}
