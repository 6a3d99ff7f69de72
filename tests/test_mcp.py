"""`noteloom mcp` end to end: the SDK's own client talks to the server over stdio,
against a data folder ingested from samples/ (hashing embedder, so no model loads).
Every citation `search` and `ask` return slices exactly what `read` and the
document's resource return; results and error messages are the HTTP API's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from tests.helpers import BASE_ENV, ROOT

NOTES = ROOT / "samples" / "notes"
TOOLS = {"search", "ask", "read", "list_documents", "status", "build_prompt"}
QUERIES = ["LoRA rank and alpha", "how do I pick a chunk size", "classifier-free guidance scale"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from ingest import Ingestor
    from retrieval import Notebook

    folder = tmp_path_factory.mktemp("mcp") / "data"
    nb = Notebook(folder, embedding_model="hashing")
    report = Ingestor(nb).ingest_paths([NOTES])
    nb.close()
    assert len(report.added) >= 10 and not report.failed
    return folder


def structured(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


@pytest.fixture(scope="module")
def session(data) -> dict:
    """One stdio session; every exchange the tests look at, recorded."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=["-m", "service.cli", "--data", str(data), "mcp"],
                                   env=dict(BASE_ENV), cwd=str(ROOT))
    out: dict = {}

    async def talk() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            out["tools"] = (await client.list_tools()).tools
            out["search"] = [structured(await client.call_tool("search", {"query": q, "k": 4})) for q in QUERIES]
            out["lexical"] = structured(await client.call_tool("search", {"query": "rank", "k": 3, "mode": "lexical",
                                                                          "filters": {"source_prefix": "notes/sd-"}}))
            out["ask"] = [structured(await client.call_tool("ask", {"question": q})) for q in QUERIES]
            cited = [h for s in out["search"] for h in s["hits"]] + [c for a in out["ask"] for c in a["citations"]]
            out["reads"] = []
            for c in cited:
                by_source = structured(await client.call_tool("read", {"source": c["source"], "start": c["start"], "end": c["end"], "context": 20}))
                by_id = structured(await client.call_tool("read", {"doc_id": c["doc_id"], "start": c["start"], "end": c["end"]}))
                by_chunk = structured(await client.call_tool("read", {"chunk_id": c["chunk_id"]})) if "chunk_id" in c else None
                resource = (await client.read_resource(c["uri"])).contents[0].text
                out["reads"].append((c, by_source, by_id, by_chunk, resource))
            out["documents"] = structured(await client.call_tool("list_documents", {"limit": 1000}))
            out["status"] = structured(await client.call_tool("status", {}))
            out["resources"] = (await client.list_resources()).resources
            out["templates"] = (await client.list_resource_templates()).resource_templates
            out["prompt"] = structured(await client.call_tool("build_prompt", {"idea": "a lighthouse at dusk", "budget": 20}))
            out["errors"] = {
                name: await client.call_tool(tool, args) for name, tool, args in [
                    ("empty query", "search", {"query": "  "}),
                    ("unknown id", "read", {"doc_id": 12345}),
                    ("unknown source", "read", {"source": "notes/nope.md"}),
                    ("two names", "read", {"source": "notes/x.md", "doc_id": 1}),
                    ("range", "read", {"source": cited[0]["source"], "start": 5, "end": 10**9}),
                    ("k", "search", {"query": "x", "k": 10**6}),
                ]}
            out["missing resource"] = None
            try:
                await client.read_resource("noteloom://documents/12345")
            except Exception as exc:  # the SDK raises the server's protocol error
                out["missing resource"] = str(exc)

    anyio.run(talk)
    return out


