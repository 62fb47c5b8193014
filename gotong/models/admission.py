"""Who each invite code let in, and taking a code back with the people it admitted.

An invite is a key to an aggregator: whoever holds a volunteer code sees delivery tasks
in the aggregator's areas, and a proxy code lets its holder register households. So the
operator can see, per code, who joined with it, and revoke it: it admits nobody more, the
volunteers it let in stop at once, their deliveries under way going back to staff as when
a volunteer leaves, and the proxies it let in register no more.

The households a proxy registered stay: their requests are theirs, and still valid. Those
that have no phone of their own (or have yet to confirm the one the proxy gave) heard of
their request through the proxy; that news now reaches nobody, so staff are told which
requests those are, to reach the households another way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.aggregator import Aggregator, Invite
from gotong.models.audit import audit
from gotong.models.contact import Contact
from gotong.models.delivery import Delivery
from gotong.models.help_request import news_to_proxy
from gotong.models.notifications import STILL, Event, Subject, SubjectKind, announce
from gotong.models.outbox import OutboxMessage, OutboxStatus
from gotong.models.proxy import Proxy, remove_proxy
from gotong.models.tasks import hand_back
from gotong.models.volunteer import Volunteer, VolunteerStatus

# Volunteers a revoked code takes out: all but those already gone.
STILL_IN = (VolunteerStatus.PENDING, VolunteerStatus.APPROVED)


# Why news queued for a proxy was skipped when the operator took them out.
PROXY_REMOVED = "proxy removed"


@dataclass(frozen=True)
class InviteUse:
    invite: Invite
    volunteers: list[Volunteer] = field(default_factory=list)
    proxies: list[Proxy] = field(default_factory=list)


async def invites_of(session: AsyncSession, aggregator_id: int) -> list[InviteUse]:
    """The aggregator's invite codes, newest first, each with the volunteers and proxies
    who joined with it."""
    invites = (await session.scalars(
        select(Invite).where(Invite.aggregator_id == aggregator_id)
        .order_by(Invite.id.desc()))).all()
    ids = [i.id for i in invites]
    joined = (await session.scalars(
        select(Volunteer).where(Volunteer.invite_id.in_(ids)).order_by(Volunteer.id))).all()
    by_invite: dict[int, list[Volunteer]] = {}
    for volunteer in joined:
        by_invite.setdefault(volunteer.invite_id or 0, []).append(volunteer)
    proxies: dict[int, list[Proxy]] = {}
    for proxy in (await session.scalars(
            select(Proxy).where(Proxy.invite_id.in_(ids)).order_by(Proxy.id))).all():
        proxies.setdefault(proxy.invite_id or 0, []).append(proxy)
    return [InviteUse(invite, by_invite.get(invite.id, []), proxies.get(invite.id, []))
            for invite in invites]


@dataclass(frozen=True)
class Revoked:
    invite: Invite
    volunteers: Sequence[Volunteer]
    tasks_returned: int
    proxies: Sequence[Proxy] = ()
    # References of the open requests the proxies taken out registered whose news came
    # to them, and now reaches nobody.
    unfollowed: Sequence[str] = ()


async def revoke_invite(session: AsyncSession, invite_id: int, now: datetime, *,
                        volunteers: bool = True, proxies: bool = True,
                        actor_contact_id: int | None = None) -> Revoked | None:
    """Revoke a code (None if there is none by that id) and, unless told otherwise, the
    volunteers and the proxies it let in; staff hear of deliveries that wait for a new
    volunteer, and of the requests whose news came to a proxy taken out."""
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
    taken_out: list[Proxy] = []
    unfollowed: list[str] = []
    if proxies:
        # Locked in id order, as a proxy's registration locks them (models/proxy.py):
        # a household registered at this moment is either in before they are taken out
        # (and among the requests staff hear of), or refused.
        for proxy in (await session.scalars(
                select(Proxy).where(Proxy.invite_id == invite.id, Proxy.removed_at.is_(None))
                .order_by(Proxy.id).with_for_update()
                .execution_options(populate_existing=True))).all():
            unfollowed += await _take_out(session, proxy, now, actor_contact_id)
            taken_out.append(proxy)
    await session.flush()
    return Revoked(invite, removed, returned, taken_out, unfollowed)


async def _drop_household_news(session: AsyncSession, contact_id: int,
                               request_ids: list[int]) -> None:
    """News of these requests, and of their deliveries, not yet sent to the proxy who
    stood in for their households (a delivery code held until they write, say): a proxy
    taken out hears nothing more of them."""
    if not request_ids:
        return
    delivery_ids = set((await session.scalars(
        select(Delivery.id).where(Delivery.request_id.in_(request_ids)))).all())
    ids_of = {SubjectKind.REQUEST: set(request_ids), SubjectKind.DELIVERY: delivery_ids}
    waiting = (await session.execute(
        select(OutboxMessage.id, OutboxMessage.still, OutboxMessage.subject_ids).where(
            OutboxMessage.contact_id == contact_id,
            OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.HELD)),
            OutboxMessage.still.is_not(None)))).all()
    dropped = [row.id for row in waiting
               if (rule := STILL.get(row.still or "")) is not None
               and set(row.subject_ids or ()) & ids_of.get(rule.kind, set())]
    if dropped:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(dropped))
            .values(status=OutboxStatus.SKIPPED, last_error=PROXY_REMOVED, body=None,
                    params={}, lease_until=None, lease_owner=None)
            .execution_options(synchronize_session=False))


async def _take_out(session: AsyncSession, proxy: Proxy, now: datetime,
                    actor_contact_id: int | None) -> list[str]:
    """Take a proxy out, tell them, and tell their aggregator's staff which open requests
    they stood in for; those requests' references."""
    await remove_proxy(session, proxy, now)
    requests = await news_to_proxy(session, proxy.id, proxy.contact_id)
    references = [r.reference for r in requests]
    await _drop_household_news(session, proxy.contact_id, [r.id for r in requests])
    audit(session, now, "revoke_proxy", "done", contact_id=actor_contact_id,
          aggregator_id=proxy.aggregator_id,
          detail=f"proxy {proxy.id}, {len(references)} requests without news")
    aggregator = await session.get(Aggregator, proxy.aggregator_id)
    # An erased person's contact is never written to again.
    if await session.scalar(select(Contact.erased_at).where(
            Contact.id == proxy.contact_id)) is None:
        await announce(session, Event.PROXY_REMOVED, Subject(
            contact_id=proxy.contact_id,
            params={"organisation": aggregator.name if aggregator else ""}), now,
            actor_contact_id)
    if references:
        await announce(session, Event.PROXY_HOUSEHOLDS_UNFOLLOWED, Subject(
            aggregator_id=proxy.aggregator_id,
            params={"proxy": proxy.name, "count": len(references),
                    "references": ", ".join(references)}), now, actor_contact_id)
    return references
