"""The HTTP under the MercadoPago adapter: one request in, (status, body bytes) out.

`AiohttpWire` is what runs: one keep-alive `ClientSession` per process, built once on
first use. Measured in issue 10 (benchmarks/gateway_client.py), a `GET /v1/payments/{id}`
costs the caller about 200 us of CPU over aiohttp against 1,000-1,800 us over httpx, whose
pool, anyio socket wrappers and per-request objects were 85 % of a processor's samples.
`HttpxWire` wraps an `httpx.AsyncClient`, so tests can put the adapter on httpx's
`MockTransport` or `ASGITransport` (no sockets) and cut requests the way a network would.

A wire answers whatever status the gateway sent; what a status means is the adapter's
business. It raises GatewayUnavailable when no answer arrives (refused, reset, timed out),
never a library's exception. Neither wire follows redirects, and neither reads the
environment per request: the proxy settings (`HTTPS_PROXY`, `NO_PROXY`...) are read
once, when the wire is built.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Callable, Mapping
from typing import Protocol

import aiohttp
import certifi
import httpx
from yarl import URL

from payrelay.domain.errors import GatewayUnavailable

__all__ = ["AiohttpWire", "HttpWire", "HttpxWire"]

Params = Mapping[str, str | int]


class HttpWire(Protocol):
    async def request(
        self, method: str, path: str, *, headers: Mapping[str, str],
        content: bytes | None = None, params: Params | None = None,
    ) -> tuple[int, bytes]:
        """The gateway's status and body for `method path`; GatewayUnavailable if none."""
        ...

    async def aclose(self) -> None: ...


def no_answer(method: str, path: str, exc: BaseException) -> GatewayUnavailable:
    """The one wording of a request that got no answer, whichever library sent it."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return GatewayUnavailable(f"{method} {path}: timed out")
    return GatewayUnavailable(f"{method} {path}: {type(exc).__name__}")


class AiohttpWire:
    """`base_url` plus the adapter's already-quoted path; `timeout` bounds each phase
    (a pool slot and connecting, then each read), as httpx's timeout did."""

    def __init__(self, base_url: str, *, timeout: float, max_connections: int = 100) -> None:
        self.base_url = self._base = base_url.rstrip("/")
        self.watchers: list[Callable[[str, str], None]] = []
        """Each is told (method, path as sent) before a request goes out, as httpx's
        request hooks are: how a test sees what the adapter asked for."""
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._max_connections = max_connections
        scheme = URL(self._base).scheme
        bypass = urllib.request.proxy_bypass(URL(self._base).host or "")
        self._proxy = None if bypass else urllib.request.getproxies().get(scheme)
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self, method: str, path: str, *, headers: Mapping[str, str],
        content: bytes | None = None, params: Params | None = None,
    ) -> tuple[int, bytes]:
        session = self._session or self._open()
        for watcher in self.watchers:
            watcher(method, path)
        # encoded=True: the adapter quoted each segment itself (an id's "%2F" stays one).
        url = URL(self._base + path, encoded=True)
        try:
            async with session.request(
                method, url, headers=headers, data=content, params=params,
                allow_redirects=False, proxy=self._proxy,
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise no_answer(method, path, exc) from exc

    def _open(self) -> aiohttp.ClientSession:
        # Built on first use, inside the running loop the connector belongs to.
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, ttl_dns_cache=300,
            ssl=ssl.create_default_context(cafile=certifi.where()),
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, trust_env=False,
            skip_auto_headers=("User-Agent",),
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxWire:
    """An `httpx.AsyncClient` (its base URL, timeouts and transport) as a wire."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def request(
        self, method: str, path: str, *, headers: Mapping[str, str],
        content: bytes | None = None, params: Params | None = None,
    ) -> tuple[int, bytes]:
        try:
            response = await self._client.request(
                method, path, headers=headers, content=content, params=params
            )
        except httpx.TransportError as exc:
            raise no_answer(method, path, exc) from exc
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()
