"""What we already know of a person who pledged or asked for help before: their name
and phone, offered back for one tap instead of being asked again.

A form that uses it reads the details when it starts (kept in its answers under
ON_FILE) and asks first whether to use them; "yes" answers the name and phone (and, for
a donor, whether they give as a person or for an organisation), "change" asks them as
for anyone else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from gotong.handlers.forms import Accept, Answers, Choice, ChoiceHandler, Parsed
from gotong.handlers.turn import Turn
from gotong.models.help_request import HelpRequest
from gotong.models.person import person_contacts
from gotong.models.pledge import Pledge

ON_FILE = "on_file"  # answers key: the details found when the form started
FIELD = "use_on_file"
USE = "yes"
CHANGE = "change"
CHOICES = (Choice(USE, "on_file.use"), Choice(CHANGE, "on_file.change"))


async def known_details(turn: Turn, *, organisations: bool) -> dict[str, Any] | None:
    """The name and phone of the person's latest pledge or request, whichever is newer
    (a pledge for an organisation only where `organisations`); None if there is none."""
    contacts = person_contacts(turn.contact.id)
    pledges = select(Pledge).where(Pledge.contact_id.in_(contacts))
    if not organisations:
        pledges = pledges.where(Pledge.organisation.is_(False))
    pledge = await turn.session.scalar(pledges.order_by(Pledge.created_at.desc()).limit(1))
    request = await turn.session.scalar(
        select(HelpRequest).where(HelpRequest.contact_id.in_(contacts))
        .order_by(HelpRequest.created_at.desc()).limit(1))
    found: list[tuple[Any, dict[str, Any]]] = []
    if pledge is not None and pledge.donor_name:
        found.append((pledge.created_at, {"name": pledge.donor_name, "phone": pledge.phone,
                                          "organisation": pledge.organisation}))
    if request is not None and request.head_name:
        found.append((request.created_at, {"name": request.head_name,
                                           "phone": request.phone, "organisation": False}))
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]


def known(answers: Answers) -> Mapping[str, Any]:
    details = answers.get(ON_FILE)
    return details if isinstance(details, Mapping) else {}


def on_choice(*, kind: bool) -> ChoiceHandler:
    """The answer to "use these details?": with `kind`, the donor's kind is answered too."""
    def choose(turn: Turn, option: str, answers: Answers) -> Parsed:
        details = known(answers)
        if option != USE or not details:
            return Accept({FIELD: CHANGE})
        values: dict[str, Any] = {FIELD: USE, "name": details["name"],
                                  "phone": details["phone"]}
        if kind:
            values["kind"] = "organisation" if details.get("organisation") else "individual"
        return Accept(values)

    return choose


def prompt_params(turn: Turn, answers: Answers) -> dict[str, object]:
    details = known(answers)
    return {"name": details.get("name", ""), "phone": details.get("phone", "")}


def applies(answers: Answers) -> bool:
    return ON_FILE in answers
