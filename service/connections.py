"""Read timeouts for uvicorn's HTTP/1.1 protocol: the one adapter that touches
uvicorn's protocol internals (``H11Protocol``'s ``conn``, ``transport``, ``loop``).

uvicorn times out only a connection idle *after* a response (``timeout_keep_alive``);
a fresh connection that never sends a byte, or sends its headers a byte at a
time, is kept for ever, and so is a request body that stops arriving. Here:

- the request line and headers must arrive within ``header_seconds`` of the
  connection opening or of the previous response (a total, not per byte);
- while a request body arrives, no pause may exceed ``body_seconds``;

else the connection is closed (no response: the request never got to the app,
or its body never did, and the app sees a disconnect). Time during which the
server itself stopped reading (flow control, while the app is not ready for a
body) does not count against the client.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class TimedH11Protocol(H11Protocol):
    header_seconds: float = 10.0
    body_seconds: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.read_timer: asyncio.TimerHandle | None = None
        self.waiting_for: object | None = None  # the h11 state the timer watches (h11.IDLE or h11.SEND_BODY)
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Arm, keep or stop the read timer for what the client owes now."""
        if self.transport.is_closing():
            self._stop()
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # a request line and headers are due: one deadline for all of them
            if self.waiting_for is not h11.IDLE:
                self._start(h11.IDLE, self.header_seconds)
        elif state is h11.SEND_BODY:  # a body is arriving: each pause is bounded
            self._start(h11.SEND_BODY, self.body_seconds)
        else:  # the request is in (the app is working) or the connection is ending
            self._stop()

    def _start(self, state: object, seconds: float) -> None:
        self._stop()
        self.waiting_for = state
        self.read_timer = self.loop.call_later(seconds, self._expired, seconds)

    def _stop(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
        self.read_timer = None
        self.waiting_for = None

    def _expired(self, seconds: float) -> None:
        self.read_timer = None
        if self.flow.read_paused:  # the server stopped reading (the app is not ready for the body): not the client's pause
            self.read_timer = self.loop.call_later(seconds, self._expired, seconds)
        elif not self.transport.is_closing():
            self.transport.close()


def timed_protocol(header_seconds: float, body_seconds: float) -> type[TimedH11Protocol]:
    """The protocol class to pass to uvicorn as ``http=``, with these timeouts."""
    for name, value in (("header_seconds", header_seconds), ("body_seconds", body_seconds)):
        if not 0 < value <= 3600:
            raise ValueError(f"{name} must be more than 0 and at most 3600, got {value!r}")
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_seconds": header_seconds, "body_seconds": body_seconds})
