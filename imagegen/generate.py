"""Image generation: one small backend interface, diffusers as the real backend.

A backend implements ``generate(request, progress=None, cancel=None)``. The
diffusers backend loads a model from a diffusers folder, a single
``.safetensors``/``.ckpt`` file (with a local config folder, so it stays offline)
or a Hugging Face id already in the local cache (downloaded only when
``allow_downloads`` is set); SD 1.x, 2.x and SDXL, and
few-step models (SD-Turbo, LCM) with their own defaults. Every image has its own
seeded generator (on the CPU, so seeds reproduce across devices) and records its
seed; the same request gives the same pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import BusyError, GenerationError, ModelNotFoundError
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


# --- models come from this machine -------------------------------------------
#
# Nothing is downloaded unless a setting allows it (``allow_downloads``, env
# NOTELOOM_ALLOW_DOWNLOADS=1). A Hugging Face id is looked up in the local cache
# with ``try_to_load_from_cache`` (a few file checks, no request) and loaded from
# its snapshot folder; the library calls that read weights run inside
# ``hub_offline``. A missing model is a ModelNotFoundError naming the setting to
# give; the backend and the scorer remember it until the settings or one of the
# paths looked at change, so a request for a missing model costs a few stat calls.

HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_offline_lock = threading.Lock()
_offline_users = 0
_offline_saved: bool | None = None


@contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Inside, Hugging Face hub calls fail at once instead of reaching the network.

    The one place where noteloom changes another library's process state: in
    huggingface_hub 2.4, building request headers fetches an agent registry from
    the Hub even for ``local_files_only=True`` calls, and tokenizers or text towers
    named inside open_clip configs go to the Hub with no argument to stop them.
    ``huggingface_hub.constants.HF_HUB_OFFLINE`` (what the HF_HUB_OFFLINE
    environment variable sets at import) is the switch they all read; it is set
    while at least one load runs (a count under a lock, so overlapping loads in
    other threads do not switch it back early) and restored afterwards. The
    environment is never written."""
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    global _offline_users, _offline_saved
    with _offline_lock:
        if _offline_users == 0:
            _offline_saved = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True
        _offline_users += 1
    try:
        yield
    finally:
        with _offline_lock:
            _offline_users -= 1
            if _offline_users == 0:
                constants.HF_HUB_OFFLINE = _offline_saved


