"""What a staff action checks and does, whether it comes from chat or from the dashboard:
who the person is staff of and which kelurahan that covers, whether the thing acted on is
theirs and still waits, the domain operation, and the audit entry (refusals too).

Chat handlers and the dashboard's views only turn the outcomes into words.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gotong.handlers.validators import parse_id
from gotong.models.aggregator import covered_areas, staff_aggregators
from gotong.models.allocation import Allocated, Pick, allocate
from gotong.models.area import AreaDirectory
from gotong.models.audit import audit
from gotong.models.delivery import Delivery
from gotong.models.help_request import (
    HelpRequest,
    mark_duplicate,
    reject_request,
    verify_request,
)
from gotong.models.outbox import Notice
from gotong.models.pledge import Pledge, PledgeStatus
from gotong.models.request_status import RequestStatus
from gotong.models.rules import NotAllowed
from gotong.models.stock import receive_pledge
from gotong.models.tasks import assign, cancel, resolve_dispute, review_proof, volunteers_for
from gotong.models.volunteer import Volunteer

# Where an action came from, as the audit log shows it ("" for chat, the usual place).
DASHBOARD = "dashboard"


@dataclass(frozen=True)
class Coverage:
    """The aggregators a person is staff of, and the kelurahan they cover."""

    aggregator_ids: list[int]
    villages: set[int]

    @property
    def is_staff(self) -> bool:
        return bool(self.aggregator_ids)


async def staff_coverage(session: AsyncSession, areas: AreaDirectory, contact_id: int
                         ) -> Coverage:
    aggregator_ids = await staff_aggregators(session, contact_id)
    if not aggregator_ids:
        return Coverage([], set())
    covered = await covered_areas(session, aggregator_ids)
    return Coverage(aggregator_ids, areas.villages_under(
        [area for areas_ in covered.values() for area in areas_]))


@dataclass(frozen=True)
class Actor:
    """A staff member acting now, within one transaction."""

    session: AsyncSession
    areas: AreaDirectory
    contact_id: int
    now: datetime
    staff: Coverage
    source: str = ""

    def audit(self, action: str, outcome: str, aggregator_id: int | None = None,
              detail: str = "") -> None:
        if self.source:
            detail = f"{detail} [{self.source}]".strip()
        audit(self.session, self.now, action, outcome, contact_id=self.contact_id,
              aggregator_id=aggregator_id, detail=detail)

    def refuse(self, action: str, outcome: str) -> None:
        self.audit(action, outcome, self.staff.aggregator_ids[0]
                   if self.staff.aggregator_ids else None)


class Refusal(enum.StrEnum):
    NOT_STAFF = "not staff"
    NOT_YOURS = "not yours"
    ALREADY_DONE = "already done"
    INVALID = "invalid"
    # A text longer than what is kept: refused whole rather than cut without a word.
    TOO_LONG = "too long"


# --- verification ---------------------------------------------------------------------

VERIFY, REJECT, DUPLICATE = "verify", "reject", "duplicate"


async def request_to_review(actor: Actor, request_id: object, action: str
                            ) -> tuple[HelpRequest | None, Refusal | None]:
    """The request, if this person may verify or reject it now; else why not (refusals
    of a request outside their areas are audited)."""
    if not actor.staff.is_staff:
        actor.audit(action, "not staff")
        return None, Refusal.NOT_STAFF
    key = parse_id(str(request_id))
    request = await actor.session.get(HelpRequest, key) if key else None
    if request is None or request.village_id not in actor.staff.villages:
        actor.refuse(action, "outside area")
        return None, Refusal.NOT_YOURS
    if request.status != RequestStatus.SUBMITTED:
        return request, Refusal.ALREADY_DONE
    return request, None


async def decide_request(actor: Actor, request: HelpRequest, action: str,
                         reason: str | None = None) -> Refusal | None:
    """Verify, reject (with a listed reason's id or a typed one) or mark a duplicate of
    a request checked by `request_to_review`; the household hears it through the
    outbox."""
    try:
        if action == VERIFY:
            await verify_request(actor.session, request, actor.contact_id, actor.now)
        elif action == DUPLICATE:
            other = await actor.session.get(HelpRequest, request.duplicate_of_id or 0)
            if other is None:
                return Refusal.INVALID
            await mark_duplicate(actor.session, request, other, actor.contact_id, actor.now)
        elif action == REJECT and reason:
            await reject_request(actor.session, request, actor.contact_id, reason, actor.now)
        else:
            return Refusal.INVALID
    except NotAllowed:
        return Refusal.ALREADY_DONE
    actor.audit(action, "done", detail=request.reference)
    return None


# --- receiving pledges ----------------------------------------------------------------


async def pledge_to_receive(actor: Actor, pledge_id: object, action: str = "receive"
                            ) -> tuple[Pledge | None, Refusal | None]:
    """The pledge, if this person may receive it now; else why not (audited)."""
    if not actor.staff.is_staff:
        actor.audit(action, "not staff")
        return None, Refusal.NOT_STAFF
    key = parse_id(str(pledge_id))
    pledge = await actor.session.get(Pledge, key) if key else None
    if pledge is None or pledge.aggregator_id not in actor.staff.aggregator_ids:
        actor.refuse(action, "not their aggregator")
        return None, Refusal.NOT_YOURS
    if pledge.status != PledgeStatus.PLEDGED:
        return pledge, Refusal.ALREADY_DONE
    return pledge, None


async def receive(actor: Actor, pledge: Pledge, counted: int) -> Refusal | None:
    """The quantity counted goes into stock; the donor hears it through the outbox."""
    try:
        await receive_pledge(actor.session, pledge, counted, actor.contact_id, actor.now)
    except NotAllowed:
        return Refusal.ALREADY_DONE
    actor.audit("receive", "done", pledge.aggregator_id, f"{pledge.code} {counted}")
    return None


# --- allocation -----------------------------------------------------------------------


async def aggregator_villages(actor: Actor, aggregator_id: int) -> set[int]:
    covered = await covered_areas(actor.session, [aggregator_id])
    return actor.areas.villages_under(covered.get(aggregator_id, []))


async def confirm_allocation(actor: Actor, aggregator_id: int, category: str, per: int,
                             proposed: Sequence[int], added: Mapping[str, str],
                             cooldown: timedelta) -> Allocated | None:
    """Allocate `per` of a category to each proposed household still in the
    aggregator's area (those added out of order keep their reason); None, audited, if
    the person is not staff of that aggregator."""
    if aggregator_id not in actor.staff.aggregator_ids:
        actor.audit("allocate", "not their aggregator")
        return None
    villages = await aggregator_villages(actor, aggregator_id)
    picks: list[Pick] = []
    for request_id in proposed:
        request = await actor.session.get(HelpRequest, request_id)
        if request is None or request.village_id not in villages:
            continue
        picks.append(Pick(request.id, added.get(str(request_id))))
    try:
        outcome = await allocate(actor.session, actor.areas, aggregator_id, category, per,
                                 picks, actor.contact_id, actor.now, cooldown)
    except NotAllowed:
        actor.audit("allocate", "not allowed", aggregator_id, f"{category} x{per}")
        return Allocated()
    actor.audit("allocate", "done", aggregator_id,
                f"{category} x{per} to {len(outcome.deliveries)} households")
    return outcome


# --- review ---------------------------------------------------------------------------

ACCEPT, REJECT_PROOF, WAS_DELIVERED, NOT_DELIVERED, CANCEL = \
    "ok", "no", "yes", "nd", "x"
RESOLUTIONS = (ACCEPT, REJECT_PROOF, WAS_DELIVERED, NOT_DELIVERED, CANCEL)


async def delivery_of_staff(actor: Actor, delivery_id: object, action: str
                            ) -> tuple[Delivery | None, Refusal | None]:
    """The delivery, if it is one of this person's aggregators'; else why not
    (audited)."""
    if not actor.staff.is_staff:
        actor.audit(action, "not staff")
        return None, Refusal.NOT_STAFF
    key = parse_id(str(delivery_id))
    delivery = await actor.session.get(Delivery, key, populate_existing=True) \
        if key else None
    if delivery is None or delivery.aggregator_id not in actor.staff.aggregator_ids:
        actor.refuse(action, "not their aggregator")
        return None, Refusal.NOT_YOURS
    return delivery, None


async def resolve(actor: Actor, delivery: Delivery, action: str, max_failures: int
                  ) -> tuple[list[Notice], Refusal | None]:
    """Settle a delivery that needs a decision: accept or reject a photo proof, uphold
    or dismiss a dispute, or cancel it (stock back into stock). Reassigning is choosing
    a volunteer, which each front end asks in its own way."""
    request = await actor.session.get(HelpRequest, delivery.request_id)
    assert request is not None
    try:
        if action in (ACCEPT, REJECT_PROOF):
            notices = await review_proof(actor.session, actor.areas, delivery,
                                         action == ACCEPT, actor.contact_id, actor.now)
        elif action in (WAS_DELIVERED, NOT_DELIVERED):
            notices = await resolve_dispute(actor.session, delivery, action == WAS_DELIVERED,
                                            actor.contact_id, actor.now, max_failures)
        elif action == CANCEL:
            # Offered for a failed delivery or one locked after wrong codes; `cancel`
            # itself refuses any other.
            notices = await cancel(actor.session, delivery, actor.contact_id, actor.now)
        else:
            actor.audit(f"review_{action}", "invalid", delivery.aggregator_id)
            return [], Refusal.INVALID
    except NotAllowed:
        actor.audit(f"review_{action}", "not allowed now", delivery.aggregator_id,
                    request.reference)
        return [], Refusal.ALREADY_DONE
    actor.audit(f"review_{action}", "done", delivery.aggregator_id, request.reference)
    return notices, None


async def assign_volunteer(actor: Actor, delivery: Delivery, volunteer_id: object
                           ) -> tuple[Volunteer | None, list[Notice], Refusal | None]:
    """Give a delivery of the person's aggregator (checked by `delivery_of_staff`) to a
    volunteer who covers the household's kelurahan; the household and the volunteer
    hear it through the outbox."""
    key = parse_id(str(volunteer_id))
    volunteer = await actor.session.get(Volunteer, key) if key else None
    request = await actor.session.get(HelpRequest, delivery.request_id)
    assert request is not None
    if volunteer is None or volunteer.id not in {v.id for v in await volunteers_for(
            actor.session, actor.areas, delivery, request.village_id)}:
        actor.audit("assign", "volunteer not covering", delivery.aggregator_id)
        return None, [], Refusal.NOT_YOURS
    try:
        notices = await assign(actor.session, actor.areas, delivery, volunteer,
                               actor.contact_id, actor.now)
    except NotAllowed:
        return volunteer, [], Refusal.ALREADY_DONE
    actor.audit("assign", "done", delivery.aggregator_id, request.reference)
    return volunteer, notices, None
