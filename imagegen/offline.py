"""Models come from this machine: where Stable Diffusion weights are, loading them
without a network request, and remembering a missing model cheaply.

Nothing is downloaded unless a setting allows it (``allow_downloads``; the service
sets it from NOTELOOM_ALLOW_DOWNLOADS=1). A Hugging Face id is looked up in the
local cache with ``try_to_load_from_cache`` (a few file checks, no request) and loaded from
its snapshot folder; the library calls that read weights run inside
``hub_offline``. A missing model is a ModelNotFoundError naming the setting to
give; the backend and the scorer remember it until the settings or one of the
paths looked at change, so a request for a missing model costs a few stat calls.
"""

from __future__ import annotations

import json
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import ModelNotFoundError

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
    """Which Stable Diffusion model to load and how; the application builds it from
    its settings (see ``service``). ``model``: a diffusers folder, a .safetensors or
    .ckpt checkpoint (with ``config``, a diffusers-format folder) or a Hugging Face
    id in the local cache; ``lora``: local LoRA files or folders, loaded in order;
    ``textual_inversion``: (embedding file, token or None) pairs."""

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


def load_pipeline(settings: DiffusersSettings):
    """The one function that reads Stable Diffusion weights: from a folder, a
    checkpoint with its config folder, or (downloads allowed) the Hub."""
    source = resolve_model(settings)
    from runtime import configure_torch, pick_device

    torch = configure_torch()
    try:
        import diffusers
    except ImportError as exc:
        from runtime import MissingDependencyError

        raise MissingDependencyError("diffusers", "image generation", "imagegen") from exc
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    device = pick_device(settings.device, torch=torch)
    common = {"dtype": torch.float16 if device == "cuda" else torch.float32, "local_files_only": not settings.allow_downloads}
    try:
        with hub_offline(not settings.allow_downloads):
            if source.kind == "checkpoint":
                class_name = json.loads((Path(source.config) / "model_index.json").read_text())["_class_name"]
                return getattr(diffusers, class_name).from_single_file(source.path, config=source.config, **common)
            return diffusers.DiffusionPipeline.from_pretrained(source.path, safety_checker=None, **common)
    except Exception as exc:  # noqa: BLE001  (weights that are there but unusable: named, never a 500)
        raise ModelNotFoundError(MISSING_MODEL.format(
            what=f"could be loaded from {source.path} ({type(exc).__name__}: {short_message(exc)})"), watched=source.watched) from None


def short_message(exc: BaseException, limit: int = 300) -> str:
    """A library error's text for a one-line message, cut with the cut said."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"
