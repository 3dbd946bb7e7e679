"""The naive webhook handler, in a process of its own: the whole transaction in the request.

What many shops run: verify the signature, fetch the payment from the gateway, ask the
order service over RabbitMQ RPC to mark the order paid (`rpc.py`, NestJS `ClientRMQ`
defaults), and answer the gateway only once the order service has answered: 200 then,
500 on a failure or a timeout, so the gateway retries later. Nothing is stored on this
side, so nothing tells a retry from a first delivery.

It checks the same HMAC payrelay checks (`payrelay.domain.signature.verify_signature`)
and is served by the same uvicorn as payrelay, on uvloop and httptools where installed.

    python -m benchmarks.naive.webhook_server SPEC.json
SPEC: {"gateway_url", "token", "secret", "rabbitmq_url", "queue", "rpc_timeout",
"port_file"}: the port it listens on is written to `port_file` once it serves.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import uvicorn

from benchmarks.naive.rpc import UPDATE_ORDER, OrderRpc, RpcFailed
from payrelay.domain.errors import NotificationRejected
from payrelay.domain.signature import verify_signature
from payrelay.entrypoints.event_loop import run
from payrelay.entrypoints.http_server import bind_socket

__all__ = ["NaiveWebhooks"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class NaiveWebhooks:
    """The ASGI app: POST a webhook, GET anything for readiness."""

    http: aiohttp.ClientSession
    gateway_url: str
    token: str
    secret: str
    rpc: OrderRpc

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        more = True
        while more:  # the body is read, as a real handler must, though it is not signed
            more = (await receive()).get("more_body", False)
        status = 200
        if scope["method"] == "POST":
            query = parse_qs(scope["query_string"].decode())
            status = await self.handle(query.get("data.id", [""])[0], dict(scope["headers"]))
        body = b"{}" if status == 200 else b'{"error":"not processed"}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def handle(self, data_id: str, headers: dict[bytes, bytes]) -> int:
        """The status the gateway gets for one webhook."""
        try:
            verify_signature(headers.get(b"x-signature", b"").decode(), data_id=data_id,
                             request_id=headers.get(b"x-request-id", b"").decode(),
                             secrets=[self.secret])
        except NotificationRejected as exc:
            return exc.status_code
        payment = await self.fetch_payment(data_id)
        if payment is None:
            return 500
        if payment.get("status") != "approved":
            return 200
        try:
            await self.rpc.call(UPDATE_ORDER, {"order_id": payment["external_reference"],
                                               "payment_id": data_id, "status": "paid"})
        except RpcFailed:
            return 500
        return 200

    async def fetch_payment(self, payment_id: str) -> dict[str, Any] | None:
        """`GET /v1/payments/{id}` from the gateway; None if it did not answer 200."""
        try:
            async with self.http.get(f"{self.gateway_url}/v1/payments/{payment_id}",
                                     headers={"authorization": f"Bearer {self.token}"}
                                     ) as response:
                if response.status != 200:
                    return None
                payment: dict[str, Any] = await response.json(content_type=None)
                return payment
        except (aiohttp.ClientError, TimeoutError):
            return None


async def serve(spec: dict[str, Any]) -> None:
    rpc = await OrderRpc.connect(spec["rabbitmq_url"], spec["queue"],
                                 timeout=float(spec["rpc_timeout"]))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            app = NaiveWebhooks(http, spec["gateway_url"].rstrip("/"), spec["token"],
                                spec["secret"], rpc)
            sock = bind_socket()
            server = uvicorn.Server(uvicorn.Config(
                app, lifespan="off", log_level="warning", access_log=False, log_config=None,
                backlog=2048))
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            Path(spec["port_file"]).write_text(str(sock.getsockname()[1]))
            await task  # until SIGTERM: uvicorn answers the requests in flight, then stops
    finally:
        await rpc.close()


if __name__ == "__main__":
    run(serve(json.loads(Path(sys.argv[1]).read_text())))
