"""News that arrives after the fact is never sent stale. Each scenario plays the real steps
(the domain operations, or the conversations for what is decided in chat) while the
dispatcher is held, so that what a notice tells of moves on while it waits; then the
dispatcher sends through the real Telegram channel to the fake Bot API. A notice whose
subject has moved on is skipped as "outdated" and never reaches the chat; beside it, a
notice whose subject did not move on is sent, and news that stays true once it happened
(delivered, cancelled, rejected, taken off a task) is sent whatever followed it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.catalog import Catalog
from gotong.handlers.conversations import FORMS
from gotong.handlers.messages import Incoming, Reply
from gotong.models.aggregator import StaffMember
from gotong.models.allocation import Pick, allocate
from gotong.models.base import utcnow
from gotong.models.contact import Contact, get_or_create_contact
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.digest import send_digests
from gotong.models.help_request import (
    HelpRequest,
    cancel_request,
    reject_request,
    verify_request,
)
from gotong.models.notifications import RULES
from gotong.models.reminders import queue_reminders
from gotong.models.tasks import (
    MAX_WRONG_CODES,
    advance,
    cancel,
    confirm_with_code,
    fail,
    household_answer,
    leave,
    resolve_dispute,
    review_proof,
    submit_proof,
)
from gotong.models.volunteer import Volunteer
from tests.bot.dispatch_harness import DispatchUnderTest, dispatch_config
from tests.chat import Chat
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.handlers.test_staff_stock import join
from tests.handlers.test_volunteers import fill_sign_up, make_invite, use_clock
from tests.lookups import outbox
from tests.models.test_tasks import MAX_FAILURES, TIMUR, Mile, other_code

STAFF_CHAT = "990001"
OUTDATED = ("skipped", "outdated")
SENT = ("sent", None)
# Every notice the rules send, to tell which one a chat received.
NOTICE_KEYS = sorted({audience.key for rules in RULES.values() for audience in rules})


class TelegramChat(Chat):
    """A person chatting with the conversations directly, as a Telegram chat: their news
    goes through the outbox to the fake Bot API like anyone's."""

    async def handle(self, incoming: Incoming) -> list[Reply]:
        return await super().handle(replace(incoming, channel="telegram"))


async def contact_of(services: Services, chat: Chat) -> int:
    async with services.sessions() as session:
        contact_id = await session.scalar(select(Contact.id).where(
            Contact.channel == "telegram", Contact.chat_id == chat.chat_id))
    assert contact_id is not None
    return contact_id


def key_of(catalog: Catalog, language: str, text: str) -> str:
    """The catalog key of a notice the fake received (the longest template it fits)."""
    fits = []
    for key in NOTICE_KEYS:
        parts = re.split(r"\{[^{}]*\}", catalog.raw(language, key))
        if re.match(".*?".join(map(re.escape, parts)), text, re.DOTALL):
            fits.append(key)
    assert fits, text
    return max(fits, key=lambda k: len(catalog.raw(language, k)))


