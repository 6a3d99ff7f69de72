"""YAML front matter of markdown notes, parsed bounded: size, depth, no aliases,
tags and title within ``LoadLimits``; what is refused or dropped is said in notices."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loaders import LoadLimits


_FENCE_OPEN = re.compile(r"---[ \t]*\n")
_FENCE_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)  # tried at line starts only: linear


@dataclass
class _Meta:
    title: str | None = None
    tags: list[str] = field(default_factory=list)


class _Refused(Exception):
    """Front matter left unparsed; the message says why."""


def split_front_matter(text: str, limits: LoadLimits, notices: list[str]) -> tuple[_Meta, str]:
    """Title, tags and the body after the front matter. A block that is too large,
    not YAML, not a mapping, or uses aliases or deep nesting is not parsed: it
    stays in the body (nothing is lost) and a notice says why."""
    opened = _FENCE_OPEN.match(text)
    closed = _FENCE_CLOSE.search(text, opened.end()) if opened else None
    if not closed:
        return _Meta(), text
    block = text[opened.end() : closed.start()]
    size = len(block.encode("utf-8"))
    try:
        if size > limits.max_front_matter_bytes:
            raise _Refused(f"{size:,} bytes is over max_front_matter_bytes={limits.max_front_matter_bytes:,}")
        meta = _parse_yaml(block, limits.max_front_matter_depth)
    except _Refused as exc:
        notices.append(f"front matter not read ({exc}); it is kept as part of the text")
        return _Meta(), text
    end = closed.end() + (text.startswith("\n", closed.end()))
    return _Meta(_meta_title(meta.get("title"), notices), _meta_tags(meta.get("tags"), limits, notices)), text[end:]


@functools.cache
def _bounded_loader():
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases (a 422-byte alias tree once expanded to
        312 million characters of tags) and nesting deeper than ``max_depth``."""

        def __init__(self, stream: str, max_depth: int) -> None:
            super().__init__(stream)
            self.max_depth, self.depth = max_depth, 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise _Refused(f"it uses the YAML alias *{self.peek_event().anchor}, and aliases are not expanded")
            self.depth += 1
            try:
                if self.depth > self.max_depth:
                    raise _Refused(f"it nests deeper than max_front_matter_depth={self.max_depth}")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


def _parse_yaml(block: str, max_depth: int) -> dict:
    try:
        loader_class = _bounded_loader()
    except ImportError:
        raise _Refused("reading it needs PyYAML (pip install 'noteloom[rag]')") from None
    loader = None
    try:
        loader = loader_class(block, max_depth)  # the reader already refuses control characters here
        data = loader.get_single_data()
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - any YAML failure only means "not front matter"
        reason = " ".join(str(exc).split())[:200]
        raise _Refused(f"not valid YAML: {type(exc).__name__}: {reason}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _Refused(f"it is a YAML {type(data).__name__}, not a mapping of keys")
    return data


def _is_scalar(value) -> bool:
    import datetime

    return isinstance(value, (str, int, float, datetime.date))


def _meta_title(value, notices: list[str]) -> str | None:
    if value is None:
        return None
    if not _is_scalar(value):
        notices.append(f"front matter title ignored: expected text, got a YAML {type(value).__name__}")
        return None
    return str(value).strip() or None


def _meta_tags(value, limits: LoadLimits, notices: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    elif _is_scalar(value):
        items = [value]
    else:
        notices.append(f"front matter tags ignored: expected a list or comma-separated text, got a YAML {type(value).__name__}")
        return []
    tags, nested, too_long = [], 0, []
    for item in items:
        if not _is_scalar(item):
            nested += 1
        elif len(tag := str(item).strip()) > limits.max_tag_chars:
            too_long.append(tag)
        elif tag:
            tags.append(tag)
    if nested:
        notices.append(f"{nested} front matter tag(s) dropped: a tag is text, not a list or mapping")
    if too_long:
        notices.append(f"{len(too_long)} tag(s) longer than max_tag_chars={limits.max_tag_chars} dropped "
                       f"(the first has {len(too_long[0]):,} characters: {too_long[0][:40]!r}…)")
    if len(tags) > limits.max_tags:
        notices.append(f"kept {limits.max_tags} of {len(tags):,} tags (max_tags={limits.max_tags}); dropped {tags[limits.max_tags]!r} and the rest")
        tags = tags[: limits.max_tags]
    return tags
