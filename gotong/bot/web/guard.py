"""What every request meets before a handler sees it, and what every response carries.

- Only our hosts: a request whose Host is not one of ours (the public address, the
  listening address, loopback, `web.allowed_hosts`) is refused with 421. A site that
  rebinds its DNS name to this server makes browsers send its own name as Host, so it
  never reaches the dashboard or the playground's sockets with a visitor's cookies.
- Bodies of the kind and size the route takes, read within a time limit: webhooks take
  JSON, dashboard forms small urlencoded bodies (read only after the session is checked,
  see signin.staff_work); anything else is refused before its body is read.
- No "100 Continue" before those checks: aiohttp would send it as soon as a request's
  headers are in, before any middleware, inviting a body we then refuse (a stranger's
  POST, another host's request). Ours is sent when the body is about to be read.
- Every response, errors included, carries the security headers, `no-store` unless it is
  a public page or a static file, and no version banner. Errors are a short page in the
  reader's language (or JSON for a client that sent JSON); an unexpected exception is
  logged by its type only.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import HttpVersion11, web
from multidict import MultiDict, MultiDictProxy

from gotong.bot.config import LOOPBACK_NAMES, WebConfig

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HOSTS: web.AppKey[frozenset[str]] = web.AppKey("allowed_hosts")
WEB_CONFIG = web.AppKey("web_config", WebConfig)
# Listening on every address names no host of ours.
_ANY_ADDRESS = ("", "0.0.0.0", "::")

# A dashboard form is a few fields (the allocation form one per household shown).
FORM_MAX_BYTES = 64 * 1024
MAX_FORM_FIELDS = 1000
# Webhook updates are small; anything bigger is not from a chat app.
JSON_MAX_BYTES = 1024 * 1024
# A body must arrive within this long (a client trickling one holds a connection).
BODY_SECONDS = 10.0
JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded",)
DASHBOARD_PREFIX = "/dashboard"
# Set on a request once "100 Continue" was sent.
_CONTINUED = web.RequestKey("continued", bool)
# Pages anyone may keep a copy of: the public figures and the static files.
CACHEABLE_PREFIXES = ("/static/", "/public")

SECURITY_HEADERS = {
    # Scripts and styles come from our own static files only; no page may be framed.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": browsers then send "Origin: null" with every form, and the
    # dashboard's same-origin check could not tell our forms from another site's.
    "Referrer-Policy": "same-origin",
}

# The page of an error: the status, and how to render it (the pages module renders it in
# the reader's language when the app serves pages).
ErrorPage = Callable[[web.Request, int], web.StreamResponse]
ERROR_PAGE: web.AppKey[ErrorPage] = web.AppKey("error_page")


def allowed_hosts(config: WebConfig) -> frozenset[str]:
    """The host names this server answers for (without ports)."""
    names = set(LOOPBACK_NAMES)
    public = urlsplit(config.base_url).hostname
    if public:
        names.add(public.lower())
    if config.host not in _ANY_ADDRESS:
        names.add(config.host.lower())
    names.update(name.lower() for name in config.allowed_hosts)
    return frozenset(names)


def origin_allowed(request: web.Request, origin: str) -> bool:
    return request.app[WEB_CONFIG].own_origin(origin)


# A Host header as browsers and chat apps send it: a name or an address, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")


def host_name(request: web.Request) -> str | None:
    """The request's Host without its port, lower-cased; None when it has none (aiohttp
    would fall back on the socket's own address) or it is not a plain host[:port]."""
    host = request.headers.get("Host")
    if host is None or not _HOST.fullmatch(host):
        return None
    try:
        name = urlsplit(f"//{host}").hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


@web.middleware
async def only_our_hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
    if host_name(request) not in request.app[HOSTS]:
        log.info("refused a request for another host")
        raise web.HTTPMisdirectedRequest()
    return await handler(request)


