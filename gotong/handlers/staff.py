"""Aggregator staff: joining with an invite code, and what every staff action checks
first: who the person is staff of, and which kelurahan that covers."""

from __future__ import annotations

import logging
from datetime import timedelta

from gotong.handlers import forms
from gotong.handlers.forms import Form
from gotong.handlers.messages import Reply
from gotong.handlers.staff_actions import Actor, Coverage, staff_coverage
from gotong.handlers.turn import Turn
from gotong.models.aggregator import InviteRole, get_aggregator, redeem_invite, valid_invite
from gotong.models.audit import audit, count_since
from gotong.models.dashboard import create_link

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


async def begin_invited(turn: Turn, code: str, role: InviteRole, form: Form, how_key: str,
                        welcome_key: str) -> list[Reply]:
    """/volunteer CODE, /proxy CODE: check the code (used up only when the form is sent),
    then welcome the person to the aggregator and ask the form's questions."""
    if await code_locked(turn):
        return [Reply(text=turn.t("staff.join_locked"))]
    code = code.strip()
    if not code:
        return [Reply(text=turn.t(how_key))]
    invite = await valid_invite(turn.session, code, role, turn.now)
    if invite is None:
        return await wrong_code(turn)
    replies = await forms.begin(turn, form)
    turn.conversation.answers = {**turn.conversation.answers, "invite": invite.id,
                                 "aggregator": invite.aggregator_id}
    aggregator = await get_aggregator(turn.session, invite.aggregator_id)
    return [Reply(text=turn.t(welcome_key, name=aggregator.name)), *replies]


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


async def coverage(turn: Turn) -> Coverage:
    return await staff_coverage(turn.session, turn.areas, turn.contact.id)


def actor(turn: Turn, staff: Coverage) -> Actor:
    """The person of this update acting as staff, for the checks and operations shared
    with the dashboard."""
    return Actor(turn.session, turn.areas, turn.contact.id, turn.now, staff)


def refuse(turn: Turn, action: str, outcome: str, key: str,
           aggregator_id: int | None = None) -> list[Reply]:
    """Refuse a staff action with a message, and write the attempt to the audit log."""
    audit(turn.session, turn.now, action, outcome, contact_id=turn.contact.id,
          aggregator_id=aggregator_id)
    return [Reply(text=turn.t(key))]


def not_staff(turn: Turn, action: str) -> list[Reply]:
    return refuse(turn, action, "not staff", "staff.only")


async def dashboard_link(turn: Turn) -> list[Reply]:
    """/dashboard: a one-time link that signs this staff member in to the web dashboard."""
    if not (await coverage(turn)).is_staff:
        return not_staff(turn, "dashboard")
    valid = turn.settings.dashboard_link_valid
    token = await create_link(turn.session, turn.contact.id, turn.now, valid)
    audit(turn.session, turn.now, "dashboard_link", "done", contact_id=turn.contact.id)
    # The token is in the reply only: replies are never logged.
    return [Reply(text=turn.t("staff.dashboard_link",
                              url=f"{turn.settings.dashboard_url}/signin/{token}",
                              minutes=int(valid.total_seconds() // 60)))]
