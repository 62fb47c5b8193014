"""Erasing a person's personal data (UU 27/2022), on their demand or once it is old.

What the aid record needs stays, as rows with the personal columns blanked and their
links intact: a request keeps its kelurahan, household size, needs, status, history of
statuses and dates; a delivery its aggregator, category, quantity, status, dates and
rating; a pledge its aggregator, category, quantities, target area and status. So the
public figures, the exports' counts and the donors' reports stay true, and nothing left
names, reaches or identifies the person: names, phones, addresses, the NIK's hash and last
digits, what they typed, their conversation, the payloads and addresses of their chats'
updates, and the messages to them.

A person's contacts (on every linked app) become tombstones: kept for the rows that point
at them, at an address no platform has ("erased:<id>"), with no phone and no roles. The
chat they wrote from is free again, and their next message starts afresh.

Retention does the same to the requests and pledges closed more than
`privacy.retention_days` ago (`erase_expired`, run daily by the dispatcher), and to
drafts left as long; the contact itself stays as long as the person writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Text, and_, cast, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.aggregator import Aggregator, StaffMember
from gotong.models.area import AreaDirectory
from gotong.models.audit import audit
from gotong.models.contact import Contact, ContactRole
from gotong.models.conversation import Conversation
from gotong.models.dashboard import DashboardSession, SignInLink
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.digest import Digest
from gotong.models.fulfilment import mark_delivered
from gotong.models.help_request import OPEN_STATUSES, HelpRequest, RequestEvent, own_requests
from gotong.models.inbound import InboundUpdate
from gotong.models.notifications import Event, Subject, announce
from gotong.models.outbox import OutboxMessage, OutboxStatus
from gotong.models.person import person_contact_ids
from gotong.models.phone_confirmation import PhoneConfirmation, forget_questions
from gotong.models.pledge import Pledge, PledgeStatus
from gotong.models.proxy import Proxy
from gotong.models.request_status import RequestStatus
from gotong.models.support import (
    TEXT_NOTICES,
    SupportConversation,
    SupportMessage,
    SupportStatus,
)
from gotong.models.tasks import WITHDRAWABLE, leave, withdraw
from gotong.models.volunteer import Volunteer, VolunteerStatus

# What stands where a name, phone or address was: readable in any language, and never
# equal to anything a person can type into those fields.
ERASED = "-"
# The address of a contact whose person was erased: no platform has it.
TOMBSTONE_PREFIX = "erased:"
# Requests whose personal data retention erases, once closed long enough.
CLOSED_STATUSES = (RequestStatus.DELIVERED, RequestStatus.CANCELLED, RequestStatus.REJECTED,
                   RequestStatus.CLOSED)
# Values shorter than this are not looked for in other people's messages: they would
# match too much.
MIN_SCRUBBED = 3
# Rows erased per transaction by retention.
RETENTION_BATCH = 100


@dataclass
class Erased:
    """What erasing a person did, for the answer they get."""

    requests_closed: list[str] = field(default_factory=list)
    pledges_cancelled: list[str] = field(default_factory=list)
    # Aggregators whose staff they no longer are.
    staff_of: list[str] = field(default_factory=list)
    volunteered: bool = False


# --- the rows of the aid record, blanked -----------------------------------------------


def _values(*found: str | None) -> set[str]:
    return {value for value in found if value and value != ERASED}


async def erase_request(session: AsyncSession, request: HelpRequest, now: datetime) -> set[str]:
    """Blank a request's personal data, its deliveries' and its history's notes; returns
    the values blanked (to be looked for in other people's messages)."""
    values = _values(request.head_name, request.phone, request.street, request.needs_other,
                     request.nik_hash, _digits(request.phone))
    request.head_name = request.phone = request.street = ERASED
    request.rt = request.rw = ERASED
    request.nik_hash = request.nik_last4 = None
    request.needs_other = None
    # Health and circumstances (disability, pregnancy, illness): the priority they gave
    # is history now.
    request.vulnerabilities = []
    # Unique per request, and never the key of a registration (name|kelurahan|...): an
    # erased household is no one's duplicate.
    request.identity_key = f"{TOMBSTONE_PREFIX}{request.id}"
    request.erased_at = now
    # A phone a proxy gave for the household, not yet confirmed, goes with the rest.
    await forget_questions(session, request_ids=[request.id])
    await session.execute(
        update(Delivery).where(Delivery.request_id == request.id)
        .values(code=None, override_reason=None, failure_reason=None, proof_media_id=None,
                proof_latitude=None, proof_longitude=None, rating_comment=None)
        .execution_options(synchronize_session=False))
    await session.execute(
        update(RequestEvent).where(RequestEvent.request_id == request.id)
        .values(note=None).execution_options(synchronize_session=False))
    return values


def erase_pledge(pledge: Pledge, now: datetime) -> set[str]:
    values = _values(pledge.donor_name, pledge.phone, pledge.pickup_address,
                     pledge.pickup_window, _digits(pledge.phone))
    pledge.donor_name = pledge.phone = ERASED
    pledge.pickup_address = pledge.pickup_window = None
    pledge.erased_at = now
    return values


def _digits(phone: str | None) -> str | None:
    """A phone as WhatsApp writes it (no "+"), to be found where it appears so."""
    return phone.lstrip("+") if phone else None


def _json_forms(value: str) -> set[str]:
    """The value as it appears in a JSON column (non-ASCII letters escaped) and as is."""
    return {value, json.dumps(value)[1:-1]}


async def scrub_messages(session: AsyncSession, values: Iterable[str],
                         except_contacts: Collection[int] = (),
                         only_contacts: Collection[int] | None = None) -> int:
    """Clear other people's messages (outbox rows, digests) that carry any of these
    values: a volunteer's task, staff's screen that showed the household. Rows still
    waiting are not sent any more. With `only_contacts`, only the messages to them (and
    no digest). Returns the rows cleared."""
    forms = sorted({form for value in values if len(value) >= MIN_SCRUBBED
                    for form in _json_forms(value)})
    if not forms or (only_contacts is not None and not only_contacts):
        return 0
    params, body = cast(OutboxMessage.params, Text), cast(OutboxMessage.body, Text)
    matches = or_(*(column.contains(form, autoescape=True)
                    for form in forms for column in (params, body)))
    query = select(OutboxMessage.id).where(matches)
    if except_contacts:
        query = query.where(OutboxMessage.contact_id.not_in(list(except_contacts)))
    if only_contacts is not None:
        query = query.where(OutboxMessage.contact_id.in_(list(only_contacts)))
    ids = list((await session.scalars(query)).all())
    if ids:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(ids))
            .values(params={}, body=None).execution_options(synchronize_session=False))
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids),
                   OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.HELD)))
            .values(status=OutboxStatus.SKIPPED).execution_options(synchronize_session=False))
    if only_contacts is not None:
        return len(ids)
    digest_params = cast(Digest.params, Text)
    digests = await session.execute(
        delete(Digest).where(or_(*(digest_params.contains(form, autoescape=True)
                                   for form in forms)))
        .execution_options(synchronize_session=False))
    return len(ids) + int(digests.rowcount or 0)  # type: ignore[attr-defined]


