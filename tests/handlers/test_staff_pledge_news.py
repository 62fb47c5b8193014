"""Staff hear of a new pledge to their aggregator and of a donor asking to be picked up:
at once, or in their digest (notifications.staff_new_pledge); and a pledge not yet handed
over reads as waiting to be brought or picked up, never as "not received"."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import select

from gotong.bot.services import Services, handler_settings
from gotong.handlers.conversations import Conversations
from gotong.models.base import utcnow
from gotong.models.digest import send_digests
from gotong.models.pledge import Pledge
from gotong.models.sending import claim
from gotong.models.stock import receive_pledge
from tests.chat import Chat
from tests.handlers.test_donor_form import start
from tests.handlers.test_staff_stock import TIMUR, join
from tests.handlers.test_uncovered_areas import notices_to
from tests.lookups import outbox
from tests.models.aid_world import AidWorld


async def pledge(chat: Chat, *, pickup: bool) -> None:
    """Ten staple food packages for Jakarta Timur, through its one aggregator."""
    await start(chat)
    await chat.tap("food_package")
    await chat.say("10")
    await chat.tap(chat.option_id("Jakarta Timur"))
    await chat.tap("all")
    if "pickup" not in {option.id for option in chat.last.options}:
        # The organisation, when there is a choice (one alone is named, not asked for).
        await chat.tap(chat.last.options[0].id)
    if pickup:
        await chat.tap("pickup")
        await chat.say("Jl. Kenanga 7, Cipinang")
        await chat.say("Sabtu 09.00-12.00")
    else:
        await chat.tap("drop")
    await chat.tap("submit")
    assert "Pledge code: GP-" in chat.last.text, chat.last.text


def in_digest_mode(services: Services) -> None:
    config = dataclasses.replace(services.config, notifications=dataclasses.replace(
        services.config.notifications, staff_new_pledge="digest"))
    services.conversations = Conversations(services.engine, services.catalog, services.areas,
                                           handler_settings(config))


async def test_staff_hear_at_once_of_a_pledge_and_of_a_pick_up_request(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    await join(world, aggregator, "staff-timur")
    await pledge(Chat(services.conversations, chat_id="donor-1"), pickup=False)
    await pledge(Chat(services.conversations, chat_id="donor-2"), pickup=True)
    first, second = await notices_to(services, "staff-timur")
    assert first.startswith("A new pledge to your organisation: GP-")
    assert "10 × Staple food packages, which the donor will bring to the posko" in first
    assert second.startswith("A donor asks to be picked up: pledge GP-")
    assert "The address and time are in /incoming." in second
    # What they find there.
    staff = Chat(services.conversations, chat_id="staff-timur")
    await staff.say("/incoming")
    assert "Jl. Kenanga 7, Cipinang" in staff.last.text


async def test_staff_who_chose_the_digest_hear_of_new_pledges_once_per_interval(
        services: Services) -> None:
    in_digest_mode(services)
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    await join(world, aggregator, "staff-timur")
    await pledge(Chat(services.conversations, chat_id="donor-1"), pickup=False)
    await pledge(Chat(services.conversations, chat_id="donor-2"), pickup=True)
    assert await notices_to(services, "staff-timur") == []
    async with services.sessions() as session, session.begin():
        await send_digests(session, world.now + timedelta(minutes=1), timedelta(hours=1))
    assert await notices_to(services, "staff-timur") == [
        "New pledges to your organisation wait, to receive at the posko or to pick up. "
        "Send /incoming to see them."]


async def test_news_of_a_pledge_received_meanwhile_is_not_sent(services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    await join(world, aggregator, "staff-timur")
    await pledge(Chat(services.conversations, chat_id="donor-1"), pickup=False)
    async with services.sessions() as session, session.begin():
        made = await session.scalar(select(Pledge))
        assert made is not None
        await receive_pledge(session, made, 10, world.staff_id, world.now)
    async with services.engine.connect() as connection, connection.begin():
        claimed, skipped = await claim(connection, ["console"], utcnow(), 100,
                                       timedelta(minutes=1), "test")
    [row] = await outbox(services, "notice.pledge_new")
    assert skipped == 1 and (row.status, row.last_error) == ("skipped", "outdated")
    assert row.id not in {c.id for c in claimed}


async def test_a_donor_reads_a_pledge_to_pick_up_as_waiting_to_be_picked_up(
        services: Services) -> None:
    world = AidWorld(services)
    await world.aggregator(TIMUR)
    donor = Chat(services.conversations, chat_id="donor")
    await pledge(donor, pickup=True)
    await donor.say("/status")
    assert "10 staple food packages, waiting to be picked up" in donor.last.text
    assert "received" not in donor.last.text
    # In Indonesian too.
    await donor.say("/language")
    await donor.tap("id")
    await donor.say("/status")
    assert "10 paket sembako, menunggu dijemput" in donor.last.text
    assert "diterima" not in donor.last.text
