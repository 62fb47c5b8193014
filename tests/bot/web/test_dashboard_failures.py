"""Messages that did not reach people, end to end: WhatsApp refuses news for a household
known by its username alone (131062); the household's aggregator's staff, and no other,
see it on the dashboard and hear of it in a chat digest; once the household writes again
a staff member sends it again, and it arrives. `gotong outbox` counts what is left."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
from sqlalchemy import update

from gotong.bot.cli.main import print_outbox
from gotong.bot.config import Config
from gotong.models.aggregator import InviteRole, create_invite
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from tests.bot.channels.whatsapp_harness import WaPerson, WhatsAppBotUnderTest, running_whatsapp
from tests.bot.dispatch_harness import wait_settled
from tests.bot.web.test_dashboard import LINK, SELATAN, TIMUR, Browser, Site, audit_entries
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.lookups import outbox

pytestmark = pytest.mark.fake_api("whatsapp_api")

USERNAME_ONLY = "ID.13491208655302741918"
SELATAN_HOUSEHOLD = "6281277770001"
STAFF_TIMUR, STAFF_SELATAN = "6281300000001", "6281300000002"
ROW = re.compile(r'<tr id="failure-(\d+)">')


async def household_on_whatsapp(site: Site, kota: str, chat_id: str, *, user_id: bool,
                                wrote: timedelta) -> tuple[int, str]:
    """A household of the kota whose request waits for verification, on WhatsApp at
    `chat_id` (a user id, or a number), who last wrote `wrote` ago: request id and
    reference."""
    request_id = await site.world.household(site.world.village(kota), verified=False)
    async with site.services.sessions() as session, session.begin():
        request = await session.get(HelpRequest, request_id)
        assert request is not None
        await session.execute(update(Contact).where(Contact.id == request.contact_id).values(
            channel="whatsapp", chat_id=chat_id,
            platform_user_id=chat_id if user_id else None,
            last_inbound_at=utcnow() - wrote))
        return request_id, request.reference


async def staff_on_whatsapp(site: Site, bot: WhatsAppBotUnderTest, aggregator: int,
                            number: str) -> tuple[WaPerson, Browser]:
    """A staff member who joined and asked for the dashboard on WhatsApp, signed in."""
    async with site.services.sessions() as session, session.begin():
        code = await create_invite(session, aggregator, InviteRole.STAFF, 1,
                                   site.world.now + timedelta(days=1), site.world.now)
    person = bot.person(number, "Budi")
    await person.say(f"/join {code}")
    await person.say("/dashboard")
    match = LINK.search(person.last.text)
    assert match is not None, person.texts()
    browser = site.browser()
    status, _, response = await browser.post(f"/dashboard/signin/{match.group(1)}", {})
    assert status == 303
    browser.cookie = SimpleCookie(response.headers["Set-Cookie"])["gotong_session"].value
    return person, browser


async def rows_shown(browser: Browser) -> tuple[str, list[int]]:
    status, page, _ = await browser.get("/dashboard/failures")
    assert status == 200
    return page, [int(i) for i in ROW.findall(page)]


async def test_news_refused_for_a_username_reaches_only_its_aggregators_staff_and_is_sent_again(
        site: Site, config: Config, fake: FakeWhatsAppAPI,
        capsys: pytest.CaptureFixture[str]) -> None:
    services, world = site.services, site.world
    timur, selatan = await world.aggregator(TIMUR), await world.aggregator(SELATAN)
    own, reference = await household_on_whatsapp(site, TIMUR, USERNAME_ONLY, user_id=True,
                                                 wrote=timedelta(days=2))
    other, other_reference = await household_on_whatsapp(
        site, SELATAN, SELATAN_HOUSEHOLD, user_id=False, wrote=timedelta(minutes=5))
    # Outside the 24 hours the news goes as the generic template, which WhatsApp will not
    # send to a user id; the other household's number is not on WhatsApp any more.
    fake.templates_not_for_user_ids = {"gotong_update"}
    fake.fail_next(131026, to=SELATAN_HOUSEHOLD)
    quick = replace(config, notifications=replace(
        config.notifications, poll_seconds=0.05, retry_base_seconds=0.05,
        retry_max_seconds=0.2))
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        assert bot.dispatcher is not None
        timur_staff, timur_browser = await staff_on_whatsapp(site, bot, timur, STAFF_TIMUR)
        selatan_staff, selatan_browser = await staff_on_whatsapp(site, bot, selatan,
                                                                 STAFF_SELATAN)
        for browser, request_id in ((timur_browser, own), (selatan_browser, other)):
            status, _ = await browser.form(f"/dashboard/requests/{request_id}/verify", {})
            assert status == 200
        bot.dispatcher.wake()
        await wait_settled(services, within=20)
        [refused] = [r for r in await outbox(services, "notice.request_verified")
                     if r.status == "failed" and "131062" in (r.last_error or "")]
        assert refused.failure == "not_for_username"

        # Each aggregator's staff see their own household, and not the other's.
        page, rows = await rows_shown(timur_browser)
        assert rows == [refused.id]
        assert reference in page and other_reference not in page
        assert "Household" in page and "WhatsApp" in page
        assert "hides their number behind a username" in page
        assert USERNAME_ONLY not in page and f'id="retry-{refused.id}"' not in page
        page, rows = await rows_shown(selatan_browser)
        assert reference not in page and other_reference in page and len(rows) == 1
        assert "blocked the bot or is not on the app" in page
        assert SELATAN_HOUSEHOLD not in page and 'id="retry-' not in page

        # Their staff hear of it in chat, with the number of households and no more;
        # once per digest interval.
        assert await bot.dispatcher.queue_digests() == 2
        assert await bot.dispatcher.queue_digests() == 0
        bot.dispatcher.wake()
        await wait_settled(services, within=20)
        for staff in (timur_staff, selatan_staff):
            [digest] = [m for m in staff.messages if "tidak dapat sampai" in m.text]
            assert "1 rumah tangga" in digest.text and "/dasbor" in digest.text
            assert reference not in digest.text and other_reference not in digest.text

        # A new try is refused without the form's token, and for another aggregator's
        # row, and changes nothing.
        household = bot.person(None, user_id=USERNAME_ONLY)
        await household.say("halo")
        page, _ = await rows_shown(timur_browser)
        assert f'id="retry-{refused.id}"' in page
        path = f"/dashboard/failures/{refused.id}/retry"
        status, _, _ = await timur_browser.post(path, {})
        assert status == 403
        status, _, _ = await selatan_browser.post(path, {"csrf": await selatan_browser.csrf()})
        assert status == 404
        [still] = await outbox(services, "notice.request_verified", refused.contact_id)
        assert still.status == "failed"
        # Their own staff send it again: it is queued, and now arrives as text.
        status, page = await timur_browser.form(path, {}, "/dashboard/failures")
        assert status == 200 and "will be sent again" in page
        bot.dispatcher.wake()
        await wait_settled(services, within=20)
        [sent] = await outbox(services, "notice.request_verified", refused.contact_id)
        assert sent.status == "sent" and sent.failure is None
        assert any(reference in m.text and m.type == "text" for m in household.messages)
        _, rows = await rows_shown(timur_browser)
        assert rows == []
    audited = [a for a in await audit_entries(services) if a[0] == "retry_message"]
    assert audited == [("retry_message", "not their aggregator", "[dashboard]"),
                       ("retry_message", "done", f"#{refused.id} [dashboard]")]

    await print_outbox(quick)
    printed = capsys.readouterr().out
    assert "not reached, by reason: unreachable 1\n" in printed
    assert f"  aggregator #{timur} Posko {TIMUR}: none\n" in printed
    assert f"  aggregator #{selatan} Posko {SELATAN}: unreachable 1\n" in printed
    assert "waiting over 30 minutes: 0 queued, 0 held for the person to write" in printed
    assert SELATAN_HOUSEHOLD not in printed and USERNAME_ONLY not in printed
