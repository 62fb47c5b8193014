"""Who each invite code let in, and taking a code back with the people it admitted.

An invite is a key to an aggregator: whoever holds a volunteer code sees delivery tasks
in the aggregator's areas. So the operator can see, per code, who joined with it, and
revoke it: it admits nobody more, and the volunteers it let in stop at once, their
deliveries under way going back to staff as when a volunteer leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.aggregator import Invite
from gotong.models.audit import audit
from gotong.models.notifications import Event, Subject, announce
from gotong.models.tasks import hand_back
from gotong.models.volunteer import Volunteer, VolunteerStatus

# Volunteers a revoked code takes out: all but those already gone.
STILL_IN = (VolunteerStatus.PENDING, VolunteerStatus.APPROVED)


@dataclass(frozen=True)
class InviteUse:
    invite: Invite
    volunteers: list[Volunteer] = field(default_factory=list)


async def invites_of(session: AsyncSession, aggregator_id: int) -> list[InviteUse]:
    """The aggregator's invite codes, newest first, each with the volunteers who signed
    up with it."""
    invites = (await session.scalars(
        select(Invite).where(Invite.aggregator_id == aggregator_id)
        .order_by(Invite.id.desc()))).all()
    joined = (await session.scalars(
        select(Volunteer).where(Volunteer.invite_id.in_([i.id for i in invites]))
        .order_by(Volunteer.id))).all()
    by_invite: dict[int, list[Volunteer]] = {}
    for volunteer in joined:
        by_invite.setdefault(volunteer.invite_id or 0, []).append(volunteer)
    return [InviteUse(invite, by_invite.get(invite.id, [])) for invite in invites]


@dataclass(frozen=True)
class Revoked:
    invite: Invite
    volunteers: Sequence[Volunteer]
    tasks_returned: int


async def revoke_invite(session: AsyncSession, invite_id: int, now: datetime, *,
                        volunteers: bool = True, actor_contact_id: int | None = None
                        ) -> Revoked | None:
    """Revoke a code (None if there is none by that id) and, unless told otherwise, the
    volunteers it let in; staff hear of deliveries that wait for a new volunteer."""
    invite = await session.get(Invite, invite_id, populate_existing=True)
    if invite is None:
        return None
    await session.execute(update(Invite).where(Invite.id == invite.id,
                                               Invite.revoked_at.is_(None))
                          .values(revoked_at=now)
                          .execution_options(synchronize_session=False))
    await session.refresh(invite)
    audit(session, now, "revoke_invite", "done", contact_id=actor_contact_id,
          aggregator_id=invite.aggregator_id, detail=f"invite {invite.id}")
    removed: list[Volunteer] = []
    returned = 0
    if volunteers:
        for volunteer in (await session.scalars(
                select(Volunteer).where(Volunteer.invite_id == invite.id,
                                        Volunteer.status.in_(STILL_IN)))).all():
            volunteer.status = VolunteerStatus.REVOKED
            volunteer.decided_at = now
            tasks = await hand_back(session, volunteer, actor_contact_id
                                    or volunteer.contact_id, now)
            returned += len(tasks)
            removed.append(volunteer)
            audit(session, now, "revoke_volunteer", "done", contact_id=actor_contact_id,
                  aggregator_id=invite.aggregator_id,
                  detail=f"volunteer {volunteer.id}, {len(tasks)} tasks back")
            if tasks:
                await announce(session, Event.TASKS_RETURNED, Subject(
                    aggregator_id=invite.aggregator_id,
                    params={"volunteer": volunteer.first_name, "count": len(tasks)}),
                    now, actor_contact_id)
    await session.flush()
    return Revoked(invite, removed, returned)
