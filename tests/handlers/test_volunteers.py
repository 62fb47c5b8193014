"""Volunteers in chat: signing up with an invite, staff approving them, and the last mile of
a delivery: taking and carrying a task, the household's code and its lock, the photo and
place instead of the code, failures, disputes, ratings, leaving; and every forged button
refused and audited."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from gotong.bot.services import Services, handler_settings
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Hint, Kind
from gotong.handlers.notices import render_notice
from gotong.models.aggregator import InviteRole, create_invite
from gotong.models.allocation import Pick, allocate
from gotong.models.contact import Contact
from gotong.models.delivery import Delivery
from gotong.models.digest import send_digests
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import OutboxMessage
from gotong.models.pledge import Pledge
from gotong.models.volunteer import Volunteer
from tests.chat import Chat
from tests.handlers.test_staff_stock import TIMUR, join
from tests.lookups import audit_log, outbox
from tests.models.aid_world import AidWorld

SELATAN = "Jakarta Selatan"


class Clock:
    """The time the chats' handlers see, which a test moves forward."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def use_clock(services: Services, start: datetime) -> Clock:
    """Make every chat of the test run on a clock the test moves."""
    clock = Clock(start)
    services.conversations = Conversations(services.engine, services.catalog, services.areas,
                                           handler_settings(services.config), clock=clock)
    return clock


async def make_invite(world: AidWorld, aggregator_id: int, *, pre_approved: bool,
                      uses: int = 1) -> str:
    async with world.services.sessions() as session, session.begin():
        return await create_invite(session, aggregator_id, InviteRole.VOLUNTEER, uses,
                                   world.now + timedelta(days=1), world.now,
                                   pre_approved=pre_approved)


async def fill_sign_up(chat: Chat, code: str, district_id: int, name: str,
                       phone: str) -> None:
    """/volunteer CODE and every question of the form, up to its summary."""
    await chat.say(f"/volunteer {code}")
    assert "You are signing up as a volunteer" in chat.replies[-2].text, chat.last.text
    await chat.say(name)
    await chat.send_kind(Kind.CONTACT, phone=phone, phone_is_own=True)
    assert hint(chat) == Hint.MULTI
    await chat.tap(str(district_id))
    await chat.tap("done")
    await chat.tap("motorbike")
    await chat.say("5")
    assert "Please check your details" in chat.last.text


async def enlist(world: AidWorld, aggregator_id: int, chat_id: str, village_id: int,
                 name: str = "Budi Santoso", phone: str = "+6281234567001") -> Chat:
    """A volunteer signed up in chat with a pre-approved invite, covering the kecamatan
    of the village."""
    chat = Chat(world.services.conversations, chat_id=chat_id)
    await fill_sign_up(chat, await make_invite(world, aggregator_id, pre_approved=True),
                       world.district_of(village_id), name, phone)
    await chat.tap("submit")
    assert "You are now a volunteer of" in chat.last.text, chat.last.text
    return chat


async def contact_of(services: Services, chat: Chat) -> int:
    async with services.sessions() as session:
        contact_id = await session.scalar(select(Contact.id).where(
            Contact.channel == "console", Contact.chat_id == chat.chat_id))
    assert contact_id is not None
    return contact_id


async def volunteer_of(services: Services, chat: Chat) -> Volunteer:
    contact_id = await contact_of(services, chat)
    async with services.sessions() as session:
        volunteer = await session.scalar(select(Volunteer).where(
            Volunteer.contact_id == contact_id))
    assert volunteer is not None
    return volunteer


async def household_chat(services: Services, request_id: int, chat_id: str,
                         language: str = "en") -> Chat:
    """The chat of the household that made the request."""
    async with services.sessions() as session, session.begin():
        request = await session.get(HelpRequest, request_id)
        assert request is not None
        contact = await session.get(Contact, request.contact_id)
        assert contact is not None
        contact.channel, contact.chat_id, contact.language = "console", chat_id, language
    return Chat(services.conversations, chat_id=chat_id, language=language)


async def allocated(world: AidWorld, aggregator_id: int, request_ids: Sequence[int]
                    ) -> list[int]:
    """One package to each household; the deliveries' ids."""
    async with world.services.sessions() as session, session.begin():
        outcome = await allocate(session, world.services.areas, aggregator_id, "food_package",
                                 1, [Pick(r) for r in request_ids], world.staff_id, world.now,
                                 timedelta(days=14))
    assert len(outcome.deliveries) == len(request_ids), outcome.refused
    return [d.id for d in outcome.deliveries]


async def delivery(services: Services, delivery_id: int) -> Delivery:
    async with services.sessions() as session:
        found = await session.get(Delivery, delivery_id)
    assert found is not None
    return found


async def request_of(services: Services, delivery_id: int) -> HelpRequest:
    async with services.sessions() as session:
        found = await session.get(HelpRequest, (await delivery(services, delivery_id)
                                                ).request_id)
    assert found is not None
    return found


