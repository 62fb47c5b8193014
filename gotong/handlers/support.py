"""Talking to a person: someone whose situation does not fit the questions asks for staff
(/petugas, /human, the menu, a button after wrong answers, or in words), and staff answer
in chat (/pesan, /inbox).

While the person talks to staff their typed messages go to staff, and the dialog they were
in waits: a button or /lanjut (/continue) takes them back to it. Staff take a conversation,
reply to it (what they type next goes to the person, until they close it or do something
else) and close it with an outcome.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from gotong.handlers import support_actions
from gotong.handlers.catalog import Catalog
from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import actor, coverage, not_staff
from gotong.handlers.staff_actions import Refusal
from gotong.handlers.support_actions import (
    CLOSE,
    REPLY,
    TAKE,
    VIEW,
    area_name,
    areas_above,
    close_conversation,
    conversation_of_staff,
    reply_to,
    take_conversation,
)
from gotong.handlers.turn import Turn
from gotong.models.aggregator import Aggregator
from gotong.models.audit import audit
from gotong.models.support import (
    MAX_TEXT,
    OUTCOMES,
    SupportConversation,
    SupportStatus,
    covering_aggregator,
    inbox,
    last_messages,
    open_conversation,
    open_conversation_of,
    person_wrote,
    standing_of,
)

# The person's buttons (talk to a person, back to the form) and staff's (show, take,
# reply, close, and the outcome of a close).
PERSON_CONTEXT = "sup"
STAFF_CONTEXT = "sp"
OPEN, RESUME = "open", "resume"
SHOW, TAKE_IT, REPLY_IT, CLOSE_IT, OUTCOME = "show", "take", "reply", "close", "o"
# Scratch key of a person talking to staff: their support conversation's id. Not an
# overlay: it outlasts the questions asked meanwhile (/status, say).
TALKING = "support"
# Scratch key of staff typing replies to a conversation, and its overlay.
REPLY_OVERLAY = "support_reply"
REPLYING = "support_reply_to"
# The context of the reply question, which has no buttons of its own.
REPLY_CONTEXT = "spr"
# Messages of a conversation shown on its card in chat.
CARD_MESSAGES = 3


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


@functools.lru_cache(maxsize=8)
def _phrases(catalog: Catalog) -> frozenset[str]:
    return frozenset(_fold(phrase) for language in catalog.languages
                     for phrase in catalog.text(language, "support.words").split("|"))


def asks_for_person(turn: Turn, text: str) -> bool:
    """Whether a message is, as a whole, a request to talk to a person ("bicara dengan
    petugas", "talk to a person"), in any language."""
    return _fold(text) in _phrases(turn.catalog)


def back_button(turn: Turn, in_form: bool) -> Option:
    return Option(RESUME, turn.t("support.back_to_form" if in_form else "support.to_menu"))


# --- the person -----------------------------------------------------------------------


async def start(turn: Turn, in_form: bool) -> list[Reply]:
    """Open a support conversation (or go back to the open one) and take what the person
    types next to staff."""
    session, contact = turn.session, turn.contact
    conversation = await open_conversation_of(session, contact.id)
    created = False
    if conversation is None:
        standing = await standing_of(session, contact.id)
        if standing.aggregator_id is None:
            standing = dataclasses.replace(standing, aggregator_id=await covering_aggregator(
                session, areas_above(turn.areas, standing.area_id)))
        conversation, created = await open_conversation(session, contact.id, standing,
                                                        turn.now)
        audit(session, turn.now, "support_open",
              "done" if conversation.aggregator_id else "no aggregator",
              contact_id=contact.id, aggregator_id=conversation.aggregator_id,
              detail=f"#{conversation.id}")
    turn.conversation.scratch = {**turn.conversation.scratch, TALKING: conversation.id}
    if conversation.aggregator_id is None:
        text = turn.t("support.none_available")
    else:
        name = await session.get(Aggregator, conversation.aggregator_id)
        text = turn.t("support.opened" if created else "support.still_open",
                      name=name.name if name else "")
    return [Reply(text=text, options=(back_button(turn, in_form),), hint=Hint.SINGLE,
                  context=PERSON_CONTEXT)]


def is_talking(turn: Turn) -> bool:
    return TALKING in turn.conversation.scratch


def stop_talking(turn: Turn) -> None:
    turn.conversation.forget(TALKING)


async def on_message(turn: Turn, in_form: bool) -> list[Reply] | None:
    """A message of a person talking to staff: kept and passed on. None when the
    conversation was closed meanwhile (the person is no longer talking to staff)."""
    found = await turn.session.get(SupportConversation,
                                   int(turn.conversation.scratch.get(TALKING) or 0))
    if found is None or not found.is_open or found.contact_id != turn.contact.id:
        stop_talking(turn)
        return None
    incoming = turn.incoming
    text = support_actions.clean_message(incoming.text) if incoming.kind == Kind.TEXT else ""
    if support_actions.too_long(text):
        reply = turn.t("support.too_long", max=MAX_TEXT)
    elif not text:
        reply = turn.t("support.text_only")
    else:
        await person_wrote(turn.session, found, text, turn.now)
        reply = turn.t("support.sent" if found.aggregator_id else "support.kept")
    return [Reply(text=reply, options=(back_button(turn, in_form),), hint=Hint.SINGLE,
                  context=PERSON_CONTEXT)]


# --- staff ----------------------------------------------------------------------------


async def show_inbox(turn: Turn) -> list[Reply]:
    """/pesan: the open support conversations of the staff member's aggregators, the
    longest waiting first, each with its last messages and buttons."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "support_inbox")
    waiting = await inbox(turn.session, staff.aggregator_ids, turn.settings.page_size)
    if not waiting:
        return [Reply(text=turn.t("support.inbox_empty"))]
    return [Reply(text=turn.t("support.inbox_title", count=len(waiting))),
            *[await _card(turn, conversation) for conversation in waiting]]


async def _card(turn: Turn, conversation: SupportConversation, prefix: str | None = None
                ) -> Reply:
    minutes = max(int((turn.now - conversation.opened_at).total_seconds() // 60), 0)
    if conversation.status == SupportStatus.OPEN:
        state = turn.t("support.state_open", minutes=minutes)
    elif conversation.taken_by == turn.contact.id:
        state = turn.t("support.state_yours")
    else:
        state = turn.t("support.state_taken")
    lines = [turn.t("support.card", number=conversation.id,
                    role=turn.t(f"support.role.{conversation.role}"),
                    place=area_name(turn.areas, conversation.area_id) or "-",
                    reference=conversation.reference or "-", state=state)]
    for message in await last_messages(turn.session, conversation.id, CARD_MESSAGES):
        who = turn.t("support.from_staff" if message.from_staff else "support.from_person")
        lines.append(f"› {who}: {as_typed(message.text)}")
    options: list[Option] = []
    if conversation.status == SupportStatus.OPEN:
        options.append(Option(f"{TAKE_IT}:{conversation.id}", turn.t("support.take")))
    elif conversation.taken_by == turn.contact.id:
        options += [Option(f"{REPLY_IT}:{conversation.id}", turn.t("support.reply_button")),
                    Option(f"{CLOSE_IT}:{conversation.id}", turn.t("support.close"))]
    text = "\n".join(lines)
    return Reply(text=f"{prefix}\n\n{text}" if prefix else text, options=tuple(
        dataclasses.replace(o, number=i + 1) for i, o in enumerate(options)),
        hint=Hint.SINGLE if options else Hint.NONE,
        context=STAFF_CONTEXT if options else None)


def _refused(turn: Turn, refusal: Refusal, action: str,
             conversation: SupportConversation | None) -> list[Reply]:
    if refusal == Refusal.NOT_STAFF:
        return [Reply(text=turn.t("staff.only"))]
    if refusal == Refusal.NOT_YOURS or conversation is None:
        return [Reply(text=turn.t("support.not_yours"))]
    if refusal == Refusal.INVALID:
        return [Reply(text=turn.t("button.invalid"))]
    if action == TAKE:
        return [Reply(text=turn.t("support.already_taken", number=conversation.id))]
    return [Reply(text=turn.t("support.not_taken_by_you", number=conversation.id))]


def _replying(turn: Turn, conversation_id: int) -> None:
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": REPLY_OVERLAY,
                                 REPLYING: conversation_id}


async def on_staff_button(turn: Turn, option: str) -> list[Reply]:
    """Show, take, reply to or close a conversation, or the outcome of a close."""
    action, _, rest = option.partition(":")
    conversation_id, _, outcome = rest.partition(":")
    audited = {SHOW: VIEW, TAKE_IT: TAKE, REPLY_IT: REPLY, CLOSE_IT: CLOSE,
               OUTCOME: CLOSE}.get(action)
    if audited is None:
        return [Reply(text=turn.t("button.invalid"))]
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, audited)
    acting = actor(turn, staff)
    found, refusal = await conversation_of_staff(acting, conversation_id, audited)
    if refusal is not None or found is None:
        return _refused(turn, refusal or Refusal.NOT_YOURS, audited, found)
    if action == SHOW:
        return [await _card(turn, found)]
    if action == TAKE_IT:
        refusal = await take_conversation(acting, found)
        if refusal is not None:
            return _refused(turn, refusal, TAKE, found)
        _replying(turn, found.id)
        return [await _card(turn, found, prefix=turn.t("support.took", number=found.id)),
                Reply(text=turn.t("support.type_reply", number=found.id))]
    if not support_actions.taken_by(acting, found):
        acting.audit(audited, "not taken by them", found.aggregator_id, f"#{found.id}")
        return _refused(turn, Refusal.ALREADY_DONE, audited, found)
    if action == REPLY_IT:
        _replying(turn, found.id)
        return [Reply(text=turn.t("support.type_reply", number=found.id))]
    if action == CLOSE_IT:
        options = tuple(Option(f"{OUTCOME}:{found.id}:{o}", turn.t(f"support.outcome.{o}"),
                               number=i + 1) for i, o in enumerate(OUTCOMES))
        return [Reply(text=turn.t("support.close_how", number=found.id), options=options,
                      hint=Hint.SINGLE, context=STAFF_CONTEXT)]
    refusal = await close_conversation(acting, found, outcome)
    if refusal is not None:
        return _refused(turn, refusal, CLOSE, found)
    if turn.conversation.scratch.get(REPLYING) == found.id:
        turn.conversation.forget("overlay", REPLYING)
    return [Reply(text=turn.t("support.closed_done", number=found.id,
                              outcome=turn.t(f"support.outcome.{outcome}")))]


async def on_reply(turn: Turn, incoming: Incoming) -> list[Reply] | None:
    """What staff type while replying goes to the person; None for anything else (which
    ends the replying)."""
    if incoming.kind != Kind.TEXT:
        return None
    staff = await coverage(turn)
    acting = actor(turn, staff)
    conversation_id = turn.conversation.scratch.get(REPLYING)
    found, refusal = await conversation_of_staff(acting, conversation_id, REPLY)
    if found is None or refusal is not None:
        turn.conversation.forget("overlay", REPLYING)
        return _refused(turn, refusal or Refusal.NOT_YOURS, REPLY, found)
    refusal = await reply_to(acting, found, incoming.text)
    if refusal == Refusal.INVALID:
        return [Reply(text=turn.t("support.type_reply", number=found.id))]
    if refusal == Refusal.TOO_LONG:  # still replying: the same text in parts
        return [Reply(text=turn.t("support.too_long", max=MAX_TEXT))]
    if refusal is not None:
        turn.conversation.forget("overlay", REPLYING)
        return _refused(turn, refusal, REPLY, found)
    return [Reply(text=turn.t("support.reply_sent", number=found.id), options=(
        Option(f"{CLOSE_IT}:{found.id}", turn.t("support.close"), number=1),),
        hint=Hint.SINGLE, context=STAFF_CONTEXT)]
