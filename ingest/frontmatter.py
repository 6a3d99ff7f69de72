"""YAML front matter of markdown notes, parsed bounded: size, depth, no YAML aliases,
tags, ``aliases`` (Obsidian's other names of a note) and title within ``LoadLimits``;
what is refused or dropped is said in notices."""

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
    aliases: list[str] = field(default_factory=list)


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
    aliases = _meta_list(meta.get("aliases"), limits.max_tags, limits.max_title_chars, notices,
                         what=("aliases", "alias(es)", "an alias", "max_title_chars"))
    return _Meta(_meta_title(meta.get("title"), notices), _meta_tags(meta.get("tags"), limits, notices), aliases), text[end:]


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
    return _meta_list(value, limits.max_tags, limits.max_tag_chars, notices, what=("tags", "tag(s)", "a tag", "max_tag_chars"))


def _meta_list(value, max_items: int, max_chars: int, notices: list[str], *, what: tuple[str, str, str, str]) -> list[str]:
    """A list of short texts (tags, aliases), bounded; ``what`` names it in notices:
    (the key, its count noun, one of them, the length limit's name)."""
    key, counted, one, chars_limit = what
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list):
        items = value
    elif _is_scalar(value):
        items = [value]
    else:
        notices.append(f"front matter {key} ignored: expected a list or comma-separated text, got a YAML {type(value).__name__}")
        return []
    tags, nested, too_long = [], 0, []
    for item in items:
        if not _is_scalar(item):
            nested += 1
        elif len(tag := str(item).strip()) > max_chars:
            too_long.append(tag)
        elif tag:
            tags.append(tag)
    if nested:
        notices.append(f"{nested} front matter {counted} dropped: {one} is text, not a list or mapping")
    if too_long:
        notices.append(f"{len(too_long)} {counted} longer than {chars_limit}={max_chars} dropped "
                       f"(the first has {len(too_long[0]):,} characters: {too_long[0][:40]!r}…)")
    if len(tags) > max_items:
        notices.append(f"kept {max_items} of {len(tags):,} {key} (max_tags={max_items}); dropped {tags[max_items]!r} and the rest")
        tags = tags[:max_items]
    return tags