async def digests(services: Services, at: datetime) -> None:
    async with services.sessions() as session, session.begin():
        await send_digests(session, at, timedelta(hours=1))


def rendered(services: Services, row: OutboxMessage, language: str) -> str:
    return render_notice(services.catalog, language, row.message_key or "",
                         row.params, row.actions).text


def hint(chat: Chat) -> Hint:
    return chat.last.hint


def area_name(services: Services, area_id: int) -> str:
    entry = services.areas.get(area_id)
    assert entry is not None
    return entry.name


def wrong(code: str | None) -> str:
    assert code is not None
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def take(chat: Chat, delivery_id: int) -> None:
    await chat.say("/tasks")
    await chat.tap(f"take:{delivery_id}", context="tk")
    assert "The task is yours" in chat.last.text, chat.last.text


async def deliver_with_code(services: Services, chat: Chat, delivery_id: int) -> None:
    await chat.tap(f"done:{delivery_id}", context="tk")
    assert "6-digit delivery code" in chat.last.text
    await chat.say((await delivery(services, delivery_id)).code or "")
    assert "Delivered. Thank you!" in chat.last.text, chat.last.text


async def staff_assign(staff: Chat, delivery_id: int, volunteer_id: int) -> None:
    await staff.tap(f"v:{delivery_id}:{volunteer_id}", context="as")
    assert "is assigned to" in "\n".join(r.text for r in staff.replies[-3:]), staff.last.text


class Scene:
    """An aggregator of Jakarta Timur with a staff member, stock, and households."""

    def __init__(self, world: AidWorld, aggregator: int, village: int, staff: Chat) -> None:
        self.world = world
        self.services = world.services
        self.aggregator = aggregator
        self.village = village
        self.staff = staff

    @classmethod
    async def make(cls, services: Services, stock: int = 3) -> Scene:
        world = AidWorld(services)
        aggregator = await world.aggregator(TIMUR)
        village = world.village(TIMUR)
        await world.pledge(aggregator, stock, received=stock)
        staff = await join(world, aggregator, "staff-timur")
        return cls(world, aggregator, village, staff)

    async def deliveries(self, count: int, **household: Any) -> list[int]:
        requests = [await self.world.household(self.village, **household)
                    for _ in range(count)]
        return await allocated(self.world, self.aggregator, requests)


# --- 1. signing up --------------------------------------------------------------------


async def test_wrong_invite_codes_lock_volunteer_sign_up_and_join_together(
        services: Services) -> None:
    world = AidWorld(services)
    clock = use_clock(services, world.now)
    aggregator = await world.aggregator(TIMUR)
    good = await make_invite(world, aggregator, pre_approved=True)
    async with services.sessions() as session, session.begin():
        staff_code = await create_invite(session, aggregator, InviteRole.STAFF, 1,
                                         world.now + timedelta(days=1), world.now)
    chat = Chat(services.conversations, chat_id="guesser")
    for left in (4, 3, 2):
        await chat.say("/volunteer ZZZZZZZZ")
        assert f"{left} tries left this hour" in chat.last.text
    # A staff code is no volunteer code, and /join counts towards the same lock.
    await chat.say(f"/volunteer {staff_code}")
    assert "1 try left this hour" in chat.last.text
    await chat.say("/join ZZZZZZZZ")
    assert "Too many wrong invite codes" in chat.replies[-2].text
    # Locked: even the right codes are refused now.
    await chat.say(f"/volunteer {good}")
    assert "Too many wrong invite codes" in chat.last.text
    await chat.say(f"/join {staff_code}")
    assert "Too many wrong invite codes" in chat.replies[-2].text
    assert await audit_log(services) == [("join", "wrong code")] * 5 + [("join", "locked")] * 2
    # An hour later the chat may try again.
    clock.now += timedelta(minutes=61)
    await chat.say(f"/volunteer {good}")
    assert "You are signing up as a volunteer of Posko Jakarta Timur" in chat.replies[-2].text


