"""The HTTP contract: every bad request is a 4xx JSON error naming the field and
the limit (integer ranges, nesting depth, list and string lengths, NULs, multipart
limits, framework errors); an unexpected exception is a 500 with an error id and a
logged traceback; the OpenAPI schema declares every body, response model and status,
and schemathesis finds no server error and no response that breaks it."""

import json
import logging
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from tests.helpers import serve, stop

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "contract-key"
UPLOAD_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app

    app = create_app(ServiceConfig(data_dir=str(tmp_path_factory.mktemp("contract")), api_key=API_KEY,
                                   max_upload_bytes=UPLOAD_LIMIT), warm=False)
    with TestClient(app=app) as test_client:
        test_client.headers["X-API-Key"] = API_KEY
        yield test_client


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status_code"] == status and body["error"] and body["detail"], body
    return body


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- integer ranges ------------------------------------------------------------------


@pytest.mark.parametrize("value,limit", [(2**63, "<= 9007199254740991"), (2**64, "<= 9007199254740991"), (-1, ">= 0")])
@pytest.mark.parametrize("method", ["get", "delete"])
def test_document_ids_out_of_range_are_400_naming_the_field_and_limit(client, method, value, limit):
    body = error_of(getattr(client, method)(f"/documents/{value}"), 400)
    assert body["detail"] == f"doc_id (path): Expected `int` {limit}, got {value}"


@pytest.mark.parametrize("query,needle", [
    ({"offset": 2**63}, "offset (query): Expected `int` <= 2147483647"), ({"offset": 2**64}, "offset (query)"),
    ({"offset": -1}, "offset (query): Expected `int` >= 0"), ({"offset": "9" * 5000}, "offset (query)"),
    ({"limit": 0}, "limit (query): Expected `int` >= 1"), ({"limit": 2**63}, "limit (query): Expected `int` <= 1000"),
])
def test_paging_out_of_range_is_400(client, query, needle):
    assert needle in error_of(client.get("/documents", params=query), 400)["detail"]


@pytest.mark.parametrize("path,body,needle", [
    ("/search", {"query": "x", "k": 2**63}, "k (body): Expected `int` <= 100"),
    ("/ask", {"question": "x", "k": -(2**64)}, "k (body)"),
    ("/prompts", {"idea": "x", "budget": 2**64}, "budget (body)"),
    ("/generate", {"prompt": "x", "seed": 2**64}, "seed (body)"),
    ("/generate", {"prompt": "x", "seeds": [1, 2**63]}, "seeds[1] (body): Expected `int` <= 4294967295"),
    ("/generate", {"prompt": "x", "steps": -1}, "steps (body): Expected `int` >= 1, got -1"),
])
def test_body_integers_out_of_range_are_400(client, path, body, needle):
    assert needle in error_of(client.post(path, json=body), 400)["detail"]


# --- nesting, list and string lengths --------------------------------------------------


@pytest.mark.parametrize("path,prefix", [
    ("/search", b'{"query": '), ("/search", b'{"query": "x", "filters": '), ("/search", b'{"query": "x", "filters": {"tags": '),
    ("/prompts", b'{"idea": "x", "tokens": '), ("/ask", b'{"question": '), ("/documents", b'{"source": "a.md", "text": '),
    ("/generate", b'{"seeds": '),
])
def test_json_nested_10000_deep_is_400(client, path, prefix):
    r = client.post(path, content=prefix + deep(10_000) + b"}", headers={"content-type": "application/json"})
    error_of(r, 400)


def test_1200_tags_are_refused_before_sqlite_sees_them(client):
    body = error_of(client.post("/search", json={"query": "x", "filters": {"tags": [f"t{i}" for i in range(1200)]}}), 400)
    assert body["detail"] == "filters.tags (body): Expected `array` of length <= 64, got a list of 1200"


def test_search_filter_caps_hold_in_the_library_too(client):
    from retrieval.errors import RetrievalError

    nb = client.app.state.notebook
    with pytest.raises(RetrievalError, match="filter tags has 1200 entries; the limit is 64"):
        nb.search("x", filters={"tags": ["t"] * 1200})
    with pytest.raises(RetrievalError, match="2000 characters; the limit is 1024"):
        nb.search("x", filters={"source_prefix": "p" * 2000})


