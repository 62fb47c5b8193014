"""What every request meets before a handler, through the server `gotong run` uses (raw
sockets, since well-behaved clients cannot send most of these): bytes that are not text,
hosts that are not ours, strangers' bodies, slow and surplus connections, and what every
response carries."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from aiohttp import web

from gotong.bot.services import Services
from gotong.bot.web.app import create_web_app
from gotong.bot.web.server import WebServer

SECRET_TOKEN = "SessionTokenThatMustNeverBeLogged0123456789abc"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


async def ask(port: int, raw: bytes, *, wait: float = 5.0) -> Answer:
    """Send raw bytes; the answer (the connection is closed after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(wait):
            head = await reader.readuntil(b"\r\n\r\n")
            answer = parse(head)
            length = int(answer.headers.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
        return replace(answer, body=body)
    finally:
        writer.close()


def request(path: str, *headers: bytes, method: bytes = b"GET", host: bytes = b"127.0.0.1",
            body: bytes = b"") -> bytes:
    lines = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: " + host,
             b"Connection: close", *headers]
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Running:
    server: WebServer
    port: int


async def start(services: Services, **web_changes: object) -> Running:
    config = replace(services.config.web, port=0, **web_changes)
    services.config = replace(services.config, web=config)

    async def fails(request: web.Request) -> web.Response:
        raise RuntimeError(f"a bug that echoes what it was given: {request.query}")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"length": len(await request.read())})

    def routes(app: web.Application) -> None:
        app.router.add_get("/fails", fails)
        app.router.add_post("/echo", echo)

    server = WebServer(create_web_app([routes], services=services), config)
    await server.start()
    return Running(server, server.port)


@pytest.fixture
async def site(services: Services) -> AsyncIterator[Running]:
    running = await start(services, header_timeout_seconds=1, write_timeout_seconds=1,
                          max_connections=6,
                          public_url="https://aid.example.org",
                          allowed_hosts=("10.0.0.7",))
    try:
        yield running
    finally:
        await running.server.stop()


async def test_a_cookie_of_bytes_that_are_not_text_is_no_session(site: Running) -> None:
    for cookie in (b"gotong_session=\xff\xfe", b"gotong_session=" + "é".encode() * 30,
                   b"gotong_session=" + b"a" * 5000):
        answer = await ask(site.port, request("/dashboard", b"Cookie: " + cookie))
        assert answer.status == 302
        assert answer.headers["location"].startswith("/dashboard/signed-out")
    # A sign-in link of such bytes is refused as any unknown link.
    answer = await ask(site.port, request("/dashboard/signin/%FF%FE" + "x" * 40))
    assert answer.status == 403


async def test_requests_for_hosts_that_are_not_ours_are_refused(site: Running) -> None:
    for host in (b"rebind.evil.example", b"rebind.evil.example:8080", b"aid.example.org.evil",
                 b"evil.example@127.0.0.1", b"127.0.0.1:80:80", b"127.0.0.1#.evil", b"",
                 b"[bad"):
        answer = await ask(site.port, request("/dashboard", host=host))
        assert answer.status in (400, 421), host
        assert answer.status == 421 or not host or host.startswith(b"[")
    # No Host at all (HTTP/1.0): not ours either, whatever socket it came to.
    answer = await ask(site.port, b"GET /dashboard HTTP/1.0\r\n\r\n")
    assert answer.status == 421
    for host in (b"127.0.0.1", b"localhost:8080", b"aid.example.org", b"AID.example.org:443",
                 b"10.0.0.7", b"[::1]:8080"):
        answer = await ask(site.port, request("/healthz", host=host))
        assert answer.status == 200, host
    # A page served by a rebinding site would post with its own origin: refused too.
    for origin in (b"http://rebind.evil.example", b"http://[bad", b"null"):
        answer = await ask(site.port, request(
            "/dashboard/requests/1/verify", b"Origin: " + origin,
            b"Content-Type: application/x-www-form-urlencoded", method=b"POST",
            body=b"csrf=x"))
        assert answer.status == 403, origin


