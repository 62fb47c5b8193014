"""SQLite through aiosqlite, with one trip to the database thread per statement.

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

A few statements that end every step (models/step_end.py) go further: compiled once
(`Prepared`), their parameters processed by SQLAlchemy's own types, and run together in
one trip (`run_together`), without SQLAlchemy's execution machinery around each.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterator, Sequence
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
from sqlalchemy.util import await_only

# The name engines are created with: `sqlite+gotong:///path`.
DRIVER = "gotong"

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
        begin = self._adapt_connection.begin_pending
        # Cleared first: a BEGIN that failed is not tried again with the next statement
        # (the caller rolls back).
        self._adapt_connection.begin_pending = None
        try:
            outcome: _Outcome = await_only(self._connection._execute(
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
    __slots__ = ("begin_pending",)

    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        # The BEGIN of a transaction begun whose first statement is still to be sent.
        self.begin_pending: str | None = None

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
        super().commit()

    def rollback(self) -> None:
        if self.begin_pending is not None:
            self.begin_pending = None
            return
        super().rollback()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


class OneTripDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneTripDBAPI:
        return OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneTripDialect")
