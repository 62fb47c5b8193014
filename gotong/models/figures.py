"""The public and dashboard figures, kept up to date as events happen: a roll-up of
counters per kelurahan, and per kelurahan and local day.

Counting a city's requests and deliveries on each view costs the size of the city (a
million households: half a second to seconds a view). So every change of a request or a
delivery adds to (or takes from) these counters in the transaction that makes it, and the
pages read a few hundred rows whatever the size:

    village_figures      per kelurahan: requests waiting (submitted, verified) and in
                         delivery (allocated, out for delivery, failed), households helped
                         (requests with a delivered delivery), packages and rupiah delivered
    village_day_figures  per kelurahan, local day and aggregator: requests created
                         (aggregator 0: a request belongs to none) and deliveries delivered

Database triggers keep them (migration 0026), not the Python code that changes a status:
requests and deliveries change in a dozen places, by the ORM and by guarded UPDATEs,
and in bulk by generators and imports; a trigger sees every one of them, in the same
transaction, on both databases, and a change rolled back takes its counts with it.

A local day is the day in `i18n.timezone`. SQLite knows no time zones, so the zone's UTC
offsets are kept in `figure_clock` (one row per change of offset, from Python's zoneinfo)
and the triggers look up the offset in force at each event's instant. When the configured
zone is not the clock's, the clock is rewritten and the counters counted afresh
(`use_timezone`, at start-up), as the migration counts them the first time (`refill`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Connection, Date, Index, String, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base

# A request counted per day belongs to no aggregator.
NO_AGGREGATOR = 0
# Requests counted (by request id) in one statement of a refill: a few seconds each on a
# city's database, so that a refill's statements never hold the writer for long and
# its progress can be followed.
REFILL_BATCH = 100_000
# The clock's offsets are looked for from here to there (a day apart, then to the minute).
CLOCK_FROM, CLOCK_UNTIL = 1970, 2100
# Before the first change of offset found: far enough back for any timestamp stored.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)

WAITING = ("submitted", "verified")
IN_DELIVERY = ("allocated", "out_for_delivery", "failed")
DELIVERED = "delivered"
MONEY = "money"


class FigureClock(Base):
    """From `starts_at` (UTC) on, local time is UTC + `offset_minutes` in `zone`."""

    __tablename__ = "figure_clock"

    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    offset_minutes: Mapped[int]
    zone: Mapped[str] = mapped_column(String(64))


class VillageFigures(Base):
    """What is so now in one kelurahan."""

    __tablename__ = "village_figures"

    # No foreign key: the counters are written on every change of a request, and the
    # request's own key already holds the kelurahan to the area table.
    village_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    waiting: Mapped[int] = mapped_column(BigInteger, default=0)
    in_delivery: Mapped[int] = mapped_column(BigInteger, default=0)
    helped: Mapped[int] = mapped_column(BigInteger, default=0)
    packages: Mapped[int] = mapped_column(BigInteger, default=0)
    money: Mapped[int] = mapped_column(BigInteger, default=0)


class VillageDayFigures(Base):
    """What happened in one kelurahan on one local day, for one aggregator (deliveries) or
    none (requests)."""

    __tablename__ = "village_day_figures"
    # The whole city's days (the public page) are read by day; an area's by kelurahan.
    __table_args__ = (Index("ix_village_day_figures_day", "day"),)

    village_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    aggregator_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    requested: Mapped[int] = mapped_column(BigInteger, default=0)
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)


@dataclass(frozen=True)
class Offset:
    starts_at: datetime
    minutes: int


def offsets(timezone: str) -> list[Offset]:
    """The zone's UTC offsets and where each starts, from zoneinfo: one a day at first,
    then the instant of each change, to the minute."""
    zone = ZoneInfo(timezone)

    def minutes(instant: datetime) -> int:
        offset = instant.astimezone(zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds() // 60)

    start = datetime(CLOCK_FROM, 1, 1, tzinfo=UTC)
    found = [Offset(EARLIEST, minutes(start))]
    day = start
    end = datetime(CLOCK_UNTIL, 1, 1, tzinfo=UTC)
    while day < end:
        following = day + timedelta(days=1)
        if minutes(following) != found[-1].minutes:
            # The change lies within this day: the first minute with the new offset.
            low, high = day, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle <= low:
                    middle = low + timedelta(minutes=1)
                if minutes(middle) == found[-1].minutes:
                    low = middle
                else:
                    high = middle
            found.append(Offset(high, minutes(high)))
        day = following
    return found


def local_day_sql(dialect: str, column: str) -> str:
    """SQL for the local day of a UTC timestamp, with the clock's offset at that instant
    (the triggers and the refill use it alike)."""
    offset = (f"(SELECT offset_minutes FROM figure_clock WHERE starts_at <= {column} "
              f"ORDER BY starts_at DESC LIMIT 1)")
    if dialect == "postgresql":
        return (f"CAST(({column} AT TIME ZONE 'UTC') + make_interval(mins => {offset}) "
                f"AS DATE)")
    return f"date({column}, printf('%+d minutes', {offset}))"


async def clock_zone(session: AsyncSession | AsyncConnection) -> str | None:
    """The zone the counters' days are in (None before they were first counted)."""
    zone = await session.scalar(select(FigureClock.zone).limit(1))
    return str(zone) if zone is not None else None


