"""One person on two apps: contacts whose platform-verified phone numbers are equal are
linked, so that a household is not registered twice and news reaches the person on the
app they use (the one they used last, unless configured otherwise).

A contact's `person_id` is the id of the first contact of its person; a contact never
linked has none and is a person of its own.

A number can change hands (a SIM recycled, a number taken over): whoever proves it on a
second app would join its former owner's person and see their requests and pledges. So
the person is told on the app(s) they had, with a button "this was not me" that takes
the new contact apart again, for good, and is recorded for the operator.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gotong.models.audit import audit
from gotong.models.contact import Contact, release_user_id
from gotong.models.conversation import Conversation
from gotong.models.outbox import Claimed, Notice, OutboxMessage, OutboxStatus, enqueue

# The notice of a link by phone, and its button: context, and the option "undo:<id of the
# contact linked>:<its link token>".
LINKED_NOTICE = "notice.phone_linked"
LINK_CONTEXT = "ln"
UNDO = "undo"
# Names of the apps, as the notice names the one linked.
APP_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp"}
# Notices that stay with the contact they were written for, whatever app the person used
# last: "your number was linked to the other app" must reach the app they had before.
STAYS_WITH_CONTACT = frozenset({LINKED_NOTICE})


class LinkedDelivery(enum.StrEnum):
    """Where news for a person with contacts on several apps goes."""

    LAST_USED = "last_used"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"


async def link_by_phone(session: AsyncSession, contact_id: int, phone: str, now: datetime
                        ) -> int | None:
    """Link the contact with those of other apps that have the same verified phone;
    returns the person's id, or None when there is no one to link with.

    The contacts that were the person before hear of it, each on its own app, with a
    button to undo it (`unlink`). A contact the person once said was not theirs is never
    linked by its phone again."""
    found = (await session.execute(
        select(Contact.id, Contact.person_id, Contact.unlinked_at)
        .where(or_(Contact.verified_phone == phone, Contact.id == contact_id)))).all()
    if any(f.id == contact_id and f.unlinked_at is not None for f in found):
        return None
    found = [f for f in found if f.unlinked_at is None]
    before = set(await person_contact_ids(session, contact_id))
    person_id = await _link(session, contact_id, found)
    if person_id is None:
        return None
    joined = [c for c in await person_contact_ids(session, contact_id) if c not in before]
    if joined:
        await _tell_linked(session, contact_id, joined, now)
    return person_id


async def _tell_linked(session: AsyncSession, contact_id: int, told: Sequence[int],
                       now: datetime) -> None:
    """The contacts that were the person before the link hear that the contact's app
    joined them, with a button for "this was not me"."""
    token = secrets.token_urlsafe(12)
    channel = await session.scalar(select(Contact.channel).where(Contact.id == contact_id))
    await session.execute(update(Contact).where(Contact.id == contact_id)
                          .values(phone_linked_at=now, link_token=token)
                          .execution_options(synchronize_session=False))
    app = APP_NAMES.get(channel or "", (channel or "").title())
    for other in told:
        enqueue(session, Notice(
            contact_id=other, key=LINKED_NOTICE, params={"app": app},
            actions=((LINK_CONTEXT, f"{UNDO}:{contact_id}:{token}", "notice.not_me"),)),
            now)
    audit(session, now, "phone_link", "done", contact_id=contact_id,
          detail=f"{len(told)} contacts told")
    # The unit of work may have flushed its session for the last time already.
    await session.flush()


class UnlinkRefused(Exception):
    """The button is not (or no longer) one to take this contact apart."""


async def unlink(session: AsyncSession, by_contact_id: int, contact_id: int, token: str,
                 now: datetime) -> list[int]:
    """The person, on an app they had, says the link of another contact by their phone
    was not them: that contact leaves the person (it goes on as a contact of its own,
    with only what it did itself), is never linked by its phone again, and the operator
    finds it in the audit log. Returns the contacts that stay the person.

    Only with the secret of the notice sent to the person's earlier contacts, from one of
    them, while the two are still linked: a forged, stale or foreign button changes
    nothing (UnlinkRefused)."""
    linked = await session.get(Contact, contact_id, populate_existing=True)
    if linked is None or linked.link_token is None or by_contact_id == contact_id \
            or not secrets.compare_digest(token.encode(), linked.link_token.encode()) \
            or not await same_person(session, by_contact_id, contact_id):
        audit(session, now, "phone_unlink", "refused", contact_id=by_contact_id)
        raise UnlinkRefused()
    staying = [c for c in await person_contact_ids(session, contact_id) if c != contact_id]
    await session.execute(update(Contact).where(Contact.id == contact_id).values(
        person_id=None, link_token=None, unlinked_at=now)
        .execution_options(synchronize_session=False))
    # The person's id is its first contact's: the one that left may have been it.
    await session.execute(update(Contact).where(Contact.id.in_(staying)).values(
        person_id=min(staying) if len(staying) > 1 else None)
        .execution_options(synchronize_session=False))
    await session.refresh(linked)
    audit(session, now, "phone_unlink", "done", contact_id=by_contact_id,
          detail=f"contact {contact_id} unlinked")
    return staying


async def link_contacts(session: AsyncSession | AsyncConnection, contact_id: int,
                        others: Sequence[int]) -> int | None:
    """Link the contact with others the platform says are the same person (an earlier
    contact of theirs, known by another address); returns the person's id."""
    found = (await session.execute(
        select(Contact.id, Contact.person_id)
        .where(Contact.id.in_([contact_id, *others])))).all()
    return await _link(session, contact_id, found)


