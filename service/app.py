"""The HTTP API (litestar). Models and the index load once, in the lifespan;
blocking work runs in worker threads. Uploads are parsed and chunked in worker
processes (``ingest.isolation``) with a time limit per document, so no input can
stall the other requests; embedding and storing stay here, on a thread."""

from __future__ import annotations

import hmac
import os
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

from ingest import ChunkSettings, Ingestor, Prepared, UnsupportedFileError
from ingest.isolation import Workers
from ingest.loaders import DEFAULT_LIMITS, LoadLimits
from ingest.sources import MAX_COLLECTION_CHARS, MAX_SOURCE_CHARS, check_collection_name, check_source_name
from retrieval import Notebook
from retrieval.errors import WriteLockTimeoutError

from .admission import Admission, Limit, bound_writes, parse_limits, write_lock_busy
from .images import ROUTES as IMAGE_ROUTES
from .models import (MAX_ID, MAX_OFFSET, AnswerResponse, AskRequest, Deleted, Document, DocumentAdded, DocumentList,
                     DocumentSummary, DocumentUpload, Health, Hit, PromptRequest, PromptResponse, SearchRequest,
                     SearchResponse, TextDocument, declared_body, decode, errors)
from .settings import configure_runtime, load_limits, notebook_options

PUBLIC_PATHS = {"/health"}
MULTIPART_PARTS = 64  # fields and files in one multipart body (/score takes 32 images and a prompt)


@dataclass
class ServiceConfig:
    data_dir: str | None = None
    api_key: str | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    chunking: ChunkSettings | None = None
    max_generations: int = 1
    document_seconds: float = 60.0  # parse + chunk time per uploaded document; over it: 4xx, worker replaced
    ingest_workers: int = 1  # worker processes parsing and chunking uploads (uploads beyond wait their turn)
    worker_memory_bytes: int | None = 2 * 1024**3  # address space of each worker; None: unlimited
    limits: LoadLimits = DEFAULT_LIMITS  # what one document may cost to load (NOTELOOM_MAX_PDF_PAGES, ...)
    admission: dict[str, Limit] | None = None  # per route class: running/queued/wait (service.admission); None: sized to the cores
    write_lock_seconds: float = 10.0  # longest wait for the writer lock (a CLI ingest holds it); then 503 + Retry-After
    keep_alive_seconds: float = 5.0  # an idle keep-alive connection is closed after this
    header_seconds: float = 10.0  # a request line and headers must arrive within this, else the connection is closed
    body_seconds: float = 10.0  # the longest pause while a request body arrives, else the connection is closed

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServiceConfig":
        env = os.environ.get
        config = cls(data_dir=env("NOTELOOM_DATA"), api_key=env("NOTELOOM_API_KEY") or None,
                     max_generations=int(env("NOTELOOM_MAX_GENERATIONS", "1")),
                     document_seconds=float(env("NOTELOOM_DOCUMENT_SECONDS", cls.document_seconds)),
                     ingest_workers=int(env("NOTELOOM_INGEST_WORKERS", cls.ingest_workers)),
                     limits=load_limits(), admission=parse_limits(env("NOTELOOM_ADMISSION")),
                     write_lock_seconds=float(env("NOTELOOM_WRITE_LOCK_SECONDS", cls.write_lock_seconds)),
                     keep_alive_seconds=float(env("NOTELOOM_KEEP_ALIVE_SECONDS", cls.keep_alive_seconds)),
                     header_seconds=float(env("NOTELOOM_HEADER_SECONDS", cls.header_seconds)),
                     body_seconds=float(env("NOTELOOM_BODY_SECONDS", cls.body_seconds)))
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config


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


def authorised(connection: ASGIConnection) -> bool:
    expected = connection.app.state.config.api_key
    if not expected:
        return True
    given = connection.headers.get("x-api-key") or ""
    auth = connection.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        given = given or auth[7:]
    return hmac.compare_digest(given.encode(), expected.encode())


def api_key_guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    if connection.url.path not in PUBLIC_PATHS and not authorised(connection):
        raise NotAuthorizedException("missing or wrong API key: send it as X-API-Key or Authorization: Bearer")


def _state(request: Request) -> tuple[Notebook, Ingestor]:
    return request.app.state.notebook, request.app.state.ingestor


