"""How a setting's text (an environment variable) or TOML value becomes its typed
value (``Kind``), and how the value is shown back (``noteloom config``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Kind:
    expected: str  # for errors: "... must be {expected}, got 'x'"
    parse: Callable[[str], Any]  # text -> value; raises ValueError when bad
    native: type | tuple[type, ...] = str  # the TOML types taken as they are (then checked by parse(str(...)) or as_is)
    show: Callable[[Any], Any] = lambda value: str(value) if isinstance(value, Path) else value
    reads_empty: bool = False  # an empty variable is a value (``None``), not "unset"

    def read(self, raw: Any) -> Any:
        if isinstance(raw, str):
            return self.parse(raw.strip())
        if isinstance(raw, bool) and self.native is not bool:  # TOML true is not the number 1
            raise TypeError()
        if not isinstance(raw, self.native):
            raise TypeError()
        return self.parse(raw) if not isinstance(raw, (list, tuple)) else self.parse(os.pathsep.join(map(str, raw)))


def _flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise ValueError()


def _whole(low: int, high: int | None) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        try:
            value = raw if isinstance(raw, int) else int(raw)
        except ValueError:
            raise ValueError() from None
        if value < low or (high is not None and value > high):
            raise ValueError()
        return value

    return parse


def _number(low: float, high: float | None, *, low_included: bool = False) -> Callable[[Any], float]:
    """A number in (low, high], or [low, high] with ``low_included``."""

    def parse(raw: Any) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError() from None
        above = value >= low if low_included else value > low
        if not above or (high is not None and value > high) or value != value:
            raise ValueError()
        return value

    return parse


def _name(raw: str) -> str:
    if "\x00" in raw:
        raise ValueError("a NUL character")
    return raw


def whole(low: int, high: int) -> Kind:
    return Kind(f"a whole number from {low} to {high}", _whole(low, high), int)


def positive_integer() -> Kind:
    return Kind("a positive integer", _whole(1, None), int)


def number(low: float, high: float) -> Kind:
    return Kind(f"a number over {low:g} and at most {high:g}", _number(low, high), (int, float))


def fraction() -> Kind:
    return Kind("a number from 0 to 1", _number(0, 1, low_included=True), (int, float))


def positive_number() -> Kind:
    return Kind("a positive number", _number(0, None), (int, float))


def choice(*values: str) -> Kind:
    def parse(raw: str) -> str:
        if raw.upper() not in values:
            raise ValueError()
        return raw.upper()

    return Kind(f"one of {', '.join(values)}", parse)


NAME = Kind("text", _name)
OPTIONAL_NAME = Kind("text (empty: none)", lambda raw: _name(raw) or None, reads_empty=True)
SECRET = Kind("text", _name, show=lambda value: "(set, hidden)" if value else "")
PATH = Kind("a folder path", lambda raw: Path(_name(raw)) if raw else _empty())
PATHS = Kind(f"paths separated by {os.pathsep!r}", lambda raw: tuple(p for p in _name(raw).split(os.pathsep) if p), (list, tuple),
             show=list)
FLAG = Kind(f"a yes/no flag ({', '.join(TRUE)} or {', '.join(FALSE)})", _flag, bool)


def _empty() -> Any:
    raise ValueError()
