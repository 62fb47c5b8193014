"""Scenarios of what people hear besides the answers to their messages: reminders,
opting out and in, taking a request back, and answers that could not be sent at once.
The real Telegram channel (polling the fake Bot API) runs with its dispatcher, as in
`gotong run`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.messages import Incoming, Kind
from gotong.models.base import utcnow
from gotong.models.help_request import HelpRequest, NewRequest, RequestEvent, submit_request
from gotong.models.inbound import InboundUpdate
from tests.bot.channels.telegram_harness import (
    Person,
    Running,
    TelegramBotUnderTest,
    running_telegram,
)
from tests.bot.dispatch_harness import (
    DispatchUnderTest,
    numbered_notice,
    queue,
    wait_settled,
)
from tests.fakes.telegram_api import FakeApiError, FakeTelegramAPI
from tests.lookups import count, outbox


class Clock:
    """The dispatcher's clock, which a test can move a day ahead."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def running(config: Config, services: Services, fake: FakeTelegramAPI, clock: Clock
                  ) -> AsyncIterator[Running]:
    async with running_telegram(config, services, fake, clock=clock, poll_seconds=0.1,
                                lease_seconds=1.0, retry_base_seconds=0.1,
                                retry_max_seconds=0.2) as running:
        yield running


@pytest.fixture
def dispatch(running: Running) -> DispatchUnderTest:
    return running.dispatch


async def start_registration(person: Person) -> None:
    await person.say("/start")
    await person.tap("Minta bantuan")
    await person.tap("Ya, saya setuju")
    assert "nama lengkap kepala keluarga" in person.last.text


async def a_day_later(services: Services, dispatch: DispatchUnderTest, clock: Clock,
                      hours: float = 25) -> None:
    await wait_settled(services)
    clock.offset += timedelta(hours=hours)
    await dispatch.dispatcher.queue_reminders()
    await wait_settled(services)


# --- reminders --------------------------------------------------------------------


async def test_an_unfinished_registration_gets_one_reminder(
        bot: TelegramBotUnderTest, dispatch: DispatchUnderTest, services: Services,
        clock: Clock) -> None:
    person = bot.person(7001)
    await start_registration(person)
    before = len(person.messages)
    await a_day_later(services, dispatch, clock, hours=23)
    assert len(person.messages) == before  # not yet
    await a_day_later(services, dispatch, clock, hours=2)
    [reminder] = person.messages[before:]
    assert "Anda sudah mulai \"Minta bantuan\" tetapi belum selesai" in reminder.text
    assert "/berhenti" in reminder.text
    # Its button takes the person back to the question they left.
    await person.tap("Lanjutkan")
    assert "nama lengkap kepala keluarga" in person.last.text
    # Answering one more question and leaving again brings no second reminder.
    await person.say("Siti Aminah")
    count = len(person.messages)
    await a_day_later(services, dispatch, clock, hours=50)
    assert len(person.messages) == count
    reminders = await outbox(services, "notice.dialog_unfinished")
    assert [(r.status, r.essential) for r in reminders] == [("sent", False)]


async def test_a_finished_registration_is_not_reminded(
        bot: TelegramBotUnderTest, dispatch: DispatchUnderTest, services: Services,
        clock: Clock) -> None:
    person = bot.person(7002)
    await person.say("/start")
    count = len(person.messages)
    await a_day_later(services, dispatch, clock, hours=48)
    assert len(person.messages) == count


async def test_a_new_registration_after_a_cancelled_one_can_be_reminded_again(
        bot: TelegramBotUnderTest, dispatch: DispatchUnderTest, services: Services,
        clock: Clock) -> None:
    person = bot.person(7003)
    await start_registration(person)
    await a_day_later(services, dispatch, clock)
    assert "belum selesai" in person.last.text
    await person.say("/batal")
    await person.tap("Minta bantuan")
    await person.tap("Ya, saya setuju")
    count = len(person.messages)
    await a_day_later(services, dispatch, clock)
    await bot.fake.wait_for_messages(person.user.id, count + 1)
    assert "belum selesai" in person.last.text


# --- opting out ---------------------------------------------------------------------


async def test_stop_ends_reminders_but_not_news_of_ones_own_request(
        bot: TelegramBotUnderTest, dispatch: DispatchUnderTest, services: Services,
        clock: Clock) -> None:
    person = bot.person(7010)
    await start_registration(person)
    replies = await person.say("/berhenti")
    assert "tidak akan menerima pengingat atau pengumuman lagi" in replies[0].text
    assert "Kabar tentang permintaan Anda sendiri tetap dikirim" in replies[0].text
    # The dialog goes on where it was.
    assert "nama lengkap kepala keluarga" in replies[-1].text
    count = len(person.messages)
    await a_day_later(services, dispatch, clock)
    assert len(person.messages) == count
    # News of their own aid is essential and still arrives.
    contact_id = await _contact_id(services, person)
    await queue(services, [numbered_notice(contact_id, 1)])
    dispatch.dispatcher.wake()
    await bot.fake.wait_for_messages(person.user.id, count + 1)
    assert "GT-000001" in person.last.text
    # /mulai means start, and says how to receive reminders again; /terima_kabar does.
    replies = await person.say("/mulai")
    assert "Ketik /terima_kabar untuk menerimanya lagi" in replies[0].text
    assert "nama lengkap kepala keluarga" in replies[0].text
    replies = await person.say("/terima_kabar")
    assert "Anda akan menerima pengingat dan pengumuman lagi" in replies[0].text
    # Answered in place, the dialog kept.
    assert "nama lengkap kepala keluarga" in replies[-1].text


