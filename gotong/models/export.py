"""An aggregator's requests, pledges or deliveries as CSV, for reports (`gotong export`,
the dashboard's CSV files).

Only what an operator may report on leaves the database: areas, sizes, categories,
quantities, statuses, codes and times. A household's or donor's name, phone, NIK (not
even its hash or last digits), street, RT/RW and pickup address never do.

Rows are read from the database in batches, in index order, and written as they come,
so an export of any size takes little memory and its first bytes come at once.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Text,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

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

# A row's cells, each as `cell` writes it (or a number).
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
    count = 0
    async with contextlib.aclosing(_csv_batches(sessions, areas, kind, aggregator_id)) \
            as batches:
        async for text, rows in batches:
            out.write(text)
            count += rows
    return count


async def export_chunks(sessions: async_sessionmaker[AsyncSession], areas: AreaDirectory,
                        kind: str, aggregator_id: int) -> AsyncGenerator[str]:
    """The same CSV as export_csv, in pieces as they are read: the header first, at
    once, then a piece per batch of rows (the dashboard sends each as it comes).

    Raises UnknownAggregator before the first piece.
    """
    async with contextlib.aclosing(_csv_batches(sessions, areas, kind, aggregator_id)) \
            as batches:
        async for text, _ in batches:
            yield text


async def _csv_batches(sessions: async_sessionmaker[AsyncSession], areas: AreaDirectory,
                       kind: str, aggregator_id: int) -> AsyncGenerator[tuple[str, int]]:
    """The header, then each batch of rows as CSV text, with how many rows it holds."""
    batches: Callable[[async_sessionmaker[AsyncSession], AreaDirectory, Aggregator],
                      AsyncIterator[list[Cells]]]
    header, batches = {
        "requests": (REQUEST_COLUMNS, _request_batches),
        "pledges": (PLEDGE_COLUMNS, _pledge_batches),
        "deliveries": (DELIVERY_COLUMNS, _delivery_batches),
    }[kind]
    async with sessions() as session:
        aggregator = await get_aggregator(session, aggregator_id)
    yield _csv([header]), 0
    async for rows in batches(sessions, areas, aggregator):
        yield _csv(rows), len(rows)


def _csv(rows: Sequence[Sequence[object]]) -> str:
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue()


# Every kind is read in batches of BATCH rows by id, each batch in a transaction of its
# own and found by its key (`id > last ORDER BY id LIMIT BATCH`) on an index that gives
# the rows in that order: no query sorts the aggregator's rows, the first rows come at
# once whatever the size, and no connection is held while a slow client reads (callers
# pass the read sessions, Services.reads: on SQLite, connections beside the chat's
# writer).


async def _keyset_batches(sessions: async_sessionmaker[AsyncSession],
                          query: Select[*tuple[Any, ...]], key: InstrumentedAttribute[int]
                          ) -> AsyncIterator[list[AnyRow]]:
    """The rows of `query` (which selects `key` as `id`) in batches, in `key` order."""
    last: int | None = None
    while True:
        batch_query = query if last is None else query.where(key > last)
        async with sessions() as session:
            # Plain rows (Core), not through the ORM's loading.
            connection = await session.connection()
            rows = list((await connection.execute(batch_query.order_by(key).limit(BATCH)))
                        .all())
        if rows:
            yield rows
        if len(rows) < BATCH:
            return
        last = rows[-1].id


async def _request_batches(sessions: async_sessionmaker[AsyncSession], areas: AreaDirectory,
                           aggregator: Aggregator) -> AsyncIterator[list[Cells]]:
    villages = sorted(areas.villages_under(area.area_id for area in aggregator.areas))
    if not villages:
        return
    # Rendered into the statement rather than bound: an aggregator covering provinces has
    # tens of thousands of kelurahan, more parameters than the drivers accept.
    in_villages: BindParameter[list[int]] = bindparam("villages", villages, expanding=True,
                                                      literal_execute=True)
    async with sessions() as session:
        dialect = session.get_bind().dialect.name
    # On SQLite the rows are walked by id (the table's key) and filtered by kelurahan: an
    # expression of the kelurahan, which no index holds, keeps SQLite from gathering every
    # row of the kelurahan by their index and sorting them, again for each batch.
    # PostgreSQL weighs both ways by its statistics and walks the key when it pays.
    village = HelpRequest.village_id + 0 if dialect == "sqlite" else HelpRequest.village_id
    # Hundreds of thousands of rows: each cell is read as the text it is written as, the
    # times formatted by the database and the lists as their JSON text (a few distinct
    # ones, each formatted once), not made into Python objects to be formatted again.
    query = (select(HelpRequest.id, HelpRequest.reference, HelpRequest.status,
                    HelpRequest.village_id, HelpRequest.household_size,
                    cast(HelpRequest.vulnerabilities, Text).label("vulnerabilities"),
                    cast(HelpRequest.needs, Text).label("needs"),
                    _utc_text(HelpRequest.created_at, dialect).label("created_at"),
                    _utc_text(HelpRequest.updated_at, dialect).label("updated_at"))
             .where(village.in_(in_villages)))
    places: dict[int, tuple[str, str, str]] = {}
    async for rows in _keyset_batches(sessions, query, HelpRequest.id):
        yield [_request_cells(areas, places, row) for row in rows]


def _request_cells(areas: AreaDirectory, places: dict[int, tuple[str, str, str]],
                   row: AnyRow) -> Cells:
    # Unpacked by position: a row's attribute by name costs more than the rest together.
    _, reference, status, village_id, size, vulnerabilities, needs, created, updated = row
    place = places.get(village_id)
    if place is None:
        place = places[village_id] = _place_cells(areas, village_id)
    return (neutralise(reference), neutralise(status), *place, size,
            _list_cell(vulnerabilities), _list_cell(needs), created, updated)


def _place_cells(areas: AreaDirectory, village_id: int) -> tuple[str, str, str]:
    place = areas.place(village_id)
    if place is None:
        return "", "", ""
    return (cell(place.village), cell(place.district), cell(place.regency))


@functools.lru_cache(maxsize=1024)
def _list_cell(stored: str | None) -> str:
    """A list column (JSON text as stored) as its cell."""
    return "" if stored is None else cell(json.loads(stored))


def _utc_text(column: InstrumentedAttribute[datetime], dialect: str) -> ColumnElement[str]:
    """A timestamp as `cell` writes it (2025-03-01T11:00:00Z), made by the database."""
    if dialect == "sqlite":
        # Stored as naive UTC (models/base.UTCDateTime).
        return func.strftime("%Y-%m-%dT%H:%M:%SZ", column)
    return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS"Z"')


async def _pledge_batches(sessions: async_sessionmaker[AsyncSession], areas: AreaDirectory,
                          aggregator: Aggregator) -> AsyncIterator[list[Cells]]:
    query = (select(Pledge.id, Pledge.code, Pledge.status, Pledge.organisation,
                    Pledge.category, Pledge.quantity, Pledge.received_quantity,
                    Pledge.allocated_quantity, Pledge.delivered_quantity,
                    Pledge.target_area_id, Pledge.handover, Pledge.created_at,
                    Pledge.updated_at)
             .where(Pledge.aggregator_id == aggregator.id))
    async for rows in _keyset_batches(sessions, query, Pledge.id):
        yield [[cell(value) for value in _pledge_cells(areas, row)] for row in rows]


def _pledge_cells(areas: AreaDirectory, row: AnyRow) -> Cells:
    target = areas.get(row.target_area_id) if row.target_area_id is not None else None
    return (row.code, row.status, row.organisation, row.category, row.quantity,
            row.received_quantity, row.allocated_quantity, row.delivered_quantity,
            target.name if target else None, row.handover, row.created_at, row.updated_at)


async def _delivery_batches(sessions: async_sessionmaker[AsyncSession], areas: AreaDirectory,
                            aggregator: Aggregator) -> AsyncIterator[list[Cells]]:
    query = (select(Delivery.id, HelpRequest.reference, HelpRequest.village_id,
                    Delivery.category, Delivery.quantity, Delivery.status,
                    Delivery.override_reason, Delivery.created_at, Delivery.updated_at)
             .join(HelpRequest, HelpRequest.id == Delivery.request_id)
             .where(Delivery.aggregator_id == aggregator.id))
    async for rows in _keyset_batches(sessions, query, Delivery.id):
        # The pledges each delivery of the batch drew on, in the order they were drawn.
        sources: dict[int, list[str]] = {row.id: [] for row in rows}
        async with sessions() as session:
            drawn = await session.execute(
                select(DeliverySource.delivery_id, Pledge.code, DeliverySource.quantity)
                .join(Pledge, Pledge.id == DeliverySource.pledge_id)
                .where(DeliverySource.delivery_id.in_(list(sources)))
                .order_by(DeliverySource.delivery_id, DeliverySource.id))
            for delivery_id, code, quantity in drawn.all():
                sources[delivery_id].append(f"{code}:{quantity}")
        yield [[cell(value) for value in _delivery_cells(areas, row, sources[row.id])]
               for row in rows]


def _delivery_cells(areas: AreaDirectory, row: AnyRow, sources: list[str]) -> Cells:
    place = areas.place(row.village_id)
    return (row.id, row.reference, place.village if place else None, row.category,
            row.quantity, row.status, row.override_reason, sources, row.created_at,
            row.updated_at)
