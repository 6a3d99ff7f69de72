"""The HTTP API (litestar). Models and the index load once, in the lifespan
(``service.services``), and handlers receive them by dependency injection;
blocking work runs in worker threads. Uploads are parsed and chunked in worker
processes (``ingest.isolation``) with a time limit per document, so no input can
stall the other requests; embedding and storing stay here, on a thread."""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, AsyncIterator

import anyio
import msgspec
from litestar import Litestar, Request, delete, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException, HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody, PathParameter, QueryParameter

from imagegen import PromptBuilder
from ingest import Ingestor, Prepared, UnsupportedFileError
from ingest.isolation import Workers
from ingest.sources import MAX_COLLECTION_CHARS, MAX_SOURCE_CHARS, check_collection_name, check_source_name
from retrieval import Notebook
from retrieval.errors import WriteLockTimeoutError

from . import page, services, wiring
from .admission import Admission, write_lock_busy
from .explore import ROUTES as EXPLORE_ROUTES
from .images import ROUTES as IMAGE_ROUTES
from .models import (MAX_ID, MAX_OFFSET, AnswerResponse, AskRequest, Backlink, Deleted, Document, DocumentAdded,
                     DocumentList, DocumentSummary, DocumentUpload, Health, Hit, LinkOut, PromptRequest, PromptResponse,
                     SearchRequest, SearchResponse, TextDocument, complete_bounds, declared_body, decode, errors)
from .responses import answer_response, search_response
from .services import DEPENDENCIES, Injected, ServiceConfig, check_config
from .settings import Settings, load_settings

__all__ = ["ServiceConfig", "create_app"]

PUBLIC_PATHS = {"/health"}
MULTIPART_PARTS = 64  # fields and files in one multipart body (/score takes 32 images and a prompt)


@dataclass(frozen=True)
class Submission:
    """A document as sent to ``POST /documents``, checked but not yet parsed."""

    data: bytes
    name: str  # the file name (its suffix gives the kind) or, for JSON, the source
    kind: str | None
    source: str
    collection: str | None


