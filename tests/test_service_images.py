"""Generation and scoring over HTTP: a real server on 127.0.0.1 with the tiny
diffusers pipeline and the fitted tiny CLIP; and the image decoder against hostile
uploads (bombs, truncations, refused formats, a seeded byte-mutation fuzzer), in
process and through the app's TestClient: always a 4xx naming the file, never a 5xx."""

import base64
import io
import json
import random
import struct
import time
import zlib
from collections import Counter
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imagegen.errors import ImageError, ImageTooLargeError, ModelNotFoundError, UnsupportedImageError
from service.errors import status_for
from service.imagefile import IMAGE_FORMATS, MAX_IMAGE_PIXELS, decode_image
from tests.conftest import colour
from tests.helpers import serve, stop

ROOT = Path(__file__).resolve().parent.parent


def start_server(data, extra_env):
    proc, base = serve(data, extra_env)
    return proc, httpx.Client(base_url=base, timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_folder, fitted_clip):
    name, weights, folder = fitted_clip
    proc, client = start_server(tmp_path_factory.mktemp("data"), {
        "NOTELOOM_SD_MODEL": str(tiny_folder), "NOTELOOM_CLIP_MODEL": name, "NOTELOOM_CLIP_PRETRAINED": weights,
        "NOTELOOM_CLIP_CONFIG_DIR": str(folder)})
    yield client
    client.close()
    stop(proc)


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
    ("/generate", {"json": {"prompt": "x", "width": 100}}, 400, "width (body): Expected `int` that's a multiple of 8, got 100"),
    ("/generate", {"json": {"prompt": "x", "n": 20}}, 400, "n (body): Expected `int` <= 8, got 20"),
    ("/generate", {"json": {"prompt": "x", "scheduler": "Heun"}}, 400, "unknown scheduler 'Heun'"),
    ("/generate", {"json": {"prompt": "x", "idea": "y"}}, 400, "exactly one of 'prompt'"),
    ("/generate", {"json": {"prompt": "x", "size": 3}}, 400, "size"),
    ("/generate", {"json": {"idea": "(broken"}}, 400, "unbalanced '('"),
    ("/generate", {"data": {"request": "{}"}, "files": {"init_image": ("a.png", b"not an image", "image/png")}},
     status_for(UnsupportedImageError()), "init_image 'a.png': not an image in an accepted format"),
    ("/score", {"data": {"prompt": "x"}, "files": {"images": ("a.png", b"GIF89a-broken", "image/png")}}, 400,
     "image 'a.png': not a readable image"),
    ("/score", {"data": {"prompt": "x"}, "files": {"images": ("big.png", b"", "image/png")}}, status_for(UnsupportedImageError()),
     "the file is empty"),
    ("/score", {"data": {"prompt": "x"}}, 415, "'images' files"),  # a urlencoded form, not multipart
    ("/images/../../etc/passwd", {}, 404, ""),
])
def test_bad_image_requests(server, path, kwargs, status, needle):
    method = server.get if path.startswith("/images") else server.post
    r = method(path, **kwargs)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_hostile_images_to_the_real_server_are_4xx(server):
    bomb = png_declaring(20000, 20000)
    for files in ({"images": ("bomb.png", bomb, "image/png")},):
        r = server.post("/score", data={"prompt": "x"}, files=files)
        assert r.status_code == status_for(ImageTooLargeError()) and "image 'bomb.png': declares more than" in r.json()["detail"]
    for field in ("init_image", "mask_image"):
        files = {"init_image": ("init.png", png(colour((200, 30, 30))), "image/png"), field: ("bomb.png", bomb, "image/png")}
        r = server.post("/generate", data={"request": json.dumps({"prompt": "x", "steps": 2})}, files=files)
        assert r.status_code == status_for(ImageTooLargeError()) and f"{field} 'bomb.png'" in r.json()["detail"]


def test_without_a_model_generation_and_scoring_are_503_and_the_rest_works(tmp_path):
    # the hub is online as far as the environment says, and its cache is empty: noteloom itself stays offline
    proc, client = start_server(tmp_path, {"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"), "NOTELOOM_CLIP_MODEL": "ViT-B-32"})
    try:
        r = client.post("/generate", json={"prompt": "a cat", "steps": 2})
        assert r.status_code == 503 and "NOTELOOM_SD_MODEL" in r.json()["detail"]
        assert client.post("/prompts", json={"idea": "a cat"}).status_code == 200
        assert client.get("/health").json()["status"] == "ok"
        files = {"images": ("red.png", png(colour((220, 20, 20))), "image/png")}
        first = client.post("/score", data={"prompt": "a cat"}, files=files)  # imports open_clip once
        assert first.status_code == 503 and "NOTELOOM_CLIP_PRETRAINED" in first.json()["detail"]
        for _ in range(3):  # remembered: no load is tried again
            started = time.perf_counter()
            again = client.post("/score", data={"prompt": "a cat"}, files=files)
            assert again.status_code == 503 and time.perf_counter() - started < 2
        assert again.json() == first.json()
    finally:
        client.close()
        stop(proc)


