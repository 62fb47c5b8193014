"""The writes that end every conversation step, in as few round trips as the database
allows.

Every update handled from the inbound queue ends the same way: the update is marked
handled (while its lease is still its handler's), the conversation is saved (unless
another process changed it meanwhile), and the reply is recorded in the outbox as being
sent by this process. On PostgreSQL the three go in one statement (data-modifying
CTEs), and when the step read and wrote nothing else, that statement runs on its own,
without BEGIN and COMMIT: one round trip for the whole unit of work instead of five.
SQLite runs them one after another in the transaction, all three in one trip to its
thread, compiled once (sqlite_driver.Prepared).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, literal, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm.exc import StaleDataError

from gotong.models.base import UTCDateTime
from gotong.models.conversation import (
    SAVE_CONVERSATION,
    Conversation,
    save_conversation,
    save_values,
)
from gotong.models.inbound import (
    InboundUpdate,
    LeaseLost,
    finish_inbound,
    finish_statement,
    finish_values,
)
from gotong.models.outbox import (
    OutboxMessage,
    OutboxStatus,
    Purpose,
    enqueue_reply,
    reply_insert,
    reply_values,
)
from gotong.models.sqlite_driver import OneTripConnection, Prepared


@dataclass(frozen=True)
class Finish:
    """The queued update a step handled, and the lease it was handled under."""

    update_id: int
    owner: str


@dataclass(frozen=True)
class ReplyRow:
    """The step's reply, recorded as being sent by `owner` until the lease runs out."""

    contact_id: int
    body: dict[str, Any]
    lease: timedelta
    owner: str


async def end_step(connection: AsyncConnection, now: datetime, conversation: Conversation,
                   finish: Finish | None, reply: ReplyRow | None) -> int | None:
    """Mark the update handled, save the conversation and record the reply; the reply's
    outbox id. LeaseLost when the update's lease is no longer the caller's, and
    StaleDataError when the conversation changed concurrently: the caller rolls back."""
    if connection.dialect.name == "postgresql":
        return await _end_step_in_one(connection, now, conversation, finish, reply)
    raw = await connection.get_raw_connection()
    adapter = raw.dbapi_connection
    if isinstance(adapter, OneTripConnection):
        return await _end_step_in_one_trip(connection.dialect, adapter, now, conversation,
                                           finish, reply)
    if finish is not None and not await finish_inbound(connection, finish.update_id,
                                                       finish.owner, now):
        raise LeaseLost()
    await save_conversation(connection, conversation)
    if reply is None:
        return None
    return await enqueue_reply(connection, reply.contact_id, reply.body, now, reply.lease,
                               reply.owner)


@dataclass(frozen=True)
class _OnSQLite:
    finish: Prepared
    save: Prepared
    reply: Prepared


@cache
def _on_sqlite(dialect: Dialect) -> _OnSQLite:
    return _OnSQLite(Prepared(finish_statement(), dialect),
                     Prepared(SAVE_CONVERSATION, dialect), Prepared(reply_insert(), dialect))


async def _end_step_in_one_trip(dialect: Dialect, adapter: OneTripConnection, now: datetime,
                                conversation: Conversation, finish: Finish | None,
                                reply: ReplyRow | None) -> int | None:
    """The three writes in one trip to SQLite's thread. They run in the caller's
    transaction (nothing is committed here), so a lease lost or a conversation changed
    meanwhile is raised after the trip and the caller's rollback undoes them all."""
    prepared = _on_sqlite(dialect)
    statements = [(prepared.save, save_values(conversation))]
    if finish is not None:
        statements.insert(0, (prepared.finish,
                              finish_values(finish.update_id, finish.owner, now)))
    if reply is not None:
        statements.append((prepared.reply, reply_values(
            reply.contact_id, reply.body, now, reply.lease, reply.owner)))
    outcomes = await adapter.run_together(statements)
    if finish is not None:
        finished, *outcomes = outcomes
        if not finished[0]:
            raise LeaseLost()
    if outcomes[0][1] != 1:
        raise StaleDataError(f"conversation {conversation.id} changed concurrently")
    conversation.version += 1
    return int(outcomes[1][0][0][0]) if reply is not None else None


# PostgreSQL's code for a division by zero: how the statement run alone undoes itself.
DIVISION_BY_ZERO = "22012"


