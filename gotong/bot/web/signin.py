"""Signing in to the staff dashboard: the one-time link from chat, the session cookie,
the checks every dashboard request passes, and the CSRF token of every form.

A link's GET only shows a button: chat apps fetch links to preview them, and that must
not use the link up. The button's POST uses it (once) and starts a session. Every
request then checks that the session is live (not past its absolute end, not idle too
long, not signed out) and that the person is still staff: removed staff lose access at
once. A form's CSRF token is an HMAC keyed with the session's token, which only the
browser holds (the database has its hash); forms from another origin are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.bot.config import Config
from gotong.bot.web.guard import origin_allowed, read_form
from gotong.bot.web.pages import LANGUAGE_COOKIE, SERVICES, remember_language, render
from gotong.handlers.staff_actions import DASHBOARD, Actor, Coverage, staff_coverage
from gotong.models.audit import audit
from gotong.models.contact import Contact
from gotong.models.dashboard import (
    DashboardSession,
    end_session,
    link_is_usable,
    live_session,
    start_session,
    use_link,
)
from gotong.models.outbox import OUTBOX_WRITTEN

log = logging.getLogger(__name__)

COOKIE = "gotong_session"
PREFIX = "/dashboard"
SIGNED_OUT = f"{PREFIX}/signed-out"
CSRF_FIELD = "csrf"
# Tokens are URL-safe base64 (models/dashboard.py).
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
# Why a browser lands on the signed-out page.
REASONS = ("signed_out", "expired", "no_access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PageError(Exception):
    """A refusal shown as a page of the dashboard: 403 or 404, with what to say."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def now(request: web.Request) -> datetime:
    return request.app[SERVICES].conversations.now()


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"gotong dashboard form",
                    hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Work:
    """A dashboard request's unit of work: the signed-in staff member acting, and the
    posted form (checked against CSRF) for a POST."""

    session: AsyncSession
    actor: Actor
    config: Config
    csrf: str
    session_id: int
    form: MultiDictProxy[str] | None

    @property
    def staff(self) -> Coverage:
        return self.actor.staff

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else ""


def _same_origin(request: web.Request) -> bool:
    """A POST without Origin (old browsers, our tests) passes; one naming another origin
    does not. Ours are the configured public address and loopback (guard.py), never the
    Host the request names, which a site rebinding its DNS name to us controls."""
    origin = request.headers.get("Origin")
    return origin is None or origin_allowed(request, origin)


def well_formed(token: str) -> bool:
    """Whether a token from a cookie or a link could be one of ours (URL-safe base64):
    anything else, bytes that are not text included, is no token at all."""
    return 16 <= len(token) <= 128 and _TOKEN.fullmatch(token) is not None


def _check_origin(request: web.Request) -> None:
    if not _same_origin(request):
        log.warning("refused a dashboard form posted from another origin")
        raise PageError(403, "csrf")


async def _signed_in(request: web.Request, session: AsyncSession, at: datetime
                     ) -> tuple[DashboardSession, Coverage]:
    """The live session of the request's cookie and the staff member's coverage, or a
    redirect to the signed-out page (a session whose person is no longer staff is ended,
    audited and committed first)."""
    services = request.app[SERVICES]
    token = request.cookies.get(COOKIE, "")
    live = await live_session(session, token, at,
                              timedelta(minutes=services.config.web.idle_minutes)) \
        if well_formed(token) else None
    staff = await staff_coverage(session, services.areas, live.contact_id) \
        if live is not None else Coverage([], set())
    if live is None or not staff.is_staff:
        if live is not None:
            await end_session(session, live.id, at)
            audit(session, at, "dashboard", "not staff", contact_id=live.contact_id)
        await session.commit()
        raise web.HTTPFound(f"{SIGNED_OUT}?why="
                            + ("no_access" if live is not None else "expired"))
    return live, staff


@asynccontextmanager
async def staff_work(request: web.Request) -> AsyncIterator[Work]:
    """Open the request's transaction as the signed-in staff member, or redirect to the
    signed-out page; a POST's CSRF token and origin are checked before anything else.

    The transaction commits when the view returns, and also when it refuses with a
    PageError (the refusal's audit entry is kept; refusals change nothing else).
    Committed outbox rows wake the dispatcher.
    """
    services = request.app[SERVICES]
    form = None
    if request.method == "POST":
        _check_origin(request)
    at = now(request)
    async with services.sessions() as session:
        live, staff = await _signed_in(request, session, at)
        token = request.cookies.get(COOKIE, "")
        csrf = csrf_token(token)
        if request.method == "POST":
            # Read only now: a stranger's POST is refused before its body is.
            form = await read_form(request)
            sent = form.get(CSRF_FIELD)
            if not isinstance(sent, str) or not hmac.compare_digest(
                    sent.encode("utf-8", "surrogateescape"), csrf.encode()):
                audit(session, at, "dashboard_form", "bad csrf", contact_id=live.contact_id)
                await session.commit()
                log.warning("refused a dashboard form without the right CSRF token")
                raise PageError(403, "csrf")
        actor = Actor(session, services.areas, live.contact_id, at, staff, DASHBOARD)
        try:
            yield Work(session, actor, services.config, csrf, live.id, form)
        except PageError:
            await session.commit()
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
        wrote = bool(session.info.get(OUTBOX_WRITTEN))
    on_outbox = services.conversations.on_outbox
    if wrote and on_outbox is not None:
        on_outbox()


