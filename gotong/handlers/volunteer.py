"""Volunteers sign up with an aggregator's invite code; staff approve them, invite more,
and a volunteer can stop at any time (their deliveries under way go back to staff)."""

from __future__ import annotations

import logging
from datetime import timedelta

from gotong.handlers.forms import Accept, Answers, Choice, Field, FieldKind, Form, Parsed
from gotong.handlers.messages import Hint, Kind, Option, Reply
from gotong.handlers.plain import as_typed
from gotong.handlers.staff import (
    begin_invited,
    coverage,
    not_staff,
    refuse,
)
from gotong.handlers.turn import Turn, refusing
from gotong.handlers.validators import (
    Invalid,
    parse_id,
    parse_int_in_range,
    parse_person_name,
    parse_phone,
)
from gotong.models.aggregator import (
    InviteRole,
    covered_areas,
    create_invite,
    get_aggregator,
    use_invite,
)
from gotong.models.area import AreaLevel
from gotong.models.audit import audit
from gotong.models.notifications import Event, Subject, announce
from gotong.models.tasks import leave
from gotong.models.volunteer import (
    MAX_CAPACITY,
    TRAVEL_MODES,
    NewVolunteer,
    Volunteer,
    VolunteerStatus,
    decide_volunteer,
    pending_volunteers,
    register_volunteer,
    volunteers_of,
)

log = logging.getLogger(__name__)

# Button context of the approval card.
APPROVAL_CONTEXT = "vol"
APPROVE, DECLINE = "ap", "dc"
# An invite staff make in chat admits one volunteer within a week.
CHAT_INVITE_VALID = timedelta(days=7)
LOADED = "volunteer_areas"


async def _prepare(turn: Turn) -> None:
    """The areas the volunteer can choose: those the aggregator covers, at kecamatan
    level (or kelurahan, where it covers single kelurahan)."""
    aggregator_id = turn.conversation.answers.get("aggregator")
    if not isinstance(aggregator_id, int):
        turn.loaded[LOADED] = []
        return
    covered = (await covered_areas(turn.session, [aggregator_id])).get(aggregator_id, [])
    choices: dict[int, str] = {}
    for area_id in covered:
        entry = turn.areas.get(area_id)
        if entry is None:
            continue
        shown = turn.areas.children(area_id) if entry.level == AreaLevel.REGENCY else [entry]
        choices.update((a.id, a.name) for a in shown)
    turn.loaded[LOADED] = [Choice(str(i), label=name)
                           for i, name in sorted(choices.items(), key=lambda c: c[1])]


def _area_choices(turn: Turn, answers: Answers) -> list[Choice]:
    loaded: list[Choice] = turn.loaded.get(LOADED, [])
    return loaded


def _parse_name(turn: Turn, text: str, answers: Answers) -> Parsed:
    name = parse_person_name(text)
    return name if isinstance(name, Invalid) else Accept({"name": name})


def _parse_phone(turn: Turn, text: str, answers: Answers) -> Parsed:
    # Households will be called from it: only the phone shared from the chat app is taken.
    if turn.incoming.kind != Kind.CONTACT or not turn.incoming.phone_is_own:
        return Invalid("volunteer.share_phone")
    phone = parse_phone(text)
    return phone if isinstance(phone, Invalid) else Accept({"phone": phone})


def _parse_capacity(turn: Turn, text: str, answers: Answers) -> Parsed:
    capacity = parse_int_in_range(text, 1, MAX_CAPACITY)
    return capacity if isinstance(capacity, Invalid) else Accept({"capacity": capacity})


def _show_areas(turn: Turn, answers: Answers) -> str:
    names = {c.id: c.render(turn) for c in _area_choices(turn, answers)}
    return ", ".join(names.get(a, "-") for a in answers.get("areas", ()))


async def _submit(turn: Turn, answers: Answers) -> list[Reply]:
    invite = await use_invite(turn.session, int(answers["invite"]), turn.now)
    if invite is None:
        return [Reply(text=turn.t("volunteer.invite_gone"))]
    volunteer = await register_volunteer(turn.session, turn.contact.id, NewVolunteer(
        aggregator_id=invite.aggregator_id, name=answers["name"], phone=answers["phone"],
        area_ids=[int(a) for a in answers["areas"]], travel=answers["travel"],
        capacity=answers["capacity"], approved=invite.pre_approved, invite_id=invite.id),
        turn.now)
    aggregator = await get_aggregator(turn.session, invite.aggregator_id)
    audit(turn.session, turn.now, "volunteer_signup", "done", contact_id=turn.contact.id,
          aggregator_id=aggregator.id)
    log.info("a volunteer signed up with aggregator %d", aggregator.id)
    if volunteer.status == VolunteerStatus.APPROVED:
        return [Reply(text=turn.t("volunteer.approved_now", name=aggregator.name))]
    await announce(turn.session, Event.VOLUNTEER_PENDING,
                   Subject(aggregator_id=aggregator.id, volunteer_id=volunteer.id), turn.now,
                   turn.contact.id)
    return [Reply(text=turn.t("volunteer.pending", name=aggregator.name))]


