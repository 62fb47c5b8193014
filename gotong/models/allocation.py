"""Allocation: which verified households get an aggregator's stock, and taking it.

The proposal is the verified households of the aggregator's kelurahan in priority order
(one index scan on `ix_help_request_queue`), less those served within the cool-down: a
household is the same as another when they share a NIK hash, a phone or a normalised name
and address, whichever aggregator served it. Staff may still choose such a household, or
one out of order, with a reason that is kept on the delivery.

Allocating draws the stock down first (a guarded UPDATE whose row lock makes concurrent
allocations of one category take turns), then takes the quantity from received pledges,
oldest first, among those whose donor's target area holds the household, and records on
the delivery how much came from each pledge.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.area import AreaDirectory
from gotong.models.delivery import SERVING_STATUSES, Delivery, DeliverySource, DeliveryStatus
from gotong.models.help_request import HelpRequest, RequestEvent, served_since
from gotong.models.notifications import Event, Subject, announce
from gotong.models.outbox import Notice
from gotong.models.pledge import Pledge, PledgeStatus, max_quantity
from gotong.models.request_status import RequestStatus
from gotong.models.rules import NotAllowed
from gotong.models.stock import add_stock, take_stock

# Candidates read per query while looking past households in their cool-down.
SCAN_FACTOR = 3


async def propose(session: AsyncSession, village_ids: Collection[int], limit: int,
                  now: datetime, cooldown: timedelta, skip: Collection[int] = (),
                  rank: ColumnElement[float] | None = None) -> list[HelpRequest]:
    """The `limit` verified households first in priority order, outside their cool-down
    and not in `skip`. (`rank` is the rank to order by: a benchmark gives the same value
    as an expression, which no index serves.)"""
    if not village_ids or limit < 1:
        return []
    order = HelpRequest.queue_rank if rank is None else rank
    chosen: list[HelpRequest] = []
    after: tuple[float, int] | None = None
    batch = limit * SCAN_FACTOR
    while len(chosen) < limit:
        query = (select(HelpRequest)
                 .where(HelpRequest.status == RequestStatus.VERIFIED,
                        HelpRequest.village_id.in_(list(village_ids)))
                 .order_by(order.desc(), HelpRequest.id)
                 .limit(batch))
        if after is not None:
            # Keyset paging in (rank descending, id ascending) order.
            query = query.where(or_(HelpRequest.queue_rank < after[0],
                                    and_(HelpRequest.queue_rank == after[0],
                                         HelpRequest.id > after[1])))
        page = list((await session.scalars(query)).all())
        if not page:
            break
        after = (page[-1].queue_rank, page[-1].id)
        cooling = await served_since(session, page, now - cooldown)
        chosen.extend(r for r in page if r.id not in cooling and r.id not in skip)
        if len(page) < batch:
            break
    return chosen[:limit]


@dataclass(frozen=True)
class Pick:
    """A household staff chose, and why when it was out of the proposed order."""

    request_id: int
    override_reason: str | None = None


@dataclass
class Allocated:
    deliveries: list[Delivery] = field(default_factory=list)
    # (request id, why not): "taken", "cooldown", "no_stock", "no_stock_for_area".
    refused: list[tuple[int, str]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


async def allocate(session: AsyncSession, areas: AreaDirectory, aggregator_id: int,
                   category: str, per_household: int, picks: Sequence[Pick],
                   staff_contact_id: int, now: datetime, cooldown: timedelta) -> Allocated:
    """One delivery per household picked, as far as stock goes; the caller has checked
    that the staff member may allocate to these households."""
    if not 0 < per_household <= max_quantity(category):
        # Stock is taken per household: none, or less than none, would add to it.
        raise NotAllowed("quantity")
    outcome = Allocated()
    touched: dict[int, Pledge] = {}
    for pick in picks:
        request = await session.get(HelpRequest, pick.request_id, populate_existing=True)
        if request is None or request.status != RequestStatus.VERIFIED:
            outcome.refused.append((pick.request_id, "taken"))
            continue
        if pick.override_reason is None and await served_since(
                session, [request], now - cooldown):
            outcome.refused.append((request.id, "cooldown"))
            continue
        if not await take_stock(session, aggregator_id, category, per_household):
            # The stock may have gone to this very household, in an allocation that
            # committed after the check above read it: that it no longer waits is what
            # the check would have said.
            await session.refresh(request)
            outcome.refused.append((request.id, "no_stock" if request.status
                                    == RequestStatus.VERIFIED else "taken"))
            continue
        # Read after the stock row is locked: no concurrent allocation moves these.
        plan = await _plan(session, areas, aggregator_id, category, per_household,
                           request.village_id)
        if plan is None:
            await add_stock(session, aggregator_id, category, per_household)
            outcome.refused.append((request.id, "no_stock_for_area"))
            continue
        claimed = await session.execute(
            update(HelpRequest)
            .where(HelpRequest.id == request.id, HelpRequest.status == RequestStatus.VERIFIED)
            .values(status=RequestStatus.ALLOCATED, updated_at=now)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            await add_stock(session, aggregator_id, category, per_household)
            outcome.refused.append((request.id, "taken"))
            continue
        delivery = Delivery(request_id=request.id, aggregator_id=aggregator_id,
                            category=category, quantity=per_household,
                            status=DeliveryStatus.ALLOCATED,
                            override_reason=pick.override_reason,
                            allocated_by=staff_contact_id, created_at=now, updated_at=now)
        for pledge, quantity in plan:
            await session.execute(
                update(Pledge).where(Pledge.id == pledge.id)
                .values(allocated_quantity=Pledge.allocated_quantity + quantity,
                        updated_at=now)
                .execution_options(synchronize_session=False))
            delivery.sources.append(DeliverySource(pledge_id=pledge.id, quantity=quantity))
            touched[pledge.id] = pledge
        session.add(delivery)
        session.add(RequestEvent(request_id=request.id, status=RequestStatus.ALLOCATED,
                                 actor_contact_id=staff_contact_id,
                                 note=pick.override_reason, at=now))
        await session.flush()
        await session.refresh(request)
        outcome.deliveries.append(delivery)
        # Volunteers of the area may take it (a digest: allocations come in batches).
        await announce(session, Event.DELIVERY_OPEN,
                       Subject(request=request, delivery=delivery), now, staff_contact_id)
        outcome.notices += await announce(
            session, Event.REQUEST_ALLOCATED,
            Subject(request=request, params={"category": {"key": f"category.{category}"},
                                             "quantity": per_household},
                    delivery_ids=(delivery.id,)),
            now, actor_contact_id=staff_contact_id)
    for pledge in touched.values():
        await session.refresh(pledge)
        outcome.notices += await announce(
            session, Event.PLEDGE_PROGRESS,
            Subject(pledge=pledge, params=await pledge_progress(session, areas, pledge)),
            now, actor_contact_id=staff_contact_id)
    return outcome


async def _plan(session: AsyncSession, areas: AreaDirectory, aggregator_id: int,
                category: str, quantity: int, village_id: int
                ) -> list[tuple[Pledge, int]] | None:
    """Which received pledges the quantity comes from, oldest first; None if the
    pledges meant for this household's area do not hold enough."""
    village = areas.get(village_id)
    district = areas.get(village.parent_id) if village and village.parent_id else None
    targets = [a for a in (district.id if district else None,
                           district.parent_id if district else None) if a is not None]
    pledges = (await session.scalars(
        select(Pledge)
        .where(Pledge.aggregator_id == aggregator_id, Pledge.category == category,
               Pledge.status == PledgeStatus.RECEIVED,
               Pledge.received_quantity > Pledge.allocated_quantity,
               or_(Pledge.target_area_id.is_(None), Pledge.target_area_id.in_(targets)))
        .order_by(Pledge.id)
        .execution_options(populate_existing=True))).all()
    plan: list[tuple[Pledge, int]] = []
    left = quantity
    for pledge in pledges:
        take = min(left, (pledge.received_quantity or 0) - pledge.allocated_quantity)
        plan.append((pledge, take))
        left -= take
        if left == 0:
            return plan
    return None


async def pledge_progress(session: AsyncSession, areas: AreaDirectory, pledge: Pledge
                          ) -> dict[str, Any]:
    """What a donor is told of their pledge: quantities, households and kelurahan, never
    who the households are."""
    rows = (await session.execute(
        select(HelpRequest.village_id, func.count(func.distinct(HelpRequest.id)))
        .join(Delivery, Delivery.request_id == HelpRequest.id)
        .join(DeliverySource, DeliverySource.delivery_id == Delivery.id)
        .where(DeliverySource.pledge_id == pledge.id, Delivery.status.in_(SERVING_STATUSES))
        .group_by(HelpRequest.village_id))).all()
    villages = sorted(filter(None, (areas.get(village_id) for village_id, _ in rows)),
                      key=lambda v: v.name)
    return {"code": pledge.code, "received": pledge.received_quantity or 0,
            "allocated": pledge.allocated_quantity, "delivered": pledge.delivered_quantity,
            "households": sum(count for _, count in rows),
            "kelurahan": ", ".join(v.name for v in villages[:10])
            + (" …" if len(villages) > 10 else "")}
