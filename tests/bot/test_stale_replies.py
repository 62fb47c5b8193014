"""Direct replies left behind by a process that died before sending them: the dispatcher
sends the newest reply of a chat, and skips an older one that a newer reply to the same
chat has overtaken (the person has moved on; an old answer sent now would only confuse)."""

from __future__ import annotations

from datetime import timedelta

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.messages import Reply
from gotong.handlers.notices import replies_to_body
from gotong.models.base import utcnow
from gotong.models.outbox import OutboxStatus, enqueue_reply
from tests.bot.dispatch_harness import DispatchUnderTest, add_contacts, dispatch_config
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.lookups import outbox

CHAT = 910_000
LEASE = timedelta(minutes=1)


async def test_a_reply_overtaken_by_a_newer_one_is_skipped_not_sent_late(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    [contact] = await add_contacts(services, [CHAT])
    # Two answers in a row to one chat, both written as being sent by a process that
    # died: their leases ran out long ago.
    written = utcnow() - timedelta(minutes=10)
    async with services.engine.begin() as connection:
        older = await enqueue_reply(
            connection, contact, replies_to_body([Reply(text="Older answer")], None),
            written, LEASE, "dead")
        newer = await enqueue_reply(
            connection, contact, replies_to_body([Reply(text="Newer answer")], None),
            written + timedelta(seconds=5), LEASE, "dead")

    dispatch = DispatchUnderTest(services, dispatch_config(config, fake))
    await dispatch.channel.open_for_sending()
    try:
        await dispatch.dispatcher.run_until_idle()
    finally:
        await dispatch.channel.stop()

    assert fake.texts(CHAT) == ["Newer answer"]
    rows = {row.id: row for row in await outbox(services)}
    assert (rows[older].status, rows[older].last_error) == (OutboxStatus.SKIPPED, "overtaken")
    assert rows[newer].status == OutboxStatus.SENT
    # Neither keeps what it said: settled rows drop their bodies.
    assert rows[older].body is None and rows[newer].body is None
