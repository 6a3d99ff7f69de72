"""Exceptions of the imagegen package (each subclasses a builtin):

- ``PromptError(ValueError)``: a bad idea, style, budget, or emphasis syntax
  (unbalanced brackets, absurd weights); the message names the problem.
- ``ModelNotFoundError(FileNotFoundError)``: no Stable Diffusion or CLIP weights at
  the configured place; the message says what to provide.
- ``GenerationError(ValueError)``: a bad generation request (sizes, counts, images).
- ``BusyError(RuntimeError)``: a generation is already running.
"""


class PromptError(ValueError):
    pass


class ModelNotFoundError(FileNotFoundError):
    pass


class GenerationError(ValueError):
    pass


class BusyError(RuntimeError):
    pass
