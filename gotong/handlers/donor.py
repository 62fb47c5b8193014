"""The donor's pledge: who gives, what and how much, for which area, through which
aggregator, and how it is handed over; then a pledge code."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import func, select

from gotong.handlers import on_file
from gotong.handlers.forms import (
    Accept,
    Answers,
    Choice,
    ChoiceHandler,
    Field,
    FieldKind,
    Form,
    Parsed,
)
from gotong.handlers.messages import Reply
from gotong.handlers.stock import parse_count, quantity_text
from gotong.handlers.turn import Turn
from gotong.handlers.validators import (
    Invalid,
    parse_person_name,
    parse_phone,
    parse_short_text,
)
from gotong.models.aggregator import covered_areas
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import (
    CATEGORIES,
    Handover,
    NewPledge,
    aggregators_covering,
)
from gotong.models.request_status import RequestStatus
from gotong.models.stock import make_pledge, stock_of

log = logging.getLogger(__name__)

ANYWHERE = "any"
WHOLE_KOTA = "all"
CHOOSE_FOR_ME = "auto"
LOADED = "aggregators"  # turn.loaded key: the aggregators and what they cover
# turn.loaded key: the aggregator "choose for me" picks, read while that is asked.
CHOSEN = "chosen_for_me"
# An aggregator answer "auto:<id>" is the one chosen for the donor (said so in the summary).
CHOSEN_PREFIX = CHOOSE_FOR_ME + ":"


@dataclass(frozen=True)
class Covering:
    id: int
    name: str
    posko_address: str
    posko_hours: str
    villages: frozenset[int]


async def _prepare(turn: Turn) -> None:
    """Aggregators change only by the operator's hand; read them for each update."""
    aggregators = await aggregators_covering(turn.session, None)
    covered = await covered_areas(turn.session)
    turn.loaded[LOADED] = [
        Covering(a.id, a.name, a.posko_address, a.posko_hours,
                 frozenset(turn.areas.villages_under(covered.get(a.id, ()))))
        for a in aggregators]
    if turn.conversation.step == "aggregator":
        # Told before the donor confirms, so chosen while the question is open.
        candidates = _covering(turn, turn.conversation.answers)
        if len(candidates) > 1 and "category" in turn.conversation.answers:
            turn.loaded[CHOSEN] = await _choose_for_me(turn, candidates,
                                                       turn.conversation.answers)


def _target_area(answers: Answers) -> int | None:
    """The kecamatan or kota the donor chose, or None for anywhere."""
    kecamatan = answers.get("kecamatan")
    if kecamatan not in (None, WHOLE_KOTA):
        return int(kecamatan)
    target = answers.get("target")
    return None if target in (None, ANYWHERE) else int(target)


def _target_villages(turn: Turn, answers: Answers) -> Collection[int] | None:
    area = _target_area(answers)
    return None if area is None else turn.areas.villages_under([area])


def _covering(turn: Turn, answers: Answers) -> list[Covering]:
    villages = _target_villages(turn, answers)
    everyone: list[Covering] = turn.loaded.get(LOADED, [])
    if villages is None:
        return everyone
    return [a for a in everyone if a.villages & set(villages)]


# --- parsers and choices --------------------------------------------------------------


def _parse_name(turn: Turn, text: str, answers: Answers) -> Parsed:
    name = parse_short_text(text, 120) if answers.get("kind") == "organisation" \
        else parse_person_name(text)
    return name if isinstance(name, Invalid) else Accept({"name": name})


def _parse_quantity(turn: Turn, text: str, answers: Answers) -> Parsed:
    quantity = parse_count(turn, text, answers.get("category", "money"))
    return quantity if isinstance(quantity, Invalid) else Accept({"quantity": quantity})


def _targets(turn: Turn, answers: Answers) -> list[Choice]:
    return [Choice(ANYWHERE, "donor.anywhere"),
            *(Choice(str(a.id), label=a.name) for a in turn.areas.regencies())]


def _kecamatan(turn: Turn, answers: Answers) -> list[Choice]:
    kota = answers.get("target")
    if kota in (None, ANYWHERE):
        return []
    return [Choice(WHOLE_KOTA, "donor.whole_kota"),
            *(Choice(str(a.id), label=a.name) for a in turn.areas.children(int(kota)))]


def _on_target(field: str) -> ChoiceHandler:
    def on_choice(turn: Turn, option: str, answers: Answers) -> Parsed:
        chosen = {**answers, field: option}
        if not _covering(turn, chosen):
            return Invalid("donor.no_aggregator", {})
        return Accept({field: option})

    return on_choice


