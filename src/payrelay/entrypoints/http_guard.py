"""ASGI middleware that keeps hostile traffic from costing good requests their turn.

- `RequestCap` (every listener): at most so many requests in progress; beyond that `503`
  with `Retry-After` at once, so a flood queues at the client, not in payrelay's memory.
  It counts requests, not connections: idle and slow connections are bounded separately
  (http_protocol), and must not make good requests on other connections fail.
- `RejectionBudget` (the public listener): each client (remote address) has a token bucket
  that every `4xx` answer spends. With none left, the client gets `429` before anything is
  read, parsed or verified. Good requests spend nothing, so the gateway's burst of valid
  webhooks never trips it, and one client's flood never limits another client.

Every refusal is recorded once in `Rejections` (counted, and logged at a bounded rate).
"""

from __future__ import annotations

import json
import math

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payrelay.entrypoints.http_errors import error_response
from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections, ServerRejection

__all__ = ["RejectionBudget", "RequestCap", "client_address"]

_REASON_BYTES = 1024  # payrelay's error bodies are one short sentence


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RequestCap:
    """At most `limit` requests in progress on one listener; the rest get `503` at once."""

    def __init__(self, app: ASGIApp, *, limit: int, rejections: Rejections) -> None:
        self._app, self._limit, self._rejections = app, limit, rejections
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self.active >= self._limit:
            self._rejections.record(
                ServerRejection.OVER_CAPACITY, address=client_address(scope), status=503
            )
            busy = error_response(503, "server busy, try again later")
            busy.headers["retry-after"] = "1"
            await busy(scope, receive, send)
            return
        self.active += 1
        try:
            await self._app(scope, receive, send)
        except ClientDisconnect:
            # The body did not arrive in time (http_protocol closed the connection, and
            # recorded it) or the client left: nobody is there to answer, nothing to log.
            pass
        finally:
            self.active -= 1


class RejectionBudget:
    """Per client, `4xx` answers spend a token; a client with none left gets `429`."""

    def __init__(self, app: ASGIApp, *, budget: KeyedBuckets, rejections: Rejections) -> None:
        self._app, self._budget, self._rejections = app, budget, rejections
        self._retry_after = str(max(1, math.ceil(1 / budget.rate)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        client = client_address(scope)
        if not self._budget.has_token(client):
            self._rejections.record(ServerRejection.RATE_LIMITED, address=client, status=429)
            limited = error_response(429, "too many rejected requests, slow down")
            limited.headers["retry-after"] = self._retry_after
            # Its next connection is held unread for a while (http_protocol's tarpit).
            limited.headers["connection"] = "close"
            await limited(scope, receive, send)
            return
        answer = _Answer()

        async def watched(message: Message) -> None:
            answer.observe(message)
            await send(message)

        await self._app(scope, receive, watched)
        if answer.status is not None and 400 <= answer.status < 500:
            self._budget.spend(client)
            self._rejections.record(answer.reason(), address=client, status=answer.status)


class _Answer:
    """The status of a response, and the start of its body when it is a `4xx`."""

    def __init__(self) -> None:
        self.status: int | None = None
        self._body = b""

    def observe(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        elif message["type"] == "http.response.body" and self._is_rejection():
            room = _REASON_BYTES - len(self._body)
            if room > 0:
                self._body += bytes(message.get("body", b""))[:room]

    def _is_rejection(self) -> bool:
        return self.status is not None and 400 <= self.status < 500

    def reason(self) -> str:
        """`error` of payrelay's error body (or FastAPI's `detail`), else the status."""
        try:
            shown = json.loads(self._body)
        except ValueError:
            shown = None
        if isinstance(shown, dict):
            for key in ("error", "detail"):
                if isinstance(shown.get(key), str):
                    return str(shown[key])
        return f"HTTP {self.status}"