@cache
def _one_statement(finishing: bool, replying: bool, guarded: bool) -> Any:
    """The three writes as CTEs of one SELECT that says what each did. Built once per
    shape: constructing it costs more than running it.

    `guarded`: the statement fails (a division by zero) unless every write found its
    row, and a failed statement leaves nothing behind. Run alone, outside a
    transaction, that is what keeps the three together: the update is never marked
    handled without its conversation saved, nor the reply recorded for a lease lost.
    """
    at = bindparam("e_now", type_=UTCDateTime())
    inbound = InboundUpdate.__table__
    conversation = Conversation.__table__
    outbox = OutboxMessage.__table__
    found: list[Any] = []
    if finishing:
        finished = (
            update(inbound)  # type: ignore[arg-type]
            .where(inbound.c.id == bindparam("e_update_id"),
                   inbound.c.lease_owner == bindparam("e_update_owner"),
                   inbound.c.processed_at.is_(None))
            .values(processed_at=at, payload=None, lease_owner=None, lease_until=None)
            .returning(inbound.c.id)
            .cte("finished"))
        found.append(select(func.count()).select_from(finished).scalar_subquery())
    version: Any = bindparam("e_version")
    saved = (
        update(conversation)  # type: ignore[arg-type]
        .where(conversation.c.id == bindparam("e_conversation_id"),
               conversation.c.version == version)
        .values(dialog=bindparam("e_dialog"), step=bindparam("e_step"),
                answers=bindparam("e_answers", type_=conversation.c.answers.type),
                scratch=bindparam("e_scratch", type_=conversation.c.scratch.type),
                invalid_attempts=bindparam("e_invalid_attempts"),
                reminded_at=bindparam("e_reminded_at", type_=UTCDateTime()),
                updated_at=bindparam("e_updated_at", type_=UTCDateTime()),
                version=version + 1)
        .returning(conversation.c.id)
        .cte("saved"))
    found.append(select(func.count()).select_from(saved).scalar_subquery())
    columns = [found[0].label("finished") if finishing else literal(1).label("finished"),
               found[-1].label("saved")]
    if replying:
        replied = (
            insert(outbox)  # type: ignore[arg-type]
            .values(contact_id=bindparam("e_contact_id"), priority=int(Purpose.REPLY),
                    essential=True, params={}, actions=[],
                    body=bindparam("e_body", type_=outbox.c.body.type),
                    status=OutboxStatus.SENDING, attempts=0, parts_sent=0, timeouts=0,
                    next_attempt_at=at,
                    lease_until=bindparam("e_lease_until", type_=UTCDateTime()),
                    lease_owner=bindparam("e_reply_owner"), created_at=at)
            .returning(outbox.c.id)
            .cte("replied"))
        columns.append(select(replied.c.id).scalar_subquery().label("reply_id"))
    if guarded:
        every = and_(*(count == 1 for count in found))
        columns.append((literal(1) / case((every, 1), else_=0)).label("guard"))
    return select(*columns)


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


async def _end_step_in_one(connection: AsyncConnection, now: datetime,
                           conversation: Conversation, finish: Finish | None,
                           reply: ReplyRow | None) -> int | None:
    params: dict[str, Any] = {
        "e_now": now, "e_conversation_id": conversation.id,
        "e_version": conversation.version, "e_dialog": conversation.dialog,
        "e_step": conversation.step, "e_answers": conversation.answers,
        "e_scratch": conversation.scratch,
        "e_invalid_attempts": conversation.invalid_attempts,
        "e_reminded_at": conversation.reminded_at, "e_updated_at": conversation.updated_at,
    }
    if finish is not None:
        params |= {"e_update_id": finish.update_id, "e_update_owner": finish.owner}
    if reply is not None:
        params |= {"e_contact_id": reply.contact_id, "e_body": reply.body,
                   "e_lease_until": now + reply.lease, "e_reply_owner": reply.owner}
    raw = await connection.get_raw_connection()
    adapter: Any = raw.dbapi_connection
    # Nothing else in this unit of work: the statement is the whole transaction, and
    # runs without BEGIN and COMMIT (the COMMIT to come finds nothing begun).
    alone = not raw.driver_connection.is_in_transaction()  # type: ignore[union-attr]
    statement = _one_statement(finish is not None, reply is not None, alone)
    if alone:
        adapter.autocommit = True
    try:
        row = (await connection.execute(statement, params)).one()
    except DBAPIError as error:
        if not alone or _sqlstate(error) != DIVISION_BY_ZERO:
            raise
        # Nothing was written. Which write found no row says what to do.
        if finish is not None and not await _still_leased(connection, finish):
            raise LeaseLost() from None
        raise StaleDataError(
            f"conversation {conversation.id} changed concurrently") from None
    finally:
        if alone:
            adapter.autocommit = False
    if row.finished != 1:
        raise LeaseLost()
    if row.saved != 1:
        raise StaleDataError(f"conversation {conversation.id} changed concurrently")
    conversation.version += 1
    return int(row.reply_id) if reply is not None else None


async def _still_leased(connection: AsyncConnection, finish: Finish) -> bool:
    inbound = InboundUpdate.__table__
    held = await connection.scalar(
        select(inbound.c.id).where(inbound.c.id == finish.update_id,
                                   inbound.c.lease_owner == finish.owner,
                                   inbound.c.processed_at.is_(None)))
    return held is not None