async def test_stop_twice_and_resume_without_stop_are_harmless(
        bot: TelegramBotUnderTest) -> None:
    person = bot.person(7011, language="en")
    await person.say("/stop")
    replies = await person.say("/stop")
    assert "no more reminders or announcements" in replies[0].text
    replies = await person.say("/start")
    assert "Hello! I am Gotong" in replies[0].text
    assert "Type /resume to receive them again" in replies[0].text
    replies = await person.say("/resume")
    assert "receive reminders and announcements again" in replies[0].text
    replies = await person.say("/resume")
    assert "You already receive reminders and announcements" in replies[0].text
    replies = await person.say("/start")
    assert "/resume" not in replies[0].text and "Hello! I am Gotong" in replies[0].text


# --- taking a request back ---------------------------------------------------------


async def submitted_request(services: Services, contact_id: int) -> HelpRequest:
    areas = services.areas
    village = areas.children(areas.children(areas.regencies()[0].id)[0].id)[0]
    new = NewRequest(head_name="Siti Aminah", phone="+6281234567890", nik=None,
                     village_id=village.id, street="Jl. Melati 5", rt="3", rw="5",
                     household_size=4, vulnerabilities=["elderly"], needs=["food"],
                     needs_other=None)
    async with services.sessions() as session, session.begin():
        request, notices = await submit_request(session, contact_id, new, now=utcnow(),
                                                duplicate_window=timedelta(days=90))
    assert [n.key for n in notices] == ["notice.request_submitted"]
    return request


async def _contact_id(services: Services, person: Person) -> int:
    handled = await services.conversations.handle_update(Incoming(
        channel="telegram", chat_id=str(person.user.id), kind=Kind.OTHER))
    return handled.contact_id


async def test_a_household_cancels_its_request_from_status(
        bot: TelegramBotUnderTest, services: Services) -> None:
    person = bot.person(7020)
    await person.say("/start")
    request = await submitted_request(services, await _contact_id(services, person))
    replies = await person.say("/status")
    assert f"{request.reference}: menunggu verifikasi" in replies[0].text
    await person.tap(f"Batalkan permintaan {request.reference}")
    assert f"membatalkan permintaan {request.reference}?" in person.last.text
    replies = await person.tap("Ya, batalkan")
    assert f"Permintaan Anda {request.reference} sudah dibatalkan" in replies[0].text
    async with services.sessions() as session:
        stored = await session.get(HelpRequest, request.id)
        events = (await session.scalars(select(RequestEvent.status)
                                        .where(RequestEvent.request_id == request.id))).all()
    assert stored is not None and stored.status == "cancelled"
    assert list(events) == ["submitted", "cancelled"]
    replies = await person.say("/status")
    assert "dibatalkan" in replies[0].text and not replies[0].buttons()
    replies = await person.say("/batalkan_permintaan")
    assert "tidak punya permintaan yang masih bisa dibatalkan" in replies[0].text


async def test_cancelling_can_be_typed_and_declined(
        bot: TelegramBotUnderTest, services: Services) -> None:
    person = bot.person(7021, language="en")
    await person.say("/start")
    request = await submitted_request(services, await _contact_id(services, person))
    replies = await person.say("/cancel_request")
    assert f"cancel your request {request.reference}?" in replies[0].text
    replies = await person.say("2")
    assert "Your request stays as it is." in replies[0].text
    await person.say("/cancel_request")
    replies = await person.say("yes, cancel it")
    assert f"Your request {request.reference} is cancelled" in replies[0].text


async def test_a_forged_cancel_button_changes_nothing(
        bot: TelegramBotUnderTest, services: Services) -> None:
    mine, theirs = bot.person(7022), bot.person(7023)
    await mine.say("/start")
    await theirs.say("/start")
    their_request = await submitted_request(services, await _contact_id(services, theirs))
    await submitted_request(services, await _contact_id(services, mine))
    await mine.say("/status")
    # Someone else's reference, in both the status button and the confirmation.
    replies = await mine.tap_data(f"req|cancel:{their_request.reference}")
    assert "tidak punya permintaan yang masih bisa dibatalkan" in replies[0].text
    replies = await mine.tap_data(f"reqc|yes:{their_request.reference}")
    assert "Tombol itu untuk pertanyaan sebelumnya" in replies[0].text
    # Even while their own confirmation is open.
    await mine.say("/batalkan_permintaan")
    replies = await mine.tap_data(f"reqc|yes:{their_request.reference}")
    assert "Tombol itu untuk pertanyaan sebelumnya" in replies[0].text
    async with services.sessions() as session:
        statuses = (await session.scalars(select(HelpRequest.status))).all()
    assert sorted(statuses) == ["submitted", "submitted"]


