"""Scenario tests: people register their households through the real python-telegram-bot
talking HTTP to the fake Bot API, in polling and in webhook mode."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gotong.bot.channels.delivery import split_text
from gotong.bot.channels.telegram import MAX_TEXT, SECRET_HEADER, TelegramChannel
from gotong.bot.config import Config
from gotong.bot.services import Services, open_services
from gotong.bot.web.app import create_web_app
from gotong.handlers.catalog import Catalog
from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from gotong.models.inbound import InboundUpdate
from tests.bot.channels.telegram_harness import Person, TelegramBotUnderTest
from tests.fakes.telegram_api import FakeTelegramAPI, post_webhook
from tests.fakes.telegram_updates import TgUser, UpdateFactory
from tests.lookups import count

WEBHOOK_SECRET = "s3cret_token-for-tests"
WEBHOOK_URL = "https://gotong.example.org/telegram/webhook"


def telegram_config(config: Config, fake: FakeTelegramAPI, **changes: object) -> Config:
    return replace(config, telegram=replace(
        config.telegram, token=fake.token, api_base_url=fake.base_url,
        api_file_url=fake.base_file_url, **changes))


async def start_bot(config: Config, services: Services, fake: FakeTelegramAPI
                    ) -> TelegramBotUnderTest:
    channel = TelegramChannel(telegram_config(config, fake).telegram, services.conversations,
                              services.sessions)
    await channel.start()
    return TelegramBotUnderTest(fake, channel)


@pytest.fixture
async def bot(config: Config, services: Services, fake: FakeTelegramAPI
              ) -> AsyncIterator[TelegramBotUnderTest]:
    bot = await start_bot(config, services, fake)
    try:
        yield bot
    finally:
        await bot.channel.stop()


async def register_in_indonesian(person: Person) -> None:
    replies = await person.say("/start")
    assert "Halo! Saya Gotong" in replies[0].text
    assert [t for t, _ in replies[0].buttons()] == [
        "1. Minta bantuan", "2. Donasi", "3. Jadi relawan", "4. Status saya", "5. Bahasa",
        "6. Bantuan", "7. Hubungi petugas"]
    await person.tap("Minta bantuan")
    assert "Apakah Anda setuju?" in person.last.text
    await person.tap("Ya, saya setuju")
    assert "nama lengkap kepala keluarga" in person.last.text
    await person.say("Siti Aminah")
    assert person.last.reply_keyboard() == [{"text": "📱 Kirim nomor saya",
                                             "request_contact": True}]
    replies = await person.share_contact("+62 812-3456-7890")
    assert replies[0].reply_markup == {"remove_keyboard": True}
    assert "NIK" in person.last.text
    await person.tap("Lewati")
    await person.tap("Jakarta Selatan")
    assert "Kecamatan mana di Kota Jakarta Selatan?" in person.last.text
    await person.tap("Berikutnya")
    assert person.last.edits >= 1 and "(halaman 2 dari 2)" in person.last.text
    await person.tap("Setia Budi")
    await person.tap("Karet Semanggi")
    await person.say("Jl. Melati No. 5 RT 03 RW 05")
    await person.say("5")
    await person.tap("Lansia")
    assert any(t.startswith("✅") and "Lansia" in t for t, _ in person.last.buttons())
    await person.tap("Selesai")
    await person.say("1, 3")
    assert "Mohon periksa pendaftaran Anda" in person.last.text
    await person.tap("Kirim")


async def test_full_registration_in_indonesian(bot: TelegramBotUnderTest,
                                                services: Services) -> None:
    person = bot.person(1001, language="id")
    await register_in_indonesian(person)
    assert re.search(r"Nomor referensi: GT-[2-9A-Z]{5}", person.last.text)
    assert "Status: menunggu verifikasi" in person.last.text
    async with services.sessions() as session:
        request = await session.scalar(select(HelpRequest))
        contact = await session.scalar(select(Contact))
    assert request is not None and contact is not None
    assert request.phone == "+6281234567890" and request.needs == ["food", "medicine"]
    assert contact.verified_phone == "+6281234567890" and contact.language == "id"
    # Every button tap was answered.
    assert len(bot.fake.callback_answers) == len(bot.fake.calls_to("answerCallbackQuery")) > 5


async def test_full_registration_in_english(bot: TelegramBotUnderTest,
                                             services: Services) -> None:
    person = bot.person(1002, language="en", first_name="John")
    replies = await person.say("hello")
    assert "Hello! I am Gotong" in replies[0].text
    await person.say("1")
    await person.tap("Yes, I agree")
    await person.say("John Doe")
    await person.say("0857-1111-2222")
    await person.say("3171234508900001")
    await person.say("Gambir")
    assert "street address" in person.last.text
    await person.say("Jl. Kebon Jeruk 3 03/05")
    await person.say("2")
    await person.tap("None of these")
    await person.tap("Done")
    await person.tap("Other")
    await person.tap("Done")
    await person.say("Wheelchair")
    summary = person.last.text
    assert "Please check your registration" in summary
    assert "************0001" in summary and "3171234508900001" not in summary
    await person.tap("Submit")
    assert "Your request is registered" in person.last.text
    await person.say("/status")
    assert "waiting for verification" in person.last.text


async def test_command_menus_are_set_per_language(bot: TelegramBotUnderTest) -> None:
    commands = bot.fake.commands
    assert [c["command"] for c in commands[("default", "id")]][:4] == ["menu", "minta",
                                                                         "donasi", "status"]
    assert [c["command"] for c in commands[("default", "en")]][:4] == ["menu", "request",
                                                                         "donate", "status"]
    assert ("default", "") in commands


async def test_validation_failures_and_other_message_types(bot: TelegramBotUnderTest) -> None:
    person = bot.person(1003, language="en")
    await person.say("/start")
    await person.tap("Request help")
    await person.tap("Yes, I agree")
    factory = bot.factory
    for update, hint in ((factory.sticker(person.user), "Nice sticker"),
                         (factory.photo(person.user), "cannot read photos"),
                         (factory.voice(person.user), "voice messages"),
                         (factory.location(person.user, -6.2, 106.8), "cannot use a location"),
                         (factory.document(person.user), "that kind of message")):
        replies = await person.send(update)
        assert hint in replies[0].text and "full name" in replies[0].text
    await person.say("R2D2")
    assert "no numbers" in person.last.text
    await person.say("Siti Aminah")
    await person.share_contact("+6561234567")
    assert "Indonesian number" in person.last.text
    await person.say("x" * 1500)
    assert "at most 1000 characters" in person.last.text
    await person.say("/cancel")
    assert "Cancelled" in person.messages[-2].text


async def test_language_switch_mid_dialog(bot: TelegramBotUnderTest) -> None:
    person = bot.person(1004, language="id")
    await person.say("/start")
    await person.tap("Minta bantuan")
    await person.tap("Ya, saya setuju")
    await person.say("/language")
    await person.tap("English")
    assert "Language changed to English" in person.last.text
    assert "full name of the head of the household" in person.last.text
    await person.say("/bahasa id")
    assert "nama lengkap" in person.last.text


async def test_tampered_callback_data_is_refused(bot: TelegramBotUnderTest,
                                                 services: Services) -> None:
    person = bot.person(1005, language="en")
    await person.say("/start")
    await person.tap_data("hh.summary|submit")
    assert "button" in person.last.text
    await person.tap("Request help")
    for data in ("hh.consent|root", "garbage", "menu|../../etc", "hh.consent|>99"):
        await person.tap_data(data)
        assert "not valid" in person.last.text or "earlier question" in person.last.text
        assert "Do you agree?" in person.last.text
    assert await count(services, HelpRequest) == 0


async def test_an_open_request_is_shown_instead(bot: TelegramBotUnderTest) -> None:
    person = bot.person(1006, language="id")
    await register_in_indonesian(person)
    reference = re.search(r"GT-\w{5}", person.last.text)
    assert reference is not None
    await person.say("/minta")
    assert f"Anda sudah punya permintaan: {reference.group()}" in person.last.text


async def test_resume_after_the_process_restarts(config: Config, catalog: Catalog,
                                                 fake: FakeTelegramAPI) -> None:
    services = await open_services(config, migrate=False, catalog=catalog)
    bot = await start_bot(config, services, fake)
    person = bot.person(1007, language="en")
    await person.say("/start")
    await person.tap("Request help")
    await person.tap("Yes, I agree")
    await person.say("Budi Santoso")
    await bot.channel.stop()
    await services.close()

    factory = bot.factory  # Telegram's update ids go on after our restart
    services = await open_services(config, migrate=False, catalog=catalog)
    bot = await start_bot(config, services, fake)
    bot.factory = factory
    person = Person(bot, person.user)
    try:
        await person.say("0812 9876 5432")
        assert "NIK" in person.last.text
    finally:
        await bot.channel.stop()
        await services.close()


async def test_logs_of_a_registration_hold_no_personal_data(
    bot: TelegramBotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    person = bot.person(1008, language="id")
    await register_in_indonesian(person)
    await person.say("/status")
    logged = caplog.text.lower()
    for secret in ("siti", "aminah", "812", "3456", "melati", "karet", "6281234567890",
                   str(person.user.id), bot.fake.token.lower()):
        assert secret not in logged, secret
    assert caplog.records, "nothing was logged at all; the check would prove nothing"


def test_long_text_is_split_at_line_breaks() -> None:
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(200))
    chunks = split_text(text, MAX_TEXT)
    assert all(len(c) <= 4096 for c in chunks) and len(chunks) > 1
    assert "\n".join(chunks) == text


# --- webhook mode -------------------------------------------------------------------


@pytest.fixture
async def webhook_bot(config: Config, services: Services, fake: FakeTelegramAPI
                      ) -> AsyncIterator[tuple[TelegramChannel, str]]:
    tg = telegram_config(config, fake, mode="webhook", webhook_url=WEBHOOK_URL,
                         webhook_secret=WEBHOOK_SECRET).telegram
    channel = TelegramChannel(tg, services.conversations, services.sessions)
    server = TestServer(create_web_app([channel.add_routes]), host="127.0.0.1")
    await server.start_server()
    await channel.start()
    try:
        yield channel, str(server.make_url("/telegram/webhook"))
    finally:
        await channel.stop()
        await server.close()


async def test_webhook_is_registered_with_its_secret(
    webhook_bot: tuple[TelegramChannel, str], fake: FakeTelegramAPI
) -> None:
    assert fake.webhook is not None
    assert fake.webhook["url"] == WEBHOOK_URL
    assert fake.webhook["secret_token"] == WEBHOOK_SECRET


@pytest.mark.parametrize("secret", [None, "wrong-secret", WEBHOOK_SECRET + "x", ""])
async def test_forged_webhook_is_refused_and_nothing_stored(
    webhook_bot: tuple[TelegramChannel, str], services: Services,
    fake: FakeTelegramAPI, secret: str | None,
) -> None:
    _, url = webhook_bot
    bot = TelegramBotUnderTest(fake, webhook_bot[0])
    update = bot.factory.text(bot.person(2001).user, "/start")
    status, _ = await post_webhook(url, update, secret)
    assert status == 403
    assert await count(services, InboundUpdate) == 0
    assert await count(services, Contact) == 0
    assert fake.texts(2001) == []


async def test_replayed_webhook_update_is_processed_once(
    webhook_bot: tuple[TelegramChannel, str], services: Services,
    fake: FakeTelegramAPI,
) -> None:
    channel, url = webhook_bot
    bot = TelegramBotUnderTest(fake, channel)
    person = bot.person(2002, language="en")
    start = bot.factory.text(person.user, "/start")
    assert (await post_webhook(url, start, WEBHOOK_SECRET))[0] == 200
    await channel.wait_handled(1)
    tap = bot.factory.callback(person.user, "menu|request", fake.messages(2002)[0]
                               .message_id)
    for _ in range(3):
        assert (await post_webhook(url, tap, WEBHOOK_SECRET))[0] == 200
    await channel.wait_handled(2)
    # The replays were answered 200 but never queued: a later update is the third handled.
    assert (await post_webhook(url, bot.factory.text(person.user, "/help"),
                               WEBHOOK_SECRET))[0] == 200
    await channel.wait_handled(3)
    assert channel.handled_updates == 3
    texts = fake.texts(2002)
    assert len(texts) == 4
    assert "Do you agree?" in texts[1] and "Commands:" in texts[2]
    assert await count(services, InboundUpdate) == 3


async def test_webhook_refuses_what_is_not_an_update(
    webhook_bot: tuple[TelegramChannel, str], services: Services
) -> None:
    _, url = webhook_bot
    for body in ({"no": "update_id"}, {"update_id": "7"}, {"update_id": True}):
        status, _ = await post_webhook(url, body, WEBHOOK_SECRET)
        assert status == 400
    async with aiohttp.ClientSession() as session:
        for content_type, status in (("application/json", 400), (None, 415),
                                     ("multipart/form-data; boundary=x", 415)):
            headers = {SECRET_HEADER: WEBHOOK_SECRET,
                       **({"Content-Type": content_type} if content_type else {})}
            async with session.post(url, data=b"\xff not json", headers=headers) as response:
                assert response.status == status
                # Said as JSON, with no traceback or library banner.
                assert (await response.json()) == {"error": status}
                assert response.headers["Server"] == "Gotong"
    # Nested deeper than the parser recurses, with the right secret: not JSON to us.
    async with aiohttp.ClientSession() as session, session.post(
            url, data=b"[" * 20_000 + b"]" * 20_000,
            headers={SECRET_HEADER: WEBHOOK_SECRET, "Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    # A secret header of bytes that are not text is a wrong secret, not a failure of ours.
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    body = b'{"update_id": 1}'
    writer.write(b"POST " + address.path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 + SECRET_HEADER.encode() + b": \xff\xfe\r\nContent-Type: application/json"
                 b"\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    assert (await reader.readline()).split()[1] == b"403"
    writer.close()
    assert await count(services, InboundUpdate) == 0


async def test_stored_but_unprocessed_updates_are_processed_at_start(
    config: Config, catalog: Catalog, fake: FakeTelegramAPI
) -> None:
    services = await open_services(config, migrate=False, catalog=catalog)
    tg = telegram_config(config, fake, mode="webhook", webhook_url=WEBHOOK_URL,
                         webhook_secret=WEBHOOK_SECRET).telegram
    channel = TelegramChannel(tg, services.conversations, services.sessions)
    bot = TelegramBotUnderTest(fake, channel)
    update = bot.factory.text(bot.person(2003, language="en").user, "/start")
    # Stored, then the process died before handling it.
    await channel.application.initialize()
    assert await channel.accept_webhook(update)
    await channel.application.shutdown()
    try:
        channel = TelegramChannel(tg, services.conversations, services.sessions)
        await channel.start()
        await channel.wait_handled(1)
        assert "Hello! I am Gotong" in fake.texts(2003)[0]
    finally:
        await channel.stop()
        await services.close()


# --- arbitrary updates through the real library -------------------------------------

_fuzz_users = itertools.count(5000)


@st.composite
def telegram_updates(draw: st.DrawFn, factory: UpdateFactory, user: TgUser,
                     message_id: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "command", "callback", "contact", "photo", "sticker",
                                 "voice", "location", "document"]))
    if kind == "text":
        return factory.text(user, draw(st.text(min_size=1, max_size=300).filter(str.strip)))
    if kind == "command":
        return factory.text(user, "/" + draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_",
                                                     min_size=1, max_size=12)))
    if kind == "callback":
        data = draw(st.text(min_size=1, max_size=64).filter(lambda d: len(d.encode()) <= 64))
        return factory.callback(user, data, message_id)
    if kind == "contact":
        return factory.contact(user, draw(st.text(alphabet="+0123456789 -", min_size=1,
                                                  max_size=16)), own=draw(st.booleans()))
    if kind == "location":
        return factory.location(user, draw(st.floats(-90, 90)), draw(st.floats(-180, 180)))
    return {"photo": factory.photo, "sticker": factory.sticker, "voice": factory.voice,
            "document": factory.document}[kind](user)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_arbitrary_telegram_updates_are_all_answered(bot: TelegramBotUnderTest,
                                                           data: st.DataObject) -> None:
    person = bot.person(next(_fuzz_users), language="en")
    await person.say("/start")
    await person.tap("Request help")
    for _ in range(data.draw(st.integers(1, 4))):
        update = data.draw(telegram_updates(bot.factory, person.user, person.last.message_id))
        sent = await person.send(update)
        edited = person.last.edits > 0 and "callback_query" in update
        assert sent or edited, update


async def test_choosing_a_language_sets_the_chats_command_menu(
    bot: TelegramBotUnderTest,
) -> None:
    person = bot.person(1010, language="id")
    await person.say("/start")
    assert ("chat:1010", "") not in bot.fake.commands
    await person.say("/language")
    await person.tap("English")
    commands = [c["command"] for c in bot.fake.commands[("chat:1010", "")]]
    assert commands[:3] == ["menu", "request", "donate"] and "help" in commands
    await person.say("/bahasa id")
    commands = [c["command"] for c in bot.fake.commands[("chat:1010", "")]]
    assert "minta" in commands and "bantuan" in commands