@get("/health", responses=errors(503, public=True))
async def health(request: Request) -> Health:
    """Liveness. Document and chunk counts only for a caller with the API key."""
    if not authorised(request):
        return Health(status="ok")
    nb, _ = _state(request)
    counts = await anyio.to_thread.run_sync(nb.counts)
    return Health(status="ok", documents=counts.documents, chunks=counts.chunks)


@post("/documents", operation_class=declared_body(json=TextDocument, multipart=DocumentUpload),
      responses=errors(400, 409, 413, 415, 422, 429, 503, 507))
async def add_document(request: Request) -> DocumentAdded:
    """Add or replace a note: multipart upload (field ``file``, optional ``source``
    and ``collection``) or JSON ``{"text", "source", "kind", "collection"}``.
    Server-side paths are never read."""
    nb, ingestor = _state(request)
    state = request.app.state
    sub = await _submission(request)

    def prepare() -> Prepared:
        return state.workers.prepare(sub.data, sub.name, sub.kind, ingestor.chunking, ingestor.limits)

    prepared = await anyio.to_thread.run_sync(prepare, limiter=state.parse_limiter)
    doc_id, status = await anyio.to_thread.run_sync(lambda: ingestor.ingest_prepared(prepared, sub.source, sub.collection),
                                                    limiter=state.store_limiter)
    doc = await anyio.to_thread.run_sync(lambda: nb.backend.document(doc_id, with_text=False))
    chunks = await anyio.to_thread.run_sync(lambda: nb.chunk_count(doc_id))
    return DocumentAdded(id=doc_id, status=status, source=doc.source, title=doc.title, kind=doc.kind, chunks=chunks)


async def _submission(request: Request) -> Submission:
    """Read and check the request: names are validated before any parsing."""
    content_type = request.content_type[0]
    if content_type == "multipart/form-data":
        sub = await _multipart(request)
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


async def _multipart(request: Request) -> Submission:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ClientException("multipart upload needs a file in the field 'file'")
    data = await upload.read()
    limit = request.app.state.config.max_upload_bytes
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
def list_documents(request: Request, limit: PageSize = 100, offset: Offset = 0) -> DocumentList:
    nb, _ = _state(request)
    counts = nb.counts()
    docs = msgspec.convert(nb.documents(limit=limit, offset=offset), list[DocumentSummary])
    return DocumentList(documents=docs, total=counts.documents, chunks=counts.chunks)


@get("/documents/{doc_id:int}", sync_to_thread=True, responses=errors(400, 404, 503))
def get_document(request: Request, doc_id: DocId) -> Document:
    nb, _ = _state(request)
    return msgspec.convert(nb.document(doc_id), Document)


@delete("/documents/{doc_id:int}", status_code=200, sync_to_thread=True, responses=errors(400, 404, 409, 429, 503, 507))
def delete_document(request: Request, doc_id: DocId) -> Deleted:
    nb, _ = _state(request)
    doc = nb.delete(doc_id)
    return Deleted(deleted=doc.id, source=doc.source)


@post("/search", status_code=200, sync_to_thread=True, responses=errors(400, 409, 413, 429, 503))
def search(request: Request, data: JSONBody[SearchRequest]) -> SearchResponse:
    nb, _ = _state(request)
    filters = msgspec.to_builtins(data.filters) if data.filters is not None else None
    hits = nb.search(data.query, k=data.k, filters=filters, mode=data.mode)
    return SearchResponse(query=data.query, mode=data.mode, hits=msgspec.convert(hits, list[Hit]))


@post("/ask", status_code=200, sync_to_thread=True, responses=errors(400, 409, 413, 429, 503))
def ask(request: Request, data: JSONBody[AskRequest]) -> AnswerResponse:
    nb, _ = _state(request)
    return msgspec.convert(nb.ask(data.question, k=data.k).to_dict(), AnswerResponse)


