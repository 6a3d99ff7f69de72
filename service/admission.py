"""Admission control: how many expensive requests run at once, how many wait,
and an immediate refusal beyond that, so that overload is served at the
machine's capacity instead of by nobody.

Expensive routes fall into classes (``ROUTE_CLASSES``): ``ask``, ``search``
(``/search`` and ``/prompts``, which searches), ``documents`` (uploads and
deletions, which write), ``generate`` and ``score``. Every other route (``/health``,
GET reads, ``/schema``, job polling) is never queued, so a saturated class cannot
starve it.

Each class has a ``Limit``: at most ``running`` requests in flight and ``queued``
waiting for a slot, first come first served, each for at most ``wait`` seconds.
A request is refused at once when the queue is full, or when its predicted wait
((its place in the queue + 1) × the class's recent time per request ÷ ``running``)
exceeds half of ``wait``; one still waiting after ``wait`` seconds is refused then. A
refusal is a 503 in the service's error shape, ``{"status_code": 503, "error":
"OverloadedError", "detail": ...}``, with ``Retry-After`` (whole seconds until the
queue ahead of it should have drained, at least 1). A request that a guard would
refuse (a missing API key) takes no slot.

Defaults (``service.capacity.default_limits``) are sized to the cores; ``NOTELOOM_ADMISSION``
overrides single classes, e.g. ``ask=1/4/2,search=4/16/0.2`` (running/queued/
wait seconds). A slot is held from admission until the response is sent; a
generation with ``wait: false`` holds it only until its job is queued.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import time
from collections import deque
from typing import Any, Callable, Mapping, Sequence

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from retrieval.errors import WriteLockTimeoutError

from .capacity import Limit, default_limits

ROUTE_CLASSES: dict[tuple[str, str], str] = {
    ("POST", "/ask"): "ask",
    ("POST", "/search"): "search",
    ("POST", "/prompts"): "search",
    ("POST", "/chunks/preview"): "search",
    ("POST", "/documents"): "documents",
    ("DELETE", "/documents/{}"): "documents",
    ("POST", "/generate"): "generate",
    ("POST", "/score"): "score",
}
"""(method, path with parameters written ``{}``) → route class."""

CHEAP_WRITES = {("DELETE", "/jobs/{}")}
"""Non-GET routes that do no expensive work and are never queued (cancelling a job)."""

MAX_RETRY_AFTER = 60
HEADROOM = 0.5
"""A request is queued only when its predicted wait is within this share of the
class's ``wait``: the prediction is an average and the bound is for every request,
so refusals are decided at once rather than after waiting out the bound."""
_PARAMETER = re.compile(r"\{[^}]*\}")


class OverloadedError(RuntimeError):
    """A route class has no free slot and no room in its queue."""


class Gate:
    """The slots and the queue of one route class. Used from the event loop only."""

    def __init__(self, name: str, limit: Limit) -> None:
        self.name = name
        self.limit = limit
        self.running = 0
        self.waiting: deque[asyncio.Future[bool]] = deque()
        self.seconds = 0.0  # recent time per request (moving average), 0 until one finished

    def predicted_wait(self, place: int) -> float:
        """For the ``place``-th in line: the requests ahead of it and those running now (one round more)."""
        return (place + 1) * self.seconds / self.limit.running

    def retry_after(self) -> int:
        return min(MAX_RETRY_AFTER, max(1, math.ceil(self.predicted_wait(len(self.waiting) + 1))))

    async def enter(self) -> bool:
        """True with a slot taken; False when refused (the caller answers 503)."""
        if self.running < self.limit.running and not self.waiting:
            self.running += 1
            return True
        place = len(self.waiting) + 1
        if place > self.limit.queued or self.predicted_wait(place) > HEADROOM * self.limit.wait:
            return False
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[bool] = loop.create_future()
        self.waiting.append(granted)
        ok = False
        timer = loop.call_later(self.limit.wait, lambda: granted.done() or granted.set_result(False))
        try:
            ok = await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled() and granted.result():
                self.leave(None)  # handed a slot while being cancelled: pass it on
            ok = False
            raise
        finally:
            timer.cancel()
            if not ok and granted in self.waiting:
                self.waiting.remove(granted)
        return ok

    def leave(self, seconds: float | None) -> None:
        if seconds is not None:
            self.seconds = seconds if not self.seconds else 0.8 * self.seconds + 0.2 * seconds
        while self.waiting:
            head = self.waiting.popleft()
            if not head.done():
                head.set_result(True)  # the slot passes to the next in line
                return
        self.running -= 1


class Admission(ASGIMiddleware):
    """The middleware; ``guards`` are the app's guards, asked before a slot is taken."""

    scopes = ("http",)  # type: ignore[assignment]

    def __init__(self, limits: Mapping[str, Limit] | None = None, guards: Sequence[Callable[..., Any]] = ()) -> None:
        limits = dict(limits or default_limits())
        missing = set(ROUTE_CLASSES.values()) - set(limits)
        if missing:
            raise ValueError(f"admission limits missing for {', '.join(sorted(missing))}")
        self.gates = {name: Gate(name, limit) for name, limit in limits.items()}
        self.guards = tuple(guards)
        self._keys: dict[str, str] = {}  # path template -> route_key

    def gate_for(self, scope: Scope) -> Gate | None:
        """The gate of the request's route class, from its method and path template."""
        template = scope["path_template"]
        key = self._keys.get(template)
        if key is None:
            key = self._keys[template] = route_key(template)
        name = ROUTE_CLASSES.get((scope["method"], key))
        return None if name is None else self.gates[name]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        gate = self.gate_for(scope)
        if gate is None or not await self._authorised(scope, receive, send):
            await next_app(scope, receive, send)
            return
        if not await gate.enter():
            await refuse(send, gate)
            return
        started = time.perf_counter()
        try:
            await next_app(scope, receive, send)
        finally:
            gate.leave(time.perf_counter() - started)

    async def _authorised(self, scope: Scope, receive: Receive, send: Send) -> bool:
        connection = ASGIConnection(scope, receive, send)
        try:
            for guard in self.guards:
                result = guard(connection, scope["route_handler"])
                if inspect.isawaitable(result):
                    await result
        except Exception:  # noqa: BLE001  (the guard refuses it again, with its own error, when the route runs)
            return False
        return True


def route_key(path: str) -> str:
    return _PARAMETER.sub("{}", path)


async def refuse(send: Send, gate: Gate) -> None:
    limit = gate.limit
    detail = (f"the server is at capacity for {gate.name} requests ({limit.running} running, {len(gate.waiting)} "
              f"waiting, at most {limit.wait:g} s in line); try again after the Retry-After seconds")
    body = msgspec.json.encode({"status_code": 503, "error": OverloadedError.__name__, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"retry-after", str(gate.retry_after()).encode())]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def write_lock_busy(retry_after: float) -> Callable[[Request, WriteLockTimeoutError], Response]:
    """The exception handler for a write that could not get the writer lock in time."""
    seconds = str(min(MAX_RETRY_AFTER, max(1, math.ceil(retry_after))))

    def handler(_request: Request, exc: WriteLockTimeoutError) -> Response:
        body = {"status_code": 503, "error": type(exc).__name__, "detail": str(exc)}
        return Response(body, status_code=503, headers={"Retry-After": seconds})

    return handler
