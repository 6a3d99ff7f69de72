"""Typed request and response bodies of the HTTP API (msgspec Structs).

Every limit a request must respect is declared here, so it is checked before any
work and shows in the OpenAPI schema: integer ranges (ids, offsets, counts, seeds),
string lengths, list lengths. Bodies are typed all the way down (no ``Any`` in a
request), so JSON nesting cannot go deeper than the types. Errors, including the
framework's own (404, 405, 413), have one shape: ``Error``.

``declared_body`` is the one place that uses litestar's private schema generator: it
lets a route that reads its body itself (JSON or multipart) declare both in OpenAPI.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, Literal

import msgspec
from litestar.datastructures import UploadFile
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, Operation, RequestBody, Schema
from msgspec import Meta, Struct

from imagegen import CONTENT_TOKENS, MAX_IMAGES, MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE
from ingest.sources import MAX_COLLECTION_CHARS, MAX_SOURCE_CHARS
from retrieval.search import MAX_FILTER_CHARS, MAX_FILTER_TAGS, MAX_K

MAX_ID = 2**53 - 1  # document ids are 53-bit (retrieval.records.stable_id)
MAX_OFFSET = 2**31 - 1
MAX_QUERY_CHARS = 10_000
MAX_IDEA_CHARS = 4000
MAX_NAME_CHARS = 200  # a tag, a style, a scheduler, an added token
MAX_ADDED_TOKENS = 64
MAX_SCORE_IMAGES = 32
MAX_TEXT_CHARS = 50 * 1024 * 1024  # the loader's hard byte cap; the configured upload limit is checked too

Source = Annotated[str, Meta(min_length=1, max_length=MAX_SOURCE_CHARS)]
Collection = Annotated[str, Meta(min_length=1, max_length=MAX_COLLECTION_CHARS)]
Name = Annotated[str, Meta(max_length=MAX_NAME_CHARS)]
Query = Annotated[str, Meta(max_length=MAX_QUERY_CHARS)]
K = Annotated[int, Meta(ge=1, le=MAX_K)]
# retrieval.Searcher.search's min_relative_score: fewer hits when the rest score far below the best
# (omitted: the server's own for hybrid search; 0: none)
MinRelativeScore = Annotated[float, Meta(ge=0, le=1)]
Seed = Annotated[int, Meta(ge=0, le=MAX_SEED)]
Side = Annotated[int, Meta(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=8)]


class Strict(Struct, forbid_unknown_fields=True):
    pass


# --- requests ----------------------------------------------------------------------


class TextDocument(Strict):
    """``POST /documents`` as JSON. Server-side paths are never read."""

    text: Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]
    source: Source
    kind: Literal["markdown", "text", "html"] = "markdown"
    collection: Collection | None = None


class DocumentUpload(Struct):
    """``POST /documents`` as multipart: the file's suffix gives its kind."""

    file: UploadFile
    source: Source | None = None
    collection: Collection | None = None


class SearchFilters(Strict):
    source_prefix: Annotated[str, Meta(max_length=MAX_FILTER_CHARS)] | None = None
    tags: Annotated[list[Annotated[str, Meta(max_length=MAX_FILTER_CHARS)]], Meta(max_length=MAX_FILTER_TAGS)] = []


class SearchRequest(Strict):
    query: Query
    k: K = 5
    filters: SearchFilters | None = None
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    min_relative_score: MinRelativeScore | None = None


class AskRequest(Strict):
    question: Query
    k: K = 5


class PromptRequest(Strict):
    idea: Annotated[str, Meta(max_length=MAX_IDEA_CHARS)]
    style: Annotated[str, Meta(max_length=MAX_IDEA_CHARS)] | None = None
    budget: Annotated[int, Meta(ge=1, le=CONTENT_TOKENS)] = CONTENT_TOKENS
    negative: bool = True
    k: Annotated[int, Meta(ge=0, le=50)] = 5
    long: bool = False
    tokens: Annotated[list[Name], Meta(max_length=MAX_ADDED_TOKENS)] = []


