"""uvicorn's HTTP protocols with the read deadlines and connection cap uvicorn lacks.

uvicorn closes a connection idle between requests (`timeout_keep_alive`), but a connection
that sends its request line or its body slowly is kept for ever: 300 such connections stayed
open for 60 s in issue 8. This subclass gives each phase of reading a request an absolute
deadline, not an idle timer, so dripping one byte a second does not extend it:

- headers: from the connection's start (or the first byte of a later request on it) until
  the end of the headers, `header_timeout`;
- body: from the end of the headers until the end of the body, `body_timeout`.

Past a deadline the connection is closed, and the refusal is counted and logged. The phase
is read from the parser after each chunk of data (h11's `their_state`; httptools'
callbacks), so nothing of uvicorn's request handling is copied here.

httptools (llhttp, in C) is used where it is installed: it parses a request for a fraction
of h11's CPU (issue 10). It has no bound of its own on header size, which h11 has
(`h11_max_incomplete_event_size`), so `http_httptools.GuardedHttpTools` counts header
bytes itself and answers 400 past `max_header_bytes`, as h11 does. Without httptools, h11.

On the public listener the protocol also shares the per-client budget of rejections
(http_guard): a timeout or malformed HTTP spends it like a 4xx does, and a new connection
from a client with nothing left is held unread for `tarpit` seconds, then closed. Parsing
and answering costs the server more than holding a timer, and a client flooding in a loop
waits instead of looping: this is what keeps garbage floods from slowing good requests.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections, ServerRejection

__all__ = ["UVICORN_LOG", "Guard", "GuardedH11", "Phase", "ReadLimits"]

# uvicorn's protocol logs a warning for each malformed request or unsupported upgrade, which
# a client can repeat as fast as it likes. The rejection log says the same, rate-limited;
# uvicorn's errors (an exception in the app) still get through at ERROR.
UVICORN_LOG = "uvicorn.error.payrelay"


@dataclass(frozen=True)
class ReadLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    budget: KeyedBuckets | None = None
    """Per-client rejections, keyed by the TCP peer; None where the peer is a proxy."""
    tarpit: float = 1.0
    max_header_bytes: int = 16 * 1024
    """The request line and headers (httptools only; h11 is given the same bound)."""


class Phase(Enum):
    HEADERS = "headers"
    BODY = "body"


class Guard:
    """One connection's deadlines and refusals, whichever parser reads it."""

    def __init__(self, limits: ReadLimits, rejections: Rejections,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.limits, self._rejections, self._loop = limits, rejections, loop
        self._transport: asyncio.Transport | None = None
        self._address = "unknown"
        self._phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def open(self, transport: asyncio.Transport, client: tuple[str, int] | None,
             connections: int) -> None:
        """At connection_made: refuse past the cap, hold a client out of budget, or watch."""
        self._transport, self._address = transport, client[0] if client else "unknown"
        if connections > self.limits.max_connections:
            self.refuse(ServerRejection.TOO_MANY_CONNECTIONS)
            return
        budget = self.limits.budget
        if budget is not None and not budget.has_token(self._address):
            self._rejections.record(ServerRejection.RATE_LIMITED, address=self._address)
            transport.pause_reading()
            self._deadline = self._loop.call_later(self.limits.tarpit, transport.close)
            return
        self.watch(Phase.HEADERS)

    def watch(self, phase: Phase | None) -> None:
        """Keep the deadline of `phase`, started when the phase began; None: no deadline."""
        if phase is self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is None or self._transport is None or self._transport.is_closing():
            return
        timeout, reason = (
            (self.limits.header_timeout, ServerRejection.HEADER_TIMEOUT)
            if phase is Phase.HEADERS
            else (self.limits.body_timeout, ServerRejection.BODY_TIMEOUT)
        )
        self._deadline = self._loop.call_later(timeout, self.refuse, reason)

    def close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.watch(None)

    def refuse(self, reason: ServerRejection) -> None:
        self._deadline = None
        if self._transport is None or self._transport.is_closing():
            return
        self.record(reason)
        # A route waiting for the body learns of the disconnect and gives up (http_guard).
        self._transport.close()

    def record(self, reason: ServerRejection, *, status: int | None = None) -> None:
        self._rejections.record(reason, address=self._address, status=status)
        if self.limits.budget is not None and reason is not ServerRejection.TOO_MANY_CONNECTIONS:
            self.limits.budget.spend(self._address)


class GuardedH11(H11Protocol):
    limits: ClassVar[ReadLimits]
    rejections: ClassVar[Rejections]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.logger = logging.getLogger(UVICORN_LOG)
        self._guard = Guard(self.limits, self.rejections, self.loop)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard.open(transport, self.client, len(self.connections))

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._guard.watch(self._reading_phase())

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests uvicorn's keep-alive timer applies; the next request's headers
        # get their deadline from its first byte (data_received).
        self._guard.watch(None if self.conn.their_state is h11.IDLE else self._reading_phase())

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.close()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._guard.record(ServerRejection.INVALID_HTTP, status=400)
        super().send_400_response(msg)

    def _reading_phase(self) -> Phase | None:
        state = self.conn.their_state
        if state is h11.IDLE:
            return Phase.HEADERS
        if state is h11.SEND_BODY:
            return Phase.BODY
        return None  # the request is in; the app, not the client, is what runs now
