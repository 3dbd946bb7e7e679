"""The gateway's webhook as a bare ASGI endpoint: the one route on the hot path.

A FastAPI route costs about a fifth of a webhook's CPU in dependency solving, an exit stack
and a Request object (py-spy, issue 10), none of which this route uses. As a plain
Starlette `Route` to an ASGI callable it keeps everything around it: the router (405 for
another method), the app's exception handlers (a refusal or an outage is answered as on
every route, http_errors.py) and the guards outside the app.
"""

from __future__ import annotations

from starlette.datastructures import Headers, QueryParams
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from payrelay.entrypoints.http_errors import error_response
from payrelay.services.ingest import IncomingWebhook, WebhookIngest

__all__ = ["webhook_route"]


def webhook_route(path: str, ingest: WebhookIngest) -> Route:
    return Route(path, WebhookEndpoint(ingest), methods=["POST"])


class WebhookEndpoint:
    """Reads the body under the cap, hands the webhook to ingest, answers its outcome."""

    def __init__(self, ingest: WebhookIngest) -> None:
        self._ingest = ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        limit = self._ingest.max_body_bytes
        declared = headers.get("content-length")
        body = None
        if declared is None or not declared.isdigit() or int(declared) <= limit:
            body = await _read_capped(receive, limit)
        if body is None:
            await error_response(413, "notification body too large")(scope, receive, send)
            return
        webhook = IncomingWebhook(
            query=dict(QueryParams(scope["query_string"])), headers=dict(headers), body=body
        )
        # A refusal (NotificationRejected) is answered with its own status; a notification
        # not recorded (StorageUnavailable) is a 503, so the gateway delivers it again later.
        outcome = await self._ingest.ingest(webhook)
        await JSONResponse({"status": outcome.value})(scope, receive, send)


async def _read_capped(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # as Request.stream: the client left
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
