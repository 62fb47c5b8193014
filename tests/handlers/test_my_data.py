"""A person's data on request (/my_data) and gone on request (/delete_my_data), through the
console chat: everything shown in plain words, the NIK never in clear; after erasure no
table holds their name, phone, address or NIK hash, the public figures are unchanged, what
was open is closed first with the people working on it told, and the chat starts afresh.
Retention erases the same way once requests are closed long enough."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, select
from sqlalchemy.orm import selectinload

from gotong.bot.dispatcher import Dispatcher, DispatchSettings
from gotong.bot.services import Services
from gotong.models.aggregator import StaffMember
from gotong.models.allocation import Pick, allocate
from gotong.models.contact import Contact, ContactRole
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.disclosure import public_snapshot
from gotong.models.help_request import HelpRequest, reject_request, verify_request
from gotong.models.inbound import InboundUpdate
from gotong.models.nik import nik_hash
from gotong.models.outbox import OutboxMessage, OutboxStatus, Purpose
from gotong.models.person import link_contacts
from gotong.models.pledge import Handover, NewPledge, Pledge, create_pledge
from gotong.models.request_status import RequestStatus
from gotong.models.tasks import assign, confirm_with_code
from gotong.models.volunteer import NewVolunteer, Volunteer, register_volunteer
from tests.chat import Chat
from tests.conftest import NIK_KEY
from tests.handlers.test_household_form import NIK, register, start_request
from tests.handlers.test_staff_stock import join
from tests.lookups import outbox
from tests.models.aid_world import AidWorld

SELATAN = "Jakarta Selatan"
# What the household of `register` tells the bot.
NAME, PHONE_DIGITS, STREET = "Siti Aminah", "81234567890", "Melati No. 5"
WHATSAPP_NUMBER = "6281234567890"


# --- looking through every table ---------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


async def tables_holding(services: Services, needles: Iterable[str]) -> dict[str, set[str]]:
    """Where in the database (table.column) each of the needles is found, in any row of
    any table and any column, as the database's own schema says it is."""
    needles = list(needles)
    found: dict[str, set[str]] = {}
    async with services.engine.connect() as connection:
        metadata = MetaData()
        await connection.run_sync(lambda sync: metadata.reflect(bind=sync))
        assert {"help_request", "contact", "outbox_message", "inbound_update"} \
            <= set(metadata.tables)
        for table in metadata.sorted_tables:
            for row in (await connection.execute(select(table))).all():
                for column, value in zip(table.columns, row, strict=True):
                    if value is None:
                        continue
                    text = _as_text(value)
                    for needle in needles:
                        if needle in text:
                            found.setdefault(needle, set()).add(f"{table.name}.{column.name}")
    return found


async def figures(services: Services) -> tuple[Any, Any]:
    """The public page's figures, nothing hidden (a count of 1 shows)."""
    today = date.today()
    async with services.sessions() as session:
        snapshot = await public_snapshot(session, services.areas, since=today - timedelta(days=30),
                                         until=today + timedelta(days=1),
                                         timezone="Asia/Jakarta", min_count=1)
    return snapshot.totals, snapshot.areas


# --- a world of aid around one household -----------------------------------------------


