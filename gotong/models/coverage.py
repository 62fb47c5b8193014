"""Requests that wait where no aggregator serves, and what happens when one comes.

A request is routed by its kelurahan: the staff of every enabled aggregator covering it
(or its kecamatan or kota) see it in their queue and allocate to it. Where none does, the
request is kept and waits "uncovered": the household was told so when it asked, the
operator lists such requests with `gotong uncovered`, and the moment an aggregator
covers the area (added, given the area, or enabled again) each household hears of it and
the aggregator's staff hear of new requests in their queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Exists, Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import SQLCoreOperations

from gotong.models.aggregator import Aggregator, AggregatorArea, covered_areas
from gotong.models.area import Area
from gotong.models.help_request import HelpRequest
from gotong.models.notifications import Event, Subject, announce
from gotong.models.request_status import RequestStatus

# Requests that wait for an aggregator to act on them: to verify, or to allocate aid to.
WAITING = (RequestStatus.SUBMITTED, RequestStatus.VERIFIED)


def _enabled_covering(*area_ids: SQLCoreOperations[Any] | int) -> Exists:
    """Whether an enabled aggregator covers any of these areas (columns of the query)."""
    return exists(
        select(AggregatorArea.id)
        .join(Aggregator, Aggregator.id == AggregatorArea.aggregator_id)
        .where(Aggregator.disabled_at.is_(None),
               or_(*(AggregatorArea.area_id == area_id for area_id in area_ids))))


def _uncovered_query(*columns: SQLCoreOperations[Any]) -> Select[Any]:
    village, district = aliased(Area), aliased(Area)
    return (select(*columns).select_from(HelpRequest)
            .join(village, village.id == HelpRequest.village_id)
            .join(district, district.id == village.parent_id)
            .where(HelpRequest.status.in_(WAITING),
                   ~_enabled_covering(village.id, district.id, district.parent_id)))


@dataclass(frozen=True)
class Uncovered:
    """A waiting request no enabled aggregator covers: what the operator may see of it."""

    id: int
    reference: str
    status: str
    village_id: int
    created_at: datetime


async def uncovered_requests(session: AsyncSession) -> list[Uncovered]:
    """Waiting requests in areas no enabled aggregator covers, oldest first."""
    query = _uncovered_query(HelpRequest.id, HelpRequest.reference, HelpRequest.status,
                             HelpRequest.village_id, HelpRequest.created_at)
    rows = await session.execute(query.order_by(HelpRequest.created_at, HelpRequest.id))
    return [Uncovered(*row) for row in rows.all()]


async def count_uncovered(session: AsyncSession) -> int:
    return int(await session.scalar(_uncovered_query(func.count(HelpRequest.id))) or 0)


async def is_covered(session: AsyncSession, area_ids: Collection[int]) -> bool:
    """Whether an enabled aggregator covers any of these areas (a kelurahan with its
    kecamatan and kota)."""
    return bool(await session.scalar(select(_enabled_covering(*area_ids))))


# How long a process trusts the coverage it read (CoverageSnapshot).
COVERAGE_FRESH = timedelta(seconds=5)


class CoverageSnapshot:
    """The areas enabled aggregators cover, as this process last read them.

    The household form's summary says when nobody serves the chosen area, and it may be
    shown after nearly any answer, so the coverage would be read on nearly every step of
    every registration: one statement in seven of the whole inbound path. Coverage
    changes only by the operator's hand (`gotong aggregator ...`, in another process), so
    a process reads it again at most every `fresh_for`. Only the advisory note uses it:
    where a request is routed, and what the household is told after sending, are read
    from the database at that moment.
    """

    def __init__(self, fresh_for: timedelta = COVERAGE_FRESH,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fresh_for = fresh_for.total_seconds()
        self._clock = clock
        self._areas: frozenset[int] | None = None
        self._read_at = 0.0

    async def covered(self, session: AsyncSession) -> frozenset[int]:
        """The ids of the areas (kelurahan, kecamatan or kota) an enabled aggregator
        covers."""
        now = self._clock()
        if self._areas is None or now - self._read_at >= self._fresh_for:
            covered = await covered_areas(session)
            self._areas = frozenset(area for areas in covered.values() for area in areas)
            self._read_at = now
        return self._areas


async def route_newly_covered(session: AsyncSession, before: Collection[int],
                              aggregator: Aggregator, now: datetime) -> int:
    """Tell the households whose request was uncovered `before` a change of the
    aggregator's coverage and is covered now, and the staff now covering them; the number
    of such requests."""
    still = {row.id for row in await uncovered_requests(session)}
    routed = [request_id for request_id in before if request_id not in still]
    if not routed:
        return 0
    requests = (await session.scalars(
        select(HelpRequest).where(HelpRequest.id.in_(routed)).order_by(HelpRequest.id))).all()
    for request in requests:
        await announce(session, Event.REQUEST_COVERED,
                       Subject(request=request, params={"aggregator": aggregator.name}), now)
    return len(requests)
