"""Image generation: one small backend interface, diffusers as the real backend.

A backend implements ``generate(request, progress=None, cancel=None)``. The
diffusers backend loads a model from a diffusers folder, a single
``.safetensors``/``.ckpt`` file (with a local config folder, so it stays offline)
or a Hugging Face id already in the local cache (downloaded only when
``allow_downloads`` is set; see ``imagegen.offline``); SD 1.x, 2.x and SDXL, and
few-step models (SD-Turbo, LCM) with their own defaults. Every image has its own
seeded generator (on the CPU, so seeds reproduce across devices) and records its
seed; the same request gives the same pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import BusyError, GenerationError, ModelNotFoundError
from .offline import DiffusersSettings, RememberedFailure, hub_offline, load_pipeline
from .png import save_png

SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "LCM": ("LCMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
}
MAX_IMAGES = 8
MAX_SIDE = 2048
MIN_SIDE = 64
MAX_STEPS = 150
MAX_SEED = 2**32 - 1


class Cancelled(RuntimeError):
    """The caller cancelled the generation."""


@dataclass
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    guidance_scale: float | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    seeds: list[int] | None = None
    num_images: int = 1
    scheduler: str | None = None
    init_image: Any = None  # PIL image: img2img, or the image to inpaint
    strength: float = 0.75
    mask_image: Any = None  # PIL image, white = repaint

    @property
    def mode(self) -> str:
        return "inpaint" if self.mask_image is not None else "img2img" if self.init_image is not None else "txt2img"

    def resolved_seeds(self) -> list[int]:
        if self.seeds:
            return list(self.seeds)
        base = self.seed if self.seed is not None else int.from_bytes(os.urandom(4), "big")
        return [(base + i) % (MAX_SEED + 1) for i in range(self.num_images)]

    def validate(self) -> None:
        """Check everything before any model work; errors name the bad value."""
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise GenerationError("prompt must be a non-empty string")
        if not isinstance(self.negative_prompt, str):
            raise GenerationError("negative_prompt must be a string")
        _int_range("num_images", self.num_images, 1, MAX_IMAGES)
        if self.steps is not None:
            _int_range("steps", self.steps, 1, MAX_STEPS)
        if self.guidance_scale is not None and (isinstance(self.guidance_scale, bool) or not isinstance(self.guidance_scale, (int, float))
                                                or not 0 <= self.guidance_scale <= 30):
            raise GenerationError(f"guidance_scale must be a number from 0 to 30, got {self.guidance_scale!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                _int_range(name, value, MIN_SIDE, MAX_SIDE)
                if value % 8:
                    raise GenerationError(f"{name} must be a multiple of 8, got {value}")
        if self.seeds is not None:
            if not isinstance(self.seeds, list) or not 1 <= len(self.seeds) <= MAX_IMAGES:
                raise GenerationError(f"seeds must be a list of 1 to {MAX_IMAGES} integers, got {self.seeds!r}")
            for s in self.seeds:
                _int_range("seed", s, 0, MAX_SEED)
        if self.seed is not None:
            _int_range("seed", self.seed, 0, MAX_SEED)
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise GenerationError(f"unknown scheduler {self.scheduler!r}; choose from: {', '.join(SCHEDULERS)}")
        if self.init_image is not None or self.mask_image is not None:
            if self.init_image is None:
                raise GenerationError("a mask needs an init image to inpaint")
            if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float)) or not 0 < self.strength <= 1:
                raise GenerationError(f"strength must be in (0, 1], got {self.strength!r}")
            w, h = self.init_image.size
            if w % 8 or h % 8 or not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
                raise GenerationError(f"init image is {w}x{h}; sides must be multiples of 8 from {MIN_SIDE} to {MAX_SIDE}")
            if self.mask_image is not None and self.mask_image.size != self.init_image.size:
                raise GenerationError(f"mask is {self.mask_image.size[0]}x{self.mask_image.size[1]} but the image is {w}x{h}; they must match")
            if (self.width or w) != w or (self.height or h) != h:
                raise GenerationError(f"width/height ({self.width}x{self.height}) must match the init image ({w}x{h}) or be left out")


def _int_range(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GenerationError(f"{name} must be an integer from {low} to {high}, got {value!r}")


@dataclass
class GeneratedImage:
    image: Any
    seed: int
    params: dict[str, Any]
    path: Path | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "params": self.params, "path": str(self.path) if self.path else None, "score": self.score}


Progress = Callable[[int, int], None]


class Backend(ABC):
    """Generates images for a request. ``progress(done, total)`` is called per
    step; setting ``cancel`` stops the work (raising ``Cancelled``)."""

    @abstractmethod
    def generate(self, request: GenerationRequest, *, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> list[GeneratedImage]:
        ...


@dataclass
class ModelDefaults:
    steps: int = 25
    guidance_scale: float = 7.0
    scheduler: str | None = None
    width: int = 512
    height: int = 512


class DiffusersBackend(Backend):
    def __init__(self, settings: DiffusersSettings | None = None, *, pipeline=None, gallery: str | Path | None = None) -> None:
        self.settings = settings if settings is not None else DiffusersSettings()
        self._pipeline = pipeline
        self.gallery = Path(gallery) if gallery else None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._failure = RememberedFailure()
        self._added_tokens: list[str] = []
        self.model_name = self.settings.model or ("in-memory pipeline" if pipeline is not None else None)
        if pipeline is not None:
            self._prepare(pipeline)

    # --- loading ------------------------------------------------------------

    @property
    def pipeline(self):
        """The loaded pipeline; a ModelNotFoundError when there is none, at once
        when it was already missing and nothing it depends on has changed."""
        with self._load_lock:
            if self._pipeline is None:
                self._pipeline = self._failure.run(astuple(self.settings), self._load)
            return self._pipeline

    def _load(self):
        pipe = load_pipeline(self.settings)
        with hub_offline(not self.settings.allow_downloads):
            return self._prepare(pipe)

    @property
    def added_tokens(self) -> list[str]:
        """Tokens learned by the loaded textual inversions (they count as one token each)."""
        self.pipeline
        return list(self._added_tokens)

    @property
    def device(self) -> str:
        from runtime import pick_device

        return pick_device(self.settings.device)

    def _prepare(self, pipe):
        s = self.settings
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None
        for lora in s.lora:
            if not Path(lora).exists():
                raise ModelNotFoundError(f"LoRA weights not found: {lora} (NOTELOOM_SD_LORA names local files or folders)", watched=[lora])
            pipe.load_lora_weights(lora)
        for path, token in s.textual_inversion:
            if not Path(path).exists():
                raise ModelNotFoundError(f"textual inversion embedding not found: {path} (NOTELOOM_SD_TEXTUAL_INVERSION names local files)",
                                         watched=[path])
            before = len(pipe.tokenizer)
            pipe.load_textual_inversion(path, token=token)
            self._added_tokens += pipe.tokenizer.convert_ids_to_tokens(list(range(before, len(pipe.tokenizer))))
        if s.attention_slicing:
            pipe.enable_attention_slicing()
        if s.vae_slicing and hasattr(pipe, "vae") and hasattr(pipe.vae, "enable_slicing"):
            pipe.vae.enable_slicing()
        if s.cpu_offload and self.device == "cuda":
            pipe.enable_model_cpu_offload()
        elif pipe.device.type != self.device:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def defaults(self) -> ModelDefaults:
        pipe = self.pipeline
        name = (self.model_name or "").lower()
        side = int(pipe.unet.config.sample_size * pipe.vae_scale_factor) if hasattr(pipe, "unet") else 512
        if "turbo" in name:
            return ModelDefaults(steps=1, guidance_scale=0.0, width=side, height=side)
        if "lcm" in name:
            return ModelDefaults(steps=4, guidance_scale=1.0, scheduler="LCM", width=side, height=side)
        return ModelDefaults(width=side, height=side)

    @property
    def single_text_encoder(self) -> bool:
        pipe = self.pipeline
        return getattr(pipe, "text_encoder_2", None) is None and getattr(pipe, "text_encoder", None) is not None

    # --- generating -------------------------------------------------------------

    def generate(self, request: GenerationRequest, *, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> list[GeneratedImage]:
        request.validate()
        if not self._run_lock.acquire(blocking=False):
            raise BusyError("a generation is already running in this process; try again when it finishes")
        try:
            return self._generate(request, progress, cancel)
        finally:
            self._run_lock.release()

    def _generate(self, request: GenerationRequest, progress: Progress | None, cancel: threading.Event | None):
        import torch

        from .conditioning import is_plain, prompt_embeddings

        pipe = self.pipeline
        d = self.defaults()
        steps = request.steps or d.steps
        guidance = d.guidance_scale if request.guidance_scale is None else float(request.guidance_scale)
        scheduler = request.scheduler or d.scheduler
        seeds = request.resolved_seeds()
        if request.init_image is not None:
            width, height = request.init_image.size
        else:
            width, height = request.width or d.width, request.height or d.height
        runner = self._runner(pipe, request.mode)
        if scheduler:
            cls_name, options = SCHEDULERS[scheduler]
            import diffusers

            runner.scheduler = getattr(diffusers, cls_name).from_config(pipe.scheduler.config, **options)
        kwargs: dict[str, Any] = {"num_inference_steps": steps, "guidance_scale": guidance, "output_type": "pil",
                                  "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds], "num_images_per_prompt": len(seeds)}
        info: dict[str, Any] = {}
        if self.single_text_encoder:
            pos, neg, info = prompt_embeddings(request.prompt, request.negative_prompt, pipe.tokenizer, pipe.text_encoder, pipe.device)
            kwargs.update(prompt_embeds=pos, negative_prompt_embeds=neg)
        else:
            if not (is_plain(request.prompt) and is_plain(request.negative_prompt)):
                raise GenerationError("emphasis weights and BREAK are supported for SD 1.x/2.x pipelines; send SDXL plain prompts")
            kwargs.update(prompt=request.prompt, negative_prompt=request.negative_prompt or None)
        if request.mode == "txt2img":
            kwargs.update(width=width, height=height)
        else:
            kwargs.update(image=request.init_image.convert("RGB"), strength=float(request.strength))
            if request.mode == "inpaint":
                kwargs.update(mask_image=request.mask_image.convert("L").point(lambda v: 255 if v >= 128 else 0),
                              width=width, height=height)
        total = _steps_run(steps, request)
        done = [0]

        def on_step(p, step, _timestep, tensors):
            done[0] += 1
            if progress is not None:
                progress(done[0], total)
            if cancel is not None and cancel.is_set():
                p._interrupt = True
            return tensors

        kwargs["callback_on_step_end"] = on_step
        started = time.perf_counter()
        images = runner(**kwargs).images
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled after {done[0]} of {total} steps")
        elapsed = time.perf_counter() - started
        params = {"prompt": request.prompt, "negative_prompt": request.negative_prompt, "steps": steps, "guidance_scale": guidance,
                  "scheduler": scheduler or type(runner.scheduler).__name__, "model": self.model_name, "width": width, "height": height,
                  "mode": request.mode, "strength": request.strength if request.mode != "txt2img" else None, **info}
        out = []
        for image, seed in zip(images, seeds):
            meta = {**params, "seed": seed}
            path = None
            if self.gallery is not None:
                key = hashlib.sha1(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:12]
                path = save_png(image, self.gallery / time.strftime("%Y%m%d") / f"{key}-{seed}.png", meta)
            out.append(GeneratedImage(image, seed, {**meta, "seconds": round(elapsed, 3)}, path))
        return out

    def _runner(self, pipe, mode: str):
        if mode == "txt2img":
            return pipe
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        cls = AutoPipelineForInpainting if mode == "inpaint" else AutoPipelineForImage2Image
        runner = cls.from_pipe(pipe)
        runner.set_progress_bar_config(disable=True)
        return runner


def _steps_run(steps: int, request: GenerationRequest) -> int:
    if request.mode == "txt2img":
        return steps
    return max(1, min(steps, int(steps * request.strength)))

