"""The one registry of chunkers. Built-ins register exactly like plug-ins, which
arrive through the ``noteloom.chunkers`` entry-point group."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

from .errors import InvalidParameterError, UnknownChunkerError

ENTRY_POINT_GROUP = "noteloom.chunkers"
_REGISTRY: dict[str, type] = {}
_plugins_loaded = False

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a ``Chunker`` subclass available as ``get(name)``."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a chunker named {name!r} is already registered ({_REGISTRY[name].__qualname__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            cls = ep.load()
            register(ep.name)(cls)


def available() -> list[str]:
    """Names of every registered chunker, built-ins first."""
    _load_plugins()
    return list(_REGISTRY)


def chunker_class(name: str) -> type:
    _load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownChunkerError(f"unknown chunker {name!r}; available: {', '.join(_REGISTRY)}") from None


def parameters(cls: type) -> dict[str, Any]:
    """Keyword parameters a chunker class accepts, with their defaults."""
    params = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                params[p.name] = p.default
    return params


def get(name: str, **params: Any):
    """Build the chunker registered as ``name``; unknown parameter names and bad
    values raise ``InvalidParameterError`` naming them."""
    cls = chunker_class(name)
    accepted = parameters(cls)
    for key, value in params.items():
        if key not in accepted:
            raise InvalidParameterError(
                f"unknown parameter {key!r} (value {value!r}) for chunker {name!r}; accepted: {', '.join(accepted)}"
            )
    return cls(**params)