def test_the_tools_and_their_schemas(session):
    tools = {t.name: t for t in session["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and tool.input_schema["type"] == "object"
        assert tool.annotations.read_only_hint is True
    search = tools["search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["k"]["maximum"] == 100 and search["properties"]["k"]["minimum"] == 1
    assert "lexical" in json.dumps(search["properties"]["mode"])
    assert set(tools["read"].input_schema["properties"]) == {"source", "doc_id", "chunk_id", "start", "end", "context"}


def test_every_citation_slices_what_read_and_the_resource_return(session):
    assert len(session["reads"]) >= 12
    for cited, by_source, by_id, by_chunk, resource in session["reads"]:
        assert by_source["text"] == cited["text"] == by_id["text"], cited["source"]
        assert (by_source["start"], by_source["end"], by_source["source"]) == (cited["start"], cited["end"], cited["source"])
        assert resource[cited["start"]:cited["end"]] == cited["text"]
        assert by_source["before"] == resource[max(0, cited["start"] - 20):cited["start"]]
        assert by_source["after"] == resource[cited["end"]:cited["end"] + 20]
        assert by_source["length"] == len(resource)
        if by_chunk is not None:
            assert (by_chunk["start"], by_chunk["end"], by_chunk["text"]) == (cited["start"], cited["end"], cited["text"])


def test_search_and_ask_answer_as_the_http_api_does(session, data):
    from litestar.testing import TestClient

    from retrieval import Notebook
    from service.app import ServiceConfig, create_app
    from service.settings import load_settings

    settings = load_settings({})
    nb = Notebook(data)
    app = create_app(ServiceConfig.from_settings(settings, data_dir=str(data)), settings=settings, notebook=nb, warm=False)
    try:
        with TestClient(app=app) as client:
            for query, got in zip(QUERIES, session["search"]):
                http = client.post("/search", json={"query": query, "k": 4}).json()
                assert [{k: v for k, v in h.items() if k != "uri"} for h in got["hits"]] == http["hits"]
                assert all(h["uri"] == f"noteloom://documents/{h['doc_id']}" for h in got["hits"])
            for query, got in zip(QUERIES, session["ask"]):
                http = client.post("/ask", json={"question": query}).json()
                assert [{k: v for k, v in c.items() if k != "uri"} for c in got["citations"]] == http["citations"]
                assert got["answer"] == http["answer"]
            empty = client.post("/search", json={"query": "  "}).json()["detail"]
            missing = client.get("/documents/12345").json()["detail"]
    finally:
        nb.close()
    errors = session["errors"]
    assert all(r.is_error for r in errors.values())
    assert errors["empty query"].content[0].text.endswith(empty)  # the API's 400 detail, word for word
    assert errors["unknown id"].content[0].text.endswith(missing)  # the API's 404 detail


def test_bad_reads_and_arguments_are_tool_errors_naming_the_problem(session):
    text = {name: r.content[0].text for name, r in session["errors"].items()}
    assert "no document with source 'notes/nope.md'" in text["unknown source"]
    assert "exactly one of source, doc_id or chunk_id; got source, doc_id" in text["two names"]
    assert "0 <= start <= end <=" in text["range"] and "end=1000000000" in text["range"]
    assert "k" in text["k"] and "100" in text["k"]
    assert "no document with id 12345" in session["missing resource"]


def test_filters_and_modes_pass_through(session):
    hits = session["lexical"]["hits"]
    assert hits and all(h["source"].startswith("notes/sd-") for h in hits)
    assert all(h["dense_score"] is None for h in hits)


def test_one_resource_per_document(session):
    docs = session["documents"]
    assert docs["total"] == session["status"]["documents"] == len(docs["documents"])
    listed = {str(r.uri): r for r in session["resources"]}
    assert set(listed) == {d["uri"] for d in docs["documents"]}
    assert {r.name for r in listed.values()} == {d["source"] for d in docs["documents"]}
    assert [t.uri_template for t in session["templates"]] == ["noteloom://documents/{doc_id}"]
    markdown = next(r for r in listed.values() if r.name.endswith(".md"))
    assert markdown.mime_type == "text/markdown"


def test_build_prompt_fits_its_budget(session):
    prompt = session["prompt"]
    assert prompt["prompt"] and prompt["tokens"]["prompt"] <= prompt["budget"] == 20
    assert isinstance(prompt["dropped"], list) and isinstance(prompt["context"], list)


def test_streamable_http_is_behind_the_api_key(data):
    import httpx
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from tests.helpers import free_port, stop

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "--data", str(data), "mcp", "--http", str(port)],
                            env={**BASE_ENV, "NOTELOOM_API_KEY": "sesame"}, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                refused = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the MCP HTTP server did not start: " + proc.stderr.read())
                time.sleep(0.3)
        assert refused.status_code == 401 and "missing or wrong API key" in refused.json()["detail"]
        assert httpx.post(url, json={}, headers={"X-API-Key": "wrong"}, timeout=5).status_code == 401

        async def talk() -> tuple[dict, dict]:
            async with httpx2.AsyncClient(headers={"Authorization": "Bearer sesame"}, timeout=60) as http:
                async with Client(streamable_http_client(url, http_client=http)) as client:
                    hits = structured(await client.call_tool("search", {"query": QUERIES[0], "k": 2}))["hits"]
                    read = structured(await client.call_tool("read", {"chunk_id": hits[0]["chunk_id"]}))
                    return hits[0], read

        hit, read = anyio.run(talk)
        assert read["text"] == hit["text"] and (read["start"], read["end"]) == (hit["start"], hit["end"])
    finally:
        stop(proc)
