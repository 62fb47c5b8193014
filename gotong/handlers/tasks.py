"""Delivery tasks: staff assign allocated deliveries (/assign), volunteers see and take
them (/tasks), and carry each through: picked up, on the way, delivered (with the
household's code, or a photo and the place) or failed (with why).

A volunteer sees a household's name, phone and address only in their own tasks, from
when they picked the aid up until a day after delivery; open deliveries and tasks only
taken show the kelurahan and RW alone. A volunteer has at most as many tasks under way as
they carry (and `volunteer.max_open_tasks`), tasks they reported failed after picking
them up counted among them for `volunteer.failed_hold_hours`. Every button
is checked on the server against the person's volunteer or staff memberships.
"""

from __future__ import annotations

from typing import Any

from gotong.handlers.messages import Hint, Incoming, Kind, Option, Reply
from gotong.handlers.notices import notice_reply
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import actor, coverage, not_staff, refuse
from gotong.handlers.staff_actions import Refusal, assign_volunteer
from gotong.handlers.stock import amount_text
from gotong.handlers.turn import Turn, refusing
from gotong.handlers.validators import Invalid, parse_id, parse_short_text, small_number
from gotong.models.audit import audit
from gotong.models.delivery import FAILURE_REASONS, UNDER_WAY, Delivery, DeliveryStatus
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import Notice
from gotong.models.tasks import (
    CODE_DIGITS,
    advance,
    assign,
    confirm_with_code,
    fail,
    open_deliveries,
    open_tasks,
    shows_details,
    submit_proof,
    tasks_held,
    tasks_of,
    volunteer_villages,
    volunteers_for,
)
from gotong.models.volunteer import Volunteer, VolunteerStatus, volunteers_of

TASK_CONTEXT = "tk"
ASSIGN_CONTEXT = "as"
# Scratch key of a task waiting for a code, a photo, a place, or a reason typed.
TASK_OVERLAY = "task"
SHOW, TAKE, PICKED_UP, ON_THE_WAY, DELIVERED, FAILED = "show", "take", "up", "way", "done", \
    "fail"
NO_CODE, REASON, OTHER = "nocode", "why", "other"
# Buttons of the questions a task asks (code, reason).
QUESTION_CONTEXT = "tkq"
PICK, TO = "d", "v"


def _reply_notices(turn: Turn, notices: list[Notice]) -> list[Reply]:
    return [notice_reply(turn.catalog, turn.language, n) for n in notices]


async def _volunteers(turn: Turn) -> list[Volunteer]:
    return await volunteers_of(turn.session, turn.contact.id)


def _not_volunteer(turn: Turn, action: str) -> list[Reply]:
    audit(turn.session, turn.now, action, "not volunteer", contact_id=turn.contact.id)
    return [Reply(text=turn.t("volunteer.only"))]


def _status(turn: Turn, delivery: Delivery) -> str:
    return turn.t(f"delivery.{delivery.status}")


async def _area_line(turn: Turn, delivery: Delivery) -> str:
    """Kelurahan and RW only: what anyone but the volunteer of the task sees."""
    request = await turn.session.get(HelpRequest, delivery.request_id)
    assert request is not None
    village = turn.areas.get(request.village_id)
    return turn.t("task.area_line", reference=request.reference,
                  what=amount_text(turn, delivery.category, delivery.quantity),
                  kelurahan=village.name if village else "", rw=request.rw,
                  status=_status(turn, delivery))


# --- the volunteer's list ------------------------------------------------------------


async def show_tasks(turn: Turn, prefix: str | None = None) -> list[Reply]:
    """/tasks: the volunteer's tasks by status, and open deliveries they can take."""
    volunteers = await _volunteers(turn)
    if not volunteers:
        pending = await volunteers_of(turn.session, turn.contact.id, (VolunteerStatus.PENDING,))
        if pending:
            return [Reply(text=turn.t("volunteer.still_pending"))]
        return _not_volunteer(turn, "tasks")
    mine = await tasks_of(turn.session, [v.id for v in volunteers])
    villages: set[int] = set()
    for volunteer in volunteers:
        villages |= await volunteer_villages(turn.areas, volunteer)
    available = await open_deliveries(turn.session, [v.aggregator_id for v in volunteers],
                                      villages, turn.settings.page_size)
    lines = [prefix] if prefix else []
    options: list[Option] = []
    for deliveries, title, action, label in ((mine, "task.mine", SHOW, "task.open"),
                                             (available, "task.available", TAKE,
                                              "task.take")):
        if deliveries:
            lines.append(turn.t(title))
        for delivery in deliveries:
            n = len(options) + 1
            lines.append(f"{n}. " + await _area_line(turn, delivery))
            options.append(Option(f"{action}:{delivery.id}", turn.t(label, n=n), number=n))
    if not options:
        lines.append(turn.t("task.none"))
    return [Reply(text="\n".join(lines), options=tuple(options),
                  hint=Hint.SINGLE if options else Hint.NONE,
                  context=TASK_CONTEXT if options else None)]