# --- a person, on their demand ----------------------------------------------------------


async def erase_person(session: AsyncSession, areas: AreaDirectory, contact_id: int,
                       now: datetime, *, why: str = "done") -> Erased:
    """Erase everything Gotong holds about the person of this contact, on every linked
    app. What is open of theirs is closed first, and those working on it are told.
    `why` is the audit entry's outcome."""
    erased = Erased()
    contact_ids = await person_contact_ids(session, contact_id)
    # Locked (PostgreSQL), in id order as everyone who locks a person's contacts does,
    # before anything of theirs is read: an answer "yes, that is us" on their other app
    # at this moment (models/phone_confirmation.py) either comes first, and its request
    # is read below and erased with the rest, or waits and finds its question gone.
    contacts = list((await session.scalars(
        select(Contact).where(Contact.id.in_(contact_ids)).order_by(Contact.id)
        .with_for_update().execution_options(populate_existing=True))).all())
    values: set[str] = set()
    for contact in contacts:
        values |= _values(contact.verified_phone, _digits(contact.verified_phone))

    # Not the households they registered as a proxy: those are the households' own.
    requests = list((await session.scalars(
        select(HelpRequest).where(own_requests(contact_ids))
        .order_by(HelpRequest.id))).all())
    for request in requests:
        if request.status in OPEN_STATUSES:
            await _close_request(session, areas, request, contact_id, now)
            erased.requests_closed.append(request.reference)

    pledges = list((await session.scalars(
        select(Pledge).where(Pledge.contact_id.in_(contact_ids)).order_by(Pledge.id))).all())
    for pledge in pledges:
        if pledge.status == PledgeStatus.PLEDGED:
            pledge.status = PledgeStatus.CANCELLED
            pledge.updated_at = now
            await session.flush()
            await announce(session, Event.PLEDGE_WITHDRAWN,
                           Subject(pledge=pledge, aggregator_id=pledge.aggregator_id),
                           now, contact_id)
            erased.pledges_cancelled.append(pledge.code)

    for volunteer in (await session.scalars(
            select(Volunteer).where(Volunteer.contact_id.in_(contact_ids)))).all():
        erased.volunteered = True
        values |= _values(volunteer.name, volunteer.phone, _digits(volunteer.phone))
        # Blanked first: staff hear of the tasks handed back without the name.
        volunteer.name = volunteer.phone = ERASED
        if volunteer.status == VolunteerStatus.APPROVED:
            await leave(session, volunteer, now)
        volunteer.status = VolunteerStatus.LEFT
    await session.flush()

    # A proxy: their name and phone go, and so does their phone where it stood in for a
    # household's; the households they registered stay, and staff still see that a proxy
    # registered them.
    for proxy in (await session.scalars(
            select(Proxy).where(Proxy.contact_id.in_(contact_ids)))).all():
        values |= _values(proxy.name, proxy.phone, _digits(proxy.phone))
        await session.execute(
            update(HelpRequest).where(HelpRequest.proxy_id == proxy.id,
                                      HelpRequest.phone == proxy.phone)
            .values(phone=ERASED).execution_options(synchronize_session=False))
        proxy.name = proxy.phone = ERASED
    await session.flush()

    # Staff: their role ends with their data; their organisation invites them again if
    # they are to go on. What they did stays in the audit log under the erased contact.
    staff_of = list((await session.execute(
        select(StaffMember.id, StaffMember.aggregator_id, Aggregator.name)
        .join(Aggregator, Aggregator.id == StaffMember.aggregator_id)
        .where(StaffMember.contact_id.in_(contact_ids))
        .order_by(Aggregator.name))).all())
    for _, aggregator_id, name in staff_of:
        audit(session, now, "staff_left", "data erased", contact_id=contact_id,
              aggregator_id=aggregator_id)
        erased.staff_of.append(name)
    if staff_of:
        await session.execute(delete(StaffMember).where(
            StaffMember.id.in_([row.id for row in staff_of])))

    for request in requests:
        values |= await erase_request(session, request, now)
    for pledge in pledges:
        values |= erase_pledge(pledge, now)
    await session.flush()

    await _forget_support(session, contact_ids)
    # Asked whether a proxy's request was their household's: the number is theirs, and
    # goes; the request stays the proxy's, as if they had said no.
    await forget_questions(session, contact_ids=contact_ids)
    # Their support conversations go with their messages (deleted with them).
    for model in (Conversation, ContactRole, DashboardSession, SignInLink, Digest,
                  OutboxMessage, SupportConversation):
        await session.execute(delete(model).where(model.contact_id.in_(contact_ids))
                              .execution_options(synchronize_session=False))
    # Their chats' updates: the payload (cleared once handled) and the address. Updates
    # still waiting are messages sent after this one, from a person starting afresh.
    for contact in contacts:
        addresses = _values(contact.chat_id, contact.platform_user_id)
        await session.execute(
            update(InboundUpdate)
            .where(InboundUpdate.channel == contact.channel,
                   InboundUpdate.chat_id.in_(addresses),
                   or_(InboundUpdate.processed_at.is_not(None),
                       InboundUpdate.set_aside_at.is_not(None)))
            .values(payload=None, chat_id="").execution_options(synchronize_session=False))
    for contact in contacts:
        contact.chat_id = f"{TOMBSTONE_PREFIX}{contact.id}"
        contact.platform_user_id = None
        contact.verified_phone = None
        contact.person_id = None
        contact.last_inbound_at = contact.unreachable_at = None
        contact.identity_changed_at = None
        # Never written to again, not even by a broadcast to everyone.
        contact.opted_out_at = now
        contact.erased_at = now
    await session.flush()
    await scrub_messages(session, values, except_contacts=contact_ids)
    audit(session, now, "erase_data", why, contact_id=contact_id)
    await session.flush()
    return erased


