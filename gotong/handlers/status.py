"""/status: a person's requests as a short timeline and their pledges with what became of
them; and taking back an open request or a pledge not yet received."""

from __future__ import annotations

from sqlalchemy import select

from gotong.handlers.forms import Choice, match_choice
from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.notices import notice_reply
from gotong.handlers.proxy import households_status
from gotong.handlers.stock import amount_text, pledge_state_key
from gotong.handlers.turn import Turn, refusing
from gotong.models.allocation import pledge_progress
from gotong.models.delivery import UNDER_WAY, Delivery
from gotong.models.help_request import (
    CANCELLABLE_STATUSES,
    cancel_request,
    open_request_of,
    request_of,
    requests_of,
)
from gotong.models.phone_confirmation import forget_questions
from gotong.models.pledge import CODE_PREFIX, Pledge, PledgeStatus, pledges_of
from gotong.models.proxy import acts_for_household
from gotong.models.stock import cancel_pledge
from gotong.models.volunteer import Volunteer

# Button contexts: the "cancel this request" button under the status, and its confirmation.
REQUEST_CONTEXT = "req"
CONFIRM_CONTEXT = "reqc"
CANCEL = "cancel"
YES = "yes"
NO = "no"
# Scratch key of the confirmation that waits for a typed or tapped answer.
CONFIRM_OVERLAY = "cancel_request"


async def status_replies(turn: Turn) -> list[Reply]:
    # A proxy sees the households they registered first, then anything of their own.
    registered = await households_status(turn)
    requests = await requests_of(turn.session, turn.contact.id)
    pledges = await pledges_of(turn.session, turn.contact.id)
    if not requests and not pledges:
        return registered or [Reply(text=turn.t("status.none"))]
    replies = [*registered, *([await _pledge_status(turn, pledges)] if pledges else [])]
    if not requests:
        return replies
    blocks = []
    under_way = await _deliveries_under_way(turn, [r.id for r in requests])
    for request in requests:
        lines = [turn.t("status.request", reference=request.reference,
                        status=turn.t(f"status.{request.status}"))]
        lines.extend(
            turn.t("status.event", status=turn.t(f"status.{event.status}"),
                   at=turn.format_time(event.at))
            for event in request.events
        )
        for delivery, volunteer in under_way.get(request.id, []):
            # The household may have lost the message with its code.
            lines.append(turn.t("status.delivery_code", code=delivery.code or "",
                                volunteer=volunteer))
        blocks.append("\n".join(lines))
    # Each request that can still be taken back has a button of its own, naming it.
    options = tuple(Option(f"{CANCEL}:{r.reference}",
                           turn.t("status.cancel_request", reference=r.reference),
                           number=i + 1)
                    for i, r in enumerate(r for r in requests
                                          if r.status in CANCELLABLE_STATUSES))
    if not options:
        return [Reply(text="\n\n".join(blocks)), *replies]
    return [Reply(text="\n\n".join(blocks), options=options, hint=Hint.SINGLE,
                  context=REQUEST_CONTEXT), *replies]


async def _deliveries_under_way(turn: Turn, request_ids: list[int]
                                ) -> dict[int, list[tuple[Delivery, str]]]:
    rows = await turn.session.execute(
        select(Delivery, Volunteer.name)
        .join(Volunteer, Volunteer.id == Delivery.volunteer_id)
        .where(Delivery.request_id.in_(request_ids), Delivery.status.in_(UNDER_WAY)))
    found: dict[int, list[tuple[Delivery, str]]] = {}
    for delivery, name in rows.all():
        found.setdefault(delivery.request_id, []).append((delivery, name.split()[0]))
    return found


async def _pledge_status(turn: Turn, pledges: list[Pledge]) -> Reply:
    """Each pledge and how far it went: counts and kelurahan, never who received it."""
    blocks = []
    for pledge in pledges:
        progress = await pledge_progress(turn.session, turn.areas, pledge)
        what = amount_text(turn, pledge.category, pledge.quantity)
        lines = [turn.t("status.pledge", code=pledge.code, what=what,
                        status=turn.t(pledge_state_key(pledge.status, pledge.handover)))]
        if pledge.status == PledgeStatus.RECEIVED:
            lines.append(turn.t("status.pledge_progress", **progress))
        blocks.append("\n".join(lines))
    options = tuple(Option(f"{CANCEL}:{p.code}", turn.t("status.cancel_pledge", code=p.code),
                           number=i + 1)
                    for i, p in enumerate(p for p in pledges
                                          if p.status == PledgeStatus.PLEDGED))
    return Reply(text="\n\n".join(blocks), options=options,
                 hint=Hint.SINGLE if options else Hint.NONE,
                 context=REQUEST_CONTEXT if options else None)