def _aggregators(turn: Turn, answers: Answers) -> list[Choice]:
    choices = [Choice(str(a.id), label=a.name) for a in _covering(turn, answers)]
    return [*choices, Choice(CHOOSE_FOR_ME, "donor.choose_for_me")] if len(choices) > 1 \
        else choices


def _on_aggregator(turn: Turn, option: str, answers: Answers) -> Parsed:
    if option != CHOOSE_FOR_ME:
        return Accept({"aggregator": option})
    chosen: Covering | None = turn.loaded.get(CHOSEN)
    if chosen is None:
        return Invalid("donor.no_aggregator")
    return Accept({"aggregator": f"{CHOSEN_PREFIX}{chosen.id}"}, note="donor.chosen_for_you",
                  note_params={"name": chosen.name})


def _told_aggregator(turn: Turn, answers: Answers, option: str) -> str:
    """The one aggregator that can receive the gift, with where its posko is."""
    only = _aggregator(turn, option)
    if only is None:
        return ""
    return turn.t("donor.aggregator_only", name=only.name, address=only.posko_address,
                  hours=only.posko_hours or "-")


def _aggregator(turn: Turn, answer: object) -> Covering | None:
    """The aggregator an answer names (chosen by the donor or for them)."""
    wanted = str(answer).removeprefix(CHOSEN_PREFIX)
    return next((a for a in turn.loaded.get(LOADED, []) if str(a.id) == wanted), None)


Show = Callable[[Turn, Answers], str]


def _show(name: str) -> Show:
    return lambda turn, answers: str(answers[name])


def _show_choice(name: str, prefix: str) -> Show:
    return lambda turn, answers: turn.t(f"{prefix}.{answers[name]}")


def _parse_phone(turn: Turn, text: str, answers: Answers) -> Parsed:
    phone = parse_phone(text)
    return phone if isinstance(phone, Invalid) else Accept({"phone": phone})


def _show_target(turn: Turn, answers: Answers) -> str:
    area = _target_area(answers)
    if area is None:
        return turn.t("donor.anywhere")
    entry = turn.areas.get(area)
    return entry.name if entry else "-"


def _show_aggregator(turn: Turn, answers: Answers) -> str:
    answer = str(answers.get("aggregator"))
    if answer == CHOOSE_FOR_ME:  # a draft from before the choice was made at once
        return turn.t("donor.choose_for_me")
    chosen = _aggregator(turn, answer)
    if chosen is None:
        return "-"
    if answer.startswith(CHOSEN_PREFIX):
        return turn.t("donor.chosen_name", name=chosen.name)
    return chosen.name


# --- submit ---------------------------------------------------------------------------


async def _choose_for_me(turn: Turn, candidates: list[Covering], answers: Answers
                         ) -> Covering:
    """The covering aggregator with the most verified households of the target area
    waiting per unit of stock of the category given."""
    target = _target_villages(turn, answers)
    best, most = candidates[0], -1.0
    for candidate in candidates:
        villages = candidate.villages if target is None else candidate.villages & set(target)
        waiting = int(await turn.session.scalar(
            select(func.count()).select_from(HelpRequest)
            .where(HelpRequest.status == RequestStatus.VERIFIED,
                   HelpRequest.village_id.in_(list(villages)))) or 0) if villages else 0
        stock = (await stock_of(turn.session, [candidate.id])).get(answers["category"], 0)
        # Stock of one unit or none counts alike, so that no stock is no division by zero.
        need = waiting / max(stock, 1)
        if need > most:
            best, most = candidate, need
    return best


async def _start(turn: Turn) -> dict[str, object]:
    """A donor who gave or asked before is offered the name and phone on file."""
    details = await on_file.known_details(turn, organisations=True)
    return {on_file.ON_FILE: details} if details else {}


def _on_file_params(turn: Turn, answers: Answers) -> dict[str, object]:
    organisation = on_file.known(answers).get("organisation")
    return {**on_file.prompt_params(turn, answers),
            "kind": turn.t("donor.organisation" if organisation else "donor.individual")}


