"""The aiohttp application: the health and readiness checks and the pages (public figures, the staff
dashboard, the playground's page), plus whatever routes the composition root adds for the
chat channels (their webhooks, the playground's sockets)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from aiohttp import web

from gotong.bot.services import Services
from gotong.bot.web import dashboard, health, playground, public
from gotong.bot.web.guard import JSON_MAX_BYTES, finish_routes, guard
from gotong.bot.web.pages import setup_pages

# A part of the process that serves something over HTTP adds its routes with this.
AddRoutes = Callable[[web.Application], None]


def _redirect(location: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    # A coroutine function: aiohttp warns about (and tests fail on) a plain callable.
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    return handler


def create_web_app(routes: Iterable[AddRoutes] = (), *, services: Services | None = None,
                   playground_screens: Sequence[playground.Screen] | None = None,
                   apis: Mapping[str, health.Check] | None = None) -> web.Application:
    """The web app; with `services` it serves the pages too, and with `playground_screens`
    the playground's page (which lets anyone act as anyone: only where the configuration
    says). `routes` add the chat channels' own routes; `apis` say whether each chat app's
    API answers (for /readyz, beside the database)."""
    app = web.Application(client_max_size=JSON_MAX_BYTES)
    guard(app, services.config.web if services is not None else None)
    checks = {"database": health.database_check(services.engine)} if services else {}
    health.add_routes(app, {**checks, **(apis or {})})
    if services is not None:
        setup_pages(app, services)
        public.add_routes(app)
        dashboard.add_routes(app)
        if playground_screens is not None:
            playground.add_routes(app, playground_screens)
        home = playground.PATH if playground_screens is not None else public.PATH
        app.router.add_get("/", _redirect(home))
    for add in routes:
        add(app)
    finish_routes(app)
    return app