async def ask_cancel(turn: Turn, reference: str | None = None) -> list[Reply]:
    """Ask to confirm taking back the person's open request (or the request or pledge
    tapped)."""
    if reference is not None and reference.startswith(CODE_PREFIX):
        return await _ask_cancel_pledge(turn, reference)
    if reference is None:
        request = await open_request_of(turn.session, turn.contact.id)
    else:
        request = await request_of(turn.session, turn.contact.id, reference)
    if request is None or request.status not in CANCELLABLE_STATUSES \
            or not await acts_for_household(turn.session, turn.contact.id,
                                            request.contact_id, request.proxy_id):
        return [Reply(text=turn.t("status.nothing_to_cancel"))]
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": CONFIRM_OVERLAY,
                                 "reference": request.reference}
    options = (Option(f"{YES}:{request.reference}", turn.t("status.cancel_yes"), number=1),
               Option(NO, turn.t("status.cancel_no"), number=2))
    return [Reply(text=turn.t("status.cancel_confirm", reference=request.reference),
                  options=options, hint=Hint.SINGLE, context=CONFIRM_CONTEXT)]


async def _ask_cancel_pledge(turn: Turn, code: str) -> list[Reply]:
    pledge = next((p for p in await pledges_of(turn.session, turn.contact.id)
                   if p.code == code), None)
    if pledge is None or pledge.status != PledgeStatus.PLEDGED:
        return [Reply(text=turn.t("status.pledge_not_cancellable"))]
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": CONFIRM_OVERLAY,
                                 "reference": pledge.code}
    options = (Option(f"{YES}:{pledge.code}", turn.t("status.cancel_yes"), number=1),
               Option(NO, turn.t("status.cancel_no"), number=2))
    return [Reply(text=turn.t("status.cancel_pledge_confirm", code=pledge.code),
                  options=options, hint=Hint.SINGLE, context=CONFIRM_CONTEXT)]


def confirmation_answer(turn: Turn, incoming: Incoming) -> str | None:
    """YES or NO when the update answers the pending confirmation, else None."""
    if incoming.kind == Kind.CHOICE and incoming.context == CONFIRM_CONTEXT:
        return YES if (incoming.option or "").startswith(f"{YES}:") else NO
    if incoming.kind == Kind.TEXT:
        choices = [Choice(YES, "status.cancel_yes"), Choice(NO, "status.cancel_no")]
        return match_choice(turn, incoming.text, choices)
    return None


async def confirm_cancel(turn: Turn, incoming: Incoming, answer: str) -> list[Reply]:
    scratch = dict(turn.conversation.scratch)
    scratch.pop("overlay", None)
    reference = str(scratch.pop("reference", ""))
    turn.conversation.scratch = scratch
    if answer != YES:
        return [Reply(text=turn.t("status.cancel_kept"))]
    tapped = (incoming.option or "").partition(":")[2] if incoming.kind == Kind.CHOICE \
        else reference
    if tapped.startswith(CODE_PREFIX):
        return await _cancel_pledge(turn, tapped, reference)
    request = await request_of(turn.session, turn.contact.id, tapped)
    if request is None or tapped != reference or not await acts_for_household(
            turn.session, turn.contact.id, request.contact_id, request.proxy_id):
        # A button of an older question, or data that was never ours.
        return [Reply(text=turn.t("button.stale"))]
    notices = await refusing(cancel_request(turn.session, request, turn.contact.id, turn.now),
                             [Reply(text=turn.t("status.nothing_to_cancel"))])
    # A phone a proxy gave is no longer asked about a request taken back.
    await forget_questions(turn.session, request_ids=[request.id])
    return [notice_reply(turn.catalog, turn.language, n) for n in notices]


async def _cancel_pledge(turn: Turn, tapped: str, code: str) -> list[Reply]:
    pledge = next((p for p in await pledges_of(turn.session, turn.contact.id)
                   if p.code == tapped), None)
    if pledge is None or tapped != code:
        return [Reply(text=turn.t("button.stale"))]
    await refusing(cancel_pledge(turn.session, pledge, turn.contact.id, turn.now),
                   [Reply(text=turn.t("status.pledge_not_cancellable"))])
    return [Reply(text=turn.t("status.pledge_cancelled", code=pledge.code))]