async def holds_nothing(session: AsyncSession, contact_id: int) -> bool:
    """Whether the contact holds nothing but its address: no role, no request or
    pledge of its own, no request it registered, no other question waiting for it, no
    other app linked, no support conversation."""
    checks = (
        select(ContactRole.id).where(ContactRole.contact_id == contact_id),
        select(HelpRequest.id).where(or_(HelpRequest.contact_id == contact_id,
                                         HelpRequest.consent_by == contact_id)),
        select(Pledge.id).where(Pledge.contact_id == contact_id),
        select(PhoneConfirmation.id).where(PhoneConfirmation.contact_id == contact_id),
        select(Contact.id).where(or_(Contact.person_id == contact_id,
                                     and_(Contact.id == contact_id,
                                          Contact.person_id.is_not(None)))),
        select(SupportConversation.id).where(SupportConversation.contact_id == contact_id),
        select(Volunteer.id).where(Volunteer.contact_id == contact_id),
        select(Proxy.id).where(Proxy.contact_id == contact_id),
        select(StaffMember.id).where(StaffMember.contact_id == contact_id),
    )
    for check in checks:
        if await session.scalar(check.limit(1)) is not None:
            return False
    return True


async def _close_request(session: AsyncSession, areas: AreaDirectory, request: HelpRequest,
                         contact_id: int, now: datetime) -> None:
    """Close an open request before its data goes: aid a volunteer says they handed over
    (a photo waiting for staff) counts as delivered; any other delivery is taken back,
    its stock returned. Staff covering the area hear that the request was withdrawn."""
    deliveries = (await session.scalars(
        select(Delivery).where(Delivery.request_id == request.id,
                               Delivery.status.in_((*WITHDRAWABLE,
                                                    DeliveryStatus.AWAITING_REVIEW)))
        .order_by(Delivery.id))).all()
    for delivery in deliveries:
        if delivery.status == DeliveryStatus.AWAITING_REVIEW:
            await mark_delivered(session, areas, delivery.id, contact_id, now)
        else:
            await withdraw(session, delivery, request, contact_id, now)
    await session.refresh(request)
    if request.status in OPEN_STATUSES:
        request.status = RequestStatus.CANCELLED
        request.updated_at = now
        session.add(RequestEvent(request_id=request.id, status=RequestStatus.CANCELLED,
                                 actor_contact_id=contact_id, at=now))
        await session.flush()
        await announce(session, Event.REQUEST_WITHDRAWN, Subject(request=request), now,
                       contact_id)


