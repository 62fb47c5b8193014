"""Who hears what when aid moves: the table of PRODUCT.md as data.

Every domain operation that changes the state of aid calls `announce` with what happened.
The rule for that event names the audiences (the household, later the donors, volunteers
and staff concerned), the message each one gets, and what must still hold for that
message to be worth sending when it finally goes out. Each recipient gets an outbox row in
the same transaction, except the person who made the change: they are answering the bot
right now, so their message comes back to be part of the direct reply.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gotong.models.aggregator import Aggregator, AggregatorArea, StaffMember
from gotong.models.area import Area
from gotong.models.delivery import UNDER_WAY, DeliveryStatus
from gotong.models.digest import note_change
from gotong.models.outbox import About, Notice, Purpose, enqueue
from gotong.models.pledge import PledgeStatus
from gotong.models.proxy import stands_in_for_removed
from gotong.models.request_status import RequestStatus
from gotong.models.volunteer import Volunteer, VolunteerArea, VolunteerStatus

# What an announcement reads of the aid it is about. Protocols rather than the models
# themselves: the aggregates announce their own changes, so they import this module.


class AnnouncedRequest(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def reference(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def village_id(self) -> int: ...
    @property
    def proxy_id(self) -> int | None: ...


class AnnouncedPledge(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def code(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def received_quantity(self) -> int | None: ...


class AnnouncedDelivery(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def aggregator_id(self) -> int: ...
    @property
    def volunteer_id(self) -> int | None: ...
    @property
    def category(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def code(self) -> str | None: ...


class Event(enum.StrEnum):
    REQUEST_SUBMITTED = "request_submitted"
    REQUEST_CANCELLED = "request_cancelled"
    REQUEST_VERIFIED = "request_verified"
    REQUEST_REJECTED = "request_rejected"
    REQUEST_ALLOCATED = "request_allocated"
    PLEDGE_RECEIVED = "pledge_received"
    PLEDGE_PROGRESS = "pledge_progress"
    REQUEST_DELIVERED = "request_delivered"
    PLEDGE_COMPLETED = "pledge_completed"
    DELIVERY_OPEN = "delivery_open"
    DELIVERY_ASSIGNED = "delivery_assigned"
    DELIVERY_ON_THE_WAY = "delivery_on_the_way"
    DELIVERY_AWAITING_REVIEW = "delivery_awaiting_review"
    DELIVERY_LOCKED = "delivery_locked"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERY_DISPUTED = "delivery_disputed"
    # Staff found the disputed aid delivered after all, or not delivered.
    DISPUTE_DISMISSED = "dispute_dismissed"
    DISPUTE_UPHELD = "dispute_upheld"
    DELIVERY_PROOF_REJECTED = "delivery_proof_rejected"
    TASK_REASSIGNED_AWAY = "task_reassigned_away"
    TASK_CANCELLED = "task_cancelled"
    TASKS_RETURNED = "tasks_returned"
    VOLUNTEER_FLAGGED = "volunteer_flagged"
    REQUEST_REQUEUED = "request_requeued"
    VOLUNTEER_PENDING = "volunteer_pending"
    VOLUNTEER_APPROVED = "volunteer_approved"
    VOLUNTEER_DECLINED = "volunteer_declined"
    DIALOG_UNFINISHED = "dialog_unfinished"
    # The person had their data erased (models/erasure.py): what was open of theirs was
    # closed first, and those who worked on it hear why.
    REQUEST_WITHDRAWN = "request_withdrawn"
    TASK_WITHDRAWN = "task_withdrawn"
    PLEDGE_WITHDRAWN = "pledge_withdrawn"
    # An aggregator now covers the area of a request that waited where none did.
    REQUEST_COVERED = "request_covered"
    # A donor pledged to an aggregator: to bring to its posko, or to be picked up.
    PLEDGE_MADE = "pledge_made"
    PICKUP_REQUESTED = "pickup_requested"
    # The operator disabled an aggregator, or enabled it again.
    AGGREGATOR_DISABLED = "aggregator_disabled"
    AGGREGATOR_ENABLED = "aggregator_enabled"
    # The operator took a proxy out with the invite code that let them in: they hear it,
    # and staff hear of the households whose news came to them.
    PROXY_REMOVED = "proxy_removed"
    PROXY_HOUSEHOLDS_UNFOLLOWED = "proxy_households_unfollowed"


@dataclass(frozen=True)
class Subject:
    """What an event is about: a request, a pledge, or for a reminder only the person."""

    request: AnnouncedRequest | None = None
    pledge: AnnouncedPledge | None = None
    delivery: AnnouncedDelivery | None = None
    # The aggregator whose staff hear of it (a volunteer signing up, tasks returned).
    aggregator_id: int | None = None
    contact_id: int | None = None
    params: Mapping[str, Any] | None = None
    # For a reminder: the main menu item that resumes the dialog.
    menu_item: str | None = None
    # What the news is about where no field above names it, for the check at sending:
    # the volunteer it is about (signed up, decided on), the deliveries (allocated,
    # handed back), the conversation a reminder is about.
    volunteer_id: int | None = None
    delivery_ids: tuple[int, ...] = ()
    conversation_id: int | None = None
    # Staff chose to hear of this kind of news in their digest rather than at once
    # (notifications.staff_new_pledge).
    staff_digest: bool = False


Recipients = Callable[[AsyncSession, Subject], Awaitable[list[int]]]


# --- what must still hold when a notice is sent -------------------------------------
#
# A notice can wait in the outbox a while: the platforms' limits, WhatsApp's 24 hours,
# a dispatcher that was down, retries. By the time it goes out, what it tells of may have
# moved on: the open delivery taken by another volunteer, the verified request taken
# back, the task given to someone else. An audience's `still` says what must still hold
# of the subject for its notice to be worth sending; the dispatcher checks it in the
# transaction that claims the row (models/subjects.py) and skips the notice as
# "outdated" when it no longer holds. No `still`: the news is a fact that stays true once
# it happened (delivered, cancelled, rejected), and is always sent; what followed it is
# told after it, in order.


class SubjectKind(enum.StrEnum):
    """The rows a notice can be about."""

    REQUEST = "request"
    DELIVERY = "delivery"
    PLEDGE = "pledge"
    VOLUNTEER = "volunteer"
    CONVERSATION = "conversation"


@dataclass(frozen=True)
class Current:
    """A notice's subject as it is when the notice is about to be sent."""

    status: str
    # A delivery: its volunteer and code (a new code each time it is given to a
    # volunteer), whether the household disputes it, whether wrong codes locked it.
    volunteer_id: int | None = None
    assignment: str | None = None
    disputed: bool = False
    locked: bool = False
    # A pledge: all that was received has reached households.
    finished: bool = False
    # A conversation (whose status is its dialog): nothing was said in it since the
    # reminder.
    untouched: bool = False


