"""Image prompts from notes, image generation with diffusers, CLIP scoring.

Importing this package loads no ML framework; the generator and scorer import
torch, diffusers and open_clip when they are built. Models are configured with
``DiffusersSettings`` and ``ClipSettings`` (the application fills them from its
own settings; nothing here reads the environment).
"""

from runtime import CONTENT_TOKENS

from .emphasis import Piece, format_pieces, parse, plain_text
from .errors import (BusyError, GenerationError, ImageError, ImageTooLargeError, ModelNotFoundError, PromptError,
                     UnsupportedImageError)
from .generate import (MAX_IMAGES, MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE, SCHEDULERS, Backend, Cancelled, DiffusersBackend,
                       GeneratedImage, GenerationRequest)
from .offline import DiffusersSettings, resolve_model
from .prompt import Passage, PromptBuilder, PromptResult, build_prompt
from .ranking import Ranked, generate_and_rank
from .score import ClipScorer, ClipSettings, ScoreResult, rank
from .testing import save_tiny_sd

__all__ = [
    "Backend",
    "BusyError",
    "CONTENT_TOKENS",
    "Cancelled",
    "ClipScorer",
    "ClipSettings",
    "DiffusersBackend",
    "DiffusersSettings",
    "GeneratedImage",
    "GenerationError",
    "GenerationRequest",
    "ImageError",
    "ImageTooLargeError",
    "MAX_IMAGES",
    "MAX_SEED",
    "MAX_SIDE",
    "MAX_STEPS",
    "MIN_SIDE",
    "ModelNotFoundError",
    "Passage",
    "Piece",
    "PromptBuilder",
    "PromptError",
    "PromptResult",
    "Ranked",
    "SCHEDULERS",
    "ScoreResult",
    "UnsupportedImageError",
    "build_prompt",
    "format_pieces",
    "generate_and_rank",
    "parse",
    "plain_text",
    "rank",
    "resolve_model",
    "save_tiny_sd",
]
