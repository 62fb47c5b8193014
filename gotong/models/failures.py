"""What could not reach people: outbox rows given up on, rows skipped for a person who
cannot be reached, and rows waiting too long. They are listed to the staff whose people
they concern, counted for the operator, told to staff in a digest, and sent again when
staff ask and it is worth it.

An aggregator's people are the households of requests in the areas it covers (a
kelurahan, or its kecamatan or kota), the donors of pledges made to it, and its
volunteers: staff see those and no others, as everywhere else.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gotong.models.aggregator import Aggregator, AggregatorArea, StaffMember
from gotong.models.area import Area
from gotong.models.contact import LAST_INBOUND_PRECISION, Contact, Role
from gotong.models.digest import Digest, note_change
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import (
    HELD_AFTER,
    OUTBOX_WRITTEN,
    Failure,
    OutboxMessage,
    OutboxStatus,
)
from gotong.models.pledge import Pledge
from gotong.models.volunteer import Volunteer


class Waiting(enum.StrEnum):
    """Rows not given up on, but waiting longer than they should."""

    # Still queued (the app's limits, retries, a dispatcher that is not running).
    STUCK = "stuck"
    # Kept for the person until they write (WhatsApp's 24-hour window closed).
    HELD = "held"


# Every reason a row is listed for, in the order the operator's summary gives them.
REASONS: tuple[str, ...] = (*Failure, *Waiting)

# Failures that a new try may get through: the cause may have passed (a long outage, a
# template fixed since), or is not known.
RETRY_ANY_TIME = frozenset({Failure.GAVE_UP, Failure.UNKNOWN, Failure.TEMPLATE_REFUSED})
# Failures that a new try gets through only once the person has written again since
# (they unblocked the bot; WhatsApp takes free text from us for 24 hours after).
RETRY_AFTER_THEY_WROTE = frozenset({Failure.UNREACHABLE, Failure.NOT_FOR_USERNAME})

# Staff's digest of the households that could not be reached.
DIGEST_TOPIC = "unreached"
DIGEST_KEY = "notice.households_unreached"

Rows = Select[*tuple[Any, ...]]


def _listed(now: datetime, stuck_after: timedelta) -> ColumnElement[bool]:
    m = OutboxMessage
    return or_(
        m.status == OutboxStatus.FAILED,
        and_(m.status == OutboxStatus.SKIPPED, m.failure == Failure.UNREACHABLE),
        and_(m.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.HELD)),
             m.created_at < now - stuck_after),
    )


def reason_of(status: str, failure: str | None) -> str:
    """Why a listed row is listed."""
    if status == OutboxStatus.FAILED:
        return failure or Failure.UNKNOWN
    if status == OutboxStatus.SKIPPED:
        return Failure.UNREACHABLE
    if status == OutboxStatus.HELD:
        return Waiting.HELD
    return Waiting.STUCK


def worth_retrying(reason: str, has_content: bool, wrote_at: datetime | None,
                   failed_at: datetime | None, now: datetime) -> bool:
    """Whether sending the row again can reach the person now: never a direct reply
    (its text is erased once settled), never a refusal that would come again (a message
    the app will never take), and a person who blocked the bot or is known by their
    username alone only after they wrote again, within 24 hours."""
    if not has_content:
        return False
    if reason in RETRY_ANY_TIME:
        return True
    if reason in RETRY_AFTER_THEY_WROTE:
        # When they wrote is known to a minute: a message up to then before the failure
        # may have come after it, and a try too many costs less than a person left out.
        return wrote_at is not None and now - wrote_at < HELD_AFTER and (
            failed_at is None or wrote_at > failed_at - LAST_INBOUND_PRECISION)
    return False


# --- an aggregator's people ---------------------------------------------------------


def _people(aggregator_ids: Sequence[int], roles: Iterable[Role] = (
        Role.HOUSEHOLD, Role.DONOR, Role.VOLUNTEER)) -> Rows:
    """(contact_id, role, reference, aggregator_id, id) of each request, pledge and
    volunteer sign-up of the aggregators' people; one row per thing, not per person."""
    village, district = aliased(Area), aliased(Area)
    parts: list[Rows] = []
    if Role.HOUSEHOLD in roles:
        parts.append(
            select(HelpRequest.contact_id.label("contact_id"),
                   literal_column(f"'{Role.HOUSEHOLD.value}'").label("role"),
                   HelpRequest.reference.label("reference"),
                   AggregatorArea.aggregator_id.label("aggregator_id"),
                   HelpRequest.id.label("id"))
            .join(village, village.id == HelpRequest.village_id)
            .join(district, district.id == village.parent_id)
            .join(AggregatorArea, or_(AggregatorArea.area_id == village.id,
                                      AggregatorArea.area_id == district.id,
                                      AggregatorArea.area_id == district.parent_id))
            .where(AggregatorArea.aggregator_id.in_(aggregator_ids),
                   # A disabled aggregator covers no area: its households are no longer
                   # its people, though its pledges and volunteers still are.
                   AggregatorArea.aggregator_id.in_(
                       select(Aggregator.id).where(Aggregator.disabled_at.is_(None)))))
    if Role.DONOR in roles:
        parts.append(
            select(Pledge.contact_id, literal_column(f"'{Role.DONOR.value}'"), Pledge.code,
                   Pledge.aggregator_id, Pledge.id)
            .where(Pledge.aggregator_id.in_(aggregator_ids)))
    if Role.VOLUNTEER in roles:
        parts.append(
            select(Volunteer.contact_id, literal_column(f"'{Role.VOLUNTEER.value}'"),
                   Volunteer.name, Volunteer.aggregator_id, Volunteer.id)
            .where(Volunteer.aggregator_id.in_(aggregator_ids)))
    return parts[0] if len(parts) == 1 else union_all(*parts)  # type: ignore[return-value]