def refill(connection: Connection, timezone: str, *,
           progress: Callable[[int, int], None] | None = None) -> None:
    """Set the clock to `timezone` and count every counter afresh from the requests and
    deliveries, in batches of requests (synchronous, for the migration; `refill_async`
    for the running program)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # Writes that would count meanwhile wait (their triggers add to the rows): counts
        # are neither lost nor counted twice.
        connection.exec_driver_sql(
            "LOCK TABLE figure_clock, village_figures, village_day_figures "
            "IN EXCLUSIVE MODE")
    connection.execute(text("DELETE FROM figure_clock"))
    connection.execute(insert(FigureClock), [
        {"starts_at": offset.starts_at, "offset_minutes": offset.minutes, "zone": timezone}
        for offset in offsets(timezone)])
    connection.execute(text("DELETE FROM village_figures"))
    connection.execute(text("DELETE FROM village_day_figures"))
    last = connection.scalar(text("SELECT max(id) FROM help_request")) or 0
    for low in range(0, int(last) + 1, REFILL_BATCH):
        for statement in refill_statements(dialect):
            connection.execute(text(statement), {"low": low, "high": low + REFILL_BATCH})
        if progress is not None:
            progress(min(low + REFILL_BATCH, int(last)), int(last))


async def refill_async(connection: AsyncConnection, timezone: str) -> None:
    await connection.run_sync(lambda sync: refill(sync, timezone))


async def use_timezone(connection: AsyncConnection, timezone: str) -> bool:
    """Count the days in `timezone` from now on: if the clock is in another zone, set it
    and count every counter afresh (True). In the caller's transaction."""
    if await clock_zone(connection) == timezone:
        return False
    await refill_async(connection, timezone)
    return True