# --- the image decoder against hostile uploads ----------------------------------


def png_declaring(width: int, height: int, payload: bytes = b"\0" * 64) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels (valid CRCs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b"")


def encoded(fmt: str, mode: str = "RGB", size=(24, 16), frames: int = 1, seed: int = 0, **options) -> bytes:
    rng = random.Random(seed)
    pictures = []
    for _ in range(frames):
        image = Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))
        pictures.append(image if mode == "RGB" else image.convert(mode))
    buffer = io.BytesIO()
    extra = {"save_all": True, "append_images": pictures[1:]} if frames > 1 else {}
    pictures[0].save(buffer, format=fmt, **extra, **options)
    return buffer.getvalue()


def seed_images() -> dict[str, bytes]:
    """One or more small files per accepted format (modes and options that reach
    different decoder paths), and files in formats that must be refused."""
    return {
        "png": encoded("PNG"), "png-palette": encoded("PNG", "P"), "png-16bit": encoded("PNG", "I;16"),
        "png-rgba-interlaced": encoded("PNG", "RGBA", interlace=1), "apng": encoded("PNG", frames=2),
        "jpeg": encoded("JPEG"), "jpeg-progressive": encoded("JPEG", progressive=True), "jpeg-grey": encoded("JPEG", "L"),
        "webp": encoded("WEBP"), "webp-lossless": encoded("WEBP", "RGBA", lossless=True), "webp-animated": encoded("WEBP", frames=2),
        "bmp": encoded("BMP"), "bmp-palette": encoded("BMP", "P"), "bmp-1bit": encoded("BMP", "1"),
        "gif": encoded("GIF", "P"), "gif-animated": encoded("GIF", "P", frames=3),
        "tiff": encoded("TIFF"), "ico": encoded("ICO"), "dds": encoded("DDS", "RGBA"),
    }


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three seeded mutations: flipped bytes, a cut, a size-like integer
    written over four bytes, bytes inserted, a span deleted or repeated."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(6)
        at = rng.randrange(max(1, len(out)))
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        elif kind == 1:
            del out[at:]
        elif kind == 2:
            value = rng.choice([0, 1, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, 20000])
            out[at:at + 4] = struct.pack(rng.choice([">I", "<I"]), value)
        elif kind == 3:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 4:
            del out[at:at + rng.randint(1, 32)]
        else:
            out[at:at] = out[at:at + rng.randint(1, 64)]
        if not out:
            break
    return bytes(out)


def fuzz_cases(count: int, seed: int = 0):
    rng = random.Random(seed)
    seeds = seed_images()
    names = sorted(seeds)
    for i in range(count):
        name = names[i % len(names)]
        yield f"{name}#{i}", mutate(seeds[name], rng)


def outcome(data: bytes, name: str) -> str:
    """The class of what ``decode_image`` did; anything but an image or an ImageError
    fails the test that calls it."""
    try:
        image = decode_image(data, name)
    except ImageError as exc:
        assert str(exc).startswith(name + ":"), exc  # the message names the file
        assert 400 <= status_for(exc) < 500
        return type(exc).__name__
    assert image.mode == "RGB" and image.width * image.height <= MAX_IMAGE_PIXELS
    return "decoded"


@pytest.mark.parametrize("data,error,needle", [
    (png_declaring(20000, 20000), ImageTooLargeError, "declares more than"),
    (png_declaring(4097, 4096), ImageTooLargeError, "4097x4096 is 16781312 pixels; the limit is 16777216"),
    (png_declaring(4096, 4096), ImageError, "not a readable PNG image"),  # at the limit, but the pixels are missing
    (png_declaring(0, 16), ImageError, "not a readable image"),
    (encoded("TIFF"), UnsupportedImageError, "TIFF images are not accepted; send PNG, JPEG, WEBP, BMP, GIF"),
    (encoded("ICO"), UnsupportedImageError, "ICO images are not accepted"),
    (encoded("DDS", "RGBA"), UnsupportedImageError, "DDS images are not accepted"),
    (b"8BPS" + bytes(40), UnsupportedImageError, "PSD images are not accepted"),
    (b"", UnsupportedImageError, "the file is empty"),
    (b"hello, world", UnsupportedImageError, "not an image in an accepted format"),
    (encoded("PNG")[:30], ImageError, "a PNG file whose header is damaged"),
    (encoded("PNG")[:-30], ImageError, "not a readable PNG image"),
    (encoded("JPEG")[:-200], ImageError, "not a readable"),
    (encoded("GIF", "P")[:20], ImageError, "not a readable image"),
])
def test_hostile_images_are_refused_naming_the_file_and_the_problem(data, error, needle):
    started = time.perf_counter()
    with pytest.raises(error) as info:
        decode_image(data, "image 'x'")
    assert type(info.value) is error and needle in str(info.value) and str(info.value).startswith("image 'x': ")
    assert time.perf_counter() - started < 1  # refused from the header, nothing large decoded


