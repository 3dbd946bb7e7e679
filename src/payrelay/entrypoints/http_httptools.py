"""uvicorn's httptools protocol under payrelay's read limits (http_protocol.Guard).

h11 exposes the state of the request it is reading; httptools reports it through parser
callbacks, so the phase is tracked here from them: headers from the first byte until
`on_headers_complete`, the body until `on_message_complete`, then nothing until the
response is sent. llhttp buffers a header until it is complete, with no bound of its own,
so header bytes are counted twice: what arrived while the headers were incomplete (one
endless header), and the request line and headers parsed (many headers in one read).
Past `max_header_bytes` either way the answer is 400, as h11's bound gives.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from payrelay.entrypoints.http_protocol import UVICORN_LOG, Guard, Phase, ReadLimits
from payrelay.entrypoints.rejections import Rejections, ServerRejection

__all__ = ["GuardedHttpTools"]

_INVALID = "Invalid HTTP request received."


class _HeadersTooLarge(ValueError):
    """Raised in a parser callback: httptools turns it into the parse error uvicorn 400s."""


class GuardedHttpTools(HttpToolsProtocol):
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
        self._request: Phase | None = None  # None: between requests; DONE is _received
        self._received = False
        self._unparsed = 0  # bytes read while the headers were incomplete
        self._parsed = 0  # request line and headers parsed so far

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard.open(transport, self.client, len(self.connections))

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if not self._received and self._request is not Phase.BODY:
            self._unparsed += len(data)
            if self._unparsed > self.limits.max_header_bytes:
                self.logger.warning(_INVALID)
                self.send_400_response(_INVALID)
                return
        self._guard.watch(self._reading_phase())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request, self._received, self._parsed = Phase.HEADERS, False, 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._request, self._unparsed = Phase.BODY, 0

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._request, self._received = None, True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._received:
            self._received = False  # between requests: uvicorn's keep-alive timer applies
            self._guard.watch(None)
        else:  # a pipelined request is being read
            self._guard.watch(self._reading_phase())

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.close()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._guard.record(ServerRejection.INVALID_HTTP, status=400)
        super().send_400_response(msg)

    def _reading_phase(self) -> Phase | None:
        if self._received:
            return None  # the request is in; the app, not the client, is what runs now
        return self._request or Phase.HEADERS

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > self.limits.max_header_bytes:
            raise _HeadersTooLarge(f"request line and headers over {self._parsed} bytes")