def refill_statements(dialect: str) -> Sequence[str]:
    """Add to the counters what the requests with ids in [:low, :high) and their
    deliveries count for."""
    requested_day = local_day_sql(dialect, "r.created_at")
    delivered_day = local_day_sql(dialect, "d.delivered_at")
    waiting = ", ".join(f"'{status}'" for status in WAITING)
    in_delivery = ", ".join(f"'{status}'" for status in IN_DELIVERY)
    in_range = "r.id >= :low AND r.id < :high"
    return (
        f"INSERT INTO village_day_figures (village_id, day, aggregator_id, requested, "
        f"delivered) SELECT r.village_id, {requested_day}, {NO_AGGREGATOR}, count(*), 0 "
        f"FROM help_request r WHERE {in_range} AND r.created_at IS NOT NULL "
        f"GROUP BY 1, 2 ON CONFLICT (village_id, day, aggregator_id) DO UPDATE SET "
        f"requested = village_day_figures.requested + excluded.requested",
        f"INSERT INTO village_day_figures (village_id, day, aggregator_id, requested, "
        f"delivered) SELECT r.village_id, {delivered_day}, d.aggregator_id, 0, count(*) "
        f"FROM help_request r JOIN delivery d ON d.request_id = r.id "
        f"WHERE {in_range} AND d.status = '{DELIVERED}' AND d.delivered_at IS NOT NULL "
        f"GROUP BY 1, 2, 3 ON CONFLICT (village_id, day, aggregator_id) DO UPDATE SET "
        f"delivered = village_day_figures.delivered + excluded.delivered",
        f"INSERT INTO village_figures (village_id, waiting, in_delivery, helped, packages, "
        f"money) SELECT r.village_id, "
        f"sum(CASE WHEN r.status IN ({waiting}) THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN r.status IN ({in_delivery}) THEN 1 ELSE 0 END), 0, 0, 0 "
        f"FROM help_request r WHERE {in_range} AND r.status IN ({waiting}, {in_delivery}) "
        f"GROUP BY 1 ON CONFLICT (village_id) DO UPDATE SET "
        f"waiting = village_figures.waiting + excluded.waiting, "
        f"in_delivery = village_figures.in_delivery + excluded.in_delivery",
        f"INSERT INTO village_figures (village_id, waiting, in_delivery, helped, packages, "
        f"money) SELECT r.village_id, 0, 0, count(DISTINCT d.request_id), "
        f"sum(CASE WHEN d.category = '{MONEY}' THEN 0 ELSE d.quantity END), "
        f"sum(CASE WHEN d.category = '{MONEY}' THEN d.quantity ELSE 0 END) "
        f"FROM help_request r JOIN delivery d ON d.request_id = r.id "
        f"WHERE {in_range} AND d.status = '{DELIVERED}' GROUP BY 1 "
        f"ON CONFLICT (village_id) DO UPDATE SET "
        f"helped = village_figures.helped + excluded.helped, "
        f"packages = village_figures.packages + excluded.packages, "
        f"money = village_figures.money + excluded.money",
    )


# --- the triggers that keep the counters (created by migration 0026) -------------------

TRIGGER_NAMES = ("figures_request_insert", "figures_request_update",
                 "figures_request_delete", "figures_delivery_insert",
                 "figures_delivery_update", "figures_delivery_delete")
# A request's counters move when any of these change; a delivery's when these do (and it
# is, or was, delivered).
REQUEST_COLUMNS = ("status", "village_id", "created_at")
DELIVERY_COLUMNS = ("status", "delivered_at", "quantity", "category", "aggregator_id",
                    "request_id")


def _request_counts(dialect: str, row: str, sign: str) -> list[str]:
    """What a request row counts for, times `sign` (1 or -1)."""
    waiting = ", ".join(f"'{status}'" for status in WAITING)
    in_delivery = ", ".join(f"'{status}'" for status in IN_DELIVERY)
    return [
        f"INSERT INTO village_day_figures (village_id, day, aggregator_id, requested, "
        f"delivered) SELECT {row}.village_id, {local_day_sql(dialect, f'{row}.created_at')}, "
        f"{NO_AGGREGATOR}, {sign}, 0 WHERE {row}.created_at IS NOT NULL "
        f"ON CONFLICT (village_id, day, aggregator_id) DO UPDATE SET "
        f"requested = village_day_figures.requested + excluded.requested",
        f"INSERT INTO village_figures (village_id, waiting, in_delivery, helped, packages, "
        f"money) SELECT {row}.village_id, "
        f"CASE WHEN {row}.status IN ({waiting}) THEN {sign} ELSE 0 END, "
        f"CASE WHEN {row}.status IN ({in_delivery}) THEN {sign} ELSE 0 END, 0, 0, 0 "
        f"WHERE {row}.status IN ({waiting}, {in_delivery}) "
        f"ON CONFLICT (village_id) DO UPDATE SET "
        f"waiting = village_figures.waiting + excluded.waiting, "
        f"in_delivery = village_figures.in_delivery + excluded.in_delivery",
    ]


