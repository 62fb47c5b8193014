"""Who hears what when aid moves: the table of PRODUCT.md as data.

Every domain operation that changes the state of aid calls `announce` with what happened.
The rule for that event names the audiences (the household, later the donors, volunteers
and staff concerned) and the message each one gets. Each recipient gets an outbox row in
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

from gotong.models.aggregator import AggregatorArea, StaffMember
from gotong.models.area import Area
from gotong.models.digest import note_change
from gotong.models.outbox import Notice, Purpose, enqueue
from gotong.models.volunteer import Volunteer, VolunteerArea, VolunteerStatus

# What an announcement reads of the aid it is about. Protocols rather than the models
# themselves: the aggregates announce their own changes, so they import this module.


class AnnouncedRequest(Protocol):
    @property
    def reference(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def village_id(self) -> int: ...


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


Recipients = Callable[[AsyncSession, Subject], Awaitable[list[int]]]


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
    digest: Callable[[Subject], str] | None = None

    @property
    def essential(self) -> bool:
        return self.purpose <= Purpose.STATUS


async def household(session: AsyncSession, subject: Subject) -> list[int]:
    """The person whose request it is (or who the reminder is for)."""
    if subject.request is not None:
        return [subject.request.contact_id]
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
    """Staff of the aggregators covering the request's kelurahan (or its kecamatan or
    kota)."""
    if subject.request is None:
        return []
    area_ids = await _areas_holding(session, subject.request.village_id)
    result = await session.scalars(
        select(StaffMember.contact_id).distinct()
        .join(AggregatorArea, AggregatorArea.aggregator_id == StaffMember.aggregator_id)
        .where(AggregatorArea.area_id.in_(area_ids)))
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


RULES: dict[Event, tuple[Audience, ...]] = {
    Event.REQUEST_SUBMITTED: (
        Audience(household, "notice.request_submitted"),
        Audience(staff_covering, "notice.queue_new", digest=queue_topic),
    ),
    Event.REQUEST_CANCELLED: (Audience(household, "notice.request_cancelled"),),
    Event.REQUEST_VERIFIED: (Audience(household, "notice.request_verified"),),
    Event.REQUEST_REJECTED: (Audience(household, "notice.request_rejected"),),
    Event.REQUEST_ALLOCATED: (Audience(household, "notice.request_allocated"),),
    Event.PLEDGE_RECEIVED: (Audience(donor, "notice.pledge_received"),),
    Event.PLEDGE_PROGRESS: (Audience(donor, "notice.pledge_progress", digest=pledge_topic),),
    Event.REQUEST_DELIVERED: (
        Audience(household, "notice.request_delivered", actions=rating_actions),),
    Event.DELIVERY_OPEN: (
        Audience(volunteers_covering, "notice.tasks_open", digest=open_tasks_topic),),
    Event.DELIVERY_ASSIGNED: (
        Audience(household, "notice.delivery_assigned", actions=receipt_actions),
        Audience(volunteer, "notice.task_assigned", actions=task_actions),
    ),
    Event.DELIVERY_ON_THE_WAY: (
        Audience(household, "notice.delivery_on_the_way", actions=receipt_actions),),
    Event.DELIVERY_AWAITING_REVIEW: (
        Audience(aggregator_staff, "notice.review_waiting", digest=review_topic),),
    Event.DELIVERY_LOCKED: (Audience(aggregator_staff, "notice.delivery_locked"),),
    Event.DELIVERY_FAILED: (
        Audience(household, "notice.delivery_failed"),
        Audience(aggregator_staff, "notice.review_waiting", digest=review_topic),
    ),
    Event.DELIVERY_DISPUTED: (
        Audience(aggregator_staff, "notice.review_waiting", digest=review_topic),),
    Event.DISPUTE_DISMISSED: (Audience(household, "notice.dispute_dismissed"),),
    Event.DISPUTE_UPHELD: (Audience(household, "notice.dispute_upheld"),),
    Event.DELIVERY_PROOF_REJECTED: (
        Audience(volunteer, "notice.proof_rejected", actions=task_actions),),
    Event.TASK_REASSIGNED_AWAY: (Audience(person, "notice.task_reassigned"),),
    Event.TASK_CANCELLED: (Audience(person, "notice.task_cancelled"),),
    Event.TASKS_RETURNED: (Audience(aggregator_staff, "notice.tasks_returned"),),
    Event.VOLUNTEER_FLAGGED: (Audience(aggregator_staff, "notice.volunteer_flagged"),),
    Event.REQUEST_REQUEUED: (Audience(household, "notice.request_requeued"),),
    Event.VOLUNTEER_PENDING: (
        Audience(aggregator_staff, "notice.volunteer_pending", digest=volunteers_topic),),
    Event.VOLUNTEER_APPROVED: (Audience(person, "notice.volunteer_approved"),),
    Event.VOLUNTEER_DECLINED: (Audience(person, "notice.volunteer_declined"),),
    Event.PLEDGE_COMPLETED: (Audience(donor, "notice.pledge_completed"),),
    Event.DIALOG_UNFINISHED: (
        Audience(household, "notice.dialog_unfinished", Purpose.REMINDER,
                 actions=resume_action),
    ),
}


async def announce(session: AsyncSession, event: Event, subject: Subject, now: datetime,
                   actor_contact_id: int | None = None) -> list[Notice]:
    """Write an outbox row for each person who hears of the event, except the actor.

    Returns the notices meant for the actor, for their direct reply.
    """
    for_actor: list[Notice] = []
    params = _params(subject)
    for audience in RULES[event]:
        for contact_id in await audience.recipients(session, subject):
            notice = Notice(contact_id=contact_id, key=audience.key, params=params,
                            purpose=audience.purpose, essential=audience.essential,
                            actions=audience.actions(subject))
            if contact_id == actor_contact_id:
                for_actor.append(notice)
            elif audience.digest is not None:
                await note_change(session, contact_id, audience.digest(subject), audience.key,
                                  params, audience.essential, now)
            else:
                enqueue(session, notice, now)
    return for_actor
