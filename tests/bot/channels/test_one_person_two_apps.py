"""One person on Telegram and WhatsApp: a household registered on Telegram writes from
WhatsApp with the same number; it is not registered twice, sees its request on both apps,
and hears its news on the app it used last (or the one configured)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.contact import Contact, get_or_create_contact
from gotong.models.help_request import HelpRequest, verify_request
from tests.bot.channels.telegram_harness import TelegramBotUnderTest
from tests.bot.channels.test_telegram_household import register_in_indonesian, telegram_config
from tests.bot.channels.whatsapp_harness import WhatsAppBotUnderTest, running_whatsapp
from tests.bot.dispatch_harness import wait_settled
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.lookups import audit_log, outbox

# The number the Telegram household shares in register_in_indonesian.
NUMBER = "6281234567890"
TELEGRAM_USER = 1001


@pytest.fixture
def fakes(telegram_api: FakeTelegramAPI, whatsapp_api: FakeWhatsAppAPI
          ) -> tuple[FakeTelegramAPI, FakeWhatsAppAPI]:
    return telegram_api, whatsapp_api


async def request_news(services: Services, bot: WhatsAppBotUnderTest) -> None:
    """Staff verify the household's request; wait until the news has gone out."""
    async with services.sessions() as session, session.begin():
        request = await session.scalar(select(HelpRequest))
        assert request is not None
        staff, _ = await get_or_create_contact(session, "telegram", "5005", "id", utcnow())
        await verify_request(session, request, staff.id, utcnow())
    assert bot.dispatcher is not None
    bot.dispatcher.wake()
    counts = await wait_settled(services)
    assert set(counts) == {"sent"}, counts
    # Verified again later in the test: back to submitted for the next news, once this
    # news went out (it is not sent once the request moved on).
    async with services.sessions() as session, session.begin():
        request = await session.scalar(select(HelpRequest))
        assert request is not None
        request.status = "submitted"


async def contacts(services: Services) -> list[Contact]:
    async with services.sessions() as session:
        return list((await session.scalars(select(Contact).order_by(Contact.id))).all())


@pytest.mark.parametrize("preference", ["last_used", "telegram"])
async def test_the_same_number_on_both_apps_is_one_person(
        config: Config, services: Services, fakes: tuple[FakeTelegramAPI, FakeWhatsAppAPI],
        preference: str) -> None:
    tg_fake, wa_fake = fakes
    config = telegram_config(replace(config, notifications=replace(
        config.notifications, poll_seconds=0.05, linked_delivery=preference)), tg_fake)
    telegram = TelegramChannel(config.telegram, services.conversations, services.sessions)
    await telegram.start()
    try:
        async with running_whatsapp(config, services, wa_fake, dispatch=True,
                                    telegram=telegram) as bot:
            on_telegram = TelegramBotUnderTest(tg_fake, telegram).person(TELEGRAM_USER)
            await register_in_indonesian(on_telegram)
            [reference] = [r.reference for r in await requests(services)]

            on_whatsapp = bot.person(NUMBER)
            await on_whatsapp.say("halo")
            telegram_contact, whatsapp_contact = (await contacts(services))[:2]
            assert whatsapp_contact.verified_phone == telegram_contact.verified_phone
            assert whatsapp_contact.person_id == telegram_contact.person_id \
                == telegram_contact.id
            # Not registered twice: the request made on Telegram is theirs here too.
            [already] = await on_whatsapp.tap("Minta bantuan")
            assert f"Anda sudah punya permintaan: {reference}" in already.text
            [status] = await on_whatsapp.say("/status")
            assert reference in status.text
            assert len(await requests(services)) == 1

            # WhatsApp was used last: the news goes there (unless Telegram is preferred).
            telegram_before = len(tg_fake.texts(TELEGRAM_USER))
            await request_news(services, bot)
            verified = "sudah diverifikasi"
            told_on_whatsapp = any(verified in t for t in wa_fake.texts(NUMBER))
            told_on_telegram = any(verified in t for t in
                                   tg_fake.texts(TELEGRAM_USER)[telegram_before:])
            assert (told_on_whatsapp, told_on_telegram) == (
                (True, False) if preference == "last_used" else (False, True))

            # Back on Telegram: now Telegram is the app they used last.
            await on_telegram.say("/status")
            whatsapp_before = len(wa_fake.texts(NUMBER))
            await request_news(services, bot)
            assert len(wa_fake.texts(NUMBER)) == whatsapp_before
            assert verified in tg_fake.texts(TELEGRAM_USER)[-1]
            assert wa_fake.invalid_requests() == []
        sent_to = {r.contact_id for r in await outbox(services, "notice.request_verified")}
        # The rows stay the request's; only the app that carried them changed.
        assert sent_to == {telegram_contact.id}
    finally:
        await telegram.stop()


async def requests(services: Services) -> list[HelpRequest]:
    async with services.sessions() as session:
        return list((await session.scalars(select(HelpRequest))).all())