@dataclass(frozen=True)
class Still:
    """What must still hold of a notice's subject for the notice to be worth sending.

    `holds` is given the subject as it is now, and the delivery's giving to a volunteer
    that the notice told of (its code then; None for other news).
    """

    kind: SubjectKind
    holds: Callable[[Current, str | None], bool]

    @property
    def name(self) -> str:
        # Stored with each row. A rule renamed leaves the rows written before it with a
        # name no longer known, and those are sent, as before there were rules.
        return f"{self.kind}.{self.holds.__name__}"


def waits_for_review(now: Current, told: str | None) -> bool:
    """The request still waits for staff to verify or reject it, and was not taken
    back."""
    return now.status == RequestStatus.SUBMITTED


def verified(now: Current, told: str | None) -> bool:
    """The request is verified and waits for aid: not taken back, and no aid allocated
    since (that news follows, and says more)."""
    return now.status == RequestStatus.VERIFIED


def still_coming(now: Current, told: str | None) -> bool:
    """The aid set aside has neither reached the household nor been taken back."""
    return now.status not in (DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED)


def open_for_volunteers(now: Current, told: str | None) -> bool:
    """The delivery still waits for a volunteer: none has taken it or been given it, and
    it was not taken back."""
    return now.status == DeliveryStatus.ALLOCATED and now.volunteer_id is None