@asynccontextmanager
async def staff_reading(request: web.Request) -> AsyncIterator[Work]:
    """A page that only reads (GET), as the signed-in staff member: the sign-in checks
    run in a short unit of work of their own (a session's last use is written), then
    the page reads on the read connections (Services.reads) in one transaction, a
    snapshot of the database. On SQLite those connections are read-only: a page read
    there never holds the writer the chat uses, and a write from it fails; pages that
    audit a refusal (another aggregator's thing) use staff_work.
    """
    if request.method != "GET":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    services = request.app[SERVICES]
    at = now(request)
    async with services.sessions() as session:
        live, staff = await _signed_in(request, session, at)
        await session.commit()
    csrf = csrf_token(request.cookies.get(COOKIE, ""))
    async with services.reads() as reads:
        actor = Actor(reads, services.areas, live.contact_id, at, staff, DASHBOARD)
        yield Work(reads, actor, services.config, csrf, live.id, None)


def see_other(location: str) -> web.Response:
    """Redirect after a POST: the browser GETs the next page (a reload posts nothing)."""
    return web.Response(status=303, headers={"Location": location})


def _set_cookie(response: web.StreamResponse, token: str, max_age: int) -> None:
    # Secure and SameSite=Strict: never sent over plain HTTP nor with another site's
    # request; HttpOnly: no script reads it.
    response.set_cookie(COOKIE, token, max_age=max_age, path=PREFIX, secure=True,
                        httponly=True, samesite="Strict")


async def signin_page(request: web.Request) -> web.Response:
    """GET of a link: a button to sign in; the link stays unused."""
    token = request.match_info["token"]
    services = request.app[SERVICES]
    if not well_formed(token):
        return render(request, "dashboard_link_refused.html", status=403)
    async with services.sessions() as session:
        usable = await link_is_usable(session, token, now(request))
    if not usable:
        return render(request, "dashboard_link_refused.html", status=403)
    return render(request, "dashboard_signin.html", {"action": request.path})


async def sign_in(request: web.Request) -> web.Response:
    """POST of a link: use it up, start a session, set its cookie."""
    _check_origin(request)
    token = request.match_info["token"]
    services = request.app[SERVICES]
    if not well_formed(token):
        return render(request, "dashboard_link_refused.html", status=403)
    at = now(request)
    hours = services.config.web.session_hours
    contact: Contact | None = None
    async with services.sessions() as session, session.begin():
        contact_id = await use_link(session, token, at)
        staff = await staff_coverage(session, services.areas, contact_id) \
            if contact_id is not None else Coverage([], set())
        if contact_id is None or not staff.is_staff:
            audit(session, at, "dashboard_signin",
                  "bad link" if contact_id is None else "not staff", contact_id=contact_id)
            session_token = None
        else:
            session_token = await start_session(session, contact_id, at,
                                                timedelta(hours=hours))
            audit(session, at, "dashboard_signin", "done", contact_id=contact_id)
            contact = await session.get(Contact, contact_id)
    if session_token is None:
        return render(request, "dashboard_link_refused.html", status=403)
    response = see_other(PREFIX)
    _set_cookie(response, session_token, hours * 3600)
    # Staff see the dashboard in the language they chat in, unless this browser was
    # already told otherwise.
    if contact is not None and LANGUAGE_COOKIE not in request.cookies:
        remember_language(response, contact.language)
    return response


async def sign_out(request: web.Request) -> web.Response:
    async with staff_work(request) as work:
        await end_session(work.session, work.session_id, work.actor.now)
        work.actor.audit("dashboard_signout", "done")
    response = see_other(f"{SIGNED_OUT}?why=signed_out")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


async def signed_out(request: web.Request) -> web.Response:
    why = request.query.get("why", "")
    response = render(request, "dashboard_signed_out.html",
                      {"why": why if why in REASONS else "expired"})
    response.del_cookie(COOKIE, path=PREFIX)
    return response


@web.middleware
async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A dashboard refusal becomes its page (with the security headers of every page)."""
    try:
        return await handler(request)
    except PageError as refused:
        return render(request, "dashboard_refused.html", {"reason": refused.reason},
                      status=refused.status)


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/signin/{{token}}", signin_page)
    app.router.add_post(f"{PREFIX}/signin/{{token}}", sign_in)
    app.router.add_post(f"{PREFIX}/signout", sign_out)
    app.router.add_get(SIGNED_OUT, signed_out)
    app.middlewares.append(refusals)


def template_context(work: Work, **context: Any) -> dict[str, Any]:
    """What every signed-in page's template needs besides its own data."""
    return {"csrf": work.csrf, **context}

