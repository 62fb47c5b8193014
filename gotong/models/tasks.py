"""The last mile: a delivery assigned to a volunteer, carried, and confirmed by both sides.

Every change is a guarded UPDATE on the delivery's status (models/rules), so two people
acting on one delivery at once (a volunteer confirming while staff reassign it) cannot
both succeed; the one who loses is told it changed. Each change announces itself
(models/notifications) in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from gotong.models.area import AreaDirectory
from gotong.models.audit import audit, count_since
from gotong.models.delivery import (
    FAILURE_REASONS,
    UNDER_WAY,
    Delivery,
    DeliverySource,
    DeliveryStatus,
)
from gotong.models.fulfilment import mark_delivered
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.notifications import Event, Subject, announce
from gotong.models.outbox import Notice
from gotong.models.person import same_person
from gotong.models.pledge import Pledge
from gotong.models.request_status import RequestStatus
from gotong.models.rules import NotAllowed, write_guarded
from gotong.models.stock import add_stock
from gotong.models.volunteer import Volunteer, VolunteerStatus

CODE_DIGITS = 6
# Wrong codes for one delivery before the volunteer can no longer confirm it.
MAX_WRONG_CODES = 5
# A volunteer sees a household's name, phone and address until this long after delivery.
DETAILS_AFTER_DELIVERY = timedelta(hours=24)
# The statuses in which the volunteer of a task sees the household's details.
DETAILS_SHOWN = (DeliveryStatus.PICKED_UP, DeliveryStatus.ON_THE_WAY,
                 DeliveryStatus.AWAITING_REVIEW, DeliveryStatus.DELIVERED)
# Hand-backs (leaving with tasks under way) within this window that alert staff.
HAND_BACKS_FLAGGED = 3
HAND_BACK_WINDOW = timedelta(hours=24)
# The statuses of a task picked up: its household's details are shown.
PICKED = (DeliveryStatus.PICKED_UP, DeliveryStatus.ON_THE_WAY)
# Failing a task once picked up drops it as a hand-back does, the details read: counted
# with hand-backs towards the alert, and for a while among the volunteer's open tasks.
FAILED_AFTER_PICKUP = "fail_after_pickup"
DROPS = ("hand_back", FAILED_AFTER_PICKUP)
# Where a household can say the aid never came, and staff settle that dispute.
DISPUTABLE = (DeliveryStatus.DELIVERED, DeliveryStatus.AWAITING_REVIEW)


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


async def _move(session: AsyncSession, delivery: Delivery,
                allowed: Sequence[str] | ColumnElement[bool], now: datetime,
                **values: Any) -> Delivery:
    """Change the delivery if it is still in one of the allowed statuses (or still meets
    the condition); else NotAllowed."""
    guard = allowed if isinstance(allowed, ColumnElement) \
        else Delivery.status.in_(list(allowed))
    await write_guarded(session, update(Delivery).where(Delivery.id == delivery.id, guard)
                        .values(updated_at=now, **values), delivery.status)
    await session.refresh(delivery)
    return delivery


def _as_seen(delivery: Delivery) -> ColumnElement[bool]:
    """The delivery still in the kind of state it was seen in: waiting for a volunteer
    (allocated or failed), or under way with the same volunteer and as locked as it was.
    Giving a delivery to a volunteer, taking it back or handing it back is guarded on it:
    of two staff reassigning one locked delivery the second is refused, and a delivery
    given to a new volunteer meanwhile is not taken back without them hearing of it."""
    if delivery.status in UNDER_WAY:
        return and_(Delivery.status.in_(UNDER_WAY),
                    Delivery.volunteer_id == delivery.volunteer_id,
                    Delivery.locked.is_(delivery.locked))
    return Delivery.status.in_((DeliveryStatus.ALLOCATED, DeliveryStatus.FAILED))


async def _request_status(session: AsyncSession, delivery: Delivery, status: RequestStatus,
                          actor_contact_id: int | None, now: datetime,
                          note: str | None = None) -> HelpRequest:
    request = await session.get(HelpRequest, delivery.request_id, populate_existing=True)
    assert request is not None
    if request.status != status:
        request.status = status
        request.updated_at = now
        session.add(RequestEvent(request_id=request.id, status=status,
                                 actor_contact_id=actor_contact_id, note=note, at=now))
        await session.flush()
    return request


async def volunteer_villages(areas: AreaDirectory, volunteer: Volunteer) -> set[int]:
    return areas.villages_under(a.area_id for a in volunteer.areas)


async def open_tasks(session: AsyncSession, volunteer_ids: Sequence[int]) -> dict[int, int]:
    """Deliveries under way per volunteer (how busy each one is)."""
    rows = await session.execute(
        select(Delivery.volunteer_id, func.count())
        .where(Delivery.volunteer_id.in_(volunteer_ids), Delivery.status.in_(UNDER_WAY))
        .group_by(Delivery.volunteer_id))
    return {volunteer_id: count for volunteer_id, count in rows.all()
            if volunteer_id is not None}


async def tasks_held(session: AsyncSession, volunteer: Volunteer, now: datetime,
                     failed_hold: timedelta) -> tuple[int, int]:
    """What counts against the volunteer's limit of open tasks: their deliveries under
    way, and those they reported failed after picking them up within `failed_hold`
    (failing instead of delivering must not free room to read more households'
    details). Returns (under way, failed lately)."""
    under_way = (await open_tasks(session, [volunteer.id])).get(volunteer.id, 0)
    failed = await count_since(session, volunteer.contact_id, FAILED_AFTER_PICKUP, "done",
                               now - failed_hold, volunteer.aggregator_id) \
        if failed_hold > timedelta(0) else 0
    return under_way, failed


async def volunteers_for(session: AsyncSession, areas: AreaDirectory, delivery: Delivery,
                         village_id: int) -> list[Volunteer]:
    """Approved volunteers of the delivery's aggregator who cover the household's
    kelurahan, least busy first."""
    return await Volunteers(session, areas).for_delivery(delivery, village_id)


class Volunteers:
    """The approved volunteers of each aggregator asked about, with their kelurahan and
    how busy each is, read once: a page offering them for fifty deliveries reads them
    once, not fifty times."""

    def __init__(self, session: AsyncSession, areas: AreaDirectory) -> None:
        self._session = session
        self._areas = areas
        self._of: dict[int, list[tuple[Volunteer, set[int], int]]] = {}

    async def for_delivery(self, delivery: Delivery, village_id: int) -> list[Volunteer]:
        """As volunteers_for."""
        if delivery.aggregator_id not in self._of:
            self._of[delivery.aggregator_id] = await self._read(delivery.aggregator_id)
        covering = [(busy, volunteer.id, volunteer) for volunteer, villages, busy
                    in self._of[delivery.aggregator_id] if village_id in villages]
        return [volunteer for _, _, volunteer in sorted(covering, key=lambda c: c[:2])]

    async def _read(self, aggregator_id: int) -> list[tuple[Volunteer, set[int], int]]:
        candidates = (await self._session.scalars(
            select(Volunteer)
            .where(Volunteer.aggregator_id == aggregator_id,
                   Volunteer.status == VolunteerStatus.APPROVED)
            .options(selectinload(Volunteer.areas)).order_by(Volunteer.id))).all()
        busy = await open_tasks(self._session, [v.id for v in candidates]) \
            if candidates else {}
        return [(v, await volunteer_villages(self._areas, v), busy.get(v.id, 0))
                for v in candidates]


async def assign(session: AsyncSession, areas: AreaDirectory, delivery: Delivery,
                 volunteer: Volunteer, actor_contact_id: int, now: datetime) -> list[Notice]:
    """Give an allocated (or failed) delivery to a volunteer, with a new code for the
    household; a volunteer who had it before is told it went to someone else."""
    before = delivery.volunteer_id
    # A delivery locked after wrong codes is still under way: staff give it to another.
    if not reassignable(delivery):
        raise NotAllowed(delivery.status)
    await _move(session, delivery, _as_seen(delivery), now,
                status=DeliveryStatus.ASSIGNED, volunteer_id=volunteer.id, code=new_code(),
                wrong_codes=0, locked=False, failure_reason=None)
    request = await _request_status(session, delivery, RequestStatus.ALLOCATED,
                                    actor_contact_id, now)
    notices: list[Notice] = []
    if before is not None and before != volunteer.id:
        previous = await session.get(Volunteer, before)
        if previous is not None:
            notices += await announce(session, Event.TASK_REASSIGNED_AWAY, Subject(
                request=request, contact_id=previous.contact_id), now, actor_contact_id)
    notices += await announce(session, Event.DELIVERY_ASSIGNED, Subject(
        request=request, delivery=delivery,
        params=task_params(areas, request, volunteer)), now, actor_contact_id)
    return notices


def task_params(areas: AreaDirectory, request: HelpRequest, volunteer: Volunteer
                ) -> dict[str, Any]:
    """What the household and volunteer are told of an assignment: the volunteer's first
    name, and the area down to the RW (the address itself only in the volunteer's task)."""
    village = areas.get(request.village_id)
    return {"volunteer": volunteer.first_name, "rw": request.rw,
            "kelurahan": village.name if village else ""}


async def advance(session: AsyncSession, delivery: Delivery, status: DeliveryStatus,
                  volunteer: Volunteer, now: datetime) -> list[Notice]:
    """Picked up at the posko, or on the way: the household hears the latter."""
    allowed = {DeliveryStatus.PICKED_UP: (DeliveryStatus.ASSIGNED,),
               DeliveryStatus.ON_THE_WAY: (DeliveryStatus.ASSIGNED,
                                           DeliveryStatus.PICKED_UP)}[status]
    await _move(session, delivery, allowed, now, status=status)
    request = await _request_status(session, delivery, RequestStatus.OUT_FOR_DELIVERY,
                                    volunteer.contact_id, now)
    if status != DeliveryStatus.ON_THE_WAY:
        return []
    return await announce(session, Event.DELIVERY_ON_THE_WAY, Subject(
        request=request, delivery=delivery,
        params={"volunteer": volunteer.first_name}), now, volunteer.contact_id)


@dataclass(frozen=True)
class CodeCheck:
    delivered: bool
    attempts_left: int
    notices: list[Notice]


async def confirm_with_code(session: AsyncSession, areas: AreaDirectory, delivery: Delivery,
                            volunteer: Volunteer, code: str, now: datetime) -> CodeCheck:
    """The volunteer types the household's code; five wrong codes lock the delivery and
    alert staff."""
    if delivery.locked or delivery.status not in UNDER_WAY:
        raise NotAllowed(delivery.status)
    if secrets.compare_digest(code.strip(), delivery.code or ""):
        notices = await mark_delivered(session, areas, delivery.id, volunteer.contact_id, now)
        return CodeCheck(True, MAX_WRONG_CODES, notices)
    wrong = delivery.wrong_codes + 1
    locked = wrong >= MAX_WRONG_CODES
    await _move(session, delivery, UNDER_WAY, now, wrong_codes=wrong, locked=locked)
    notices = []
    if locked:
        request = await session.get(HelpRequest, delivery.request_id)
        notices = await announce(session, Event.DELIVERY_LOCKED, Subject(
            request=request, delivery=delivery, params={"volunteer": volunteer.first_name}),
            now, volunteer.contact_id)
    return CodeCheck(False, MAX_WRONG_CODES - wrong, notices)


async def submit_proof(session: AsyncSession, delivery: Delivery, volunteer: Volunteer,
                       media_id: str, latitude: float, longitude: float, now: datetime
                       ) -> list[Notice]:
    """Delivered without the code: a photo and the place, for staff to review."""
    await _move(session, delivery, UNDER_WAY, now, status=DeliveryStatus.AWAITING_REVIEW,
                proof_media_id=media_id[:200], proof_latitude=latitude,
                proof_longitude=longitude)
    request = await session.get(HelpRequest, delivery.request_id)
    return await announce(session, Event.DELIVERY_AWAITING_REVIEW, Subject(
        request=request, delivery=delivery), now, volunteer.contact_id)


async def review_proof(session: AsyncSession, areas: AreaDirectory, delivery: Delivery,
                       accept: bool, staff_contact_id: int, now: datetime) -> list[Notice]:
    """Staff accept a photo-and-place delivery, or send the volunteer back to it. Not
    while the household disputes it: the dispute is what staff settle first."""
    if delivery.status != DeliveryStatus.AWAITING_REVIEW or delivery.disputed:
        raise NotAllowed(delivery.status)
    if accept:
        return await mark_delivered(session, areas, delivery.id, staff_contact_id, now)
    await _move(session, delivery, (DeliveryStatus.AWAITING_REVIEW,), now,
                status=DeliveryStatus.ON_THE_WAY, proof_media_id=None, proof_latitude=None,
                proof_longitude=None)
    request = await _request_status(session, delivery, RequestStatus.OUT_FOR_DELIVERY,
                                    staff_contact_id, now, "proof rejected")
    return await announce(session, Event.DELIVERY_PROOF_REJECTED, Subject(
        request=request, delivery=delivery), now, staff_contact_id)


async def fail(session: AsyncSession, delivery: Delivery, reason: str,
               actor_contact_id: int, now: datetime, max_failures: int) -> list[Notice]:
    """The volunteer could not deliver: the household hears why and staff decide.

    Once picked up, the volunteer has read the household's details: failing then is
    counted as a drop (see `leave`), and alerts staff when it comes again and again."""
    picked_by = delivery.volunteer_id if delivery.status in PICKED else None
    await _move(session, delivery, UNDER_WAY, now, status=DeliveryStatus.FAILED,
                failure_reason=reason[:200])
    flagged: list[Notice] = []
    volunteer = await session.get(Volunteer, picked_by) if picked_by is not None else None
    if volunteer is not None:
        flagged = await _dropped(session, volunteer, FAILED_AFTER_PICKUP, now,
                                 f"delivery {delivery.id}")
    request, requeue = await _count_failure(session, delivery, actor_contact_id, now,
                                            reason[:200], max_failures)
    shown: object = {"key": f"failure.{reason}"} if reason in FAILURE_REASONS else reason
    notices = await announce(session, Event.DELIVERY_FAILED, Subject(
        request=request, delivery=delivery,
        params={"reason": shown, "next": _next_step(requeue)}), now, actor_contact_id)
    if requeue:
        await cancel(session, delivery, actor_contact_id, now, announce_requeue=False)
    return [*notices, *flagged]


def _next_step(requeue: bool) -> dict[str, str]:
    return {"key": "failure.next_queue" if requeue else "failure.next_retry"}


async def _count_failure(session: AsyncSession, delivery: Delivery, actor_contact_id: int,
                         now: datetime, note: str, max_failures: int
                         ) -> tuple[HelpRequest, bool]:
    """Mark the request failed and count it; after `max_failures` failed deliveries since
    it was last queued, it is to go back to the queue of verified households (and its
    stock back into stock), where the count starts again."""
    request = await _request_status(session, delivery, RequestStatus.FAILED,
                                    actor_contact_id, now, note)
    request.failed_deliveries += 1
    requeue = request.failed_deliveries >= max_failures
    if requeue:
        request.failed_deliveries = 0
    await session.flush()
    return request, requeue


def reassignable(delivery: Delivery) -> bool:
    """Whether staff may give the delivery to a volunteer (anew): waiting for one,
    failed, or locked after wrong codes."""
    return delivery.status in (DeliveryStatus.ALLOCATED, DeliveryStatus.FAILED) \
        or (delivery.locked and delivery.status in UNDER_WAY)


def cancellable(delivery: Delivery) -> bool:
    """Whether staff may take the delivery back: failed, or locked after wrong codes."""
    return delivery.status == DeliveryStatus.FAILED \
        or (delivery.locked and delivery.status in UNDER_WAY)


async def cancel(session: AsyncSession, delivery: Delivery, staff_contact_id: int,
                 now: datetime, announce_requeue: bool = True) -> list[Notice]:
    """Take a delivery back: its stock returns to stock and to its pledges, and the
    household waits among the verified again.

    Only a failed delivery, or one locked after wrong codes, is taken back: one waiting
    for a volunteer or on its way is not staff's to cancel (a forged or stale button
    would otherwise pull aid from under a volunteer carrying it)."""
    if not cancellable(delivery):
        raise NotAllowed(delivery.status)
    carried_by = delivery.volunteer_id if delivery.status in UNDER_WAY else None
    await _move(session, delivery, _as_seen(delivery), now, status=DeliveryStatus.CANCELLED)
    sources = (await session.scalars(select(DeliverySource).where(
        DeliverySource.delivery_id == delivery.id))).all()
    for source in sources:
        await session.execute(
            update(Pledge).where(Pledge.id == source.pledge_id)
            .values(allocated_quantity=Pledge.allocated_quantity - source.quantity,
                    updated_at=now)
            .execution_options(synchronize_session=False))
    await add_stock(session, delivery.aggregator_id, delivery.category, delivery.quantity)
    request = await _request_status(session, delivery, RequestStatus.VERIFIED,
                                    staff_contact_id, now, "delivery cancelled")
    if carried_by is not None:
        # A volunteer still on it (a locked delivery, say) must not bring it any more.
        volunteer = await session.get(Volunteer, carried_by)
        if volunteer is not None:
            await announce(session, Event.TASK_CANCELLED, Subject(
                request=request, contact_id=volunteer.contact_id), now, staff_contact_id)
    if not announce_requeue:
        return []
    return await announce(session, Event.REQUEST_REQUEUED, Subject(request=request), now,
                          staff_contact_id)


# What a household leaving takes back: everything not yet with them, or claimed so.
WITHDRAWABLE = (DeliveryStatus.ALLOCATED, DeliveryStatus.FAILED, *UNDER_WAY)


async def withdraw(session: AsyncSession, delivery: Delivery, request: HelpRequest,
                   actor_contact_id: int, now: datetime) -> None:
    """The household had its data erased before the aid reached it: the delivery is
    taken back whatever its state (unlike staff's `cancel`, a volunteer may be carrying
    it), its stock returns to stock and to its pledges, and a volunteer who has it is
    told to bring it back to the posko. The request's own status is the caller's."""
    carried_by = delivery.volunteer_id if delivery.status in UNDER_WAY else None
    await _move(session, delivery, WITHDRAWABLE, now, status=DeliveryStatus.CANCELLED,
                code=None)
    sources = (await session.scalars(select(DeliverySource).where(
        DeliverySource.delivery_id == delivery.id))).all()
    for source in sources:
        await session.execute(
            update(Pledge).where(Pledge.id == source.pledge_id)
            .values(allocated_quantity=Pledge.allocated_quantity - source.quantity,
                    updated_at=now)
            .execution_options(synchronize_session=False))
    await add_stock(session, delivery.aggregator_id, delivery.category, delivery.quantity)
    if carried_by is not None:
        volunteer = await session.get(Volunteer, carried_by)
        if volunteer is not None:
            await announce(session, Event.TASK_WITHDRAWN, Subject(
                request=request, contact_id=volunteer.contact_id), now, actor_contact_id)


async def household_answer(session: AsyncSession, areas: AreaDirectory, delivery: Delivery,
                           received: bool, contact_id: int, now: datetime) -> list[Notice]:
    """The household says it received the aid (a confirmation, from either side) or that
    it did not (a dispute for staff, when the volunteer said it did)."""
    request = await session.get(HelpRequest, delivery.request_id)
    if request is None or not await same_person(session, contact_id, request.contact_id):
        raise NotAllowed("not theirs")
    if received:
        if delivery.status not in (*UNDER_WAY, DeliveryStatus.AWAITING_REVIEW):
            raise NotAllowed(delivery.status)
        # From awaiting review too: the household's word settles what the photo was to
        # prove.
        return await mark_delivered(session, areas, delivery.id, contact_id, now)
    if delivery.status not in DISPUTABLE:
        # Not marked delivered yet: nothing to dispute, the aid is still on its way.
        raise NotAllowed(delivery.status)
    await _move(session, delivery, DISPUTABLE, now, disputed=True)
    return await announce(session, Event.DELIVERY_DISPUTED, Subject(
        request=request, delivery=delivery), now, contact_id)


async def resolve_dispute(session: AsyncSession, delivery: Delivery, delivered: bool,
                          staff_contact_id: int, now: datetime, max_failures: int
                          ) -> list[Notice]:
    """Staff settle a dispute, and the household hears the outcome: it was delivered
    after all, or it was not, and the delivery fails like any other (to be reassigned,
    or back to the queue after `max_failures`), no longer counted as delivered."""
    if not delivery.disputed or delivery.status not in DISPUTABLE:
        raise NotAllowed("not disputed")
    # Still disputed as it was seen: of two staff settling one dispute at once, the second
    # is refused instead of deciding it again (or the other way).
    still_disputed = and_(Delivery.status == delivery.status, Delivery.disputed.is_(True))
    request = await session.get(HelpRequest, delivery.request_id)
    assert request is not None
    if delivered:
        await _move(session, delivery, still_disputed, now, disputed=False)
        return await announce(session, Event.DISPUTE_DISMISSED, Subject(
            request=request, delivery=delivery), now, staff_contact_id)
    was_counted = delivery.status == DeliveryStatus.DELIVERED
    await _move(session, delivery, still_disputed, now,
                status=DeliveryStatus.FAILED, disputed=False, failure_reason="disputed",
                delivered_at=None)
    if was_counted:
        for source in (await session.scalars(select(DeliverySource).where(
                DeliverySource.delivery_id == delivery.id))).all():
            await session.execute(
                update(Pledge).where(Pledge.id == source.pledge_id)
                .values(delivered_quantity=Pledge.delivered_quantity - source.quantity,
                        updated_at=now)
                .execution_options(synchronize_session=False))
    request, requeue = await _count_failure(session, delivery, staff_contact_id, now,
                                            "disputed", max_failures)
    notices = await announce(session, Event.DISPUTE_UPHELD, Subject(
        request=request, delivery=delivery, params={"next": _next_step(requeue)}),
        now, staff_contact_id)
    if requeue:
        await cancel(session, delivery, staff_contact_id, now, announce_requeue=False)
    return notices


async def rate(session: AsyncSession, delivery: Delivery, contact_id: int, stars: int,
               now: datetime) -> None:
    request = await session.get(HelpRequest, delivery.request_id)
    if request is None or not await same_person(session, contact_id, request.contact_id) \
            or delivery.status != DeliveryStatus.DELIVERED or not 1 <= stars <= 5:
        raise NotAllowed("not theirs to rate")
    delivery.rating = stars
    delivery.updated_at = now
    await session.flush()


async def leave(session: AsyncSession, volunteer: Volunteer, now: datetime) -> list[Notice]:
    """The volunteer stops; their deliveries under way return to staff to reassign.

    Taking tasks (and with them households' details) and handing them back again and
    again is how a stranger with an invite would collect addresses: each hand-back is
    audited, and the `HAND_BACKS_FLAGGED`-th drop (a hand-back, or a task failed after
    pick-up) within `HAND_BACK_WINDOW` alerts staff."""
    volunteer.status = VolunteerStatus.LEFT
    returned = await hand_back(session, volunteer, volunteer.contact_id, now)
    if not returned:
        return []
    notices = await announce(session, Event.TASKS_RETURNED, Subject(
        aggregator_id=volunteer.aggregator_id,
        params={"volunteer": volunteer.first_name, "count": len(returned)},
        delivery_ids=tuple(d.id for d in returned)),
        now, volunteer.contact_id)
    return notices + await _dropped(session, volunteer, "hand_back", now,
                                    f"{len(returned)} tasks")


async def _dropped(session: AsyncSession, volunteer: Volunteer, action: str, now: datetime,
                   detail: str) -> list[Notice]:
    """Record a drop (tasks handed back, or a task failed after pick-up); the
    `HAND_BACKS_FLAGGED`-th within `HAND_BACK_WINDOW` alerts the aggregator's staff."""
    audit(session, now, action, "done", contact_id=volunteer.contact_id,
          aggregator_id=volunteer.aggregator_id, detail=detail)
    await session.flush()
    times = await count_since(session, volunteer.contact_id, DROPS, "done",
                              now - HAND_BACK_WINDOW)
    if times < HAND_BACKS_FLAGGED:
        return []
    audit(session, now, "volunteer_flagged", "hand-backs",
          contact_id=volunteer.contact_id, aggregator_id=volunteer.aggregator_id,
          detail=f"{times} in {HAND_BACK_WINDOW}")
    return await announce(session, Event.VOLUNTEER_FLAGGED, Subject(
        aggregator_id=volunteer.aggregator_id,
        params={"volunteer": volunteer.name, "count": times}),
        now, volunteer.contact_id)


async def hand_back(session: AsyncSession, volunteer: Volunteer, actor_contact_id: int,
                    now: datetime) -> list[Delivery]:
    """The volunteer's deliveries under way go back to waiting for a volunteer."""
    returned = []
    for delivery in (await session.scalars(select(Delivery).where(
            Delivery.volunteer_id == volunteer.id, Delivery.status.in_(UNDER_WAY)))).all():
        try:
            await _move(session, delivery, _as_seen(delivery), now,
                        status=DeliveryStatus.ALLOCATED, volunteer_id=None, code=None)
        except NotAllowed:
            # Moved on by someone else since it was read (delivered, cancelled): it is
            # no longer theirs to hand back, and they leave all the same.
            continue
        returned.append(delivery)
        await _request_status(session, delivery, RequestStatus.ALLOCATED,
                              actor_contact_id, now, "volunteer left")
    await session.flush()
    return returned


def shows_details(delivery: Delivery, now: datetime) -> bool:
    """Whether the volunteer may see the household's name, phone and address: from when
    they picked the aid up (a task only taken shows the kelurahan and RW, so taking
    tasks does not reveal households) until a day after delivery."""
    if delivery.status not in DETAILS_SHOWN:
        return False
    return delivery.delivered_at is None or now - delivery.delivered_at < DETAILS_AFTER_DELIVERY


async def tasks_of(session: AsyncSession, volunteer_ids: Sequence[int], limit: int = 20
                   ) -> list[Delivery]:
    """The volunteer's deliveries, under way first, then the latest others."""
    result = await session.scalars(
        select(Delivery).where(Delivery.volunteer_id.in_(volunteer_ids))
        .order_by(Delivery.status.in_(UNDER_WAY).desc(), Delivery.id.desc()).limit(limit))
    return list(result.all())


async def open_deliveries(session: AsyncSession, aggregator_ids: Sequence[int],
                          village_ids: set[int], limit: int) -> list[Delivery]:
    """Allocated deliveries without a volunteer in these kelurahan, oldest first."""
    if not village_ids:
        return []
    result = await session.scalars(
        select(Delivery).join(HelpRequest, HelpRequest.id == Delivery.request_id)
        .where(Delivery.aggregator_id.in_(aggregator_ids),
               Delivery.status == DeliveryStatus.ALLOCATED,
               HelpRequest.village_id.in_(list(village_ids)))
        .order_by(Delivery.id).limit(limit))
    return list(result.all())
