"""What notices are about, as it is now: the check that keeps news that arrives after the
fact from being sent stale.

A notice names its subjects and the rule that must still hold of them (outbox.About, by
the rules of models/notifications). When the dispatcher claims rows, one query reads
the subjects of all the notices of the batch, and a notice whose rule holds of none of
its subjects any more is outdated. A subject that is gone (a request whose household
erased its data) holds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    SQLColumnExpression,
    String,
    and_,
    cast,
    false,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from gotong.models.conversation import Conversation
from gotong.models.delivery import Delivery
from gotong.models.help_request import HelpRequest
from gotong.models.notifications import STILL, Current, SubjectKind
from gotong.models.outbox import About
from gotong.models.pledge import Pledge
from gotong.models.volunteer import Volunteer

log = logging.getLogger(__name__)

Column = SQLColumnExpression[Any]
States = Select[*tuple[Any, ...]]


def _states(kind: SubjectKind, ids: Iterable[int], id_column: Column, status: Column,
            volunteer_id: Column | None = None, assignment: Column | None = None,
            disputed: Column | None = None,
            locked: Column | None = None, finished: Column | None = None,
            untouched: Column | None = None) -> States:
    """The subjects of one kind as rows of Current, alike for every kind so that one
    UNION ALL reads them all."""
    return (
        select(literal_column(f"'{kind.value}'").label("kind"), id_column.label("id"),
               status.label("status"),
               (volunteer_id if volunteer_id is not None
                else cast(null(), Integer)).label("volunteer_id"),
               (assignment if assignment is not None
                else cast(null(), String)).label("assignment"),
               *((flag if flag is not None else false()).label(name) for name, flag in (
                   ("disputed", disputed), ("locked", locked), ("finished", finished),
                   ("untouched", untouched))))
        .where(id_column.in_(sorted(ids)))
    )


def _query(kind: SubjectKind, ids: Iterable[int]) -> States:
    if kind is SubjectKind.REQUEST:
        return _states(kind, ids, HelpRequest.id, HelpRequest.status)
    if kind is SubjectKind.DELIVERY:
        return _states(kind, ids, Delivery.id, Delivery.status, Delivery.volunteer_id,
                       Delivery.code, disputed=Delivery.disputed, locked=Delivery.locked)
    if kind is SubjectKind.PLEDGE:
        return _states(kind, ids, Pledge.id, Pledge.status, finished=and_(
            Pledge.received_quantity.is_not(None),
            Pledge.delivered_quantity >= Pledge.received_quantity))
    if kind is SubjectKind.VOLUNTEER:
        return _states(kind, ids, Volunteer.id, Volunteer.status)
    # A reminder's conversation: the person came back when it changed after the reminder
    # (a new dialog clears reminded_at).
    return _states(kind, ids, Conversation.id, func.coalesce(Conversation.dialog, ""),
                   untouched=and_(Conversation.reminded_at.is_not(None),
                                  Conversation.updated_at <= Conversation.reminded_at))


# Subject ids read by one statement at most.
MAX_IDS = 900


def about_of(row_id: int, still: str | None, subject_ids: object,
             assignment: str | None) -> About | None:
    """What a claimed row is about, or None when it names nothing that can be checked:
    a row whose subject was written by hand, or damaged, is sent as rows without a rule
    are, rather than stopping every claim behind it."""
    if still is None or not subject_ids:
        return None
    if not isinstance(subject_ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in subject_ids):
        log.warning("outbox row %d names its subject in a form not understood; sent "
                    "unchecked", row_id)
        return None
    return About(still, tuple(subject_ids), assignment)


async def outdated(connection: AsyncConnection, abouts: Mapping[int, About]) -> set[int]:
    """Of the rows given (by id, with what each is about), those whose rule no longer
    holds of any of their subjects; one query for all of them, in the caller's
    transaction. A rule no longer known is taken to hold."""
    rules = {row_id: (STILL.get(about.still), about) for row_id, about in abouts.items()}
    wanted: dict[SubjectKind, set[int]] = {}
    for rule, about in rules.values():
        if rule is not None:
            wanted.setdefault(rule.kind, set()).update(about.ids)
    if not wanted:
        return set()
    # One query for the usual batch; a batch of many large digests is read in parts, each
    # within the databases' limits on a statement's parameters (SQLite's can be 999).
    chunks = [(kind, ordered[start:start + MAX_IDS])
              for kind, ids in sorted(wanted.items())
              for ordered in (sorted(ids),)
              for start in range(0, len(ordered), MAX_IDS)]
    if sum(len(chunk) for _, chunk in chunks) <= MAX_IDS:
        parts = [_query(kind, chunk) for kind, chunk in chunks]
        queries = [union_all(*parts) if len(parts) > 1 else parts[0]]
    else:
        queries = [_query(kind, chunk) for kind, chunk in chunks]
    found = {}
    for query in queries:
        for row in (await connection.execute(query)).all():
            found[(row.kind, row.id)] = Current(
                status=row.status, volunteer_id=row.volunteer_id, assignment=row.assignment,
                disputed=bool(row.disputed), locked=bool(row.locked),
                finished=bool(row.finished), untouched=bool(row.untouched))
    stale = set()
    for row_id, (rule, about) in rules.items():
        if rule is None:
            continue
        currents = (found.get((rule.kind.value, i)) for i in about.ids)
        if not any(c is not None and rule.holds(c, about.assignment) for c in currents):
            stale.add(row_id)
    return stale
