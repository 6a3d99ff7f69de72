"""CLIP scoring with open_clip: ``score = 100 * max(cos(image, text), 0)`` (the
torchmetrics convention). Scales differ between CLIP models, so every score is
reported with its model and the convention. A prompt longer than the text
tower's window is scored on what the tower sees, and that is reported."""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from runtime import CONTENT_TOKENS, ClipCounter

from .errors import GenerationError, ModelNotFoundError
from .offline import RememberedFailure, cached_hub_file, hub_cache, hub_offline, hub_repo_folder, short_message

CONVENTION = "100*max(cos(image,text),0)"


@dataclass
class ScoreResult:
    scores: list[float]
    model: str
    pretrained: str | None
    convention: str = CONVENTION
    prompt_seen: str = ""
    truncated: bool = False
    dropped_text: str = ""
    order: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"scores": self.scores, "model": self.model, "pretrained": self.pretrained, "convention": self.convention,
                "prompt_seen": self.prompt_seen, "truncated": self.truncated, "dropped_text": self.dropped_text, "order": self.order}


def rank(images: list, result: "ScoreResult") -> list:
    """Attach each score to its ``GeneratedImage``, record the score, model and
    convention in its PNG, and return the images best first."""
    from .png import save_png

    for g, value in zip(images, result.scores):
        g.score = value
        g.params.update(clip_score=value, clip_model=f"{result.model}/{result.pretrained}", clip_convention=result.convention)
        if g.path is not None:
            save_png(g.image, g.path, {**g.params, "seed": g.seed})
    return [images[i] for i in result.order]


@dataclass
class ClipSettings:
    """Which CLIP model scores images. ``pretrained``: an open_clip tag (such as
    ``openai``) whose weights are in the local Hugging Face cache (or open_clip's
    ``~/.cache/clip``), a local weights file, or None for random weights.
    ``model`` may also be ``local-dir:/folder`` or ``hf-hub:org/name`` (cached).
    The application builds it from its settings (see ``service``)."""

    model: str = "ViT-L-14"
    pretrained: str | None = "openai"
    config_dir: str | None = None  # extra open_clip model configs (JSON files)
    device: str | None = None
    allow_downloads: bool = False  # let missing weights be downloaded from the Hub
    cache_dir: str | None = None  # Hugging Face cache folder; None: huggingface_hub's default


WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors")
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HOW_TO_PROVIDE = ("Set NOTELOOM_CLIP_PRETRAINED to a local open_clip weights file (.safetensors, .bin or .pt), "
                  "or put the weights in the Hugging Face cache{where}, or set NOTELOOM_ALLOW_DOWNLOADS=1 to download them.")


def _missing(what: str, watched: Sequence[str], where: str = "") -> ModelNotFoundError:
    return ModelNotFoundError(f"{what} {HOW_TO_PROVIDE.format(where=where)}", watched=watched)


def _is_path(value: str) -> bool:
    return value.endswith(WEIGHT_SUFFIXES) or "/" in value or "\\" in value or value.startswith(("~", "."))


def _safetensors_first(filename: str) -> list[str]:
    """The names open_clip tries for a weights file on the Hub, in its order."""
    filename = filename or "open_clip_pytorch_model.bin"
    if filename == "open_clip_pytorch_model.bin":
        return ["open_clip_model.safetensors", filename]
    if filename.endswith((".bin", ".pth")):
        return [filename.rsplit(".", 1)[0] + ".safetensors", filename]
    return [filename]


