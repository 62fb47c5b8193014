"""An aggregator's requests, pledges or deliveries as CSV, for reports (`gotong export`,
the dashboard's CSV files).

Only what an operator may report on leaves the database: areas, sizes, categories,
quantities, statuses, codes and times. A household's or donor's name, phone, NIK (not
even its hash or last digits), street, RT/RW and pickup address never do.

Rows are streamed from the database in batches and written as they come, so an export
of any size takes little memory.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import BindParameter, Executable, bindparam, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gotong.models.aggregator import Aggregator, get_aggregator
from gotong.models.area import AreaDirectory
from gotong.models.delivery import Delivery, DeliverySource
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge

KINDS = ("requests", "pledges", "deliveries")
FORMATS = ("csv",)
# Rows fetched from the database at a time.
BATCH = 500

REQUEST_COLUMNS = ("reference", "status", "kelurahan", "kecamatan", "kota", "household_size",
                   "vulnerabilities", "needs", "created_at", "updated_at")
PLEDGE_COLUMNS = ("code", "status", "organisation", "category", "quantity",
                  "received_quantity", "allocated_quantity", "delivered_quantity",
                  "target_area", "handover", "created_at", "updated_at")
DELIVERY_COLUMNS = ("id", "request_reference", "kelurahan", "category", "quantity", "status",
                    "override_reason", "pledges", "created_at", "updated_at")

# A spreadsheet runs a cell starting with one of these as a formula; tab and carriage
# return are included because some spreadsheets skip them before looking.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cells = Sequence[object]
# A result row of any columns, read by name.
AnyRow = Row[*tuple[Any, ...]]


def neutralise(text: str) -> str:
    """Text a spreadsheet shows as typed: staff type override reasons, and a reason like
    `=HYPERLINK(...)` must not become a live formula in whoever opens the report."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, list | tuple):
        return neutralise(";".join(str(v) for v in value))
    return neutralise(str(value))


async def export_csv(sessions: async_sessionmaker[AsyncSession], areas: AreaDirectory,
                     kind: str, aggregator_id: int, out: TextIO) -> int:
    """Write the aggregator's rows of this kind with a header; the number of rows.

    Raises UnknownAggregator before anything is written.
    """
    rows: Callable[[AsyncSession, AreaDirectory, Aggregator], AsyncIterator[Cells]]
    header, rows = {
        "requests": (REQUEST_COLUMNS, _request_rows),
        "pledges": (PLEDGE_COLUMNS, _pledge_rows),
        "deliveries": (DELIVERY_COLUMNS, _delivery_rows),
    }[kind]
    async with sessions() as session:
        aggregator = await get_aggregator(session, aggregator_id)
        writer = csv.writer(out)
        writer.writerow(header)
        count = 0
        async for cells in rows(session, areas, aggregator):
            writer.writerow([cell(value) for value in cells])
            count += 1
    return count


async def _stream(session: AsyncSession, query: Executable) -> AsyncIterator[AnyRow]:
    result = await session.stream(query.execution_options(yield_per=BATCH))
    try:
        async for row in result:
            yield row
    finally:
        await result.close()


async def _request_rows(session: AsyncSession, areas: AreaDirectory, aggregator: Aggregator
                        ) -> AsyncIterator[Cells]:
    villages = sorted(areas.villages_under(area.area_id for area in aggregator.areas))
    if not villages:
        return
    # Rendered into the statement rather than bound: an aggregator covering provinces has
    # tens of thousands of kelurahan, more parameters than the drivers accept.
    in_villages: BindParameter[list[int]] = bindparam("villages", villages, expanding=True,
                                                      literal_execute=True)
    query = (select(HelpRequest.reference, HelpRequest.status, HelpRequest.village_id,
                    HelpRequest.household_size, HelpRequest.vulnerabilities,
                    HelpRequest.needs, HelpRequest.created_at, HelpRequest.updated_at)
             .where(HelpRequest.village_id.in_(in_villages))
             .order_by(HelpRequest.id))
    async for row in _stream(session, query):
        place = areas.place(row.village_id)
        yield (row.reference, row.status,
               place.village if place else None, place.district if place else None,
               place.regency if place else None,
               row.household_size, row.vulnerabilities, row.needs,
               row.created_at, row.updated_at)


async def _pledge_rows(session: AsyncSession, areas: AreaDirectory, aggregator: Aggregator
                       ) -> AsyncIterator[Cells]:
    query = (select(Pledge.code, Pledge.status, Pledge.organisation, Pledge.category,
                    Pledge.quantity, Pledge.received_quantity, Pledge.allocated_quantity,
                    Pledge.delivered_quantity, Pledge.target_area_id, Pledge.handover,
                    Pledge.created_at, Pledge.updated_at)
             .where(Pledge.aggregator_id == aggregator.id)
             .order_by(Pledge.id))
    async for row in _stream(session, query):
        target = areas.get(row.target_area_id) if row.target_area_id is not None else None
        yield (row.code, row.status, row.organisation, row.category, row.quantity,
               row.received_quantity, row.allocated_quantity, row.delivered_quantity,
               target.name if target else None, row.handover, row.created_at,
               row.updated_at)


async def _delivery_rows(session: AsyncSession, areas: AreaDirectory, aggregator: Aggregator
                         ) -> AsyncIterator[Cells]:
    # One row per (delivery, pledge it drew on), in delivery order: the pledges of a
    # delivery are consecutive, so only one delivery is held at a time.
    query = (select(Delivery.id, HelpRequest.reference, HelpRequest.village_id,
                    Delivery.category, Delivery.quantity, Delivery.status,
                    Delivery.override_reason, Delivery.created_at, Delivery.updated_at,
                    Pledge.code.label("pledge_code"),
                    DeliverySource.quantity.label("pledge_quantity"))
             .join(HelpRequest, HelpRequest.id == Delivery.request_id)
             .outerjoin(DeliverySource, DeliverySource.delivery_id == Delivery.id)
             .outerjoin(Pledge, Pledge.id == DeliverySource.pledge_id)
             .where(Delivery.aggregator_id == aggregator.id)
             .order_by(Delivery.id, DeliverySource.id))
    current: AnyRow | None = None
    sources: list[str] = []
    async for row in _stream(session, query):
        if current is not None and row.id != current.id:
            yield _delivery_cells(areas, current, sources)
            sources = []
        current = row
        if row.pledge_code is not None:
            sources.append(f"{row.pledge_code}:{row.pledge_quantity}")
    if current is not None:
        yield _delivery_cells(areas, current, sources)


def _delivery_cells(areas: AreaDirectory, row: AnyRow, sources: list[str]) -> Cells:
    place = areas.place(row.village_id)
    return (row.id, row.reference, place.village if place else None, row.category,
            row.quantity, row.status, row.override_reason, sources, row.created_at,
            row.updated_at)