class Neighbourhood:
    """An aggregator covering Jakarta Selatan with a staff member, three packages in
    stock and a volunteer, around households that register in chat."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.world = AidWorld(services)
        self.now = self.world.now
        self.aggregator = 0
        self.volunteer_id = 0
        self.volunteer_contact = 0

    async def setup(self) -> Neighbourhood:
        self.aggregator = await self.world.aggregator(SELATAN)
        await self.world.pledge(self.aggregator, 3, received=3)
        async with self.services.sessions() as session, session.begin():
            session.add(StaffMember(contact_id=self.world.staff_id,
                                    aggregator_id=self.aggregator))
        return self

    async def request_of(self, chat: Chat) -> HelpRequest:
        async with self.services.sessions() as session:
            request = await session.scalar(
                select(HelpRequest).join(Contact, Contact.id == HelpRequest.contact_id)
                .where(Contact.chat_id == chat.chat_id))
        assert request is not None
        return request

    async def contact_of(self, chat: Chat) -> Contact:
        async with self.services.sessions() as session:
            contact = await session.scalar(select(Contact).where(
                Contact.channel == "console", Contact.chat_id == chat.chat_id))
        assert contact is not None
        return contact

    async def allocate_to(self, request_id: int) -> int:
        """Verify the request and give it one package; the delivery's id."""
        async with self.services.sessions() as session, session.begin():
            request = await session.get(HelpRequest, request_id)
            assert request is not None
            await verify_request(session, request, self.world.staff_id, self.now)
            outcome = await allocate(session, self.services.areas, self.aggregator,
                                     "food_package", 1, [Pick(request_id)],
                                     self.world.staff_id, self.now, timedelta(days=14))
        [delivery] = outcome.deliveries
        return delivery.id

    async def assign_to_volunteer(self, delivery_id: int, village_id: int) -> Delivery:
        if not self.volunteer_id:
            self.volunteer_contact = await self.world.contact()
            async with self.services.sessions() as session, session.begin():
                signed_up = await register_volunteer(
                    session, self.volunteer_contact, NewVolunteer(
                        aggregator_id=self.aggregator, name="Budi Santoso",
                        phone="+6281200001111",
                        area_ids=[self.world.district_of(village_id)], travel="motorbike",
                        capacity=5, approved=True), self.now)
                self.volunteer_id = signed_up.id
        async with self.services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, delivery_id)
            volunteer = await session.get(Volunteer, self.volunteer_id,
                                          options=[selectinload(Volunteer.areas)])
            assert delivery is not None and volunteer is not None
            await assign(session, self.services.areas, delivery, volunteer,
                         self.world.staff_id, self.now)
            return delivery

    async def deliver(self, delivery_id: int, village_id: int) -> None:
        await self.assign_to_volunteer(delivery_id, village_id)
        async with self.services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, delivery_id)
            volunteer = await session.get(Volunteer, self.volunteer_id)
            assert delivery is not None and volunteer is not None
            check = await confirm_with_code(session, self.services.areas, delivery, volunteer,
                                            delivery.code or "", self.now)
            assert check.delivered


async def erase(chat: Chat) -> str:
    """/delete_my_data and its "yes" button; the answer."""
    await chat.say("/delete_my_data")
    assert chat.last.context == "erase", chat.last.text
    [yes] = [o.id for o in chat.last.options if o.id.startswith("yes:")]
    await chat.tap(yes)
    return chat.last.text


# --- the tests -------------------------------------------------------------------------


