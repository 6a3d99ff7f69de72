"""Torch threads and device choice, in one place for the embedder, the CLIP
scorer and the diffusers pipeline. torch is imported only when these run."""

from __future__ import annotations

from typing import Sequence

from .config import check_threads, cpu_threads
from .errors import InvalidSettingError, MissingDependencyError

DEVICES = ("cuda", "mps", "cpu")


def configure_torch(threads: int | None = None):
    """Import torch and give it ``threads`` CPU threads (None: ``cpu_threads()``);
    returns the torch module. The OpenMP wait policy is read when torch loads, so
    the application sets ``OMP_WAIT_POLICY`` before the first import."""
    wanted = check_threads(threads) if threads is not None else cpu_threads()
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "this model", "semantic") from exc
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch


def pick_device(preference: str | None = None, *, candidates: Sequence[str] = DEVICES, torch=None) -> str:
    """``preference`` when given (checked to be a device torch knows, such as "cpu",
    "cuda" or "cuda:1"), else the first available of ``candidates`` (CPU last)."""
    torch = torch or configure_torch()
    if preference is not None:
        if not isinstance(preference, str) or not preference.strip():
            raise InvalidSettingError(f"device must be a name such as 'cpu', 'cuda' or 'cuda:1', got {preference!r}")
        try:
            torch.device(preference)
        except (RuntimeError, ValueError) as exc:
            raise InvalidSettingError(f"unknown device {preference!r}: use cpu, cuda, cuda:N or mps ({exc})") from None
        return preference
    for name in candidates:
        if name == "cuda" and torch.cuda.is_available():
            return "cuda"
        if name == "mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
    return "cpu"