def with_the_volunteer_named(now: Current, told: str | None) -> bool:
    """The delivery is still with the volunteer the notice named, and its code the one it
    gave (given to another, or to the same one again, it has a new code, told in a notice
    of its own), and the household has not confirmed it: under way, or delivered with a
    photo staff have not yet accepted."""
    return now.assignment == told and now.status in (
        *UNDER_WAY, DeliveryStatus.AWAITING_REVIEW)


def assigned_to_them(now: Current, told: str | None) -> bool:
    """The task is still theirs as it was given to them, and they have not picked it up
    (then they know it)."""
    return now.assignment == told and now.status == DeliveryStatus.ASSIGNED


def on_the_way_with_them(now: Current, told: str | None) -> bool:
    """The delivery is still on the way with the volunteer the notice is about: not
    handed over, failed, sent for review with a photo, nor given to someone else."""
    return now.assignment == told and now.status == DeliveryStatus.ON_THE_WAY


def needs_staff(now: Current, told: str | None) -> bool:
    """The delivery still waits for staff's decision, as /review lists them: failed, a
    photo to review, disputed, or locked after wrong codes."""
    return (now.status in (DeliveryStatus.FAILED, DeliveryStatus.AWAITING_REVIEW)
            or now.disputed or (now.locked and now.status in UNDER_WAY))


def locked(now: Current, told: str | None) -> bool:
    """The delivery is still locked after the wrong codes the notice tells of: not given
    to a volunteer again, nor taken back."""
    return now.assignment == told and now.locked and now.status in UNDER_WAY


def unfinished(now: Current, told: str | None) -> bool:
    """Not all of the pledge has reached households (then "all delivered" was sent at
    once, and progress is moot)."""
    return now.status == PledgeStatus.RECEIVED and not now.finished


def pending(now: Current, told: str | None) -> bool:
    """The volunteer still waits for staff's approval."""
    return now.status == VolunteerStatus.PENDING


def approved(now: Current, told: str | None) -> bool:
    """The volunteer is still approved: they did not leave, or sign up again since."""
    return now.status == VolunteerStatus.APPROVED


def declined(now: Current, told: str | None) -> bool:
    """The volunteer is still declined: they did not sign up again since."""
    return now.status == VolunteerStatus.DECLINED


def awaits_an_aggregator(now: Current, told: str | None) -> bool:
    """The request still waits for an aggregator to verify it or allocate to it: not
    taken back, rejected, nor served since."""
    return now.status in (RequestStatus.SUBMITTED, RequestStatus.VERIFIED)


def awaits_handover(now: Current, told: str | None) -> bool:
    """The pledge still waits to be brought or picked up: not received, nor cancelled."""
    return now.status == PledgeStatus.PLEDGED


def untouched(now: Current, told: str | None) -> bool:
    """The person has not come back to the conversation since the reminder."""
    return now.untouched


Actions = Callable[[Subject], tuple[tuple[str, str, str], ...]]


def no_actions(subject: Subject) -> tuple[tuple[str, str, str], ...]:
    return ()


def resume_action(subject: Subject) -> tuple[tuple[str, str, str], ...]:
    """A button to the menu item that takes the person back to their dialog."""
    return (("menu", subject.menu_item, "notice.continue"),) if subject.menu_item else ()


@dataclass(frozen=True)
class Audience:
    recipients: Recipients
    key: str
    purpose: Purpose = Purpose.STATUS
    actions: Actions = no_actions
    # News that comes often goes into a digest of this topic (models/digest.py), sent at
    # most once per interval, instead of a message each time.
    # The topic may depend on the subject; None then means: at once.
    digest: Callable[[Subject], str | None] | None = None
    # The words of the digest when they are not the single message's (which names one
    # subject, and a digest may tell of many).
    digest_key: str | None = None
    # What must still hold when the message is sent; None: it always is.
    still: Still | None = None

    @property
    def essential(self) -> bool:
        return self.purpose <= Purpose.STATUS


async def household(session: AsyncSession, subject: Subject) -> list[int]:
    """The person whose request it is (or who the reminder is for): nobody when it is the
    proxy who registered it, standing in for the household, and the operator took them
    out (staff were told which requests those are)."""
    request = subject.request
    if request is not None:
        if request.proxy_id is not None and await stands_in_for_removed(
                session, request.proxy_id, request.contact_id):
            return []
        return [request.contact_id]
    return [subject.contact_id] if subject.contact_id is not None else []