async def _own_task(turn: Turn, delivery_id: str, action: str
                    ) -> tuple[Delivery | None, Volunteer | None, list[Reply]]:
    """The delivery, if it is one of this volunteer's tasks; else the refusal."""
    volunteers = await _volunteers(turn)
    if not volunteers:
        return None, None, _not_volunteer(turn, action)
    key = parse_id(delivery_id)
    delivery = await turn.session.get(Delivery, key, populate_existing=True) if key else None
    volunteer = next((v for v in volunteers
                      if delivery is not None and v.id == delivery.volunteer_id), None)
    if delivery is None or volunteer is None:
        audit(turn.session, turn.now, action, "not their task", contact_id=turn.contact.id,
              aggregator_id=volunteers[0].aggregator_id)
        return None, None, [Reply(text=turn.t("task.not_yours"))]
    return delivery, volunteer, []


async def _changed(turn: Turn, delivery: Delivery, volunteer: Volunteer) -> list[Reply]:
    """The task as it is now, when it changed before the volunteer's step: what the check
    before a step says, and what a step refused at the moment of writing says (the
    delivery in memory is then still as the check read it). A question the volunteer
    was asked about it no longer stands."""
    _forget(turn)
    await turn.session.refresh(delivery)
    if delivery.volunteer_id != volunteer.id:
        return [Reply(text=turn.t("task.not_yours"))]
    return [await task_card(turn, delivery, turn.t("task.changed"))]


async def task_card(turn: Turn, delivery: Delivery, prefix: str | None = None) -> Reply:
    """One task with the household's details (while allowed) and the next steps."""
    request = await turn.session.get(HelpRequest, delivery.request_id)
    assert request is not None
    head = [prefix] if prefix else []
    if shows_details(delivery, turn.now):
        place = turn.areas.place(request.village_id)
        details = turn.t("task.details", reference=request.reference,
                         name=as_typed(request.head_name),
                         phone=request.phone, street=as_typed(request.street), rt=request.rt,
                         rw=request.rw, place=place.display() if place else "",
                         what=amount_text(turn, delivery.category, delivery.quantity),
                         needs=", ".join(turn.t(f"need.{n}") for n in request.needs),
                         status=_status(turn, delivery))
    else:
        details = await _area_line(turn, delivery)
        if delivery.status == DeliveryStatus.ASSIGNED:
            details += "\n" + turn.t("task.details_after_pickup")
    steps: list[tuple[str, str]] = []
    if delivery.status in UNDER_WAY and not delivery.locked:
        if delivery.status == DeliveryStatus.ASSIGNED:
            steps.append((PICKED_UP, "task.picked_up"))
        if delivery.status != DeliveryStatus.ON_THE_WAY:
            steps.append((ON_THE_WAY, "task.on_the_way"))
        steps += [(DELIVERED, "task.delivered"), (FAILED, "task.failed")]
    options = tuple(Option(f"{action}:{delivery.id}", turn.t(key), number=i + 1)
                    for i, (action, key) in enumerate(steps))
    return Reply(text="\n\n".join([*head, details]), options=options,
                 hint=Hint.SINGLE if options else Hint.NONE,
                 context=TASK_CONTEXT if options else None)