class Scene:
    """The world of a scenario, its Telegram contacts, and what each one got."""

    def __init__(self, services: Services, fake: FakeTelegramAPI, mile: Mile) -> None:
        self.services = services
        self.fake = fake
        self.mile = mile

    @classmethod
    async def make(cls, services: Services, fake: FakeTelegramAPI, stock: int
                   ) -> Scene:
        mile = await Mile(services).setup(stock=stock)
        async with services.sessions() as session, session.begin():
            staff = await session.get(Contact, mile.world.staff_id)
            assert staff is not None
            staff.chat_id = STAFF_CHAT  # a Telegram chat, as every contact of a real bot
        return cls(services, fake, mile)

    async def dispatch(self, config: Config,
                       clock: Callable[[], datetime] = utcnow) -> None:
        """Send what waits now (the dispatcher writes the digests that are due first)."""
        under_test = DispatchUnderTest(self.services, dispatch_config(
            config, self.fake, messages_per_second=200.0, chat_messages_per_second=100.0),
            clock=clock)
        await under_test.channel.open_for_sending()
        try:
            await under_test.dispatcher.run_until_idle()
        finally:
            await under_test.channel.stop()

    async def heard(self, contact_id: int) -> list[str]:
        """The notices the contact's chat received, by key, in order."""
        async with self.services.sessions() as session:
            contact = await session.get(Contact, contact_id)
        assert contact is not None and contact.channel == "telegram"
        return [key_of(self.services.catalog, contact.language, text)
                for text in self.fake.texts(int(contact.chat_id))]

    async def texts(self, contact_id: int) -> list[str]:
        async with self.services.sessions() as session:
            contact = await session.get(Contact, contact_id)
        assert contact is not None
        return self.fake.texts(int(contact.chat_id))

    async def rows(self, contact_id: int) -> list[tuple[str | None, str, str | None]]:
        """The contact's outbox rows: key, status and why, in the order written."""
        return [(r.message_key, r.status, r.last_error)
                for r in await outbox(self.services, contact_id=contact_id)]

    async def household(self, task: int) -> int:
        return (await self.mile.request(task)).contact_id

    async def volunteer(self, volunteer_id: int) -> int:
        return await self.mile.volunteer_contact(volunteer_id)

    # --- the steps of aid, each in its own transaction, as people take them --------------

    @staticmethod
    async def delivery(session: AsyncSession, task: int) -> Delivery:
        found = await session.get(Delivery, task)
        assert found is not None
        return found

    async def on_the_way(self, task: int, volunteer_id: int) -> None:
        async with self.services.sessions() as session, session.begin():
            delivery, volunteer = await self.mile.load(session, task, volunteer_id)
            await advance(session, delivery, DeliveryStatus.ON_THE_WAY, volunteer,
                          self.mile.now)

    async def wrong_codes(self, task: int, volunteer_id: int) -> None:
        """The volunteer types wrong codes until the delivery locks."""
        async with self.services.sessions() as session, session.begin():
            delivery, volunteer = await self.mile.load(session, task, volunteer_id)
            for _ in range(MAX_WRONG_CODES):
                await confirm_with_code(session, self.services.areas, delivery, volunteer,
                                        other_code(delivery.code), self.mile.now)
            assert delivery.locked

    async def proof(self, task: int, volunteer_id: int) -> None:
        async with self.services.sessions() as session, session.begin():
            delivery, volunteer = await self.mile.load(session, task, volunteer_id)
            await submit_proof(session, delivery, volunteer, "photo-1", -6.2, 106.8,
                               self.mile.now)

    async def review(self, task: int, accept: bool) -> None:
        async with self.services.sessions() as session, session.begin():
            delivery = await self.delivery(session, task)
            await review_proof(session, self.services.areas, delivery, accept,
                               self.mile.world.staff_id, self.mile.now)

    async def fail(self, task: int, volunteer_id: int) -> None:
        async with self.services.sessions() as session, session.begin():
            delivery, volunteer = await self.mile.load(session, task, volunteer_id)
            await fail(session, delivery, "nobody_home", volunteer.contact_id,
                       self.mile.now, MAX_FAILURES)

    async def cancel(self, task: int) -> None:
        """Staff take the delivery back."""
        async with self.services.sessions() as session, session.begin():
            delivery = await self.delivery(session, task)
            await cancel(session, delivery, self.mile.world.staff_id, self.mile.now)

    async def dispute(self, task: int, upheld: bool) -> None:
        """The household says the aid never came; staff settle it."""
        household = await self.household(task)
        async with self.services.sessions() as session, session.begin():
            delivery = await self.delivery(session, task)
            await household_answer(session, self.services.areas, delivery, False, household,
                                   self.mile.now)
        async with self.services.sessions() as session, session.begin():
            delivery = await self.delivery(session, task)
            await resolve_dispute(session, delivery, not upheld, self.mile.world.staff_id,
                                  self.mile.now, MAX_FAILURES)

    async def leave(self, volunteer_id: int) -> None:
        async with self.services.sessions() as session, session.begin():
            volunteer = await session.get(Volunteer, volunteer_id)
            assert volunteer is not None
            await leave(session, volunteer, self.mile.now)

    async def allocate_again(self, request_id: int) -> None:
        async with self.services.sessions() as session, session.begin():
            outcome = await allocate(session, self.services.areas, self.mile.aggregator,
                                     "food_package", 1, [Pick(request_id)],
                                     self.mile.world.staff_id, self.mile.now,
                                     timedelta(days=14))
        assert len(outcome.deliveries) == 1, outcome.refused


