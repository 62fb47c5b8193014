"""Server-rendered pages: Jinja2 templates with the message catalog, in the reader's
language (the security headers every response carries are guard.py's).

A template writes `{{ t("dashboard.title") }}`; the language is the one chosen on the page
(`?lang=en`, remembered in a cookie), else the browser's, else the configured default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gotong.bot.services import Services
from gotong.bot.web.guard import ERROR_PAGE
from gotong.handlers.catalog import choose_language

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
LANGUAGE_COOKIE = "lang"
SERVICES = web.AppKey("services", Services)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Errors with words of their own; any other reads as web.error.other.
ERROR_KEYS = {400: "web.error.bad_request", 403: "web.error.forbidden",
              404: "web.error.not_found", 405: "web.error.method", 408: "web.error.timeout",
              413: "web.error.too_large", 415: "web.error.media_type",
              421: "web.error.misdirected", 500: "web.error.failed"}


def page_language(request: web.Request) -> str:
    services = request.app[SERVICES]
    return choose_language(
        (request.query.get("lang"), request.cookies.get(LANGUAGE_COOKIE)),
        request.headers.get("Accept-Language", ""), services.catalog.languages,
        services.config.i18n.default_language)


def translator(request: web.Request, language: str | None = None) -> Callable[..., str]:
    """The catalog's texts in `language`, or in the reader's."""
    catalog = request.app[SERVICES].catalog
    language = language or page_language(request)

    def t(key: str, **params: object) -> str:
        return catalog.text(language, key, **params)

    return t


def render(request: web.Request, template: str, context: Mapping[str, Any] | None = None,
           *, status: int = 200) -> web.Response:
    """A page in the reader's language; a language asked for in the query is kept."""
    language = page_language(request)
    response = aiohttp_jinja2.render_template(
        template, request,
        {**(context or {}), "t": translator(request, language), "lang": language},
        status=status)
    if request.query.get("lang") == language:
        remember_language(response, language)
    return response


def remember_language(response: web.StreamResponse, language: str) -> None:
    """Pages are shown in this language from now on (until the reader picks another)."""
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600,
                        httponly=True, samesite="Lax", path="/")


def error_page(request: web.Request, status: int) -> web.Response:
    """A short page for an error, in the reader's language."""
    return render(request, "error.html",
                  {"status": status, "key": ERROR_KEYS.get(status, "web.error.other")},
                  status=status)


def setup_pages(app: web.Application, services: Services) -> None:
    app[SERVICES] = services
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
                         autoescape=jinja2.select_autoescape(["html"]),
                         undefined=jinja2.StrictUndefined)
    app.router.add_static("/static", STATIC_DIR)
    app[ERROR_PAGE] = error_page
