"""News on WhatsApp: sent by the outbox dispatcher through the real aiohttp client to the
fake Graph API, within the 24-hour window or as templates outside it, with WhatsApp's
errors handled and its delivery statuses recorded forward only."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import insert

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.outbox import Notice
from tests.bot.channels.whatsapp_harness import WhatsAppBotUnderTest, running_whatsapp
from tests.bot.dispatch_harness import numbered_notice, queue, wait_settled
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.fakes.whatsapp_webhooks import status_update, text_message
from tests.lookups import outbox

BASE = 6281300000000
OWN_TEMPLATE = "gotong_request_cancelled"


pytestmark = pytest.mark.fake_api("whatsapp_api")


@pytest.fixture
def quick(config: Config) -> Config:
    """Rows written by the test are found at once, and retries come soon."""
    return replace(config, notifications=replace(
        config.notifications, poll_seconds=0.05, retry_base_seconds=0.05,
        retry_max_seconds=0.2))


async def whatsapp_contacts(services: Services, count: int, *,
                            wrote: timedelta | None = timedelta(minutes=5),
                            language: str = "id", first: int = 0) -> list[int]:
    """Contacts who last wrote `wrote` ago (None: never)."""
    now = utcnow()
    async with services.sessions() as session, session.begin():
        result = await session.execute(insert(Contact).returning(Contact.id), [
            {"channel": "whatsapp", "chat_id": str(BASE + first + i), "language": language,
             "created_at": now, "last_inbound_at": now - wrote if wrote else None}
            for i in range(count)])
        return list(result.scalars().all())


def number(index: int) -> str:
    return str(BASE + index)


async def settled(services: Services, bot: WhatsAppBotUnderTest) -> dict[str, int]:
    assert bot.dispatcher is not None
    bot.dispatcher.wake()
    return await wait_settled(services, within=20)


def verified(contact_id: int, number: int) -> Notice:
    """A notice of a kind that has no template of its own."""
    return replace(numbered_notice(contact_id, number), key="notice.request_verified")


async def test_news_within_the_window_is_sent_as_text_and_statuses_move_forward(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    [contact] = await whatsapp_contacts(services, 1)
    await queue(services, [numbered_notice(contact, 1), numbered_notice(contact, 2)])
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        assert await settled(services, bot) == {"sent": 2}
        texts = fake.texts(number(0))
        assert len(texts) == 2 and "GT-000001" in texts[0] and "GT-000002" in texts[1]
        first, second = await outbox(services)
        assert first.platform_message_id == fake.messages[0].id
        # Out of order, repeated, and a failure after delivery: only forward moves count.
        for status in ("read", "delivered", "sent", "read"):
            assert (await bot.post(status_update(number(0), fake.messages[0].id, status))
                    )[0] == 200
        await bot.post(status_update(number(0), fake.messages[0].id, "failed",
                                     errors=[131000]))
        await bot.post(status_update(number(0), fake.messages[1].id, "delivered"))
        # A status of a message we do not know changes nothing.
        await bot.post(status_update(number(0), "wamid.unknown", "read"))
        first, second = await outbox(services)
        assert (first.status, second.status) == ("read", "delivered")


async def test_a_failed_status_of_an_undeliverable_message_marks_the_contact(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    [contact] = await whatsapp_contacts(services, 1)
    await queue(services, [numbered_notice(contact, 1)])
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        assert await settled(services, bot) == {"sent": 1}
        await bot.post(status_update(number(0), fake.messages[0].id, "failed",
                                     errors=[131026]))
    [row] = await outbox(services)
    assert (row.status, row.last_error) == ("failed", "whatsapp error 131026")
    async with services.sessions() as session:
        found = await session.get(Contact, contact)
        assert found is not None and found.unreachable_at is not None


async def test_outside_the_window_news_goes_as_its_template_or_waits_for_the_person(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    fake.approved_templates = {(OWN_TEMPLATE, "id"), ("gotong_update", "id")}
    with_template, without = await whatsapp_contacts(services, 2, wrote=timedelta(days=2))
    [never] = await whatsapp_contacts(services, 1, wrote=None, first=2)
    # News of a kind with its own template, and of a kind without one.
    await queue(services, [numbered_notice(with_template, 1)])
    await queue(services, [verified(without, 2), verified(without, 3), verified(never, 4)])
    async with running_whatsapp(
            quick, services, fake, dispatch=True,
            templates=(f"notice.request_cancelled={OWN_TEMPLATE}",)) as bot:
        assert await settled(services, bot) == {"sent": 1, "held": 3}
        # Its own template carries the news itself, on one line.
        [own] = fake.sent_to(number(0))
        assert own.text == f"template:{OWN_TEMPLATE}"
        [parameter] = own.template_parameters()
        assert "GT-000001" in parameter and "\n" not in parameter
        # Without one: the generic template, once, and the news waits.
        assert fake.texts(number(1)) == ["template:gotong_update"]
        assert fake.texts(number(2)) == ["template:gotong_update"]
        assert fake.invalid_requests() == []

        # The person answers: their reply first, then the news that waited, in order.
        person = bot.person(number(1))
        await person.send(text_message(number(1), "halo"))
        assert await settled(services, bot) == {"sent": 4, "held": 1}
        texts = fake.texts(number(1))
        assert texts[0] == "template:gotong_update" and "Apa yang ingin Anda lakukan" in texts[1]
        assert "GT-000002" in texts[2] and "GT-000003" in texts[3]


async def test_a_refusal_for_the_window_falls_back_to_the_template(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    # We think the window is open; WhatsApp says it is not (the clocks disagree).
    [contact] = await whatsapp_contacts(services, 1, wrote=timedelta(hours=23))
    fake.outside_window.add(number(0))
    await queue(services, [numbered_notice(contact, 1)])
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        assert await settled(services, bot) == {"held": 1}
    assert fake.texts(number(0)) == ["template:gotong_update"]


@pytest.mark.parametrize(("code", "outcome"), [
    (130429, "sent"), (131056, "sent"), (80007, "sent"), (131000, "failed"),
    (131026, "failed"), (131048, "failed")])
async def test_graph_errors(quick: Config, services: Services, fake: FakeWhatsAppAPI,
                            code: int, outcome: str) -> None:
    contact, other = await whatsapp_contacts(services, 2)
    fake.fail_next(code, to=number(0))
    await queue(services, [numbered_notice(contact, 1), numbered_notice(contact, 2),
                           numbered_notice(other, 3)])
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        counts = await settled(services, bot)
    first, second, third = await outbox(services)
    assert first.status == outcome
    assert third.status == "sent"
    async with services.sessions() as session:
        found = await session.get(Contact, contact)
        assert found is not None
        unreachable = found.unreachable_at is not None
    if code == 131026:
        # The number is not on WhatsApp: nothing more goes to it.
        assert unreachable and second.status == "skipped"
        assert counts == {"failed": 1, "skipped": 1, "sent": 1}
    else:
        assert not unreachable and second.status == "sent"
    if outcome == "sent":
        assert first.attempts == 2  # retried after the limit
    elif code in (131000, 131048):
        # Refused for good: not tried again.
        assert first.attempts == 1 and str(code) in (first.last_error or "")


async def test_many_notices_keep_within_the_numbers_throughput(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    contacts = await whatsapp_contacts(services, 60)
    fake.enforce_rate_limit(20)
    await queue(services, [numbered_notice(c, i) for i, c in enumerate(contacts)])
    async with running_whatsapp(quick, services, fake, dispatch=True,
                                messages_per_second=20.0) as bot:
        assert await settled(services, bot) == {"sent": 60}
    assert fake.rate_limit_violations == 0
    for i in range(60):
        [text] = fake.texts(number(i))
        assert f"GT-{i:06d}" in text


async def test_a_late_refusal_for_the_window_sends_the_news_again_as_a_template(
        quick: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    """WhatsApp may accept a text and only later report it outside the window."""
    [contact] = await whatsapp_contacts(services, 1, wrote=timedelta(hours=23))
    await queue(services, [verified(contact, 1)])
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        assert await settled(services, bot) == {"sent": 1}
        [text] = fake.sent_to(number(0))
        await bot.post(status_update(number(0), text.id, "failed", errors=[131047]))
        assert await settled(services, bot) == {"held": 1}
    assert fake.texts(number(0))[1:] == ["template:gotong_update"]
    [row] = await outbox(services)
    assert (row.status, row.last_error) == (
        "held", "outside the 24-hour window: told there is news")
    async with services.sessions() as session:
        found = await session.get(Contact, contact)
        assert found is not None and found.last_inbound_at is None