async def test_a_typed_or_foreign_phone_is_refused_and_a_pre_approved_invite_approves(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    code = await make_invite(world, aggregator, pre_approved=True)
    chat = Chat(services.conversations, chat_id="volunteer")
    await chat.say(f"/volunteer {code}")
    await chat.say("Budi Santoso")
    assert hint(chat) == Hint.CONTACT
    await chat.say("+6281234567001")
    assert "Please tap the button to share your own number" in chat.last.text
    await chat.send_kind(Kind.CONTACT, phone="+6281234567002", phone_is_own=False)
    assert "Please tap the button to share your own number" in chat.last.text
    assert hint(chat) == Hint.CONTACT
    await chat.send_kind(Kind.CONTACT, phone="+6281234567003", phone_is_own=True)
    assert hint(chat) == Hint.MULTI
    # The areas are the kecamatan the aggregator covers.
    labels = {o.id: o.label for o in chat.last.options}
    district = world.district_of(village)
    assert services.areas.get(district).name in labels.values()  # type: ignore[union-attr]
    await chat.tap("done")
    assert hint(chat) == Hint.MULTI  # at least one area
    # A kecamatan the aggregator does not cover, in forged button data.
    await chat.tap(str(world.district_of(world.village(SELATAN))))
    assert "that button is not valid" in chat.last.text
    await chat.tap(str(district))
    await chat.tap("done")
    await chat.tap("car")
    await chat.say("many")
    await chat.say("3")
    assert "+6281234567003" in chat.last.text and "Car" in chat.last.text
    await chat.tap("submit")
    assert "You are now a volunteer of Posko Jakarta Timur" in chat.last.text
    volunteer = await volunteer_of(services, chat)
    assert (volunteer.status, volunteer.phone, volunteer.travel, volunteer.capacity) == (
        "approved", "+6281234567003", "car", 3)
    assert await outbox(services, "notice.volunteer_pending") == []
    await chat.say("/tasks")
    assert "No tasks now" in chat.last.text
    # The invite was for one person.
    other = Chat(services.conversations, chat_id="someone-else")
    await other.say(f"/volunteer {code}")
    assert "That invite code is not valid" in other.last.text


async def test_staff_approve_a_pending_volunteer_and_others_cannot(services: Services
                                                                   ) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator(SELATAN)
    village = world.village(TIMUR)
    staff = await join(world, timur, "staff-timur")
    stranger = await join(world, selatan, "staff-selatan")
    await staff.say("/invite_volunteer")
    match = re.search(r"/volunteer (\w+)", staff.last.text)
    assert match is not None
    chat = Chat(services.conversations, chat_id="volunteer")
    await fill_sign_up(chat, match.group(1), world.district_of(village), "Budi Santoso",
                       "+6281234567001")
    await chat.tap("submit")
    assert "Posko Jakarta Timur will review your sign-up" in chat.last.text
    await chat.say("/tasks")
    assert "waiting for the aid organisation's approval" in chat.last.text
    volunteer = await volunteer_of(services, chat)
    assert volunteer.status == "pending"

    # Staff hear of it in a digest, once.
    await digests(services, world.now)
    staff_id = await contact_of(services, staff)
    [pending] = await outbox(services, "notice.volunteer_pending")
    assert pending.contact_id == staff_id

    # Staff of another aggregator see nothing to approve, and a forged tap is refused.
    await stranger.say("/volunteers")
    assert "No volunteers are waiting" in stranger.last.text
    await stranger.tap(f"ap:{volunteer.id}", context="vol")
    assert "signed up with another aid organisation" in stranger.last.text
    citizen = Chat(services.conversations, chat_id="citizen")
    await citizen.tap(f"ap:{volunteer.id}", context="vol")
    assert "This is for the staff" in citizen.last.text
    assert (await volunteer_of(services, chat)).status == "pending"
    log = await audit_log(services)
    assert ("approve_volunteer", "not their aggregator") in log
    assert ("approve_volunteer", "not staff") in log

    await staff.say("/volunteers")
    card = staff.last.text
    assert "Name: Budi Santoso" in card and "Phone: +6281234567001" in card
    assert "Travel: Motorbike, carries 5 packages" in card
    await staff.tap(staff.option_id("Approve"))
    assert "Budi Santoso is approved." in staff.last.text
    assert "No volunteers are waiting" in staff.last.text
    [approved] = await outbox(services, "notice.volunteer_approved")
    assert approved.contact_id == await contact_of(services, chat)
    assert ("approve_volunteer", "done") in await audit_log(services)
    # The old card's button again: already decided, nothing sent twice.
    await staff.tap(f"dc:{volunteer.id}", context="vol")
    assert "already been decided" in staff.last.text
    assert await outbox(services, "notice.volunteer_declined") == []
    await chat.say("/tasks")
    assert "No tasks now" in chat.last.text


async def test_an_invite_used_up_before_the_form_is_sent(services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    district = world.district_of(world.village(TIMUR))
    code = await make_invite(world, aggregator, pre_approved=False)
    first = Chat(services.conversations, chat_id="first")
    second = Chat(services.conversations, chat_id="second")
    await fill_sign_up(first, code, district, "Budi Santoso", "+6281234567001")
    await fill_sign_up(second, code, district, "Sari Dewi", "+6281234567002")
    await first.tap("submit")
    assert "will review your sign-up" in first.last.text
    await second.tap("submit")
    assert "has been used up or has expired meanwhile" in second.last.text
    async with services.sessions() as session:
        names = (await session.scalars(select(Volunteer.name))).all()
    assert names == ["Budi Santoso"]
    await second.say("/tasks")
    assert "This is for volunteers" in second.last.text


# --- 2. the household's code and its lock ---------------------------------------------


async def test_five_wrong_codes_lock_the_delivery_and_staff_reassign_it(
        services: Services) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    first = await enlist(scene.world, scene.aggregator, "volunteer-1", scene.village)
    second = await enlist(scene.world, scene.aggregator, "volunteer-2", scene.village,
                          name="Sari Dewi", phone="+6281234567002")
    await take(first, task)
    before = await delivery(services, task)
    await first.tap(f"done:{task}")
    await first.say("hello")
    assert "The delivery code is 6 digits" in first.last.text
    for left in (4, 3, 2):
        await first.say(wrong(before.code))
        assert f"That code is not right. {left} tries left." in first.last.text
    await first.say(wrong(before.code))
    assert "1 try left" in first.last.text
    assert await outbox(services, "notice.delivery_locked") == []
    await first.say(wrong(before.code))
    assert "Too many wrong codes: this delivery is locked" in first.last.text
    locked = await delivery(services, task)
    assert (locked.wrong_codes, locked.locked, locked.status) == (5, True, "assigned")
    [alert] = await outbox(services, "notice.delivery_locked")
    assert alert.contact_id == await contact_of(services, scene.staff)
    assert alert.params["volunteer"] == "Budi"

    # No more tries: neither the button nor the right code.
    await first.tap(f"done:{task}", context="tk")
    assert "This task has changed meanwhile" in first.last.text
    assert first.last.options == ()
    await first.say(before.code or "")
    assert (await delivery(services, task)).status == "assigned"
    assert [e for e in await audit_log(services) if e == ("deliver", "wrong code")] == [
        ("deliver", "wrong code")] * 5

    # Staff of another aggregator see nothing, and cannot act on it.
    stranger = await join(scene.world, await scene.world.aggregator(SELATAN),
                          "staff-selatan")
    await stranger.say("/review")
    assert "Nothing waits for your decision" in stranger.last.text
    for action in ("re", "x"):
        await stranger.tap(f"{action}:{task}", context="rv")
        assert "not your aid organisation's" in stranger.last.text
    assert (await audit_log(services)).count(("review", "not their aggregator")) == 2
    assert (await delivery(services, task)).status == "assigned"

    await scene.staff.say("/review")
    assert "Locked after 5 wrong codes" in scene.staff.last.text
    await scene.staff.tap(scene.staff.option_id("Reassign"))
    assert "Sari Dewi" in scene.staff.last.text and "Budi" not in scene.staff.last.text
    helper = await volunteer_of(services, second)
    await staff_assign(scene.staff, task, helper.id)
    moved = await delivery(services, task)
    assert (moved.volunteer_id, moved.locked, moved.wrong_codes, moved.status) == (
        helper.id, False, 0, "assigned")
    [away] = await outbox(services, "notice.task_reassigned")
    assert away.contact_id == await contact_of(services, first)
    household = (await request_of(services, task)).contact_id
    codes = [r.params["code"] for r in await outbox(services, "notice.delivery_assigned",
                                                    household)]
    assert codes == [before.code, moved.code]
    [given] = await outbox(services, "notice.task_assigned",
                           await contact_of(services, second))
    assert given.actions == [["tk", f"show:{task}", "notice.open_task"]]
    # The first volunteer no longer has it; the second delivers with the new code.
    await first.tap(f"show:{task}", context="tk")
    assert "not one of your tasks" in first.last.text
    await second.tap(f"show:{task}", context="tk")
    await deliver_with_code(services, second, task)
    await scene.staff.say("/review")
    assert "Nothing waits for your decision" in scene.staff.last.text


# --- 3. a photo and the place instead of the code -------------------------------------


async def test_photo_and_place_go_to_review_where_staff_accept_or_reject(
        services: Services) -> None:
    scene = await Scene.make(services)
    accepted, rejected = await scene.deliveries(2)
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    staff_id = await contact_of(services, scene.staff)

    async def prove(task: int, photo: str) -> None:
        await chat.tap(f"done:{task}", context="tk")
        await chat.tap(f"nocode:{task}")
        assert "Please send a photo" in chat.last.text
        await chat.say("it is done")
        assert "Please send a photo" in chat.last.text
        await chat.send_kind(Kind.PHOTO, media_id=photo)
        assert hint(chat) == Hint.LOCATION
        await chat.send_kind(Kind.STICKER)
        assert hint(chat) == Hint.LOCATION
        await chat.send_kind(Kind.LOCATION, latitude=-6.225, longitude=106.9)
        assert "wait for the staff's review" in chat.last.text

    for task in (accepted, rejected):
        await take(chat, task)
    await chat.tap(f"up:{accepted}", context="tk")
    assert "picked up" in chat.last.text
    await chat.tap(chat.option_id("On the way"))
    household = (await request_of(services, accepted)).contact_id
    [on_way] = await outbox(services, "notice.delivery_on_the_way", household)
    assert on_way.params["volunteer"] == "Budi"
    await prove(accepted, "photo-1")
    proved = await delivery(services, accepted)
    assert (proved.status, proved.proof_media_id, proved.proof_latitude) == (
        "awaiting_review", "photo-1", -6.225)
    await digests(services, scene.world.now)
    [waiting] = await outbox(services, "notice.review_waiting")
    assert waiting.contact_id == staff_id

    await scene.staff.say("/review")
    assert "photo received, location -6.22500, 106.90000" in scene.staff.last.text
    await scene.staff.tap(scene.staff.option_id("Accept"))
    assert "done" in scene.staff.last.text
    assert (await delivery(services, accepted)).status == "delivered"
    assert (await request_of(services, accepted)).status == "delivered"
    [news] = await outbox(services, "notice.request_delivered", household)
    assert news.actions == [["rate", f"{accepted}:{n}", f"rate.{word}"] for n, word in
                            enumerate(("one", "two", "three", "four", "five"), start=1)]
    assert ("review_ok", "done") in await audit_log(services)

    await prove(rejected, "photo-2")
    await scene.staff.say("/review")
    await scene.staff.tap(scene.staff.option_id("Reject"))
    back = await delivery(services, rejected)
    assert (back.status, back.proof_media_id, back.proof_latitude) == ("on_the_way", None,
                                                                      None)
    [told] = await outbox(services, "notice.proof_rejected")
    assert told.contact_id == await contact_of(services, chat)
    assert told.actions == [["tk", f"show:{rejected}", "notice.open_task"]]
    # The volunteer goes back and delivers it with the code after all.
    await chat.tap(f"show:{rejected}", context="tk")
    await deliver_with_code(services, chat, rejected)


# --- 4. failures ----------------------------------------------------------------------


async def test_a_failure_is_told_to_the_household_in_its_language_and_staff_reassign(
        services: Services) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    household = await household_chat(services, (await request_of(services, task)).id,
                                     "household", language="id")
    household_id = await contact_of(services, household)
    first = await enlist(scene.world, scene.aggregator, "volunteer-1", scene.village)
    second = await enlist(scene.world, scene.aggregator, "volunteer-2", scene.village,
                          name="Sari Dewi", phone="+6281234567002")
    await take(first, task)

    await first.tap(f"fail:{task}", context="tk")
    assert "Why could it not be delivered?" in first.last.text
    await first.tap(first.option_id("nobody was home"))
    assert "Noted" in first.last.text
    failed = await delivery(services, task)
    assert (failed.status, failed.failure_reason) == ("failed", "nobody_home")
    assert (await request_of(services, task)).status == "failed"
    [told] = await outbox(services, "notice.delivery_failed", household_id)
    text = rendered(services, told, "id")
    assert "tidak ada orang di rumah" in text
    assert "Petugas akan mengatur pengantaran baru" in text
    assert ("fail", "done") in await audit_log(services)
    # The failed task shows no address and no more steps.
    await first.tap(f"show:{task}", context="tk")
    assert "Jl. Mawar" not in first.last.text and first.last.options == ()

    await scene.staff.say("/review")
    assert "Failed: nobody was home." in scene.staff.last.text
    await scene.staff.tap(scene.staff.option_id("Reassign"))
    await staff_assign(scene.staff, task, (await volunteer_of(services, second)).id)
    assert (await request_of(services, task)).status == "allocated"

    await second.tap(f"fail:{task}", context="tk")
    await second.tap(second.option_id("Another reason"))
    assert "type the reason" in second.last.text
    await second.say("  ")
    assert "type the reason" in second.last.text
    await second.say("gang kebanjiran")
    assert "Noted" in second.last.text
    assert (await delivery(services, task)).failure_reason == "gang kebanjiran"
    told_again = (await outbox(services, "notice.delivery_failed", household_id))[-1]
    assert "gang kebanjiran" in rendered(services, told_again, "id")
    await scene.staff.say("/review")
    assert "Failed: gang kebanjiran." in scene.staff.last.text


async def test_staff_cancel_a_failed_delivery_back_to_the_queue(services: Services) -> None:
    scene = await Scene.make(services, stock=2)
    [pledge_id] = [p.id for p in await pledges(services)]
    [task] = await scene.deliveries(1, size=1)
    assert await scene.world.stock(scene.aggregator) == 1
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    await take(chat, task)
    await chat.tap(f"fail:{task}", context="tk")
    await chat.tap(f"why:wrong_address:{task}")
    await scene.staff.say("/review")
    await scene.staff.tap(scene.staff.option_id("Cancel"))
    assert "Nothing waits for your decision" in scene.staff.last.text
    assert (await delivery(services, task)).status == "cancelled"
    request = await request_of(services, task)
    assert request.status == "verified"
    assert await scene.world.stock(scene.aggregator) == 2
    [pledge] = await scene.world.pledges([pledge_id])
    assert pledge.allocated_quantity == 0
    [requeued] = await outbox(services, "notice.request_requeued", request.contact_id)
    assert requeued.params["reference"] == request.reference
    assert ("review_x", "done") in await audit_log(services)


async def pledges(services: Services) -> list[Pledge]:
    async with services.sessions() as session:
        return list((await session.scalars(select(Pledge).order_by(Pledge.id))).all())


async def test_after_three_failures_the_request_is_back_in_the_queue(
        services: Services) -> None:
    scene = await Scene.make(services, stock=1)
    [pledge_id] = [p.id for p in await pledges(services)]
    [task] = await scene.deliveries(1)
    request = await request_of(services, task)
    first = await enlist(scene.world, scene.aggregator, "volunteer-1", scene.village)
    second = await enlist(scene.world, scene.aggregator, "volunteer-2", scene.village,
                          name="Sari Dewi", phone="+6281234567002")
    ids = {first.chat_id: (await volunteer_of(services, first)).id,
           second.chat_id: (await volunteer_of(services, second)).id}
    await take(first, task)
    for chat, reason, then in ((first, "nobody_home", second),
                               (second, "refused", first)):
        await chat.tap(f"fail:{task}", context="tk")
        await chat.tap(f"why:{reason}:{task}")
        await scene.staff.say("/review")
        await scene.staff.tap(f"re:{task}")
        await staff_assign(scene.staff, task, ids[then.chat_id])
    assert await scene.world.stock(scene.aggregator) == 0
    await first.tap(f"fail:{task}", context="tk")
    await first.tap(f"why:wrong_address:{task}")
    # The third failure: the stock and the household go back.
    notices = await outbox(services, "notice.delivery_failed", request.contact_id)
    assert len(notices) == 3
    assert notices[-1].params["next"] == {"key": "failure.next_queue"}
    assert (await request_of(services, task)).status == "verified"
    assert await scene.world.stock(scene.aggregator) == 1
    [pledge] = await scene.world.pledges([pledge_id])
    assert pledge.allocated_quantity == 0


# --- 5. disputes ----------------------------------------------------------------------


async def test_a_household_disputes_a_delivery_and_staff_resolve_it(services: Services
                                                                    ) -> None:
    scene = await Scene.make(services)
    delivered, travelling = await scene.deliveries(2)
    household = await household_chat(services, (await request_of(services, delivered)).id,
                                     "household")
    waiting = await household_chat(services, (await request_of(services, travelling)).id,
                                   "household-2")
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    await take(chat, delivered)
    await take(chat, travelling)
    await chat.tap(f"way:{travelling}", context="tk")

    # Not delivered yet: nothing to dispute.
    await waiting.tap(f"not:{travelling}", context="dl")
    assert "still on its way" in waiting.last.text
    assert not (await delivery(services, travelling)).disputed
    # Another household's button is refused.
    await waiting.tap(f"not:{delivered}", context="dl")
    assert "That delivery is not yours" in waiting.last.text
    assert ("receipt", "not theirs") in await audit_log(services)

    await deliver_with_code(services, chat, delivered)
    await household.tap(f"not:{delivered}", context="dl")
    assert "The staff will look into it" in household.last.text
    disputed = await delivery(services, delivered)
    assert (disputed.status, disputed.disputed) == ("delivered", True)
    await digests(services, scene.world.now)
    [waiting_row] = await outbox(services, "notice.review_waiting")
    assert waiting_row.contact_id == await contact_of(services, scene.staff)

    await scene.staff.say("/review")
    assert "says it did not receive it" in scene.staff.last.text
    await scene.staff.tap(scene.staff.option_id("Not delivered"))
    resolved = await delivery(services, delivered)
    assert (resolved.status, resolved.disputed, resolved.failure_reason) == (
        "failed", False, "disputed")
    assert (await request_of(services, delivered)).status == "failed"
    # Now a failure like any other, to be reassigned or cancelled.
    assert "Failed: the delivery was disputed." in scene.staff.last.text
    assert ("review_nd", "done") in await audit_log(services)


async def test_a_household_confirms_receipt_in_chat(services: Services) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    household = await household_chat(services, (await request_of(services, task)).id,
                                     "household")
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    await take(chat, task)
    await household.tap(f"got:{task}", context="dl")
    assert "has been delivered" in household.last.text
    assert household.last.context == "rate"
    assert (await delivery(services, task)).status == "delivered"
    await household.tap(f"got:{task}", context="dl")
    assert "already recorded as delivered" in household.last.text
    # The volunteer's task is done: no steps left.
    await chat.tap(f"done:{task}", context="tk")
    assert "This task has changed meanwhile" in chat.last.text


async def test_the_household_hears_how_its_dispute_was_resolved(services: Services) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    household = await household_chat(services, (await request_of(services, task)).id,
                                     "household")
    household_id = await contact_of(services, household)
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    await take(chat, task)
    await deliver_with_code(services, chat, task)
    await household.tap(f"not:{task}", context="dl")
    before = len(await outbox(services, contact_id=household_id))
    await scene.staff.say("/review")
    await scene.staff.tap(scene.staff.option_id("Not delivered"))
    after = len(await outbox(services, contact_id=household_id))
    assert after > before


# --- 6. forged buttons ----------------------------------------------------------------


async def test_forged_task_buttons_are_refused_and_audited(services: Services) -> None:
    scene = await Scene.make(services, stock=4)
    world = scene.world
    [theirs] = await scene.deliveries(1)
    elsewhere_village = world.village(TIMUR, 1)
    assert world.district_of(elsewhere_village) != world.district_of(scene.village)
    [elsewhere] = await allocated(world, scene.aggregator,
                                  [await world.household(elsewhere_village)])
    selatan = await world.aggregator(SELATAN)
    await world.pledge(selatan, 1, received=1)
    [foreign] = await allocated(world, selatan,
                                [await world.household(world.village(SELATAN))])
    owner = await enlist(world, scene.aggregator, "volunteer-1", scene.village)
    other = await enlist(world, scene.aggregator, "volunteer-2", scene.village,
                         name="Sari Dewi", phone="+6281234567002")
    await take(owner, theirs)
    # Open deliveries of other areas and aggregators are not offered.
    await other.say("/tasks")
    assert f"take:{elsewhere}" not in {o.id for o in other.last.options}
    assert f"take:{foreign}" not in {o.id for o in other.last.options}

    for action in ("show", "up", "done"):
        await other.tap(f"{action}:{theirs}", context="tk")
        assert "That is not one of your tasks" in other.last.text
    await other.tap(f"nocode:{theirs}", context="tkq")
    assert "earlier question" in other.last.text
    for task in (elsewhere, foreign, theirs + 1000):
        await other.tap(f"take:{task}", context="tk")
        assert "not in your area" in other.last.text
    await other.tap(f"take:{theirs}", context="tk")
    assert "Someone else has taken that delivery" in other.last.text
    await other.tap(f"v:{elsewhere}:1", context="as")
    assert "This is for the staff" in other.last.text
    taken = await delivery(services, theirs)
    assert (taken.status, taken.volunteer_id) == (
        "assigned", (await volunteer_of(services, owner)).id)
    assert (await delivery(services, elsewhere)).volunteer_id is None
    assert (await delivery(services, foreign)).volunteer_id is None

    citizen = Chat(services.conversations, chat_id="citizen")
    await citizen.say("/tasks")
    assert "This is for volunteers" in citizen.last.text
    await citizen.tap(f"take:{elsewhere}", context="tk")
    assert "This is for volunteers" in citizen.last.text
    await citizen.tap(f"way:{theirs}", context="tk")
    assert "This is for volunteers" in citizen.last.text

    # Staff may not give a delivery to a volunteer who does not cover its area.
    await scene.staff.tap(f"v:{elsewhere}:{(await volunteer_of(services, other)).id}",
                          context="as")
    assert "cannot take this delivery" in scene.staff.last.text
    await scene.staff.tap(f"d:{foreign}", context="as")
    assert "not your aid organisation's" in scene.staff.last.text

    log = await audit_log(services)
    for entry in (("task_show", "not their task"), ("task_up", "not their task"),
                  ("task_done", "not their task"), ("assign", "not staff"),
                  ("tasks", "not volunteer"), ("take", "not volunteer"),
                  ("task_way", "not volunteer"), ("assign", "volunteer not covering"),
                  ("assign", "not their aggregator")):
        assert entry in log, entry
    assert log.count(("take", "outside area")) == 3


# --- 7. what the volunteer sees of the household, and for how long ------------------


async def test_the_household_details_show_until_a_day_after_delivery(
        services: Services) -> None:
    world = AidWorld(services)
    clock = use_clock(services, world.now)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    await world.pledge(aggregator, 1, received=1)
    [task] = await allocated(world, aggregator, [await world.household(
        village, name="Siti Aminah", phone="+6281311112222", street="Jl. Kenanga 7")])
    chat = await enlist(world, aggregator, "volunteer", village)
    kelurahan = area_name(services, village)
    details = ("Siti Aminah", "+6281311112222", "Jl. Kenanga 7")

    await chat.say("/tasks")
    offer = chat.last.text
    assert kelurahan in offer and "RW 2" in offer
    assert not any(d in offer for d in details)
    await chat.tap(f"take:{task}")
    # Taken is not yet picked up: whoever takes tasks learns no household from it.
    assert not any(d in chat.last.text for d in details)
    assert "show once you mark the aid picked up" in chat.last.text
    await chat.tap(f"up:{task}", context="tk")
    assert all(d in chat.last.text for d in details)
    await deliver_with_code(services, chat, task)
    assert all(d in chat.last.text for d in details)

    clock.now += timedelta(hours=23, minutes=59)
    await chat.tap(f"show:{task}", context="tk")
    assert all(d in chat.last.text for d in details)
    clock.now += timedelta(minutes=1)
    await chat.tap(f"show:{task}", context="tk")
    card = chat.last.text
    assert not any(d in card for d in details)
    assert kelurahan in card and "RW 2" in card and "(delivered)" in card
    await chat.say("/tasks")
    assert not any(d in chat.last.text for d in details)


# --- 8. leaving -----------------------------------------------------------------------


async def test_a_volunteer_who_leaves_hands_back_their_tasks(services: Services) -> None:
    scene = await Scene.make(services)
    done, assigned, travelling = await scene.deliveries(3)
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    for task in (done, assigned, travelling):
        await take(chat, task)
    await deliver_with_code(services, chat, done)
    await chat.tap(f"way:{travelling}", context="tk")
    assert (await request_of(services, travelling)).status == "out_for_delivery"

    await chat.say("/leave")
    assert "You have stopped volunteering" in chat.last.text
    for task in (assigned, travelling):
        back = await delivery(services, task)
        assert (back.status, back.volunteer_id, back.code) == ("allocated", None, None)
        assert (await request_of(services, task)).status == "allocated"
    assert (await delivery(services, done)).status == "delivered"
    [returned] = await outbox(services, "notice.tasks_returned")
    assert returned.contact_id == await contact_of(services, scene.staff)
    assert (returned.params["volunteer"], returned.params["count"]) == ("Budi", 2)
    assert (await volunteer_of(services, chat)).status == "left"
    assert ("leave", "done") in await audit_log(services)

    await chat.say("/tasks")
    assert "This is for volunteers" in chat.last.text
    await chat.tap(f"show:{done}", context="tk")
    assert "This is for volunteers" in chat.last.text
    await chat.say("/leave")
    assert "You are not a volunteer" in chat.last.text
    # Staff find them among the deliveries waiting for a volunteer.
    await scene.staff.say("/assign")
    assert {f"d:{assigned}", f"d:{travelling}"} <= {o.id for o in scene.staff.last.options}


# --- 9. ratings -----------------------------------------------------------------------


async def test_only_the_household_rates_and_donors_never_see_ratings(services: Services
                                                                     ) -> None:
    scene = await Scene.make(services, stock=1)
    [task] = await scene.deliveries(1)
    household = await household_chat(services, (await request_of(services, task)).id,
                                     "household")
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    await take(chat, task)
    await household.tap(f"{task}:5", context="rate")
    assert "not valid" in household.last.text  # not delivered yet
    await deliver_with_code(services, chat, task)

    # Someone else's chat with a forged rating button.
    intruder = Chat(services.conversations, chat_id="intruder")
    await intruder.tap(f"{task}:1", context="rate")
    assert "That delivery is not yours" in intruder.last.text
    await chat.tap(f"{task}:1", context="rate")
    assert "That delivery is not yours" in chat.last.text
    assert (await delivery(services, task)).rating is None
    assert (await audit_log(services)).count(("rate", "not theirs")) == 2

    await household.tap(f"{task}:9", context="rate")
    assert "not valid" in household.last.text
    await household.tap(f"{task}:4", context="rate")
    assert "add a comment" in household.last.text
    await household.say("relawannya ramah sekali")
    assert household.last.text == "Thank you!"
    rated = await delivery(services, task)
    assert (rated.rating, rated.rating_comment) == (4, "relawannya ramah sekali")

    [pledge] = await pledges(services)
    donor_rows = await outbox(services, contact_id=pledge.contact_id)
    assert {r.message_key for r in donor_rows} >= {"notice.pledge_completed"}
    for row in donor_rows:
        text = rendered(services, row, "en")
        assert "ramah" not in text and "rating" not in str(row.params)
        assert not ({"rating", "rating_comment", "stars"} & set(row.params))
    await scene.staff.say("/ratings")
    assert "4/5, relawannya ramah sekali" in scene.staff.last.text


async def test_a_rating_without_a_comment(services: Services) -> None:
    scene = await Scene.make(services, stock=1)
    [task] = await scene.deliveries(1)
    household = await household_chat(services, (await request_of(services, task)).id,
                                     "household")
    chat = await enlist(scene.world, scene.aggregator, "volunteer", scene.village)
    await take(chat, task)
    await deliver_with_code(services, chat, task)
    await household.tap(f"{task}:2", context="rate")
    await household.tap("skip")
    assert household.last.text == "Thank you!"
    # What is typed next is no comment any more.
    await household.say("halo")
    rated = await delivery(services, task)
    assert (rated.rating, rated.rating_comment) == (2, None)
