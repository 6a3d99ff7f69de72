"""Exceptions of the imagegen package (each subclasses a builtin):

- ``PromptError(ValueError)``: a bad idea, style, budget, or emphasis syntax
  (unbalanced brackets, absurd weights); the message names the problem.
- ``ModelNotFoundError(FileNotFoundError)``: no Stable Diffusion or CLIP weights at
  the configured place (nothing is downloaded unless downloads are allowed); the
  message says which setting to give and what kind of path. ``watched`` lists the
  paths that were looked at: the failure is remembered until the settings or one
  of these paths change.
- ``GenerationError(ValueError)``: a bad generation request (sizes, counts, images).
- ``ImageError(GenerationError)``: an uploaded image that cannot be decoded
  (truncated, corrupt, or its decoder failed); the message names the file.
- ``UnsupportedImageError(ImageError)``: an image in a format outside the accepted
  list (or no image at all).
- ``ImageTooLargeError(ImageError)``: an image whose declared size is over the
  pixel limit; refused before any pixel is decoded.
- ``BusyError(RuntimeError)``: a generation is already running.
"""

from __future__ import annotations

from typing import Iterable


class PromptError(ValueError):
    pass


class ModelNotFoundError(FileNotFoundError):
    def __init__(self, message: str, *, watched: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.watched = tuple(str(p) for p in watched)


class GenerationError(ValueError):
    pass


class ImageError(GenerationError):
    pass


class UnsupportedImageError(ImageError):
    pass


class ImageTooLargeError(ImageError):
    pass


class BusyError(RuntimeError):
    pass
