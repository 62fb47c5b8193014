"""What staff's actions on support conversations check and do, from chat or from the
dashboard: the conversation must be of one of their aggregators; taking needs it still
open, replying and closing need it taken by them. Every action, refusals too, goes into
the audit log; the person hears of a take, a reply and a close through the outbox.
"""

from __future__ import annotations

from sqlalchemy import select

from gotong.handlers.staff_actions import Actor, Refusal
from gotong.handlers.validators import clean_text, parse_id
from gotong.models.aggregator import Aggregator
from gotong.models.area import AreaDirectory, AreaLevel
from gotong.models.rules import NotAllowed
from gotong.models.support import (
    MAX_TEXT,
    OUTCOMES,
    SupportConversation,
    SupportStatus,
    close,
    reply,
    take,
)

TAKE, REPLY, CLOSE, VIEW = "support_take", "support_reply", "support_close", "support_view"


async def conversation_of_staff(actor: Actor, conversation_id: object, action: str
                                ) -> tuple[SupportConversation | None, Refusal | None]:
    """The conversation, if it belongs to one of this staff member's aggregators; else
    why not (audited). Locked for the rest of the unit of work where the database can."""
    if not actor.staff.is_staff:
        actor.audit(action, "not staff")
        return None, Refusal.NOT_STAFF
    key = parse_id(str(conversation_id))
    found = await actor.session.scalar(
        select(SupportConversation).where(SupportConversation.id == key)
        .with_for_update()) if key else None
    if found is None or found.aggregator_id not in actor.staff.aggregator_ids:
        actor.refuse(action, "not their aggregator")
        return None, Refusal.NOT_YOURS
    return found, None


async def aggregator_name(actor: Actor, conversation: SupportConversation) -> str:
    name = await actor.session.scalar(select(Aggregator.name).where(
        Aggregator.id == conversation.aggregator_id))
    return name or ""


async def take_conversation(actor: Actor, conversation: SupportConversation
                            ) -> Refusal | None:
    """Take a conversation nobody has taken: the person is told someone has."""
    detail = f"#{conversation.id}"
    if conversation.status != SupportStatus.OPEN:
        actor.audit(TAKE, "already taken", conversation.aggregator_id, detail)
        return Refusal.ALREADY_DONE
    try:
        await take(actor.session, conversation, actor.contact_id,
                   await aggregator_name(actor, conversation), actor.now)
    except NotAllowed:
        actor.audit(TAKE, "already taken", conversation.aggregator_id, detail)
        return Refusal.ALREADY_DONE
    actor.audit(TAKE, "done", conversation.aggregator_id, detail)
    return None


def taken_by(actor: Actor, conversation: SupportConversation) -> bool:
    return conversation.status == SupportStatus.TAKEN and \
        conversation.taken_by == actor.contact_id


def clean_message(text: str) -> str:
    """A message as it is kept and passed on: without control characters, line breaks
    kept (whole: see too_long)."""
    return clean_text(text, newlines=True).strip()


def too_long(message: str) -> bool:
    """Whether a cleaned message is longer than what is kept and passed on: the writer is
    asked to send it in parts, rather than have its end cut off without their knowing."""
    return len(message) > MAX_TEXT


async def reply_to(actor: Actor, conversation: SupportConversation, text: str
                   ) -> Refusal | None:
    """Send the person a staff member's reply, in a conversation they took."""
    detail = f"#{conversation.id}"
    if not taken_by(actor, conversation):
        actor.audit(REPLY, "not taken by them", conversation.aggregator_id, detail)
        return Refusal.ALREADY_DONE
    message = clean_message(text)
    if too_long(message):
        return Refusal.TOO_LONG
    if not message:
        return Refusal.INVALID
    await reply(actor.session, conversation, actor.contact_id, message,
                await aggregator_name(actor, conversation), actor.now)
    # What was written stays out of the log: only that a reply went.
    actor.audit(REPLY, "done", conversation.aggregator_id, detail)
    return None


async def close_conversation(actor: Actor, conversation: SupportConversation, outcome: str
                             ) -> Refusal | None:
    """Close a conversation this staff member took, with one of the outcomes."""
    detail = f"#{conversation.id}"
    if outcome not in OUTCOMES:
        return Refusal.INVALID
    if not taken_by(actor, conversation):
        actor.audit(CLOSE, "not taken by them", conversation.aggregator_id, detail)
        return Refusal.ALREADY_DONE
    try:
        await close(actor.session, conversation, actor.contact_id, outcome, actor.now)
    except NotAllowed:
        actor.audit(CLOSE, "not taken by them", conversation.aggregator_id, detail)
        return Refusal.ALREADY_DONE
    actor.audit(CLOSE, "done", conversation.aggregator_id, f"{detail} {outcome}")
    return None


def area_name(areas: AreaDirectory, area_id: int | None) -> str:
    """A kelurahan with the areas above it, or the name of a larger area; "" for none."""
    if area_id is None:
        return ""
    entry = areas.get(area_id)
    if entry is None:
        return ""
    if entry.level == AreaLevel.VILLAGE:
        place = areas.place(area_id)
        return place.display() if place else entry.name
    return entry.name


def areas_above(areas: AreaDirectory, area_id: int | None) -> list[int]:
    """The area and every area above it, smallest first: any of them covers it."""
    found: list[int] = []
    while area_id is not None and area_id not in found:
        found.append(area_id)
        entry = areas.get(area_id)
        area_id = entry.parent_id if entry is not None else None
    return found