async def test_news_of_a_request_taken_back_or_reviewed_meanwhile(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """REQUEST_SUBMITTED (staff's digest), REQUEST_VERIFIED, REQUEST_REJECTED."""
    scene = await Scene.make(services, fake, stock=0)
    world, timur = scene.mile.world, scene.mile.village
    # Staff of a second aggregator, in Jakarta Barat, where a request still waits.
    barat = await world.aggregator("Jakarta Barat")
    async with services.sessions() as session, session.begin():
        other_staff, _ = await get_or_create_contact(session, "telegram", "990002", "id",
                                                     world.now)
        session.add(StaffMember(contact_id=other_staff.id, aggregator_id=barat))
    waiting = await world.household(world.village("Jakarta Barat"), verified=False)
    taken_back, kept, withdrawn, rejected = [
        await world.household(timur, verified=False) for _ in range(4)]
    async with services.sessions() as session, session.begin():
        requests = {r.id: r for r in (await session.scalars(select(HelpRequest))).all()}
        for request_id in (taken_back, kept):
            await verify_request(session, requests[request_id], world.staff_id, world.now)
        await reject_request(session, requests[rejected], world.staff_id, "incomplete",
                             world.now)
    # The households take theirs back: one verified meanwhile, one still waiting.
    for request_id in (taken_back, withdrawn):
        async with services.sessions() as session, session.begin():
            request = await session.get(HelpRequest, request_id)
            assert request is not None
            await cancel_request(session, request, request.contact_id, world.now)

    await scene.dispatch(config)

    # No request of Jakarta Timur waits any more: its staff's "new requests" is outdated;
    # Jakarta Barat's still waits, and its staff hear of it.
    assert await scene.heard(world.staff_id) == []
    assert await scene.rows(world.staff_id) == [("notice.queue_new", *OUTDATED)]
    assert await scene.heard(other_staff.id) == ["notice.queue_new"]
    # "Verified" after the household took it back is outdated; a kept one is told.
    assert await scene.heard(requests[taken_back].contact_id) == []
    assert await scene.rows(requests[taken_back].contact_id) == [
        ("notice.request_verified", *OUTDATED)]
    assert await scene.heard(requests[kept].contact_id) == ["notice.request_verified"]
    # Rejected is final; the households' own submitting and cancelling are their answers.
    assert await scene.heard(requests[rejected].contact_id) == ["notice.request_rejected"]
    assert await scene.rows(requests[withdrawn].contact_id) == []
    assert await scene.heard(requests[waiting].contact_id) == []


async def test_aid_taken_back_and_allocated_again_is_told_as_it_is_now(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """REQUEST_ALLOCATED, REQUEST_REQUEUED, DELIVERY_FAILED (household, and staff's digest),
    DELIVERY_OPEN, and the task card of a failed delivery."""
    scene = await Scene.make(services, fake, stock=2)
    mile = scene.mile
    volunteer = await mile.volunteer()
    first, kept = await mile.deliveries(2)
    household = await scene.household(first)
    # The volunteer could not deliver the first; staff take it back (the household is
    # back in the queue) and allocate to the household again.
    await mile.assign(first, volunteer)
    await scene.fail(first, volunteer)
    await scene.cancel(first)
    await scene.allocate_again((await mile.request(first)).id)

    await scene.dispatch(config)

    assert await scene.rows(household) == [
        ("notice.request_verified", *OUTDATED),  # allocated since
        ("notice.request_allocated", *OUTDATED),  # that delivery was taken back
        ("notice.delivery_assigned", *OUTDATED),  # it failed
        ("notice.delivery_failed", *SENT),  # a fact, and what comes next
        ("notice.request_requeued", *OUTDATED),  # allocated again
        ("notice.request_allocated", *SENT),
    ]
    assert await scene.heard(household) == ["notice.delivery_failed",
                                            "notice.request_allocated"]
    assert await scene.heard(await scene.household(kept)) == ["notice.request_allocated"]
    # The open deliveries' news still holds (two of three still wait); the failed task's
    # card does not.
    assert await scene.rows(await scene.volunteer(volunteer)) == [
        ("notice.task_assigned", *OUTDATED), ("notice.tasks_open", *SENT)]
    # The failure was settled before staff's digest of decisions went out.
    assert ("notice.review_waiting", *OUTDATED) in await scene.rows(mile.world.staff_id)
    assert await scene.heard(mile.world.staff_id) == []


async def test_a_delivery_given_to_another_volunteer_or_taken_back(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """DELIVERY_ASSIGNED (household and volunteer), DELIVERY_LOCKED, TASK_REASSIGNED_AWAY,
    TASK_CANCELLED, DELIVERY_OPEN."""
    scene = await Scene.make(services, fake, stock=3)
    mile = scene.mile
    budi = await mile.volunteer()
    sari = await mile.volunteer("Sari Dewi")
    moved, cancelled, locked = await mile.deliveries(3)
    # Budi locks the first after wrong codes; staff give it to Sari.
    await mile.assign(moved, budi)
    await scene.wrong_codes(moved, budi)
    await mile.assign(moved, sari)
    # Budi locks the second too; staff take it back.
    await mile.assign(cancelled, budi)
    await scene.wrong_codes(cancelled, budi)
    await scene.cancel(cancelled)
    # Sari locks the third, and it stays so.
    await mile.assign(locked, sari)
    await scene.wrong_codes(locked, sari)

    await scene.dispatch(config)

    household = await scene.household(moved)
    assert await scene.rows(household) == [
        ("notice.request_verified", *OUTDATED),
        ("notice.request_allocated", *SENT),  # still coming
        ("notice.delivery_assigned", *OUTDATED),  # Budi and his code: no longer
        ("notice.delivery_assigned", *SENT),
    ]
    [_, assigned] = await scene.texts(household)
    code = (await mile.get(moved)).code
    assert "Sari" in assigned and f": {code}\n" in assigned and "Budi" not in assigned
    # Taken back, the request is verified again: that news holds again, and so does being
    # back in the queue; the aid set aside and Budi's code do not.
    assert await scene.rows(await scene.household(cancelled)) == [
        ("notice.request_verified", *SENT), ("notice.request_allocated", *OUTDATED),
        ("notice.delivery_assigned", *OUTDATED), ("notice.request_requeued", *SENT)]
    assert await scene.heard(await scene.household(locked)) == [
        "notice.request_allocated", "notice.delivery_assigned"]
    # Budi hears only that both tasks are no longer his; Sari gets her cards; the news
    # of open deliveries is outdated for both, as none is open any more.
    assert await scene.rows(await scene.volunteer(budi)) == [
        ("notice.task_assigned", *OUTDATED), ("notice.task_reassigned", *SENT),
        ("notice.task_assigned", *OUTDATED), ("notice.task_cancelled", *SENT),
        ("notice.tasks_open", *OUTDATED)]
    assert await scene.heard(await scene.volunteer(sari)) == [
        "notice.task_assigned", "notice.task_assigned"]
    # Staff hear of the lock that still holds, not of those they settled.
    assert [row for row in await scene.rows(mile.world.staff_id)
            if row[0] == "notice.delivery_locked"] == [
        ("notice.delivery_locked", *OUTDATED), ("notice.delivery_locked", *OUTDATED),
        ("notice.delivery_locked", *SENT)]
    assert await scene.heard(mile.world.staff_id) == ["notice.delivery_locked"]


async def test_news_of_aid_under_way_that_reached_the_household_meanwhile(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """DELIVERY_ON_THE_WAY, REQUEST_DELIVERED, DELIVERY_AWAITING_REVIEW (staff's digest),
    DELIVERY_PROOF_REJECTED, PLEDGE_RECEIVED, PLEDGE_PROGRESS, PLEDGE_COMPLETED."""
    scene = await Scene.make(services, fake, stock=2)
    mile = scene.mile
    # A second pledge; the first (2 packages) goes first, then this one.
    second_pledge = await mile.world.pledge(mile.aggregator, 3, received=3)
    volunteer = await mile.volunteer()
    coded, accepted, resubmitted, rejected = await mile.deliveries(4)
    # The minute pass writes the donors' progress before the dispatcher can send it.
    async with services.sessions() as session, session.begin():
        await send_digests(session, mile.now, timedelta(hours=1))
    for task in (coded, accepted, resubmitted, rejected):
        await mile.assign(task, volunteer)
        await scene.on_the_way(task, volunteer)
    await mile.deliver(coded, volunteer)
    await scene.proof(accepted, volunteer)
    await scene.review(accepted, accept=True)  # the first pledge is all delivered
    await scene.proof(resubmitted, volunteer)
    await scene.review(resubmitted, accept=False)
    await scene.proof(resubmitted, volunteer)  # a new photo, waiting for staff
    await scene.proof(rejected, volunteer)
    await scene.review(rejected, accept=False)  # back on the way

    await scene.dispatch(config)

    for task in (coded, accepted):
        assert await scene.rows(await scene.household(task)) == [
            ("notice.request_verified", *OUTDATED),
            ("notice.request_allocated", *OUTDATED),
            ("notice.delivery_assigned", *OUTDATED),
            ("notice.delivery_on_the_way", *OUTDATED),  # it came
            ("notice.request_delivered", *SENT),
        ]
    # A photo waits for staff: the household's code and buttons still count, "on the
    # way" no longer does.
    assert await scene.heard(await scene.household(resubmitted)) == [
        "notice.request_allocated", "notice.delivery_assigned"]
    assert await scene.heard(await scene.household(rejected)) == [
        "notice.request_allocated", "notice.delivery_assigned", "notice.delivery_on_the_way"]
    # The volunteer knows the tasks they carry; the rejected photo they since replaced
    # is outdated, the one still to redo is not.
    rows = await scene.rows(await scene.volunteer(volunteer))
    assert rows == [("notice.tasks_open", *OUTDATED)] + [
        ("notice.task_assigned", *OUTDATED)] * 4 + [
        ("notice.proof_rejected", *OUTDATED), ("notice.proof_rejected", *SENT)]
    # Staff's digest of photos to review holds while one still waits.
    assert await scene.heard(mile.world.staff_id) == ["notice.review_waiting"]
    # Progress of the first pledge went stale when all of it was delivered; the second's
    # still holds.
    [first_pledge, second] = await mile.world.pledges([mile.pledge, second_pledge])
    assert await scene.rows(first_pledge.contact_id) == [
        ("notice.pledge_received", *SENT), ("notice.pledge_progress", *OUTDATED),
        ("notice.pledge_completed", *SENT)]
    assert await scene.heard(second.contact_id) == [
        "notice.pledge_received", "notice.pledge_progress"]


async def test_disputes_settled_before_staff_heard_of_them(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """DELIVERY_DISPUTED (staff's digest), DISPUTE_DISMISSED, DISPUTE_UPHELD, and
    REQUEST_DELIVERED, which stays a fact."""
    scene = await Scene.make(services, fake, stock=2)
    mile = scene.mile
    volunteer = await mile.volunteer()
    dismissed, upheld = await mile.deliveries(2)
    for task in (dismissed, upheld):
        await mile.assign(task, volunteer)
        await mile.deliver(task, volunteer)
    await scene.dispute(dismissed, upheld=False)
    await scene.dispute(upheld, upheld=True)
    await mile.assign(upheld, volunteer)  # staff give the failed one to the volunteer again

    await scene.dispatch(config)

    assert await scene.heard(await scene.household(dismissed)) == [
        "notice.request_delivered", "notice.dispute_dismissed"]
    assert await scene.heard(await scene.household(upheld)) == [
        "notice.request_allocated", "notice.request_delivered", "notice.dispute_upheld",
        "notice.delivery_assigned"]
    assert await scene.heard(mile.world.staff_id) == []
    assert ("notice.review_waiting", *OUTDATED) in await scene.rows(mile.world.staff_id)
    assert await scene.rows(await scene.volunteer(volunteer)) == [
        ("notice.task_assigned", *OUTDATED), ("notice.task_assigned", *OUTDATED),
        ("notice.task_assigned", *SENT), ("notice.tasks_open", *OUTDATED)]


async def test_tasks_handed_back_that_found_a_volunteer_meanwhile(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """TASKS_RETURNED."""
    scene = await Scene.make(services, fake, stock=2)
    mile = scene.mile
    budi, sari = await mile.volunteer(), await mile.volunteer("Sari Dewi")
    andi = await mile.volunteer("Andi Wijaya")
    taken_over, waiting = await mile.deliveries(2)
    await mile.assign(taken_over, budi)
    await mile.assign(waiting, sari)
    await scene.leave(budi)
    await mile.assign(taken_over, andi)
    await scene.leave(sari)

    await scene.dispatch(config)

    returned = [row for row in await scene.rows(mile.world.staff_id)
                if row[0] == "notice.tasks_returned"]
    assert returned == [("notice.tasks_returned", *OUTDATED),
                        ("notice.tasks_returned", *SENT)]
    [text] = await scene.texts(mile.world.staff_id)
    assert text.startswith("Sari berhenti menjadi relawan")
    # Andi's news of open deliveries still holds: Sari's task waits for a volunteer.
    assert await scene.heard(await scene.volunteer(andi)) == [
        "notice.task_assigned", "notice.tasks_open"]


async def test_volunteers_decided_on_who_left_or_signed_up_again(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """VOLUNTEER_PENDING (staff's digest), VOLUNTEER_APPROVED, VOLUNTEER_DECLINED, through
    the chats of the volunteers and of staff."""
    scene = await Scene.make(services, fake, stock=0)
    mile = scene.mile
    world, district = mile.world, mile.world.district_of(mile.village)
    # A second staff member decides in chat; the first hears the digest on Telegram.
    deciding = await join(world, mile.aggregator, "staff-console")
    chats = {name: TelegramChat(services.conversations, chat_id=f"98000{n}")
             for n, name in enumerate(("left", "approved", "again", "declined"), start=1)}

    async def sign_up(name: str, area: int = district) -> int:
        chat = chats[name]
        await fill_sign_up(chat, await make_invite(world, mile.aggregator,
                                                   pre_approved=False),
                           area, f"{name.title()} Relawan", f"+62812345670{len(ids):02d}")
        await chat.tap("submit")
        assert "will review your sign-up" in chat.last.text, chat.last.text
        async with services.sessions() as session:
            volunteer_id = await session.scalar(
                select(Volunteer.id).join(Contact, Contact.id == Volunteer.contact_id)
                .where(Contact.channel == "telegram", Contact.chat_id == chat.chat_id))
        assert volunteer_id is not None
        return volunteer_id

    ids: dict[str, int] = {}
    for name in ("left", "approved", "declined"):
        ids[name] = await sign_up(name)
    # The digest pass writes "new volunteers wait" while the dispatcher is held.
    async with services.sessions() as session, session.begin():
        await send_digests(session, utcnow() - timedelta(hours=2), timedelta(hours=1))
    ids["again"] = await sign_up("again")
    for name, action in (("left", "ap"), ("approved", "ap"), ("again", "dc"),
                         ("declined", "dc")):
        await deciding.say("/volunteers")
        await deciding.tap(f"{action}:{ids[name]}", context="vol")
    await chats["left"].say("/leave")
    # (In another kecamatan: signing up again for the same area fails on its unique key.)
    assert await sign_up("again", world.district_of(world.village(TIMUR, 1))) == ids["again"]
    # The next pass, an interval later: one of those it tells of waits (again).
    async with services.sessions() as session, session.begin():
        assert await send_digests(session, utcnow(), timedelta(hours=1)) >= 1

    await scene.dispatch(config)

    contacts = {name: await contact_of(services, chat) for name, chat in chats.items()}
    assert await scene.rows(contacts["left"]) == [("notice.volunteer_approved", *OUTDATED)]
    assert await scene.heard(contacts["approved"]) == ["notice.volunteer_approved"]
    assert await scene.rows(contacts["again"]) == [("notice.volunteer_declined", *OUTDATED)]
    assert await scene.heard(contacts["declined"]) == ["notice.volunteer_declined"]
    assert await scene.rows(world.staff_id) == [
        ("notice.volunteer_pending", *OUTDATED), ("notice.volunteer_pending", *SENT)]


async def test_a_reminder_of_a_dialog_the_person_came_back_to(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    """DIALOG_UNFINISHED."""
    clock = use_clock(services, utcnow())
    back, away = (TelegramChat(services.conversations, chat_id=c, language="id")
                  for c in ("970001", "970002"))
    for chat in (back, away):
        await chat.say("/start")
        await chat.tap("request")
        await chat.tap("yes")
    clock.now += timedelta(hours=25)
    dialogs = {form.name: form.menu_item for form in FORMS.values()
               if form.menu_item is not None}
    async with services.sessions() as session, session.begin():
        assert await queue_reminders(session, ["telegram"], dialogs, clock.now,
                                     timedelta(hours=24)) == 2
    clock.now += timedelta(minutes=1)
    await back.say("Siti Aminah")  # came back before the reminder went out

    scene = Scene(services, fake, Mile(services))
    await scene.dispatch(config, clock=clock)

    assert await scene.rows(await contact_of(services, back)) == [
        ("notice.dialog_unfinished", *OUTDATED)]
    assert await scene.heard(await contact_of(services, away)) == [
        "notice.dialog_unfinished"]