async def on_task_button(turn: Turn, option: str) -> list[Reply]:
    action, _, delivery_id = option.partition(":")
    if action == TAKE:
        return await _take(turn, delivery_id)
    if action not in (SHOW, PICKED_UP, ON_THE_WAY, DELIVERED, FAILED):
        return [Reply(text=turn.t("button.invalid"))]
    delivery, volunteer, refusal = await _own_task(turn, delivery_id, f"task_{action}")
    if delivery is None or volunteer is None:
        return refusal
    if action == SHOW:
        return [await task_card(turn, delivery)]
    if delivery.status not in UNDER_WAY or delivery.locked:
        return await _changed(turn, delivery, volunteer)
    if action in (PICKED_UP, ON_THE_WAY):
        status = DeliveryStatus.PICKED_UP if action == PICKED_UP else DeliveryStatus.ON_THE_WAY
        notices = await refusing(advance(turn.session, delivery, status, volunteer, turn.now),
                                 lambda: _changed(turn, delivery, volunteer))
        return [*_reply_notices(turn, notices), await task_card(turn, delivery)]
    if action == DELIVERED:
        _ask(turn, delivery, "code")
        return [Reply(text=turn.t("task.ask_code"),
                      options=(Option(f"{NO_CODE}:{delivery.id}", turn.t("task.no_code"),
                                      number=1),),
                      hint=Hint.SINGLE, context=QUESTION_CONTEXT)]
    _ask(turn, delivery, "reason")
    options = [Option(f"{REASON}:{r}:{delivery.id}", turn.t(f"failure.{r}"), number=i + 1)
               for i, r in enumerate(FAILURE_REASONS)]
    options.append(Option(f"{REASON}:{OTHER}:{delivery.id}", turn.t("task.other_reason"),
                          number=len(options) + 1))
    return [Reply(text=turn.t("task.ask_reason"), options=tuple(options), hint=Hint.SINGLE,
                  context=QUESTION_CONTEXT)]


def _ask(turn: Turn, delivery: Delivery, waiting: str) -> None:
    turn.conversation.scratch = {**turn.conversation.scratch, "overlay": TASK_OVERLAY,
                                 "task": {"delivery": delivery.id, "waiting": waiting}}


def _forget(turn: Turn) -> None:
    turn.conversation.forget("overlay", "task")


async def _take(turn: Turn, delivery_id: str) -> list[Reply]:
    """A volunteer takes an open delivery of their aggregator in their area."""
    volunteers = await _volunteers(turn)
    if not volunteers:
        return _not_volunteer(turn, "take")
    key = parse_id(delivery_id)
    delivery = await turn.session.get(Delivery, key, populate_existing=True) if key else None
    request = await turn.session.get(HelpRequest, delivery.request_id) if delivery else None
    volunteer = None
    if delivery is not None and request is not None:
        for candidate in volunteers:
            if candidate.aggregator_id == delivery.aggregator_id and request.village_id in \
                    await volunteer_villages(turn.areas, candidate):
                volunteer = candidate
    if delivery is None or volunteer is None:
        audit(turn.session, turn.now, "take", "outside area", contact_id=turn.contact.id,
              aggregator_id=volunteers[0].aggregator_id)
        return [Reply(text=turn.t("task.not_yours"))]
    taken = [Reply(text=turn.t("task.taken"))]
    if delivery.status != DeliveryStatus.ALLOCATED or delivery.volunteer_id is not None:
        return taken
    # No more at once than they carry: taking a whole area's tasks would show them every
    # household's details once picked up, and keep the aid from other volunteers.
    # Tasks failed after pick-up count for a while too: failing them instead of handing
    # them back must not free room to read more households' details.
    limit = volunteer.task_limit(turn.settings.max_open_tasks)
    under_way, failed = await tasks_held(turn.session, volunteer, turn.now,
                                         turn.settings.failed_hold)
    if under_way + failed >= limit:
        audit(turn.session, turn.now, "take", "too many open", contact_id=turn.contact.id,
              aggregator_id=delivery.aggregator_id,
              detail=f"{under_way} + {failed} failed of {limit}")
        if failed:
            hours = max(1, round(turn.settings.failed_hold.total_seconds() / 3600))
            return [Reply(text=turn.t("task.too_many_failed", count=under_way,
                                      failed=failed, limit=limit, hours=hours))]
        return [Reply(text=turn.t("task.too_many", count=under_way, limit=limit))]
    notices = await refusing(assign(turn.session, turn.areas, delivery, volunteer,
                                    turn.contact.id, turn.now), taken)
    audit(turn.session, turn.now, "take", "done", contact_id=turn.contact.id,
          aggregator_id=delivery.aggregator_id)
    return [*_reply_notices(turn, notices), await task_card(turn, delivery,
                                                            turn.t("task.yours"))]


