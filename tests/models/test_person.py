"""Linking contacts of one person by their verified phone, and where their news goes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from gotong.bot.services import Services
from gotong.models.base import utcnow
from gotong.models.broadcast import Audience, count_recipients, queue_broadcast
from gotong.models.contact import Contact, Role, grant_role
from gotong.models.conversation import Conversation
from gotong.models.delivery import Delivery
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import Claimed
from gotong.models.person import (
    LinkedDelivery,
    UnlinkRefused,
    link_by_phone,
    person_contact_ids,
    route_to_person,
    same_person,
    unlink,
)
from gotong.models.rules import NotAllowed
from gotong.models.tasks import household_answer, rate
from tests.lookups import outbox
from tests.models.test_tasks import Mile

PHONE = "+6281234567890"


async def add(services: Services, *rows: tuple[str, str, str | None]) -> list[int]:
    now = utcnow()
    async with services.sessions() as session, session.begin():
        result = await session.execute(insert(Contact).returning(Contact.id), [
            {"channel": channel, "chat_id": chat_id, "language": "id", "created_at": now,
             "verified_phone": phone} for channel, chat_id, phone in rows])
        return list(result.scalars().all())


async def test_contacts_with_one_verified_phone_become_one_person(services: Services
                                                                  ) -> None:
    telegram, whatsapp, stranger, unverified = await add(
        services, ("telegram", "1", PHONE), ("whatsapp", "6281234567890", PHONE),
        ("whatsapp", "6289999999999", "+6289999999999"), ("telegram", "2", None))
    async with services.sessions() as session, session.begin():
        assert await link_by_phone(session, stranger, "+6289999999999", utcnow()) is None
        assert await link_by_phone(session, whatsapp, PHONE, utcnow()) == telegram
    async with services.sessions() as session:
        for contact in (telegram, whatsapp):
            assert await person_contact_ids(session, contact) == [telegram, whatsapp]
        assert await person_contact_ids(session, stranger) == [stranger]
        assert await same_person(session, whatsapp, telegram)
        assert not await same_person(session, whatsapp, stranger)
        assert not await same_person(session, unverified, telegram)
        assert await same_person(session, unverified, unverified)
    # A third contact that shares the number joins the same person, and linking again
    # changes nothing.
    [third] = await add(services, ("telegram", "3", PHONE))
    async with services.sessions() as session, session.begin():
        assert await link_by_phone(session, third, PHONE, utcnow()) == telegram
        assert await link_by_phone(session, whatsapp, PHONE, utcnow()) == telegram
    async with services.sessions() as session:
        assert await person_contact_ids(session, third) == [telegram, whatsapp, third]


def claimed(contact_id: int, *, body: dict[str, object] | None = None) -> Claimed:
    return Claimed(id=1, contact_id=contact_id, channel="telegram", chat_id="1",
                   language="id", priority=1, message_key="notice.request_verified",
                   params={}, actions=[], body=body, parts_sent=0, attempts=0,
                   broadcast_text=None)


async def test_news_goes_to_the_app_used_last_that_can_reach_the_person(
        services: Services) -> None:
    telegram, whatsapp = await add(services, ("telegram", "1", PHONE),
                                   ("whatsapp", "6281234567890", PHONE))
    now = utcnow()
    async with services.sessions() as session, session.begin():
        await link_by_phone(session, whatsapp, PHONE, utcnow())
        session.add_all([
            Conversation(contact_id=telegram, updated_at=now - timedelta(hours=2)),
            Conversation(contact_id=whatsapp, updated_at=now - timedelta(hours=1))])
    both = ("telegram", "whatsapp")

    async def where(preference: LinkedDelivery, channels: tuple[str, ...] = both,
                    row: Claimed | None = None) -> tuple[int, str, str]:
        async with services.engine.connect() as connection:
            [routed] = await route_to_person(connection, [row or claimed(telegram)],
                                             preference, channels)
        return routed.contact_id, routed.channel, routed.chat_id

    assert await where(LinkedDelivery.LAST_USED) == (whatsapp, "whatsapp", "6281234567890")
    assert await where(LinkedDelivery.TELEGRAM) == (telegram, "telegram", "1")
    assert await where(LinkedDelivery.WHATSAPP) == (whatsapp, "whatsapp", "6281234567890")
    # A process that does not send on WhatsApp keeps the news on Telegram.
    assert await where(LinkedDelivery.LAST_USED, ("telegram",)) == (telegram, "telegram", "1")
    # A direct reply stays in the chat it answers.
    assert await where(LinkedDelivery.LAST_USED, row=claimed(telegram, body={})) == (
        telegram, "telegram", "1")
    # Blocked on WhatsApp (and silent since): Telegram it is.
    async with services.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == whatsapp)
                              .values(unreachable_at=now))
    assert await where(LinkedDelivery.LAST_USED) == (telegram, "telegram", "1")
    assert await where(LinkedDelivery.WHATSAPP) == (telegram, "telegram", "1")


async def test_a_broadcast_reaches_a_person_once_on_two_apps(services: Services) -> None:
    telegram, whatsapp, other = await add(
        services, ("telegram", "1", PHONE), ("whatsapp", "6281234567890", PHONE),
        ("telegram", "2", None))
    async with services.sessions() as session, session.begin():
        await link_by_phone(session, whatsapp, PHONE, utcnow())
        for contact_id in (telegram, whatsapp, other):
            await grant_role(session, contact_id, Role.HOUSEHOLD, utcnow())
    everyone = Audience(role=Role.HOUSEHOLD)
    async with services.sessions() as session:
        assert await count_recipients(session, everyone) == 2
    # Queued one contact id at a time: the person's two contacts are still one person
    # (the batches go by the person's first contact), and the id of their second
    # contact, which no person has as key, is skipped.
    assert (telegram, whatsapp, other) == (1, 2, 3)
    queued: list[int] = []
    broadcast = await queue_broadcast(services.sessions, "Posko tutup besok.", everyone,
                                      utcnow(), batch=1, progress=queued.append)
    assert broadcast.recipients == 2
    assert queued == [1, 2]
    # The person's one row goes to the app they use (the dispatcher routes it).
    assert {m.contact_id for m in await outbox(services)} == {telegram, other}


async def test_a_household_answers_from_its_other_app(services: Services) -> None:
    """News of a delivery may reach the person on the app they use; their answer there
    counts as the household's."""
    mile = await Mile(services).setup()
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    household = (await mile.request(task)).contact_id
    [elsewhere, stranger] = await add(services, ("whatsapp", "6281234567890", PHONE),
                                      ("whatsapp", "6289999999999", "+6289999999999"))
    async with services.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == household)
                              .values(verified_phone=PHONE))
        await link_by_phone(session, elsewhere, PHONE, utcnow())
    async def confirm(contact_id: int) -> None:
        async with services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, task)
            assert delivery is not None
            await household_answer(session, services.areas, delivery, True, contact_id,
                                   mile.now)
            await rate(session, delivery, contact_id, 5, mile.now)

    with pytest.raises(NotAllowed):
        await confirm(stranger)
    await confirm(elsewhere)
    delivered = await mile.get(task)
    assert (delivered.status, delivered.rating) == ("delivered", 5)
    async with services.sessions() as session:
        request = await session.get(HelpRequest, delivered.request_id)
        assert request is not None and request.status == "delivered"


