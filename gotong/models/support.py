"""Support conversations: a person whose situation does not fit the questions talks to
the staff of an aggregator, in chat or from the dashboard.

A person has at most one support conversation open at a time. It belongs to the
aggregator they deal with (of their request's delivery, their pledge, their volunteering)
or else to one covering their area; with none, it is kept without one for the operator.
Staff take it (one of them: the take is a guarded UPDATE, so two cannot both have it),
reply and close it with an outcome. The messages of both sides are kept for
`support.keep_days` only; the conversation itself holds no free text.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.aggregator import Aggregator, AggregatorArea, StaffMember
from gotong.models.area import Area
from gotong.models.base import Base, utcnow
from gotong.models.contact import Contact
from gotong.models.delivery import Delivery
from gotong.models.help_request import OPEN_STATUSES, HelpRequest, own_requests
from gotong.models.outbox import Notice, OutboxMessage, OutboxStatus, enqueue
from gotong.models.person import person_contact_ids
from gotong.models.pledge import Pledge, PledgeStatus
from gotong.models.proxy import Proxy
from gotong.models.rules import write_guarded
from gotong.models.volunteer import Volunteer, VolunteerArea, VolunteerStatus


class SupportStatus(enum.StrEnum):
    OPEN = "open"
    TAKEN = "taken"
    CLOSED = "closed"


# How a conversation ended, as staff choose it (catalog: support.outcome.<id>).
OUTCOMES = ("answered", "referred", "no_reply", "not_for_us")
# Who the person is to Gotong, as staff see it (catalog: support.role.<id>).
ROLES = ("household", "donor", "volunteer", "proxy", "none")
MAX_TEXT = 1000
# Notices whose parameters hold what someone wrote: emptied with the messages.
TEXT_NOTICES = ("support.reply", "support.staff_message")
_NOT_CLOSED = "status <> 'closed'"


class SupportConversation(Base):
    __tablename__ = "support_conversation"
    __table_args__ = (
        # One conversation open per contact: a second "talk to a person" finds the first.
        Index("ix_support_conversation_one_open", "contact_id", unique=True,
              postgresql_where=text(_NOT_CLOSED), sqlite_where=text(_NOT_CLOSED)),
        Index("ix_support_conversation_inbox", "aggregator_id", "status", "opened_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey(Contact.id, ondelete="CASCADE"),
                                            index=True)
    # None: no aggregator covers the person; kept for the operator.
    aggregator_id: Mapped[int | None] = mapped_column(
        ForeignKey(Aggregator.id, ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(8), default=SupportStatus.OPEN)
    # What staff see of the person: their role, area and open request or pledge, as when
    # they asked.
    role: Mapped[str] = mapped_column(String(16))
    area_id: Mapped[int | None] = mapped_column(ForeignKey(Area.id))
    reference: Mapped[str | None] = mapped_column(String(12))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_message_at: Mapped[datetime | None]
    taken_by: Mapped[int | None] = mapped_column(ForeignKey(Contact.id, ondelete="SET NULL"))
    taken_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(ForeignKey(Contact.id,
                                                             ondelete="SET NULL"))
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    # When the aggregator's staff were told nobody had taken it in time.
    alerted_at: Mapped[datetime | None]

    @property
    def is_open(self) -> bool:
        return self.status != SupportStatus.CLOSED


class SupportMessage(Base):
    """One message of a support conversation, from the person or from staff."""

    __tablename__ = "support_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey(SupportConversation.id, ondelete="CASCADE"), index=True)
    # The staff member who wrote it; None: the person.
    staff_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey(Contact.id, ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(String(MAX_TEXT))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    @property
    def from_staff(self) -> bool:
        return self.staff_contact_id is not None


# --- who the person is, and whose staff they talk to ----------------------------------


@dataclass(frozen=True)
class Standing:
    """What staff see of the person, and the aggregator they deal with (if any)."""

    role: str = "none"
    area_id: int | None = None
    reference: str | None = None
    aggregator_id: int | None = None


async def standing_of(session: AsyncSession, contact_id: int) -> Standing:
    """The person's role, area, open request or pledge, and the aggregator they deal
    with: their request's delivery's, their pledge's, their volunteering's, their
    proxying's. The request or pledge of another of the person's apps counts too; a
    household a proxy registered does not, though its news comes to the proxy: staff
    must not take the proxy for that household."""
    contacts = await person_contact_ids(session, contact_id)
    request = await session.scalar(
        select(HelpRequest).where(own_requests(contacts))
        .order_by(HelpRequest.status.in_(OPEN_STATUSES).desc(), HelpRequest.id.desc())
        .limit(1))
    if request is not None:
        aggregator_id = await session.scalar(
            select(Delivery.aggregator_id).where(Delivery.request_id == request.id)
            .order_by(Delivery.id.desc()).limit(1))
        return Standing("household", request.village_id,
                        request.reference if request.is_open else None, aggregator_id)
    pledge = await session.scalar(
        select(Pledge).where(Pledge.contact_id.in_(contacts),
                             Pledge.status != PledgeStatus.CANCELLED)
        .order_by(Pledge.id.desc()).limit(1))
    if pledge is not None:
        return Standing("donor", pledge.target_area_id, pledge.code, pledge.aggregator_id)
    volunteer = await session.scalar(
        select(Volunteer).where(Volunteer.contact_id.in_(contacts),
                                Volunteer.status.in_((VolunteerStatus.APPROVED,
                                                      VolunteerStatus.PENDING)))
        .order_by(Volunteer.id.desc()).limit(1))
    if volunteer is not None:
        area_id = await session.scalar(select(VolunteerArea.area_id).where(
            VolunteerArea.volunteer_id == volunteer.id).order_by(VolunteerArea.id).limit(1))
        return Standing("volunteer", area_id, None, volunteer.aggregator_id)
    proxy = await session.scalar(
        select(Proxy).where(Proxy.contact_id.in_(contacts), Proxy.removed_at.is_(None))
        .order_by(Proxy.id).limit(1))
    if proxy is not None:
        return Standing("proxy", None, None, proxy.aggregator_id)
    return Standing()


async def covering_aggregator(session: AsyncSession, area_ids: Sequence[int]) -> int | None:
    """An aggregator with staff that covers one of these areas (the person's kelurahan
    and the areas above it), the one covering the smallest area first."""
    if not area_ids:
        return None
    rows = (await session.execute(
        select(AggregatorArea.aggregator_id, AggregatorArea.area_id)
        .where(AggregatorArea.area_id.in_(list(area_ids)),
               AggregatorArea.aggregator_id.in_(select(StaffMember.aggregator_id)),
               # A disabled aggregator takes no new work, conversations included.
               AggregatorArea.aggregator_id.in_(
                   select(Aggregator.id).where(Aggregator.disabled_at.is_(None))))
        .order_by(AggregatorArea.aggregator_id))).all()
    if not rows:
        return None
    rank = {area_id: i for i, area_id in enumerate(area_ids)}
    best = min(rows, key=lambda row: (rank[row.area_id], row.aggregator_id))
    return int(best.aggregator_id)


# --- the person's side ----------------------------------------------------------------


async def open_conversation_of(session: AsyncSession, contact_id: int
                               ) -> SupportConversation | None:
    return await session.scalar(select(SupportConversation).where(
        SupportConversation.contact_id == contact_id,
        SupportConversation.status != SupportStatus.CLOSED))


async def open_conversation(session: AsyncSession, contact_id: int, standing: Standing,
                            now: datetime) -> tuple[SupportConversation, bool]:
    """The person's open support conversation, opened now if they have none; True when
    new (its aggregator's staff are then told)."""
    found = await open_conversation_of(session, contact_id)
    if found is not None:
        return found, False
    # A concurrent second open fails the unique index, and the update is run again.
    conversation = SupportConversation(
        contact_id=contact_id, aggregator_id=standing.aggregator_id,
        status=SupportStatus.OPEN, role=standing.role, area_id=standing.area_id,
        reference=standing.reference, opened_at=now)
    session.add(conversation)
    await session.flush()
    if conversation.aggregator_id is not None:
        for staff_id in await staff_of(session, conversation.aggregator_id):
            enqueue(session, Notice(staff_id, "support.staff_new", {
                "number": conversation.id,
                "role": {"key": f"support.role.{conversation.role}"}},
                actions=(("sp", f"show:{conversation.id}", "support.open_inbox"),)), now)
    return conversation, True


async def add_message(session: AsyncSession, conversation: SupportConversation, text_: str,
                      now: datetime, staff_contact_id: int | None = None) -> SupportMessage:
    message = SupportMessage(conversation_id=conversation.id,
                             staff_contact_id=staff_contact_id, text=text_[:MAX_TEXT], at=now)
    session.add(message)
    conversation.last_message_at = now
    await session.flush()
    return message


async def person_wrote(session: AsyncSession, conversation: SupportConversation,
                       text_: str, now: datetime) -> None:
    """Keep the person's message; the staff member who took the conversation gets it (the
    others see it in their inbox)."""
    await add_message(session, conversation, text_, now)
    if conversation.taken_by is not None:
        enqueue(session, Notice(conversation.taken_by, "support.staff_message", {
            "number": conversation.id, "text": text_[:MAX_TEXT]},
            actions=(("sp", f"reply:{conversation.id}", "support.reply_button"),)), now)


# --- the staff's side -----------------------------------------------------------------


async def staff_of(session: AsyncSession, aggregator_id: int) -> list[int]:
    return list((await session.scalars(
        select(StaffMember.contact_id).where(StaffMember.aggregator_id == aggregator_id)
        .order_by(StaffMember.contact_id))).all())


async def inbox(session: AsyncSession, aggregator_ids: Sequence[int], limit: int
                ) -> list[SupportConversation]:
    """The open conversations of these aggregators, the longest waiting first."""
    if not aggregator_ids:
        return []
    return list((await session.scalars(
        select(SupportConversation)
        .where(SupportConversation.aggregator_id.in_(list(aggregator_ids)),
               SupportConversation.status != SupportStatus.CLOSED)
        .order_by(SupportConversation.opened_at, SupportConversation.id)
        .limit(limit))).all())


async def unassigned(session: AsyncSession) -> list[SupportConversation]:
    """The open conversations of people no aggregator covers: for the operator."""
    return list((await session.scalars(
        select(SupportConversation)
        .where(SupportConversation.aggregator_id.is_(None),
               SupportConversation.status != SupportStatus.CLOSED)
        .order_by(SupportConversation.opened_at, SupportConversation.id))).all())


async def last_messages(session: AsyncSession, conversation_id: int, limit: int
                        ) -> list[SupportMessage]:
    """The latest messages of a conversation, oldest first."""
    newest = (await session.scalars(
        select(SupportMessage).where(SupportMessage.conversation_id == conversation_id)
        .order_by(SupportMessage.id.desc()).limit(limit))).all()
    return list(reversed(newest))


async def take(session: AsyncSession, conversation: SupportConversation, staff_id: int,
               aggregator_name: str, now: datetime) -> None:
    """Take an open conversation; NotAllowed when someone took or closed it first."""
    await write_guarded(session, update(SupportConversation).where(
        SupportConversation.id == conversation.id,
        SupportConversation.status == SupportStatus.OPEN)
        .values(status=SupportStatus.TAKEN, taken_by=staff_id, taken_at=now),
        conversation.status)
    conversation.status, conversation.taken_by, conversation.taken_at = \
        SupportStatus.TAKEN, staff_id, now
    enqueue(session, Notice(conversation.contact_id, "support.taken",
                            {"name": aggregator_name}), now)


async def reply(session: AsyncSession, conversation: SupportConversation, staff_id: int,
                text_: str, aggregator_name: str, now: datetime) -> None:
    """A staff member's reply: kept, and sent to the person through the outbox (outside
    WhatsApp's window as the template that invites them to write, the reply held for
    then)."""
    await add_message(session, conversation, text_, now, staff_contact_id=staff_id)
    enqueue(session, Notice(conversation.contact_id, "support.reply", {
        "name": aggregator_name, "text": text_[:MAX_TEXT]}), now)


async def close(session: AsyncSession, conversation: SupportConversation, staff_id: int,
                outcome: str, now: datetime) -> None:
    """Close a conversation taken by this staff member; NotAllowed when it is not (any
    more)."""
    await write_guarded(session, update(SupportConversation).where(
        SupportConversation.id == conversation.id,
        SupportConversation.status == SupportStatus.TAKEN,
        SupportConversation.taken_by == staff_id)
        .values(status=SupportStatus.CLOSED, closed_by=staff_id, closed_at=now,
                outcome=outcome), conversation.status)
    conversation.status, conversation.closed_by, conversation.closed_at = \
        SupportStatus.CLOSED, staff_id, now
    conversation.outcome = outcome
    enqueue(session, Notice(conversation.contact_id, "support.closed", {
        "outcome": {"key": f"support.outcome.{outcome}"}}), now)


# --- housekeeping ---------------------------------------------------------------------

# Conversations looked at per pass; the rest wait for the next one.
BATCH = 200


async def alert_unanswered(session: AsyncSession, now: datetime, within: timedelta) -> int:
    """Tell the staff of each aggregator about conversations nobody took within
    `within` (once per conversation); how many."""
    waiting = (await session.scalars(
        select(SupportConversation)
        .where(SupportConversation.status == SupportStatus.OPEN,
               SupportConversation.aggregator_id.is_not(None),
               SupportConversation.alerted_at.is_(None),
               SupportConversation.opened_at <= now - within)
        .order_by(SupportConversation.id).limit(BATCH)
        .with_for_update(skip_locked=True))).all()
    for conversation in waiting:
        conversation.alerted_at = now
        assert conversation.aggregator_id is not None
        minutes = max(int((now - conversation.opened_at).total_seconds() // 60), 1)
        for staff_id in await staff_of(session, conversation.aggregator_id):
            enqueue(session, Notice(staff_id, "support.staff_unanswered", {
                "number": conversation.id, "minutes": minutes},
                actions=(("sp", f"show:{conversation.id}", "support.open_inbox"),)), now)
    await session.flush()
    return len(waiting)


async def prune_messages(session: AsyncSession, before: datetime) -> int:
    """Forget the messages of both sides written before `before`, and empty the notices
    that carried them (one still waiting to be sent is not sent); how many messages."""
    deleted = await session.execute(
        delete(SupportMessage).where(SupportMessage.at < before)
        .execution_options(synchronize_session=False))
    old = (OutboxMessage.message_key.in_(TEXT_NOTICES), OutboxMessage.created_at < before)
    await session.execute(
        update(OutboxMessage).where(*old, OutboxMessage.status.in_(
            (OutboxStatus.PENDING, OutboxStatus.HELD)))
        .values(status=OutboxStatus.SKIPPED, last_error="past support.keep_days")
        .execution_options(synchronize_session=False))
    # A row being sent keeps its words until the next pass: a retry renders them again.
    # Without its key, a row emptied is not looked at again.
    await session.execute(
        update(OutboxMessage).where(*old, OutboxMessage.status != OutboxStatus.SENDING)
        .values(message_key=None, params={}).execution_options(synchronize_session=False))
    return int(deleted.rowcount or 0)  # type: ignore[attr-defined]