def test_every_accepted_format_decodes_to_rgb_first_frame_only():
    for name, data in seed_images().items():
        if name in ("tiff", "ico", "dds"):
            continue
        image = decode_image(data, name)
        assert image.mode == "RGB" and image.size == (24, 16), name
    assert set(IMAGE_FORMATS) == {"PNG", "JPEG", "WEBP", "BMP", "GIF"}
    limited = png(colour((1, 2, 3)))
    with pytest.raises(ImageTooLargeError, match="64x64 is 4096 pixels; the limit is 1000"):
        decode_image(limited, "small", max_pixels=1000)  # the limit is a parameter
    with pytest.raises(UnsupportedImageError, match="PNG images are not accepted; send JPEG"):
        decode_image(limited, "png", formats=("JPEG",))


def test_fuzzed_images_never_escape_as_anything_but_a_4xx():
    seen = Counter(outcome(data, name) for name, data in fuzz_cases(2000, seed=11))
    assert sum(seen.values()) == 2000
    assert seen["decoded"] > 100 and seen["ImageError"] > 100 and seen["UnsupportedImageError"] > 100, seen


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, fitted_clip):
    from litestar.testing import TestClient

    from service.app import ServiceConfig, create_app

    name, weights, folder = fitted_clip
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"NOTELOOM_CLIP_MODEL": name, "NOTELOOM_CLIP_PRETRAINED": weights, "NOTELOOM_CLIP_CONFIG_DIR": str(folder)}.items():
            mp.setenv(key, value)
        app = create_app(ServiceConfig(data_dir=str(tmp_path_factory.mktemp("app"))), warm=False)
        with TestClient(app=app) as client:
            yield client


def test_bombs_to_score_and_generate_over_http_are_4xx_json(app_client):
    bomb = png_declaring(20000, 20000)
    r = app_client.post("/score", data={"prompt": "x"}, files={"images": ("bomb.png", bomb, "image/png")})
    assert r.status_code == status_for(ImageTooLargeError()) and r.json()["error"] == "ImageTooLargeError"
    assert r.json()["detail"].startswith("image 'bomb.png': declares more than")
    for field in ("init_image", "mask_image"):
        r = app_client.post("/generate", data={"request": json.dumps({"prompt": "x"})}, files={field: ("bomb.png", bomb, "image/png")})
        assert r.status_code == status_for(ImageTooLargeError()) and r.json()["detail"].startswith(f"{field} 'bomb.png'")
    r = app_client.post("/score", data={"prompt": "x"}, files={"images": ("a.tif", encoded("TIFF"), "image/tiff")})
    assert r.status_code == status_for(UnsupportedImageError()) and "TIFF images are not accepted" in r.json()["detail"]
    assert 400 <= status_for(ImageTooLargeError()) < 500 and 400 <= status_for(UnsupportedImageError()) < 500
    assert status_for(ModelNotFoundError("x")) == 503


def test_fuzzed_images_over_http_are_never_5xx(app_client):
    statuses = Counter()
    for i, (name, data) in enumerate(fuzz_cases(240, seed=5)):
        if i % 2:
            r = app_client.post("/score", data={"prompt": "a red square"}, files={"images": (name, data, "image/png")})
        else:
            field = "init_image" if i % 4 else "mask_image"
            files = {field: (name, data, "image/png")}
            if field == "mask_image":
                files["init_image"] = ("init.png", png(colour((200, 30, 30))), "image/png")
            r = app_client.post("/generate", data={"request": json.dumps({"prompt": "x", "steps": 1})}, files=files)
        assert r.status_code < 500, (name, r.status_code, r.text)
        assert r.status_code == 200 or set(r.json()) >= {"status_code", "error", "detail"}
        statuses[r.status_code] += 1
    assert statuses[200] > 10 and statuses[400] > 10, statuses
