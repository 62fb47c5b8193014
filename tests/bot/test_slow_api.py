"""The Bot API taking a message but answering too late: the dispatcher cannot tell whether
the message arrived. It sends it once more, waiting three times as long for the answer,
and if that answer does not come either it settles the row as 'uncertain': never a third
copy, never 'failed'. The flood limits count a message when it arrives, however late that
is; a slot whose answer never came stays counted for as long again, so a late message and
the next one to its chat do not break the limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.contact import Contact
from gotong.models.outbox import Notice, OutboxMessage, Purpose
from tests.bot.dispatch_harness import (
    REFERENCE,
    DispatchUnderTest,
    add_contacts,
    dispatch_config,
    numbered_notice,
    queue,
    statuses,
    wait_settled,
)
from tests.fakes.telegram_api import FakeTelegramAPI, SentMessage

# Measures time itself: run alone, after the other tests (make pytest).
pytestmark = pytest.mark.timing

CHAT_BASE = 900_000
# How long the dispatcher waits for an answer; the second send of a row waits three
# times as long (telegram.answer_timeout_seconds).
ANSWER_TIMEOUT = 0.4
# Longer than the first wait and shorter than the second: the first answer is missed, the
# second one comes. Below twice the first wait, the time its slot stays counted after the
# missed answer, so that a late message and the next one to its chat keep to the limit.
LATE = 0.6
# Longer than the second wait too: no answer ever comes in time.
NEVER_IN_TIME = 1.5
# The fake's limits; the dispatcher keeps to less overall, so that timers firing a little
# late in a busy test process do not count as a violation.
FAKE_PER_SECOND = 30
DISPATCH_PER_SECOND = 20


class LateBotAPI:
    """`sendMessage` taken late: the message arrives (is recorded and counted against the
    flood limits) only after `delay` seconds, and it does arrive even when the bot has
    stopped waiting for the answer by then, as a request may at Telegram. Only chats in
    `slow_chats` are slow, when given, and only the first `slow_requests` requests.

    The fake's own `response_delay` records a message at once and holds back only the
    answer; a message that itself arrives late is the case the flood limits are about."""

    def __init__(self, fake: FakeTelegramAPI, delay: float, *,
                 slow_chats: Collection[int] | None = None,
                 slow_requests: int | None = None) -> None:
        self.delay = delay
        self.slow_chats = set(slow_chats) if slow_chats is not None else None
        self.slow_requests = slow_requests
        # sendMessage requests taken so far, answered or not.
        self.requests = 0
        # The fake's own handler, which records the message and applies the limits.
        self._handle = fake._send_message
        self._arriving: set[asyncio.Task[Any]] = set()
        fake.add_method("sendMessage", self._send_message)

    async def _send_message(self, params: dict[str, Any]) -> Any:
        self.requests += 1
        slow = (self.slow_chats is None or int(params["chat_id"]) in self.slow_chats) \
            and (self.slow_requests is None or self.requests <= self.slow_requests)
        delay = self.delay if slow else 0.0
        if delay <= 0:
            return await self._handle(params)
        arriving = asyncio.create_task(self._arrive(params, delay))
        self._arriving.add(arriving)
        arriving.add_done_callback(self._arrived)
        # When the bot gives up, its connection closes and this handler is cancelled; the
        # message it carried arrives all the same.
        return await asyncio.shield(arriving)

    async def _arrive(self, params: dict[str, Any], delay: float) -> Any:
        await asyncio.sleep(delay)
        return await self._handle(params)

    def _arrived(self, task: asyncio.Task[Any]) -> None:
        self._arriving.discard(task)
        if not task.cancelled():
            # A refusal nobody waits for any more is still counted by the fake; retrieved
            # here only so that asyncio does not warn of it.
            task.exception()

    async def all_arrived(self) -> None:
        """Wait for the messages still on their way (a row can be settled before the last
        copy of it arrives)."""
        async with asyncio.timeout(10):
            while self._arriving:
                await asyncio.gather(*list(self._arriving), return_exceptions=True)


@pytest.fixture
def fake(telegram_api: FakeTelegramAPI) -> FakeTelegramAPI:
    telegram_api.enforce_rate_limits(overall_per_second=FAKE_PER_SECOND,
                                     per_chat_per_second=1.0)
    return telegram_api


def slow_config(config: Config, fake: FakeTelegramAPI) -> Config:
    cfg = dispatch_config(config, fake, messages_per_second=DISPATCH_PER_SECOND,
                          chat_messages_per_second=1.0, retry_base_seconds=0.2,
                          retry_max_seconds=1.0)
    return replace(cfg, telegram=replace(cfg.telegram, answer_timeout_seconds=ANSWER_TIMEOUT))


async def fill(services: Services, notice_chats: int, notices_each: int,
               broadcast_only_chats: int, base: int) -> list[int]:
    """Status notices to some chats, then a broadcast to them and to others; the chat ids."""
    chats = [base + n for n in range(notice_chats + broadcast_only_chats)]
    contacts = await add_contacts(services, chats)
    number = iter(range(10**6))
    notices: list[Notice] = [numbered_notice(contacts[n % notice_chats], next(number))
                             for n in range(notice_chats * notices_each)]
    notices += [numbered_notice(contact, next(number), Purpose.BROADCAST)
                for contact in contacts]
    await queue(services, notices)
    return chats


async def dispatch_all(services: Services, config: Config, fake: FakeTelegramAPI,
                       within: float = 25.0) -> dict[str, int]:
    """Run the dispatcher until every row is settled; the counts by status."""
    dispatch = DispatchUnderTest(services, config)
    await dispatch.start()
    try:
        return await wait_settled(services, within=within)
    except TimeoutError:
        # Rows sent again and again never settle: say what went out.
        pytest.fail(f"not settled within {within} s: {await statuses(services)}; "
                    f"most copies: {copies(fake).most_common(3)}")
    finally:
        await dispatch.stop()


async def rows_by_reference(services: Services) -> dict[str, tuple[int, str, int]]:
    """Each row's chat, status and unanswered sends, by the reference in its text."""
    async with services.sessions() as session:
        result = await session.execute(
            select(OutboxMessage.params, Contact.chat_id, OutboxMessage.status,
                   OutboxMessage.timeouts)
            .join(Contact, Contact.id == OutboxMessage.contact_id))
        return {params["reference"]: (int(chat_id), status, timeouts)
                for params, chat_id, status, timeouts in result.all()}


