"""CLIP scoring with open_clip: ``score = 100 * max(cos(image, text), 0)`` (the
torchmetrics convention). Scales differ between CLIP models, so every score is
reported with its model and the convention. A prompt longer than the text
tower's window is scored on what the tower sees, and that is reported."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import GenerationError, ModelNotFoundError
from .tokens import CONTENT_TOKENS, ClipCounter

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


class ClipScorer:
    @classmethod
    def from_env(cls) -> "ClipScorer":
        """NOTELOOM_CLIP_MODEL (default ViT-L-14), NOTELOOM_CLIP_PRETRAINED (a tag such as
        ``openai`` found in the local cache, or a weights file; empty for random
        weights), NOTELOOM_CLIP_CONFIG_DIR (extra open_clip model configs)."""
        import os

        config_dir = os.environ.get("NOTELOOM_CLIP_CONFIG_DIR")
        if config_dir:
            import open_clip

            open_clip.add_model_config(config_dir)
        pretrained = os.environ.get("NOTELOOM_CLIP_PRETRAINED", "openai")
        return cls(os.environ.get("NOTELOOM_CLIP_MODEL", "ViT-L-14"), pretrained or None)

    def __init__(self, model: str = "ViT-L-14", pretrained: str | None = "openai", *, device: str | None = None) -> None:
        self.model_name = model
        self.pretrained = pretrained
        self._device = device
        self._loaded = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._loaded is None:
                from chunkers.embedders import configure_torch

                torch = configure_torch()
                import open_clip
                device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
                pretrained = self.pretrained
                if pretrained and (Path(pretrained).suffix in (".bin", ".pt", ".pth", ".safetensors")) and not Path(pretrained).is_file():
                    raise ModelNotFoundError(f"CLIP weights not found: {pretrained}")
                try:
                    model, _, preprocess = open_clip.create_model_and_transforms(self.model_name, pretrained=pretrained or None, device=device)
                except RuntimeError as exc:
                    if "Unknown model" in str(exc) or "not found" in str(exc).lower():
                        raise ModelNotFoundError(f"unknown CLIP model {self.model_name!r}: {exc}") from None
                    raise ModelNotFoundError(self._missing(exc)) from None
                except (OSError, ValueError) as exc:
                    raise ModelNotFoundError(self._missing(exc)) from None
                model.eval()
                self._loaded = (model, preprocess, open_clip.get_tokenizer(self.model_name), device)
            return self._loaded

    def _missing(self, exc: Exception) -> str:
        return (f"CLIP weights {self.model_name}/{self.pretrained} are not available offline ({type(exc).__name__}). "
                "Put them in the Hugging Face cache, or give a local file: NOTELOOM_CLIP_PRETRAINED=/path/to/open_clip_model.safetensors")

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