class GenerateBody(Strict):
    """``POST /generate``: JSON, or the ``request`` field of a multipart body."""

    prompt: Annotated[str, Meta(max_length=MAX_IDEA_CHARS)] | None = None
    idea: Annotated[str, Meta(max_length=MAX_IDEA_CHARS)] | None = None
    from_notes: bool = False
    style: Annotated[str, Meta(max_length=MAX_IDEA_CHARS)] | None = None
    negative_prompt: Annotated[str, Meta(max_length=MAX_IDEA_CHARS)] | None = None
    n: Annotated[int, Meta(ge=1, le=MAX_IMAGES)] = 1
    steps: Annotated[int, Meta(ge=1, le=MAX_STEPS)] | None = None
    guidance_scale: Annotated[float, Meta(ge=0, le=30)] | None = None
    width: Side | None = None
    height: Side | None = None
    seed: Seed | None = None
    seeds: Annotated[list[Seed], Meta(min_length=1, max_length=MAX_IMAGES)] | None = None
    scheduler: Name | None = None
    strength: Annotated[float, Meta(gt=0, le=1)] = 0.75
    response: Literal["url", "base64"] = "url"
    wait: bool = True
    score: bool = True


class GenerateUpload(Struct):
    """``POST /generate`` as multipart: img2img (``init_image``) and inpainting (``mask_image``)."""

    request: Annotated[str, Meta(description="a GenerateBody as JSON")] = "{}"
    init_image: UploadFile | None = None
    mask_image: UploadFile | None = None


class ScoreUpload(Struct):
    """``POST /score``: up to 32 ``images`` scored against ``prompt``."""

    prompt: Annotated[str, Meta(min_length=1, max_length=MAX_IDEA_CHARS)]
    images: Annotated[list[UploadFile], Meta(min_length=1, max_length=MAX_SCORE_IMAGES)]


# --- responses ---------------------------------------------------------------------


class Error(Struct, omit_defaults=True):
    """Every error: the status, the exception's name, what went wrong. A 500 carries
    ``error_id``, the key to its traceback in the server log."""

    status_code: int
    error: str
    detail: str
    extra: list[dict[str, Any]] | dict[str, Any] | None = None
    error_id: str | None = None
    job: str | None = None


class Health(Struct, omit_defaults=True):
    """Counts only for a caller with the API key (when one is configured)."""

    status: str
    documents: int | None = None
    chunks: int | None = None


class DocumentAdded(Struct):
    id: int
    status: Literal["added", "updated", "unchanged"]
    source: str
    title: str
    kind: str
    chunks: int


class DocumentMeta(Struct):
    id: int
    source: str
    title: str
    kind: str
    mtime: float | None
    size: int | None
    content_hash: str
    chunker: str
    tags: list[str]
    added_at: float
    collection: str
    path: str


class DocumentSummary(DocumentMeta):
    chunks: int


class LinkOut(Struct):
    """A wiki link or embed of the document: ``text`` is the document's text[start:end]
    (empty for an embed), ``raw`` the markup as written; ``doc_id``/``source`` the note
    it opens, None when no stored document is its target."""

    start: int
    end: int
    text: str
    target: str
    heading: str | None
    raw: str
    embed: bool
    doc_id: int | None
    source: str | None


class Backlink(Struct):
    """A link to the document: ``text`` is ``source``'s text[start:end]."""

    doc_id: int
    source: str
    title: str
    start: int
    end: int
    text: str


class Document(DocumentMeta):
    text: str
    aliases: list[str] = []
    links: list[LinkOut] = []
    backlinks: list[Backlink] = []


class DocumentList(Struct):
    documents: list[DocumentSummary]
    total: int
    chunks: int


class Deleted(Struct):
    deleted: int
    source: str


