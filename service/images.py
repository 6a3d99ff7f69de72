"""HTTP routes for image generation and CLIP scoring."""

from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path
from typing import Annotated, Any, Sequence

import anyio
import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter
from litestar.response import File, Response

from imagegen import GenerationRequest, ImageError, ImageTooLargeError, UnsupportedImageError, rank

from .models import (MAX_IDEA_CHARS, MAX_SCORE_IMAGES, Error, GenerateBody, Generated, GenerateUpload, JobAccepted, JobCancel,
                     JobStatus, ScoreResponse, ScoreUpload, declared_body, decode, errors, short_repr)

MAX_IMAGE_PIXELS = 4096 * 4096
"""The default limit on an uploaded image's width × height (16.7 MP), checked on the
size its header declares, before any pixel is decoded (ImageTooLargeError)."""

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
"""Accepted upload formats (Pillow's names). A GIF, APNG or animated WEBP gives its
first frame. Anything else (TIFF, ICO, DDS, PSD, ...) is an UnsupportedImageError:
only these decoders ever see uploaded bytes."""

_SIGNATURES = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
               (b"MM\x00*", "TIFF"), (b"DDS ", "DDS"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"), (b"%PDF", "PDF"),
               (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"qoif", "QOI"))


def decode_image(data: bytes, name: str, *, max_pixels: int = MAX_IMAGE_PIXELS, formats: Sequence[str] = IMAGE_FORMATS):
    """Uploaded bytes as a fully decoded RGB image. Only the decoders of ``formats``
    are tried (else UnsupportedImageError); the declared width × height must be at
    most ``max_pixels`` (else ImageTooLargeError, raised before decoding); any other
    failure of the decoder is an ImageError naming ``name`` and the problem."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # our pixel limit below decides; "Invalid APNG" is a damaged upload, refused below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            image = Image.open(io.BytesIO(data), formats=list(formats))
    except UnidentifiedImageError:
        raise _unidentified(data, name, formats) from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"{name}: declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels; the limit is {max_pixels}") from None
    except Exception as exc:  # noqa: BLE001  (any decoder failure is the upload's problem, never a 500)
        raise ImageError(f"{name}: not a readable image ({type(exc).__name__}: {_short(exc)})") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(f"{name}: {width}x{height} is {width * height} pixels; the limit is {max_pixels}")
        if width < 1 or height < 1:
            raise ImageError(f"{name}: not a readable image (it declares {width}x{height} pixels)")
        try:
            with warnings.catch_warnings():  # as above, for the frames read now
                warnings.simplefilter("ignore", UserWarning)
                image.load()  # the first frame
                rgb = image.convert("RGB")
        except Exception as exc:  # noqa: BLE001
            raise ImageError(f"{name}: not a readable {image.format} image ({type(exc).__name__}: {_short(exc)})") from None
    if rgb.size != (width, height):
        raise ImageError(f"{name}: not a readable image (declared {width}x{height}, decoded {rgb.width}x{rgb.height})")
    return rgb


def _unidentified(data: bytes, name: str, formats: Sequence[str]) -> ImageError:
    accepted = ", ".join(formats)
    if not data:
        return UnsupportedImageError(f"{name}: the file is empty; send an image ({accepted})")
    found = next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), None)
    if found is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        found = "WEBP"
    if found in formats:
        return ImageError(f"{name}: not a readable image (a {found} file whose header is damaged)")
    if found is not None:
        return UnsupportedImageError(f"{name}: {found} images are not accepted; send {accepted}")
    return UnsupportedImageError(f"{name}: not an image in an accepted format ({accepted})")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def _describe(exc: BaseException) -> dict[str, Any]:
    from .errors import internal_error, status_for

    status = status_for(exc)
    if status == 500:
        return msgspec.to_builtins(internal_error(exc, "in a generation job"))
    return {"status_code": status, "error": type(exc).__name__, "detail": str(exc)}


def _generation_request(body: GenerateBody, state, init_image, mask_image) -> tuple[GenerationRequest, dict[str, Any] | None]:
    if (body.prompt is None) == (body.idea is None):
        raise ClientException("send exactly one of 'prompt' (used as written) or 'idea' (a prompt is built from it and your notes)")
    built = None
    prompt, negative = body.prompt, body.negative_prompt
    if body.idea is not None:
        result = state.prompt_builder.build(body.idea, style=body.style, k=5 if body.from_notes else 0)
        built = {k: v for k, v in result.to_dict().items() if k in ("prompt", "negative_prompt", "tokens", "dropped", "context")}
        prompt = result.prompt
        negative = result.negative_prompt if negative is None else negative
    request = GenerationRequest(prompt=prompt or "", negative_prompt=negative or "", steps=body.steps, guidance_scale=body.guidance_scale,
                                width=body.width, height=body.height, seed=body.seed, seeds=body.seeds, num_images=body.n,
                                scheduler=body.scheduler, init_image=init_image, mask_image=mask_image, strength=body.strength)
    request.validate()
    return request, built


def run_generation(state, request: GenerationRequest, body: GenerateBody, built, job) -> dict[str, Any]:
    backend = state.backend()

    def progress(done: int, total: int) -> None:
        job.steps_done, job.steps_total = done, total

    images = backend.generate(request, progress=progress, cancel=job.cancel)
    scoring: dict[str, Any] | None = None
    if body.score:
        try:
            result = state.scorer().score([g.image for g in images], request.prompt)
            images = rank(images, result)
            scoring = {k: v for k, v in result.to_dict().items() if k not in ("scores", "order")}
        except (FileNotFoundError, ValueError) as exc:  # no CLIP weights: images still come back
            scoring = {"error": str(exc)}
    gallery = state.gallery
    out = []
    for g in images:
        item = {"seed": g.seed, "score": g.score, "params": g.params}
        if body.response == "base64":
            buffer = io.BytesIO()
            g.image.save(buffer, format="PNG")
            item["base64"] = base64.b64encode(buffer.getvalue()).decode()
        if g.path is not None:
            item["url"] = "/images/" + g.path.relative_to(gallery).as_posix()
        out.append(item)
    return {"images": out, "scoring": scoring, "prompt": built}


@post("/generate", status_code=200, operation_class=declared_body(json=GenerateBody, multipart=GenerateUpload),
      responses={202: ResponseSpec(JobAccepted, description="accepted: poll the job", generate_examples=False),
                 **errors(400, 409, 413, 415, 429, 503)})
async def generate(request: Request) -> Generated:
    """Generate images (best CLIP score first). ``wait: false`` answers 202 with a
    job id; GET /jobs/{id} reports steps done, DELETE /jobs/{id} cancels."""
    state = request.app.state
    content_type = request.content_type[0]
    init_image = mask_image = None
    if content_type == "multipart/form-data":
        form = await request.form()
        raw = form.get("request") or "{}"
        data = raw.encode() if isinstance(raw, str) else await raw.read()
        uploads = {key: form.get(key) for key in ("init_image", "mask_image")}
        files = {key: (await u.read(), f"{key} {u.filename!r}") for key, u in uploads.items() if isinstance(u, UploadFile)}
        body = decode(data, GenerateBody, "generation request")
        decoded = await anyio.to_thread.run_sync(lambda: {key: decode_image(*file) for key, file in files.items()})
        init_image, mask_image = decoded.get("init_image"), decoded.get("mask_image")
    elif content_type == "application/json":
        body = decode(await request.body(), GenerateBody, "generation request")
    else:
        raise HTTPException(status_code=415, detail=f"send application/json or multipart/form-data, not {content_type!r}")
    gen_request, built = await anyio.to_thread.run_sync(lambda: _generation_request(body, state, init_image, mask_image))
    await anyio.to_thread.run_sync(lambda: state.backend().pipeline)  # 503 now if no model, not inside the job
    job = state.jobs.submit(lambda job: run_generation(state, gen_request, body, built, job), _describe)
    if not body.wait:
        return Response(JobAccepted(job=job.id, status=job.status, poll=f"/jobs/{job.id}"), status_code=202)
    await anyio.to_thread.run_sync(job.finished.wait)
    if job.status == "done":
        return msgspec.convert({"job": job.id, **job.result}, Generated)
    error = job.error or {"status_code": 500, "error": "Failed", "detail": job.status}
    status = 409 if job.status == "cancelled" else error["status_code"]
    return Response(msgspec.convert({**error, "status_code": status, "job": job.id}, Error), status_code=status)


JobId = Annotated[str, PathParameter(max_length=64, description="a job id from POST /generate")]


@get("/jobs/{job_id:str}", responses=errors(400, 404))
async def job_status(request: Request, job_id: JobId) -> JobStatus:
    try:
        return msgspec.convert(request.app.state.jobs.get(job_id).to_dict(), JobStatus)
    except LookupError as exc:  # service.jobs: no such job
        raise NotFoundException(str(exc)) from None


@delete("/jobs/{job_id:str}", status_code=202, responses=errors(400, 404))
async def cancel_job(request: Request, job_id: JobId) -> JobCancel:
    try:
        job = request.app.state.jobs.get(job_id)
    except LookupError as exc:
        raise NotFoundException(str(exc)) from None
    job.cancel.set()
    return JobCancel(job=job.id, status="cancelling" if not job.finished.is_set() else job.status)


@get("/images/{path:path}", media_type="image/png", responses=errors(400, 404))
async def image_file(request: Request, path: Annotated[str, PathParameter(max_length=1024)]) -> File:
    gallery: Path = request.app.state.gallery.resolve()
    try:
        target = (gallery / path.lstrip("/")).resolve()
        found = gallery in target.parents and target.suffix == ".png" and target.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL in the path
        found = False
    if not found:
        raise NotFoundException(f"no image {short_repr(path)}")
    return File(path=target, media_type="image/png", content_disposition_type="inline")


@post("/score", status_code=200, operation_class=declared_body(multipart=ScoreUpload),
      responses=errors(400, 413, 415, 429, 503))
async def score(request: Request) -> ScoreResponse:
    """Multipart: one to 32 ``images`` files and a ``prompt`` field."""
    if request.content_type[0] != "multipart/form-data":
        raise HTTPException(status_code=415, detail="send multipart/form-data with 'images' files and a 'prompt' field")
    form = await request.form()
    prompt = form.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ClientException("field 'prompt' is required")
    if len(prompt) > MAX_IDEA_CHARS:
        raise ClientException(f"field 'prompt' is {len(prompt)} characters; the limit is {MAX_IDEA_CHARS}")
    uploads = [u for u in form.getall("images") if isinstance(u, UploadFile)] if "images" in form else []
    if not uploads:
        raise ClientException("send at least one file in the field 'images'")
    if len(uploads) > MAX_SCORE_IMAGES:
        raise ClientException(f"at most {MAX_SCORE_IMAGES} images per request, got {len(uploads)}")
    files = [(await u.read(), f"image {u.filename!r}") for u in uploads]

    def decode_and_score():
        return request.app.state.scorer().score([decode_image(*file) for file in files], prompt)

    result = await anyio.to_thread.run_sync(decode_and_score)
    out = result.to_dict()
    out["images"] = [{"name": u.filename, "score": s} for u, s in zip(uploads, result.scores)]
    return msgspec.convert(out, ScoreResponse)


ROUTES = [generate, job_status, cancel_job, image_file, score]
