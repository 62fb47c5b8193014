"""The notification dispatcher through the real python-telegram-bot and the fake Bot API,
which enforces Telegram's flood limits and counts every violation."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import timedelta

import pytest

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.messages import Incoming, Kind
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.outbox import Purpose
from tests.bot.dispatch_harness import (
    REFERENCE,
    DispatchUnderTest,
    add_contacts,
    dispatch_config,
    numbered_notice,
    queue,
    wait_settled,
)
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.lookups import outbox

CHAT_BASE = 500_000


async def running(services: Services, config: Config) -> DispatchUnderTest:
    dispatch = DispatchUnderTest(services, config)
    await dispatch.start()
    return dispatch


def references(fake: FakeTelegramAPI, chat_id: int) -> list[int]:
    return [int(m.group(1)) for text in fake.texts(chat_id)
            if (m := REFERENCE.search(text)) is not None]


async def test_a_thousand_notices_to_300_chats_in_order_within_the_limits(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    # Telegram's limits, with the overall one raised so that the test takes seconds: the
    # per-chat limit of one a second is the real one and binds (3-4 notices per chat).
    fake.enforce_rate_limits(per_chat_per_second=1.0, overall_per_second=150)
    chats = [CHAT_BASE + i for i in range(300)]
    contacts = await add_contacts(services, chats)
    notices = [numbered_notice(contacts[n % 300], n) for n in range(1000)]
    await queue(services, notices)
    dispatch = await running(services, dispatch_config(config, fake, messages_per_second=150))
    try:
        counts = await wait_settled(services, within=60)
    finally:
        await dispatch.stop()
    assert counts == {"sent": 1000}
    assert fake.rate_limit_violations == 0
    assert len(fake.all_messages()) == 1000
    for i, chat in enumerate(chats):
        assert references(fake, chat) == list(range(i, 1000, 300))
    sent = await outbox(services)
    assert all(r.platform_message_id and r.attempts == 1 and r.sent_at for r in sent)


async def test_a_429_is_honoured_and_nothing_is_lost(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    chat = CHAT_BASE + 1
    [contact] = await add_contacts(services, [chat])
    fake.fail_next("sendMessage", error_code=429, description="Too Many Requests: retry after 2",
                   retry_after=2, chat_id=chat)
    await queue(services, [numbered_notice(contact, n) for n in range(3)])
    dispatch = await running(services, dispatch_config(config, fake))
    try:
        assert await wait_settled(services, within=20) == {"sent": 3}
    finally:
        await dispatch.stop()
    assert references(fake, chat) == [0, 1, 2]
    times = [t for (method, params), t in zip(fake.calls, fake.call_times, strict=True)
             if method == "sendMessage"]
    assert len(times) == 4
    assert times[1] - times[0] >= 2.0
    first = (await outbox(services))[0]
    assert first.attempts == 2 and first.last_error == "flood control (429)"


@pytest.mark.parametrize("failure", ["500", "502", "reset"])
async def test_server_errors_and_connection_resets_are_retried(
        config: Config, services: Services, fake: FakeTelegramAPI, failure: str) -> None:
    chat = CHAT_BASE + 2
    [contact] = await add_contacts(services, [chat])
    if failure == "reset":
        fake.reset_connection_next("sendMessage", times=2, chat_id=chat)
    else:
        fake.fail_next("sendMessage", error_code=int(failure), description="Bad Gateway",
                       times=2, chat_id=chat)
    await queue(services, [numbered_notice(contact, n) for n in range(2)])
    cfg = dispatch_config(config, fake, retry_base_seconds=0.1, retry_max_seconds=0.2)
    dispatch = await running(services, cfg)
    try:
        assert await wait_settled(services, within=20) == {"sent": 2}
    finally:
        await dispatch.stop()
    assert references(fake, chat) == [0, 1]
    first, second = await outbox(services)
    assert (first.attempts, second.attempts) == (3, 1)
    assert first.last_error is not None and "network or server error" in first.last_error


async def test_a_row_that_keeps_failing_is_given_up_with_the_reason(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    chat = CHAT_BASE + 3
    [contact] = await add_contacts(services, [chat])
    fake.fail_next("sendMessage", error_code=500, description="Internal Server Error",
                   times=3, chat_id=chat)
    await queue(services, [numbered_notice(contact, 0), numbered_notice(contact, 1)])
    cfg = dispatch_config(config, fake, max_attempts=3, retry_base_seconds=0.05,
                          retry_max_seconds=0.1)
    dispatch = await running(services, cfg)
    try:
        assert await wait_settled(services, within=20) == {"failed": 1, "sent": 1}
    finally:
        await dispatch.stop()
    failed, sent = await outbox(services)
    assert failed.status == "failed" and failed.attempts == 3
    assert "Internal Server Error" in (failed.last_error or "")
    # The next row of the chat was not held back for good by the failed one.
    assert sent.status == "sent" and references(fake, chat) == [1]


async def test_a_contact_whose_chat_is_no_number_fails_at_once(
        config: Config, services: Services, fake: FakeTelegramAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    # Made from a malformed update before update shapes were checked.
    async with services.sessions() as session, session.begin():
        contact = Contact(channel="telegram", chat_id="inf", language="id",
                          created_at=utcnow())
        session.add(contact)
    await queue(services, [numbered_notice(contact.id, 0)])
    dispatch = await running(services, dispatch_config(config, fake))
    try:
        assert await wait_settled(services, within=20) == {"failed": 1}
    finally:
        await dispatch.stop()
    [failed] = await outbox(services)
    assert failed.attempts == 1 and "not a Telegram chat id" in (failed.last_error or "")
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_403_marks_the_contact_unreachable_until_they_write_again(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    blocked, other = CHAT_BASE + 4, CHAT_BASE + 5
    blocked_id, other_id = await add_contacts(services, [blocked, other])
    fake.fail_next("sendMessage", error_code=403,
                   description="Forbidden: bot was blocked by the user", chat_id=blocked)
    await queue(services, [numbered_notice(blocked_id, n) for n in range(3)]
                + [numbered_notice(other_id, 10)])
    dispatch = await running(services, dispatch_config(config, fake))
    try:
        assert await wait_settled(services) == {"failed": 1, "skipped": 2, "sent": 1}
        assert references(fake, blocked) == [] and references(fake, other) == [10]
        async with services.sessions() as session:
            contact = await session.get(Contact, blocked_id)
            assert contact is not None and contact.unreachable_at is not None
        # While they stay away, new news is skipped too...
        await queue(services, [numbered_notice(blocked_id, 3)])
        dispatch.dispatcher.wake()
        assert (await wait_settled(services))["skipped"] == 3
        # ...and once they write again, it reaches them.
        await services.conversations.handle_update(_hello(blocked))
        await queue(services, [numbered_notice(blocked_id, 4)])
        dispatch.dispatcher.wake()
        assert (await wait_settled(services))["sent"] == 2
    finally:
        await dispatch.stop()
    assert references(fake, blocked) == [4]


def _hello(chat: int) -> Incoming:
    return Incoming(channel="telegram", chat_id=str(chat), kind=Kind.TEXT, text="halo",
                    external_id=f"hello-{chat}")


async def test_status_news_goes_before_a_waiting_broadcast(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    chats = [CHAT_BASE + 10 + i for i in range(10)]
    contacts = await add_contacts(services, chats)
    await queue(services, [numbered_notice(c, i, Purpose.BROADCAST)
                           for i, c in enumerate(contacts)])
    await queue(services, [numbered_notice(contacts[-1], 99)])
    # Four a second: most of the broadcast has to wait, the status notice must not.
    dispatch = await running(services, dispatch_config(config, fake, messages_per_second=4))
    try:
        await wait_settled(services, within=30)
    finally:
        await dispatch.stop()
    order = [int(m.group(1)) for msg in fake.all_messages()
             if (m := REFERENCE.search(msg.text)) is not None]
    assert sorted(order) == [*range(10), 99]
    assert 99 in order[:4]


async def test_each_chat_is_paced_to_one_message_a_second(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    fake.enforce_rate_limits(per_chat_per_second=1.0, overall_per_second=30)
    chat = CHAT_BASE + 30
    [contact] = await add_contacts(services, [chat])
    await queue(services, [numbered_notice(contact, n) for n in range(3)])
    dispatch = await running(services, dispatch_config(config, fake))
    try:
        assert await wait_settled(services, within=20) == {"sent": 3}
    finally:
        await dispatch.stop()
    sent_at = [m.sent_at for m in fake.messages(chat)]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(sent_at))
    assert fake.rate_limit_violations == 0


async def test_each_row_records_the_message_id_telegram_gave(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    chats = [CHAT_BASE + 40 + i for i in range(3)]
    contacts = await add_contacts(services, chats)
    await queue(services, [numbered_notice(c, i) for i, c in enumerate(contacts)])
    dispatch = await running(services, dispatch_config(config, fake))
    try:
        await wait_settled(services)
    finally:
        await dispatch.stop()
    for row in await outbox(services):
        [message] = fake.messages(chats[contacts.index(row.contact_id)])
        assert (row.status, row.platform_message_id) == ("sent", str(message.message_id))


async def test_the_logs_of_dispatching_hold_no_personal_data_or_token(
        config: Config, services: Services, fake: FakeTelegramAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    chats = [CHAT_BASE + 60 + i for i in range(3)]
    contacts = await add_contacts(services, chats)
    fake.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked",
                   chat_id=chats[0])
    fake.fail_next("sendMessage", error_code=500, description="Internal Server Error",
                   chat_id=chats[1])
    fake.fail_next("sendMessage", error_code=400, description="Bad Request: message is too "
                   f"long for chat {chats[2]}", chat_id=chats[2])
    await queue(services, [numbered_notice(c, 424242) for c in contacts])
    cfg = dispatch_config(config, fake, retry_base_seconds=0.05, retry_max_seconds=0.1)
    dispatch = await running(services, cfg)
    try:
        assert await wait_settled(services) == {"failed": 2, "sent": 1}
    finally:
        await dispatch.stop()
    logged = caplog.text
    assert "unreachable" in logged and "failed after" in logged
    for secret in [fake.token, "424242", *map(str, chats)]:
        assert secret not in logged
    for row in await outbox(services):
        assert fake.token not in (row.last_error or "")


async def test_rows_waiting_longer_than_their_lease_are_still_sent_once(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    # A 429 pauses the channel for longer than a lease: the rows waiting for a slot keep
    # their leases and are not taken again, by this process or another.
    chats = [CHAT_BASE + 70 + i for i in range(6)]
    contacts = await add_contacts(services, chats)
    fake.fail_next("sendMessage", error_code=429, description="Too Many Requests: retry after 3",
                   retry_after=3, chat_id=chats[0])
    await queue(services, [numbered_notice(c, i) for i, c in enumerate(contacts)])
    cfg = dispatch_config(config, fake, messages_per_second=2, lease_seconds=1.0,
                          poll_seconds=0.1)
    dispatch = await running(services, cfg)
    try:
        assert await wait_settled(services, within=30) == {"sent": 6}
    finally:
        await dispatch.stop()
    for i, chat in enumerate(chats):
        assert references(fake, chat) == [i]


async def test_rows_committed_in_this_process_are_sent_without_waiting_for_a_poll(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    chat = CHAT_BASE + 80
    [contact] = await add_contacts(services, [chat])
    dispatch = await running(services, dispatch_config(config, fake, poll_seconds=60))
    try:
        # Once the dispatcher found nothing, it sleeps until its poll (a minute away).
        async with asyncio.timeout(10):
            while dispatch.dispatcher._look_at < utcnow() + timedelta(seconds=30):  # noqa: ASYNC110 - polls a state the dispatcher does not signal
                await asyncio.sleep(0.05)
        await queue(services, [numbered_notice(contact, 1)])
        await asyncio.sleep(0.3)
        assert fake.messages(chat) == []  # written elsewhere: found at the next poll only
        dispatch.dispatcher.wake()  # what a commit in this process does
        await fake.wait_for_messages(chat, 1, timeout=2)
    finally:
        await dispatch.stop()
