"""A generated answer from an OpenAI-compatible chat endpoint, beside the
extractive one: numbered passages in, numbered citations back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .records import Hit

DEFAULT_LLM_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class LLMConfig:
    """Where to ask: ``url`` is the endpoint's base URL (``/chat/completions`` is added)."""

    url: str
    model: str = DEFAULT_LLM_MODEL
    key: str = ""
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.strip():
            raise ValueError(f"the LLM url must be a non-empty string, got {self.url!r}")

    @classmethod
    def of(cls, value: "LLMConfig | Mapping[str, Any]") -> "LLMConfig":
        """An ``LLMConfig`` as is, or one from a mapping with ``url`` and optionally ``model``, ``key``, ``timeout``."""
        if isinstance(value, LLMConfig):
            return value
        unknown = set(value) - {"url", "model", "key", "timeout"}
        if unknown:
            raise ValueError(f"unknown LLM setting {sorted(unknown)[0]!r}; the settings are url, model, key, timeout")
        return cls(**value)


def generate_answer(question: str, hits: Sequence[Hit], config: LLMConfig) -> dict[str, Any]:
    """Ask the endpoint. Failures are reported in the result, never raised: the
    extractive answer stands."""
    import httpx

    passages = "\n\n".join(f"[{i}] ({h.source}) {h.text}" for i, h in enumerate(hits, start=1))
    body = {
        "model": config.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "Answer only from the numbered passages. Cite passages like [1]. "
                                          "If they do not contain the answer, say so."},
            {"role": "user", "content": f"Passages:\n{passages}\n\nQuestion: {question}"},
        ],
    }
    headers = {"Authorization": f"Bearer {config.key}"} if config.key else {}
    url = config.url.rstrip("/")
    if not url.endswith("/chat/completions"):
        url += "/chat/completions"
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=config.timeout)
        response.raise_for_status()
        text = response.json()["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "model": config.model}
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", text) if 1 <= int(n) <= len(hits)})
    return {
        "model": config.model,
        "answer": text,
        "citations": [{"n": n, "source": hits[n - 1].source, "start": hits[n - 1].start, "end": hits[n - 1].end} for n in cited],
    }