@pytest.mark.parametrize("path,body,needle", [
    ("/search", {"query": "x" * 10_001}, "query (body): Expected `str` of length <= 10000"),
    ("/search", {"query": "x", "filters": {"tags": ["t" * 1025]}}, "filters.tags[0] (body)"),
    ("/prompts", {"idea": "x", "tokens": ["<t>"] * 65}, "tokens (body): Expected `array` of length <= 64"),
    ("/documents", {"text": "x", "source": "s" * 1025}, "source (body): Expected `str` of length <= 1024"),
    ("/documents", {"text": "x", "source": "a.md", "kind": "pdf"}, "kind (body): Invalid enum value 'pdf'"),
    ("/generate", {"prompt": "x" * 4001}, "prompt (body)"),
])
def test_strings_and_lists_over_their_limits_are_400(client, path, body, needle):
    assert needle in error_of(client.post(path, json=body), 400)["detail"]


# --- one NUL rule, multipart limits, framework errors -----------------------------------


@pytest.mark.parametrize("at", [0, 100, 8 * 1024, 9000, 50_000])
def test_a_nul_anywhere_in_json_text_is_415(client, at):
    text = "a" * at + "\x00" + "b" * 10
    body = error_of(client.post("/documents", json={"text": text, "source": "nul.md"}), 415)
    assert f"NUL character (U+0000) at offset {at}" in body["detail"]
    assert client.get("/documents").json()["total"] == 0


def test_multipart_over_the_limits_is_413(client):
    too_many = [("images", (f"{i}.png", b"x", "image/png")) for i in range(70)]
    body = error_of(client.post("/score", data={"prompt": "x"}, files=too_many), 413)
    assert "at most 64 parts" in body["detail"]
    body = error_of(client.post("/documents", files={"file": ("big.md", b"w" * (UPLOAD_LIMIT + 1), "text/markdown")}), 413)
    assert f"the limit is {UPLOAD_LIMIT}" in body["detail"]
    error_of(client.post("/documents", files={"file": ("huge.md", b"w" * (3 * UPLOAD_LIMIT), "text/markdown")}), 413)
    error_of(client.post("/generate", data={"request": "{}"}, files={"init_image": ("a.png", b"x" * (3 * UPLOAD_LIMIT), "image/png")}), 413)


def test_405_names_the_allowed_methods_and_unknown_routes_are_404_json(client):
    r = client.put("/documents")
    body = error_of(r, 405)
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"} and "allowed: " in body["detail"]
    assert error_of(client.patch("/search", json={}), 405)["detail"].startswith("PATCH is not allowed on /search")
    assert error_of(client.get("/no/such/route"), 404)["detail"] == "no route GET /no/such/route"
    error_of(client.get("/documents/abc"), 404)


def test_wrong_media_types_are_415(client):
    for path in ("/documents", "/generate", "/score"):
        error_of(client.post(path, content=b"x", headers={"content-type": "text/plain"}), 415)


def test_health_shows_counts_only_with_the_key(client):
    assert client.get("/health", headers={"X-API-Key": ""}).json() == {"status": "ok"}
    assert client.get("/health", headers={"X-API-Key": "wrong"}).json() == {"status": "ok"}
    assert set(client.get("/health").json()) == {"status", "documents", "chunks"}


# --- unexpected exceptions are 500s, never the client's fault ---------------------------


@pytest.mark.parametrize("exc", [ValueError("internal detail 1"), TypeError("internal detail 2"), KeyError("internal detail 3")])
def test_a_bug_is_a_500_with_an_error_id_and_a_logged_traceback(client, monkeypatch, caplog, exc):
    def broken(*_args, **_kwargs):
        raise exc

    monkeypatch.setattr(client.app.state.notebook, "documents", broken)
    with caplog.at_level(logging.ERROR, logger="noteloom.service"):
        body = error_of(client.get("/documents"), 500)
    assert "internal detail" not in json.dumps(body) and len(body["error_id"]) == 12
    record = next(r for r in caplog.records if body["error_id"] in r.getMessage())
    assert record.exc_info[0] is type(exc) and "GET /documents" in record.getMessage()


def test_only_the_projects_own_exceptions_are_4xx():
    from chunkers.errors import ChunkingError
    from imagegen.errors import GenerationError, PromptError
    from ingest.errors import IngestError
    from retrieval.errors import DocumentNotFoundError, RetrievalError
    from service.errors import status_for

    for exc in (ValueError(), TypeError(), KeyError(), LookupError(), IndexError(), RuntimeError()):
        assert status_for(exc) == 500, exc
    for exc in (ChunkingError(), PromptError(), GenerationError(), IngestError(), RetrievalError()):
        assert status_for(exc) == 400, exc
    assert status_for(DocumentNotFoundError()) == 404


# --- the schema ------------------------------------------------------------------------


