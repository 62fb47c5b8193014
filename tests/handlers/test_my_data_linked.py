"""A contact joined to a person by its phone a moment ago cannot read or erase what the
person's other apps hold: whoever got the number of someone else must not get their
data, while that person is told and can undo the link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gotong.bot.services import Services, is_sqlite
from gotong.handlers.messages import Incoming, Kind, Reply
from gotong.models.contact import Contact
from gotong.models.person import link_by_phone
from tests.chat import Chat
from tests.handlers.race import held
from tests.handlers.test_my_data import tables_holding
from tests.handlers.test_support import contact_of, registered
from tests.models.aid_world import AidWorld

PHONE = "+6281277778888"



async def test_an_app_linked_by_phone_a_moment_ago_can_neither_read_nor_erase(
        services: Services) -> None:
    world = AidWorld(services)
    await world.aggregator("Jakarta Timur")
    owner, owner_id = await registered(world, "owner", world.village("Jakarta Timur"))
    newcomer = Chat(services.conversations, chat_id="newcomer")
    await newcomer.say("/start")
    newcomer_id = await contact_of(services, "newcomer")
    # The number the owner gave is now proved by another app (a SIM handed on, say).
    async with services.sessions() as session, session.begin():
        for contact_id in (owner_id, newcomer_id):
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            contact.verified_phone = PHONE
        await link_by_phone(session, newcomer_id, PHONE, world.now)
    for command in ("/my_data", "/delete_my_data"):
        await newcomer.say(command)
        assert "less than 3 days ago" in newcomer.last.text
        assert "Dewi" not in "\n".join(reply.text for reply in newcomer.replies[-3:])
    await owner.say("/status")
    assert "GT-" in owner.last.text
    # The owner, on the app they had, still can.
    await owner.say("/my_data")
    assert "Dewi Lestari" in "\n".join(reply.text for reply in owner.replies[-4:])


async def test_a_message_on_one_app_while_the_person_erases_on_the_other_writes_nothing_back(
        services: Services) -> None:
    if is_sqlite(services.config.database.url):
        pytest.skip("SQLite has one writer at a time: nothing to race")
    world = AidWorld(services)
    await world.aggregator("Jakarta Timur")
    telegram, telegram_id = await registered(world, "on-telegram",
                                             world.village("Jakarta Timur"))
    other = Chat(services.conversations, chat_id="on-whatsapp")
    await other.say("/start")
    other_id = await contact_of(services, "on-whatsapp")
    async with services.sessions() as session, session.begin():
        for contact_id in (telegram_id, other_id):
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            contact.verified_phone = PHONE
            contact.platform_user_id = f"user-{contact_id}"
            contact.person_id = telegram_id if contact_id != telegram_id else None
            contact.created_at = world.now - timedelta(days=30)
    # This process has the chat's contact in memory, phone and all.
    await other.say("/menu")
    await telegram.say("/delete_my_data")
    [confirm] = [o.id for o in telegram.last.options if o.id.startswith("yes:")]

    async def write(chat: Chat) -> list[Reply]:
        # Its contact changes (the time it last wrote): written back at the end.
        return await chat.handle(Incoming(channel="console", chat_id=chat.chat_id,
                                          kind=Kind.TEXT, text="halo", language_hint="en",
                                          sent_at=world.now + timedelta(minutes=5)))

    async def erase_it() -> list[Reply]:
        return await telegram.tap(confirm, context="erase")

    # The message is held just before it writes its contact, read before the erasure;
    # the erasure runs and commits meanwhile.
    await held(services, other, write, "UPDATE contact ", erase_it, wait=1.0)
    async with services.sessions() as session:
        erased = (await session.scalars(select(Contact).where(
            Contact.id.in_([telegram_id, other_id])))).all()
    assert [(c.verified_phone, c.platform_user_id, c.chat_id.startswith("erased:"))
            for c in erased] == [(None, None, True)] * 2
    assert await tables_holding(services, [PHONE.removeprefix("+"), "Dewi"]) == {}