def is_tombstone(chat_id: str) -> bool:
    return chat_id.startswith(TOMBSTONE_PREFIX)


# --- retention ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expired:
    """What one batch of retention erased."""

    requests: int
    pledges: int
    drafts: int
    limit: int

    @property
    def more(self) -> bool:
        """Whether a full batch was erased, so that more may be due."""
        return max(self.requests, self.pledges, self.drafts) >= self.limit

    @property
    def total(self) -> int:
        return self.requests + self.pledges + self.drafts


async def erase_expired(session: AsyncSession, now: datetime, keep: timedelta,
                        limit: int = RETENTION_BATCH) -> Expired:
    """Erase the personal data of up to `limit` requests closed, and as many pledges
    cancelled or wholly delivered, before `now - keep`, and reset drafts left as long."""
    cutoff = now - keep
    requests = (await session.scalars(
        select(HelpRequest)
        .where(HelpRequest.status.in_(CLOSED_STATUSES), HelpRequest.updated_at < cutoff,
               HelpRequest.erased_at.is_(None))
        .order_by(HelpRequest.id).limit(limit))).all()
    values: set[str] = set()
    for request in requests:
        values |= await erase_request(session, request, now)
    pledges = (await session.scalars(
        select(Pledge)
        .where(Pledge.updated_at < cutoff, Pledge.erased_at.is_(None),
               or_(Pledge.status == PledgeStatus.CANCELLED,
                   and_(Pledge.status == PledgeStatus.RECEIVED,
                        Pledge.delivered_quantity >= Pledge.received_quantity)))
        .order_by(Pledge.id).limit(limit))).all()
    for pledge in pledges:
        values |= erase_pledge(pledge, now)
    await session.flush()
    await scrub_messages(session, values)
    # A draft left this long (answers of a registration never sent) is not coming back.
    # Read first, so that a day with nothing due writes nothing (and takes no lock).
    drafts = list((await session.scalars(
        select(Conversation.id)
        .where(Conversation.updated_at < cutoff,
               or_(Conversation.dialog.is_not(None), Conversation.step.is_not(None)))
        .order_by(Conversation.id).limit(limit))).all())
    if drafts:
        # The version moves on, so that a process holding the draft in memory reads it
        # again before writing.
        await session.execute(
            update(Conversation).where(Conversation.id.in_(drafts))
            .values(dialog=None, step=None, answers={}, scratch={}, invalid_attempts=0,
                    version=Conversation.version + 1)
            .execution_options(synchronize_session=False))
    return Expired(len(requests), len(pledges), len(drafts), limit)


