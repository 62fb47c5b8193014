"""What the metrics read from the database at each scrape: counts by state, never rows
(a few grouped counts, each answered from an index)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.help_request import HelpRequest
from gotong.models.inbound import inbound_counts
from gotong.models.outbox import OutboxMessage, Purpose
from gotong.models.stock import StockItem


@dataclass(frozen=True)
class Gauges:
    outbox: dict[tuple[str, str], int]  # (status, purpose) -> rows
    requests: dict[str, int]  # status -> requests
    stock: dict[str, int]  # category -> quantity, all aggregators together
    inbound_waiting: int
    inbound_set_aside: int


async def read_gauges(session: AsyncSession) -> Gauges:
    m = OutboxMessage
    outbox = {
        (status, Purpose(priority).name.lower()): count
        for status, priority, count in (await session.execute(
            select(m.status, m.priority, func.count()).group_by(m.status, m.priority))).all()
    }
    requests = {status: count for status, count in (await session.execute(
        select(HelpRequest.status, func.count()).group_by(HelpRequest.status))).all()}
    stock = {category: quantity for category, quantity in (await session.execute(
        select(StockItem.category, func.sum(StockItem.quantity))
        .group_by(StockItem.category))).all()}
    waiting, aside = await inbound_counts(session)
    return Gauges(outbox, requests, {k: int(v or 0) for k, v in stock.items()}, waiting,
                  aside)
