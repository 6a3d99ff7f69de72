"""Image prompts from notes, image generation with diffusers, CLIP scoring.

Importing this package loads no ML framework; the generator and scorer import
torch, diffusers and open_clip when they are built.
"""

from .emphasis import Piece, format_pieces, parse, plain_text
from .errors import BusyError, GenerationError, ModelNotFoundError, PromptError
from .prompt import Passage, PromptBuilder, PromptResult, build_prompt

__all__ = [
    "BusyError",
    "GenerationError",
    "ModelNotFoundError",
    "Passage",
    "Piece",
    "PromptBuilder",
    "PromptError",
    "PromptResult",
    "build_prompt",
    "format_pieces",
    "parse",
    "plain_text",
]
