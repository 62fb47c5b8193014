"""Serving the web app on its socket: a bounded number of connections, and a deadline for
each request's headers.

A client that opens connections and never finishes a request (or trickles its headers a
byte at a time) would otherwise hold each connection, and the memory behind it, for as
long as it likes. aiohttp closes a connection whose request has not fully arrived within
its keep-alive time-out, counted from the moment the connection opens and again after each
response: that is our header deadline. Connections beyond `max_connections` are answered
503 and closed at once, before a byte of theirs is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from gotong.bot.config import WebConfig
from gotong.bot.logs import redact_request_errors

# What an over-limit connection is told before it is closed.
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
         b"Connection: close\r\n\r\n")


class _Busy(asyncio.Protocol):
    """A connection over the limit: answered 503 and closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(_BUSY)
        transport.close()


def limited(server: web.Server, max_connections: int) -> Callable[[], asyncio.Protocol]:
    """aiohttp's protocol factory, refusing connections beyond `max_connections`."""
    def factory() -> asyncio.Protocol:
        if len(server.connections) >= max_connections:
            return _Busy()
        return server()

    return factory


class WebServer:
    """The app on `config.host`:`config.port` (port 0: any free port, see `port`)."""

    def __init__(self, app: web.Application, config: WebConfig) -> None:
        self._config = config
        # The keep-alive time-out is the header deadline (see above); aiohttp's access
        # log holds request lines and is off.
        self._runner = web.AppRunner(app, access_log=None,
                                     keepalive_timeout=config.header_timeout_seconds)
        self._listening: asyncio.Server | None = None

    async def start(self) -> None:
        redact_request_errors()
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self._listening = await asyncio.get_running_loop().create_server(
            limited(server, self._config.max_connections), self._config.host,
            self._config.port, reuse_address=True)

    @property
    def port(self) -> int:
        assert self._listening is not None
        return int(self._listening.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        await self._runner.cleanup()
