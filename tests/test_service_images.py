"""Generation and scoring over HTTP: a real server on 127.0.0.1 with the tiny
diffusers pipeline and the fitted tiny CLIP."""

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import colour

ROOT = Path(__file__).resolve().parent.parent


def start_server(data, extra_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **extra_env}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "--data", str(data), "serve", "--port", str(port)],
                            env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                return proc, httpx.Client(base_url=base, timeout=120)
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("server did not start: " + proc.stderr.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_folder, fitted_clip):
    name, weights, folder = fitted_clip
    proc, client = start_server(tmp_path_factory.mktemp("data"), {
        "NOTELOOM_SD_MODEL": str(tiny_folder), "NOTELOOM_CLIP_MODEL": name, "NOTELOOM_CLIP_PRETRAINED": weights,
        "NOTELOOM_CLIP_CONFIG_DIR": str(folder)})
    yield client
    client.close()
    proc.terminate()
    proc.wait(timeout=20)


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_generate_best_first_with_urls_and_metadata(server):
    r = server.post("/generate", json={"prompt": "a red square", "n": 3, "steps": 2, "seed": 40})
    assert r.status_code == 200, r.text
    body = r.json()
    scores = [i["score"] for i in body["images"]]
    assert scores == sorted(scores, reverse=True) and sorted(i["seed"] for i in body["images"]) == [40, 41, 42]
    assert body["scoring"]["convention"] == "100*max(cos(image,text),0)"
    image = server.get(body["images"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    meta = Image.open(io.BytesIO(image.content)).text
    assert json.loads(meta["noteloom:seed"]) == body["images"][0]["seed"]
    assert json.loads(meta["noteloom:clip_score"]) == body["images"][0]["score"]
    assert json.loads(meta["noteloom:clip_convention"]) == "100*max(cos(image,text),0)" and "noteloom-tiny-clip" in meta["noteloom:clip_model"]
    again = server.post("/generate", json={"prompt": "a red square", "n": 1, "steps": 2, "seed": 40, "response": "base64"}).json()
    same = next(i for i in body["images"] if i["seed"] == 40)
    decoded = Image.open(io.BytesIO(base64.b64decode(again["images"][0]["base64"]))).convert("RGB")
    stored = Image.open(io.BytesIO(server.get(same["url"]).content)).convert("RGB")
    assert decoded.tobytes() == stored.tobytes()  # the same request gives the same pixels


def test_generate_from_an_idea_uses_the_prompt_builder(server):
    body = server.post("/generate", json={"idea": "portrait of an old fisherman, (weathered face:1.3)", "style": "oil painting",
                                          "steps": 2, "seed": 1}).json()
    assert body["prompt"]["prompt"].startswith("portrait of an old fisherman, oil painting")
    assert body["images"][0]["params"]["prompt"] == body["prompt"]["prompt"]


def test_img2img_and_inpaint_over_multipart(server):
    init = png(colour((200, 30, 30)))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    r = server.post("/generate", data={"request": json.dumps({"prompt": "a red door", "steps": 4, "seed": 3, "strength": 0.9})},
                    files={"init_image": ("init.png", init, "image/png"), "mask_image": ("mask.png", png(mask), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["images"][0]["params"]["mode"] == "inpaint"
    bad = server.post("/generate", data={"request": json.dumps({"prompt": "x", "steps": 2})},
                      files={"init_image": ("init.png", init, "image/png"), "mask_image": ("m.png", png(Image.new("L", (32, 32))), "image/png")})
    assert bad.status_code == 400 and "mask is 32x32 but the image is 64x64" in bad.json()["detail"]


def test_async_job_progress_and_cancel(server):
    r = server.post("/generate", json={"prompt": "a slow castle", "steps": 150, "seed": 1, "wait": False})
    assert r.status_code == 202
    job = r.json()["job"]
    busy = server.post("/generate", json={"prompt": "another", "steps": 2})
    assert busy.status_code == 429 and "already running" in busy.json()["detail"]
    for _ in range(100):
        status = server.get(f"/jobs/{job}").json()
        if status["steps_done"] >= 2:
            break
        time.sleep(0.05)
    assert status["status"] == "running" and status["steps_total"] == 150
    assert server.delete(f"/jobs/{job}").status_code == 202
    for _ in range(200):
        status = server.get(f"/jobs/{job}").json()
        if status["status"] != "running":
            break
        time.sleep(0.05)
    assert status["status"] == "cancelled" and status["steps_done"] < 150
    assert server.get("/jobs/nope").status_code == 404


def test_score_endpoint(server):
    r = server.post("/score", data={"prompt": "a red square"},
                    files=[("images", ("blue.png", png(colour((20, 20, 220))), "image/png")),
                           ("images", ("red.png", png(colour((220, 20, 20))), "image/png"))])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["order"] == [1, 0] and body["images"][1]["name"] == "red.png" and body["images"][1]["score"] > body["images"][0]["score"]


@pytest.mark.parametrize("path,kwargs,status,needle", [
    ("/generate", {"json": {"prompt": "x", "width": 100}}, 400, "width must be a multiple of 8, got 100"),
    ("/generate", {"json": {"prompt": "x", "n": 20}}, 400, "num_images must be an integer from 1 to 8, got 20"),
    ("/generate", {"json": {"prompt": "x", "scheduler": "Heun"}}, 400, "unknown scheduler 'Heun'"),
    ("/generate", {"json": {"prompt": "x", "idea": "y"}}, 400, "exactly one of 'prompt'"),
    ("/generate", {"json": {"prompt": "x", "size": 3}}, 400, "size"),
    ("/generate", {"json": {"idea": "(broken"}}, 400, "unbalanced '('"),
    ("/generate", {"data": {"request": "{}"}, "files": {"init_image": ("a.png", b"not an image", "image/png")}}, 400, "not a readable image"),
    ("/score", {"data": {"prompt": "x"}, "files": {"images": ("a.png", b"GIF89a-broken", "image/png")}}, 400, "not a readable image"),
    ("/score", {"data": {"prompt": "x"}}, 400, "'images' files"),
    ("/images/../../etc/passwd", {}, 404, ""),
])
def test_bad_image_requests(server, path, kwargs, status, needle):
    method = server.get if path.startswith("/images") else server.post
    r = method(path, **kwargs)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_without_a_model_generation_is_503_and_the_rest_works(tmp_path):
    proc, client = start_server(tmp_path, {})
    try:
        r = client.post("/generate", json={"prompt": "a cat", "steps": 2})
        assert r.status_code == 503 and "NOTELOOM_SD_MODEL" in r.json()["detail"]
        assert client.post("/prompts", json={"idea": "a cat"}).status_code == 200
        assert client.get("/health").json()["status"] == "ok"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=20)
