"""A contact joined to a person by its phone a moment ago cannot read or erase what the
person's other apps hold: whoever got the number of someone else must not get their
data, while that person is told and can undo the link."""

from __future__ import annotations

from gotong.bot.services import Services
from gotong.models.contact import Contact
from gotong.models.person import link_by_phone
from tests.chat import Chat
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
