"""Two people act on one thing at the same moment: a delivery, a request, a pledge, a
volunteer waiting for approval. Whoever comes second is refused with the words the
handler's own check gives them (asserted by acting again once the first has won), and
the update is answered and done: no exception escapes, so nothing is left to be run
again. tests/handlers/race.py makes both checks pass before either writes on PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gotong.bot.services import Services
from gotong.handlers.messages import Kind, Reply
from gotong.models.contact import Contact
from gotong.models.delivery import Delivery
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.pledge import Pledge
from gotong.models.volunteer import Volunteer
from tests.chat import Chat
from tests.handlers.race import Move, race, texts
from tests.handlers.test_staff_stock import TIMUR, join
from tests.handlers.test_volunteers import (
    Scene,
    deliver_with_code,
    delivery,
    enlist,
    fill_sign_up,
    household_chat,
    make_invite,
    outbox,
    request_of,
    take,
    volunteer_of,
)
from tests.models.aid_world import AidWorld

CHANGED = "That delivery has changed meanwhile."
NOTHING_WAITS = "Nothing waits for your decision."


def tapping(option: str, context: str) -> Move:
    async def move(chat: Chat) -> list[Reply]:
        return await chat.tap(option, context=context)
    return move


def saying(text: str) -> Move:
    async def move(chat: Chat) -> list[Reply]:
        return await chat.say(text)
    return move


async def events(services: Services, request_id: int) -> list[str]:
    async with services.sessions() as session:
        return list((await session.scalars(
            select(RequestEvent.status).where(RequestEvent.request_id == request_id)
            .order_by(RequestEvent.id))).all())


async def volunteers(scene: Scene, count: int) -> list[Chat]:
    names = ("Budi Santoso", "Sari Dewi", "Tono Wijaya")
    return [await enlist(scene.world, scene.aggregator, f"volunteer-{i}", scene.village,
                         name=names[i], phone=f"+628123456700{i}") for i in range(count)]


async def carried(scene: Scene) -> tuple[int, Chat, Chat]:
    """A delivery a volunteer has taken, the volunteer's chat and the household's."""
    [task] = await scene.deliveries(1)
    household = await household_chat(scene.services, (await request_of(
        scene.services, task)).id, "household")
    [carrier] = await volunteers(scene, 1)
    await take(carrier, task)
    return task, carrier, household


async def staff_pair(world: AidWorld, aggregator: int) -> tuple[Chat, Chat]:
    return (await join(world, aggregator, "staff-1"),
            await join(world, aggregator, "staff-2"))


async def all_see(text: str, seen: str, *chats: Chat) -> None:
    for chat in chats:
        await chat.say(text)
        assert seen in chat.last.text, chat.last.text


# --- volunteers and staff giving out deliveries ---------------------------------------


async def test_two_volunteers_take_one_delivery(services: Services) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    first, second = await volunteers(scene, 2)
    for chat in (first, second):
        await chat.say("/tasks")

    won, lost = await race(services, first, tapping(f"take:{task}", "tk"),
                           second, tapping(f"take:{task}", "tk"), writes="delivery")
    assert "The task is yours" in texts(won)
    assert texts(lost) == "Someone else has taken that delivery."
    assert texts(await second.tap(f"take:{task}", context="tk")) == texts(lost)
    assert (await delivery(services, task)).volunteer_id == \
        (await volunteer_of(services, first)).id


async def test_two_staff_reassign_one_locked_delivery(services: Services) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    carrier, sari, tono = await volunteers(scene, 3)
    await take(carrier, task)
    async with services.sessions() as session, session.begin():
        locked = await session.get(Delivery, task)
        assert locked is not None
        locked.wrong_codes, locked.locked = 5, True
    other = await join(scene.world, scene.aggregator, "staff-2")
    to_sari = f"v:{task}:{(await volunteer_of(services, sari)).id}"
    to_tono = f"v:{task}:{(await volunteer_of(services, tono)).id}"

    won, lost = await race(services, scene.staff, tapping(to_sari, "as"),
                           other, tapping(to_tono, "as"), writes="delivery")
    assert "is assigned to Sari Dewi" in texts(won)
    assert texts(lost) == "That delivery has changed meanwhile; please look again."
    assert texts(await other.tap(to_tono, context="as")) == texts(lost)
    given = await delivery(services, task)
    assert (given.volunteer_id, given.locked) == ((await volunteer_of(services, sari)).id,
                                                 False)
    # The volunteer it was taken from hears it once, and Tono never hears of it.
    assert len(await outbox(services, "notice.task_reassigned")) == 1
    assert await outbox(services, "notice.task_assigned",
                        (await volunteer_of(services, tono)).contact_id) == []


# --- staff verifying ------------------------------------------------------------------


@pytest.mark.parametrize("action", ["v", "r", "d"])
async def test_staff_decide_a_request_another_just_verified(services: Services, action: str
                                                            ) -> None:
    """The second to verify, reject or mark a duplicate of one request is refused."""
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    await world.household(village, phone="+6281200000001")
    request_id = await world.household(village, phone="+6281200000001", verified=False)
    [request] = await requests(services, [request_id])
    reference = request.reference
    first, second = await staff_pair(world, aggregator)
    await all_see("/queue", reference, first, second)
    move = tapping(f"{action}:{request_id}", "q")
    if action == "r":
        await second.tap(f"r:{request_id}", context="q")
        move = tapping(f"outside_area:{request_id}", "qr")

    won, lost = await race(services, first, tapping(f"v:{request_id}", "q"),
                           second, move, writes="help_request")
    assert f"{reference} is verified" in texts(won)
    assert texts(lost) == f"{reference} no longer waits for verification."
    assert texts(await second.tap(f"{action}:{request_id}", context="q")) == texts(lost)
    [status] = await world.statuses([request_id])
    assert status == "verified"
    assert await events(services, request_id) == ["submitted", "verified"]
    assert len(await outbox(services, "notice.request_verified", request.contact_id)) == 1
    assert await outbox(services, "notice.request_rejected") == []


# --- stock ----------------------------------------------------------------------------


async def console_chat(services: Services, contact_id: int, chat_id: str) -> Chat:
    """The chat of a person made by the aid world, moved to the console."""
    async with services.sessions() as session, session.begin():
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        contact.channel, contact.chat_id, contact.language = "console", chat_id, "en"
    return Chat(services.conversations, chat_id=chat_id)


async def pledged(world: AidWorld) -> tuple[int, Pledge]:
    """An aggregator of Jakarta Timur, and a pledge of 5 packages to it not yet received."""
    aggregator = await world.aggregator(TIMUR)
    [pledge] = await world.pledges([await world.pledge(aggregator, 5)])
    return aggregator, pledge


async def test_two_staff_receive_one_pledge(services: Services) -> None:
    world = AidWorld(services)
    aggregator, pledge = await pledged(world)
    pledge_id, code = pledge.id, pledge.code
    first, second = await staff_pair(world, aggregator)
    for chat in (first, second):
        await chat.tap(f"p:{pledge_id}", context="inc")
        assert f"How many packages of pledge {code} arrived?" in chat.last.text

    won, lost = await race(services, first, saying("5"), second, saying("4"), writes="pledge")
    assert f"{code} received: 5 packages added to stock" in texts(won)
    assert texts(lost) == f"Pledge {code} no longer waits to be received."
    assert texts(await second.tap(f"p:{pledge_id}", context="inc")) == texts(lost)
    assert await world.stock(aggregator) == 5


async def allocation_proposed(chat: Chat, aggregator: int) -> None:
    await chat.say("/allocate")
    await chat.tap(f"c:{aggregator}:food_package")
    await chat.tap("n:1")
    assert "Proposal: 1 household" in chat.last.text, chat.last.text


async def test_two_staff_allocate_the_last_package_to_one_household(services: Services
                                                                   ) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    await world.pledge(aggregator, 1, received=1)
    request_id = await world.household(world.village(TIMUR))
    [reference] = [r.reference for r in await requests(services, [request_id])]
    first, second = await staff_pair(world, aggregator)
    for chat in (first, second):
        await allocation_proposed(chat, aggregator)

    won, lost = await race(services, first, tapping("ok:", "al"), second, tapping("ok:", "al"),
                           writes="stock_item")
    assert texts(won).startswith("Allocated 1 package to 1 household.")
    # The household went to the first: that, not the stock it took, is why.
    assert texts(lost) == ("Allocated 1 package to 0 households. Each household has been "
                           f"told.\n{reference}: no longer waiting (already allocated or "
                           "changed).\nLeft in stock: 0 packages.")
    assert await world.statuses([request_id]) == ["allocated"]
    assert await world.stock(aggregator) == 0


async def requests(services: Services, ids: list[int]) -> list[HelpRequest]:
    async with services.sessions() as session:
        return list((await session.scalars(
            select(HelpRequest).where(HelpRequest.id.in_(ids)))).all())


# --- the last mile --------------------------------------------------------------------


async def asked_code(services: Services, chat: Chat, task: int) -> None:
    await chat.tap(f"done:{task}", context="tk")


async def asked_reason(services: Services, chat: Chat, task: int) -> None:
    await chat.tap(f"fail:{task}", context="tk")


async def asked_place(services: Services, chat: Chat, task: int) -> None:
    await chat.tap(f"done:{task}", context="tk")
    await chat.tap(f"nocode:{task}", context="tkq")
    await chat.send_kind(Kind.PHOTO, media_id="photo-1")


async def nothing_asked(services: Services, chat: Chat, task: int) -> None:
    pass


async def code_typed(services: Services, task: int) -> Move:
    # Read before the race: on SQLite a read in the move would let the other go first.
    return saying((await delivery(services, task)).code or "")


async def place_shared(services: Services, task: int) -> Move:
    async def move(chat: Chat) -> list[Reply]:
        return await chat.send_kind(Kind.LOCATION, latitude=-6.225, longitude=106.9)
    return move


async def reason_tapped(services: Services, task: int) -> Move:
    return tapping(f"why:nobody_home:{task}", "tkq")


async def way_tapped(services: Services, task: int) -> Move:
    return tapping(f"way:{task}", "tk")


STEPS = {
    "code": (asked_code, code_typed),
    "failure": (asked_reason, reason_tapped),
    "on the way": (nothing_asked, way_tapped),
    "proof": (asked_place, place_shared),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_volunteer_s_step_as_the_household_confirms_receipt(
        services: Services, step: str) -> None:
    """Delivered by the household's word: the volunteer's step is refused with the task
    as it is now, the answer of the check before any step."""
    scene = await Scene.make(services)
    task, carrier, household = await carried(scene)
    ask, answer = STEPS[step]
    await ask(services, carrier, task)

    won, lost = await race(services, household, tapping(f"got:{task}", "dl"),
                           carrier, await answer(services, task), writes="delivery")
    assert "has been delivered" in texts(won)
    assert texts(lost).startswith("This task has changed meanwhile:")
    assert "(delivered)" in texts(lost), texts(lost)
    assert lost[-1].options == ()
    assert texts(await carrier.tap(f"done:{task}", context="tk")) == texts(lost)
    assert (await delivery(services, task)).status == "delivered"


async def test_the_household_confirms_as_the_volunteer_delivers(services: Services) -> None:
    scene = await Scene.make(services)
    task, carrier, household = await carried(scene)
    await asked_code(services, carrier, task)

    won, lost = await race(services, carrier, await code_typed(services, task),
                           household, tapping(f"got:{task}", "dl"), writes="delivery")
    assert "Delivered. Thank you!" in texts(won)
    assert texts(lost) == "Thank you, it is already recorded as delivered."
    assert texts(await household.tap(f"got:{task}", context="dl")) == texts(lost)
    [pledge] = await scene.world.pledges([p.id for p in await all_pledges(services)])
    assert pledge.delivered_quantity == 1


async def all_pledges(services: Services) -> list[Pledge]:
    async with services.sessions() as session:
        return list((await session.scalars(select(Pledge))).all())


async def test_a_volunteer_leaves_as_the_household_confirms(services: Services) -> None:
    """Leaving is not refused: the delivery the household confirmed meanwhile is no
    longer theirs to hand back."""
    scene = await Scene.make(services)
    task, carrier, household = await carried(scene)

    won, lost = await race(services, household, tapping(f"got:{task}", "dl"),
                           carrier, saying("/leave"), writes="delivery")
    assert "has been delivered" in texts(won)
    assert texts(lost) == ("You have stopped volunteering. Thank you for your help! Any "
                           "deliveries you had go back to the aid organisation.")
    finished = await delivery(services, task)
    assert (finished.status, finished.volunteer_id) == (
        "delivered", (await volunteer_of(services, carrier)).id)
    assert (await volunteer_of(services, carrier)).status == "left"
    assert await outbox(services, "notice.tasks_returned") == []


# --- staff review ---------------------------------------------------------------------


async def disputed(scene: Scene) -> tuple[int, str]:
    """A delivery delivered with the code that its household says never came."""
    task, carrier, household = await carried(scene)
    await deliver_with_code(scene.services, carrier, task)
    await household.tap(f"not:{task}", context="dl")
    assert "The staff will look into it" in household.last.text
    return task, (await request_of(scene.services, task)).reference


@pytest.mark.parametrize(("first", "second"), [("yes", "nd"), ("nd", "yes")])
async def test_two_staff_settle_one_dispute(services: Services, first: str, second: str
                                            ) -> None:
    scene = await Scene.make(services)
    task, reference = await disputed(scene)
    other = await join(scene.world, scene.aggregator, "staff-2")
    await all_see("/review", "says it did not receive it", scene.staff, other)

    won, lost = await race(services, scene.staff, tapping(f"{first}:{task}", "rv"),
                           other, tapping(f"{second}:{task}", "rv"), writes="delivery")
    assert texts(won).startswith(f"{reference}: done.")
    assert texts(lost).startswith(f"{CHANGED}\n\n")
    assert texts(await other.tap(f"{second}:{task}", context="rv")) == texts(lost)
    settled = await delivery(services, task)
    assert (settled.status, settled.disputed) == (
        "delivered" if first == "yes" else "failed", False)
    assert len(await outbox(services, "notice.dispute_dismissed")) == (first == "yes")
    assert len(await outbox(services, "notice.dispute_upheld")) == (first == "nd")
    [pledge] = await all_pledges(services)
    assert pledge.delivered_quantity == (first == "yes")


async def test_two_staff_review_one_proof(services: Services) -> None:
    scene = await Scene.make(services)
    task, carrier, _ = await carried(scene)
    await asked_place(services, carrier, task)
    await (await place_shared(services, task))(carrier)
    reference = (await request_of(services, task)).reference
    other = await join(scene.world, scene.aggregator, "staff-2")
    await all_see("/review", "photo received", scene.staff, other)

    won, lost = await race(services, scene.staff, tapping(f"ok:{task}", "rv"),
                           other, tapping(f"no:{task}", "rv"), writes="delivery")
    assert texts(won) == f"{reference}: done.\n\n{NOTHING_WAITS}"
    assert texts(lost) == f"{CHANGED}\n\n{NOTHING_WAITS}"
    assert texts(await other.tap(f"no:{task}", context="rv")) == texts(lost)
    assert (await delivery(services, task)).status == "delivered"


async def test_staff_cancel_a_failed_delivery_another_reassigns(services: Services) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    carrier, sari = await volunteers(scene, 2)
    await take(carrier, task)
    await asked_reason(services, carrier, task)
    await carrier.tap(f"why:nobody_home:{task}", context="tkq")
    other = await join(scene.world, scene.aggregator, "staff-2")
    await all_see("/review", "Failed: nobody was home.", scene.staff, other)
    to_sari = f"v:{task}:{(await volunteer_of(services, sari)).id}"

    won, lost = await race(services, scene.staff, tapping(to_sari, "as"),
                           other, tapping(f"x:{task}", "rv"), writes="delivery")
    assert "is assigned to Sari Dewi" in texts(won)
    assert texts(lost) == f"{CHANGED}\n\n{NOTHING_WAITS}"
    assert texts(await other.tap(f"x:{task}", context="rv")) == texts(lost)
    given = await delivery(services, task)
    assert (given.status, given.volunteer_id) == ("assigned",
                                                  (await volunteer_of(services, sari)).id)
    assert await scene.world.stock(scene.aggregator) == 2
    assert await outbox(services, "notice.task_cancelled") == []


# --- people taking back what they gave or asked for -----------------------------------


async def test_a_household_cancels_as_staff_allocate_to_it(services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    await world.pledge(aggregator, 1, received=1)
    request_id = await world.household(world.village(TIMUR))
    household = await household_chat(services, request_id, "household")
    [reference] = [r.reference for r in await requests(services, [request_id])]
    staff = await join(world, aggregator, "staff")
    await allocation_proposed(staff, aggregator)
    await household.say("/cancel_request")
    assert f"cancel your request {reference}?" in household.last.text

    won, lost = await race(services, staff, tapping("ok:", "al"),
                           household, tapping(f"yes:{reference}", "reqc"),
                           writes="help_request")
    assert texts(won).startswith("Allocated 1 package to 1 household.")
    nothing = "You have no request that can still be cancelled."
    assert lost[0].text == nothing
    assert lost[-1].options, "the menu follows, as after any answer to the question"
    assert texts(await household.say("/cancel_request")) == nothing
    assert await world.statuses([request_id]) == ["allocated"]
    assert await outbox(services, "notice.request_cancelled") == []


async def test_a_donor_cancels_as_staff_receive_the_pledge(services: Services) -> None:
    world = AidWorld(services)
    aggregator, pledge = await pledged(world)
    pledge_id, code = pledge.id, pledge.code
    donor = await console_chat(services, pledge.contact_id, "donor")
    await donor.tap(f"cancel:{code}", context="req")
    assert f"Cancel pledge {code}?" in donor.last.text, donor.last.text
    staff = await join(world, aggregator, "staff")
    await staff.tap(f"p:{pledge_id}", context="inc")

    won, lost = await race(services, staff, saying("5"),
                           donor, tapping(f"yes:{code}", "reqc"), writes="pledge")
    assert f"{code} received" in texts(won)
    refused = ("That pledge cannot be cancelled any more: it has been received or "
               "cancelled.")
    assert lost[0].text == refused
    assert texts(await donor.tap(f"cancel:{code}", context="req")) == refused
    [received] = await world.pledges([pledge_id])
    assert (received.status, await world.stock(aggregator)) == ("received", 5)


# --- staff approving volunteers -------------------------------------------------------


async def test_two_staff_decide_on_one_volunteer(services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    applicant = Chat(services.conversations, chat_id="applicant")
    await fill_sign_up(applicant, await make_invite(world, aggregator, pre_approved=False),
                       world.district_of(world.village(TIMUR)), "Budi Santoso",
                       "+6281234567001")
    await applicant.tap("submit")
    volunteer_id = (await volunteer_of(services, applicant)).id
    first, second = await staff_pair(world, aggregator)
    await all_see("/volunteers", "Budi Santoso", first, second)

    won, lost = await race(services, first, tapping(f"ap:{volunteer_id}", "vol"),
                           second, tapping(f"dc:{volunteer_id}", "vol"), writes="volunteer")
    assert texts(won).startswith("Budi Santoso is approved.")
    assert texts(lost) == "Budi Santoso has already been decided on."
    assert texts(await second.tap(f"dc:{volunteer_id}", context="vol")) == texts(lost)
    async with services.sessions() as session:
        decided = await session.get(Volunteer, volunteer_id)
    assert decided is not None and decided.status == "approved"
    assert len(await outbox(services, "notice.volunteer_approved")) == 1
    assert await outbox(services, "notice.volunteer_declined") == []