async def _link(session: AsyncSession | AsyncConnection, contact_id: int,
                found: Sequence[Any]) -> int | None:
    if not any(f.id != contact_id for f in found):
        return None
    linked: list[int] = [*(f.id for f in found),
                         *(f.person_id for f in found if f.person_id is not None)]
    person_id = min(linked)
    await session.execute(
        update(Contact)
        .where(or_(Contact.id.in_(linked), Contact.person_id.in_(linked)))
        .values(person_id=person_id).execution_options(synchronize_session=False))
    return person_id


@dataclass(frozen=True)
class Moved:
    """A person's contact at their new address (its id and chat id)."""

    contact_id: int
    chat_id: str


async def move_contact(session: AsyncSession, contact: Contact, chat_id: str, *,
                       verified_phone: str | None, user_id: str | None, now: datetime
                       ) -> Moved | None:
    """The person now takes messages at another address (WhatsApp: a new number, with
    a new user id). Their contact moves there with everything it holds, requests,
    pledges, roles and answers alike; None when it is there already.

    When a contact is at the new address already (the person wrote from it before), it
    is the one from now on: the two are linked as one person, and what waited for the
    old address waits for it; the old address, which may be someone else's now, is
    written to no more."""
    if contact.chat_id == chat_id:
        return None
    there = await session.scalar(select(Contact).where(
        Contact.channel == contact.channel, Contact.chat_id == chat_id))
    target = there or contact
    others = await release_user_id(session, contact.channel, user_id, target.id) \
        if user_id else []
    if there is None:
        contact.chat_id = chat_id
        contact.platform_user_id = user_id
        # Unreachable was the old number's news.
        contact.unreachable_at = None
    else:
        others = [*others, contact.id]
        contact.unreachable_at = now
        contact.platform_user_id = None
        if user_id:
            there.platform_user_id = user_id
    if verified_phone:
        target.verified_phone = verified_phone
    await session.flush()
    if there is not None:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.contact_id == contact.id,
                   OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.HELD)))
            .values(contact_id=there.id).execution_options(synchronize_session=False))
    if others:
        await link_contacts(session, target.id, sorted(set(others)))
    if verified_phone:
        # The new number on another app: the same person.
        await link_by_phone(session, target.id, verified_phone, now)
    return Moved(target.id, chat_id)


async def change_user_id(session: AsyncSession, contact: Contact, user_id: str) -> None:
    """The platform gave the person a new user id (their number unchanged). A contact
    addressed by the old one (no number known) takes the new one as its address."""
    if contact.platform_user_id == user_id:
        return
    others = await release_user_id(session, contact.channel, user_id, contact.id)
    taken = await session.scalar(select(Contact.id).where(
        Contact.channel == contact.channel, Contact.chat_id == user_id))
    if contact.chat_id == contact.platform_user_id and taken is None:
        contact.chat_id = user_id
    contact.platform_user_id = user_id
    await session.flush()
    if others:
        await link_contacts(session, contact.id, others)


