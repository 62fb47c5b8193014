"""The roles a person has, read from what they did and were invited to: the main menu
and /help show the commands of these roles and none of the others."""

from __future__ import annotations

import enum

from sqlalchemy import exists, select

from gotong.handlers.staff import coverage
from gotong.handlers.turn import Turn
from gotong.models.help_request import HelpRequest
from gotong.models.person import person_contacts
from gotong.models.pledge import Pledge
from gotong.models.volunteer import VolunteerStatus, volunteers_of

LOADED = "roles"  # turn.loaded key


class Held(enum.StrEnum):
    HOUSEHOLD = "household"  # asked for help (any request, open or not)
    DONOR = "donor"  # pledged
    VOLUNTEER = "volunteer"  # signed up with an invite (approved or waiting for it)
    STAFF = "staff"  # staff of an aid organisation


async def load_roles(turn: Turn) -> frozenset[Held]:
    """Read the person's roles into `turn.loaded` (menus are drawn synchronously)."""
    if LOADED in turn.loaded:
        return roles(turn)
    held: set[Held] = set()
    # Asked and gave, on any of the person's apps: one statement.
    contacts = person_contacts(turn.contact.id)
    asked, gave = (await turn.session.execute(select(
        exists().where(HelpRequest.contact_id.in_(contacts)),
        exists().where(Pledge.contact_id.in_(contacts))))).one()
    if asked:
        held.add(Held.HOUSEHOLD)
    if gave:
        held.add(Held.DONOR)
    if await volunteers_of(turn.session, turn.contact.id,
                           (VolunteerStatus.APPROVED, VolunteerStatus.PENDING)):
        held.add(Held.VOLUNTEER)
    if (await coverage(turn)).is_staff:
        held.add(Held.STAFF)
    turn.loaded[LOADED] = frozenset(held)
    return roles(turn)


def roles(turn: Turn) -> frozenset[Held]:
    """The roles read by load_roles for this update (none if they were not read)."""
    found: frozenset[Held] = turn.loaded.get(LOADED, frozenset())
    return found