# --- answers that could not be sent at once --------------------------------------


async def test_a_reply_that_failed_to_send_is_sent_by_the_dispatcher(
        bot: TelegramBotUnderTest, services: Services) -> None:
    person = bot.person(7030)
    bot.fake.fail_next("sendMessage", error_code=502, description="Bad Gateway",
                       chat_id=person.user.id)
    await bot.push(bot.factory.text(person.user, "/start"))
    [welcome] = await bot.fake.wait_for_messages(person.user.id, 1)
    assert "Halo! Saya Gotong" in welcome.text
    assert (await wait_settled(services)) == {"sent": 1}


async def test_a_reply_whose_process_died_before_sending_is_sent_after_its_lease(
        bot: TelegramBotUnderTest, dispatch: DispatchUnderTest, services: Services,
        clock: Clock) -> None:
    # The unit of work commits, and the process dies before it sends the answer.
    handled = await services.conversations.handle_update(
        Incoming(channel="telegram", chat_id="7031", kind=Kind.COMMAND, command="start",
                 text="/start", language_hint="en", external_id="died-1"),
        keep_reply=True)
    assert handled.reply_id is not None
    dispatch.dispatcher.wake()
    await asyncio.sleep(0.3)
    assert bot.fake.messages(7031) == []  # still this (dead) process's to send
    clock.offset += services.config.notifications.lease_seconds * timedelta(seconds=1.01)
    dispatch.dispatcher.wake()
    [welcome] = await bot.fake.wait_for_messages(7031, 1)
    assert "Hello! I am Gotong" in welcome.text
    assert (await wait_settled(services)) == {"sent": 1}


async def test_a_reply_refused_with_429_is_sent_after_the_wait(
        bot: TelegramBotUnderTest, services: Services) -> None:
    person = bot.person(7032)
    bot.fake.fail_next("sendMessage", error_code=429, description="Too Many Requests",
                       retry_after=1, chat_id=person.user.id)
    await bot.push(bot.factory.text(person.user, "/start"))
    [welcome] = await bot.fake.wait_for_messages(person.user.id, 1)
    assert "Halo! Saya Gotong" in welcome.text
    sends = [t for (method, params), t in zip(bot.fake.calls, bot.fake.call_times, strict=True)
             if method == "sendMessage" and params.get("chat_id") == person.user.id]
    assert len(sends) == 2 and sends[1] - sends[0] >= 1.0
    assert (await wait_settled(services)) == {"sent": 1}


async def test_what_was_said_is_cleared_once_sent_and_rows_are_forgotten_later(
        bot: TelegramBotUnderTest, dispatch: DispatchUnderTest, services: Services,
        clock: Clock) -> None:
    person = bot.person(7033)
    await person.say("/start")
    await person.say("Siti Aminah, Jl. Melati 5")  # not understood: the menu again
    assert await wait_settled(services) == {"sent": 2}
    assert [r.body for r in await outbox(services)] == [None, None]
    assert await count(services, InboundUpdate) == 2
    # A pending row is kept however old it is; settled ones go after keep_days, and the
    # updates answered after inbound.keep_days.
    clock.offset += timedelta(days=31)
    dispatch.dispatcher.wake()
    async with asyncio.timeout(5):
        while True:
            if not await outbox(services) and not await count(services, InboundUpdate):
                break
            await asyncio.sleep(0.05)


async def test_a_retried_reply_sends_only_the_messages_that_did_not_go_out(
        bot: TelegramBotUnderTest, services: Services) -> None:
    person = bot.person(7034)
    await person.say("/start")
    # /help answers with two messages; the second one fails once.
    send = bot.fake._methods["sendmessage"]
    calls = 0

    async def second_fails(params: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise FakeApiError(502, "Bad Gateway")
        return await send(params)

    bot.fake.add_method("sendMessage", second_fails)
    before = len(person.messages)
    await bot.push(bot.factory.text(person.user, "/bantuan"))
    await bot.fake.wait_for_messages(person.user.id, before + 2)
    assert await wait_settled(services) == {"sent": 2}
    help_text, menu = person.messages[before:]
    assert "Perintah:" in help_text.text and "Apa yang ingin Anda lakukan?" in menu.text
    row = (await outbox(services))[-1]
    assert (row.attempts, row.parts_sent) == (2, 2)
