"""The staff dashboard in headless Chromium: signing in with the one-time link chat gives,
verifying, receiving and allocating, and the playground's phone screens hearing of it; and
what a browser cannot do: use a link twice or late, or reach another aggregator's data."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from gotong.models.aggregator import InviteRole, Posko, create_aggregator, create_invite
from gotong.models.area import AreaLevel
from gotong.models.base import utcnow
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge, PledgeStatus
from gotong.models.request_status import RequestStatus
from tests.browser.conftest import screenshot_path
from tests.browser.dialogs import ask_for_help, found, pledge
from tests.browser.screens import WAIT_MS, Screen
from tests.browser.site import Site, demo_staff_link
from tests.chat import Chat

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

LINK = re.compile(r"http://127\.0\.0\.1:\d+/dashboard/signin/[A-Za-z0-9_-]+")


async def new_tab(page: Page) -> Page:
    tab = await page.context.new_page()
    tab.set_default_timeout(WAIT_MS)
    return tab


async def sign_in(tab: Page, link: str) -> None:
    await tab.goto(link)
    await tab.locator("#signin").click()
    await expect(tab).to_have_url(re.compile(r"/dashboard$"))


async def test_staff_sign_in_verify_receive_and_allocate_and_the_household_hears(
        page: Page, site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gotong")
    household, donor, staff = (Screen(page, name) for name in ("household", "donor", "staff"))
    reference = await ask_for_help(household)
    code = await pledge(donor)

    # Chat gives the staff member a link; opening it alone does not use it up.
    await staff.say("/dasbor")
    link = found(LINK, await staff.last_text())
    dashboard = await new_tab(page)
    await dashboard.goto(link)
    await dashboard.goto(link)
    await sign_in(dashboard, link)

    # The queue shows the request; verifying it tells the household on its screen.
    row = dashboard.locator(f"tr#request-{reference}")
    await expect(row).to_contain_text("Karet Semanggi")
    await dashboard.set_viewport_size({"width": 1280, "height": 720})
    await dashboard.screenshot(path=screenshot_path("dashboard"), full_page=True)
    await dashboard.locator(f"#verify-{reference}").click()
    await expect(dashboard.locator("#flash")).to_contain_text(reference)
    await household.expect_text(f"permintaan Anda {reference} sudah diverifikasi")

    # The pledge arrives: staff count it in, and the donor hears it.
    await dashboard.goto(f"{site.url}/dashboard/pledges")
    await dashboard.locator("input[id^=quantity-]").first.fill("1")
    await dashboard.locator(f"#receive-{code}").click()
    await expect(dashboard.locator("#flash")).to_contain_text(code)
    await donor.expect_text(f"Your pledge {code} has been received: 1 counted")

    # Someone watches the public page: nothing is on its way yet.
    public = await new_tab(page)
    await public.goto(f"{site.url}/public?lang=en")
    on_its_way = public.locator('.headline [data-figure="households_in_delivery"]')
    await expect(on_its_way).to_have_text("0")

    # Staff allocate by priority; the household hears that aid is set aside.
    await dashboard.goto(f"{site.url}/dashboard/allocate")
    await dashboard.locator("#per").fill("1")
    await dashboard.locator("#propose").click()
    await expect(dashboard.locator(f"tr#proposed-{reference}")).to_be_visible()
    await dashboard.locator("#allocate").click()
    await expect(dashboard.locator("#flash")).to_be_visible()
    await household.expect_text(f"Bantuan sudah disiapkan untuk keluarga Anda ({reference})")
    # The public page shows it without being reloaded, and names nobody: one household
    # reads "fewer than 5".
    await expect(on_its_way).to_have_text("fewer than 5", timeout=WAIT_MS)
    public_text = await public.locator("main").inner_text()
    assert reference not in public_text and "Sari Contoh" not in public_text
    await public.screenshot(path=screenshot_path("public"), full_page=True)

    # The deliveries board and the statistics show it, without the household's name.
    await dashboard.goto(f"{site.url}/dashboard/deliveries")
    await expect(dashboard.locator("main")).to_contain_text(reference)
    await dashboard.goto(f"{site.url}/dashboard/stats")
    await expect(dashboard.locator("svg[role=img]").first).to_be_visible()
    assert "Sari Contoh" not in await dashboard.locator("main").inner_text()
    await dashboard.screenshot(path=screenshot_path("dashboard-stats"), full_page=True)

    # What the server logged of all this names nobody and holds no token (references
    # are logged by design: they identify no one without the database).
    logged = caplog.text.lower()
    assert caplog.records, "nothing was logged at all; the check would prove nothing"
    token = link.rsplit("/", 1)[1].lower()
    for secret in ("sari", "budi contoh", "jl. contoh no. 7", "81200000001",
                   "81200000002", token):
        assert secret not in logged, secret


async def staff_of_another_aggregator(site: Site) -> str:
    """Staff of another aggregator, of Jakarta Utara, join in chat and ask for a dashboard
    link; the link."""
    services, now = site.services, utcnow()
    async with services.sessions() as session, session.begin():
        [kota] = services.areas.named(AreaLevel.REGENCY, "Jakarta Utara")
        other = await create_aggregator(session, "Posko Lain (demo)",
                                        Posko("Jl. Lain 2", "08-16"), [kota.id], now)
        invite = await create_invite(session, other.id, InviteRole.STAFF, 1,
                                     now + timedelta(hours=1), now)
    chat = Chat(services.conversations, chat_id="other-staff", language="en")
    await chat.say(f"/join {invite}")
    await chat.say("/dashboard")
    return found(LINK, chat.last.text)


async def test_another_aggregator_cannot_see_or_act_and_links_work_once_and_in_time(
        browser: Browser, page: Page, site: Site) -> None:
    household, donor = Screen(page, "household"), Screen(page, "donor")
    reference = await ask_for_help(household)
    code = await pledge(donor)
    async with site.services.sessions() as session:
        request_id = await session.scalar(
            select(HelpRequest.id).where(HelpRequest.reference == reference))
        pledge_id = await session.scalar(select(Pledge.id).where(Pledge.code == code))
    assert request_id is not None and pledge_id is not None

    # Staff of another aggregator sign in: the demo posko's request and pledge are not
    # theirs to see or to act on.
    link = await staff_of_another_aggregator(site)
    other = await browser.new_context()
    tab = await other.new_page()
    tab.set_default_timeout(WAIT_MS)
    await sign_in(tab, link)
    await expect(tab.locator("main")).not_to_contain_text(reference)
    csrf = await tab.locator("input[name=csrf]").first.input_value()
    for path in (f"/dashboard/requests/{request_id}", f"/dashboard/pledges/{pledge_id}"):
        shown = await tab.goto(f"{site.url}{path}")
        assert shown is not None and shown.status == 404, path
        assert reference not in await tab.content() and code not in await tab.content()
    for path, form in ((f"/dashboard/requests/{request_id}/verify", {}),
                       (f"/dashboard/pledges/{pledge_id}/receive", {"quantity": "1"})):
        acted = await tab.request.post(f"{site.url}{path}", form={"csrf": csrf, **form},
                                       headers={"Origin": site.url})
        assert acted.status == 404, path
    exported = await tab.request.get(f"{site.url}/dashboard/export/requests.csv")
    assert exported.status == 200 and reference not in await exported.text()
    async with site.services.sessions() as session:
        request = await session.get(HelpRequest, request_id)
        assert request is not None and request.status == RequestStatus.SUBMITTED
        received = await session.get(Pledge, pledge_id)
        assert received is not None and received.status == PledgeStatus.PLEDGED

    # A link used once is refused the second time, on opening and on signing in.
    refused = await tab.goto(link)
    assert refused is not None and refused.status == 403
    await expect(tab.locator("#signin")).to_have_count(0)
    answer = await tab.request.post(link)
    assert answer.status == 403

    # A link older than its minutes is refused.
    late = await demo_staff_link(site, utcnow() - timedelta(minutes=11))
    expired = await tab.goto(late)
    assert expired is not None and expired.status == 403
    await other.close()