@web.middleware
async def bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A body only of the kind and size the route takes, read within BODY_SECONDS.

    Dashboard forms are left unread here: the view reads them (`read_form`) once the
    session is known, so that a stranger's POST is refused before its body is read.
    """
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.body_exists \
            or request.match_info.handler is not_found:
        return await handler(request)
    if request.path.startswith(DASHBOARD_PREFIX):
        if request.content_type not in FORM_TYPES:
            raise web.HTTPUnsupportedMediaType()
        _refuse_larger(request, FORM_MAX_BYTES)
        return await handler(request)
    if request.content_type not in JSON_TYPES:
        raise web.HTTPUnsupportedMediaType()
    _refuse_larger(request, JSON_MAX_BYTES)
    await continue_body(request)
    try:
        async with asyncio.timeout(BODY_SECONDS):
            await request.read()  # kept by the request for the handler
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    return await handler(request)


async def expect_nothing_yet(request: web.Request) -> None:
    """Every route's expect handler: aiohttp's own answers `Expect: 100-continue` before
    any middleware, so a request for another host, or a stranger's POST, would hear "100
    Continue" before its 421 or 403. The answer to the expectation waits for the body to
    be wanted (`continue_body`); a request refused before that is answered at once, and
    its body never invited."""


async def continue_body(request: web.Request) -> None:
    """Send "100 Continue" to a client waiting for it before sending its body, once the
    request has passed the checks made before reading it."""
    if request.version != HttpVersion11 or request.get(_CONTINUED) \
            or request.headers.get("Expect", "").lower() != "100-continue":
        return
    request[_CONTINUED] = True
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    # Not part of the answer: as aiohttp does, the answer's size starts after it.
    request.writer.output_size = 0


async def not_found(request: web.Request) -> web.StreamResponse:
    """The last route, for paths no other route takes: 404, or 405 when another route
    takes the path with another method. aiohttp's own answer for these (a route of its
    making) would answer an expectation before any middleware."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def finish_routes(app: web.Application) -> None:
    """After every route is added: the last one for paths no other takes, and ours as
    every route's expect handler."""
    app.router.add_route("*", "/{path:.*}", not_found)
    for route in app.router.routes():
        # aiohttp takes an expect handler per route, when it is added; the routes of
        # every module get ours here instead of each passing it.
        route._expect_handler = expect_nothing_yet


def _refuse_larger(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit,
                                            actual_size=request.content_length)


async def read_form(request: web.Request) -> MultiDictProxy[str]:
    """A dashboard form (urlencoded, small), read to its end within BODY_SECONDS."""
    body = bytearray()
    await continue_body(request)
    try:
        async with asyncio.timeout(BODY_SECONDS):
            # A body comes in pieces (chunked, or over several packets): read to the end.
            while chunk := await request.content.read(FORM_MAX_BYTES + 1 - len(body)):
                body += chunk
                if len(body) > FORM_MAX_BYTES:
                    raise web.HTTPRequestEntityTooLarge(max_size=FORM_MAX_BYTES,
                                                        actual_size=len(body))
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                           max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest() from None
    return MultiDictProxy(MultiDict(fields))


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as a short page in the reader's language (JSON for a JSON client); an
    unexpected exception logged by its type only, never with what the request held."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_page(request, exc.status, exc.headers)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        resource = request.match_info.route.resource
        log.error("error handling %s %s: %s", request.method,
                  resource.canonical if resource is not None else "-", type(exc).__name__)
        return _error_page(request, 500, None)


def _error_page(request: web.Request, status: int, headers: Any) -> web.StreamResponse:
    page = request.app.get(ERROR_PAGE)
    response: web.StreamResponse
    if page is not None and request.content_type not in JSON_TYPES:
        response = page(request, status)
    else:
        response = web.json_response({"error": status}, status=status)
    if headers:
        for name in ("Allow", "Retry-After"):
            if name in headers:
                response.headers[name] = headers[name]
    return response


async def response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response (errors included): the security headers, no version banner, and
    `no-store` for anything that may show personal data."""
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    headers["Server"] = "Gotong"
    if response.status >= 400 or not request.path.startswith(CACHEABLE_PREFIXES):
        headers["Cache-Control"] = "no-store"


def guard(app: web.Application, config: WebConfig | None) -> None:
    """Install the guard on `app`; `config` names our hosts and origins (without it, as
    in a webhook-only test app, any host is served)."""
    app.middlewares.insert(0, errors)
    if config is not None:
        app[HOSTS] = allowed_hosts(config)
        app[WEB_CONFIG] = config
        app.middlewares.insert(1, only_our_hosts)
    app.middlewares.append(bodies)
    app.on_response_prepare.append(response_headers)
