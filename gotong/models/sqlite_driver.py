"""SQLite through aiosqlite: one trip to the database thread per statement, and none at all
on the writer's connection.

SQLAlchemy's aiosqlite adapter makes four trips to aiosqlite's thread for every SELECT
(open a cursor, execute, fetch the rows, close the cursor) and three for every other
statement, each a queue put, a thread wake-up and a callback on the event loop. On the
hot path of the inbound queue that was about twenty trips per update, and SQLite's one
connection is held for all of them. Here a statement runs whole in the thread: a
cursor is opened, executed, read to the end and closed in one call, and the adapter
hands SQLAlchemy the rows. The BEGIN of a transaction (IMMEDIATE on the writer, plain on
the read-only connections) goes with its first statement, and a transaction that ran none
commits without a trip.

Server-side cursors (streamed exports) keep SQLAlchemy's own adapter: they read in
batches and need their cursor to stay open.

On the writer's connection (`inline=True` among its connect arguments) a trip is not even
a trip: the statement runs on the event loop's own thread, as the thread would run it. A
statement of the chat's hot path takes tens of microseconds in SQLite, less than handing
it to the thread and waking the loop again, which with the thread busy also fights it for
the GIL; and the writer's statements are all short (what reads for long, pages and
exports, has connections of its own, models/db.py). The one wait a statement can meet is
the write lock another process holds: the BEGIN IMMEDIATE that asks for it is first tried
without waiting, and only when the lock is taken does it wait, in the thread, for as long
as the busy timeout allows, while the loop goes on. Nor does the writer copy the WAL back
into the database file (a checkpoint, with an fsync: milliseconds): every
CHECKPOINT_EVERY commits a connection of its own does, in a worker thread, and then
starts the WAL afresh (RESTART): meanwhile the writer's next BEGIN finds the lock taken and
waits for it in the thread. (A PASSIVE checkpoint beside a busy writer never ends with
the WAL wholly copied back, so the WAL would never start afresh, and grow.) It waits for
the writer's transaction at hand, or for a reader of an older snapshot (an export), only
a few milliseconds, then copies back what it can without them: the chat must not wait
behind an export.

A few statements that end every step (models/step_end.py) go further: compiled once
(`Prepared`), their parameters processed by SQLAlchemy's own types, and run together in
one trip (`run_together`), without SQLAlchemy's execution machinery around each.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import await_only, greenlet_spawn

# The name engines are created with: `sqlite+gotong:///path`.
DRIVER = "gotong"

# Commits of the writer between two checkpoints beside it.
CHECKPOINT_EVERY = 100
# How long a checkpoint waits for the writer's transaction at hand, and then for the
# readers of older snapshots, before it copies back what it can without them (to start
# the WAL afresh CHECKPOINT_EVERY commits later). The writer waits for it meanwhile
# (off the loop): a reader's long export must not hold the chat up.
CHECKPOINT_WAIT_SECONDS = 0.005
# Pages of WAL past which the writer checkpoints itself after all: only if the ones beside
# it fall behind.
WRITER_AUTOCHECKPOINT = 10_000

log = logging.getLogger(__name__)

_Description = tuple[tuple[Any, ...], ...] | None
_Outcome = tuple[_Description, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, begin: str | None, operation: str,
         parameters: Sequence[Any] | dict[str, Any] | None, many: bool) -> _Outcome:
    """One statement, whole, in the database thread (after the transaction's BEGIN)."""
    if begin is not None:
        connection.execute(begin)
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters or ())
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_together(connection: sqlite3.Connection, begin: str | None,
                  statements: Sequence[tuple[str, tuple[Any, ...]]]) -> list[_Outcome]:
    """Several statements, one after another, in the database thread (the first after
    the transaction's BEGIN)."""
    return [_run(connection, begin if number == 0 else None, operation, parameters, False)
            for number, (operation, parameters) in enumerate(statements)]


async def _now(value: Any) -> Any:
    """An awaitable of a value already there: SQLAlchemy's async engine requires each
    execution to await something, and an inline one has nothing to wait for."""
    return value


def _is_busy(error: Exception) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                         sqlite3.SQLITE_LOCKED)


class Prepared:
    """A statement compiled once for SQLite, with its parameters' processing: what
    SQLAlchemy does on every execution, done once, but for the values themselves."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())
        self._processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self._names)

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        """The statement's positional parameters for these named values (the statement's
        own constants included), as SQLAlchemy's types store them."""
        params = self._compiled.construct_params(values)
        assert params is not None
        return tuple(params[name] if process is None else process(params[name])
                     for name, process in zip(self._names, self._processors, strict=True))