def hub_cache(cache_dir: str | None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_repo_folder(repo_id: str, cache_dir: str | None) -> Path:
    """Where the Hugging Face cache keeps a model repository (it may not exist)."""
    return hub_cache(cache_dir) / ("models--" + repo_id.replace("/", "--"))


def cached_hub_file(repo_id: str, filename: str, cache_dir: str | None) -> str | None:
    """The local path of ``filename`` of ``repo_id`` in the Hugging Face cache, or
    None; never a network request."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache(cache_dir)))
    except ValueError:  # not a valid repository id
        return None
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _stats(paths: Sequence[str]) -> tuple:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class RememberedFailure:
    """The last ModelNotFoundError of a loader, raised again at once (no load is
    tried) while the settings and every path the loader looked at are unchanged."""

    def __init__(self) -> None:
        self._state: tuple | None = None

    def run(self, key: Any, load: Callable[[], Any]) -> Any:
        if self._state is not None:
            old_key, watched, stats, message = self._state
            if old_key == key and _stats(watched) == stats:
                raise ModelNotFoundError(message, watched=watched)
        try:
            result = load()
        except ModelNotFoundError as exc:
            self._state = (key, exc.watched, _stats(exc.watched), str(exc))
            raise
        self._state = None
        return result


@dataclass
class DiffusersSettings:
    model: str | None = None
    config: str | None = None  # diffusers-format config folder for single-file checkpoints
    device: str | None = None
    attention_slicing: bool = False
    vae_slicing: bool = False
    cpu_offload: bool = False
    lora: list[str] = field(default_factory=list)
    textual_inversion: list[tuple[str, str | None]] = field(default_factory=list)  # (path, token)
    allow_downloads: bool = False  # let a Hugging Face id that is not in the cache be downloaded
    cache_dir: str | None = None  # Hugging Face cache folder; None: huggingface_hub's default

    @classmethod
    def from_env(cls) -> "DiffusersSettings":
        flag = lambda name: os.environ.get(name, "").lower() in ("1", "true", "yes")  # noqa: E731
        ti = []
        for item in filter(None, os.environ.get("NOTELOOM_SD_TEXTUAL_INVERSION", "").split(os.pathsep)):
            path, _, token = item.partition("=")
            ti.append((path, token or None))
        return cls(
            model=os.environ.get("NOTELOOM_SD_MODEL") or None, config=os.environ.get("NOTELOOM_SD_CONFIG") or None,
            device=os.environ.get("NOTELOOM_DEVICE") or None, attention_slicing=flag("NOTELOOM_ATTENTION_SLICING"),
            vae_slicing=flag("NOTELOOM_VAE_SLICING"), cpu_offload=flag("NOTELOOM_CPU_OFFLOAD"),
            lora=list(filter(None, os.environ.get("NOTELOOM_SD_LORA", "").split(os.pathsep))), textual_inversion=ti,
            allow_downloads=flag("NOTELOOM_ALLOW_DOWNLOADS"),
        )


MISSING_MODEL = (
    "no Stable Diffusion model {what}. Set NOTELOOM_SD_MODEL (or --model) to one of: a local diffusers-format folder "
    "(the folder holding model_index.json); a local .safetensors/.ckpt checkpoint file together with NOTELOOM_SD_CONFIG "
    "(a local diffusers-format folder with the matching configs, so nothing is downloaded); or a Hugging Face id (org/name) "
    "already in your local Hugging Face cache. Nothing is downloaded unless NOTELOOM_ALLOW_DOWNLOADS=1."
)


@dataclass(frozen=True)
class ModelSource:
    """Where the weights are: ``kind`` is "folder", "checkpoint" or "hub" (an id to
    download, only when downloads are allowed); ``watched``: the paths looked at."""

    kind: str
    path: str
    config: str | None = None
    watched: tuple[str, ...] = ()


def resolve_model(settings: DiffusersSettings) -> ModelSource:
    """Find the model on this machine, with file checks only (no imports of torch or
    diffusers, no network); a ModelNotFoundError says what to set."""
    spec = settings.model
    if not spec:
        raise ModelNotFoundError(MISSING_MODEL.format(what="is configured"))
    path = Path(spec).expanduser()
    watched = [str(path)]
    if path.is_dir():
        watched.append(str(path / "model_index.json"))
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(MISSING_MODEL.format(what=f"in {path} (no model_index.json)"), watched=watched)
        return ModelSource("folder", str(path), watched=tuple(watched))
    if path.suffix in (".safetensors", ".ckpt"):
        if not path.is_file():
            raise ModelNotFoundError(MISSING_MODEL.format(what=f"at {path} (no such file)"), watched=watched)
        config = settings.config
        if config:
            watched.append(str(Path(config) / "model_index.json"))
        if not config or not (Path(config) / "model_index.json").is_file():
            raise ModelNotFoundError(MISSING_MODEL.format(
                what=f"config for {path.name}: set NOTELOOM_SD_CONFIG to a diffusers-format folder"), watched=watched)
        return ModelSource("checkpoint", str(path), str(config), tuple(watched))
    if spec.startswith(".") or not HF_ID.match(spec):
        raise ModelNotFoundError(MISSING_MODEL.format(what=f"at {spec!r} (no such folder or file, and not a Hugging Face id)"),
                                 watched=watched)
    repo = hub_repo_folder(spec, settings.cache_dir)
    watched = [str(repo), str(repo / "refs" / "main"), str(repo / "snapshots")]
    index = cached_hub_file(spec, "model_index.json", settings.cache_dir)
    if index is not None:
        return ModelSource("folder", str(Path(index).parent), watched=tuple(watched))
    if settings.allow_downloads:
        return ModelSource("hub", spec, watched=tuple(watched))
    raise ModelNotFoundError(MISSING_MODEL.format(what=f"{spec!r} in the local Hugging Face cache ({hub_cache(settings.cache_dir)})"),
                             watched=watched)


def auto_device(torch) -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_pipeline(settings: DiffusersSettings):
    """The one function that reads Stable Diffusion weights: from a folder, a
    checkpoint with its config folder, or (downloads allowed) the Hub."""
    source = resolve_model(settings)
    from chunkers.embedders import configure_torch

    torch = configure_torch()
    import diffusers
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    device = settings.device or auto_device(torch)
    common = {"dtype": torch.float16 if device == "cuda" else torch.float32, "local_files_only": not settings.allow_downloads}
    try:
        with hub_offline(not settings.allow_downloads):
            if source.kind == "checkpoint":
                class_name = json.loads((Path(source.config) / "model_index.json").read_text())["_class_name"]
                return getattr(diffusers, class_name).from_single_file(source.path, config=source.config, **common)
            return diffusers.DiffusionPipeline.from_pretrained(source.path, safety_checker=None, **common)
    except Exception as exc:  # noqa: BLE001  (weights that are there but unusable: named, never a 500)
        raise ModelNotFoundError(MISSING_MODEL.format(
            what=f"could be loaded from {source.path} ({type(exc).__name__}: {_short(exc)})"), watched=source.watched) from None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


class DiffusersBackend(Backend):
    def __init__(self, settings: DiffusersSettings | None = None, *, pipeline=None, gallery: str | Path | None = None) -> None:
        self.settings = settings or DiffusersSettings.from_env()
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
        if self.settings.device:
            return self.settings.device
        import torch

        return auto_device(torch)

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