async def test_my_data_shows_everything_on_every_app_and_erasure_leaves_nothing_but_counts(
        services: Services) -> None:
    place = await Neighbourhood(services).setup()
    chat = Chat(services.conversations, chat_id="household-1")
    await register(chat)
    request = await place.request_of(chat)
    contact = await place.contact_of(chat)
    await place.deliver(await place.allocate_to(request.id), request.village_id)
    # The same person on WhatsApp, with an update of that chat still kept; a pledge of
    # theirs to be picked up at home; a volunteer's message that names their street.
    async with services.sessions() as session, session.begin():
        whatsapp = Contact(channel="whatsapp", chat_id=WHATSAPP_NUMBER, language="id",
                           verified_phone="+" + WHATSAPP_NUMBER, created_at=place.now)
        session.add(whatsapp)
        await session.flush()
        await link_contacts(session, whatsapp.id, [contact.id])
        session.add(InboundUpdate(channel="whatsapp", external_id="wamid.1",
                                  chat_id=WHATSAPP_NUMBER, received_at=place.now,
                                  set_aside_at=place.now,
                                  payload={"contacts": [{"profile": {"name": NAME}}]}))
        pledge = await create_pledge(session, contact.id, NewPledge(
            organisation=False, donor_name=NAME, phone="+62" + PHONE_DIGITS,
            category="hygiene", quantity=2, target_area_id=None,
            aggregator_id=place.aggregator, handover=Handover.PICKUP,
            pickup_address="Jl. " + STREET, pickup_window="pagi"), place.now)
        session.add(OutboxMessage(contact_id=place.volunteer_contact,
                                  priority=Purpose.REPLY, essential=True,
                                  body={"replies": [{"text": f"Antar ke Jl. {STREET}"}]},
                                  status=OutboxStatus.PENDING))
    nik = nik_hash(NIK, NIK_KEY.encode())

    await chat.say("/my_data")
    shown = "\n".join(r.text for r in chat.replies[-3:])
    for part in (NAME, "+62" + PHONE_DIGITS, "Jl. " + STREET, "Karet Semanggi",
                 "ending in 0001", request.reference, "WhatsApp", WHATSAPP_NUMBER,
                 pledge.code, "household, donor", "You agreed"):
        assert part in shown, part
    assert NIK not in shown and nik not in shown
    assert chat.last.options[0].id == "erase"

    needles = (NAME, "Aminah", PHONE_DIGITS, STREET, nik)
    before = await tables_holding(services, needles)
    # The scan finds each of them where it is before.
    assert set(before) == set(needles)
    assert {"help_request.head_name", "pledge.donor_name",
            "inbound_update.payload"} <= before[NAME]
    assert "outbox_message.body" in before[STREET]
    figures_before = await figures(services)

    await chat.tap("erase", "mydata")
    assert "Erase all your personal data" in chat.last.text
    answer = await erase(chat)
    assert "Your personal data has been erased" in answer

    assert await tables_holding(services, needles) == {}
    assert await tables_holding(services, [WHATSAPP_NUMBER, NIK]) == {}
    assert await figures(services) == figures_before
    async with services.sessions() as session:
        kept = await session.get(HelpRequest, request.id)
        assert kept is not None
        assert (kept.status, kept.village_id, kept.household_size, kept.nik_last4) == (
            RequestStatus.DELIVERED, request.village_id, 4, None)
        assert kept.erased_at is not None
        [delivery] = (await session.scalars(select(Delivery))).all()
        assert delivery.status == DeliveryStatus.DELIVERED and delivery.code is None
        assert (await session.get(Pledge, pledge.id)).status == "cancelled"  # type: ignore[union-attr]
        tombstones = (await session.scalars(select(Contact).where(
            Contact.id.in_([contact.id, whatsapp.id])))).all()
        assert all(c.chat_id.startswith("erased:") and c.verified_phone is None
                   for c in tombstones)
        assert (await session.scalars(select(ContactRole).where(
            ContactRole.contact_id.in_([contact.id, whatsapp.id])))).all() == []
    # The volunteer's message naming the street is not sent any more.
    assert [r.status for r in await outbox(services, contact_id=place.volunteer_contact)
            if r.message_key is None] == ["skipped"]

    # The chat goes on afresh: nothing of before is theirs.
    await chat.say("/status")
    assert "You have no requests" in chat.replies[-1].text or \
        request.reference not in chat.replies[-1].text
    await chat.say("/my_data")
    assert NAME not in "\n".join(r.text for r in chat.replies[-3:])
    assert (await place.contact_of(chat)).id not in (contact.id, whatsapp.id)


async def test_what_is_open_is_closed_first_and_the_people_on_it_are_told(
        services: Services) -> None:
    place = await Neighbourhood(services).setup()
    chat = Chat(services.conversations, chat_id="household-2")
    await register(chat)
    request = await place.request_of(chat)
    delivery_id = await place.allocate_to(request.id)
    await place.assign_to_volunteer(delivery_id, request.village_id)
    assert await place.world.stock(place.aggregator) == 2

    await chat.say("/delete_my_data")
    assert f"open request {request.reference} will be cancelled" in chat.last.text
    answer = await erase(chat)
    assert f"Cancelled first: {request.reference}" in answer

    async with services.sessions() as session:
        delivery = await session.get(Delivery, delivery_id)
        kept = await session.get(HelpRequest, request.id)
    assert delivery is not None and kept is not None
    assert (delivery.status, kept.status) == (DeliveryStatus.CANCELLED, RequestStatus.CANCELLED)
    assert await place.world.stock(place.aggregator) == 3
    [task] = await outbox(services, "notice.task_withdrawn")
    assert task.contact_id == place.volunteer_contact
    assert task.params["reference"] == request.reference
    staff_told = await outbox(services, "notice.request_withdrawn")
    assert [row.contact_id for row in staff_told] == [place.world.staff_id]
    assert NAME not in json.dumps([row.params for row in await outbox(services)])