@post("/prompts", status_code=200, sync_to_thread=True, responses=errors(400, 409, 413, 429, 503))
def build_prompt(request: Request, data: JSONBody[PromptRequest]) -> PromptResponse:
    """A positive and a negative prompt that fit CLIP's 75 content tokens, with what was dropped."""
    builder = request.app.state.prompt_builder
    if data.tokens:
        from imagegen import PromptBuilder

        builder = PromptBuilder(request.app.state.notebook, added_tokens=data.tokens)
    result = builder.build(data.idea, style=data.style, k=data.k, budget=data.budget, negative=data.negative, long=data.long)
    out = result.to_dict()
    out["tokens"] = {"prompt": result.tokens["prompt"], "negative_prompt": result.tokens["negative_prompt"]}
    return msgspec.convert(out, PromptResponse)


def _image_state(app: Litestar, config: ServiceConfig) -> None:
    """Generation backend and CLIP scorer load on first use: the rest of the
    service works when no Stable Diffusion or CLIP weights are present."""
    import functools

    from imagegen import ClipScorer, DiffusersBackend

    from .jobs import Jobs
    from .settings import clip_settings, diffusers_settings

    app.state.gallery = Path(app.state.notebook.folder) / "gallery"
    app.state.gallery.mkdir(parents=True, exist_ok=True)
    app.state.backend = functools.lru_cache(maxsize=1)(lambda: DiffusersBackend(diffusers_settings(), gallery=app.state.gallery))
    app.state.scorer = functools.lru_cache(maxsize=1)(lambda: ClipScorer.from_settings(clip_settings()))
    app.state.jobs = Jobs(max_running=config.max_generations)


def check_config(config: ServiceConfig) -> None:
    if not 0 < config.max_upload_bytes <= config.limits.max_file_bytes:
        raise ValueError(f"max_upload_bytes must be 1..{config.limits.max_file_bytes} (max_file_bytes), "
                         f"got {config.max_upload_bytes}")
    if not 0 < config.document_seconds <= 24 * 3600:
        raise ValueError(f"document_seconds must be more than 0 and at most a day, got {config.document_seconds}")
    if not 1 <= config.ingest_workers <= 16:
        raise ValueError(f"ingest_workers must be 1..16, got {config.ingest_workers}")


async def _load(app: Litestar, config: ServiceConfig, chunking: ChunkSettings, warm: bool) -> None:
    def load() -> tuple[Notebook, Ingestor]:
        nb = Notebook(config.data_dir, **notebook_options())
        if warm:
            nb.warm()
        return nb, Ingestor(nb, chunking, limits=config.limits)

    app.state.notebook, app.state.ingestor = await anyio.to_thread.run_sync(load)
    if warm:
        await anyio.to_thread.run_sync(app.state.workers.wait_ready)
    from imagegen import PromptBuilder

    app.state.prompt_builder = PromptBuilder(app.state.notebook)
    _image_state(app, config)


def create_app(config: ServiceConfig | None = None, *, warm: bool = True) -> Litestar:
    from .errors import EXCEPTION_HANDLERS

    config = config or ServiceConfig.from_env()
    check_config(config)
    configure_runtime()
    chunking = config.chunking or ChunkSettings.of()
    workers = Workers(chunking, count=config.ingest_workers, seconds=config.document_seconds,
                                memory_bytes=config.worker_memory_bytes)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.workers = workers.start()  # they load while the model does
        app.state.parse_limiter = anyio.CapacityLimiter(config.ingest_workers)  # waiting uploads hold no thread
        app.state.store_limiter = anyio.CapacityLimiter(1)  # writes are serialised by the notebook anyway
        try:
            await _load(app, config, chunking, warm)
            try:
                yield
            finally:
                app.state.notebook.close()
        finally:
            await anyio.to_thread.run_sync(workers.close)

    app = Litestar(
        route_handlers=[health, add_document, list_documents, get_document, delete_document, search, ask, build_prompt, *IMAGE_ROUTES],
        lifespan=[lifespan],
        guards=[api_key_guard],
        exception_handlers={**EXCEPTION_HANDLERS, WriteLockTimeoutError: write_lock_busy(config.write_lock_seconds)},
        middleware=[Admission(config.admission, guards=[api_key_guard])],
        on_startup=[bound_writes(config.write_lock_seconds)],
        request_max_body_size=config.max_upload_bytes + 64 * 1024,
        multipart_form_part_limit=MULTIPART_PARTS,
        request_class=CheckedRequest,
        openapi_config=OpenAPIConfig(title="noteloom", version="0.1.0", path="/schema"),
    )
    app.state.config = config
    return app
