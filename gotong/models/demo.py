"""The playground's demo data: an aid organisation covering one kecamatan of Jakarta, its
staff member and an approved volunteer, each the person behind one playground screen.

Everything is fictional, and made with the same domain operations the operator's commands
and the chat use (an aggregator, an invite redeemed, a volunteer signed up), so the demo
behaves as a real deployment would. The household and the donor start with nothing and
register in chat.

Demo data never mixes with real data. Demo rows are known: aggregators marked `demo`, and
the contacts of the playground's channel with all they did there. Demo data is loaded
only into a database without real data, and `gotong demo clear` removes exactly the demo
rows, refusing while real aid is tied to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.aggregator import (
    Aggregator,
    AggregatorArea,
    Invite,
    InviteRole,
    Posko,
    StaffMember,
    create_aggregator,
    create_invite,
    redeem_invite,
)
from gotong.models.area import AreaDirectory, AreaEntry, AreaLevel
from gotong.models.audit import AuditEntry
from gotong.models.contact import Contact, ContactRole, get_or_create_contact
from gotong.models.conversation import Conversation
from gotong.models.dashboard import DashboardSession, SignInLink
from gotong.models.delivery import Delivery, DeliverySource
from gotong.models.digest import Digest
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.outbox import OutboxMessage
from gotong.models.pledge import Pledge
from gotong.models.stock import StockItem
from gotong.models.volunteer import NewVolunteer, Volunteer, VolunteerArea, register_volunteer

CHANNEL = "web"  # the playground's channel (bot/playground.py)
STAFF_CHAT = "staff"
VOLUNTEER_CHAT = "volunteer"
AGGREGATOR_NAME = "Posko Contoh (demo)"
POSKO = Posko("Jl. Contoh No. 1, Setia Budi (alamat fiktif)", "Senin-Sabtu 08.00-16.00")
VOLUNTEER_NAME = "Rizky Contoh"
# The number the volunteer screen shares (bot/playground.py): fictional.
VOLUNTEER_PHONE = "+6281200000003"
# Where the demo happens; when the area data names them otherwise, the first kota,
# kecamatan and kelurahan in alphabetical order are taken instead.
KOTA = "Jakarta Selatan"
KECAMATAN = "Setia Budi"
KELURAHAN = "Karet Semanggi"


@dataclass(frozen=True)
class DemoArea:
    kota: AreaEntry
    kecamatan: AreaEntry
    kelurahan: AreaEntry


def _named_or_first(areas: AreaDirectory, level: AreaLevel, name: str,
                    candidates: list[AreaEntry], within: AreaEntry | None) -> AreaEntry:
    found = areas.named(level, name, [within.id] if within is not None else ())
    if found:
        return found[0]
    if not candidates:
        raise LookupError(f"no {level.value} for the demo: load the areas first")
    return candidates[0]


def demo_area(areas: AreaDirectory) -> DemoArea:
    """The kota, kecamatan and kelurahan of the demo, the same on every run."""
    kota = _named_or_first(areas, AreaLevel.REGENCY, KOTA, areas.regencies(), None)
    kecamatan = _named_or_first(areas, AreaLevel.DISTRICT, KECAMATAN,
                                areas.children(kota.id), kota)
    kelurahan = _named_or_first(areas, AreaLevel.VILLAGE, KELURAHAN,
                                areas.children(kecamatan.id), kecamatan)
    return DemoArea(kota, kecamatan, kelurahan)


class RealData(Exception):
    """The database holds real data: demo data is not mixed into it."""


async def has_demo_data(session: AsyncSession) -> bool:
    return await session.scalar(select(Aggregator.id).where(Aggregator.demo).limit(1)) \
        is not None


async def has_real_data(session: AsyncSession) -> bool:
    """An aggregator the operator added, or anyone who wrote from a chat app."""
    real_aggregator = await session.scalar(
        select(Aggregator.id).where(Aggregator.demo.is_(False)).limit(1))
    real_contact = await session.scalar(
        select(Contact.id).where(Contact.channel != CHANNEL).limit(1))
    return real_aggregator is not None or real_contact is not None


async def seed_demo(session: AsyncSession, areas: AreaDirectory, now: datetime,
                    language: str) -> bool:
    """Make the demo's aggregator, staff member and volunteer; False if they exist.

    Raises RealData, and makes nothing, when the database holds real data.
    """
    if await has_demo_data(session):
        return False
    if await has_real_data(session):
        raise RealData("the database holds real data")
    place = demo_area(areas)
    aggregator = await create_aggregator(session, AGGREGATOR_NAME, POSKO,
                                         [place.kecamatan.id], now, demo=True)
    # The staff screen joins as a person would, with a one-time code used at once.
    staff, _ = await get_or_create_contact(session, CHANNEL, STAFF_CHAT, language, now)
    code = await create_invite(session, aggregator.id, InviteRole.STAFF, 1,
                               now + timedelta(hours=1), now)
    if await redeem_invite(session, code, InviteRole.STAFF, staff.id, now) is None:
        raise AssertionError("a fresh invite was refused")
    volunteer, _ = await get_or_create_contact(session, CHANNEL, VOLUNTEER_CHAT, language,
                                               now)
    # As if the volunteer had shared their number from the app when signing up.
    volunteer.verified_phone = VOLUNTEER_PHONE
    await register_volunteer(session, volunteer.id, NewVolunteer(
        aggregator_id=aggregator.id, name=VOLUNTEER_NAME, phone=VOLUNTEER_PHONE,
        area_ids=[place.kecamatan.id], travel="motorbike", capacity=10, approved=True,
    ), now)
    return True


@dataclass(frozen=True)
class ClearedDemo:
    aggregators: int
    contacts: int
    requests: int
    pledges: int


class MixedData(Exception):
    """Real aid is tied to demo rows (a real household served by the demo organisation,
    a real donor's pledge to it...): clearing would take real records with it."""


async def clear_demo(session: AsyncSession) -> ClearedDemo:
    """Delete the demo rows and everything that hangs on them, and nothing else.

    Raises MixedData, deleting nothing, when real aid is tied to demo rows.
    """
    aggregators = list((await session.scalars(
        select(Aggregator.id).where(Aggregator.demo))).all())
    contacts = list((await session.scalars(
        select(Contact.id).where(Contact.channel == CHANNEL))).all())
    requests = list((await session.scalars(
        select(HelpRequest.id).where(HelpRequest.contact_id.in_(contacts)))).all())
    pledges = (await session.execute(
        select(Pledge.id, Pledge.contact_id.in_(contacts), Pledge.aggregator_id.in_(aggregators))
        .where(or_(Pledge.contact_id.in_(contacts),
                   Pledge.aggregator_id.in_(aggregators))))).all()
    deliveries = (await session.execute(
        select(Delivery.id, Delivery.request_id.in_(requests),
               Delivery.aggregator_id.in_(aggregators))
        .where(or_(Delivery.request_id.in_(requests),
                   Delivery.aggregator_id.in_(aggregators))))).all()
    if any(not (by_demo and to_demo) for _, by_demo, to_demo in pledges) or \
            any(not (for_demo and by_demo) for _, for_demo, by_demo in deliveries):
        raise MixedData("real aid is tied to demo rows")
    delivery_ids = [row[0] for row in deliveries]
    pledge_ids = [row[0] for row in pledges]
    volunteers = select(Volunteer.id).where(or_(Volunteer.aggregator_id.in_(aggregators),
                                                Volunteer.contact_id.in_(contacts)))
    for statement in (
            delete(DeliverySource).where(DeliverySource.delivery_id.in_(delivery_ids)),
            delete(Delivery).where(Delivery.id.in_(delivery_ids)),
            update(Delivery).where(Delivery.volunteer_id.in_(volunteers))
            .values(volunteer_id=None),
            update(Delivery).where(Delivery.allocated_by.in_(contacts))
            .values(allocated_by=None),
            delete(RequestEvent).where(RequestEvent.request_id.in_(requests)),
            update(RequestEvent).where(RequestEvent.actor_contact_id.in_(contacts))
            .values(actor_contact_id=None),
            update(HelpRequest).where(HelpRequest.duplicate_of_id.in_(requests))
            .values(duplicate_of_id=None),
            delete(HelpRequest).where(HelpRequest.id.in_(requests)),
            delete(Pledge).where(Pledge.id.in_(pledge_ids)),
            delete(StockItem).where(StockItem.aggregator_id.in_(aggregators)),
            delete(VolunteerArea).where(VolunteerArea.volunteer_id.in_(volunteers)),
            update(Volunteer).where(Volunteer.decided_by.in_(contacts))
            .values(decided_by=None),
            delete(Volunteer).where(Volunteer.id.in_(volunteers)),
            delete(Invite).where(Invite.aggregator_id.in_(aggregators)),
            delete(StaffMember).where(or_(StaffMember.aggregator_id.in_(aggregators),
                                          StaffMember.contact_id.in_(contacts))),
            delete(AggregatorArea).where(AggregatorArea.aggregator_id.in_(aggregators)),
            delete(AuditEntry).where(or_(AuditEntry.aggregator_id.in_(aggregators),
                                         AuditEntry.contact_id.in_(contacts))),
            delete(OutboxMessage).where(OutboxMessage.contact_id.in_(contacts)),
            delete(Digest).where(Digest.contact_id.in_(contacts)),
            delete(Conversation).where(Conversation.contact_id.in_(contacts)),
            delete(SignInLink).where(SignInLink.contact_id.in_(contacts)),
            delete(DashboardSession).where(DashboardSession.contact_id.in_(contacts)),
            delete(ContactRole).where(ContactRole.contact_id.in_(contacts)),
            update(Contact).where(Contact.person_id.in_(contacts)).values(person_id=None),
            delete(Contact).where(Contact.id.in_(contacts)),
            delete(Aggregator).where(Aggregator.id.in_(aggregators))):
        await session.execute(statement.execution_options(synchronize_session=False))
    return ClearedDemo(len(aggregators), len(contacts), len(requests), len(pledge_ids))