# The role a notice was meant for, by the start of its kind (the catalog key after
# "notice."), where a person holds several; news of a request otherwise.
_ROLE_BY_KIND = (("pledge_", Role.DONOR), ("task", Role.VOLUNTEER),
                 ("volunteer_", Role.VOLUNTEER), ("proof_", Role.VOLUNTEER))


def _meant_for(message_key: str | None, roles: Iterable[str]) -> str:
    kind = (message_key or "").partition(".")[2]
    meant = next((role for start, role in _ROLE_BY_KIND if kind.startswith(start)),
                 Role.HOUSEHOLD)
    held = list(roles)
    return meant if meant in held else next(
        r for r in (Role.HOUSEHOLD, Role.DONOR, Role.VOLUNTEER) if r in held)


@dataclass(frozen=True)
class Unreached:
    """A row as staff see it: whom it was for (their role, and the request's reference,
    the pledge's code or the volunteer's first name), the app, why, since when, and
    whether a new try is worth it."""

    row_id: int
    role: str
    reference: str
    channel: str
    reason: str
    at: datetime
    retry: bool


async def unreached(session: AsyncSession, aggregator_ids: Sequence[int], now: datetime,
                    stuck_after: timedelta, limit: int = 50, row_id: int | None = None
                    ) -> list[Unreached]:
    """The listed rows of the aggregators' people, newest first (or the one row asked
    for, if it is theirs)."""
    if not aggregator_ids:
        return []
    people = _people(aggregator_ids).subquery()
    m = OutboxMessage
    query = (select(m.id, m.contact_id, m.status, m.failure, m.failed_at, m.created_at,
                    m.message_key, Contact.channel, Contact.last_inbound_at)
             .join(Contact, Contact.id == m.contact_id)
             .where(_listed(now, stuck_after), m.contact_id.in_(select(people.c.contact_id)))
             .order_by(func.coalesce(m.failed_at, m.created_at).desc(), m.id.desc())
             .limit(limit))
    if row_id is not None:
        query = query.where(m.id == row_id)
    rows = (await session.execute(query)).all()
    if not rows:
        return []
    theirs: dict[int, dict[str, str]] = {}
    found = await session.execute(
        select(people.c.contact_id, people.c.role, people.c.reference)
        .where(people.c.contact_id.in_({row.contact_id for row in rows}))
        .order_by(people.c.id.desc()))
    for contact_id, role, reference in found.all():
        # The newest request, pledge or sign-up of each role.
        name = reference.split()[0] if role == Role.VOLUNTEER and reference.split() \
            else reference
        theirs.setdefault(contact_id, {}).setdefault(role, name)
    listed = []
    for row in rows:
        roles = theirs.get(row.contact_id, {})
        role = _meant_for(row.message_key, roles)
        reason = reason_of(row.status, row.failure)
        listed.append(Unreached(
            row_id=row.id, role=role, reference=roles[role], channel=row.channel,
            reason=reason, at=row.failed_at or row.created_at,
            retry=worth_retrying(reason, row.message_key is not None, row.last_inbound_at,
                                 row.failed_at, now)))
    return listed


class RetryRefusal(enum.StrEnum):
    NOT_THEIRS = "not theirs"
    NOT_WORTH_IT = "not worth it"


