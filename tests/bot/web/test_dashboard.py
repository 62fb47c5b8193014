"""The staff dashboard through a real aiohttp server and client: signing in with a link
typed for in chat, sessions that end, forms that need their CSRF token, and the staff
actions of chat (verify, reject, receive, allocate) from web pages, for one aggregator
only."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import delete, event, select
from sqlalchemy.orm import selectinload

from gotong.bot.services import Services, handler_settings
from gotong.bot.web.app import create_web_app
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Incoming, Kind
from gotong.models import export
from gotong.models.aggregator import Aggregator, StaffMember
from gotong.models.allocation import Pick, allocate
from gotong.models.audit import AuditEntry
from gotong.models.delivery import Delivery, DeliverySource
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge
from tests.bot.cli.test_export import admin
from tests.chat import Chat
from tests.handlers.test_proxies import new_proxy, register
from tests.handlers.test_staff_stock import join
from tests.handlers.test_volunteers import allocated
from tests.lookups import outbox
from tests.models.aid_world import AidWorld

TIMUR, SELATAN = "Jakarta Timur", "Jakarta Selatan"
NIK = "3174011203850007"
LINK = re.compile(r"/dashboard/signin/([A-Za-z0-9_-]{43,})")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Browser:
    """A staff member's browser: the session cookie is sent by hand (the client's jar
    keeps Secure cookies off plain HTTP, and the test server is plain HTTP)."""

    client: aiohttp.ClientSession
    base: str
    cookie: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        cookie = {"Cookie": f"gotong_session={self.cookie}"} if self.cookie else {}
        return {"Accept-Language": "en", **cookie, **(extra or {})}

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.client.get(self.base + path, headers=self._headers(),
                                   allow_redirects=False) as response:
            return response.status, await response.text(), response

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]],
                   headers: dict[str, str] | None = None
                   ) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.client.post(self.base + path, data=data,
                                    headers=self._headers(headers),
                                    allow_redirects=False) as response:
            return response.status, await response.text(), response

    async def csrf(self, path: str = "/dashboard") -> str:
        status, text, _ = await self.get(path)
        assert status == 200, (status, text)
        match = CSRF.search(text)
        assert match is not None
        return match.group(1)

    async def form(self, path: str, fields: dict[str, str], from_page: str = "/dashboard"
                   ) -> tuple[int, str]:
        """Post a form as the page would (with its CSRF token); the page redirected to."""
        status, text, response = await self.post(
            path, {"csrf": await self.csrf(from_page), **fields})
        if status != 303:
            return status, text
        status, text, _ = await self.get(response.headers["Location"])
        return status, text


@dataclass
class Site:
    services: Services
    world: AidWorld
    clock: Clock
    client: aiohttp.ClientSession
    base: str

    def browser(self) -> Browser:
        return Browser(self.client, self.base)

    async def link(self, chat: Chat) -> str:
        """Type /dashboard in chat; the link's path."""
        await chat.say("/dashboard")
        match = LINK.search(chat.last.text)
        assert match is not None, chat.last.text
        return f"/dashboard/signin/{match.group(1)}"

    async def sign_in(self, chat: Chat) -> Browser:
        browser = self.browser()
        path = await self.link(chat)
        status, _, response = await browser.post(path, {})
        assert status == 303 and response.headers["Location"] == "/dashboard"
        cookie = SimpleCookie(response.headers["Set-Cookie"])
        browser.cookie = cookie["gotong_session"].value
        return browser