async def donor(session: AsyncSession, subject: Subject) -> list[int]:
    """The person who made the pledge."""
    return [subject.pledge.contact_id] if subject.pledge is not None else []


@cache
def _ancestors() -> Any:
    # Built once: every new request is announced to the staff covering its area.
    village, district = aliased(Area), aliased(Area)
    return (select(village.id, district.id, district.parent_id)
            .join(district, district.id == village.parent_id)
            .where(village.id == bindparam("village_id")))


async def _areas_holding(session: AsyncSession, village_id: int) -> list[int]:
    """The kelurahan, its kecamatan and its kota: any of them covers the kelurahan."""
    row = (await session.execute(_ancestors(), {"village_id": village_id})).first()
    return [a for a in (row or (village_id,)) if a is not None]


async def staff_covering(session: AsyncSession, subject: Subject) -> list[int]:
    """Staff of the enabled aggregators covering the request's kelurahan (or its
    kecamatan or kota)."""
    if subject.request is None:
        return []
    area_ids = await _areas_holding(session, subject.request.village_id)
    result = await session.scalars(
        select(StaffMember.contact_id).distinct()
        .join(AggregatorArea, AggregatorArea.aggregator_id == StaffMember.aggregator_id)
        .join(Aggregator, Aggregator.id == StaffMember.aggregator_id)
        .where(AggregatorArea.area_id.in_(area_ids), Aggregator.disabled_at.is_(None)))
    return sorted(result.all())


async def volunteers_covering(session: AsyncSession, subject: Subject) -> list[int]:
    """Approved volunteers of the delivery's aggregator who cover the household's area."""
    if subject.request is None or subject.delivery is None:
        return []
    area_ids = await _areas_holding(session, subject.request.village_id)
    result = await session.scalars(
        select(Volunteer.contact_id).distinct()
        .join(VolunteerArea, VolunteerArea.volunteer_id == Volunteer.id)
        .where(Volunteer.aggregator_id == subject.delivery.aggregator_id,
               Volunteer.status == VolunteerStatus.APPROVED,
               VolunteerArea.area_id.in_(area_ids)))
    return sorted(result.all())


async def person(session: AsyncSession, subject: Subject) -> list[int]:
    """The one person the subject names (a volunteer taken off a task, say)."""
    return [subject.contact_id] if subject.contact_id is not None else []


async def volunteer(session: AsyncSession, subject: Subject) -> list[int]:
    """The volunteer the delivery is assigned to."""
    if subject.delivery is None or subject.delivery.volunteer_id is None:
        return []
    contact_id = await session.scalar(select(Volunteer.contact_id).where(
        Volunteer.id == subject.delivery.volunteer_id))
    return [contact_id] if contact_id is not None else []


async def aggregator_staff(session: AsyncSession, subject: Subject) -> list[int]:
    """Staff of the aggregator of the delivery (or the one the subject names)."""
    aggregator_id = subject.delivery.aggregator_id if subject.delivery is not None \
        else subject.aggregator_id
    result = await session.scalars(select(StaffMember.contact_id)
                                   .where(StaffMember.aggregator_id == aggregator_id)
                                   .order_by(StaffMember.contact_id))
    return list(result.all())


def receipt_actions(subject: Subject) -> tuple[tuple[str, str, str], ...]:
    """The household confirms receipt, or says it did not receive the aid."""
    if subject.delivery is None:
        return ()
    delivery_id = subject.delivery.id
    return (("dl", f"got:{delivery_id}", "notice.received"),
            ("dl", f"not:{delivery_id}", "notice.not_received"))


# Rating buttons, 1 to 5, by the catalog key of each label.
STARS = ("one", "two", "three", "four", "five")


def rating_actions(subject: Subject) -> tuple[tuple[str, str, str], ...]:
    """Rate the help 1-5."""
    if subject.delivery is None:
        return ()
    return tuple(("rate", f"{subject.delivery.id}:{n}", f"rate.{word}")
                 for n, word in enumerate(STARS, start=1))


