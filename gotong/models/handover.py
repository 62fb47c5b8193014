"""An aggregator disabled by the operator, and enabled again; the work it leaves open.

Disabling deletes nothing. The aggregator stops covering its areas (`covered_areas`,
the donor's choices and the staff told of new requests leave it out), so its requests
wait as uncovered unless another aggregator covers them, and donors cannot choose it.
What it had under way stays its own until someone finishes it or hands it over: the
operator gets the list, and its staff hear of the change through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.aggregator import Aggregator, get_aggregator
from gotong.models.area import AreaDirectory
from gotong.models.coverage import WAITING, route_newly_covered, uncovered_requests
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.help_request import HelpRequest
from gotong.models.notifications import Event, Subject, announce
from gotong.models.pledge import Pledge, PledgeStatus

# Deliveries that are not yet over: the aid is still with the aggregator or on its way.
OPEN_DELIVERIES = (DeliveryStatus.ALLOCATED, DeliveryStatus.ASSIGNED,
                   DeliveryStatus.PICKED_UP, DeliveryStatus.ON_THE_WAY,
                   DeliveryStatus.AWAITING_REVIEW, DeliveryStatus.FAILED)


@dataclass(frozen=True)
class OpenWork:
    """What an aggregator has under way, by reference: for whoever takes it over."""

    # Requests in its areas that wait to be verified or to get aid, and of those, the
    # ones no other enabled aggregator covers.
    requests: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    # Pledges to it not yet received, and received ones with stock not yet allocated.
    pledges: list[str] = field(default_factory=list)
    stock_pledges: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)


async def open_work(session: AsyncSession, areas: AreaDirectory, aggregator: Aggregator
                    ) -> OpenWork:
    villages = areas.villages_under(area.area_id for area in aggregator.areas)
    requests = list((await session.scalars(
        select(HelpRequest.reference)
        .where(HelpRequest.status.in_(WAITING), HelpRequest.village_id.in_(sorted(villages)))
        .order_by(HelpRequest.id))).all()) if villages else []
    uncovered = {row.reference for row in await uncovered_requests(session)}
    pledges = (await session.execute(
        select(Pledge.code, Pledge.status, Pledge.received_quantity, Pledge.allocated_quantity)
        .where(Pledge.aggregator_id == aggregator.id,
               Pledge.status.in_((PledgeStatus.PLEDGED, PledgeStatus.RECEIVED)))
        .order_by(Pledge.id))).all()
    deliveries = (await session.execute(
        select(Delivery.id, HelpRequest.reference)
        .join(HelpRequest, HelpRequest.id == Delivery.request_id)
        .where(Delivery.aggregator_id == aggregator.id,
               Delivery.status.in_(OPEN_DELIVERIES))
        .order_by(Delivery.id))).all()
    return OpenWork(
        requests=requests,
        uncovered=[reference for reference in requests if reference in uncovered],
        pledges=[p.code for p in pledges if p.status == PledgeStatus.PLEDGED],
        stock_pledges=[p.code for p in pledges if p.status == PledgeStatus.RECEIVED
                       and (p.received_quantity or 0) > p.allocated_quantity],
        deliveries=[reference for _, reference in deliveries])


async def disable_aggregator(session: AsyncSession, aggregator_id: int, now: datetime
                             ) -> Aggregator | None:
    """Disable an aggregator and tell its staff; None if it was disabled already."""
    aggregator = await get_aggregator(session, aggregator_id)
    changed = await session.execute(
        update(Aggregator).where(Aggregator.id == aggregator_id,
                                 Aggregator.disabled_at.is_(None))
        .values(disabled_at=now).execution_options(synchronize_session=False))
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    await session.refresh(aggregator)
    await announce(session, Event.AGGREGATOR_DISABLED, Subject(
        aggregator_id=aggregator_id, params={"aggregator": aggregator.name}), now)
    return aggregator


async def enable_aggregator(session: AsyncSession, aggregator_id: int, now: datetime
                            ) -> tuple[Aggregator, int] | None:
    """Enable an aggregator again and tell its staff, and the households waiting in its
    areas that it serves them now; the aggregator and how many requests it took over, or
    None if it was enabled already."""
    aggregator = await get_aggregator(session, aggregator_id)
    before = [row.id for row in await uncovered_requests(session)]
    changed = await session.execute(
        update(Aggregator).where(Aggregator.id == aggregator_id,
                                 Aggregator.disabled_at.is_not(None))
        .values(disabled_at=None).execution_options(synchronize_session=False))
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    await session.refresh(aggregator)
    await announce(session, Event.AGGREGATOR_ENABLED, Subject(
        aggregator_id=aggregator_id, params={"aggregator": aggregator.name}), now)
    routed = await route_newly_covered(session, before, aggregator, now)
    return aggregator, routed