async def test_a_different_number_is_another_person(
        config: Config, services: Services, fakes: tuple[FakeTelegramAPI, FakeWhatsAppAPI]
        ) -> None:
    tg_fake, wa_fake = fakes
    config = telegram_config(config, tg_fake)
    telegram = TelegramChannel(config.telegram, services.conversations, services.sessions)
    await telegram.start()
    try:
        async with running_whatsapp(config, services, wa_fake) as bot:
            await register_in_indonesian(
                TelegramBotUnderTest(tg_fake, telegram).person(TELEGRAM_USER))
            someone_else = bot.person("6289999999999")
            await someone_else.say("halo")
            [consent] = await someone_else.tap("Minta bantuan")
            assert "Apakah Anda setuju?" in consent.text
            answers = await someone_else.say("/status")
            assert answers and not any("GT-" in a.text for a in answers)
        assert [c.person_id for c in await contacts(services)] == [None, None]
    finally:
        await telegram.stop()


async def test_the_app_they_had_hears_of_the_link_and_can_undo_it(
        config: Config, services: Services, fakes: tuple[FakeTelegramAPI, FakeWhatsAppAPI],
        caplog: pytest.LogCaptureFixture) -> None:
    """Someone with the household's number (a SIM passed on) writes from WhatsApp: the
    household hears of it on Telegram, where they were, even though WhatsApp was used
    last. A button forged by the new contact, a stranger's tap or a wrong secret changes
    nothing; the household's own tap takes the WhatsApp contact apart for good, and the
    operator finds it in the audit log."""
    tg_fake, wa_fake = fakes
    config = telegram_config(replace(config, notifications=replace(
        config.notifications, poll_seconds=0.05)), tg_fake)
    telegram = TelegramChannel(config.telegram, services.conversations, services.sessions)
    await telegram.start()
    try:
        async with running_whatsapp(config, services, wa_fake, dispatch=True,
                                    telegram=telegram) as bot:
            harness = TelegramBotUnderTest(tg_fake, telegram)
            household = harness.person(TELEGRAM_USER)
            await register_in_indonesian(household)
            [reference] = [r.reference for r in await requests(services)]

            newcomer = bot.person(NUMBER)
            await newcomer.say("halo")
            assert bot.dispatcher is not None
            bot.dispatcher.wake()
            assert set(await wait_settled(services)) <= {"sent"}
            telegram_contact, whatsapp_contact = (await contacts(services))[:2]
            assert whatsapp_contact.person_id == telegram_contact.id
            notice = household.last_with_buttons()
            assert "Nomor Anda baru saja ditautkan ke WhatsApp" in notice.text
            assert not any("ditautkan" in t for t in wa_fake.texts(NUMBER))
            [(label, data)] = notice.buttons()
            assert label == "Ini bukan saya"
            context, _, option = data.partition("|")
            action, linked, token = option.split(":")
            assert (context, action, int(linked)) == ("ln", "undo", whatsapp_contact.id)

            # The newcomer forges the button (they know their own contact id, not the
            # secret), or replays the household's from WhatsApp; a stranger on Telegram
            # taps it; the household taps it with a wrong secret: nothing changes.
            for forged in (f"ln|undo:{whatsapp_contact.id}:guess",
                           f"ln|undo:{telegram_contact.id}:{token}", data):
                [refused] = await newcomer.tap_id(forged)
                assert "Tombol itu sudah tidak berlaku" in refused.text
            stranger = harness.person(2002)
            [refused] = await stranger.tap_data(data, notice)
            assert "Tombol itu sudah tidak berlaku" in refused.text
            [refused] = await household.tap_data(f"ln|undo:{whatsapp_contact.id}:{token}x",
                                                 notice)
            assert "Tombol itu sudah tidak berlaku" in refused.text
            assert [c.person_id for c in (await contacts(services))[:2]] == [
                telegram_contact.id, telegram_contact.id]

            with caplog.at_level("WARNING", logger="gotong.handlers.linking"):
                [done] = await household.tap("Ini bukan saya")
            assert "tidak lagi tertaut dengan Anda" in done.text
            assert f"contact {whatsapp_contact.id} taken apart" in caplog.text
            assert NUMBER not in caplog.text
            telegram_contact, whatsapp_contact = (await contacts(services))[:2]
            assert (telegram_contact.person_id, whatsapp_contact.person_id) == (None, None)
            assert whatsapp_contact.unlinked_at is not None
            # The WhatsApp contact goes on, on its own: the household's request is not
            # theirs, and writing again does not link it again.
            answers = await newcomer.say("/status")
            assert answers and not any(reference in a.text for a in answers)
            await newcomer.say("halo")
            assert [c.person_id for c in (await contacts(services))[:2]] == [None, None]
            # The household's Telegram still sees its request; a second tap does nothing.
            [status] = await household.say("/status")
            assert reference in status.text
            [again] = await household.tap_data(data, notice)
            assert "Tombol itu sudah tidak berlaku" in again.text
        log = await audit_log(services)
        assert ("phone_link", "done") in log and ("phone_unlink", "done") in log
        assert log.count(("phone_unlink", "refused")) == 6
    finally:
        await telegram.stop()
