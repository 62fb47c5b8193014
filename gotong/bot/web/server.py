"""Serving the web app on its socket: a bounded number of connections, deadlines for a
request's headers and for the client to take our answer, and our own words for the
errors aiohttp answers before the app sees a request.

A client that opens connections and never finishes a request (or trickles its headers a
byte at a time, or never reads what it asked for) would otherwise hold each connection,
and the memory behind it, for as long as it likes. aiohttp closes a connection whose
request has not fully arrived within its keep-alive time-out, counted from the moment the
connection opens and again after each response: that is our header deadline. An answer
the client does not take within the write deadline closes the connection too.
Connections beyond `max_connections` are answered 503 and closed at once, before a byte
of theirs is read; they are counted as they are accepted, not once aiohttp has taken
them (a burst of accepts comes before any of them is taken).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from gotong.bot.config import WebConfig
from gotong.bot.logs import redact_request_errors
from gotong.bot.web.guard import SECURITY_HEADERS

# After refusing a request, how long its unread body may still be read and dropped.
LINGER_SECONDS = 1.0
_HEADERS = {**SECURITY_HEADERS, "Server": "Gotong", "Cache-Control": "no-store",
            "Content-Type": "text/plain; charset=utf-8", "Connection": "close"}
# Said for requests that never reach the app: no echo of what was sent.
_UNREADABLE = "Permintaan tidak dapat dibaca. / The request could not be read.\n"
_BUSY_TEXT = "Server sedang penuh, coba lagi. / The server is busy, try again.\n"


def _busy_bytes() -> bytes:
    body = _BUSY_TEXT.encode()
    headers = {**_HEADERS, "Retry-After": "1", "Content-Length": str(len(body))}
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"HTTP/1.1 503 Service Unavailable\r\n{head}\r\n".encode() + body


_BUSY = _busy_bytes()


class _Busy(asyncio.Protocol):
    """A connection over the limit: answered 503 and closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(_BUSY)
        transport.close()


class GuardedHandler(web.RequestHandler):
    """aiohttp's protocol for one connection, with a write deadline, our answer to what
    it cannot parse, and a count of the connections open."""

    def __init__(self, server: web.Server, counter: ConnectionCount, write_seconds: float,
                 **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self._counter = counter
        self._write_seconds = write_seconds
        self._stalled: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._counter.lost()
        if self._stalled is not None:
            self._stalled.cancel()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        # The client stopped taking our answer: it has this long to go on taking it.
        self._stalled = asyncio.get_running_loop().call_later(self._write_seconds,
                                                              self._abort)

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        super().resume_writing()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # Logged by the kind of error only (logs.RequestErrorRedaction); answered without
        # repeating what was sent, with the headers of every answer of ours.
        self.logger.debug("Error handling request", exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was under way; the connection is closed")
        response = web.Response(status=status, text=_UNREADABLE, headers={
            name: value for name, value in _HEADERS.items()
            if name not in ("Content-Type", "Connection")})
        response.force_close()
        return response


class ConnectionCount:
    """Connections accepted and not yet closed."""

    def __init__(self) -> None:
        self.open = 0

    def lost(self) -> None:
        self.open -= 1


class WebServer:
    """The app on `config.host`:`config.port` (port 0: any free port, see `port`)."""

    def __init__(self, app: web.Application, config: WebConfig) -> None:
        self._config = config
        self._runner = web.AppRunner(app, access_log=None)
        self._listening: asyncio.Server | None = None
        self.connections = ConnectionCount()

    async def start(self) -> None:
        redact_request_errors()
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        config, count = self._config, self.connections

        def connection() -> asyncio.Protocol:
            if count.open >= config.max_connections:
                return _Busy()
            count.open += 1
            # The keep-alive time-out is the header deadline (see above); aiohttp's access
            # log holds request lines and is off.
            return GuardedHandler(server, count, config.write_timeout_seconds, loop=loop,
                                  access_log=None,
                                  keepalive_timeout=config.header_timeout_seconds,
                                  lingering_time=LINGER_SECONDS)

        self._listening = await loop.create_server(connection, config.host, config.port,
                                                   reuse_address=True)

    @property
    def port(self) -> int:
        assert self._listening is not None
        return int(self._listening.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        await self._runner.cleanup()