class CheckedRequest(Request):
    """A request whose JSON body nested deeper than the decoder's recursion limit, or
    whose multipart text field is not UTF-8, is a 400 naming the problem rather than a
    RecursionError or UnicodeDecodeError. (The typed models stop nesting far earlier;
    this is the untyped first pass litestar makes.)"""

    async def json(self) -> Any:
        try:
            value = await super().json()
        except RecursionError:
            raise ClientException("the JSON body is nested too deeply (over about 1000 levels); "
                                  "no field of this API nests more than 3") from None
        self.state.json_body = value  # so that a validation error can quote the bad value
        return value

    async def form(self) -> Any:
        try:
            return await super().form()
        except UnicodeDecodeError as exc:  # litestar decodes every field that is not a file as UTF-8
            raise ClientException(f"a multipart field that is not a file is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                  "send images and documents as files (with a filename)") from None


def authorised(connection: ASGIConnection, expected: str | None) -> bool:
    if not expected:
        return True
    given = connection.headers.get("x-api-key") or ""
    auth = connection.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        given = given or auth[7:]
    return hmac.compare_digest(given.encode(), expected.encode())


def api_key_guard(api_key: str | None):
    """The guard of every route but the public ones (and of admission control)."""

    def guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        public = connection.url.path in PUBLIC_PATHS or handler.opt.get("public")  # the web page's static files
        if not public and not authorised(connection, api_key):
            raise NotAuthorizedException("missing or wrong API key: send it as X-API-Key or Authorization: Bearer")

    return guard


@get("/health", responses=errors(503, public=True))
async def health(request: Request, config: Injected[ServiceConfig], notebook: Injected[Notebook]) -> Health:
    """Liveness. Document and chunk counts only for a caller with the API key."""
    if not authorised(request, config.api_key):
        return Health(status="ok")
    counts = await anyio.to_thread.run_sync(notebook.counts)
    return Health(status="ok", documents=counts.documents, chunks=counts.chunks)


@post("/documents", operation_class=declared_body(json=TextDocument, multipart=DocumentUpload),
      responses=errors(400, 409, 413, 415, 422, 429, 503, 507))
async def add_document(request: Request, config: Injected[ServiceConfig], notebook: Injected[Notebook],
                       ingestor: Injected[Ingestor], workers: Injected[Workers],
                       parse_limiter: Injected[anyio.CapacityLimiter],
                       store_limiter: Injected[anyio.CapacityLimiter]) -> DocumentAdded:
    """Add or replace a note: multipart upload (field ``file``, optional ``source``
    and ``collection``) or JSON ``{"text", "source", "kind", "collection"}``.
    Server-side paths are never read."""
    sub = await _submission(request, config.max_upload_bytes)

    def prepare() -> Prepared:
        return workers.prepare(sub.data, sub.name, sub.kind, ingestor.chunking, ingestor.limits)

    prepared = await anyio.to_thread.run_sync(prepare, limiter=parse_limiter)
    doc_id, status = await anyio.to_thread.run_sync(lambda: ingestor.ingest_prepared(prepared, sub.source, sub.collection),
                                                    limiter=store_limiter)
    doc = await anyio.to_thread.run_sync(lambda: notebook.backend.document(doc_id, with_text=False))
    chunks = await anyio.to_thread.run_sync(lambda: notebook.chunk_count(doc_id))
    return DocumentAdded(id=doc_id, status=status, source=doc.source, title=doc.title, kind=doc.kind, chunks=chunks)


async def _submission(request: Request, max_upload_bytes: int) -> Submission:
    """Read and check the request: names are validated before any parsing."""
    content_type = request.content_type[0]
    if content_type == "multipart/form-data":
        sub = await _multipart(request, max_upload_bytes)
    elif content_type == "application/json":
        body = decode(await request.body(), TextDocument, "document")
        source = check_source_name(body.source)
        sub = Submission(_text_bytes(body.text, source), source, body.kind, source, body.collection)
    else:
        raise HTTPException(status_code=415, detail=f"send multipart/form-data or application/json, not {content_type!r}")
    if sub.collection is not None:
        check_collection_name(sub.collection)
    return sub


def _text_bytes(text: str, source: str) -> bytes:
    """A JSON note's text as UTF-8. A NUL anywhere is refused, as a file with a NUL
    in its first 8 KB is (the text is declared text: it cannot be binary)."""
    at = text.find("\x00")
    if at >= 0:
        raise UnsupportedFileError(f"{source}: text contains a NUL character (U+0000) at offset {at}; send text, not binary data")
    return text.encode("utf-8")


async def _multipart(request: Request, limit: int) -> Submission:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ClientException("multipart upload needs a file in the field 'file'")
    data = await upload.read()
    if len(data) > limit:
        raise HTTPException(status_code=413, detail=f"upload is {len(data)} bytes; the limit is {limit}")
    name = Path(upload.filename or "").name
    if not name:
        raise UnsupportedFileError("the upload has no file name")
    source, collection = (_form_text(form, key, limit) for key, limit in (("source", MAX_SOURCE_CHARS), ("collection", MAX_COLLECTION_CHARS)))
    return Submission(data, name, None, check_source_name(source or name), collection)


def _form_text(form: Any, key: str, limit: int) -> str | None:
    value = form.get(key)
    if isinstance(value, str) and len(value) > limit:
        raise ClientException(f"field {key!r} is {len(value)} characters; the limit is {limit}")
    return value if isinstance(value, str) and value.strip() else None


PageSize = Annotated[int, QueryParameter(ge=1, le=1000, description="documents per page")]
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="documents to skip")]
DocId = Annotated[int, PathParameter(ge=0, le=MAX_ID, description="a document id (53-bit)")]


@get("/documents", sync_to_thread=True, responses=errors(400, 503))
def list_documents(notebook: Injected[Notebook], limit: PageSize = 100, offset: Offset = 0) -> DocumentList:
    counts = notebook.counts()
    docs = msgspec.convert(notebook.documents(limit=limit, offset=offset), list[DocumentSummary])
    return DocumentList(documents=docs, total=counts.documents, chunks=counts.chunks)