class Hit(Struct):
    chunk_id: int
    doc_id: int
    source: str
    title: str
    start: int
    end: int
    text: str
    score: float
    headings: list[str]
    dense_score: float | None
    lexical_score: float | None
    named_score: float | None = None  # BM25 within the notes the query names by file name
    open_url: str | None = None  # opens the note in Obsidian (a vault) or as a file:// URL at its line


class SearchResponse(Struct):
    query: str
    mode: str
    hits: list[Hit]


class Citation(Struct):
    source: str
    doc_id: int
    start: int
    end: int
    text: str
    score: float
    open_url: str | None = None  # as ``Hit.open_url``


class AnswerResponse(Struct, omit_defaults=True):
    question: str
    answer: str
    covered: bool
    citations: list[Citation]
    generated: dict[str, Any] | None = None


class Passage(Struct):
    source: str
    start: int
    end: int
    text: str


class Phrase(Struct, omit_defaults=True):
    text: str
    weight: float
    section: str
    origin: str
    relevance: float
    protected: bool
    source: str | None = None
    start: int | None = None
    end: int | None = None
    describes: str | None = None


class Weight(Struct):
    text: str
    weight: float


class PromptTokens(Struct):
    prompt: int
    negative_prompt: int


class PromptResponse(Struct, omit_defaults=True):
    prompt: str
    negative_prompt: str
    prompt_plain: str
    negative_plain: str
    tokens: PromptTokens
    budget: int
    dropped: list[str]
    negative_dropped: list[str]
    weights: list[Weight]
    phrases: list[Phrase]
    context: list[Passage]
    chunks: list[str] | None = None
    chunk_tokens: list[int] | None = None
    negative_chunks: list[str] | None = None


class GeneratedImage(Struct, omit_defaults=True):
    seed: int
    score: float | None
    params: dict[str, Any]
    url: str | None = None
    base64: str | None = None


class Generation(Struct):
    """A generation job's result: the images, best CLIP score first; ``prompt`` is
    the built prompt when an idea was sent."""

    images: list[GeneratedImage]
    scoring: dict[str, Any] | None
    prompt: dict[str, Any] | None


class Generated(Generation):
    """``POST /generate``'s answer: the job's result and its id."""

    job: str


class JobAccepted(Struct):
    job: str
    status: str
    poll: str


class JobStatus(Struct, omit_defaults=True):
    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    steps_done: int
    steps_total: int
    error: Error | None = None
    result: dict[str, Any] | None = None


class JobCancel(Struct):
    job: str
    status: str


class ScoredImage(Struct):
    name: str | None
    score: float


class ScoreResponse(Struct):
    scores: list[float]
    model: str
    pretrained: str | None
    convention: str
    prompt_seen: str
    truncated: bool
    dropped_text: str
    order: list[int]
    images: list[ScoredImage]


# --- OpenAPI -----------------------------------------------------------------------

_MEANING = {
    202: "accepted: poll the job", 400: "a bad request: the detail names the field and the limit",
    401: "missing or wrong API key", 404: "no such resource", 409: "conflict (another embedding model, a cancelled job)",
    413: "a body, file or image over its size limit", 415: "an unsupported media or file type",
    422: "the document exceeded its parse time or memory", 429: "busy: try again shortly",
    500: "an unexpected error: error_id points at the traceback in the server log",
    503: "a model or the store is unavailable, or the server is overloaded", 507: "the disk is full",
}


def errors(*codes: int, public: bool = False) -> dict[int, ResponseSpec]:
    """``responses=`` for a route: each status with the ``Error`` shape; 500 always,
    401 unless the route is ``public``."""
    return {code: ResponseSpec(Error, description=_MEANING[code], generate_examples=False)
            for code in sorted({500, *codes, *(() if public else (401,))})}