async def _forget_support(session: AsyncSession, contact_ids: Collection[int]) -> None:
    """What the person and staff wrote in the person's conversations leaves staff's
    messages too: the notices that carried it (sent or not; one still to be delivered is
    not delivered) and the screens that showed it (a /pesan card kept in the outbox).
    Conversations they took as staff go back to their colleagues."""
    own = list((await session.execute(select(
        SupportConversation.id, SupportConversation.aggregator_id,
        SupportConversation.taken_by).where(
        SupportConversation.contact_id.in_(contact_ids)))).all())
    if own:
        numbers = {row.id for row in own}
        rows = (await session.execute(
            select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.params)
            .where(OutboxMessage.message_key.in_(TEXT_NOTICES)))).all()
        written = [row for row in rows if (row.params or {}).get("number") in numbers]
        if written:
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_([r.id for r in written]))
                .values(message_key=None, params={})
                .execution_options(synchronize_session=False))
            await session.execute(
                update(OutboxMessage).where(
                    OutboxMessage.id.in_([r.id for r in written
                                          if r.status != OutboxStatus.SENT]))
                .values(status=OutboxStatus.SKIPPED, last_error="erased")
                .execution_options(synchronize_session=False))
        messages = list((await session.execute(
            select(SupportMessage.text, SupportMessage.staff_contact_id)
            .where(SupportMessage.conversation_id.in_(numbers)))).all())
        # Only those who could have seen the conversation: its aggregators' staff, who
        # took it, who answered in it. A phrase anyone may write ("terima kasih") then
        # clears nobody else's messages.
        readers = {row.taken_by for row in own if row.taken_by is not None} | {
            m.staff_contact_id for m in messages if m.staff_contact_id is not None}
        aggregators = {row.aggregator_id for row in own if row.aggregator_id is not None}
        if aggregators:
            readers |= set((await session.scalars(select(StaffMember.contact_id).where(
                StaffMember.aggregator_id.in_(aggregators)))).all())
        await scrub_messages(session, {_shown_part(m.text) for m in messages},
                             except_contacts=contact_ids, only_contacts=readers)
    await session.execute(
        update(SupportConversation)
        .where(SupportConversation.taken_by.in_(contact_ids),
               SupportConversation.status == SupportStatus.TAKEN)
        .values(status=SupportStatus.OPEN, taken_by=None)
        .execution_options(synchronize_session=False))


# What a card shows of typed text differs from it in these characters (handlers/plain.py
# replaces WhatsApp's formatting marks with look-alikes) and in its line breaks.
_SHOWN_DIFFERENTLY = re.compile(r"[*_~`>\n\r]")


def _shown_part(text: str) -> str:
    """The longest part of a message that a screen showing it holds as typed."""
    return max((part.strip() for part in _SHOWN_DIFFERENTLY.split(text)), key=len,
               default="")
