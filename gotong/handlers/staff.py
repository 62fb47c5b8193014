"""Aggregator staff: joining with an invite code, and what every staff action checks
first: who the person is staff of, and which kelurahan that covers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from gotong.handlers.messages import Reply
from gotong.handlers.turn import Turn
from gotong.models.aggregator import InviteRole, covered_areas, redeem_invite, staff_aggregators
from gotong.models.audit import audit, count_since

log = logging.getLogger(__name__)

# Wrong codes from one chat within the window lock /join for that chat.
JOIN_ATTEMPTS = 5
JOIN_WINDOW = timedelta(hours=1)
JOIN = "join"
WRONG_CODE = "wrong code"


async def _wrong_codes(turn: Turn) -> int:
    return await count_since(turn.session, turn.contact.id, JOIN, WRONG_CODE,
                             turn.now - JOIN_WINDOW)


async def code_locked(turn: Turn) -> bool:
    """Whether this chat typed too many wrong invite codes (staff or volunteer) lately."""
    if await _wrong_codes(turn) < JOIN_ATTEMPTS:
        return False
    audit(turn.session, turn.now, JOIN, "locked", contact_id=turn.contact.id)
    return True


async def wrong_code(turn: Turn) -> list[Reply]:
    """Count a wrong invite code; say how many tries are left, or that it is locked."""
    left = JOIN_ATTEMPTS - await _wrong_codes(turn) - 1
    audit(turn.session, turn.now, JOIN, WRONG_CODE, contact_id=turn.contact.id)
    if left <= 0:
        return [Reply(text=turn.t("staff.join_locked"))]
    return [Reply(text=turn.t("staff.join_wrong", left=left))]


async def join(turn: Turn, code: str) -> list[Reply]:
    """/join CODE: become staff of the aggregator whose invite this is."""
    session, contact = turn.session, turn.contact
    if await code_locked(turn):
        return [Reply(text=turn.t("staff.join_locked"))]
    code = code.strip()
    if not code:
        return [Reply(text=turn.t("staff.join_how"))]
    aggregator = await redeem_invite(session, code, InviteRole.STAFF, contact.id, turn.now)
    if aggregator is None:
        return await wrong_code(turn)
    audit(session, turn.now, JOIN, "done", contact_id=contact.id, aggregator_id=aggregator.id)
    log.info("a contact joined aggregator %d as staff", aggregator.id)
    return [Reply(text=turn.t("staff.joined", name=aggregator.name))]


@dataclass(frozen=True)
class Coverage:
    """The aggregators a person is staff of, and the kelurahan they cover."""

    aggregator_ids: list[int]
    villages: set[int]

    @property
    def is_staff(self) -> bool:
        return bool(self.aggregator_ids)


async def coverage(turn: Turn) -> Coverage:
    aggregator_ids = await staff_aggregators(turn.session, turn.contact.id)
    if not aggregator_ids:
        return Coverage([], set())
    covered = await covered_areas(turn.session, aggregator_ids)
    return Coverage(aggregator_ids, turn.areas.villages_under(
        [area for areas in covered.values() for area in areas]))


def refuse(turn: Turn, action: str, outcome: str, key: str,
           aggregator_id: int | None = None) -> list[Reply]:
    """Refuse a staff action with a message, and write the attempt to the audit log."""
    audit(turn.session, turn.now, action, outcome, contact_id=turn.contact.id,
          aggregator_id=aggregator_id)
    return [Reply(text=turn.t(key))]


def not_staff(turn: Turn, action: str) -> list[Reply]:
    return refuse(turn, action, "not staff", "staff.only")
