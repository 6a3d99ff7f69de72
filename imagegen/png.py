"""Generation parameters embedded in PNG text chunks: one key per field, plus the
``parameters`` line the popular web UIs write and read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIELDS = ("prompt", "negative_prompt", "seed", "steps", "guidance_scale", "scheduler", "model", "width", "height", "strength", "mode",
          "clip_score", "clip_model", "clip_convention")


def parameters_line(meta: dict[str, Any]) -> str:
    parts = [f"Steps: {meta.get('steps')}", f"Sampler: {meta.get('scheduler')}", f"CFG scale: {meta.get('guidance_scale')}",
             f"Seed: {meta.get('seed')}", f"Size: {meta.get('width')}x{meta.get('height')}", f"Model: {meta.get('model')}"]
    return f"{meta.get('prompt', '')}\nNegative prompt: {meta.get('negative_prompt', '')}\n" + ", ".join(parts)


def save_png(image, path: Path, meta: dict[str, Any]) -> Path:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key in FIELDS:
        if meta.get(key) is not None:
            info.add_text(f"noteloom:{key}", json.dumps(meta[key]))
    info.add_text("parameters", parameters_line(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    image.save(tmp, format="PNG", pnginfo=info)
    tmp.replace(path)
    return path


def read_png_meta(path: str | Path) -> dict[str, Any]:
    from PIL import Image

    with Image.open(path) as img:
        text = dict(img.text)  # type: ignore[attr-defined]
    meta = {k.split(":", 1)[1]: json.loads(v) for k, v in text.items() if k.startswith("noteloom:")}
    if "parameters" in text:
        meta["parameters"] = text["parameters"]
    return meta