def declared_body(*, json: type | None = None, multipart: type | None = None) -> type[Operation]:
    """An ``operation_class`` declaring the body of a route that reads it itself
    (litestar declares one media type per route, and this API takes JSON or
    multipart on /documents and /generate). The types must be flat (no nested
    Structs): their schemas are inlined."""
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar._openapi.schema_generation.plugins import openapi_schema_plugins
    from litestar.typing import FieldDefinition

    def inline(model: type):
        creator = SchemaCreator(plugins=openapi_schema_plugins, prefer_alias=True)
        reference = creator.for_field_definition(FieldDefinition.from_annotation(model))
        schema = creator.schema_registry.from_reference(reference).schema
        _complete(model, schema)
        return schema

    content = {media: OpenAPIMediaType(schema=inline(model))
               for media, model in (("application/json", json), ("multipart/form-data", multipart)) if model is not None}

    @dataclasses.dataclass
    class DeclaredBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(content=content, required=True)

    return DeclaredBody


# JSON Schema bound -> litestar's Schema attribute
_BOUNDS = {"minimum": "minimum", "exclusiveMinimum": "exclusive_minimum", "maximum": "maximum",
           "exclusiveMaximum": "exclusive_maximum", "minLength": "min_length", "maxLength": "max_length",
           "minItems": "min_items", "maxItems": "max_items"}


def complete_bounds(openapi: OpenAPI) -> OpenAPI:
    """Copy into ``openapi`` the bounds of this module's Structs that litestar's
    schema leaves out (a bound of 0, as in ``gt=0``, and those of list items),
    from msgspec's own JSON schema of the same types, so every limit shows."""
    models: dict[str, type[Struct]] = {}
    pending = [Struct]
    while pending:  # the service's Structs, wherever they are declared (here, explore.py, ...)
        for model in pending.pop().__subclasses__():
            pending.append(model)
            if model.__module__.startswith("service."):
                models[model.__name__] = model
    for name, schema in ((openapi.components.schemas if openapi.components else None) or {}).items():
        if name in models:
            _complete(models[name], schema)
    return openapi


def _complete(model: type[Struct], ours: Schema) -> None:
    try:
        theirs = msgspec.json.schema_components([model])[1][model.__name__].get("properties", {})
    except TypeError:  # a field msgspec cannot describe (an UploadFile)
        return
    for field, have in (ours.properties or {}).items():
        want = theirs.get(field)
        if want is None or not isinstance(have, Schema):
            continue
        want = next((b for b in want.get("anyOf", ()) if b.get("type") != "null"), want)  # Optional[X]: X's bounds
        _copy_bounds(want, have)
        items = next((b.items for b in (have, *(have.one_of or ())) if isinstance(getattr(b, "items", None), Schema)), None)
        if isinstance(want.get("items"), dict) and items is not None:
            _copy_bounds(want["items"], items)


def _copy_bounds(want: dict, have: Schema) -> None:
    for key, attribute in _BOUNDS.items():
        if key in want and getattr(have, attribute) is None:
            setattr(have, attribute, want[key])


def decode(data: bytes, model: type[Struct], what: str) -> Any:
    """JSON ``data`` as ``model``, or a 400 naming the field, the limit and the value sent."""
    from litestar.exceptions import ClientException

    try:
        return msgspec.json.decode(data, type=model)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).rpartition(" - at `$.")
        if not message:
            raise ClientException(f"invalid {what}: {exc}") from None
        key = at.rstrip("`")
        try:
            sent = sent_value(msgspec.json.decode(data), key)
        except (msgspec.DecodeError, RecursionError):
            sent = None
        raise ClientException(f"invalid {what}: {key} (body): {message}" + ("" if sent is None else f", got {sent}")) from None
    except msgspec.DecodeError as exc:
        raise ClientException(f"malformed JSON: {exc}") from None


def sent_value(body: Any, key: str) -> str | None:
    """What a client sent at ``key`` ("filters.tags[3]") in a decoded JSON body, shortened
    for a message; None when it is not there or is an object."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("[") and isinstance(body, list) and int(part[1:-1]) < len(body):
            body = body[int(part[1:-1])]
        elif isinstance(body, dict) and part in body:
            body = body[part]
        else:
            return None
    if isinstance(body, dict):
        return None
    return f"a list of {len(body)}" if isinstance(body, list) else short_repr(body)


def short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