async def test_a_strangers_post_is_refused_before_its_body_is_read(site: Running) -> None:
    """Headers announcing 10 MB, and no body: the answer comes without waiting for it."""
    huge = b"Content-Length: 10000000"
    for content_type, status in ((b"multipart/form-data; boundary=x", 415),
                                 (b"application/x-www-form-urlencoded", 413)):
        started = time.monotonic()
        answer = await ask(site.port, request("/dashboard/requests/1/verify", huge,
                                              b"Content-Type: " + content_type,
                                              method=b"POST"), wait=3)
        assert answer.status == status
        assert time.monotonic() - started < 3
    # A small form without a session: sent to sign in, its body never parsed.
    answer = await ask(site.port, request(
        "/dashboard/requests/1/verify", b"Content-Type: application/x-www-form-urlencoded",
        b"Content-Length: 50000", method=b"POST"), wait=3)
    assert answer.status == 302
    # JSON only where JSON is taken, within its size.
    answer = await ask(site.port, request("/echo", b"Content-Length: 2000000",
                                          b"Content-Type: application/json", method=b"POST"))
    assert answer.status == 413


async def test_slow_headers_are_cut_off(site: Running) -> None:
    """A header line every 0.25 s never finishes the request: the connection is closed
    about a second (web.header_timeout_seconds) after it opened."""
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    started = time.monotonic()
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed_after = None
        for _ in range(20):
            try:
                data = await asyncio.wait_for(reader.read(100), 0.25)
            except TimeoutError:
                try:
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                except ConnectionError:
                    closed_after = time.monotonic() - started
                    break
                continue
            assert data == b""  # closed, without an answer
            closed_after = time.monotonic() - started
            break
        assert closed_after is not None and closed_after < 3
    finally:
        writer.close()


async def test_connections_beyond_the_limit_are_turned_away(site: Running) -> None:
    # A burst: accepted together, before the server has taken any of them.
    opened = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", site.port)
                                    for _ in range(60)))
    try:
        await asyncio.sleep(0.3)
        held = 0
        for reader, _ in opened:
            try:
                head = await asyncio.wait_for(reader.read(4096), 0.05)
            except TimeoutError:
                held += 1  # open, and waiting for a request
                continue
            assert head.startswith(b"HTTP/1.1 503 ")
            answer = parse(head)
            assert answer.headers["server"] == "Gotong"
            assert answer.headers["cache-control"] == "no-store"
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert held == 6
    finally:
        for _, writer in opened:
            writer.close()
    await asyncio.sleep(0.2)
    assert (await ask(site.port, request("/healthz"))).status == 200


