"""Routes that let a client (the web page among them) see what the server holds and
does: the store's status with what image generation needs, the registered chunkers
with their parameters, and a preview of how a chunker splits a note (exact offsets
and token counts, nothing stored)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import msgspec
from litestar import get, post
from litestar.exceptions import ClientException, HTTPException
from litestar.params import JSONBody
from msgspec import Meta, Struct

import chunkers
from chunkers.tokenizers import NAMED as TOKENIZER_NAMES
from imagegen import MAX_IMAGES, MAX_SIDE, MAX_STEPS, MIN_SIDE, SCHEDULERS, DiffusersBackend, ModelNotFoundError, resolve_model
from ingest import ChunkSettings, Ingestor
from retrieval import Notebook

from .models import MAX_ID, MAX_NAME_CHARS, Strict, errors
from .services import Injected
from .wiring import Lazy

MAX_PREVIEW_CHARS = 200_000  # chunked here, in the server, not in an ingest worker: a preview is for reading
MAX_PREVIEW_CHUNKS = 5_000
HIDDEN_PARAMETERS = {"threads", "embedder"}  # server resources, not how text is split
ParamValue = Annotated[str, Meta(max_length=MAX_NAME_CHARS)] | int | float | bool | None


class GenerationStatus(Struct, omit_defaults=True):
    """Whether a Stable Diffusion model is configured and found (not loaded), and
    the choices a generation request takes."""

    configured: bool
    schedulers: list[str]
    max_images: int
    max_steps: int
    min_side: int
    max_side: int
    model: str | None = None
    detail: str | None = None  # when not configured: exactly what to set


class StoreStatus(Struct):
    documents: int
    chunks: int
    embedding: dict[str, Any]
    chunker: dict[str, Any] | str | None  # recorded by a repair; each document keeps its own
    index: dict[str, Any]
    notices: list[str]
    generation: GenerationStatus


class ChunkerInfo(Struct):
    name: str
    parameters: dict[str, Any]  # name -> default
    tokenizers: list[str]


class ChunkerList(Struct):
    chunkers: list[ChunkerInfo]
    default: dict[str, Any]  # the method and parameters notes are ingested with


class PreviewRequest(Strict):
    """Either a stored note (``doc_id``) or a ``text``; ``method`` and ``params`` as
    ``GET /chunkers`` lists them."""

    method: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS)]
    params: Annotated[dict[Annotated[str, Meta(max_length=MAX_NAME_CHARS)], ParamValue], Meta(max_length=16)] = {}
    doc_id: Annotated[int, Meta(ge=0, le=MAX_ID)] | None = None
    text: Annotated[str, Meta(max_length=MAX_PREVIEW_CHARS)] | None = None


class PreviewChunk(Struct, omit_defaults=True):
    index: int
    start: int
    end: int
    token_count: int
    spans: list[list[int]] | None = None  # semantic "group" mode: the separate passages


class ChunkPreview(Struct):
    method: str
    params: dict[str, Any]
    doc_id: int | None
    chars: int
    chunks: list[PreviewChunk]


def generation_status(backend: DiffusersBackend) -> GenerationStatus:
    choices = {"schedulers": list(SCHEDULERS), "max_images": MAX_IMAGES, "max_steps": MAX_STEPS, "min_side": MIN_SIDE,
               "max_side": MAX_SIDE}
    try:
        resolve_model(backend.settings)  # finds the files; loads nothing
    except ModelNotFoundError as exc:
        return GenerationStatus(configured=False, detail=str(exc), **choices)
    return GenerationStatus(configured=True, model=backend.model_name, **choices)


@get("/status", sync_to_thread=True, responses=errors(503))
def store_status(notebook: Injected[Notebook], backend: Injected[Lazy[DiffusersBackend]]) -> StoreStatus:
    """The store (counts, embedding model, index, notices such as a rebuilt index)
    and whether image generation has a model. The data folder's path is not shown."""
    status = notebook.status()
    status.pop("data_dir", None)
    return msgspec.convert({**status, "generation": generation_status(backend.get())}, StoreStatus)


@get("/chunkers", sync_to_thread=False, responses=errors())
def list_chunkers(ingestor: Injected[Ingestor]) -> ChunkerList:
    out = []
    for name in chunkers.available():
        params = chunkers.parameters(chunkers.registry.chunker_class(name))
        out.append(ChunkerInfo(name=name, parameters={k: v for k, v in params.items() if k not in HIDDEN_PARAMETERS},
                               tokenizers=list(TOKENIZER_NAMES)))
    default = ingestor.chunking
    return ChunkerList(chunkers=out, default={"method": default.method, **dict(default.params)})


def _chunk_settings(data: PreviewRequest, threads: int | None) -> ChunkSettings:
    hidden = sorted(HIDDEN_PARAMETERS & set(data.params))
    if hidden:
        raise ClientException(f"parameter {hidden[0]!r} is the server's to set, not a preview's")
    tokenizer = data.params.get("tokenizer")
    if tokenizer is not None and tokenizer not in TOKENIZER_NAMES:  # a folder path would read the server's files
        raise ClientException(f"tokenizer must be one of {', '.join(TOKENIZER_NAMES)}, got {tokenizer!r}")
    return ChunkSettings.of(data.method, threads=threads, **data.params)


@post("/chunks/preview", status_code=200, responses=errors(400, 404, 413, 429, 503))
async def preview_chunks(notebook: Injected[Notebook], ingestor: Injected[Ingestor],
                         parse_limiter: Injected[anyio.CapacityLimiter], data: JSONBody[PreviewRequest]) -> ChunkPreview:
    """How ``method`` with ``params`` splits a stored note or a text: each chunk's
    offsets and token count. Nothing is stored."""
    if (data.doc_id is None) == (data.text is None):
        raise ClientException("send exactly one of 'doc_id' (a stored note) or 'text'")
    settings = _chunk_settings(data, ingestor.chunking.threads)

    def run() -> ChunkPreview:
        text = data.text if data.text is not None else notebook.document(data.doc_id).text
        if len(text) > MAX_PREVIEW_CHARS:
            raise HTTPException(status_code=413, detail=f"the note is {len(text)} characters; a preview takes at most {MAX_PREVIEW_CHARS}")
        found = settings.chunker()(text)
        if len(found) > MAX_PREVIEW_CHUNKS:
            raise ClientException(f"{len(found)} chunks; a preview shows at most {MAX_PREVIEW_CHUNKS}: raise max_tokens")
        chunks = [PreviewChunk(index=c.index, start=c.start, end=c.end, token_count=c.token_count,
                               spans=[list(s) for s in c.spans] if c.spans else None) for c in found]
        return ChunkPreview(method=data.method, params=dict(data.params), doc_id=data.doc_id, chars=len(text), chunks=chunks)

    return await anyio.to_thread.run_sync(run, limiter=parse_limiter)


ROUTES = [store_status, list_chunkers, preview_chunks]
