"""After delivery: households confirm receipt (or say they did not receive it) and rate
the help; staff resolve what needs a decision in /review: failures, disputes, deliveries
awaiting review (a photo and place instead of the code) and deliveries locked after
wrong codes. Every resolution is audited."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.notices import notice_reply
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import actor, coverage, not_staff
from gotong.handlers.staff_actions import (
    ACCEPT,
    CANCEL,
    NOT_DELIVERED,
    WAS_DELIVERED,
    Refusal,
    delivery_of_staff,
    resolve,
)
from gotong.handlers.staff_actions import REJECT_PROOF as REJECT
from gotong.handlers.stock import amount_text
from gotong.handlers.tasks import volunteer_choices
from gotong.handlers.turn import Turn, refusing
from gotong.handlers.validators import Invalid, parse_id, parse_short_text
from gotong.models.audit import audit
from gotong.models.delivery import UNDER_WAY, Delivery, DeliveryStatus
from gotong.models.help_request import HelpRequest
from gotong.models.proxy import acts_for_household
from gotong.models.tasks import MAX_WRONG_CODES, household_answer, rate, reassignable
from gotong.models.volunteer import Volunteer

RECEIPT_CONTEXT = "dl"
RATING_CONTEXT = "rate"
REVIEW_CONTEXT = "rv"
GOT, NOT_GOT = "got", "not"
REASSIGN = "re"
# Scratch key of a rating waiting for an optional comment.
COMMENT_OVERLAY = "rating_comment"
COMMENT_CONTEXT = "ratec"
MAX_COMMENT = 300


# --- households ------------------------------------------------------------------------


async def _households_delivery(turn: Turn, delivery_id: str, action: str
                               ) -> tuple[Delivery | None, list[Reply]]:
    key = parse_id(delivery_id)
    delivery = await turn.session.get(Delivery, key, populate_existing=True) if key else None
    request = await turn.session.get(HelpRequest, delivery.request_id) if delivery else None
    if delivery is None or request is None or not await acts_for_household(
            turn.session, turn.contact.id, request.contact_id, request.proxy_id):
        audit(turn.session, turn.now, action, "not theirs", contact_id=turn.contact.id)
        return None, [Reply(text=turn.t("receipt.not_yours"))]
    return delivery, []


async def on_receipt(turn: Turn, option: str) -> list[Reply]:
    """"I received it" or "not received", under the news of the delivery."""
    action, _, delivery_id = option.partition(":")
    if action not in (GOT, NOT_GOT):
        return [Reply(text=turn.t("button.invalid"))]
    delivery, refusal = await _households_delivery(turn, delivery_id, "receipt")
    if delivery is None:
        return refusal
    notices = await refusing(household_answer(turn.session, turn.areas, delivery,
                                              action == GOT, turn.contact.id, turn.now),
                             lambda: _receipt_refused(turn, delivery, action))
    if action == NOT_GOT:
        return [Reply(text=turn.t("receipt.disputed"))]
    return [notice_reply(turn.catalog, turn.language, n) for n in notices]


async def _receipt_refused(turn: Turn, delivery: Delivery, action: str) -> list[Reply]:
    """Why the household's answer cannot be taken, from the delivery as it is now (a
    refusal at the moment of writing leaves it in memory as it was read)."""
    await turn.session.refresh(delivery)
    if action == GOT and delivery.status == DeliveryStatus.DELIVERED:
        return [Reply(text=turn.t("receipt.already"))]
    return [Reply(text=turn.t("receipt.not_yet" if action == NOT_GOT else "receipt.cannot"))]


async def on_rating(turn: Turn, option: str) -> list[Reply]:
    delivery_id, _, stars = option.partition(":")
    delivery, refusal = await _households_delivery(turn, delivery_id, "rate")
    if delivery is None:
        return refusal
    await refusing(rate(turn.session, delivery, turn.contact.id, int(stars) if stars in
                        ("1", "2", "3", "4", "5") else 0, turn.now),
                   [Reply(text=turn.t("button.invalid"))])
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": COMMENT_OVERLAY,
                                 "rated": delivery.id}
    return [Reply(text=turn.t("rating.thanks"),
                  options=(Option("skip", turn.t("rating.no_comment"), number=1),),
                  hint=Hint.SINGLE, context=COMMENT_CONTEXT)]


async def on_comment(turn: Turn, incoming: Incoming) -> list[Reply] | None:
    """The optional comment after a rating; None when the message is something else."""
    delivery_id = turn.conversation.scratch.get("rated")
    if incoming.kind == Kind.CHOICE and incoming.context == COMMENT_CONTEXT:
        _forget_comment(turn)
        return [Reply(text=turn.t("rating.done"))]
    if incoming.kind != Kind.TEXT:
        return None
    comment = parse_short_text(incoming.text, MAX_COMMENT)
    if isinstance(comment, Invalid):
        if comment.reason == "invalid.link":
            return [Reply(text=turn.t(comment.reason))]
        return [Reply(text=turn.t("rating.comment_too_long", max=MAX_COMMENT))]
    delivery, refusal = await _households_delivery(turn, str(delivery_id), "rate")
    _forget_comment(turn)
    if delivery is None:
        return refusal
    delivery.rating_comment = comment
    return [Reply(text=turn.t("rating.done"))]


def _forget_comment(turn: Turn) -> None:
    turn.conversation.forget("overlay", "rated")


# --- staff -----------------------------------------------------------------------------


def needs_review() -> object:
    """Deliveries that wait for a staff decision (shared with the dashboard)."""
    return or_(Delivery.status.in_((DeliveryStatus.FAILED, DeliveryStatus.AWAITING_REVIEW)),
               Delivery.disputed.is_(True),
               (Delivery.locked.is_(True)) & Delivery.status.in_(UNDER_WAY))


async def show_review(turn: Turn, prefix: str | None = None) -> list[Reply]:
    """/review: the first delivery that needs a decision, with the choices it has."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "review")
    head = [prefix] if prefix else []
    # As it is now, even when this update loaded it before someone else changed it.
    delivery = await turn.session.scalar(
        select(Delivery).where(Delivery.aggregator_id.in_(staff.aggregator_ids),
                               needs_review())  # type: ignore[arg-type]
        .order_by(Delivery.updated_at, Delivery.id).limit(1)
        .execution_options(populate_existing=True))
    if delivery is None:
        return [Reply(text="\n\n".join([*head, turn.t("review.none")]))]
    request = await turn.session.get(HelpRequest, delivery.request_id)
    volunteer = await turn.session.get(Volunteer, delivery.volunteer_id) \
        if delivery.volunteer_id else None
    assert request is not None
    place = turn.areas.place(request.village_id)
    lines = [turn.t("review.delivery", reference=request.reference,
                    place=place.display() if place else "",
                    what=amount_text(turn, delivery.category, delivery.quantity),
                    volunteer=as_typed(volunteer.name) if volunteer else "-",
                    status=turn.t(f"delivery.{delivery.status}"))]
    if delivery.disputed:
        lines.append(turn.t("review.disputed"))
        actions = [(WAS_DELIVERED, "review.was_delivered"),
                   (NOT_DELIVERED, "review.not_delivered")]
    elif delivery.status == DeliveryStatus.AWAITING_REVIEW:
        lines.append(turn.t("review.proof", latitude=f"{delivery.proof_latitude:.5f}",
                            longitude=f"{delivery.proof_longitude:.5f}"))
        actions = [(ACCEPT, "review.accept"), (REJECT, "review.reject")]
    elif delivery.locked:
        lines.append(turn.t("review.locked", attempts=MAX_WRONG_CODES))
        actions = [(REASSIGN, "review.reassign"), (CANCEL, "review.cancel")]
    else:
        reason = delivery.failure_reason or ""
        shown = turn.t(f"failure.{reason}") if turn.catalog.has(f"failure.{reason}") \
            else as_typed(reason)
        lines.append(turn.t("review.failed", reason=shown))
        actions = [(REASSIGN, "review.reassign"), (CANCEL, "review.cancel")]
    options = tuple(Option(f"{action}:{delivery.id}", turn.t(key), number=i + 1)
                    for i, (action, key) in enumerate(actions))
    return [Reply(text="\n\n".join([*head, "\n".join(lines)]), options=options,
                  hint=Hint.SINGLE, context=REVIEW_CONTEXT)]


