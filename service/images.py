"""HTTP routes for image generation and CLIP scoring."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter
from litestar.response import File, Response

from imagegen import ClipScorer, DiffusersBackend, GenerationRequest, PromptBuilder, generate_and_rank

from .imagefile import decode_image
from .jobs import Job, Jobs
from .models import (MAX_IDEA_CHARS, MAX_SCORE_IMAGES, Error, GenerateBody, Generated, GenerateUpload, Generation, GeneratedImage, JobAccepted,
                     JobCancel, JobStatus, ScoreResponse, ScoreUpload, declared_body, decode, errors, short_repr)
from .services import Injected
from .wiring import Lazy


def _describe(exc: BaseException) -> dict[str, Any]:
    from .errors import internal_error, status_for

    status = status_for(exc)
    if status == 500:
        return msgspec.to_builtins(internal_error(exc, "in a generation job"))
    return {"status_code": status, "error": type(exc).__name__, "detail": str(exc)}


def _generation_request(body: GenerateBody, prompt_builder: PromptBuilder, init_image, mask_image) -> tuple[GenerationRequest, dict[str, Any] | None]:
    if (body.prompt is None) == (body.idea is None):
        raise ClientException("send exactly one of 'prompt' (used as written) or 'idea' (a prompt is built from it and your notes)")
    built = None
    prompt, negative = body.prompt, body.negative_prompt
    if body.idea is not None:
        result = prompt_builder.build(body.idea, style=body.style, k=5 if body.from_notes else 0)
        built = {k: v for k, v in result.to_dict().items() if k in ("prompt", "negative_prompt", "tokens", "dropped", "context")}
        prompt = result.prompt
        negative = result.negative_prompt if negative is None else negative
    request = GenerationRequest(prompt=prompt or "", negative_prompt=negative or "", steps=body.steps, guidance_scale=body.guidance_scale,
                                width=body.width, height=body.height, seed=body.seed, seeds=body.seeds, num_images=body.n,
                                scheduler=body.scheduler, init_image=init_image, mask_image=mask_image, strength=body.strength)
    request.validate()
    return request, built


def run_generation(backend: DiffusersBackend, scorer: Lazy[ClipScorer], gallery: Path, request: GenerationRequest,
                   body: GenerateBody, built: dict[str, Any] | None, job: Job) -> Generation:
    def progress(done: int, total: int) -> None:
        job.steps_done, job.steps_total = done, total

    ranked = generate_and_rank(backend, request, scorer.get() if body.score else None, progress=progress, cancel=job.cancel)
    out = []
    for g in ranked.images:
        item = GeneratedImage(seed=g.seed, score=g.score, params=g.params)
        if body.response == "base64":
            buffer = io.BytesIO()
            g.image.save(buffer, format="PNG")
            item.base64 = base64.b64encode(buffer.getvalue()).decode()
        if g.path is not None:
            item.url = "/images/" + g.path.relative_to(gallery).as_posix()
        out.append(item)
    return Generation(images=out, scoring=ranked.scoring, prompt=built)


@post("/generate", status_code=200, operation_class=declared_body(json=GenerateBody, multipart=GenerateUpload),
      responses={202: ResponseSpec(JobAccepted, description="accepted: poll the job", generate_examples=False),
                 **errors(400, 409, 413, 415, 429, 503)})
async def generate(request: Request, prompt_builder: Injected[PromptBuilder], backend: Injected[Lazy[DiffusersBackend]],
                   scorer: Injected[Lazy[ClipScorer]], jobs: Injected[Jobs], gallery: Injected[Path]) -> Generated:
    """Generate images (best CLIP score first). ``wait: false`` answers 202 with a
    job id; GET /jobs/{id} reports steps done, DELETE /jobs/{id} cancels."""
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
    gen_request, built = await anyio.to_thread.run_sync(lambda: _generation_request(body, prompt_builder, init_image, mask_image))
    loaded = await anyio.to_thread.run_sync(_loaded, backend)  # 503 now if no model, not inside the job
    job = jobs.submit(lambda job: run_generation(loaded, scorer, gallery, gen_request, body, built, job), _describe)
    if not body.wait:
        return Response(JobAccepted(job=job.id, status=job.status, poll=f"/jobs/{job.id}"), status_code=202)
    await anyio.to_thread.run_sync(job.finished.wait)
    if job.status == "done":
        result: Generation = job.result
        return Generated(images=result.images, scoring=result.scoring, prompt=result.prompt, job=job.id)
    error = job.error or {"status_code": 500, "error": "Failed", "detail": job.status}
    status = 409 if job.status == "cancelled" else error["status_code"]
    return Response(msgspec.convert({**error, "status_code": status, "job": job.id}, Error), status_code=status)


def _loaded(backend: Lazy[DiffusersBackend]) -> DiffusersBackend:
    """The backend with its pipeline loaded (ModelNotFoundError when there is none)."""
    ready = backend.get()
    ready.pipeline  # noqa: B018  (the property loads it)
    return ready


JobId = Annotated[str, PathParameter(max_length=64, description="a job id from POST /generate")]


@get("/jobs/{job_id:str}", responses=errors(400, 404))
async def job_status(jobs: Injected[Jobs], job_id: JobId) -> JobStatus:
    try:
        return msgspec.convert(msgspec.to_builtins(jobs.get(job_id).to_dict()), JobStatus)
    except LookupError as exc:  # service.jobs: no such job
        raise NotFoundException(str(exc)) from None


@delete("/jobs/{job_id:str}", status_code=202, responses=errors(400, 404))
async def cancel_job(jobs: Injected[Jobs], job_id: JobId) -> JobCancel:
    try:
        job = jobs.get(job_id)
    except LookupError as exc:
        raise NotFoundException(str(exc)) from None
    job.cancel.set()
    return JobCancel(job=job.id, status="cancelling" if not job.finished.is_set() else job.status)


@get("/images/{path:path}", media_type="image/png", responses=errors(400, 404))
async def image_file(gallery: Injected[Path], path: Annotated[str, PathParameter(max_length=1024)]) -> File:
    folder = gallery.resolve()
    try:
        target = (folder / path.lstrip("/")).resolve()
        found = folder in target.parents and target.suffix == ".png" and target.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL in the path
        found = False
    if not found:
        raise NotFoundException(f"no image {short_repr(path)}")
    return File(path=target, media_type="image/png", content_disposition_type="inline")


@post("/score", status_code=200, operation_class=declared_body(multipart=ScoreUpload),
      responses=errors(400, 413, 415, 429, 503))
async def score(request: Request, scorer: Injected[Lazy[ClipScorer]]) -> ScoreResponse:
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
        return scorer.get().score([decode_image(*file) for file in files], prompt)

    result = await anyio.to_thread.run_sync(decode_and_score)
    out = result.to_dict()
    out["images"] = [{"name": u.filename, "score": s} for u, s in zip(uploads, result.scores)]
    return msgspec.convert(out, ScoreResponse)


ROUTES = [generate, job_status, cancel_job, image_file, score]