async def test_a_client_that_does_not_take_its_answers_is_cut_off(site: Running) -> None:
    """Many requests at once, and nothing read back: the answers stop fitting, and after
    web.write_timeout_seconds (1 s here) the connection is closed."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", site.port))
    _, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"GET /public HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 300)
        await writer.drain()
        before = site.server.connections.open
        assert before >= 1
        for _ in range(40):
            await asyncio.sleep(0.25)
            if site.server.connections.open < before:
                break
        assert site.server.connections.open < before
    finally:
        writer.close()


async def test_what_aiohttp_cannot_parse_is_answered_in_our_words(site: Running) -> None:
    for raw in (b"FOO /dashboard HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                b"GET /dashboard/signin/" + SECRET_TOKEN.encode() + b" HTTP/1.1 junk\r\n\r\n",
                b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"):
        answer = await ask(site.port, raw)
        assert answer.status == 400
        assert answer.headers["server"] == "Gotong"
        assert answer.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert SECRET_TOKEN not in answer.text and "aaaa" not in answer.text
        assert "could not be read" in answer.text


async def test_errors_are_short_pages_in_the_readers_language(site: Running) -> None:
    cases = [(request("/no/such/page", b"Accept-Language: id"), 404,
              "Tidak ada halaman di alamat ini"),
             (request("/no/such/page", b"Accept-Language: en"), 404,
              "There is no page at this address"),
             (request("/public", b"Accept-Language: en", method=b"DELETE"), 405,
              "cannot be used that way"),
             (request("/fails?nik=3174011203850007", b"Accept-Language: en"), 500,
              "Something failed on our side")]
    for raw, status, words in cases:
        answer = await ask(site.port, raw)
        assert answer.status == status
        assert words in answer.text
        assert "Traceback" not in answer.text and "3174011203850007" not in answer.text
        assert answer.headers["server"] == "Gotong"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"


async def test_only_public_pages_may_be_kept(site: Running) -> None:
    for path, stored in (("/dashboard", False), ("/dashboard/signed-out", False),
                         ("/dashboard/signin/" + "x" * 43, False), ("/healthz", False),
                         ("/public", True), ("/static/gotong.css", True)):
        answer = await ask(site.port, request(path))
        assert ("cache-control" not in answer.headers) == stored, path
        assert answer.headers["server"] == "Gotong"


async def test_no_secret_of_a_bad_request_reaches_the_log(
        site: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    link = "/dashboard/signin/" + SECRET_TOKEN
    bad = [request("/dashboard", b"Cookie: gotong_session=" + SECRET_TOKEN.encode() + b"; x="
                   + b"a" * 9000),
           b"GET " + link.encode() + b" HTTP/1.1 junk\r\nHost: 127.0.0.1\r\n\r\n",
           b"G\xffT " + link.encode() + b" HTTP/1.1\r\n\r\n"]
    for raw in bad:
        answer = await ask(site.port, raw)
        assert answer.status == 400
    await ask(site.port, request(f"/fails?token={SECRET_TOKEN}"))
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert SECRET_TOKEN not in logged
    assert "refused a request that could not be read (LineTooLong)" in logged
    assert "error handling GET /fails: RuntimeError" in logged
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR
                and r.name.startswith("aiohttp")]


async def test_no_body_is_invited_before_the_request_is_ours(site: Running) -> None:
    """`Expect: 100-continue`: another host's request, or a stranger's POST, is refused
    at once, without "100 Continue" first; our own webhook call is invited to send."""
    expect = b"Expect: 100-continue"
    form = b"Content-Type: application/x-www-form-urlencoded"
    for raw in (request("/dashboard/requests/1/verify", expect, form, b"Content-Length: 10",
                        method=b"POST", host=b"rebind.evil.example"),
                request("/no/such/page", expect, b"Content-Length: 10", method=b"POST",
                        host=b"rebind.evil.example"),
                request("/healthz", expect, b"Content-Length: 10", method=b"PUT",
                        host=b"rebind.evil.example")):
        answer = await ask(site.port, raw, wait=3)
        assert answer.status == 421, raw
    # Ours, but a stranger's form: sent to sign in, not asked for its body.
    answer = await ask(site.port, request("/dashboard/requests/1/verify", expect, form,
                                          b"Content-Length: 10", method=b"POST"), wait=3)
    assert answer.status == 302
    # Paths of ours with another method, and no path at all: 405 and 404 as before.
    assert (await ask(site.port, request("/healthz", method=b"DELETE"))).status == 405
    assert (await ask(site.port, request("/no/such/page"))).status == 404
    answer = await ask(site.port, request("/no/such/hook", expect, b"Content-Length: 2",
                                          b"Content-Type: application/json",
                                          method=b"POST"), wait=3)
    assert answer.status == 404
    # A JSON body where one is taken: invited, then read.
    reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
    try:
        writer.write(request("/echo", expect, b"Content-Length: 2",
                             b"Content-Type: application/json", method=b"POST"))
        async with asyncio.timeout(3):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"{}")
        async with asyncio.timeout(3):
            answer = parse(await reader.readuntil(b"\r\n\r\n"))
            body = await reader.readexactly(int(answer.headers["content-length"]))
        assert (answer.status, body) == (200, b'{"length": 2}')
    finally:
        writer.close()
