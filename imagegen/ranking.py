"""Generate, then score and rank with CLIP, in one call shared by the command line
and the HTTP API. Images come back even when they cannot be scored (no CLIP
weights on this machine): ``Ranked.unscored`` then says why."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from .generate import Backend, GeneratedImage, GenerationRequest, Progress
from .score import ScoreResult, rank

UNSCORED_ERRORS = (FileNotFoundError, ValueError)
"""What a scorer raises when it cannot score (ModelNotFoundError: no weights;
GenerationError: nothing to score); anything else is a fault and propagates."""


class Scorer(Protocol):
    def score(self, images: Sequence[Any], prompt: str) -> ScoreResult: ...


@dataclass
class Ranked:
    """Generated images, best CLIP score first when scored (else in seed order)."""

    images: list[GeneratedImage]
    result: ScoreResult | None = None  # the scores, model and convention
    unscored: str | None = None  # why scoring failed; None when scored or not asked

    @property
    def scoring(self) -> dict[str, Any] | None:
        """What to report beside the images: the scoring model, convention and what
        the text tower saw (per-image scores are on the images), ``{"error": why}``
        when scoring failed, None when it was not asked for."""
        if self.result is not None:
            return {k: v for k, v in self.result.to_dict().items() if k not in ("scores", "order")}
        if self.unscored is not None:
            return {"error": self.unscored}
        return None


def generate_and_rank(backend: Backend, request: GenerationRequest, scorer: Scorer | None = None, *,
                      progress: Progress | None = None, cancel: threading.Event | None = None) -> Ranked:
    """Generate ``request`` with ``backend``; with a ``scorer``, score every image
    against the prompt, record the score in its PNG and order the images best
    first. A scorer that cannot score leaves the images unscored, in seed order."""
    images = backend.generate(request, progress=progress, cancel=cancel)
    if scorer is None:
        return Ranked(images)
    try:
        result = scorer.score([g.image for g in images], request.prompt)
        return Ranked(rank(images, result), result)
    except UNSCORED_ERRORS as exc:
        return Ranked(images, unscored=str(exc))