@pytest.fixture
async def site(services: Services) -> AsyncIterator[Site]:
    world = AidWorld(services)
    clock = Clock(world.now)
    # The web pages and chat keep one time, which the tests move.
    services.conversations = Conversations(services.engine, services.catalog,
                                           services.areas, handler_settings(services.config),
                                           clock=clock)
    server = TestServer(create_web_app(services=services))
    await server.start_server()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            yield Site(services, world, clock, client, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def audit_entries(services: Services) -> list[tuple[str, str, str]]:
    async with services.sessions() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    return [(e.action, e.outcome, e.detail) for e in entries]


async def request_of(services: Services, request_id: int) -> HelpRequest:
    async with services.sessions() as session:
        found = await session.get(HelpRequest, request_id)
        assert found is not None
        return found


# --- signing in -----------------------------------------------------------------------


async def test_a_staff_member_signs_in_with_a_link_from_chat_once(site: Site) -> None:
    aggregator = await site.world.aggregator(TIMUR)
    staff = await join(site.world, aggregator, "staff-1")
    path = await site.link(staff)
    assert "works once, within 10 minutes" in staff.last.text
    assert staff.last.text.count("http://127.0.0.1:8080/dashboard/signin/") == 1
    browser = site.browser()
    # Chat apps preview links: a GET shows the button and leaves the link unused.
    for _ in range(2):
        status, page, _ = await browser.get(path)
        assert status == 200 and 'id="signin"' in page and 'method="post"' in page
    status, _, response = await browser.post(path, {})
    assert status == 303 and response.headers["Location"] == "/dashboard"
    set_cookie = response.headers["Set-Cookie"]
    for attribute in ("gotong_session=", "Secure", "HttpOnly", "SameSite=Strict",
                      "Path=/dashboard"):
        assert attribute in set_cookie
    browser.cookie = SimpleCookie(set_cookie)["gotong_session"].value
    status, page, _ = await browser.get("/dashboard")
    assert status == 200 and "Verification queue" in page
    assert 'aria-current="page">Queue</a>' in page
    # The link is used up: a replay is refused and says how to get another.
    again = site.browser()
    for method in (again.get, lambda p: again.post(p, {})):
        status, page, _ = await method(path)
        assert status == 403 and "type /dashboard in your chat" in page
        assert "gotong_session" not in _.headers.get("Set-Cookie", "")
    status, page, _ = await site.browser().get(path + "?lang=id")
    assert status == 403 and "ketik /dasbor" in page
    # Neither the link's token nor the session's is stored in clear.
    async with site.services.sessions() as session:
        from gotong.models.dashboard import DashboardSession, SignInLink
        stored = [*(await session.scalars(select(SignInLink.token_hash))).all(),
                  *(await session.scalars(select(DashboardSession.token_hash))).all()]
    assert path.rsplit("/", 1)[1] not in stored and browser.cookie not in stored
    assert [a[:2] for a in await audit_entries(site.services) if "dashboard" in a[0]] == [
        ("dashboard_link", "done"), ("dashboard_signin", "done"),
        ("dashboard_signin", "bad link")]


async def test_an_expired_link_and_strangers_are_refused(site: Site) -> None:
    aggregator = await site.world.aggregator(TIMUR)
    staff = await join(site.world, aggregator, "staff-1")
    path = await site.link(staff)
    site.clock.now += timedelta(minutes=10, seconds=1)
    status, page, _ = await site.browser().post(path, {})
    assert status == 403 and "has expired" in page
    stranger = Chat(site.services.conversations, chat_id="stranger")
    await stranger.say("/dasbor")
    assert "This is for the staff of an aid organisation" in stranger.last.text
    assert LINK.search(stranger.last.text) is None
    assert ("dashboard", "not staff", "") in await audit_entries(site.services)
    # No cookie, a made-up cookie: the signed-out page.
    browser = site.browser()
    for cookie in ("", "made-up"):
        browser.cookie = cookie
        status, _, response = await browser.get("/dashboard/pledges")
        assert status == 302
        assert response.headers["Location"] == "/dashboard/signed-out?why=expired"
    status, page, _ = await browser.get("/dashboard/signed-out?why=expired")
    assert status == 200 and "Your session has expired" in page


async def test_sessions_end_when_idle_after_their_hours_and_on_sign_out(site: Site) -> None:
    web = site.services.config.web
    aggregator = await site.world.aggregator(TIMUR)
    staff = await join(site.world, aggregator, "staff-1")
    # Used often enough, a session still ends `session_hours` after sign-in.
    browser = await site.sign_in(staff)
    steps = int(web.session_hours * 60 / (web.idle_minutes - 1))
    for _ in range(steps):
        site.clock.now += timedelta(minutes=web.idle_minutes - 1)
        assert (await browser.get("/dashboard"))[0] == 200
    site.clock.now += timedelta(minutes=web.idle_minutes - 1)
    status, _, response = await browser.get("/dashboard")
    assert status == 302 and "why=expired" in response.headers["Location"]
    # Unused for `idle_minutes`, it ends; it stays ended when used again.
    browser = await site.sign_in(staff)
    site.clock.now += timedelta(minutes=web.idle_minutes)
    assert (await browser.get("/dashboard"))[0] == 302
    site.clock.now -= timedelta(minutes=web.idle_minutes)
    assert (await browser.get("/dashboard"))[0] == 302
    # Signing out needs the form's token, and ends the session at once.
    browser = await site.sign_in(staff)
    status, _, _ = await browser.post("/dashboard/signout", {"csrf": "0" * 64})
    assert status == 403
    status, page = await browser.form("/dashboard/signout", {})
    assert status == 200 and "You have signed out" in page
    assert (await browser.get("/dashboard"))[0] == 302


async def test_removed_staff_lose_access_at_once(site: Site) -> None:
    aggregator = await site.world.aggregator(TIMUR)
    staff = await join(site.world, aggregator, "staff-1")
    browser = await site.sign_in(staff)
    path = await site.link(staff)
    async with site.services.sessions() as session, session.begin():
        await session.execute(delete(StaffMember))
    status, _, response = await browser.get("/dashboard")
    assert status == 302 and "why=no_access" in response.headers["Location"]
    status, page, _ = await browser.get(response.headers["Location"])
    assert "no longer staff" in page
    # A link sent before the removal does not sign in either.
    assert (await site.browser().post(path, {}))[0] == 403


# --- forms ------------------------------------------------------------------------------


async def test_forms_need_the_sessions_token_and_this_origin(site: Site) -> None:
    aggregator = await site.world.aggregator(TIMUR)
    request_id = await site.world.household(site.world.village(TIMUR), verified=False)
    staff = await join(site.world, aggregator, "staff-1")
    browser = await site.sign_in(staff)
    other = await site.sign_in(await join(site.world, aggregator, "staff-2"))
    path = f"/dashboard/requests/{request_id}/verify"
    wrong = [{}, {"csrf": ""}, {"csrf": "x"}, {"csrf": await other.csrf()}]
    for fields in wrong:
        status, page, _ = await browser.post(path, fields)
        assert status == 403 and "Nothing was changed" in page
    token = await browser.csrf()
    status, _, _ = await browser.post(path, {"csrf": token},
                                      {"Origin": "https://evil.example"})
    assert status == 403
    assert (await request_of(site.services, request_id)).status == "submitted"
    status, _, _ = await browser.post(path, {"csrf": token}, {"Origin": site.base})
    assert status == 303
    assert (await request_of(site.services, request_id)).status == "verified"


# --- the staff's work -------------------------------------------------------------------


async def test_verify_and_reject_from_the_queue(site: Site) -> None:
    world = site.world
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    first = await world.household(village, size=6, vulnerabilities=("elderly",),
                                  verified=False, nik=NIK, name="Siti Rahayu",
                                  phone="+6281211112222", street="Jl. Melati 9")
    second = await world.household(village, size=2, verified=False)
    duplicate = await world.household(village, size=2, verified=False, nik=NIK)
    references = {i: (await request_of(site.services, i)).reference
                  for i in (first, second, duplicate)}
    staff = await join(world, aggregator, "staff-1")
    browser = await site.sign_in(staff)
    status, page, _ = await browser.get("/dashboard")
    assert status == 200
    rows = re.findall(r'<tr id="request-(GT-\w+)"', page)
    assert rows[0] == references[first] and set(rows) == set(references.values())
    assert f'id="verify-{references[first]}"' in page
    assert "Elderly" in page or "elderly" in page
    assert NIK not in page and NIK[-4:] not in page
    # Filters: duplicates only, a minimum priority.
    _, page, _ = await browser.get("/dashboard?duplicates=1")
    assert re.findall(r'<tr id="request-(GT-\w+)"', page) == [references[duplicate]]
    _, page, _ = await browser.get("/dashboard?min_priority=30")
    assert re.findall(r'<tr id="request-(GT-\w+)"', page) == [references[first]]
    # A request's page shows what chat's queue shows, never the NIK.
    _, page, _ = await browser.get(f"/dashboard/requests/{first}")
    assert "Siti Rahayu" in page and "+6281211112222" in page and NIK not in page

    status, page = await browser.form(f"/dashboard/requests/{first}/verify", {})
    assert status == 200 and f"{references[first]} is verified" in page
    # The message after an action is the server's: a link made elsewhere shows none.
    forged = f"/dashboard?flash=verify&ref={references[second]}"
    for path in (forged, forged + "&seal=" + "0" * 32):
        _, page, _ = await browser.get(path)
        assert f"{references[second]} is verified" not in page
    status, page = await browser.form(f"/dashboard/requests/{second}/reject",
                                      {"reason": "other", "other_reason": ""})
    assert "choose a reason or type one" in page
    status, page = await browser.form(f"/dashboard/requests/{second}/reject",
                                      {"reason": "other", "other_reason": "moved away"})
    assert f"{references[second]} is rejected" in page
    status, page = await browser.form(f"/dashboard/requests/{duplicate}/duplicate", {})
    assert f"{references[duplicate]} is marked as a duplicate" in page
    # Once decided, the same action is refused without changing anything.
    status, page = await browser.form(f"/dashboard/requests/{first}/reject",
                                      {"reason": "incomplete"})
    assert f"{references[first]} no longer waits for verification" in page
    assert [(await request_of(site.services, i)).status
            for i in (first, second, duplicate)] == ["verified", "rejected", "rejected"]
    households = {r: (await request_of(site.services, r)).contact_id
                  for r in (first, second)}
    assert [n.contact_id for n in await outbox(site.services, "notice.request_verified")] \
        == [households[first]]
    [rejected, _] = await outbox(site.services, "notice.request_rejected")
    assert rejected.contact_id == households[second]
    assert rejected.params["reason"] == "moved away"
    done = [a for a in await audit_entries(site.services) if a[1] == "done"]
    assert ("verify", "done", f"{references[first]} [dashboard]") in done
    assert ("reject", "done", f"{references[second]} [dashboard]") in done


async def test_receive_a_pledge_and_allocate_the_stock(site: Site) -> None:
    world = site.world
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    households = [await world.household(village, size=size) for size in (7, 4, 2)]
    pledge = await world.pledge(aggregator, 10)
    staff = await join(world, aggregator, "staff-1")
    browser = await site.sign_in(staff)
    status, page, _ = await browser.get("/dashboard/pledges")
    assert status == 200 and "Donatur" in page and f'quantity-{pledge}' in page
    status, page = await browser.form(f"/dashboard/pledges/{pledge}/receive",
                                      {"quantity": "0"}, "/dashboard/pledges")
    assert "quantity above 0" in page
    status, page = await browser.form(f"/dashboard/pledges/{pledge}/receive",
                                      {"quantity": "2"}, "/dashboard/pledges")
    assert "received: it is in stock, and the donor has been told" in page
    assert "2 packages" in page
    [received] = await world.pledges([pledge])
    assert (received.status, received.received_quantity) == ("received", 2)
    [notice] = await outbox(site.services, "notice.pledge_received")
    assert notice.contact_id == received.contact_id
    status, page = await browser.form(f"/dashboard/pledges/{pledge}/receive",
                                      {"quantity": "2"}, "/dashboard/pledges")
    assert "no longer waits to be received" in page

    status, page, _ = await browser.get(f"/dashboard/allocate?stock={aggregator}"
                                        ":food_package&per=1")
    assert status == 200 and 'id="allocate"' in page
    proposed = re.findall(r'name="request" value="(\d+)"', page)
    assert proposed == [str(h) for h in households[:2]]
    status, _, response = await browser.post("/dashboard/allocate", [
        ("csrf", await browser.csrf()), ("stock", f"{aggregator}:food_package"),
        ("per", "1"), *(("request", r) for r in [*proposed, str(households[2])])])
    assert status == 303
    _, page, _ = await browser.get(response.headers["Location"])
    assert "Allocated to 2 households" in page
    assert await world.statuses(households) == ["allocated", "allocated", "verified"]
    assert len(await outbox(site.services, "notice.request_allocated")) == 2
    assert await world.stock(aggregator) == 0
    _, page, _ = await browser.get("/dashboard/deliveries")
    assert page.count('class="card"') == 2
    _, page, _ = await browser.get("/dashboard/stats")
    assert 'id="per-day"' in page and 'id="per-kelurahan"' in page


async def test_staff_of_another_aggregator_see_nothing_of_it(site: Site) -> None:
    world = site.world
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator(SELATAN)
    village = world.village(TIMUR)
    waiting = await world.household(village, verified=False, nik=NIK, name="Siti Rahayu",
                                    phone="+6281211112222", street="Jl. Melati 9")
    verified = await world.household(village, size=5)
    pledge = await world.pledge(timur, 3)
    await world.pledge(timur, 2, received=2)
    own = await join(world, timur, "staff-timur")
    timur_browser = await site.sign_in(own)
    status, page = await timur_browser.form(
        "/dashboard/allocate", {"stock": f"{timur}:food_package", "per": "1",
                                "request": str(verified)})
    assert "Allocated to 1 household" in page
    async with site.services.sessions() as session:
        delivery = (await session.scalars(select(Delivery.id))).one()
        reference = (await session.get(HelpRequest, waiting)).reference  # type: ignore[union-attr]
    stranger = await site.sign_in(await join(world, selatan, "staff-selatan"))
    token = await stranger.csrf()
    for path in (f"/dashboard/requests/{waiting}", f"/dashboard/pledges/{pledge}",
                 f"/dashboard/deliveries/{delivery}", "/dashboard/requests/999999",
                 "/dashboard/export/requests.csv?aggregator=" + str(timur)):
        status, page, _ = await stranger.get(path)
        assert status == 404, path
        assert "nothing here for your aid organisation" in page
    for path, fields in ((f"/dashboard/requests/{waiting}/verify", {}),
                         (f"/dashboard/requests/{waiting}/reject", {"reason": "incomplete"}),
                         (f"/dashboard/pledges/{pledge}/receive", {"quantity": "3"}),
                         (f"/dashboard/deliveries/{delivery}/resolve", {"action": "x"}),
                         (f"/dashboard/deliveries/{delivery}/assign", {"volunteer": "1"}),
                         ("/dashboard/allocate", {"stock": f"{timur}:food_package",
                                                  "per": "1", "request": str(verified)})):
        status, _, _ = await stranger.post(path, {"csrf": token, **fields})
        assert status in (404, 303), path
    assert (await request_of(site.services, waiting)).status == "submitted"
    [still] = await world.pledges([pledge])
    assert still.status == "pledged"
    refused = [a for a in await audit_entries(site.services)
               if a[1] in ("outside area", "not their aggregator")]
    assert len(refused) >= 8
    # Lists and exports of the other aggregator hold none of its rows.
    for path in ("/dashboard", "/dashboard?status=allocated", "/dashboard/pledges",
                 "/dashboard/deliveries", "/dashboard/reviews",
                 "/dashboard/export/requests.csv", "/dashboard/export/pledges.csv",
                 "/dashboard/export/deliveries.csv"):
        status, page, _ = await stranger.get(path)
        assert status == 200 and reference not in page and "GP-" not in page, path
    # The aggregator's own staff: exports with a header, attached, without personal data;
    # pages beyond the queue without phones or addresses.
    for kind in ("requests", "pledges", "deliveries"):
        status, text, response = await timur_browser.get(f"/dashboard/export/{kind}.csv")
        assert status == 200 and response.content_type == "text/csv"
        assert response.headers["Content-Disposition"] == \
            f'attachment; filename="{kind}.csv"'
        assert len(text.splitlines()) >= 2
        for personal in (NIK, "Siti", "+62812", "Melati"):
            assert personal not in text
    for path in ("/dashboard", "/dashboard/deliveries", f"/dashboard/deliveries/{delivery}",
                 "/dashboard/reviews", "/dashboard/stats",
                 f"/dashboard/allocate?stock={timur}:food_package&per=1"):
        status, page, _ = await timur_browser.get(path)
        assert status == 200, path
        for personal in (NIK, "+62812", "Melati", "Jl. Mawar"):
            assert personal not in page, (path, personal)


async def test_the_indonesian_alias_gives_a_link_too(site: Site) -> None:
    aggregator = await site.world.aggregator(TIMUR)
    staff = await join(site.world, aggregator, "staff-1")
    [reply] = await site.services.conversations.handle(Incoming(
        channel="console", chat_id="staff-1", kind=Kind.COMMAND, command="dasbor",
        language_hint="id"))
    assert LINK.search(reply.text) is not None
    assert staff.chat_id == "staff-1"


async def test_the_dashboard_speaks_the_language_staff_chat_in(site: Site) -> None:
    aggregator = await site.world.aggregator(TIMUR)
    staff = await join(site.world, aggregator, "staff-1")
    await staff.say("/language id")
    path = await site.link(staff)
    browser = site.browser()  # its browser asks for English
    _, _, response = await browser.post(path, {})
    cookies = SimpleCookie()
    for header in response.headers.getall("Set-Cookie"):
        cookies.load(header)
    assert cookies["lang"].value == "id"
    browser.cookie = cookies["gotong_session"].value
    async with site.client.get(site.base + "/dashboard", headers={
            "Accept-Language": "en", "Cookie": f"gotong_session={browser.cookie}; lang=id"},
            allow_redirects=False) as answer:
        assert "Antrian verifikasi" in await answer.text()
    # A browser that already chose a language keeps it.
    path = await site.link(staff)
    _, _, response = await browser.post(path, {}, {"Cookie": "lang=en"})
    assert all("lang=" not in header for header in response.headers.getall("Set-Cookie"))


async def test_a_failed_delivery_is_settled_from_the_reviews_page(site: Site) -> None:
    world = site.world
    aggregator = await world.aggregator(TIMUR)
    household = await world.household(world.village(TIMUR))
    await world.pledge(aggregator, 1, received=1)
    browser = await site.sign_in(await join(world, aggregator, "staff-1"))
    woken: list[int] = []
    site.services.conversations.on_outbox = lambda: woken.append(1)
    await browser.form("/dashboard/allocate", {"stock": f"{aggregator}:food_package",
                                               "per": "1", "request": str(household)})
    assert woken and await world.stock(aggregator) == 0
    async with site.services.sessions() as session, session.begin():
        delivery = (await session.scalars(select(Delivery))).one()
        delivery.status, delivery.failure_reason = "failed", "nobody_home"
    status, page, _ = await browser.get("/dashboard/reviews")
    assert status == 200 and "Failed: nobody was home" in page
    assert f'id="resolve-x-{delivery.id}"' in page
    status, page = await browser.form(f"/dashboard/deliveries/{delivery.id}/resolve",
                                      {"action": "x"}, "/dashboard/reviews")
    assert ": done." in page and "Nothing waits for your decision" in page
    assert await world.statuses([household]) == ["verified"]
    assert await world.stock(aggregator) == 1
    assert ("review_x", "done") in [a[:2] for a in await audit_entries(site.services)]


async def test_a_form_is_read_whole_however_it_arrives(site: Site) -> None:
    """A body in pieces (as over a real network) is read to its end: the token that comes
    last counts, and a body that grows past the limit is refused, never cut short."""
    aggregator = await site.world.aggregator(TIMUR)
    browser = await site.sign_in(await join(site.world, aggregator, "staff-1"))
    token = await browser.csrf()
    port = int(site.base.rsplit(":", 1)[1])

    async def post(pieces: list[bytes], chunked: bool = False) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        length = b"Transfer-Encoding: chunked" if chunked else \
            b"Content-Length: " + str(sum(map(len, pieces))).encode()
        writer.write(b"POST /dashboard/requests/999999/verify HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Cookie: gotong_session=" + browser.cookie.encode() + b"\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n" + length
                     + b"\r\nConnection: close\r\n\r\n")
        for piece in pieces:
            await asyncio.sleep(0.1)
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        status = int((await reader.readline()).split()[1])
        writer.close()
        return status

    note = b"note=" + b"a" * 3000 + b"&"
    # The form reached the view whole: a request that is not there (404), not a bad token.
    assert await post([note, b"csrf=" + token.encode()]) == 404
    assert await post([note, b"csrf=" + token.encode()], chunked=True) == 404
    assert await post([b"csrf=" + token.encode() + b"&", b"x=" + b"b" * 100_000],
                      chunked=True) == 413
    # A token that is not even ASCII is a wrong token.
    assert await post([b"csrf=%C3%A9"]) == 403


async def test_actions_the_page_does_not_offer_are_refused(site: Site) -> None:
    """Forms posted by hand for a delivery in a state the page offers no such action for:
    cancelling one waiting for a volunteer or on its way, accepting a photo of a delivery
    the household disputes, settling a dispute nobody raised. Each is refused on the
    server, with the page's answer, and audited; nothing changes."""
    world = site.world
    aggregator = await world.aggregator(TIMUR)
    households = [await world.household(world.village(TIMUR)) for _ in range(2)]
    await world.pledge(aggregator, 2, received=2)
    browser = await site.sign_in(await join(world, aggregator, "staff-1"))
    waiting, travelling = await allocated(world, aggregator, households)
    async with site.services.sessions() as session, session.begin():
        moving = await session.get(Delivery, travelling)
        assert moving is not None
        moving.status = "on_the_way"

    async def post(delivery: int, action: str) -> str:
        _, page = await browser.form(f"/dashboard/deliveries/{delivery}/resolve",
                                     {"action": action}, "/dashboard/reviews")
        return page

    for delivery in (waiting, travelling):
        assert "changed meanwhile" in await post(delivery, "x")
        assert "changed meanwhile" in await post(delivery, "yes")
        assert "changed meanwhile" in await post(delivery, "ok")
    assert await world.statuses(households) == ["allocated", "allocated"]
    assert await world.stock(aggregator) == 0

    # A photo the household says is not theirs: the dispute comes first.
    async with site.services.sessions() as session, session.begin():
        disputed = await session.get(Delivery, travelling)
        assert disputed is not None
        disputed.status, disputed.disputed = "awaiting_review", True
        disputed.proof_media_id, disputed.proof_latitude, disputed.proof_longitude = \
            "photo", -6.2, 106.8
    _, page, _ = await browser.get("/dashboard/reviews")
    assert f'id="resolve-ok-{travelling}"' not in page
    assert "changed meanwhile" in await post(travelling, "ok")
    async with site.services.sessions() as session:
        still = await session.get(Delivery, travelling)
        assert still is not None and (still.status, still.disputed) == (
            "awaiting_review", True)
    refused = [a[:2] for a in await audit_entries(site.services)]
    assert refused.count(("review_x", "not allowed now")) == 2
    assert ("review_ok", "not allowed now") in refused
    assert not any(action.startswith("review_") and outcome == "done"
                   for action, outcome in refused)


async def test_a_request_a_proxy_registered_names_the_proxy(site: Site) -> None:
    world = site.world
    aggregator = await world.aggregator(SELATAN)
    staff = await join(world, aggregator, "staff-1")
    proxy = await new_proxy(site.services, staff)
    reference = await register(proxy, phone=None)
    own = await world.household(world.village(SELATAN), verified=False)
    async with site.services.sessions() as session:
        registered = await session.scalar(select(HelpRequest.id)
                                          .where(HelpRequest.reference == reference))
    browser = await site.sign_in(staff)
    _, page, _ = await browser.get(f"/dashboard/requests/{registered}")
    assert "registered by proxy Budi Santoso" in page, page
    _, page, _ = await browser.get(f"/dashboard/requests/{own}")
    assert "registered by proxy" not in page


async def test_a_request_s_page_says_where_its_phone_stands(site: Site) -> None:
    """Awaiting the household's answer (never showing the number asked), then confirmed
    from a number Gotong first saw after the question."""
    world = site.world
    aggregator = await world.aggregator(SELATAN)
    staff = await join(world, aggregator, "staff-1")
    proxy = await new_proxy(site.services, staff)
    reference = await register(proxy, phone="0813 1111 2222")
    async with site.services.sessions() as session:
        registered = await session.scalar(select(HelpRequest.id)
                                          .where(HelpRequest.reference == reference))
    browser = await site.sign_in(staff)
    _, page, _ = await browser.get(f"/dashboard/requests/{registered}")
    assert "Phone: awaiting the household&#39;s answer" in page, page
    assert "1111" not in page
    [asked] = await outbox(site.services, "notice.household_phone_check")
    [(context, option)] = [(c, o) for c, o, _ in asked.actions if o.startswith("yes:")]
    await site.services.conversations.handle(Incoming(
        channel="whatsapp", chat_id="6281311112222", kind=Kind.CHOICE, context=context,
        option=option, language_hint="id", sender_phone="+6281311112222"))
    _, page, _ = await browser.get(f"/dashboard/requests/{registered}")
    assert "awaiting the household" not in page
    assert "Phone confirmed by the household on" in page
    assert "from a number Gotong first saw after the question was sent" in page


# --- exports ------------------------------------------------------------------------------


async def reference_export(services: Services, kind: str, aggregator_id: int) -> str:
    """The export as it was made in one piece before it was streamed: each kind in one
    query in id order, the whole file in memory. The streamed export must match it byte
    for byte."""
    rows: list[list[object]] = []
    async with services.sessions() as session:
        aggregator = await session.scalar(
            select(Aggregator).where(Aggregator.id == aggregator_id)
            .options(selectinload(Aggregator.areas)))
        assert aggregator is not None
        if kind == "requests":
            villages = services.areas.villages_under(a.area_id for a in aggregator.areas)
            for r in (await session.scalars(select(HelpRequest).where(
                    HelpRequest.village_id.in_(villages)).order_by(HelpRequest.id))).all():
                place = services.areas.place(r.village_id)
                assert place is not None
                rows.append([r.reference, r.status, place.village, place.district,
                             place.regency, r.household_size, r.vulnerabilities, r.needs,
                             r.created_at, r.updated_at])
        elif kind == "pledges":
            for p in (await session.scalars(select(Pledge).where(
                    Pledge.aggregator_id == aggregator_id).order_by(Pledge.id))).all():
                target = services.areas.get(p.target_area_id) if p.target_area_id else None
                rows.append([p.code, p.status, p.organisation, p.category, p.quantity,
                             p.received_quantity, p.allocated_quantity, p.delivered_quantity,
                             target.name if target else None, p.handover, p.created_at,
                             p.updated_at])
        else:
            for d in (await session.scalars(select(Delivery).where(
                    Delivery.aggregator_id == aggregator_id).order_by(Delivery.id))).all():
                request = await session.get(HelpRequest, d.request_id)
                assert request is not None
                place = services.areas.place(request.village_id)
                sources = (await session.execute(
                    select(Pledge.code, DeliverySource.quantity)
                    .join(Pledge, Pledge.id == DeliverySource.pledge_id)
                    .where(DeliverySource.delivery_id == d.id)
                    .order_by(DeliverySource.id))).all()
                rows.append([d.id, request.reference, place.village if place else None,
                             d.category, d.quantity, d.status, d.override_reason,
                             [f"{code}:{quantity}" for code, quantity in sources],
                             d.created_at, d.updated_at])
    header = {"requests": export.REQUEST_COLUMNS, "pledges": export.PLEDGE_COLUMNS,
              "deliveries": export.DELIVERY_COLUMNS}[kind]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([export.cell(value) for value in row] for row in rows)
    return out.getvalue()


async def test_exports_stream_the_same_csv_as_the_command_line_batch_by_batch(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    world, services = site.world, site.services
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator(SELATAN)
    # Rows of both aggregators interleaved, so that a batch of one is read between rows of
    # the other, and more rows than a batch holds.
    households = []
    for index in range(7):
        households.append(await world.household(world.village(TIMUR, index)))
        await world.household(world.village(SELATAN, index))
    first = await world.pledge(timur, 4, received=4)
    second = await world.pledge(timur, 20, received=20)
    await world.pledge(selatan, 3, received=3)
    async with services.sessions() as session:
        codes = [p.code for p in (await session.scalars(
            select(Pledge).where(Pledge.id.in_([first, second])).order_by(Pledge.id))).all()]
    # The first delivery draws on both pledges.
    for request_id, quantity in zip(households, (5, 1, 2, 1, 3, 1, 2), strict=True):
        async with services.sessions() as session, session.begin():
            outcome = await allocate(session, services.areas, timur, "food_package",
                                     quantity, [Pick(request_id, None)], world.staff_id,
                                     world.now, timedelta(days=14))
        assert len(outcome.deliveries) == 1, outcome.refused
    monkeypatch.setattr(export, "BATCH", 2)
    browser = await site.sign_in(await join(world, timur, "staff-timur"))
    stranger = await site.sign_in(await join(world, selatan, "staff-selatan"))

    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    for kind, rows, reads_per_batch in (("requests", 7, 1), ("pledges", 2, 1),
                                        ("deliveries", 7, 2)):
        expected = await reference_export(services, kind, timur)
        assert len(expected.splitlines()) == rows + 1
        if kind == "deliveries":
            assert f"{codes[0]}:4;{codes[1]}:1" in expected
        status, text, response = await browser.get(f"/dashboard/export/{kind}.csv")
        assert status == 200
        # Sent as it is read, in pieces, not as one body of a known length.
        assert response.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in response.headers
        assert text == expected
        status, text, _ = await stranger.get(f"/dashboard/export/{kind}.csv")
        assert status == 200 and text == await reference_export(services, kind, selatan)

        out = io.StringIO()
        selects.clear()
        event.listen(services.engine.sync_engine, "before_cursor_execute", count)
        try:
            written = await export.export_csv(services.sessions, services.areas, kind,
                                              timur, out)
        finally:
            event.remove(services.engine.sync_engine, "before_cursor_execute", count)
        assert written == rows
        assert out.getvalue() == expected
        # The aggregator and its areas, then a read per batch (two for deliveries: their
        # pledges), and one finding the last batch empty when the rows fill every batch.
        assert len(selects) <= 2 + reads_per_batch * math.ceil(rows / 2) + 1, selects
        code, printed = await admin(services.config, "export", kind, "--aggregator",
                                    str(timur))
        assert code == 0 and printed.encode() == expected.encode()