def task_actions(subject: Subject) -> tuple[tuple[str, str, str], ...]:
    """Open the task, with its buttons."""
    if subject.delivery is None:
        return ()
    return (("tk", f"show:{subject.delivery.id}", "notice.open_task"),)


def open_tasks_topic(subject: Subject) -> str:
    return "open_tasks"


def review_topic(subject: Subject) -> str:
    return "review"


def volunteers_topic(subject: Subject) -> str:
    return "volunteers"


def queue_topic(subject: Subject) -> str:
    return "queue"


def new_pledges_topic(subject: Subject) -> str | None:
    """Staff's digest of new pledges, when they chose it; else each is told at once."""
    return "pledges" if subject.staff_digest else None


def pledge_topic(subject: Subject) -> str:
    return f"pledge:{subject.pledge.id if subject.pledge else 0}"


def _params(subject: Subject) -> dict[str, Any]:
    params: dict[str, Any] = dict(subject.params or {})
    request = subject.request
    if request is not None:
        params.setdefault("reference", request.reference)
        params.setdefault("status", {"key": f"status.{request.status}"})
    delivery = subject.delivery
    if delivery is not None:
        params.setdefault("category", {"key": f"category.{delivery.category}"})
        params.setdefault("quantity", delivery.quantity)
        params.setdefault("code", delivery.code or "")
    pledge = subject.pledge
    if pledge is not None:
        params.setdefault("code", pledge.code)
        params.setdefault("category", {"key": f"category.{pledge.category}"})
        params.setdefault("pledged", pledge.quantity)
        params.setdefault("received", pledge.received_quantity or 0)
    return params


REQUEST, DELIVERY, PLEDGE = SubjectKind.REQUEST, SubjectKind.DELIVERY, SubjectKind.PLEDGE
VOLUNTEER, CONVERSATION = SubjectKind.VOLUNTEER, SubjectKind.CONVERSATION

