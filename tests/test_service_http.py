"""The HTTP API end to end: a real uvicorn server on 127.0.0.1, real requests."""

import json
from pathlib import Path

import httpx
import pytest

from tests.helpers import make_pdf, serve, stop

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, base = serve(tmp_path_factory.mktemp("data"), {"NOTELOOM_API_KEY": API_KEY})
    client = httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=60)
    yield client
    client.close()
    stop(proc)


@pytest.fixture(scope="module")
def loaded(server, notes_dir):
    for path in sorted(notes_dir.glob("*.md"))[:6]:
        with open(path, "rb") as fh:
            r = server.post("/documents", files={"file": (path.name, fh, "text/markdown")})
        assert r.status_code == 201, r.text
    return server


def test_health_needs_no_key_and_everything_else_does(server):
    assert httpx.get(str(server.base_url) + "/health").json()["status"] == "ok"
    r = httpx.post(str(server.base_url) + "/search", json={"query": "x"})
    assert r.status_code == 401 and "API key" in r.json()["detail"]
    r = httpx.get(str(server.base_url) + "/documents", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert httpx.get(str(server.base_url) + "/documents", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200


def test_openapi_schema_lists_the_routes(server):
    paths = server.get("/schema/openapi.json").json()["paths"]
    assert {"/documents", "/documents/{doc_id}", "/search", "/ask", "/health"} <= set(paths)


def test_upload_list_get_search_ask_delete(loaded):
    docs = loaded.get("/documents").json()
    assert docs["documents"] == sorted(docs["documents"], key=lambda d: d["source"]) and len(docs["documents"]) == 6
    r = loaded.post("/documents", json={"text": "# Lighting\n\nRim light outlines the subject with a bright edge.", "source": "api/lighting.md"})
    assert r.status_code == 201 and r.json()["status"] == "added" and r.json()["chunks"] == 1
    doc_id = r.json()["id"]
    again = loaded.post("/documents", json={"text": "# Lighting\n\nRim light outlines the subject with a bright edge.", "source": "api/lighting.md"})
    assert again.json()["status"] == "unchanged"
    doc = loaded.get(f"/documents/{doc_id}").json()
    assert doc["source"] == "uploads/api/lighting.md" and doc["text"].startswith("# Lighting")
    hits = loaded.post("/search", json={"query": "bright edge around the subject", "k": 3}).json()["hits"]
    assert hits[0]["source"] == "uploads/api/lighting.md" and doc["text"][hits[0]["start"] : hits[0]["end"]] == hits[0]["text"]
    assert "vector" not in hits[0]
    filtered = loaded.post("/search", json={"query": "chunk", "k": 5, "filters": {"source_prefix": "uploads/api/"}}).json()["hits"]
    assert [h["source"] for h in filtered] == ["uploads/api/lighting.md"]
    answer = loaded.post("/ask", json={"question": "What does rim light do?"}).json()
    assert answer["covered"] and answer["citations"][0]["source"] == "uploads/api/lighting.md"
    c = answer["citations"][0]
    assert doc["text"][c["start"] : c["end"]] == c["text"]
    assert loaded.delete(f"/documents/{doc_id}").json()["source"] == "uploads/api/lighting.md"
    assert loaded.get(f"/documents/{doc_id}").status_code == 404


def test_pdf_upload(loaded):
    r = loaded.post("/documents", files={"file": ("lora.pdf", make_pdf(["LoRA rank 8 suits a face."]), "application/pdf")})
    assert r.status_code == 201 and r.json()["kind"] == "pdf"


@pytest.mark.parametrize(
    "method,path,kwargs,status,needle",
    [
        ("post", "/ask", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, ""),
        ("post", "/ask", {"json": {"question": 5}}, 400, "question"),
        ("post", "/ask", {"json": {"question": "   "}}, 400, "question must not be empty"),
        ("post", "/ask", {"json": {"question": "hi", "k": 0}}, 400, "k (body): Expected `int` >= 1, got 0"),
        ("post", "/search", {"json": {"query": "x", "k": 1000}}, 400, "k (body): Expected `int` <= 100, got 1000"),
        ("post", "/search", {"json": {"query": "x", "mode": "fuzzy"}}, 400, "mode (body): Invalid enum value 'fuzzy'"),
        ("post", "/search", {"json": {"query": "x", "filters": {"colour": 1}}}, 400, "unknown field `colour`"),
        ("post", "/search", {"json": {"query": "x", "bogus": 1}}, 400, "bogus"),
        ("get", "/documents/12345", {}, 404, "no document with id 12345"),
        ("delete", "/documents/12345", {}, 404, "no document with id 12345"),
        ("get", "/documents/abc", {}, 404, ""),
        ("post", "/documents", {"json": {"text": "", "source": "a.md"}}, 400, "a.md: skipped: empty"),
        ("post", "/documents", {"json": {"text": "---\ntitle: t\n---\n", "source": "a.md"}}, 400, "skipped: empty"),
        ("post", "/documents", {"json": {"text": "x", "source": "../../etc/passwd"}}, 400, "contains a '..' segment"),
        ("post", "/documents", {"json": {"text": "x", "source": "/etc/passwd"}}, 400, "is an absolute path"),
        ("post", "/documents", {"json": {"text": "x", "source": "a\\b.md"}}, 400, "backslash"),
        ("post", "/documents", {"json": {"text": "x", "source": "a\u0007.md"}}, 400, "control character U+0007"),
        ("post", "/documents", {"json": {"text": "x", "source": "a.md", "collection": "../x"}}, 400, "collection must be"),
        ("post", "/documents", {"files": {"file": ("a.md", b"# x", "text/markdown")}, "data": {"source": "../up.md"}}, 400, "'..' segment"),
        ("post", "/documents", {"json": {"text": "x", "source": " "}}, 400, "source"),
        ("post", "/documents", {"json": {"text": "x"}}, 400, "source"),
        ("post", "/documents", {"json": {"text": "x", "source": "a", "path": "/etc/passwd"}}, 400, "path"),
        ("post", "/documents", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data or application/json"),
        ("post", "/documents", {"files": {"file": ("a.md", b"caf\xe9", "text/markdown")}}, 400, "a.md: not valid UTF-8 (byte 0xe9 at offset 3)"),
        ("post", "/documents", {"files": {"file": ("a.txt", b"\x00\x01\x02", "text/plain")}}, 415, "binary"),
        ("post", "/documents", {"files": {"file": ("a.pdf", b"%PDF-1.4 broken", "application/pdf")}}, 400, "a.pdf"),
        ("post", "/documents", {"files": {"file": ("a.exe", b"MZ", "application/octet-stream")}}, 415, "unsupported file type '.exe'"),
        ("post", "/documents", {"files": {"other": ("a.md", b"# x", "text/markdown")}}, 400, "field 'file'"),
    ],
)
def test_bad_input_gets_a_4xx_json_body_naming_the_problem(loaded, method, path, kwargs, status, needle):
    before = loaded.get("/documents").json()["documents"]
    r = getattr(loaded, method)(path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status_code"] == status and needle in json.dumps(body)
    assert loaded.get("/documents").json()["documents"] == before  # nothing half-stored


def test_oversize_upload_is_413_and_stores_nothing(loaded):
    before = loaded.get("/documents").json()["documents"]
    big = b"word " * (5 * 1024 * 1024)  # 25 MB, over the 20 MB default
    r = loaded.post("/documents", files={"file": ("big.md", big, "text/markdown")})
    assert r.status_code == 413
    assert loaded.get("/documents").json()["documents"] == before


def test_prompt_endpoint(loaded):
    r = loaded.post("/prompts", json={"idea": "portrait of an old fisherman, (weathered face:1.3)", "style": "oil painting", "budget": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"prompt", "negative_prompt", "tokens", "dropped", "context"} <= set(body)
    assert body["tokens"]["prompt"] <= 20 and set(body["tokens"]) == {"prompt", "negative_prompt"}
    assert "(weathered face:1.3)" in body["prompt"] and body["prompt"].startswith("portrait of an old fisherman")
    for c in body["context"]:
        doc = next(d for d in loaded.get("/documents").json()["documents"] if d["source"] == c["source"])
        assert loaded.get(f"/documents/{doc['id']}").json()["text"][c["start"] : c["end"]] == c["text"]
    no_negative = loaded.post("/prompts", json={"idea": "a cat", "negative": False}).json()
    assert no_negative["negative_prompt"] == ""


@pytest.mark.parametrize("body,needle", [
    ({"idea": ""}, "idea must not be empty"), ({"idea": "(cat"}, "unbalanced '('"), ({"idea": "cat", "budget": 80}, "budget (body): Expected `int` <= 75, got 80"),
    ({"idea": "(cat:1e9)"}, "outside"), ({"idea": 3}, "idea"), ({"style": "x"}, "idea"), ({"idea": "cat", "budgett": 3}, "budgett"),
])
def test_prompt_endpoint_bad_input(loaded, body, needle):
    r = loaded.post("/prompts", json=body)
    assert r.status_code == 400 and needle in r.text