async def on_task_answer(turn: Turn, incoming: Incoming) -> list[Reply] | None:
    """The code, a tap on "no code", the photo, the place, or the reason for a failure;
    None when the message answers none of these (the question then ends)."""
    state: dict[str, Any] = dict(turn.conversation.scratch.get("task") or {})
    waiting = state.get("waiting")
    delivery, volunteer, refusal = await _own_task(turn, str(state.get("delivery", "")),
                                                   f"task_{waiting}")
    if delivery is None or volunteer is None:
        _forget(turn)
        return refusal
    if incoming.kind == Kind.CHOICE and incoming.context == QUESTION_CONTEXT:
        return await _on_question_button(turn, delivery, volunteer, incoming.option or "")
    if waiting == "code" and incoming.kind == Kind.TEXT:
        return await _check_code(turn, delivery, volunteer, incoming.text)
    if waiting == "photo" and incoming.kind == Kind.PHOTO and incoming.media_id:
        _ask(turn, delivery, "place")
        turn.conversation.scratch = {**turn.conversation.scratch, "task": {
            "delivery": delivery.id, "waiting": "place", "photo": incoming.media_id}}
        return [_ask_place(turn)]
    if waiting == "place" and incoming.kind == Kind.LOCATION \
            and incoming.latitude is not None and incoming.longitude is not None:
        _forget(turn)
        await refusing(submit_proof(turn.session, delivery, volunteer, str(state.get("photo")),
                                    incoming.latitude, incoming.longitude, turn.now),
                       lambda: _changed(turn, delivery, volunteer))
        return [await task_card(turn, delivery, turn.t("task.proof_sent"))]
    if waiting == "other" and incoming.kind == Kind.TEXT:
        reason = parse_short_text(incoming.text, 200)
        if isinstance(reason, Invalid):
            return [Reply(text=turn.t("task.ask_other_reason"))]
        return await _failed(turn, delivery, volunteer, reason)
    if waiting == "photo" and incoming.kind != Kind.COMMAND:
        return [Reply(text=turn.t("task.ask_photo"))]
    if waiting == "place" and incoming.kind != Kind.COMMAND:
        return [_ask_place(turn)]
    return None


def _ask_place(turn: Turn) -> Reply:
    return Reply(text=turn.t("task.ask_place"), hint=Hint.LOCATION,
                 contact_label=turn.t("task.share_place"))


async def _on_question_button(turn: Turn, delivery: Delivery, volunteer: Volunteer,
                              option: str) -> list[Reply]:
    parts = option.split(":")
    if parts[0] == NO_CODE and parts[1:] == [str(delivery.id)]:
        _ask(turn, delivery, "photo")
        return [Reply(text=turn.t("task.ask_photo"))]
    if parts[0] == REASON and len(parts) == 3 and parts[2] == str(delivery.id):
        if parts[1] == OTHER:
            _ask(turn, delivery, "other")
            return [Reply(text=turn.t("task.ask_other_reason"))]
        if parts[1] in FAILURE_REASONS:
            return await _failed(turn, delivery, volunteer, parts[1])
    return [Reply(text=turn.t("button.stale"))]


async def _check_code(turn: Turn, delivery: Delivery, volunteer: Volunteer, text: str
                      ) -> list[Reply]:
    code = "".join(text.split())
    if len(code) != CODE_DIGITS or small_number(code) is None:
        # Not a code at all (a greeting, a note): no try is used up.
        return [Reply(text=turn.t("task.code_format"),
                      options=(Option(f"{NO_CODE}:{delivery.id}", turn.t("task.no_code"),
                                      number=1),),
                      hint=Hint.SINGLE, context=QUESTION_CONTEXT)]
    check = await refusing(confirm_with_code(turn.session, turn.areas, delivery, volunteer,
                                             code, turn.now),
                           lambda: _changed(turn, delivery, volunteer))
    if check.delivered:
        _forget(turn)
        audit(turn.session, turn.now, "deliver", "done", contact_id=turn.contact.id,
              aggregator_id=delivery.aggregator_id)
        return [await task_card(turn, delivery, turn.t("task.thanks"))]
    audit(turn.session, turn.now, "deliver", "wrong code", contact_id=turn.contact.id,
          aggregator_id=delivery.aggregator_id)
    if check.attempts_left <= 0:
        _forget(turn)
        return [Reply(text=turn.t("task.locked"))]
    return [Reply(text=turn.t("task.wrong_code", left=check.attempts_left),
                  options=(Option(f"{NO_CODE}:{delivery.id}", turn.t("task.no_code"),
                                  number=1),),
                  hint=Hint.SINGLE, context=QUESTION_CONTEXT)]