RULES: dict[Event, tuple[Audience, ...]] = {
    Event.REQUEST_SUBMITTED: (
        # The household's receipt, with the reference they need: always.
        Audience(household, "notice.request_submitted"),
        # "New requests wait": not once each of them was verified, rejected or taken back.
        Audience(staff_covering, "notice.queue_new", digest=queue_topic,
                 still=Still(REQUEST, waits_for_review)),
    ),
    # Final, as the household's own doing.
    Event.REQUEST_CANCELLED: (Audience(household, "notice.request_cancelled"),),
    # "Verified, we will tell you when aid is allocated": wrong once the household took
    # the request back, and said better by the news of the aid allocated since.
    Event.REQUEST_VERIFIED: (
        Audience(household, "notice.request_verified", still=Still(REQUEST, verified)),),
    # A rejected request does not move on.
    Event.REQUEST_REJECTED: (Audience(household, "notice.request_rejected"),),
    # "Aid set aside, we will tell you when it comes": moot once it came, or once it was
    # taken back (the household hears it is back in the queue). About the delivery, not
    # the request: a request allocated again is news of its own.
    Event.REQUEST_ALLOCATED: (
        Audience(household, "notice.request_allocated",
                 still=Still(DELIVERY, still_coming)),),
    # A fact: what was counted at the posko.
    Event.PLEDGE_RECEIVED: (Audience(donor, "notice.pledge_received"),),
    # Progress is moot once all of the pledge was delivered ("all delivered" goes at
    # once, and may have overtaken progress already in the outbox).
    Event.PLEDGE_PROGRESS: (
        Audience(donor, "notice.pledge_progress", digest=pledge_topic,
                 still=Still(PLEDGE, unfinished)),),
    # Final: the household may rate it. Should staff later find it was not delivered
    # after all, that news follows in order.
    Event.REQUEST_DELIVERED: (
        Audience(household, "notice.request_delivered", actions=rating_actions),),
    # An offer to take a delivery: only while it is open and no volunteer has it.
    Event.DELIVERY_OPEN: (
        Audience(volunteers_covering, "notice.tasks_open", digest=open_tasks_topic,
                 still=Still(DELIVERY, open_for_volunteers)),),
    Event.DELIVERY_ASSIGNED: (
        # Names the volunteer and gives the code to hand over: only while that is still
        # the volunteer bringing it and the household has not confirmed it.
        Audience(household, "notice.delivery_assigned", actions=receipt_actions,
                 still=Still(DELIVERY, with_the_volunteer_named)),
        # The task card: only while the task is still theirs and not yet picked up.
        Audience(volunteer, "notice.task_assigned", actions=task_actions,
                 still=Still(DELIVERY, assigned_to_them)),
    ),
    # "On the way, keep your code ready": only while it is on the way with them.
    Event.DELIVERY_ON_THE_WAY: (
        Audience(household, "notice.delivery_on_the_way", actions=receipt_actions,
                 still=Still(DELIVERY, on_the_way_with_them)),),
    # Staff's digest of decisions to make: not once each of them was made.
    Event.DELIVERY_AWAITING_REVIEW: (
        Audience(aggregator_staff, "notice.review_waiting", digest=review_topic,
                 still=Still(DELIVERY, needs_staff)),),
    Event.DELIVERY_LOCKED: (
        Audience(aggregator_staff, "notice.delivery_locked", still=Still(DELIVERY, locked)),),
    Event.DELIVERY_FAILED: (
        # A fact, with what happens next: a new volunteer's news follows it.
        Audience(household, "notice.delivery_failed"),
        Audience(aggregator_staff, "notice.review_waiting", digest=review_topic,
                 still=Still(DELIVERY, needs_staff)),
    ),
    Event.DELIVERY_DISPUTED: (
        Audience(aggregator_staff, "notice.review_waiting", digest=review_topic,
                 still=Still(DELIVERY, needs_staff)),),
    # Outcomes of the household's own report: final.
    Event.DISPUTE_DISMISSED: (Audience(household, "notice.dispute_dismissed"),),
    Event.DISPUTE_UPHELD: (Audience(household, "notice.dispute_upheld"),),
    # "Deliver it with the code, or send a new photo": moot once they did either, or it
    # failed, or it went to someone else.
    Event.DELIVERY_PROOF_REJECTED: (
        Audience(volunteer, "notice.proof_rejected", actions=task_actions,
                 still=Still(DELIVERY, on_the_way_with_them)),),
    # They must stop bringing it, whatever became of it since. Should it come back to
    # them, its new task card follows this.
    Event.TASK_REASSIGNED_AWAY: (Audience(person, "notice.task_reassigned"),),
    # Final: a cancelled delivery does not come back, and what they picked up goes back.
    Event.TASK_CANCELLED: (Audience(person, "notice.task_cancelled"),),
    # "Deliveries wait for a new volunteer": not once each of them has one (while some
    # wait, the count is the one of the moment the volunteer left).
    Event.TASKS_RETURNED: (
        Audience(aggregator_staff, "notice.tasks_returned",
                 still=Still(DELIVERY, open_for_volunteers)),),
    # "Back in the queue, we will allocate again": moot once aid was allocated again, or
    # the household took the request back.
    # A volunteer who hands tasks back again and again: true once it happened.
    Event.VOLUNTEER_FLAGGED: (Audience(aggregator_staff, "notice.volunteer_flagged"),),
    Event.REQUEST_REQUEUED: (
        Audience(household, "notice.request_requeued", still=Still(REQUEST, verified)),),
    Event.VOLUNTEER_PENDING: (
        Audience(aggregator_staff, "notice.volunteer_pending", digest=volunteers_topic,
                 still=Still(VOLUNTEER, pending)),),
    # Wrong once they left or signed up again (and are waiting, or decided on anew).
    Event.VOLUNTEER_APPROVED: (
        Audience(person, "notice.volunteer_approved",
                 still=Still(VOLUNTEER, approved)),),
    Event.VOLUNTEER_DECLINED: (
        Audience(person, "notice.volunteer_declined",
                 still=Still(VOLUNTEER, declined)),),
    Event.PLEDGE_COMPLETED: (Audience(donor, "notice.pledge_completed"),),
    # "You did not finish": not once they came back to it.
    Event.DIALOG_UNFINISHED: (
        Audience(household, "notice.dialog_unfinished", Purpose.REMINDER,
                 actions=resume_action, still=Still(CONVERSATION, untouched)),
    ),
    # Facts: a request, a delivery or a pledge closed because the person had their data
    # erased. They name the reference or code only, never the person.
    Event.REQUEST_WITHDRAWN: (Audience(staff_covering, "notice.request_withdrawn"),),
    Event.TASK_WITHDRAWN: (Audience(person, "notice.task_withdrawn"),),
    Event.PLEDGE_WITHDRAWN: (Audience(aggregator_staff, "notice.pledge_withdrawn"),),
    # "An organisation now serves your area": moot once the request was taken back. Its
    # new staff hear of it as of a new request.
    Event.REQUEST_COVERED: (
        Audience(household, "notice.request_covered",
                 still=Still(REQUEST, awaits_an_aggregator)),
        Audience(staff_covering, "notice.queue_new", digest=queue_topic,
                 still=Still(REQUEST, waits_for_review)),
    ),
    # "A pledge is coming to your posko" / "a donor asks you to pick up": moot once it
    # was received or cancelled. In staff's digest when they chose it (the digest's own
    # words then, for any number of pledges).
    Event.PLEDGE_MADE: (
        Audience(aggregator_staff, "notice.pledge_new", digest=new_pledges_topic,
                 digest_key="notice.pledges_waiting", still=Still(PLEDGE, awaits_handover)),),
    Event.PICKUP_REQUESTED: (
        Audience(aggregator_staff, "notice.pickup_requested", digest=new_pledges_topic,
                 digest_key="notice.pledges_waiting", still=Still(PLEDGE, awaits_handover)),),
    # Facts about their organisation, whatever followed.
    Event.AGGREGATOR_DISABLED: (Audience(aggregator_staff, "notice.aggregator_disabled"),),
    Event.AGGREGATOR_ENABLED: (Audience(aggregator_staff, "notice.aggregator_enabled"),),
    # Facts: a proxy taken out, and the households whose news now reaches nobody.
    Event.PROXY_REMOVED: (Audience(person, "notice.proxy_removed"),),
    Event.PROXY_HOUSEHOLDS_UNFOLLOWED: (
        Audience(aggregator_staff, "notice.proxy_households_unfollowed"),),
}