def _delivery_counts(dialect: str, row: str, sign: str) -> list[str]:
    """What a delivery row counts for, times `sign`, if it is delivered. Its household
    is helped once, whatever the number of its deliveries: the request counts when no
    other delivery of it is delivered (the triggers see the rows changed before this one
    by the same statement, so an UPDATE of several deliveries of one request counts it
    once)."""
    village = f"(SELECT village_id FROM help_request WHERE id = {row}.request_id)"
    alone = (f"NOT EXISTS (SELECT 1 FROM delivery other WHERE other.request_id = "
             f"{row}.request_id AND other.status = '{DELIVERED}' AND other.id <> {row}.id)")
    return [
        f"INSERT INTO village_day_figures (village_id, day, aggregator_id, requested, "
        f"delivered) SELECT {village}, {local_day_sql(dialect, f'{row}.delivered_at')}, "
        f"{row}.aggregator_id, 0, {sign} WHERE {row}.status = '{DELIVERED}' "
        f"AND {row}.delivered_at IS NOT NULL "
        f"ON CONFLICT (village_id, day, aggregator_id) DO UPDATE SET "
        f"delivered = village_day_figures.delivered + excluded.delivered",
        f"INSERT INTO village_figures (village_id, waiting, in_delivery, helped, packages, "
        f"money) SELECT {village}, 0, 0, CASE WHEN {alone} THEN {sign} ELSE 0 END, "
        f"CASE WHEN {row}.category = '{MONEY}' THEN 0 ELSE {sign} * {row}.quantity END, "
        f"CASE WHEN {row}.category = '{MONEY}' THEN {sign} * {row}.quantity ELSE 0 END "
        f"WHERE {row}.status = '{DELIVERED}' "
        f"ON CONFLICT (village_id) DO UPDATE SET "
        f"helped = village_figures.helped + excluded.helped, "
        f"packages = village_figures.packages + excluded.packages, "
        f"money = village_figures.money + excluded.money",
    ]


def _changed(columns: Sequence[str], dialect: str) -> str:
    differs = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{column} {differs} NEW.{column}" for column in columns)


def create_trigger_statements(dialect: str) -> list[str]:
    """The DDL of the triggers that keep the counters."""
    request_changed = _changed(REQUEST_COLUMNS, dialect)
    delivery_changed = (f"({_changed(DELIVERY_COLUMNS, dialect)}) AND "
                        f"(OLD.status = '{DELIVERED}' OR NEW.status = '{DELIVERED}')")
    if dialect == "postgresql":
        return _postgresql_triggers(request_changed, delivery_changed)
    def trigger(name: str, event: str, table: str, condition: str,
                statements: list[str]) -> str:
        body = "".join(f"{statement}; " for statement in statements)
        return (f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW "
                f"{f'WHEN {condition} ' if condition else ''}BEGIN {body}END")

    columns = ", ".join(REQUEST_COLUMNS)
    delivery_columns = ", ".join(DELIVERY_COLUMNS)
    return [
        trigger("figures_request_insert", "INSERT", "help_request", "",
                _request_counts(dialect, "NEW", "1")),
        trigger("figures_request_update", f"UPDATE OF {columns}", "help_request",
                request_changed, [*_request_counts(dialect, "OLD", "-1"),
                                  *_request_counts(dialect, "NEW", "1")]),
        trigger("figures_request_delete", "DELETE", "help_request", "",
                _request_counts(dialect, "OLD", "-1")),
        trigger("figures_delivery_insert", "INSERT", "delivery",
                f"NEW.status = '{DELIVERED}'", _delivery_counts(dialect, "NEW", "1")),
        trigger("figures_delivery_update", f"UPDATE OF {delivery_columns}", "delivery",
                delivery_changed, [*_delivery_counts(dialect, "OLD", "-1"),
                                   *_delivery_counts(dialect, "NEW", "1")]),
        trigger("figures_delivery_delete", "DELETE", "delivery",
                f"OLD.status = '{DELIVERED}'", _delivery_counts(dialect, "OLD", "-1")),
    ]


