"""Settings that come from the environment, read here and passed down.

Each ``LoadLimits`` field can be raised with ``NOTELOOM_<FIELD>``, e.g.
``NOTELOOM_MAX_PDF_PAGES=20000``; the library never reads the environment itself.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace
from typing import Any, Mapping

from ingest.loaders import DEFAULT_LIMITS, LoadLimits


def load_limits(environ: Mapping[str, str] = os.environ) -> LoadLimits:
    """``LoadLimits`` with every ``NOTELOOM_<FIELD>`` set in ``environ`` applied."""
    changes = {}
    for f in fields(LoadLimits):
        name = f"NOTELOOM_{f.name.upper()}"
        raw = environ.get(name)
        if raw is None:
            continue
        kind = int if f.type == "int" else float
        try:
            value = kind(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}, got {raw!r}")
        changes[f.name] = value
    return replace(DEFAULT_LIMITS, **changes)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").lower() in ("1", "true", "yes")


def diffusers_settings(environ: Mapping[str, str] = os.environ):
    """``imagegen.DiffusersSettings`` from NOTELOOM_SD_MODEL, NOTELOOM_SD_CONFIG,
    NOTELOOM_DEVICE, NOTELOOM_ATTENTION_SLICING, NOTELOOM_VAE_SLICING,
    NOTELOOM_CPU_OFFLOAD, NOTELOOM_SD_LORA and NOTELOOM_SD_TEXTUAL_INVERSION (lists
    separated by os.pathsep; an embedding as PATH or PATH=TOKEN) and
    NOTELOOM_ALLOW_DOWNLOADS."""
    from imagegen import DiffusersSettings

    inversions = []
    for item in filter(None, environ.get("NOTELOOM_SD_TEXTUAL_INVERSION", "").split(os.pathsep)):
        path, _, token = item.partition("=")
        inversions.append((path, token or None))
    return DiffusersSettings(
        model=environ.get("NOTELOOM_SD_MODEL") or None, config=environ.get("NOTELOOM_SD_CONFIG") or None,
        device=environ.get("NOTELOOM_DEVICE") or None, attention_slicing=_flag(environ, "NOTELOOM_ATTENTION_SLICING"),
        vae_slicing=_flag(environ, "NOTELOOM_VAE_SLICING"), cpu_offload=_flag(environ, "NOTELOOM_CPU_OFFLOAD"),
        lora=list(filter(None, environ.get("NOTELOOM_SD_LORA", "").split(os.pathsep))), textual_inversion=inversions,
        allow_downloads=_flag(environ, "NOTELOOM_ALLOW_DOWNLOADS"),
    )


def clip_settings(environ: Mapping[str, str] = os.environ):
    """``imagegen.ClipSettings`` from NOTELOOM_CLIP_MODEL (default ViT-L-14),
    NOTELOOM_CLIP_PRETRAINED (default ``openai``; empty for random weights),
    NOTELOOM_CLIP_CONFIG_DIR, NOTELOOM_DEVICE and NOTELOOM_ALLOW_DOWNLOADS."""
    from imagegen import ClipSettings

    return ClipSettings(model=environ.get("NOTELOOM_CLIP_MODEL", "ViT-L-14"),
                        pretrained=environ.get("NOTELOOM_CLIP_PRETRAINED", "openai") or None,
                        config_dir=environ.get("NOTELOOM_CLIP_CONFIG_DIR") or None, device=environ.get("NOTELOOM_DEVICE") or None,
                        allow_downloads=_flag(environ, "NOTELOOM_ALLOW_DOWNLOADS"))


def configure_runtime(environ: Mapping[str, str] = os.environ) -> None:
    """The model runtime's process settings: NOTELOOM_THREADS (torch and FAISS CPU
    threads, default every core) and NOTELOOM_CACHE (derived files such as the CLIP
    tokenizer's). OpenMP reads its wait policy when torch is imported, so passive
    waiting is chosen here, before that, unless the user chose a policy."""
    import sys

    import runtime

    raw = environ.get("NOTELOOM_THREADS") or None
    try:
        threads = int(raw) if raw is not None else None
    except ValueError:
        raise ValueError(f"NOTELOOM_THREADS must be an integer, got {raw!r}") from None
    if threads is not None and threads < 1:
        raise ValueError(f"NOTELOOM_THREADS must be >= 1, got {raw!r}")
    runtime.configure(threads=threads, cache_dir=environ.get("NOTELOOM_CACHE") or None)
    if environ is os.environ and "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def data_dir(explicit: str | None = None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The data folder: ``--data``, else ``NOTELOOM_DATA`` (None: the library's ``.noteloom``)."""
    return explicit or environ.get("NOTELOOM_DATA") or None


def notebook_options(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """``Notebook`` parameters from ``NOTELOOM_EMBEDDING_MODEL`` and ``NOTELOOM_LLM_URL`` / ``_MODEL`` / ``_KEY``."""
    from retrieval import DEFAULT_EMBEDDING_MODEL, LLMConfig
    from retrieval.chat import DEFAULT_LLM_MODEL

    url = environ.get("NOTELOOM_LLM_URL")
    llm = LLMConfig(url, environ.get("NOTELOOM_LLM_MODEL", DEFAULT_LLM_MODEL), environ.get("NOTELOOM_LLM_KEY", "")) if url else None
    return {"default_embedding_model": environ.get("NOTELOOM_EMBEDDING_MODEL", DEFAULT_EMBEDDING_MODEL), "llm": llm}
