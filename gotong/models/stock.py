"""An aggregator's stock per category: what was received from pledges and not yet
allocated to a household.

The stock row is the sum, per aggregator and category, of `received - allocated` over the
received pledges; every change to either moves it in the same transaction. It is changed
only by guarded UPDATEs (`quantity >= n` to take), so it never goes below zero, and on
PostgreSQL the row lock taken by the first UPDATE makes two staff allocating from the same
stock take turns.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base
from gotong.models.notifications import Event, Subject, announce
from gotong.models.outbox import Notice
from gotong.models.person import same_person
from gotong.models.pledge import (
    Handover,
    NewPledge,
    Pledge,
    PledgeStatus,
    create_pledge,
    max_quantity,
)
from gotong.models.rules import NotAllowed, write_guarded


class StockItem(Base):
    __tablename__ = "stock_item"
    __table_args__ = (UniqueConstraint("aggregator_id", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    aggregator_id: Mapped[int] = mapped_column(ForeignKey("aggregator.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(BigInteger)


async def add_stock(session: AsyncSession, aggregator_id: int, category: str,
                    quantity: int) -> None:
    added = await session.execute(
        update(StockItem)
        .where(StockItem.aggregator_id == aggregator_id, StockItem.category == category)
        .values(quantity=StockItem.quantity + quantity)
        .execution_options(synchronize_session=False))
    if added.rowcount == 0:  # type: ignore[attr-defined]
        # The first receipt of a category; a concurrent first receipt fails the unique
        # constraint and its unit of work runs again, then finding this row.
        session.add(StockItem(aggregator_id=aggregator_id, category=category,
                              quantity=quantity))
        await session.flush()


async def take_stock(session: AsyncSession, aggregator_id: int, category: str,
                     quantity: int) -> bool:
    """Take `quantity` out of stock if there is that much; whether it was taken."""
    taken = await session.execute(
        update(StockItem)
        .where(StockItem.aggregator_id == aggregator_id, StockItem.category == category,
               StockItem.quantity >= quantity)
        .values(quantity=StockItem.quantity - quantity)
        .execution_options(synchronize_session=False))
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


async def stock_of(session: AsyncSession, aggregator_ids: list[int]) -> dict[str, int]:
    """Quantity in stock per category, summed over these aggregators."""
    rows = await session.execute(
        select(StockItem.category, StockItem.quantity)
        .where(StockItem.aggregator_id.in_(aggregator_ids)))
    totals: dict[str, int] = {}
    for category, quantity in rows:
        totals[category] = totals.get(category, 0) + quantity
    return totals


async def incoming_pledges(session: AsyncSession, aggregator_ids: list[int], limit: int
                           ) -> list[Pledge]:
    """Pledges made to these aggregators and not yet received, oldest first."""
    result = await session.scalars(
        select(Pledge)
        .where(Pledge.aggregator_id.in_(aggregator_ids), Pledge.status == PledgeStatus.PLEDGED)
        .order_by(Pledge.id).limit(limit))
    return list(result.all())


async def make_pledge(session: AsyncSession, contact_id: int, new: NewPledge, now: datetime,
                      staff_digest: bool = False) -> Pledge:
    """A donor's pledge, which the aggregator's staff hear of: a pledge to expect at the
    posko, or a pick-up to arrange (at once, or in their digest when `staff_digest`)."""
    pledge = await create_pledge(session, contact_id, new, now)
    event = Event.PICKUP_REQUESTED if new.handover == Handover.PICKUP else Event.PLEDGE_MADE
    await announce(session, event, Subject(pledge=pledge, aggregator_id=pledge.aggregator_id,
                                           staff_digest=staff_digest),
                   now, actor_contact_id=contact_id)
    return pledge


async def receive_pledge(session: AsyncSession, pledge: Pledge, counted: int,
                         staff_contact_id: int, now: datetime) -> list[Notice]:
    """Staff counted what arrived: it goes into stock and the donor hears the count."""
    # Checked here as well as where it is typed: stock only ever grows by what arrived.
    if not 0 < counted <= max_quantity(pledge.category):
        raise NotAllowed("quantity")
    await write_guarded(session, update(Pledge)
                        .where(Pledge.id == pledge.id, Pledge.status == PledgeStatus.PLEDGED)
                        .values(status=PledgeStatus.RECEIVED, received_quantity=counted,
                                updated_at=now), pledge.status)
    await session.refresh(pledge)
    await add_stock(session, pledge.aggregator_id, pledge.category, counted)
    return await announce(session, Event.PLEDGE_RECEIVED, Subject(pledge=pledge), now,
                          actor_contact_id=staff_contact_id)


async def cancel_pledge(session: AsyncSession, pledge: Pledge, donor_contact_id: int,
                        now: datetime) -> None:
    """The donor takes back a pledge that has not been received yet."""
    if not await same_person(session, donor_contact_id, pledge.contact_id):
        raise NotAllowed("not theirs")
    await write_guarded(session, update(Pledge)
                        .where(Pledge.id == pledge.id, Pledge.status == PledgeStatus.PLEDGED)
                        .values(status=PledgeStatus.CANCELLED, updated_at=now),
                        pledge.status)
    await session.refresh(pledge)