async def on_review_button(turn: Turn, option: str) -> list[Reply]:
    action, _, delivery_id = option.partition(":")
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "review")
    acting = actor(turn, staff)
    delivery, _ = await delivery_of_staff(acting, delivery_id, "review")
    if delivery is None:
        return [Reply(text=turn.t("assign.not_yours"))]
    request = await turn.session.get(HelpRequest, delivery.request_id)
    assert request is not None
    if action == REASSIGN:
        if not reassignable(delivery):
            # Offered for failed and locked deliveries only: not one on its way.
            audit(turn.session, turn.now, "review_reassign", "not allowed now",
                  contact_id=turn.contact.id, aggregator_id=delivery.aggregator_id,
                  detail=request.reference)
            return await show_review(turn, prefix=turn.t("review.changed"))
        audit(turn.session, turn.now, "review_reassign", "done",
              contact_id=turn.contact.id, aggregator_id=delivery.aggregator_id,
              detail=request.reference)
        return [await volunteer_choices(turn, delivery)]
    notices, refusal = await resolve(acting, delivery, action,
                                     turn.settings.max_delivery_failures)
    if refusal == Refusal.ALREADY_DONE:
        return await show_review(turn, prefix=turn.t("review.changed"))
    if refusal is not None:
        return [Reply(text=turn.t("button.invalid"))]
    replies = [notice_reply(turn.catalog, turn.language, n) for n in notices]
    return [*replies, *await show_review(turn, prefix=turn.t("review.resolved",
                                                              reference=request.reference))]


async def show_ratings(turn: Turn) -> list[Reply]:
    """/ratings: how households rated the help of the staff member's aggregators."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "ratings")
    rated = Delivery.rating.is_not(None)
    summary = (await turn.session.execute(
        select(func.count(), func.avg(Delivery.rating))
        .where(Delivery.aggregator_id.in_(staff.aggregator_ids), rated))).one()
    if not summary[0]:
        return [Reply(text=turn.t("ratings.none"))]
    latest = (await turn.session.execute(
        select(HelpRequest.reference, Delivery.rating, Delivery.rating_comment)
        .join(HelpRequest, HelpRequest.id == Delivery.request_id)
        .where(Delivery.aggregator_id.in_(staff.aggregator_ids), rated)
        .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
        .limit(turn.settings.page_size))).all()
    lines = [turn.t("ratings.summary", count=summary[0], average=f"{summary[1]:.1f}")]
    lines += [turn.t("ratings.line", reference=reference, stars=stars,
                     comment=as_typed(comment) if comment else "-")
              for reference, stars, comment in latest]
    return [Reply(text="\n".join(lines))]