async def _submit(turn: Turn, answers: Answers) -> list[Reply]:
    candidates = _covering(turn, answers)
    chosen = str(answers["aggregator"]).removeprefix(CHOSEN_PREFIX)
    aggregator = await _choose_for_me(turn, candidates, answers) if chosen == CHOOSE_FOR_ME else \
        next((a for a in candidates if str(a.id) == chosen), None)
    if aggregator is None:
        # Its coverage changed while the donor was answering.
        return [Reply(text=turn.t("donor.no_aggregator"))]
    handover = Handover(answers["handover"])
    pledge = await make_pledge(turn.session, turn.contact.id, NewPledge(
        organisation=answers["kind"] == "organisation", donor_name=answers["name"],
        phone=answers["phone"], category=answers["category"], quantity=answers["quantity"],
        target_area_id=_target_area(answers),
        aggregator_id=aggregator.id, handover=handover,
        pickup_address=answers.get("pickup_address"),
        pickup_window=answers.get("pickup_window")), turn.now,
        staff_digest=turn.settings.staff_pledge_digest)
    log.info("pledge %s made to aggregator %d", pledge.code, aggregator.id)
    how = turn.t("donor.drop_at", address=aggregator.posko_address,
                 hours=aggregator.posko_hours or "-") if handover == Handover.DROP \
        else turn.t("donor.will_pick_up")
    return [Reply(text=turn.t("donor.pledged", code=pledge.code, aggregator=aggregator.name,
                              how=how))]


DONOR_PLEDGE = Form(
    name="donor_pledge",
    code="dn",
    summary_title="donor.summary_title",
    submit=_submit,
    prepare=_prepare,
    start=_start,
    state_keys=frozenset({on_file.ON_FILE}),
    menu_item="donate",
    fields=(
        Field(on_file.FIELD, FieldKind.CHOICE, "donor.on_file", choices=on_file.CHOICES,
              on_choice=on_file.on_choice(kind=True), when=on_file.applies,
              prompt_params=_on_file_params),
        Field("kind", FieldKind.CHOICE, "donor.kind", label="field.donor_kind",
              choices=(Choice("individual", "donor.individual"),
                       Choice("organisation", "donor.organisation")),
              show=_show_choice("kind", "donor")),
        Field("name", FieldKind.TEXT, "donor.name", label="field.donor_name",
              parse_text=_parse_name, show=_show("name")),
        Field("phone", FieldKind.PHONE, "donor.phone", label="field.phone",
              parse_text=_parse_phone, show=_show("phone")),
        Field("category", FieldKind.CHOICE, "donor.category", label="field.category",
              choices=tuple(Choice(c, f"category.{c}") for c in CATEGORIES),
              clears=("quantity",),
              show=_show_choice("category", "category")),
        Field("quantity", FieldKind.TEXT, "donor.quantity", label="field.quantity",
              parse_text=_parse_quantity,
              show=lambda t, a: quantity_text(t, a.get("category", "money"), a["quantity"]),
              prompt_params=lambda t, a: {"unit": t.t(f"unit.{a.get('category', 'money')}")}),
        Field("target", FieldKind.CHOICE, "donor.target", label="field.target",
              choices=_targets, on_choice=_on_target("target"),
              clears=("kecamatan", "aggregator"), show=_show_target),
        Field("kecamatan", FieldKind.CHOICE, "donor.kecamatan", choices=_kecamatan,
              on_choice=_on_target("kecamatan"),
              when=lambda a: a.get("target") not in (None, ANYWHERE), clears=("aggregator",)),
        Field("aggregator", FieldKind.CHOICE, "donor.aggregator", label="field.aggregator",
              choices=_aggregators, on_choice=_on_aggregator,
              told_when_only=_told_aggregator, show=_show_aggregator),
        Field("handover", FieldKind.CHOICE, "donor.handover", label="field.handover",
              choices=(Choice(Handover.DROP, "donor.drop"),
                       Choice(Handover.PICKUP, "donor.pickup")),
              clears=("pickup_address", "pickup_window"),
              show=_show_choice("handover", "donor")),
        Field("pickup_address", FieldKind.TEXT, "donor.pickup_address",
              label="field.pickup_address",
              parse_text=lambda t, s, a: _text("pickup_address", s, 300),
              when=lambda a: a.get("handover") == Handover.PICKUP,
              show=_show("pickup_address")),
        Field("pickup_window", FieldKind.TEXT, "donor.pickup_window",
              label="field.pickup_window",
              parse_text=lambda t, s, a: _text("pickup_window", s, 120),
              when=lambda a: a.get("handover") == Handover.PICKUP,
              show=_show("pickup_window")),
    ),
)


def _text(name: str, text: str, limit: int) -> Parsed:
    value = parse_short_text(text, limit)
    return value if isinstance(value, Invalid) else Accept({name: value})
