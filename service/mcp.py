"""The MCP server (``noteloom mcp``): the notebook's search, answers, exact reads,
document list, status and prompt builder as Model Context Protocol tools, and
each document as a resource (``noteloom://documents/<id>``).

``NotebookTools`` holds the tools' bodies, free of the protocol: they call the
same notebook methods as the HTTP routes and shape their results with the same
response models, so a hit or citation here is the one ``POST /search`` or
``POST /ask`` returns (plus the document's resource URI). A library error the API
answers with a 4xx becomes an MCP tool error carrying the API's message. Offsets
index the stored text, and ``read`` returns exactly that text's slice.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Annotated, Any, Callable, Iterator, Literal

import msgspec

from ingest.sources import MAX_COLLECTION_CHARS, MAX_SOURCE_CHARS
from retrieval import Notebook
from retrieval.errors import DocumentNotFoundError, RetrievalError
from retrieval.integrity import translate
from retrieval.records import document_id
from retrieval.search import MAX_FILTER_CHARS, MAX_FILTER_TAGS, MAX_K
from runtime import MissingDependencyError

from . import models
from .errors import status_for
from .responses import answer_response, search_response

try:  # the tools' argument schemas
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as exc:  # pragma: no cover - [mcp] brings it
    raise MissingDependencyError("pydantic", "the MCP server", "mcp") from exc

URI_PREFIX = "noteloom://documents/"
MAX_CONTEXT_CHARS = 10_000
MIME_BY_KIND = {"markdown": "text/markdown", "html": "text/plain", "text": "text/plain", "pdf": "text/plain"}

Query = Annotated[str, Field(max_length=models.MAX_QUERY_CHARS, description="what to look for")]
K = Annotated[int, Field(ge=1, le=MAX_K, description="how many passages")]
Mode = Literal["hybrid", "dense", "lexical"]
MinRelativeScore = Annotated[float, Field(ge=0, le=1, description=(
    "return fewer passages when the rest score far below the best: after the first, a passage stays only if its "
    "BM25 score or cosine is at least this fraction of the best (hybrid: only when the first passage leads both "
    "rankings); omitted: the server's setting for hybrid search, 0: never"))]
Offset = Annotated[int, Field(ge=0, le=models.MAX_OFFSET)]
Source = Annotated[str, Field(min_length=1, max_length=MAX_COLLECTION_CHARS + 1 + MAX_SOURCE_CHARS,
                              description="collection/path, as hits and citations name it")]


class Filters(BaseModel):
    """Which documents a search may return (the API's ``filters``)."""

    model_config = ConfigDict(extra="forbid")
    source_prefix: Annotated[str, Field(max_length=MAX_FILTER_CHARS)] | None = None
    tags: Annotated[list[Annotated[str, Field(max_length=MAX_FILTER_CHARS)]], Field(max_length=MAX_FILTER_TAGS)] = []


def document_uri(doc_id: int) -> str:
    return f"{URI_PREFIX}{doc_id}"


class ReadError(RetrievalError):
    """A ``read`` that names no document, or a range outside it."""


@contextlib.contextmanager
def api_errors(notebook: Notebook) -> Iterator[None]:
    """A library error the HTTP API answers with a 4xx (or a 503/507 for the store)
    as an MCP tool error with the same message; anything else is a crash."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        yield
    except Exception as exc:
        if isinstance(exc, (sqlite3.DatabaseError, OSError)):
            exc = translate(exc, notebook.folder) or exc
        if status_for(exc) == 500:
            raise
        raise ToolError(str(exc)) from exc


class NotebookTools:
    """What each tool does, as plain calls returning JSON-ready dicts.
    ``prompt_builder``: builds the ``PromptBuilder`` on first use (it loads the CLIP tokenizer)."""

    def __init__(self, notebook: Notebook, prompt_builder: Callable[[], Any] | None = None) -> None:
        self.notebook = notebook
        self._make_builder = prompt_builder
        self._builder = None

    def search(self, query: str, k: int = 5, filters: dict | None = None, mode: str = "hybrid",
               min_relative_score: float | None = None) -> dict:
        out = msgspec.to_builtins(search_response(self.notebook, query, k, filters or None, mode, min_relative_score))
        for hit in out["hits"]:
            hit["uri"] = document_uri(hit["doc_id"])
        return out

    def ask(self, question: str, k: int = 5) -> dict:
        out = msgspec.to_builtins(answer_response(self.notebook, question, k))
        for citation in out["citations"]:
            citation["uri"] = document_uri(citation["doc_id"])
        return out

    def read(self, source: str | None = None, doc_id: int | None = None, chunk_id: int | None = None,
             start: int | None = None, end: int | None = None, context: int = 0) -> dict:
        named = [name for name, value in (("source", source), ("doc_id", doc_id), ("chunk_id", chunk_id)) if value is not None]
        if len(named) != 1:
            raise ReadError(f"give exactly one of source, doc_id or chunk_id; got {', '.join(named) or 'none'}")
        if chunk_id is not None:
            if start is not None or end is not None:
                raise ReadError("a chunk_id gives its own start and end; leave start and end out")
            chunk = self.notebook.backend.chunks([chunk_id]).get(chunk_id)
            if chunk is None:
                raise DocumentNotFoundError(f"no chunk with id {chunk_id}")
            doc_id, start, end = chunk.doc_id, chunk.start, chunk.end
        elif source is not None:
            doc_id = document_id(source)
        try:
            doc = self.notebook.document(doc_id)
        except DocumentNotFoundError:
            if source is None:
                raise
            raise DocumentNotFoundError(f"no document with source {source!r}") from None
        text = doc.text
        start = 0 if start is None else start
        end = len(text) if end is None else end
        if not 0 <= start <= end <= len(text):
            raise ReadError(f"start and end must satisfy 0 <= start <= end <= {len(text)} (the length of "
                            f"{doc.source}), got start={start}, end={end}")
        return {"doc_id": doc.id, "source": doc.source, "title": doc.title, "uri": document_uri(doc.id),
                "start": start, "end": end, "length": len(text), "text": text[start:end],
                "before": text[max(0, start - context):start], "after": text[end:end + context]}

    def list_documents(self, limit: int = 100, offset: int = 0) -> dict:
        counts = self.notebook.counts()
        docs = msgspec.convert(self.notebook.documents(limit=limit, offset=offset), list[models.DocumentSummary])
        out = msgspec.to_builtins(models.DocumentList(documents=docs, total=counts.documents, chunks=counts.chunks))
        for doc in out["documents"]:
            doc["uri"] = document_uri(doc["id"])
        return out

    def status(self) -> dict:
        return self.notebook.status()

    def build_prompt(self, idea: str, style: str | None = None, budget: int = 75, k: int = 5, negative: bool = True,
                     long: bool = False) -> dict:
        if self._builder is None:
            self._builder = self._make_builder() if self._make_builder else _prompt_builder(self.notebook)
        result = self._builder.build(idea, style=style, k=k, budget=budget, negative=negative, long=long)
        out = result.to_dict()
        out["tokens"] = {"prompt": result.tokens["prompt"], "negative_prompt": result.tokens["negative_prompt"]}
        return msgspec.to_builtins(msgspec.convert(out, models.PromptResponse))

    def resource(self, doc_id: int) -> str:
        """A document's stored text, which citations' offsets index."""
        return self.notebook.document(doc_id).text

    def resources(self) -> list[dict]:
        out, offset = [], 0
        while page := self.notebook.documents(limit=1000, offset=offset):
            out += [{"uri": document_uri(d.id), "name": d.source, "title": d.title, "kind": d.kind} for d in page]
            offset += len(page)
        return out


def _prompt_builder(notebook: Notebook):
    from imagegen import PromptBuilder

    return PromptBuilder(notebook)


def build_server(tools: NotebookTools, *, name: str = "noteloom"):
    """An ``MCPServer`` whose tools and resources call ``tools`` (on worker threads)."""
    import anyio

    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ResourceNotFoundError
        from mcp.types import Resource, ToolAnnotations
    except ImportError as exc:
        raise MissingDependencyError("mcp", "the MCP server", "mcp") from exc

    class NotesServer(MCPServer):
        async def list_resources(self) -> list[Resource]:  # one per document, as stored now
            listed = await anyio.to_thread.run_sync(tools.resources)
            templates = await super().list_resources()
            return templates + [Resource(uri=r["uri"], name=r["name"], title=r["title"] or None,
                                         mime_type=MIME_BY_KIND.get(r["kind"], "text/plain")) for r in listed]

    server = NotesServer(name, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def call(method: Callable[..., dict], **kwargs: Any) -> dict:
        with api_errors(tools.notebook):
            return method(**kwargs)

    @server.tool(annotations=read_only)
    def search(query: Query, k: K = 5, filters: Filters | None = None, mode: Mode = "hybrid",
               min_relative_score: MinRelativeScore | None = None) -> dict[str, Any]:
        """Passages of the notes that match ``query``, best first: each hit has its document's
        source, start and end (character offsets into the stored text), text and score."""
        return call(tools.search, query=query, k=k, filters=filters.model_dump() if filters else None, mode=mode,
                    min_relative_score=min_relative_score)

    @server.tool(annotations=read_only)
    def ask(question: Query, k: K = 5) -> dict[str, Any]:
        """An extractive answer from the notes, each sentence an exact citation (source, start, end, text)."""
        return call(tools.ask, question=question, k=k)

    @server.tool(annotations=read_only)
    def read(source: Source | None = None, doc_id: Annotated[int, Field(ge=0, le=models.MAX_ID)] | None = None,
             chunk_id: Annotated[int, Field(ge=0, le=models.MAX_ID)] | None = None, start: Offset | None = None,
             end: Offset | None = None,
             context: Annotated[int, Field(ge=0, le=MAX_CONTEXT_CHARS, description="characters shown before and after")] = 0,
             ) -> dict[str, Any]:
        """The exact stored text of a document (by ``source`` or ``doc_id``), or of ``start``..``end`` in
        it, or of a chunk (``chunk_id``); ``context`` adds that many characters on each side."""
        return call(tools.read, source=source, doc_id=doc_id, chunk_id=chunk_id, start=start, end=end, context=context)

    @server.tool(annotations=read_only)
    def list_documents(limit: Annotated[int, Field(ge=1, le=1000)] = 100, offset: Offset = 0) -> dict[str, Any]:
        """The stored documents (id, source, title, tags, chunks, resource uri), a page at a time."""
        return call(tools.list_documents, limit=limit, offset=offset)

    @server.tool(annotations=read_only)
    def status() -> dict[str, Any]:
        """What the data folder holds: documents, chunks, embedding model, chunker, index."""
        return call(tools.status)

    @server.tool(annotations=read_only)
    def build_prompt(idea: Annotated[str, Field(max_length=models.MAX_IDEA_CHARS)],
                     style: Annotated[str, Field(max_length=models.MAX_IDEA_CHARS)] | None = None,
                     budget: Annotated[int, Field(ge=1, le=75, description="CLIP content tokens")] = 75,
                     k: Annotated[int, Field(ge=0, le=50, description="note passages to draw on")] = 5,
                     negative: bool = True, long: bool = False) -> dict[str, Any]:
        """A Stable Diffusion prompt from ``idea`` and the notes, within CLIP's token budget: the prompt,
        tokens used, the phrases dropped to fit, and the passages drawn on."""
        return call(tools.build_prompt, idea=idea, style=style, budget=budget, k=k, negative=negative, long=long)

    @server.resource(URI_PREFIX + "{doc_id}", name="document", description="a stored document's text, as citations index it")
    def document(doc_id: str) -> str:
        if not doc_id.isdigit():
            raise ResourceNotFoundError(f"no document with id {doc_id!r}")
        try:
            return tools.resource(int(doc_id))
        except DocumentNotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from None

    return server


def http_app(server, api_key: str | None):
    """``server`` as streamable HTTP (at ``/mcp``), each request checked for the HTTP
    API's key (``X-API-Key`` or ``Authorization: Bearer``) as the API checks it."""
    import json

    from .app import authorised

    inner = server.streamable_http_app()
    refusal = json.dumps({"status_code": 401, "error": "NotAuthorizedException",
                          "detail": "missing or wrong API key: send it as X-API-Key or Authorization: Bearer"}).encode()

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if not authorised(_Headers(headers), api_key):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": refusal})
                return
        await inner(scope, receive, send)

    return app


class _Headers:
    """What ``authorised`` reads of a connection: its headers (lower-case names)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


INSTRUCTIONS = ("Search and read the user's notes. Cite with source, start and end: they are character offsets "
                "into the stored text, and `read` (or the document's resource) returns exactly that text.")
