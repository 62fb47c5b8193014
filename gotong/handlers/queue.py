"""/queue: staff verify the submitted requests of their aggregator's areas, highest
priority first, one at a time; or reject them with a reason, or mark a duplicate.

Every action is checked on the server: the person must be staff of an aggregator that
covers the request's kelurahan, and the request must still wait for verification. A
refusal is answered and written to the audit log.
"""

from __future__ import annotations

from gotong.handlers import staff_actions
from gotong.handlers.forms import Choice, match_choice
from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import actor, coverage, not_staff
from gotong.handlers.staff_actions import Actor, Refusal, decide_request, request_to_review
from gotong.handlers.turn import Turn
from gotong.models.help_request import REJECT_REASONS, HelpRequest, queue_of
from gotong.models.phone_confirmation import pending_for
from gotong.models.priority import score_parts
from gotong.models.proxy import proxy_names

QUEUE_CONTEXT = "q"
REASON_CONTEXT = "qr"
VERIFY, REJECT, DUPLICATE, OTHER = "v", "r", "d", "other"
# Scratch key of a rejection waiting for its typed reason.
REASON_OVERLAY = "reject_reason"
MAX_REASON = 200


async def show_queue(turn: Turn, prefix: str | None = None) -> list[Reply]:
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "queue")
    waiting = await queue_of(turn.session, staff.villages)
    if not waiting:
        text = turn.t("queue.empty")
        return [Reply(text=f"{prefix}\n\n{text}" if prefix else text)]
    return [await _card(turn, waiting[0], prefix)]


async def _card(turn: Turn, request: HelpRequest, prefix: str | None) -> Reply:
    place = turn.areas.place(request.village_id)
    parts = score_parts(request.household_size, request.vulnerabilities, request.created_at,
                        turn.now, request.served_before)
    lines = [
        turn.t("queue.card", reference=request.reference, name=as_typed(request.head_name),
               phone=request.phone, nik=f"…{request.nik_last4}" if request.nik_last4 else "-",
               street=as_typed(request.street), rt=request.rt, rw=request.rw,
               place=place.display() if place else "", size=request.household_size,
               vulnerable=", ".join(turn.t(f"vulnerable.{v}") for v in request.vulnerabilities)
               or "-",
               needs=", ".join(turn.t(f"need.{n}") for n in request.needs)),
        turn.t("queue.score", score=f"{sum(parts.values()):g}",
               parts=", ".join(f"{turn.t(f'score.{k}')} {v:g}" for k, v in parts.items() if v)),
    ]
    if request.proxy_id is not None:
        names = await proxy_names(turn.session, [request.proxy_id])
        lines.insert(1, turn.t("proxy.registered_by",
                               name=as_typed(names.get(request.proxy_id, "-"))))
        # Where the phone stands: the card shows the proxy's number until the household
        # confirms its own, and staff should know whose it is, never seeing the number
        # asked.
        if await pending_for(turn.session, [request.id]):
            lines.insert(2, turn.t("proxy.staff_phone_pending"))
        elif request.phone_confirmed_at is not None:
            lines.insert(2, turn.t(
                "proxy.staff_phone_confirmed_new" if request.phone_confirmed_new
                else "proxy.staff_phone_confirmed",
                at=turn.format_time(request.phone_confirmed_at)))
    options = [Option(f"{VERIFY}:{request.id}", turn.t("queue.verify"), number=1),
               Option(f"{REJECT}:{request.id}", turn.t("queue.reject"), number=2)]
    if request.duplicate_of_id is not None:
        other = await turn.session.get(HelpRequest, request.duplicate_of_id)
        if other is not None:
            other_place = turn.areas.place(other.village_id)
            lines.append(turn.t(
                "queue.duplicate", reference=other.reference, name=as_typed(other.head_name),
                street=as_typed(other.street), rt=other.rt, rw=other.rw,
                place=other_place.display() if other_place else "",
                status=turn.t(f"status.{other.status}"),
                reasons=", ".join(turn.t(f"duplicate.{r}") for r in request.duplicate_reasons)))
            options.append(Option(f"{DUPLICATE}:{request.id}", turn.t("queue.mark_duplicate"),
                                  number=3))
    text = "\n\n".join(lines)
    return Reply(text=f"{prefix}\n\n{text}" if prefix else text, options=tuple(options),
                 hint=Hint.SINGLE, context=QUEUE_CONTEXT)