async def _failed(turn: Turn, delivery: Delivery, volunteer: Volunteer, reason: str
                  ) -> list[Reply]:
    _forget(turn)
    await refusing(fail(turn.session, delivery, reason, volunteer.contact_id, turn.now,
                        turn.settings.max_delivery_failures),
                   lambda: _changed(turn, delivery, volunteer))
    audit(turn.session, turn.now, "fail", "done", contact_id=turn.contact.id,
          aggregator_id=delivery.aggregator_id, detail=reason)
    return [Reply(text=turn.t("task.failed_noted"))]


# --- staff assign ---------------------------------------------------------------------


async def show_assignable(turn: Turn, prefix: str | None = None) -> list[Reply]:
    """/assign: allocated deliveries without a volunteer, oldest first."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "assign")
    waiting = await open_deliveries(turn.session, staff.aggregator_ids, staff.villages,
                                    turn.settings.page_size)
    head = [prefix] if prefix else []
    if not waiting:
        return [Reply(text="\n\n".join([*head, turn.t("assign.none")]))]
    lines = [turn.t("assign.title")]
    lines += [f"{i + 1}. " + await _area_line(turn, d) for i, d in enumerate(waiting)]
    options = tuple(Option(f"{PICK}:{d.id}", turn.t("assign.pick", n=i + 1), number=i + 1)
                    for i, d in enumerate(waiting))
    return [Reply(text="\n\n".join([*head, "\n".join(lines)]), options=options,
                  hint=Hint.SINGLE, context=ASSIGN_CONTEXT)]


async def _staff_delivery(turn: Turn, delivery_id: str, action: str
                          ) -> tuple[Delivery | None, list[Reply]]:
    staff = await coverage(turn)
    if not staff.is_staff:
        return None, not_staff(turn, action)
    key = parse_id(delivery_id)
    delivery = await turn.session.get(Delivery, key, populate_existing=True) if key else None
    if delivery is None or delivery.aggregator_id not in staff.aggregator_ids:
        return None, refuse(turn, action, "not their aggregator", "assign.not_yours",
                            staff.aggregator_ids[0])
    return delivery, []


async def volunteer_choices(turn: Turn, delivery: Delivery) -> Reply:
    """The volunteers covering the household's kelurahan, least busy first."""
    request = await turn.session.get(HelpRequest, delivery.request_id)
    assert request is not None
    candidates = [v for v in await volunteers_for(turn.session, turn.areas, delivery,
                                                  request.village_id)
                  if v.id != delivery.volunteer_id][:turn.settings.page_size]
    if not candidates:
        return Reply(text=turn.t("assign.no_volunteer"))
    busy = await open_tasks(turn.session, [v.id for v in candidates])
    lines = [await _area_line(turn, delivery), turn.t("assign.choose")]
    lines += [turn.t("assign.volunteer", n=i + 1, name=as_typed(v.name),
                     travel=turn.t(f"travel.{v.travel}"), busy=busy.get(v.id, 0))
              for i, v in enumerate(candidates)]
    options = tuple(Option(f"{TO}:{delivery.id}:{v.id}", as_typed(v.name), number=i + 1)
                    for i, v in enumerate(candidates))
    return Reply(text="\n".join(lines), options=options, hint=Hint.SINGLE,
                 context=ASSIGN_CONTEXT)


async def on_assign_button(turn: Turn, option: str) -> list[Reply]:
    parts = option.split(":")
    if parts[0] == PICK and len(parts) == 2:
        delivery, refusal = await _staff_delivery(turn, parts[1], "assign")
        if delivery is None:
            return refusal
        return [await volunteer_choices(turn, delivery)]
    if parts[0] != TO or len(parts) != 3:
        return [Reply(text=turn.t("button.invalid"))]
    delivery, refusal = await _staff_delivery(turn, parts[1], "assign")
    if delivery is None:
        return refusal
    volunteer, notices, why_not = await assign_volunteer(
        actor(turn, await coverage(turn)), delivery, parts[2])
    if why_not == Refusal.NOT_YOURS or volunteer is None:
        return [Reply(text=turn.t("assign.not_covering"))]
    if why_not is not None:
        return [Reply(text=turn.t("assign.changed"))]
    request = await turn.session.get(HelpRequest, delivery.request_id)
    assert request is not None
    done = turn.t("assign.done", reference=request.reference, name=as_typed(volunteer.name))
    return [*_reply_notices(turn, notices), *await show_assignable(turn, prefix=done)]