def test_openapi_declares_bodies_response_models_and_statuses(client):
    schema = client.get("/schema/openapi.json").json()
    components = schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if method in ("post", "put", "patch"):
                assert operation["requestBody"]["content"], (method, path)
            assert "500" in responses and (path == "/health" or "401" in responses), (method, path)
            for status, response in responses.items():
                content = response.get("content") or {}
                assert content, (method, path, status)
                if "application/json" in content:
                    ref = content["application/json"]["schema"].get("$ref", "")
                    assert ref.rsplit("/", 1)[-1] in components, (method, path, status)  # a named model, not dict[str, Any]
                if status >= "400":
                    assert ref.endswith("/Error"), (method, path, status)
    assert set(schema["paths"]["/documents"]["post"]["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert set(schema["paths"]["/generate"]["post"]["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert set(schema["paths"]["/score"]["post"]["requestBody"]["content"]) == {"multipart/form-data"}
    assert {"201", "413", "415", "422", "503", "507"} <= set(schema["paths"]["/documents"]["post"]["responses"])
    assert {"202", "409", "429", "503"} <= set(schema["paths"]["/generate"]["post"]["responses"])


def test_every_limit_of_a_request_model_shows_in_openapi(client):
    """msgspec's own schema of each request Struct is the truth; the served document
    carries each of its bounds (litestar alone left out bounds of 0 and list items')."""
    import msgspec

    from service import explore, models

    document = client.get("/schema/openapi.json").json()
    components = dict(document["components"]["schemas"])
    for path, model in (("/generate", "GenerateBody"), ("/documents", "TextDocument")):  # inlined bodies
        components[model] = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    bounds = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems")
    checked = 0
    for name in ("SearchRequest", "SearchFilters", "AskRequest", "PromptRequest", "PreviewRequest", "GenerateBody", "TextDocument"):
        model = getattr(models, name, None) or getattr(explore, name)
        theirs = msgspec.json.schema_components([model])[1][name]["properties"]
        for field, want in theirs.items():
            want = next((b for b in want.get("anyOf", ()) if b.get("type") != "null"), want)
            have = components[name]["properties"][field]
            have_items = next((b["items"] for b in (have, *have.get("oneOf", ())) if "items" in b), {})
            for where_want, where_have in ((want, have), (want.get("items") or {}, have_items)):
                for key in bounds:
                    if key in where_want:
                        assert where_have.get(key) == where_want[key], (name, field, key)
                        checked += 1
    assert checked >= 20


def test_creating_the_app_raises_no_deprecation_warning(tmp_path):
    from litestar.utils.deprecation import LitestarDeprecationWarning  # noqa: F401  (the class the check looks for)

    from service.app import ServiceConfig, create_app

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        create_app(ServiceConfig(data_dir=str(tmp_path)), warm=False)
    assert [str(w.message) for w in seen if "Litestar" in type(w.message).__name__] == []


# --- schemathesis against a real server ---------------------------------------------------

SCHEMATHESIS_CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
                       "response_headers_conformance,response_schema_conformance")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """A real server on 127.0.0.1 with no Stable Diffusion or CLIP weights, so that
    /generate and /score answer their declared 503 at once."""
    data = tmp_path_factory.mktemp("schemathesis")
    proc, base = serve(data, {"HF_HOME": str(data / "hf"), "NOTELOOM_API_KEY": API_KEY,
                              "NOTELOOM_SD_MODEL": str(data / "no-sd"), "NOTELOOM_CLIP_PRETRAINED": str(data / "no-clip.pt")})
    try:
        yield base, data
    finally:
        stop(proc)


def test_schemathesis_finds_no_server_error_and_no_nonconforming_response(live_server, tmp_path):
    """Every operation: the schema's examples, its coverage cases (boundaries and
    negations of every constraint) and 25 fuzzed cases, deterministic. A 503 is the
    declared answer of /generate and /score without weights; a 500 always fails."""
    base, _ = live_server
    config = tmp_path / "schemathesis.toml"
    config.write_text('[checks.not_a_server_error]\nexpected-statuses = ["2xx", "3xx", "4xx", "503"]\n')
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", base + "/schema/openapi.json",
               "-H", f"X-API-Key: {API_KEY}", "--checks", SCHEMATHESIS_CHECKS, "--phases", "examples,coverage,fuzzing",
               "--max-examples", "25", "--generation-deterministic", "--request-timeout", "30", "--no-color"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated and generated[1] == generated[2] and int(generated[1]) > 16 * 25, summary
    assert "Tested: 16" in run.stdout, summary  # every operation was reached
