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