@get("/documents/{doc_id:int}", sync_to_thread=True, responses=errors(400, 404, 503))
def get_document(notebook: Injected[Notebook], doc_id: DocId) -> Document:
    """The document with its text, its aliases, its wiki links (resolved) and the links to it."""
    doc = msgspec.convert(notebook.document(doc_id), Document, from_attributes=True)
    links = notebook.links(doc_id)
    doc.links = msgspec.convert(links.links, list[LinkOut], from_attributes=True)
    doc.backlinks = msgspec.convert(links.backlinks, list[Backlink], from_attributes=True)
    return doc


@delete("/documents/{doc_id:int}", status_code=200, sync_to_thread=True, responses=errors(400, 404, 409, 429, 503, 507))
def delete_document(notebook: Injected[Notebook], doc_id: DocId) -> Deleted:
    doc = notebook.delete(doc_id)
    return Deleted(deleted=doc.id, source=doc.source)


@post("/search", status_code=200, sync_to_thread=True, responses=errors(400, 409, 413, 429, 503))
def search(notebook: Injected[Notebook], data: JSONBody[SearchRequest]) -> SearchResponse:
    filters = msgspec.to_builtins(data.filters) if data.filters is not None else None
    return search_response(notebook, data.query, data.k, filters, data.mode, data.min_relative_score)


@post("/ask", status_code=200, sync_to_thread=True, responses=errors(400, 409, 413, 429, 503))
def ask(notebook: Injected[Notebook], data: JSONBody[AskRequest]) -> AnswerResponse:
    return answer_response(notebook, data.question, data.k)


@post("/prompts", status_code=200, sync_to_thread=True, responses=errors(400, 409, 413, 429, 503))
def build_prompt(notebook: Injected[Notebook], prompt_builder: Injected[PromptBuilder],
                 data: JSONBody[PromptRequest]) -> PromptResponse:
    """A positive and a negative prompt that fit CLIP's 75 content tokens, with what was dropped."""
    builder = PromptBuilder(notebook, added_tokens=data.tokens) if data.tokens else prompt_builder
    result = builder.build(data.idea, style=data.style, k=data.k, budget=data.budget, negative=data.negative, long=data.long)
    out = result.to_dict()
    out["tokens"] = {"prompt": result.tokens["prompt"], "negative_prompt": result.tokens["negative_prompt"]}
    return msgspec.convert(out, PromptResponse)


def create_app(config: ServiceConfig | None = None, *, settings: Settings | None = None, notebook: Notebook | None = None,
               warm: bool = True) -> Litestar:
    """The app. ``settings`` (default: read now from the environment) fill ``config``
    when none is given and configure the models; ``notebook``, when given, is served
    instead of opening ``config.data_dir`` (its owner closes it)."""
    from .errors import EXCEPTION_HANDLERS

    settings = settings or load_settings()
    wiring.configure_runtime(settings)  # before the lifespan loads torch
    config = config or ServiceConfig.from_settings(settings)
    check_config(config)
    chunking = config.chunking or wiring.chunking(settings)
    workers = Workers(chunking, count=config.ingest_workers, seconds=config.document_seconds, memory_bytes=config.worker_memory_bytes)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        workers.start()  # they load while the model does
        try:
            app.state.services = await services.start(config, settings, chunking, workers, notebook, warm)
            app.state.notebook = app.state.services.notebook  # for the error translator (the data folder in messages)
            try:
                yield
            finally:
                if notebook is None:
                    app.state.notebook.close()
        finally:
            await anyio.to_thread.run_sync(workers.close)

    guard = api_key_guard(config.api_key)
    app = Litestar(
        route_handlers=[health, add_document, list_documents, get_document, delete_document, search, ask, build_prompt, *IMAGE_ROUTES,
                        *EXPLORE_ROUTES, *page.routes()],
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        guards=[guard],
        exception_handlers={**EXCEPTION_HANDLERS, WriteLockTimeoutError: write_lock_busy(config.write_lock_seconds)},
        middleware=[Admission(config.admission, guards=[guard])],
        request_max_body_size=config.max_upload_bytes + 64 * 1024,
        multipart_form_part_limit=MULTIPART_PARTS,
        request_class=CheckedRequest,
        openapi_config=OpenAPIConfig(title="noteloom", version="0.1.0", path="/schema"),
    )
    complete_bounds(app.openapi_schema)  # before the first request renders it
    return app
