"""The routes a client uses to see the server (``service.explore``): /status,
/chunkers, /chunks/preview; and the web page's static files (``service.page``).
Through the app's TestClient, with a real notebook."""

import re

import pytest
from litestar.testing import TestClient

import chunkers
from service.app import ServiceConfig, create_app
from service.settings import load_settings

KEY = "explore-key"
NOTE = "# Lighting\n\nRim light outlines the subject. It separates it from the background.\n\n## Kinds\n\nSoftbox light is even. Hard light casts crisp shadows."


def client_for(tmp_path, **environ):
    settings = load_settings({"NOTELOOM_DATA_DIR": str(tmp_path / "data"), **environ})
    client = TestClient(create_app(ServiceConfig(data_dir=str(tmp_path / "data"), api_key=KEY), settings=settings, warm=False))
    client.headers["X-API-Key"] = KEY
    return client


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with client_for(tmp_path_factory.mktemp("explore")) as c:
        r = c.post("/documents", json={"text": NOTE, "source": "lighting.md"})
        assert r.status_code == 201, r.text
        c.doc_id = r.json()["id"]
        yield c


def test_status_counts_the_store_and_says_what_to_set_for_images(client):
    body = client.get("/status").json()
    assert (body["documents"], body["chunks"]) == (1, client.get("/documents").json()["chunks"])
    assert body["embedding"]["model"] and body["index"]["vectors"] == body["chunks"] and "data_dir" not in body
    generation = body["generation"]
    assert not generation["configured"] and "NOTELOOM_SD_MODEL" in generation["detail"]
    assert "DPM++ 2M Karras" in generation["schedulers"] and generation["max_images"] >= 1


def test_status_finds_a_configured_model_without_loading_it(tmp_path, tiny_folder):
    with client_for(tmp_path, NOTELOOM_SD_MODEL=str(tiny_folder)) as c:
        generation = c.get("/status").json()["generation"]
    assert generation["configured"] and generation["model"] == str(tiny_folder) and "detail" not in generation


def test_chunkers_lists_the_registry_without_server_parameters(client):
    body = client.get("/chunkers").json()
    assert [c["name"] for c in body["chunkers"]] == chunkers.available()
    for info in body["chunkers"]:
        accepted = chunkers.parameters(chunkers.registry.chunker_class(info["name"]))
        assert set(info["parameters"]) == set(accepted) - {"threads", "embedder"}
        assert "clip" in info["tokenizers"]
    assert body["default"]["method"] == "hybrid"


@pytest.mark.parametrize("method,params", [("recursive", {"max_tokens": 12}), ("fixed", {"max_tokens": 8, "overlap": 2}),
                                           ("sentence", {"max_tokens": 30, "tokenizer": "words"})])
def test_preview_gives_the_chunker_offsets_for_a_note_and_a_text(client, method, params):
    expected = [{"index": c.index, "start": c.start, "end": c.end, "token_count": c.token_count}
                for c in chunkers.get(method, **params)(NOTE)]
    stored = client.post("/chunks/preview", json={"doc_id": client.doc_id, "method": method, "params": params})
    assert stored.status_code == 200, stored.text
    assert stored.json()["chunks"] == expected and stored.json()["chars"] == len(NOTE)
    pasted = client.post("/chunks/preview", json={"text": NOTE, "method": method, "params": params}).json()
    assert pasted["chunks"] == expected and pasted["doc_id"] is None


@pytest.mark.parametrize("body,status,needle", [
    ({"method": "recursive"}, 400, "exactly one of 'doc_id'"),
    ({"method": "recursive", "text": "x", "doc_id": 1}, 400, "exactly one of 'doc_id'"),
    ({"method": "nope", "text": "x"}, 400, "available: fixed"),
    ({"method": "fixed", "text": "x", "params": {"size": 3}}, 400, "unknown parameter 'size'"),
    ({"method": "fixed", "text": "x", "params": {"max_tokens": 0}}, 400, "max_tokens"),
    ({"method": "fixed", "text": "x", "params": {"tokenizer": "/etc"}}, 400, "tokenizer must be one of"),
    ({"method": "fixed", "text": "x", "params": {"threads": 64}}, 400, "'threads' is the server's"),
    ({"method": "fixed", "doc_id": 12345}, 404, ""),
    ({"method": "fixed", "text": "word " * 5001, "params": {"max_tokens": 1, "tokenizer": "words"}}, 400, "5001 chunks; a preview shows at most 5000"),
])
def test_preview_refuses_bad_requests_by_name(client, body, status, needle):
    r = client.post("/chunks/preview", json=body)
    assert r.status_code == status and needle in r.json()["detail"], r.text


def test_preview_refuses_a_note_over_its_size_limit(client):
    from service.explore import MAX_PREVIEW_CHARS

    big = client.post("/documents", json={"text": "Long note. " * (MAX_PREVIEW_CHARS // 11 + 1), "source": "big.md"}).json()["id"]
    r = client.post("/chunks/preview", json={"doc_id": big, "method": "recursive"})
    assert r.status_code == 413 and f"at most {MAX_PREVIEW_CHARS}" in r.json()["detail"]
    r = client.post("/chunks/preview", json={"text": "x" * (MAX_PREVIEW_CHARS + 1), "method": "recursive"})
    assert r.status_code == 400 and "text" in r.json()["detail"]
    client.delete(f"/documents/{big}")


def test_the_new_routes_need_the_key_and_the_page_does_not(client):
    for method, path in (("get", "/status"), ("get", "/chunkers"), ("post", "/chunks/preview")):
        assert getattr(client, method)(path, headers={"X-API-Key": "wrong"}).status_code == 401
    page = client.get("/app/", headers={"X-API-Key": ""})
    assert page.status_code == 200 and "<title>noteloom</title>" in page.text
    assert client.get("/", headers={"X-API-Key": ""}, follow_redirects=False).headers["location"] == "/app/"
    for name in ("app.js", "app.css"):
        asset = client.get(f"/app/{name}", headers={"X-API-Key": ""})
        assert asset.status_code == 200 and not re.search(r"https?://", asset.text), f"{name} names an outside address"
    assert not re.search(r"(src|href)=\"https?://", page.text)
    assert "/app/" not in client.get("/schema/openapi.json").json()["paths"]