async def test_a_link_taken_apart_leaves_the_others_one_person(services: Services) -> None:
    """The contact taken apart was the person's first (its id is the person's): the
    others stay one person under the first of them, and it is never linked again."""
    first, whatsapp, telegram = await add(services, ("telegram", "1", None),
                                          ("whatsapp", "6281234567890", PHONE),
                                          ("telegram", "3", PHONE))
    now = utcnow()
    async with services.sessions() as session, session.begin():
        await link_by_phone(session, telegram, PHONE, now)
    [told] = await outbox(services, "notice.phone_linked")
    assert told.contact_id == whatsapp
    async with services.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == first)
                              .values(verified_phone=PHONE))
        assert await link_by_phone(session, first, PHONE, now) == first
    rows = await outbox(services, "notice.phone_linked")
    assert sorted(r.contact_id for r in rows[1:]) == [whatsapp, telegram]
    token = rows[-1].actions[0][1].split(":")[2]
    async with services.sessions() as session, session.begin():
        with pytest.raises(UnlinkRefused):
            await unlink(session, first, first, token, now)
        assert await unlink(session, whatsapp, first, token, now) == [whatsapp, telegram]
    async with services.sessions() as session, session.begin():
        assert await person_contact_ids(session, telegram) == [whatsapp, telegram]
        assert await person_contact_ids(session, first) == [first]
        assert await link_by_phone(session, first, PHONE, now) is None
        assert await link_by_phone(session, whatsapp, PHONE, now) == whatsapp
        assert await person_contact_ids(session, first) == [first]
        with pytest.raises(UnlinkRefused):
            await unlink(session, whatsapp, first, token, now)