async def test_staff_who_erase_their_data_end_their_role_and_are_told_so(
        services: Services) -> None:
    place = await Neighbourhood(services).setup()
    staff = await join(place.world, place.aggregator, "staff-chat")
    await staff.say("/delete_my_data")
    assert "Your staff role at Posko Jakarta Selatan will end" in staff.last.text
    answer = await erase(staff)
    assert "Your staff role at Posko Jakarta Selatan has ended" in answer
    contact = await place.contact_of(staff)
    async with services.sessions() as session:
        members = (await session.scalars(select(StaffMember.contact_id))).all()
    assert members == [place.world.staff_id]
    await staff.say("/queue")
    assert contact.id not in members and "staff" in staff.last.text.lower()


async def test_only_the_button_of_this_question_erases(services: Services) -> None:
    chat = Chat(services.conversations, chat_id="household-3")
    await register(chat)
    await chat.say("/delete_my_data")
    [yes] = [o.id for o in chat.last.options if o.id.startswith("yes:")]
    # A made-up token: refused, nothing erased.
    await chat.tap("yes:00000000", "erase")
    assert chat.last.text == "That button belongs to an earlier question."
    # "No" by typing keeps everything; the old button is stale afterwards.
    await chat.say("/delete_my_data")
    await chat.say("2")
    assert chat.last.text == "Nothing was erased."
    await chat.tap(yes, "erase")
    assert chat.last.text.startswith("That button belongs to an earlier question.")
    assert await tables_holding(services, [NAME]) != {}


async def test_retention_erases_what_closed_long_ago_in_the_daily_housekeeping(
        services: Services) -> None:
    world = AidWorld(services)
    village = world.village(SELATAN)
    await world.aggregator(SELATAN)
    old = await world.household(village, name="Lama Sekali", phone="+6281277770001",
                                street="Jl. Kenanga 9", verified=False)
    still_open = await world.household(village, name="Masih Menunggu",
                                       phone="+6281277770002", street="Jl. Anggrek 4")
    async with services.sessions() as session, session.begin():
        request = await session.get(HelpRequest, old)
        assert request is not None
        await reject_request(session, request, world.staff_id, "incomplete", world.now)
    # A registration left half-way: its answers so far.
    draft = Chat(services.conversations, chat_id="left-halfway")
    await start_request(draft)
    await draft.say("Dewi Lestari")
    needles = ("Lama Sekali", "6281277770001", "Jl. Kenanga 9", "Dewi Lestari")
    kept_needles = ("Masih Menunggu", "Jl. Anggrek 4")
    figures_before = await figures(services)

    async def housekeeping_on(day: datetime) -> None:
        dispatcher = Dispatcher(services.engine, services.catalog, {}, {},
                                DispatchSettings(retention=timedelta(days=365)),
                                clock=lambda: day)
        await dispatcher.run_until_idle()

    await housekeeping_on(world.now + timedelta(days=300))
    assert set(await tables_holding(services, needles)) == set(needles)
    await housekeeping_on(world.now + timedelta(days=366))
    assert await tables_holding(services, needles) == {}
    # An open request is never erased by retention, however old.
    assert set(await tables_holding(services, kept_needles)) == set(kept_needles)
    assert await figures(services) == figures_before
    assert await world.statuses([old, still_open]) == [RequestStatus.REJECTED,
                                                       RequestStatus.VERIFIED]
