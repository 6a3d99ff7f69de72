"""The capacity of each route class (``service.admission``): how many requests run,
how many wait, for how long. Apart from the middleware so that the settings can
check ``NOTELOOM_ADMISSION`` without importing the web framework."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    running: int  # requests of the class in flight at once
    queued: int  # requests waiting for a slot; more are refused at once
    wait: float  # the longest wait for a slot, seconds

    def __post_init__(self) -> None:
        if not 1 <= self.running <= 1024 or not 0 <= self.queued <= 10_000 or not 0 < self.wait <= 3600:
            raise ValueError(f"admission limit needs running 1..1024, queued 0..10000 and wait in (0, 3600] seconds, got {self}")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_limits(count: int | None = None) -> dict[str, Limit]:
    """Per class: in flight as many as the cores for searches and writes; half as
    many for ``/ask``, whose sentence embeddings already use every core (more at
    once only lengthens each); one generation and one scoring, which use every
    core. The queue keeps the slots busy; the wait stays within what a client of
    the route can expect (``/search`` 0.2 s, ``/ask`` 2 s: a question takes a
    good part of a second, so a shorter bound would leave no room to queue one)."""
    c = count or cores()
    return {
        "search": Limit(running=c, queued=8 * c, wait=0.2),
        "ask": Limit(running=max(1, c // 2), queued=2 * c, wait=2.0),
        "documents": Limit(running=c, queued=2 * c, wait=5.0),
        "generate": Limit(running=1, queued=c, wait=2.0),
        "score": Limit(running=1, queued=c, wait=2.0),
    }


def parse_limits(text: str | None, count: int | None = None) -> dict[str, Limit]:
    """The defaults, with the classes named in ``class=running/queued/wait,...`` replaced."""
    limits = default_limits(count)
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, value = item.partition("=")
        if name.strip() not in limits:
            raise ValueError(f"unknown admission class {name.strip()!r} in {text!r}; the classes are {', '.join(limits)}")
        try:
            running, queued, wait = value.split("/")
            limits[name.strip()] = Limit(int(running), int(queued), float(wait))
        except ValueError as exc:
            raise ValueError(f"admission setting {item!r} must be class=running/queued/wait: {exc}") from None
    return limits
