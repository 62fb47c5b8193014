"""python-telegram-bot's networking on aiohttp.

PTB's default backend (httpx) spends several times more CPU per request than aiohttp's
C-accelerated client, and a bot sends a message or two for every update it handles.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_DEFAULT = BaseRequest.DEFAULT_NONE
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


class AiohttpRequest(BaseRequest):
    """A BaseRequest on one aiohttp session with a bounded pool of kept-alive connections.

    aiohttp has no write timeout of its own; the connect and read timeouts bound a call.
    """

    def __init__(self, connection_pool_size: int = 8, read_timeout: float = 5.0,
                 connect_timeout: float = 5.0) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = _DEFAULT,
        write_timeout: Any = _DEFAULT,
        connect_timeout: Any = _DEFAULT,
        pool_timeout: Any = _DEFAULT,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=_given(connect_timeout, self._connect_timeout),
            sock_read=_given(read_timeout, self._read_timeout),
        )
        data: Any = None
        headers: dict[str, str] | None = None
        if request_data is not None and request_data.contains_files:
            data = _form(request_data)
        elif request_data is not None:
            # Encoded here: handed a dict, aiohttp builds a multipart writer (and its
            # random boundary) for each call only to send it URL-encoded after all.
            data = urlencode(request_data.json_parameters).encode()
            headers = FORM_HEADERS
        try:
            async with self._session.request(method, url, data=data, headers=headers,
                                             timeout=timeout) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            # Never connected: the request cannot have reached Telegram.
            raise NetworkError(f"aiohttp.{type(exc).__name__}") from exc
        except TimeoutError as exc:
            # Sent, and no answer in time: Telegram may have handled it.
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _given(value: Any, default: float) -> float | None:
    """A timeout passed by the library, or ours where it passed its "not given" marker."""
    return default if isinstance(value, type(_DEFAULT)) else value


def _form(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime)
    return form
