"""uvicorn's h11 protocol with the read deadlines and connection cap uvicorn lacks.

uvicorn closes a connection idle between requests (`timeout_keep_alive`), but a connection
that sends its request line or its body slowly is kept for ever: 300 such connections stayed
open for 60 s in issue 8. This subclass gives each phase of reading a request an absolute
deadline, not an idle timer, so dripping one byte a second does not extend it:

- headers: from the connection's start (or the first byte of a later request on it) until
  the end of the headers, `header_timeout`;
- body: from the end of the headers until the end of the body, `body_timeout`.

Past a deadline the connection is closed, and the refusal is counted and logged. The phase
is read from h11's own state after each chunk of data (`their_state`), so nothing of
uvicorn's request handling is copied here.

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

__all__ = ["ReadLimits", "guarded_h11"]

# uvicorn's protocol logs a warning for each malformed request or unsupported upgrade, which
# a client can repeat as fast as it likes. The rejection log says the same, rate-limited;
# uvicorn's errors (an exception in the app) still get through at ERROR.
_UVICORN_LOG = "uvicorn.error.payrelay"


@dataclass(frozen=True)
class ReadLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    budget: KeyedBuckets | None = None
    """Per-client rejections, keyed by the TCP peer; None where the peer is a proxy."""
    tarpit: float = 1.0


class _Phase(Enum):
    HEADERS = "headers"
    BODY = "body"


class _GuardedH11(H11Protocol):
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
        self.logger = logging.getLogger(_UVICORN_LOG)
        self._phase: _Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(ServerRejection.TOO_MANY_CONNECTIONS)
            return
        budget = self.limits.budget
        if budget is not None and not budget.has_token(self._address()):
            self._tarpit()
            return
        self._watch(_Phase.HEADERS)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch(self._reading_phase())

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Between requests uvicorn's keep-alive timer applies; the next request's headers
        # get their deadline from its first byte (data_received).
        self._watch(None if self.conn.their_state is h11.IDLE else self._reading_phase())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._watch(None)
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._record(ServerRejection.INVALID_HTTP, status=400)
        super().send_400_response(msg)

    def _reading_phase(self) -> _Phase | None:
        state = self.conn.their_state
        if state is h11.IDLE:
            return _Phase.HEADERS
        if state is h11.SEND_BODY:
            return _Phase.BODY
        return None  # the request is in; the app, not the client, is what runs now

    def _watch(self, phase: _Phase | None) -> None:
        """Keep the deadline of `phase`, started when the phase began; None: no deadline."""
        if phase is self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is None or self.transport.is_closing():
            return
        timeout, reason = (
            (self.limits.header_timeout, ServerRejection.HEADER_TIMEOUT)
            if phase is _Phase.HEADERS
            else (self.limits.body_timeout, ServerRejection.BODY_TIMEOUT)
        )
        self._deadline = self.loop.call_later(timeout, self._refuse, reason)

    def _refuse(self, reason: ServerRejection) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self._record(reason)
        # A route waiting for the body learns of the disconnect and gives up (http_guard).
        self.transport.close()

    def _tarpit(self) -> None:
        self.rejections.record(ServerRejection.RATE_LIMITED, address=self._address())
        self.transport.pause_reading()
        self._deadline = self.loop.call_later(self.limits.tarpit, self.transport.close)

    def _address(self) -> str:
        return self.client[0] if self.client else "unknown"

    def _record(self, reason: ServerRejection, *, status: int | None = None) -> None:
        address = self._address()
        self.rejections.record(reason, address=address, status=status)
        if self.limits.budget is not None and reason is not ServerRejection.TOO_MANY_CONNECTIONS:
            self.limits.budget.spend(address)


def guarded_h11(limits: ReadLimits, rejections: Rejections) -> type[H11Protocol]:
    """The protocol class for `uvicorn.Config(http=...)`, bound to these limits."""
    logging.getLogger(_UVICORN_LOG).setLevel(logging.ERROR)
    return type(
        "GuardedH11Protocol", (_GuardedH11,), {"limits": limits, "rejections": rejections}
    )
