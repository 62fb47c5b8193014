"""Who hears what: the rules turn an event into outbox rows, in the transaction of the
change, and hand the actor's own message back for the direct reply."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gotong.bot.services import Services
from gotong.handlers.catalog import Catalog
from gotong.handlers.notices import notice_reply, render_notice
from gotong.handlers.turn import UnitOfWork
from gotong.models.base import utcnow
from gotong.models.contact import Contact, ContactRole
from gotong.models.help_request import NewRequest, submit_request
from gotong.models.notifications import RULES, Event, Subject, announce
from gotong.models.outbox import Notice, Purpose, enqueue
from tests.lookups import outbox


async def new_contact(services: Services, chat: str) -> int:
    async with services.sessions() as session, session.begin():
        contact = Contact(channel="telegram", chat_id=chat, language="en", created_at=utcnow())
        session.add(contact)
        await session.flush()
        return contact.id


def a_request(village_id: int) -> NewRequest:
    return NewRequest(head_name="Siti Aminah", phone="+6281234567890", nik=None,
                      village_id=village_id, street="Jl. Melati 5", rt="3", rw="5",
                      household_size=4, vulnerabilities=[], needs=["food"], needs_other=None)


async def test_every_event_has_a_rule() -> None:
    assert set(RULES) == set(Event)


async def test_the_household_that_submits_hears_it_in_the_reply(services: Services) -> None:
    contact_id = await new_contact(services, "1")
    village = services.areas.children(services.areas.children(
        services.areas.regencies()[0].id)[0].id)[0].id
    async with services.sessions() as session, session.begin():
        request, notices = await submit_request(
            session, contact_id, a_request(village), now=utcnow(),
            duplicate_window=timedelta(days=90))
        roles = (await session.scalars(select(ContactRole.role))).all()
    assert [(n.contact_id, n.key, n.essential) for n in notices] == [
        (contact_id, "notice.request_submitted", True)]
    assert notices[0].params == {"reference": request.reference,
                                 "status": {"key": "status.submitted"}}
    assert await outbox(services) == []
    assert list(roles) == ["household"]


async def test_an_event_by_someone_else_is_written_to_the_outbox(
        services: Services, catalog: Catalog) -> None:
    contact_id = await new_contact(services, "2")
    async with services.sessions() as session, session.begin():
        notices = await announce(session, Event.DIALOG_UNFINISHED,
                                 Subject(contact_id=contact_id, menu_item="request",
                                         params={"what": {"key": "menu.request"}}),
                                 utcnow())
        assert session.info.get("outbox_written") is True
    assert notices == []
    [row] = await outbox(services)
    assert (row.contact_id, row.message_key, row.priority, row.essential, row.status) == (
        contact_id, "notice.dialog_unfinished", Purpose.REMINDER, False, "pending")
    assert row.actions == [["menu", "request", "notice.continue"]]
    # Rendered in each language when sent, the parameter too.
    for language, label, words in (("en", "Continue", "Request help"),
                                   ("id", "Lanjutkan", "Minta bantuan")):
        reply = render_notice(catalog, language, row.message_key or "", row.params,
                              row.actions)
        assert f'"{words}"' in reply.text
        assert [(o.id, o.label) for o in reply.options] == [("request", label)]
        assert reply.context == "menu"


async def test_a_notice_for_the_actor_renders_like_a_sent_one(catalog: Catalog) -> None:
    notice = Notice(contact_id=1, key="notice.request_submitted",
                    params={"reference": "GT-ABCDE", "status": {"key": "status.submitted"}})
    reply = notice_reply(catalog, "id", notice)
    assert "GT-ABCDE" in reply.text and "menunggu verifikasi" in reply.text


async def test_the_unit_of_work_knows_when_it_wrote_outbox_rows(services: Services) -> None:
    contact_id = await new_contact(services, "3")
    async with services.engine.connect() as connection, connection.begin():
        work = UnitOfWork(connection)
        assert not work.wrote_outbox
        # A session used only to read writes nothing.
        assert await work.session.scalar(select(Contact.id)) == contact_id
        assert not work.wrote_outbox
        enqueue(work.session, Notice(contact_id=contact_id, key="notice.request_cancelled",
                                     params={"reference": "GT-ABCDE"}), utcnow())
        await work.flush()
        assert work.wrote_outbox
        await work.close()