def reference_of(message: SentMessage) -> str:
    match = REFERENCE.search(message.text)
    assert match is not None, message.text
    return match.group(0)


def copies(fake: FakeTelegramAPI) -> Counter[str]:
    return Counter(reference_of(m) for m in fake.all_messages())


@pytest.mark.parametrize(("delay", "settled_as", "sends"), [
    # The second send waits long enough: its answer comes, and the row is sent.
    pytest.param(LATE, "sent", 2, id="answered-the-second-time"),
    # Neither answer comes in time: two copies went out, and no third follows.
    pytest.param(NEVER_IN_TIME, "uncertain", 2, id="never-answered-in-time"),
])
async def test_a_slow_api_gets_each_message_at_most_twice(
        config: Config, services: Services, fake: FakeTelegramAPI, delay: float,
        settled_as: str, sends: int) -> None:
    late = LateBotAPI(fake, delay)
    # Fewer rows per chat where every send of a row waits for the second timeout too.
    notices_each = 3 if settled_as == "sent" else 2
    await fill(services, notice_chats=10, notices_each=notices_each,
               broadcast_only_chats=20, base=CHAT_BASE)
    counts = await dispatch_all(services, slow_config(config, fake), fake)
    await late.all_arrived()
    rows = await rows_by_reference(services)
    assert counts == {settled_as: len(rows)}
    sent = copies(fake)
    assert set(sent) == set(rows)
    # Each message arrived once per send, the first send's late: exactly two copies.
    assert set(sent.values()) == {sends}, sent.most_common(3)
    assert {timeouts for _, _, timeouts in rows.values()} == {sends - (settled_as == "sent")}
    assert fake.rate_limit_violations == 0, fake.violations_by_chat


async def test_only_the_slow_chats_get_a_second_copy(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    chats = await fill(services, notice_chats=10, notices_each=3, broadcast_only_chats=20,
                       base=CHAT_BASE + 100)
    # Every other chat is slow (a far data centre, say); the others answer at once.
    slow = set(chats[::2])
    late = LateBotAPI(fake, LATE, slow_chats=slow)
    counts = await dispatch_all(services, slow_config(config, fake), fake)
    await late.all_arrived()
    rows = await rows_by_reference(services)
    assert counts == {"sent": len(rows)}
    sent = copies(fake)
    for reference, (chat, _, timeouts) in rows.items():
        expected = 2 if chat in slow else 1
        assert (sent[reference], timeouts) == (expected, expected - 1), (reference, chat)
    assert fake.rate_limit_violations == 0, fake.violations_by_chat


async def test_an_api_slow_at_first_only_gets_no_third_copy_and_no_flood(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    await fill(services, notice_chats=10, notices_each=3, broadcast_only_chats=20,
               base=CHAT_BASE + 200)
    # The first sends arrive late; then the API is quick again. Their second copies are
    # answered at once, and arrive soon after the late first ones: only the slot kept
    # for a late message keeps the next one to its chat a second behind it.
    late = LateBotAPI(fake, LATE, slow_requests=10)
    counts = await dispatch_all(services, slow_config(config, fake), fake)
    await late.all_arrived()
    rows = await rows_by_reference(services)
    assert counts == {"sent": len(rows)}
    sent = copies(fake)
    assert set(sent) == set(rows)
    assert max(sent.values()) <= 2, sent.most_common(3)
    twice = {reference for reference, count in sent.items() if count == 2}
    assert twice, "no send was slow"
    assert twice == {reference for reference, (_, _, timeouts) in rows.items() if timeouts}
    assert fake.rate_limit_violations == 0, fake.violations_by_chat