class Checkpointer:
    """Checkpoints of the writer's database, run in a worker thread on a connection of
    their own, one at a time, every CHECKPOINT_EVERY commits."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._running: asyncio.Future[None] | None = None
        self._commits = 0

    def committed(self) -> None:
        self._commits += 1
        if self._commits < CHECKPOINT_EVERY or self._running is not None:
            return
        self._commits = 0
        self._running = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
        self._running.add_done_callback(self._finished)

    def _checkpoint(self) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(self._path, timeout=CHECKPOINT_WAIT_SECONDS,
                                               isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    def _finished(self, done: asyncio.Future[None]) -> None:
        self._running = None
        error = None if done.cancelled() else done.exception()
        if error is not None:
            # The next one may do better; the writer's own is the last resort.
            log.warning("WAL checkpoint failed: %s", type(error).__name__)

    def close(self) -> None:
        if self._running is not None:
            # Its connection is closed once it is done.
            with contextlib.suppress(Exception):
                await_only(self._running)
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class OneTripCursor:
    """A DBAPI cursor whose statements each take one trip to aiosqlite's thread."""

    server_side = False

    def __init__(self, adapt_connection: OneTripConnection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self.description: _Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: collections.deque[Any] = collections.deque()

    def _trip(self, operation: str, parameters: Any, many: bool) -> None:
        adapt = self._adapt_connection
        begin = adapt.begin_pending
        # Cleared first: a BEGIN that failed is not tried again with the next statement
        # (the caller rolls back).
        adapt.begin_pending = None
        try:
            outcome: _Outcome
            if adapt.inline:
                adapt.begin_inline(begin)
                outcome = await_only(_now(_run(self._connection._conn, None, operation,
                                               parameters, many)))
            else:
                outcome = await_only(self._connection._execute(
                    _run, self._connection._conn, begin, operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self.description, rows, self.rowcount, self.lastrowid = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: str, parameters: Any = None) -> None:
        self._trip(operation, parameters, False)

    def executemany(self, operation: str, seq_of_parameters: Any) -> None:
        self._trip(operation, seq_of_parameters, True)

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        # Nothing is open in the thread: the statement's cursor closed with it.
        return None

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def nextset(self) -> None:
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("begin_pending", "checkpointer", "inline")

    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any, inline: bool = False) -> None:
        super().__init__(dbapi, connection)
        # The BEGIN of a transaction begun whose first statement is still to be sent.
        self.begin_pending: str | None = None
        # Statements run on the calling thread (the writer's connection).
        self.inline = inline
        self.checkpointer: Checkpointer | None = None
        if inline:
            _, _, path = connection._conn.execute("PRAGMA database_list").fetchone()
            if path:  # a file, not a database in memory
                connection._conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_AUTOCHECKPOINT}")
                self.checkpointer = Checkpointer(path)

    def begin_inline(self, begin: str | None) -> None:
        """Send the transaction's BEGIN from the calling thread if the write lock is free
        now; else wait for it in the thread, up to the busy timeout."""
        if begin is None:
            return
        connection = self._connection._conn
        # Never wait on the loop's thread: a lock that is taken is waited for in the
        # thread, for as long as the connection's busy timeout says.
        waits = connection.execute("PRAGMA busy_timeout").fetchone()[0]
        connection.execute("PRAGMA busy_timeout=0")
        try:
            connection.execute(begin)
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        finally:
            connection.execute(f"PRAGMA busy_timeout={int(waits)}")
        await_only(self._connection._execute(connection.execute, begin))

    def begin_immediate(self) -> None:
        """Begin a transaction that takes the write lock: with its first statement."""
        self.begin_pending = "BEGIN IMMEDIATE"

    def begin_deferred(self) -> None:
        """Begin a read transaction: its snapshot is taken by its first statement, and it
        takes no lock a writer waits for (WAL)."""
        self.begin_pending = "BEGIN"

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and self.begin_pending is not None:
            # A streamed read keeps its own cursor: the BEGIN goes first, on its own.
            begin, self.begin_pending = self.begin_pending, None
            await_only(self._connection.execute(begin))
        return super().cursor(server_side)

    async def run_together(self, statements: Sequence[tuple[Prepared, dict[str, Any]]]
                           ) -> list[tuple[list[Any], int, int | None]]:
        """Run prepared statements in the current transaction, in one trip to the
        database thread; each one's rows, row count and last row id. A failure is raised
        as SQLAlchemy raises it (the caller rolls back)."""
        begin, self.begin_pending = self.begin_pending, None
        batch = [(prepared.sql, prepared.parameters(values)) for prepared, values in statements]
        try:
            if self.inline:
                if begin is not None:
                    # As a cursor's trip does: may wait in the thread for the write lock.
                    await greenlet_spawn(self.begin_inline, begin)
                outcomes = _run_together(self._connection._conn, None, batch)
            else:
                outcomes = await self._connection._execute(
                    _run_together, self._connection._conn, begin, batch)
        except sqlite3.Error as error:
            operation, parameters = batch[0]
            raise DBAPIError.instance(operation, parameters, error, sqlite3.Error) from error
        return [(rows, rowcount, lastrowid) for _, rows, rowcount, lastrowid in outcomes]

    def commit(self) -> None:
        if self.begin_pending is not None:
            self.begin_pending = None  # nothing ran: nothing to commit
            return
        if self.inline:
            # A commit in WAL mode waits for no lock.
            self._end_inline(self._connection._conn.commit)
            if self.checkpointer is not None:
                self.checkpointer.committed()
            return
        super().commit()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        super().close()

    def rollback(self) -> None:
        if self.begin_pending is not None:
            self.begin_pending = None
            return
        if self.inline:
            self._end_inline(self._connection._conn.rollback)
            return
        super().rollback()

    def _end_inline(self, end: Callable[[], None]) -> None:
        """COMMIT or ROLLBACK on the calling thread, failing as the thread's would."""
        try:
            end()
            await_only(_now(None))
        except Exception as error:
            self._handle_exception(error)


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, inline: bool = False, **kw: Any) -> OneTripConnection:
        if inline:
            # Used from the loop's thread as well as aiosqlite's, never both at once.
            kw["check_same_thread"] = False
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection, inline)


class OneTripDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneTripDBAPI:
        return OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneTripDialect")