def _postgresql_triggers(request_changed: str, delivery_changed: str) -> list[str]:
    """PostgreSQL runs a function per trigger. The delivery's run BEFORE the row changes:
    a BEFORE trigger sees the rows its statement changed before this one, an AFTER
    trigger (run at the statement's end) all of them, which would count a household
    helped by two deliveries changed together twice."""
    dialect = "postgresql"

    def body(statements: list[str]) -> str:
        return "".join(f"{statement}; " for statement in statements)

    columns = ", ".join(REQUEST_COLUMNS)
    delivery_columns = ", ".join(DELIVERY_COLUMNS)
    return [
        "CREATE FUNCTION figures_request() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {body(_request_counts(dialect, 'OLD', '-1'))}END IF; "
        f"IF TG_OP <> 'DELETE' THEN {body(_request_counts(dialect, 'NEW', '1'))}END IF; "
        "RETURN NULL; END $$",
        "CREATE FUNCTION figures_delivery() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {body(_delivery_counts(dialect, 'OLD', '-1'))}END IF; "
        f"IF TG_OP <> 'DELETE' THEN {body(_delivery_counts(dialect, 'NEW', '1'))}END IF; "
        "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER figures_request_insert AFTER INSERT ON help_request "
        "FOR EACH ROW EXECUTE FUNCTION figures_request()",
        f"CREATE TRIGGER figures_request_update AFTER UPDATE OF {columns} ON help_request "
        f"FOR EACH ROW WHEN ({request_changed}) EXECUTE FUNCTION figures_request()",
        "CREATE TRIGGER figures_request_delete AFTER DELETE ON help_request "
        "FOR EACH ROW EXECUTE FUNCTION figures_request()",
        "CREATE TRIGGER figures_delivery_insert BEFORE INSERT ON delivery "
        f"FOR EACH ROW WHEN (NEW.status = '{DELIVERED}') EXECUTE FUNCTION figures_delivery()",
        f"CREATE TRIGGER figures_delivery_update BEFORE UPDATE OF {delivery_columns} "
        f"ON delivery FOR EACH ROW WHEN ({delivery_changed}) "
        "EXECUTE FUNCTION figures_delivery()",
        "CREATE TRIGGER figures_delivery_delete BEFORE DELETE ON delivery "
        f"FOR EACH ROW WHEN (OLD.status = '{DELIVERED}') EXECUTE FUNCTION figures_delivery()",
    ]


def drop_trigger_statements(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [*(f"DROP TRIGGER IF EXISTS {name} ON "
                  f"{'help_request' if 'request' in name else 'delivery'}"
                  for name in TRIGGER_NAMES),
                "DROP FUNCTION IF EXISTS figures_request()",
                "DROP FUNCTION IF EXISTS figures_delivery()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGER_NAMES]


@contextlib.asynccontextmanager
async def counted_after_load(connection: AsyncConnection, timezone: str
                             ) -> AsyncIterator[None]:
    """For a bulk load in the caller's transaction (benchmark data, an import): the
    triggers are off while its rows are written, and the counters are counted afresh
    after. A trigger per row would update each counter row once per row loaded, and on
    PostgreSQL one transaction's versions of a row pile up, each update walking them:
    a million requests took many minutes."""
    dialect = connection.dialect.name
    for statement in drop_trigger_statements(dialect):
        await connection.exec_driver_sql(statement)
    yield
    for statement in create_trigger_statements(dialect):
        await connection.exec_driver_sql(statement)
    await refill_async(connection, timezone)