# Each rule by the name its rows carry.
STILL: dict[str, Still] = {audience.still.name: audience.still
                           for audiences in RULES.values() for audience in audiences
                           if audience.still is not None}


def _subject_ids(kind: SubjectKind, subject: Subject) -> tuple[int, ...]:
    if kind is SubjectKind.REQUEST:
        return (subject.request.id,) if subject.request is not None else ()
    if kind is SubjectKind.DELIVERY:
        return (subject.delivery.id,) if subject.delivery is not None \
            else subject.delivery_ids
    if kind is SubjectKind.PLEDGE:
        return (subject.pledge.id,) if subject.pledge is not None else ()
    found = subject.volunteer_id if kind is SubjectKind.VOLUNTEER \
        else subject.conversation_id
    return (found,) if found is not None else ()


def about(still: Still | None, subject: Subject) -> About | None:
    """What the notice of an audience is about, for the check at sending (None: it is
    always sent)."""
    if still is None:
        return None
    ids = _subject_ids(still.kind, subject)
    if not ids:
        return None
    code = subject.delivery.code if subject.delivery is not None else None
    return About(still.name, ids, code)


async def announce(session: AsyncSession, event: Event, subject: Subject, now: datetime,
                   actor_contact_id: int | None = None) -> list[Notice]:
    """Write an outbox row for each person who hears of the event, except the actor.

    Returns the notices meant for the actor, for their direct reply.
    """
    for_actor: list[Notice] = []
    params = _params(subject)
    for audience in RULES[event]:
        subject_of = about(audience.still, subject)
        for contact_id in await audience.recipients(session, subject):
            notice = Notice(contact_id=contact_id, key=audience.key, params=params,
                            purpose=audience.purpose, essential=audience.essential,
                            actions=audience.actions(subject), about=subject_of)
            if contact_id == actor_contact_id:
                for_actor.append(notice)
            elif (topic := audience.digest(subject) if audience.digest else None) is not None:
                await note_change(session, contact_id, topic,
                                  audience.digest_key or audience.key, params,
                                  audience.essential, now, subject_of)
            else:
                enqueue(session, notice, now)
    return for_actor