VOLUNTEER_SIGNUP = Form(
    name="volunteer_signup",
    code="vs",
    summary_title="volunteer.summary_title",
    submit=_submit,
    prepare=_prepare,
    state_keys=frozenset({"invite", "aggregator"}),
    fields=(
        Field("name", FieldKind.TEXT, "volunteer.name", label="field.volunteer_name",
              parse_text=_parse_name, show=lambda t, a: str(a["name"])),
        Field("phone", FieldKind.PHONE, "volunteer.phone", label="field.phone",
              parse_text=_parse_phone, show=lambda t, a: str(a["phone"])),
        Field("areas", FieldKind.MULTI, "volunteer.areas", label="field.volunteer_areas",
              choices=_area_choices, min_selected=1, show=_show_areas),
        Field("travel", FieldKind.CHOICE, "volunteer.travel", label="field.travel",
              choices=tuple(Choice(m, f"travel.{m}") for m in TRAVEL_MODES),
              show=lambda t, a: t.t(f"travel.{a['travel']}")),
        Field("capacity", FieldKind.TEXT, "volunteer.capacity", label="field.capacity",
              parse_text=_parse_capacity, show=lambda t, a: str(a["capacity"])),
    ),
)


async def sign_up(turn: Turn, code: str) -> list[Reply]:
    """/volunteer CODE: check the code (not used up until the form is sent) and ask."""
    return await begin_invited(turn, code, InviteRole.VOLUNTEER, VOLUNTEER_SIGNUP, "volunteer.how",
                               "volunteer.welcome")


async def invite_volunteer(turn: Turn) -> list[Reply]:
    """/invite_volunteer: staff get a code for one volunteer of their aggregator."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "invite_volunteer")
    aggregator_id = staff.aggregator_ids[0]
    code = await create_invite(turn.session, aggregator_id, InviteRole.VOLUNTEER, 1,
                               turn.now + CHAT_INVITE_VALID, turn.now)
    audit(turn.session, turn.now, "invite_volunteer", "done", contact_id=turn.contact.id,
          aggregator_id=aggregator_id)
    return [Reply(text=turn.t("volunteer.invite_code", code=code))]


async def show_pending(turn: Turn, prefix: str | None = None) -> list[Reply]:
    """/volunteers: the first volunteer waiting for approval, with the buttons."""
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "volunteers")
    head = [prefix] if prefix else []
    waiting = await pending_volunteers(turn.session, staff.aggregator_ids, 1)
    if not waiting:
        return [Reply(text="\n\n".join([*head, turn.t("volunteer.none_pending")]))]
    volunteer = waiting[0]
    areas = ", ".join(entry.name for entry in
                      filter(None, (turn.areas.get(a.area_id) for a in volunteer.areas)))
    card = turn.t("volunteer.card", name=as_typed(volunteer.name), phone=volunteer.phone,
                  areas=areas,
                  travel=turn.t(f"travel.{volunteer.travel}"), capacity=volunteer.capacity)
    options = (Option(f"{APPROVE}:{volunteer.id}", turn.t("volunteer.approve"), number=1),
               Option(f"{DECLINE}:{volunteer.id}", turn.t("volunteer.decline"), number=2))
    return [Reply(text="\n\n".join([*head, card]), options=options, hint=Hint.SINGLE,
                  context=APPROVAL_CONTEXT)]


async def on_approval(turn: Turn, option: str) -> list[Reply]:
    action, _, volunteer_id = option.partition(":")
    staff = await coverage(turn)
    if not staff.is_staff:
        return not_staff(turn, "approve_volunteer")
    key = parse_id(volunteer_id)
    volunteer = await turn.session.get(Volunteer, key) if key else None
    if action not in (APPROVE, DECLINE) or volunteer is None:
        return [Reply(text=turn.t("button.invalid"))]
    if volunteer.aggregator_id not in staff.aggregator_ids:
        return refuse(turn, "approve_volunteer", "not their aggregator",
                      "volunteer.not_yours", staff.aggregator_ids[0])
    decided = [Reply(text=turn.t("volunteer.already_decided", name=as_typed(volunteer.name)))]
    if volunteer.status != VolunteerStatus.PENDING:
        return decided
    approved = action == APPROVE
    await refusing(decide_volunteer(turn.session, volunteer, approved, turn.contact.id,
                                    turn.now), decided)
    audit(turn.session, turn.now, "approve_volunteer" if approved else "decline_volunteer",
          "done", contact_id=turn.contact.id, aggregator_id=volunteer.aggregator_id)
    await announce(turn.session, Event.VOLUNTEER_APPROVED if approved
                   else Event.VOLUNTEER_DECLINED,
                   Subject(contact_id=volunteer.contact_id, volunteer_id=volunteer.id),
                   turn.now, turn.contact.id)
    done = turn.t("volunteer.approved" if approved else "volunteer.declined",
                  name=as_typed(volunteer.name))
    return await show_pending(turn, prefix=done)


async def stop_volunteering(turn: Turn) -> list[Reply]:
    """/leave: no more tasks; deliveries under way return to staff."""
    memberships = await volunteers_of(turn.session, turn.contact.id,
                                      (VolunteerStatus.APPROVED, VolunteerStatus.PENDING))
    if not memberships:
        return [Reply(text=turn.t("volunteer.not_volunteer"))]
    for volunteer in memberships:
        await leave(turn.session, volunteer, turn.now)
        audit(turn.session, turn.now, "leave", "done", contact_id=turn.contact.id,
              aggregator_id=volunteer.aggregator_id)
    return [Reply(text=turn.t("volunteer.left"))]