async def _authorized(turn: Turn, request_id: str, action: str
                      ) -> tuple[Actor | None, HelpRequest | None, list[Reply]]:
    """The request, if this person may act on it now; else the refusal to send."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return None, None, not_staff(turn, action)
    acting = actor(turn, staff)
    request, refusal = await request_to_review(acting, request_id, action)
    if refusal == Refusal.NOT_YOURS or request is None:
        return None, None, [Reply(text=turn.t("queue.not_yours"))]
    if refusal == Refusal.ALREADY_DONE:
        return None, None, [Reply(text=turn.t("queue.already_done",
                                              reference=request.reference))]
    return acting, request, []


async def _decide(turn: Turn, acting: Actor, request: HelpRequest, action: str,
                  reason: str | None = None) -> list[Reply]:
    """Verify, reject or mark a duplicate; then the next request of the queue, with the
    confirmation for staff (the household hears it through the outbox)."""
    refusal = await decide_request(acting, request, action, reason)
    if refusal == Refusal.ALREADY_DONE:
        return [Reply(text=turn.t("queue.already_done", reference=request.reference))]
    if refusal is not None:
        return [Reply(text=turn.t("button.invalid"))]
    return await show_queue(turn, turn.t(f"queue.{action}_done", reference=request.reference))


async def on_queue_button(turn: Turn, option: str) -> list[Reply]:
    action, _, request_id = option.partition(":")
    if action not in (VERIFY, REJECT, DUPLICATE):
        return [Reply(text=turn.t("button.invalid"))]
    acting, request, refusal = await _authorized(turn, request_id, _ACTIONS[action])
    if acting is None or request is None:
        return refusal
    if action != REJECT:
        return await _decide(turn, acting, request, _ACTIONS[action])
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": REASON_OVERLAY,
                                 "request": request.id}
    options = [Option(f"{r}:{request.id}", turn.t(f"reject.{r}"), number=i + 1)
               for i, r in enumerate(REJECT_REASONS)]
    options.append(Option(f"{OTHER}:{request.id}", turn.t("queue.reason_other"),
                          number=len(options) + 1))
    return [Reply(text=turn.t("queue.reason", reference=request.reference),
                  options=tuple(options), hint=Hint.SINGLE, context=REASON_CONTEXT)]


_ACTIONS = {VERIFY: staff_actions.VERIFY, REJECT: staff_actions.REJECT,
            DUPLICATE: staff_actions.DUPLICATE}


async def on_reason(turn: Turn, incoming: Incoming) -> list[Reply] | None:
    """The answer to "why reject?": a listed reason, or typed text; None if it is not."""
    scratch = dict(turn.conversation.scratch)
    request_id = str(scratch.get("request", ""))
    reason: str | None = None
    if incoming.kind == Kind.CHOICE and incoming.context == REASON_CONTEXT:
        reason, _, tapped = (incoming.option or "").partition(":")
        if tapped != request_id:
            return [Reply(text=turn.t("button.stale"))]
        if reason == OTHER:
            return [Reply(text=turn.t("queue.reason_type"))]
        if reason not in REJECT_REASONS:
            return [Reply(text=turn.t("button.invalid"))]
    elif incoming.kind == Kind.TEXT:
        choices = [Choice(r, f"reject.{r}") for r in REJECT_REASONS]
        reason = match_choice(turn, incoming.text, choices) or " ".join(incoming.text.split())
        reason = reason[:MAX_REASON]
    if not reason:
        return None
    scratch.pop("overlay", None)
    scratch.pop("request", None)
    turn.conversation.scratch = scratch
    acting, request, refusal = await _authorized(turn, request_id, "reject")
    if acting is None or request is None:
        return refusal
    return await _decide(turn, acting, request, staff_actions.REJECT, reason)

