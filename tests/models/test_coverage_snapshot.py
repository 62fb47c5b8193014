"""The coverage a process keeps for advisory notes: read once, trusted for a while, read
again after that, and never kept from a disabled aggregator."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from gotong.bot.services import Services
from gotong.models.aggregator import Aggregator, Posko, create_aggregator, edit_aggregator
from gotong.models.area import AreaLevel
from gotong.models.base import utcnow
from gotong.models.coverage import CoverageSnapshot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_coverage_is_read_again_once_it_is_older_than_its_freshness(
        services: Services) -> None:
    [east] = services.areas.named(AreaLevel.REGENCY, "Jakarta Timur")
    [south] = services.areas.named(AreaLevel.REGENCY, "Jakarta Selatan")
    clock = Clock()
    snapshot = CoverageSnapshot(timedelta(seconds=5), clock)
    async with services.sessions() as session, session.begin():
        posko = await create_aggregator(session, "Posko Timur", Posko.parse(
            "Jl. Timur 1; 08.00-16.00"), [east.id], utcnow())
    async with services.sessions() as session:
        assert await snapshot.covered(session) == {east.id}

    async with services.sessions() as session, session.begin():
        await edit_aggregator(session, posko.id, area_ids=[east.id, south.id])
    clock.now += 4.9
    async with services.sessions() as session:
        # Within its freshness, the statement is not run again.
        assert await snapshot.covered(session) == {east.id}
    clock.now += 0.1
    async with services.sessions() as session:
        assert await snapshot.covered(session) == {east.id, south.id}

    async with services.sessions() as session, session.begin():
        await session.execute(update(Aggregator).values(disabled_at=utcnow()))
    clock.now += 5
    async with services.sessions() as session:
        assert await snapshot.covered(session) == frozenset()
