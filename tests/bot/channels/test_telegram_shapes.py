"""What Telegram (or something posing as it) really sends, through the real channel: updates
Gotong does not answer are recorded and leave nothing behind, groups are told once and
left, bots are not answered, and malformed updates, by webhook or by polling, are
answered (or confirmed) and never stored, never poisoning a chat or the polling."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from gotong.bot.channels.inbound import InboundSettings
from gotong.bot.channels.telegram import SECRET_HEADER, TelegramChannel
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.bot.web.app import create_web_app
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.inbound import InboundUpdate, claim_waiting, inbound_counts, store_inbound
from tests.bot.channels.telegram_harness import TelegramBotUnderTest
from tests.bot.channels.test_telegram_household import (
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    telegram_config,
)
from tests.fakes.telegram_api import FakeTelegramAPI, post_webhook
from tests.fakes.telegram_updates import TgUser, UpdateFactory

JSONDict = dict[str, Any]
# Written by people: never in a log line.
SECRET = "Jl. Rahasia 7"
FAST = InboundSettings(max_attempts=2, retry_base=timedelta(milliseconds=10),
                       retry_max=timedelta(milliseconds=20),
                       poll=timedelta(milliseconds=50))


def polling_channel(config: Config, services: Services, fake: FakeTelegramAPI
                    ) -> TelegramChannel:
    return TelegramChannel(telegram_config(config, fake).telegram, services.conversations,
                           services.sessions, inbound=FAST)


@pytest.fixture
async def polling(config: Config, services: Services, fake: FakeTelegramAPI
                  ) -> AsyncIterator[TelegramBotUnderTest]:
    channel = polling_channel(config, services, fake)
    await channel.start()
    try:
        yield TelegramBotUnderTest(fake, channel)
    finally:
        await channel.stop()


@asynccontextmanager
async def webhook_channel(config: Config, services: Services, fake: FakeTelegramAPI
                          ) -> AsyncIterator[tuple[TelegramChannel, str]]:
    tg = telegram_config(config, fake, mode="webhook", webhook_url=WEBHOOK_URL,
                         webhook_secret=WEBHOOK_SECRET).telegram
    channel = TelegramChannel(tg, services.conversations, services.sessions, inbound=FAST)
    server = TestServer(create_web_app([channel.add_routes]), host="127.0.0.1")
    await server.start_server()
    await channel.start()
    try:
        yield channel, str(server.make_url("/telegram/webhook"))
    finally:
        await channel.stop()
        await server.close()


@pytest.fixture
async def webhook(config: Config, services: Services, fake: FakeTelegramAPI
                  ) -> AsyncIterator[tuple[TelegramChannel, str]]:
    async with webhook_channel(config, services, fake) as running:
        yield running


async def stored(services: Services) -> list[InboundUpdate]:
    async with services.sessions() as session:
        return list((await session.scalars(select(InboundUpdate)
                                           .order_by(InboundUpdate.id))).all())


def leaked(records: Sequence[logging.LogRecord], *words: str) -> list[str]:
    """Log lines that hold any of `words`."""
    lines = [record.getMessage() for record in records]
    return [line for line in lines if any(word in line for word in words)]


def malformed(factory: UpdateFactory, user: TgUser) -> list[str]:
    """Signed webhook bodies Telegram would never send, each with its own update id."""

    def text(**changes: Any) -> JSONDict:
        update = factory.text(user, SECRET)
        update["message"].update(changes)
        return update

    def chat_id(value: Any) -> JSONDict:
        update = factory.text(user, "/start")
        update["message"]["chat"]["id"] = value
        return update

    def tap(data: Any) -> JSONDict:
        return factory.callback(user, data, 1)

    bodies = [json.dumps(update) for update in (
        text(text=5), text(text=[SECRET]), text(text=SECRET * 600), text(date="today"),
        text(text=SECRET + "\ud800"), chat_id(str(user.id)), chat_id(-user.id),
        tap("x" * 65), tap(5),
        # A shape only the library looks into.
        text(reply_to_message=5),
    )]
    # JSON has no Infinity, but Python's reader (and so a proxy written in it) takes it.
    bodies.append(json.dumps(chat_id(0)).replace('"id": 0,', '"id": Infinity,'))
    return bodies


async def post_body(url: str, body: str) -> int:
    async with aiohttp.ClientSession() as session, session.post(
        url, data=body.encode(), headers={SECRET_HEADER: WEBHOOK_SECRET,
                                          "Content-Type": "application/json"}
    ) as response:
        return response.status


async def test_malformed_webhook_updates_are_answered_and_never_stored(
        webhook: tuple[TelegramChannel, str], services: Services, fake: FakeTelegramAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    channel, url = webhook
    factory = UpdateFactory()
    bodies = malformed(factory, TgUser(4201))
    for body in bodies:
        assert await post_body(url, body) == 200
    person = TgUser(4202, language_code="en")
    assert (await post_webhook(url, factory.text(person, "/start"), WEBHOOK_SECRET))[0] == 200
    await channel.wait_handled(1)
    assert "Hello! I am Gotong" in fake.texts(4202)[0]
    # Only the good one was stored; no contact of a chat that is not one.
    assert [row.external_id for row in await stored(services)] == [str(factory.next_update_id()
                                                                       - 1)]
    async with services.sessions() as session:
        assert list(await session.scalars(select(Contact.chat_id))) == ["4202"]
    said = leaked(caplog.records, "malformed")
    assert len(said) == len(bodies)
    assert not leaked(caplog.records, "Rahasia", "4201")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_malformed_polled_updates_do_not_stop_polling(
        config: Config, services: Services, fake: FakeTelegramAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    factory = UpdateFactory()
    someone = TgUser(4301)
    number = factory.text(someone, SECRET)
    number["message"]["text"] = 5
    no_chat = factory.text(someone, SECRET)
    no_chat["message"]["chat"] = someone.id
    named_chat = factory.text(someone, SECRET)
    named_chat["message"]["chat"]["id"] = "Rahasia"
    # Of the shape Gotong reads, but the library cannot read it.
    unreadable = factory.text(someone, SECRET)
    unreadable["message"]["reply_to_message"] = 5
    person = TgUser(4302, language_code="en")
    for update in (number, no_chat, named_chat, unreadable, factory.text(person, "/start")):
        fake.push_update(update)
    channel = polling_channel(config, services, fake)
    await channel.start()
    try:
        [welcome] = await fake.wait_for_messages(4302, 1)
        assert "Hello! I am Gotong" in welcome.text
        # The unreadable one is tried a few times, with back-off, then set aside.
        async with asyncio.timeout(10):
            while True:
                async with services.sessions() as session:
                    if (await inbound_counts(session))[1] == 1:
                        break
                await asyncio.sleep(0.05)
    finally:
        await channel.stop()
    # The malformed ones recorded as seen (the offset moved past them), with nothing in
    # them; the one only the library cannot read set aside after its tries.
    rows = {r.external_id: r for r in await stored(services)}
    assert len(rows) == 5
    aside = rows.pop(str(unreadable["update_id"]))
    assert aside.processed_at is None and aside.set_aside_at is not None
    assert all(r.processed_at is not None and r.payload is None for r in rows.values())
    assert fake.texts(4301) == []
    # Named in the log, each once, by id and reason only.
    named = [line.split(":")[0] for line in leaked(caplog.records, "malformed")]
    assert sorted(named) == sorted(f"ignored a malformed telegram update {u['update_id']}"
                                   for u in (number, no_chat, named_chat))
    assert leaked(caplog.records, f"inbound update {aside.id} (telegram) set aside")
    assert not leaked(caplog.records, "Rahasia", "4301")


async def test_a_group_is_told_once_and_left_and_bots_are_not_answered(
        polling: TelegramBotUnderTest, services: Services, fake: FakeTelegramAPI) -> None:
    factory = polling.factory
    siti, budi = TgUser(4401, language_code="en"), TgUser(4402, language_code="fr")
    await polling.push(factory.bot_added(siti, -4403))
    await polling.push(factory.group_text(siti, -4403, "/start@gotong_test_bot"))
    await polling.push(factory.group_text(budi, -4403, SECRET))
    # The bot's leaving is news to it too: only recorded.
    await polling.push(factory.my_chat_member(siti, factory.group_chat(-4403), "member",
                                              "left"))
    # A group it was in before it knew to leave: someone writes there.
    await polling.push(factory.group_text(budi, -1004404, "halo", "supergroup"))
    robot = TgUser(4405, first_name="Robot", is_bot=True)
    await polling.push(factory.text(robot, "/start"))
    [told] = fake.texts(-4403)
    assert "I work in private chats only" in told and "@gotong_test_bot" in told
    [told] = fake.texts(-1004404)
    assert "Saya hanya melayani obrolan pribadi" in told
    assert fake.left_chats == [-4403, -1004404]
    assert fake.texts(4405) == []
    assert fake.texts(4401) == fake.texts(4402) == []
    assert not await contacts(services)
    rows = await stored(services)
    assert len(rows) == 6
    assert all(r.processed_at is not None and r.payload is None for r in rows)


async def contacts(services: Services) -> list[str]:
    async with services.sessions() as session:
        return list(await session.scalars(select(Contact.chat_id)))


def everything_not_answered(factory: UpdateFactory, user: TgUser) -> list[JSONDict]:
    robot = TgUser(4505, first_name="Robot", is_bot=True)
    return [
        factory.text(user, "/start"),
        factory.edited_text(user, SECRET),
        factory.channel_post(-1004501, SECRET),
        factory.inline_callback(user, "menu|request"),
        factory.my_chat_member(user, user.private_chat(), "member", "kicked"),
        factory.bot_added(user, -4502),
        factory.group_text(user, -4502, SECRET),
        factory.my_chat_member(user, factory.group_chat(-4502), "member", "left"),
        factory.text(robot, "/start"),
        factory.raw(kind_of_tomorrow={"text": SECRET}),
        factory.raw(),
    ]


async def test_a_restart_after_a_clean_run_resumes_nothing(
        config: Config, services: Services, fake: FakeTelegramAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    factory = UpdateFactory()
    person = TgUser(4503, language_code="en")
    # By webhook: polling asks only for the kinds Gotong answers, a proxy might send any.
    updates = everything_not_answered(factory, person)
    async with webhook_channel(config, services, fake) as (channel, url):
        for update in updates:
            assert (await post_webhook(url, update, WEBHOOK_SECRET))[0] == 200
        await channel.wait_handled(len(updates))
    # WhatsApp's statuses are recorded in the same table, as seen only.
    now = utcnow()
    async with services.engine.begin() as connection:
        for status in ("sent", "delivered", "read"):
            await store_inbound(connection, "whatsapp", f"wamid.HBgM:{status}", "", None, now,
                                handled=True)
    rows = await stored(services)
    assert len(rows) == len(updates) + 3
    assert all(r.processed_at is not None and r.payload is None for r in rows)
    async with services.engine.begin() as connection:
        assert await claim_waiting(connection, "another", ["telegram", "whatsapp"], now,
                                   timedelta(seconds=30), 100) == []
    answered = len(fake.all_messages())

    async with webhook_channel(config, services, fake) as (channel, url):
        await post_webhook(url, factory.text(TgUser(4504, language_code="en"), "/start"),
                           WEBHOOK_SECRET)
        await channel.wait_handled(1)
        await asyncio.sleep(FAST.poll.total_seconds() * 2)
        # The update just sent is the only one handled: nothing came back from before.
        assert channel.handled_updates == 1
        assert len(fake.all_messages()) == answered + 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_update_that_fails_when_handled_is_set_aside(
        config: Config, services: Services, fake: FakeTelegramAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    factory = UpdateFactory()
    person = TgUser(4601, language_code="en")
    # Stored by an earlier version, which did not check shapes: one the library cannot
    # read (tried, then set aside), and one malformed (recorded at once).
    unreadable = factory.text(person, SECRET)
    unreadable["message"]["reply_to_message"] = 5
    number = factory.text(person, SECRET)
    number["message"]["text"] = 5
    async with services.engine.begin() as connection:
        for update in (unreadable, number):
            await store_inbound(connection, "telegram", str(update["update_id"]),
                                str(person.id), update, utcnow())
    channel = polling_channel(config, services, fake)
    await channel.start()
    try:
        fake.push_update(factory.text(person, "/start"))
        # The chat went on behind them.
        [welcome] = await fake.wait_for_messages(4601, 1)
        assert "Hello! I am Gotong" in welcome.text
    finally:
        await channel.stop()
    first, second, _ = await stored(services)
    assert (first.attempts, first.last_error) == (FAST.max_attempts, "AttributeError")
    assert first.set_aside_at is not None and first.processed_at is None
    assert second.processed_at is not None and second.payload is None
    async with services.sessions() as session:
        assert await inbound_counts(session) == (0, 1)
    assert leaked(caplog.records, f"inbound update {first.id} (telegram) set aside")
    assert not leaked(caplog.records, "Rahasia", "4601")
