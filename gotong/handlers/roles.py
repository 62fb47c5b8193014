"""The roles a person has, read from what they did and were invited to: the main menu
and /help show the commands of these roles and none of the others."""

from __future__ import annotations

import enum

from sqlalchemy import exists, select

from gotong.handlers.turn import Turn
from gotong.models.aggregator import StaffMember
from gotong.models.help_request import HelpRequest
from gotong.models.person import person_contacts
from gotong.models.pledge import Pledge
from gotong.models.volunteer import Volunteer, VolunteerStatus

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
    # On any of the person's apps, asked and gave; on this one, volunteers and staff:
    # one statement, as a menu is drawn on most updates.
    contacts = person_contacts(turn.contact.id)
    found = (await turn.session.execute(select(
        exists().where(HelpRequest.contact_id.in_(contacts)),
        exists().where(Pledge.contact_id.in_(contacts)),
        exists().where(Volunteer.contact_id == turn.contact.id,
                       Volunteer.status.in_((VolunteerStatus.APPROVED,
                                             VolunteerStatus.PENDING))),
        exists().where(StaffMember.contact_id == turn.contact.id)))).one()
    held = {role for role, has in zip(
        (Held.HOUSEHOLD, Held.DONOR, Held.VOLUNTEER, Held.STAFF), found, strict=True) if has}
    turn.loaded[LOADED] = frozenset(held)
    return roles(turn)


def roles(turn: Turn) -> frozenset[Held]:
    """The roles read by load_roles for this update (none if they were not read)."""
    found: frozenset[Held] = turn.loaded.get(LOADED, frozenset())
    return found