def tag_weights(open_clip, s: ClipSettings, watched: list[str]) -> tuple[str, dict[str, Any]]:
    """The local file holding the weights of pretrained tag ``s.pretrained``, and the
    preprocessing that goes with them; never a network request."""
    cfg = open_clip.get_pretrained_cfg(s.model, s.pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(s.model)) or "none"
        raise _missing(f"NOTELOOM_CLIP_PRETRAINED={s.pretrained!r} is neither a pretrained tag of {s.model} (tags: {tags}) "
                       "nor an existing file.", watched)
    preprocess = {"image_mean": cfg.get("mean"), "image_std": cfg.get("std"), "image_interpolation": cfg.get("interpolation"),
                  "image_resize_mode": cfg.get("resize_mode")}
    candidates: list[str] = [cfg["file"]] if cfg.get("file") else []
    repo, filename = os.path.split(cfg.get("hf_hub", ""))
    if repo:
        folder = hub_repo_folder(repo, s.cache_dir)
        watched += [str(folder), str(folder / "refs" / "main")]
        candidates += [f for f in (cached_hub_file(repo, n, s.cache_dir) for n in _safetensors_first(filename)) if f]
    if cfg.get("url"):
        local = Path(s.cache_dir or "~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        watched.append(str(local))
        candidates.append(str(local))
    for path in candidates:
        if os.path.isfile(path):
            return path, preprocess
    where = f" ({hub_cache(s.cache_dir)}, repository {repo})" if repo else ""
    raise _missing(f"CLIP weights {s.model}/{s.pretrained} are not available offline.", watched, where)


def _hub_folder(s: ClipSettings, repo: str, watched: list[str]) -> str:
    """The cached snapshot folder of an open_clip model published as ``hf-hub:repo``."""
    folder = hub_repo_folder(repo, s.cache_dir)
    watched += [str(folder), str(folder / "refs" / "main")]
    config = cached_hub_file(repo, "open_clip_config.json", s.cache_dir)
    if config and any(cached_hub_file(repo, n, s.cache_dir) for n in OPEN_CLIP_WEIGHTS):
        return "local-dir:" + os.path.dirname(config)
    raise ModelNotFoundError(
        f"CLIP model {repo} is not in the Hugging Face cache ({hub_cache(s.cache_dir)}: it needs open_clip_config.json and "
        f"{' or '.join(OPEN_CLIP_WEIGHTS)}). Set NOTELOOM_CLIP_MODEL to local-dir:/a/folder holding those files, "
        "or set NOTELOOM_ALLOW_DOWNLOADS=1 to download them.", watched=watched)


def load_open_clip(s: ClipSettings):
    """The one function that reads CLIP weights: (model, preprocess, tokenizer, device).
    Unless ``s.allow_downloads``, everything comes from this machine."""
    watched: list[str] = []
    if s.config_dir:
        watched.append(s.config_dir)
        if not Path(s.config_dir).expanduser().is_dir():
            raise _missing(f"NOTELOOM_CLIP_CONFIG_DIR={s.config_dir!r} is not an existing folder of open_clip model configs.", watched)
    if s.pretrained and _is_path(s.pretrained):
        watched.append(s.pretrained)
        if not Path(s.pretrained).expanduser().is_file():
            raise _missing(f"CLIP weights not found: NOTELOOM_CLIP_PRETRAINED={s.pretrained!r} is not an existing file.", watched)
    from runtime import configure_torch, pick_device

    torch = configure_torch()
    try:
        import open_clip
    except ImportError as exc:
        from runtime import MissingDependencyError

        raise MissingDependencyError("open_clip_torch", "CLIP scoring", "imagegen") from exc

    if s.config_dir:
        open_clip.add_model_config(s.config_dir)
    name, pretrained, options = s.model, s.pretrained, {}
    if s.model.startswith("local-dir:"):
        watched.append(s.model[len("local-dir:"):])
    elif s.model.startswith("hf-hub:"):
        name = s.model if s.allow_downloads else _hub_folder(s, s.model[len("hf-hub:"):], watched)
    elif open_clip.get_model_config(s.model) is None:
        raise ModelNotFoundError(f"unknown CLIP model NOTELOOM_CLIP_MODEL={s.model!r}: give one of open_clip's models (such as "
                                 "ViT-L-14 or ViT-B-32), local-dir:/a/folder, or a config of your own in NOTELOOM_CLIP_CONFIG_DIR.",
                                 watched=watched)
    elif pretrained and not _is_path(pretrained) and not s.allow_downloads:
        pretrained, options = tag_weights(open_clip, s, watched)
    device = pick_device(s.device, candidates=("cuda", "cpu"), torch=torch)
    try:
        with hub_offline(not s.allow_downloads):
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device, **options)
            tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # noqa: BLE001  (a file that is there but unusable: named, never a 500)
        offline = "" if s.allow_downloads else " offline"
        raise _missing(f"CLIP model {s.model}/{s.pretrained} could not be loaded{offline} ({type(exc).__name__}: {short_message(exc)}).",
                       watched) from None
    model.eval()
    return model, preprocess, tokenizer, device


class ClipScorer:
    @classmethod
    def from_settings(cls, settings: ClipSettings) -> "ClipScorer":
        return cls(**asdict(settings))

    def __init__(self, model: str = "ViT-L-14", pretrained: str | None = "openai", *, device: str | None = None,
                 config_dir: str | None = None, allow_downloads: bool = False, cache_dir: str | None = None) -> None:
        self.settings = ClipSettings(model, pretrained, config_dir=config_dir, device=device, allow_downloads=allow_downloads,
                                     cache_dir=cache_dir)
        self._loaded = None
        self._lock = threading.Lock()
        self._failure = RememberedFailure()

    @property
    def model_name(self) -> str:
        return self.settings.model

    @property
    def pretrained(self) -> str | None:
        return self.settings.pretrained

    def _load(self):
        """The loaded model; a ModelNotFoundError when the weights are missing, at
        once when they were already missing and nothing they depend on changed."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._failure.run(astuple(self.settings), lambda: load_open_clip(self.settings))
            return self._loaded

    def score(self, images: Sequence[Any], prompt: str) -> ScoreResult:
        import torch

        if not images:
            raise GenerationError("no images to score")
        if not isinstance(prompt, str) or not prompt.strip():
            raise GenerationError("prompt must be a non-empty string")
        model, preprocess, tokenizer, device = self._load()
        seen, dropped = self.visible_text(prompt, getattr(model, "context_length", 77) or 77)
        with torch.no_grad():
            pixels = torch.stack([preprocess(img.convert("RGB")) for img in images]).to(device)
            image_features = model.encode_image(pixels).float()
            text_features = model.encode_text(tokenizer([prompt]).to(device)).float()
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)
            cos = (image_features @ text_features.T).squeeze(1)
        scores = [round(100 * max(float(c), 0.0), 4) for c in cos]
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return ScoreResult(scores, self.model_name, self.pretrained, prompt_seen=seen, truncated=bool(dropped), dropped_text=dropped, order=order)

    @staticmethod
    def visible_text(prompt: str, context_length: int = 77) -> tuple[str, str]:
        """The part of ``prompt`` the text tower sees (the longest prefix within the
        window, in the user's own words) and the part cut off."""
        count = ClipCounter()
        room = min(CONTENT_TOKENS, context_length - 2)
        if count(prompt) <= room:
            return prompt, ""
        lo, hi = 0, len(prompt)
        while lo < hi:  # largest prefix length whose tokens fit
            mid = (lo + hi + 1) // 2
            if count(prompt[:mid]) <= room:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        while cut > 0 and not prompt[cut - 1].isspace() and cut < len(prompt) and not prompt[cut].isspace():
            cut -= 1  # do not report half a word as seen
        cut = cut or lo
        return prompt[:cut].rstrip(), prompt[cut:].strip()
