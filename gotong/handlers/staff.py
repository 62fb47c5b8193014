"""Aggregator staff: joining with an invite code."""

from __future__ import annotations

import logging
from datetime import timedelta

from gotong.handlers.messages import Reply
from gotong.handlers.turn import Turn
from gotong.models.aggregator import InviteRole, redeem_invite
from gotong.models.audit import audit, count_since

log = logging.getLogger(__name__)

# Wrong codes from one chat within the window lock /join for that chat.
JOIN_ATTEMPTS = 5
JOIN_WINDOW = timedelta(hours=1)
JOIN = "join"
WRONG_CODE = "wrong code"


async def join(turn: Turn, code: str) -> list[Reply]:
    """/join CODE: become staff of the aggregator whose invite this is."""
    session, contact = turn.session, turn.contact
    wrong = await count_since(session, contact.id, JOIN, WRONG_CODE, turn.now - JOIN_WINDOW)
    if wrong >= JOIN_ATTEMPTS:
        audit(session, turn.now, JOIN, "locked", contact_id=contact.id)
        return [Reply(text=turn.t("staff.join_locked"))]
    code = code.strip()
    if not code:
        return [Reply(text=turn.t("staff.join_how"))]
    aggregator = await redeem_invite(session, code, InviteRole.STAFF, contact.id, turn.now)
    if aggregator is None:
        audit(session, turn.now, JOIN, WRONG_CODE, contact_id=contact.id)
        left = JOIN_ATTEMPTS - wrong - 1
        if left <= 0:
            return [Reply(text=turn.t("staff.join_locked"))]
        return [Reply(text=turn.t("staff.join_wrong", left=left))]
    audit(session, turn.now, JOIN, "done", contact_id=contact.id, aggregator_id=aggregator.id)
    log.info("a contact joined aggregator %d as staff", aggregator.id)
    return [Reply(text=turn.t("staff.joined", name=aggregator.name))]