async def person_contact_ids(session: AsyncSession, contact_id: int) -> list[int]:
    """Every contact of the contact's person (itself included)."""
    ids = await session.scalars(person_contacts(contact_id).order_by(Contact.id))
    return list(ids.all()) or [contact_id]


def person_contacts(contact_id: int) -> Select[int]:
    """The ids of every contact of the contact's person, as one statement (to read, or to
    use inside another); none for a contact that does not exist."""
    person = select(func.coalesce(Contact.person_id, Contact.id)) \
        .where(Contact.id == contact_id).scalar_subquery()
    return select(Contact.id).where(or_(Contact.id == person, Contact.person_id == person))


async def lock_person(session: AsyncSession, contact_id: int) -> list[int]:
    """Lock every contact of the contact's person (PostgreSQL; SQLite has one writer at a
    time), in id order as everyone who locks a person's contacts does, so that two such
    transactions wait for each other instead of deadlocking; their ids."""
    return list((await session.scalars(
        person_contacts(contact_id).order_by(Contact.id).with_for_update())).all())


async def same_person(session: AsyncSession, contact_id: int, other_id: int) -> bool:
    return contact_id == other_id or other_id in await person_contact_ids(session, contact_id)


@dataclass(frozen=True)
class _Candidate:
    id: int
    person_id: int
    channel: str
    chat_id: str
    language: str
    active_at: datetime | None
    last_inbound_at: datetime | None
    reachable: bool


async def route_to_person(connection: AsyncConnection, rows: Sequence[Claimed],
                          preference: LinkedDelivery, channels: Sequence[str]
                          ) -> list[Claimed]:
    """Send each notice of a linked person to the contact of their choice: the app they
    used last, or the configured one when it can reach them. Direct replies stay in the
    chat they answer."""
    contact_ids = {row.contact_id for row in rows if row.body is None}
    if not contact_ids:
        return list(rows)
    persons = dict((await connection.execute(
        select(Contact.id, Contact.person_id)
        .where(Contact.id.in_(contact_ids), Contact.person_id.is_not(None)))).all())
    if not persons:
        return list(rows)
    c = Contact
    found = (await connection.execute(
        select(c.id, c.person_id, c.channel, c.chat_id, c.language, c.unreachable_at,
               c.last_inbound_at, Conversation.updated_at)
        .outerjoin(Conversation, Conversation.contact_id == c.id)
        .where(or_(c.person_id.in_(set(persons.values())), c.id.in_(set(persons.values())))))
    ).all()
    by_person: dict[int, list[_Candidate]] = {}
    for r in found:
        person = r.person_id if r.person_id is not None else r.id
        reachable = r.unreachable_at is None or (r.updated_at is not None
                                                 and r.updated_at > r.unreachable_at)
        by_person.setdefault(person, []).append(_Candidate(
            r.id, person, r.channel, r.chat_id, r.language, r.updated_at, r.last_inbound_at,
            reachable))
    held = set((await connection.scalars(
        select(OutboxMessage.contact_id).distinct()
        .where(OutboxMessage.contact_id.in_([r.id for r in found]),
               OutboxMessage.status == OutboxStatus.HELD))).all())
    routed = []
    for row in rows:
        person = persons.get(row.contact_id)
        if row.body is not None or person is None or row.message_key in STAYS_WITH_CONTACT:
            routed.append(row)
            continue
        choice = _choose(by_person.get(person, []), preference, channels)
        if choice is None or choice.id == row.contact_id:
            routed.append(row)
            continue
        # The person is told on the chosen app: what happens to the message (a block,
        # the 24-hour window) is that contact's.
        routed.append(replace(
            row, contact_id=choice.id, channel=choice.channel, chat_id=choice.chat_id,
            language=choice.language, last_inbound_at=choice.last_inbound_at,
            held_before=any(c.id in held for c in by_person[person])))
    return routed


def _choose(candidates: list[_Candidate], preference: LinkedDelivery,
            channels: Sequence[str]) -> _Candidate | None:
    usable = [c for c in candidates if c.reachable and c.channel in channels]
    if not usable:
        return None
    if preference != LinkedDelivery.LAST_USED:
        chosen = [c for c in usable if c.channel == preference.value]
        if chosen:
            return chosen[0]
    return max(usable, key=lambda c: (c.active_at is not None,
                                      c.active_at or datetime.min, c.id))