async def retry(session: AsyncSession, aggregator_ids: Sequence[int], row_id: int,
                now: datetime, stuck_after: timedelta) -> tuple[Unreached | None,
                                                               RetryRefusal | None]:
    """Queue the row again, if it is one of the aggregators' people's and worth it: due
    now, with its attempts counted afresh. The dispatcher checks again, when it takes it,
    that its news still holds."""
    listed = await unreached(session, aggregator_ids, now, stuck_after, 1, row_id)
    if not listed:
        return None, RetryRefusal.NOT_THEIRS
    found = listed[0]
    if not found.retry:
        return found, RetryRefusal.NOT_WORTH_IT
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row_id,
               OutboxMessage.status.in_((OutboxStatus.FAILED, OutboxStatus.SKIPPED)))
        .values(status=OutboxStatus.PENDING, next_attempt_at=now, attempts=0, timeouts=0,
                lease_until=None, lease_owner=None, last_error=None, failure=None,
                failed_at=None)
        .execution_options(synchronize_session=False))
    if not result.rowcount:  # type: ignore[attr-defined]
        return found, RetryRefusal.NOT_WORTH_IT
    # Read by the unit of work, to wake the dispatcher once the transaction commits.
    session.info[OUTBOX_WRITTEN] = True
    return found, None


# --- for the operator ------------------------------------------------------------------


async def reason_counts(session: AsyncSession, now: datetime, stuck_after: timedelta,
                        aggregator_ids: Sequence[int] | None = None) -> dict[str, int]:
    """How many rows are listed, by reason: of the aggregators' people, or of everyone."""
    m = OutboxMessage
    query = select(m.status, m.failure, func.count()).where(_listed(now, stuck_after))
    if aggregator_ids is not None:
        if not aggregator_ids:
            return {}
        people = _people(aggregator_ids).subquery()
        query = query.where(m.contact_id.in_(select(people.c.contact_id)))
    counts: dict[str, int] = {}
    for status, failure, count in (await session.execute(
            query.group_by(m.status, m.failure))).all():
        reason = reason_of(status, failure)
        counts[reason] = counts.get(reason, 0) + count
    return {reason: counts[reason] for reason in REASONS if reason in counts}


# --- staff's digest ----------------------------------------------------------------------


async def note_unreached(session: AsyncSession, now: datetime) -> int:
    """Note, for each staff member, how many of their households could not be reached
    since their last digest of it (or since they joined): one message per digest
    interval, sent with the other digests. Returns how many staff have news of it."""
    staff: dict[int, set[int]] = {}
    joined: dict[int, datetime] = {}
    for contact_id, aggregator_id, joined_at in (await session.execute(
            select(StaffMember.contact_id, StaffMember.aggregator_id,
                   StaffMember.joined_at))).all():
        staff.setdefault(contact_id, set()).add(aggregator_id)
        joined[contact_id] = min(joined_at, joined.get(contact_id, joined_at))
    if not staff:
        return 0
    told = dict((await session.execute(
        select(Digest.contact_id, Digest.sent_at)
        .where(Digest.topic == DIGEST_TOPIC, Digest.sent_at.is_not(None)))).all())
    since = {contact_id: told.get(contact_id) or joined[contact_id] for contact_id in staff}
    oldest = min(since.values())
    # Most minutes nothing failed since: one look at the index says so.
    # (Named NOT NULL for the partial index on failed_at to serve it.)
    latest = await session.scalar(select(func.max(OutboxMessage.failed_at))
                                  .where(OutboxMessage.failed_at.is_not(None)))
    if latest is None or latest <= oldest:
        return 0
    households = _people(sorted(set().union(*staff.values())), (Role.HOUSEHOLD,)).subquery()
    m = OutboxMessage
    failed = (await session.execute(
        select(households.c.aggregator_id, m.contact_id, m.failed_at).distinct()
        .select_from(households).join(m, m.contact_id == households.c.contact_id)
        .where(m.failed_at > oldest, m.failure.is_not(None),
               m.status.in_((OutboxStatus.FAILED, OutboxStatus.SKIPPED))))).all()
    noted = 0
    for contact_id, aggregator_ids in staff.items():
        count = len({row.contact_id for row in failed if row.aggregator_id in aggregator_ids
                     and row.failed_at > since[contact_id]})
        if count:
            await note_change(session, contact_id, DIGEST_TOPIC, DIGEST_KEY,
                              {"count": count}, True, now)
            noted += 1
    return noted
