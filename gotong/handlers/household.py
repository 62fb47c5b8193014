"""The household's request for help, as a form."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from gotong.handlers import on_file
from gotong.handlers.forms import (
    Accept,
    Answers,
    Choice,
    Choices,
    Field,
    FieldKind,
    Form,
    Parsed,
    Stop,
)
from gotong.handlers.messages import Reply
from gotong.handlers.notices import notice_reply
from gotong.handlers.turn import Turn
from gotong.handlers.validators import (
    Invalid,
    StreetAddress,
    parse_household_size,
    parse_id,
    parse_nik,
    parse_person_name,
    parse_phone,
    parse_short_text,
    parse_street_address,
    small_number,
)
from gotong.models.area import Place
from gotong.models.coverage import is_covered
from gotong.models.help_request import (
    NEEDS,
    VULNERABILITIES,
    NewRequest,
    open_request_of,
    submit_request,
)
from gotong.models.nik import ProtectedNik, mask_nik, protect_nik

log = logging.getLogger(__name__)

NONE_OF_THESE = "none"
COVERED = "covered"  # turn.loaded key: the areas enabled aggregators cover
# The questions whose answer can set the kelurahan.
AREA_STEPS = ("kota", "area_pick", "kecamatan", "kelurahan")
MAX_CANDIDATES = 5
NEEDS_OTHER_MAX = 200


def _today(turn: Turn) -> date:
    return turn.now.astimezone(ZoneInfo(turn.settings.timezone)).date()


def _value(parsed: object, name: str) -> Parsed:
    return parsed if isinstance(parsed, Invalid) else Accept({name: parsed})


# --- consent ------------------------------------------------------------------------


def _on_consent(turn: Turn, option: str, answers: Answers) -> Parsed:
    if option == "yes":
        return Accept({"consent": "yes"})
    # Refusing ends the dialog and nothing is kept: the conversation is reset.
    return Stop("household.consent_declined")


# --- name, phone, NIK ---------------------------------------------------------------


def _parse_nik(turn: Turn, text: str, answers: Answers) -> Parsed:
    nik = parse_nik(text, _today(turn))
    if isinstance(nik, Invalid):
        return nik
    # The draft never holds the NIK in clear, only what the request will keep.
    protected = protect_nik(nik, turn.settings.nik_key)
    return Accept({"nik": {"hash": protected.hash, "last4": protected.last4}})


def _show_nik(turn: Turn, answers: Answers) -> str:
    nik = answers.get("nik")
    return mask_nik(nik["last4"]) if nik else turn.t("summary.not_given")


# --- area ---------------------------------------------------------------------------


def _place_answers(turn: Turn, place: Place, answers: Answers) -> Accept:
    return _in_village(turn, answers, place.village_id, {
        "kota": str(place.regency_id), "kecamatan": str(place.district_id),
        "kelurahan": str(place.village_id), "area_candidates": None})


def _in_village(turn: Turn, answers: Answers, village_id: int, values: dict[str, Any]
                ) -> Accept:
    """The area's answers; an address given for another kelurahan (the area changed at
    the summary) no longer fits, and is asked again."""
    address = answers.get("address")
    if address is None or address.get("village") == village_id:
        return Accept(values)
    place = turn.areas.place(village_id)
    return Accept({**values, "address": None}, note="household.address_again",
                  note_params={"kelurahan": place.village if place else ""})


def _on_kelurahan(turn: Turn, option: str, answers: Answers) -> Parsed:
    village_id = parse_id(option)
    if village_id is None:
        return Accept({"kelurahan": option})
    return _in_village(turn, answers, village_id, {"kelurahan": option})


def _parse_area_text(turn: Turn, text: str, answers: Answers) -> Parsed:
    """A postal code or a kelurahan name typed instead of choosing from the menus."""
    areas = turn.areas
    query = text.strip()
    if len(query) == 5 and small_number(query) is not None:
        places = areas.by_postal_code(query)
        if not places:
            return Invalid("invalid.area.postal_unknown", {"code": query})
        certain = True
    else:
        places = areas.exact_village(query)
        # A name typed exactly is taken; a close one is asked about ("did you mean").
        certain = bool(places)
        places = places or areas.search_villages(query, MAX_CANDIDATES)
        if not places:
            return Invalid("invalid.area.not_found")
    if len(places) == 1 and certain:
        return _place_answers(turn, places[0], answers)
    return Accept({"area_candidates": [p.village_id for p in places[:10]]})


def _regencies(turn: Turn, answers: Answers) -> list[Choice]:
    return [Choice(str(a.id), label=a.name) for a in turn.areas.regencies()]


def _children_of(parent: str) -> Choices:
    def choices(turn: Turn, answers: Answers) -> list[Choice]:
        parent_id = answers.get(parent)
        if parent_id is None:
            return []
        return [Choice(str(a.id), label=a.name) for a in turn.areas.children(int(parent_id))]

    return choices


def _candidates(turn: Turn, answers: Answers) -> list[Choice]:
    places = (turn.areas.place(int(v)) for v in answers.get("area_candidates", ()))
    choices = [Choice(str(p.village_id), label=p.display()) for p in places if p is not None]
    return [*choices, Choice(NONE_OF_THESE, "household.area_none")]


def _on_candidate(turn: Turn, option: str, answers: Answers) -> Parsed:
    village_id = parse_id(option)
    place = turn.areas.place(village_id) if village_id is not None else None
    if place is None:
        # None of these: say how else the place can be found.
        return Accept({"area_candidates": None}, note="household.area_none_next")
    return _place_answers(turn, place, answers)


def _show_area(turn: Turn, answers: Answers) -> str:
    place = turn.areas.place(int(answers["kelurahan"])) if "kelurahan" in answers else None
    return place.display() if place else "-"


# --- address, household ---------------------------------------------------------------


def _parse_address(turn: Turn, text: str, answers: Answers) -> Parsed:
    address = parse_street_address(text)
    if isinstance(address, Invalid):
        return address
    # The kelurahan it was given for: an address fits one place only.
    village = parse_id(str(answers.get("kelurahan", "")))
    return Accept({"address": {"street": address.street, "rt": address.rt, "rw": address.rw,
                               "village": village}})


def _show_address(turn: Turn, answers: Answers) -> str:
    address = answers["address"]
    return StreetAddress(address["street"], address["rt"], address["rw"]).display()


def _labels(prefix: str, ids: list[str]) -> list[Choice]:
    return [Choice(i, f"{prefix}.{i}") for i in ids]


VULNERABLE_CHOICES = _labels("vulnerable", [*VULNERABILITIES, NONE_OF_THESE])
NEEDS_CHOICES = _labels("need", list(NEEDS))


def _show_choices(name: str, prefix: str) -> Callable[[Turn, Answers], str]:
    def show(turn: Turn, answers: Answers) -> str:
        return ", ".join(turn.t(f"{prefix}.{v}") for v in answers.get(name, []))

    return show


# --- coverage -----------------------------------------------------------------------


async def _prepare(turn: Turn) -> None:
    """Once an area is chosen, the areas an aggregator serves, to say at the summary when
    none serves it (aggregators change only by the operator's hand)."""
    conversation = turn.conversation
    if "kelurahan" in conversation.answers or conversation.step in AREA_STEPS:
        turn.loaded[COVERED] = await turn.coverage.covered(turn.session)


def _uncovered_note(turn: Turn, answers: Answers) -> str | None:
    place = turn.areas.place(int(answers["kelurahan"])) if "kelurahan" in answers else None
    covered = turn.loaded.get(COVERED)
    if place is None or covered is None or \
            covered & {place.village_id, place.district_id, place.regency_id}:
        return None
    return turn.t("household.uncovered_note")


# --- submit -------------------------------------------------------------------------


async def _precheck(turn: Turn) -> list[Reply] | None:
    open_request = await open_request_of(turn.session, turn.contact.id)
    if open_request is None:
        return None
    return [Reply(text=turn.t("household.already_open", reference=open_request.reference,
                              status=turn.t(f"status.{open_request.status}")))]


async def _start(turn: Turn) -> dict[str, object]:
    """A household that asked (or gave, as a person) before is offered the name and
    phone on file."""
    details = await on_file.known_details(turn, organisations=False)
    return {on_file.ON_FILE: details} if details else {}


def new_request(answers: Answers, phone: str) -> NewRequest:
    """The request the form's answers describe, reached at this phone."""
    nik = answers.get("nik") or None
    address = answers["address"]
    vulnerable = [v for v in answers["vulnerable"] if v != NONE_OF_THESE]
    return NewRequest(
        head_name=answers["name"], phone=phone,
        nik=ProtectedNik(nik["hash"], nik["last4"]) if nik else None,
        village_id=int(answers["kelurahan"]), street=address["street"], rt=address["rt"],
        rw=address["rw"], household_size=int(answers["size"]), vulnerabilities=vulnerable,
        needs=list(answers["needs"]), needs_other=answers.get("needs_other") or None,
    )


async def _submit(turn: Turn, answers: Answers) -> list[Reply]:
    new = new_request(answers, answers["phone"])
    request, notices = await submit_request(
        turn.session, turn.contact.id, new, now=turn.now,
        duplicate_window=turn.settings.duplicate_window,
    )
    log.info("household request %s submitted%s", request.reference,
             " (possible duplicate)" if request.duplicate_of_id else "")
    replies = [notice_reply(turn.catalog, turn.language, n) for n in notices]
    place = turn.areas.place(request.village_id)
    if replies and place is not None and not await is_covered(
            turn.session, (place.village_id, place.district_id, place.regency_id)):
        # Kept, and routed the day an aggregator covers the area (models/coverage.py).
        log.info("household request %s waits where no aggregator serves", request.reference)
        replies[0] = dataclasses.replace(
            replies[0], text=f"{replies[0].text}\n\n{turn.t('household.uncovered_kept')}")
    return replies


HOUSEHOLD_REQUEST = Form(
    name="household_request",
    code="hh",
    summary_title="household.summary_title",
    submit=_submit,
    precheck=_precheck,
    prepare=_prepare,
    start=_start,
    summary_note=_uncovered_note,
    state_keys=frozenset({"area_candidates", on_file.ON_FILE}),
    menu_item="request",
    fields=(
        Field("consent", FieldKind.CHOICE, "household.consent",
              choices=(Choice("yes", "household.consent_yes"),
                       Choice("no", "household.consent_no")),
              on_choice=_on_consent),
        Field(on_file.FIELD, FieldKind.CHOICE, "household.on_file", choices=on_file.CHOICES,
              on_choice=on_file.on_choice(kind=False), when=on_file.applies,
              prompt_params=on_file.prompt_params),
        Field("name", FieldKind.TEXT, "household.name", label="field.name",
              parse_text=lambda t, s, a: _value(parse_person_name(s), "name"),
              show=lambda t, a: str(a["name"])),
        Field("phone", FieldKind.PHONE, "household.phone", label="field.phone",
              parse_text=lambda t, s, a: _value(parse_phone(s), "phone"),
              show=lambda t, a: str(a["phone"])),
        Field("nik", FieldKind.TEXT, "household.nik", label="field.nik", optional=True,
              parse_text=_parse_nik, show=_show_nik),
        Field("kota", FieldKind.CHOICE, "household.kota", label="field.area",
              choices=_regencies, parse_text=_parse_area_text,
              when=lambda a: "area_candidates" not in a,
              clears=("kecamatan", "kelurahan", "area_candidates"), show=_show_area),
        Field("area_pick", FieldKind.CHOICE, "household.area_pick",
              choices=_candidates, on_choice=_on_candidate,
              when=lambda a: "area_candidates" in a and "kelurahan" not in a),
        Field("kecamatan", FieldKind.CHOICE, "household.kecamatan",
              choices=_children_of("kota"), parse_text=_parse_area_text,
              when=lambda a: "kota" in a, clears=("kelurahan",),
              prompt_params=lambda t, a: {"kota": _area_name(t, a, "kota")}),
        Field("kelurahan", FieldKind.CHOICE, "household.kelurahan",
              choices=_children_of("kecamatan"), parse_text=_parse_area_text,
              on_choice=_on_kelurahan, when=lambda a: "kecamatan" in a,
              prompt_params=lambda t, a: {"kecamatan": _area_name(t, a, "kecamatan")}),
        Field("address", FieldKind.TEXT, "household.address", label="field.address",
              parse_text=_parse_address, show=_show_address),
        Field("size", FieldKind.TEXT, "household.size", label="field.size",
              parse_text=lambda t, s, a: _value(parse_household_size(s), "size"),
              show=lambda t, a: str(a["size"])),
        Field("vulnerable", FieldKind.MULTI, "household.vulnerable", label="field.vulnerable",
              choices=VULNERABLE_CHOICES, exclusive=frozenset({NONE_OF_THESE}), min_selected=1,
              show=_show_choices("vulnerable", "vulnerable")),
        Field("needs", FieldKind.MULTI, "household.needs", label="field.needs",
              choices=NEEDS_CHOICES, min_selected=1, clears=("needs_other",),
              show=_show_choices("needs", "need")),
        Field("needs_other", FieldKind.TEXT, "household.needs_other", label="field.needs_other",
              parse_text=lambda t, s, a: _value(parse_short_text(s, NEEDS_OTHER_MAX),
                                                "needs_other"),
              when=lambda a: "other" in a.get("needs", ()),
              show=lambda t, a: str(a["needs_other"])),
    ),
)


def _area_name(turn: Turn, answers: Answers, key: str) -> str:
    entry = turn.areas.get(int(answers[key])) if key in answers else None
    return entry.name if entry else ""
