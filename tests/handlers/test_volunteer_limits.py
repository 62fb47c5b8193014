"""A volunteer who would collect households' details: no more tasks at once than they
carry, no household's name, phone or address before the aid is picked up, taking and
handing back tasks again and again flagged to staff, and the operator seeing who joined
with each invite code and revoking it with the volunteers it let in."""

from __future__ import annotations

import io
from datetime import timedelta

from gotong.bot.cli.admin import run_admin
from gotong.bot.cli.main import build_parser
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.messages import Kind
from tests.chat import Chat
from tests.handlers.test_volunteers import (
    Scene,
    contact_of,
    delivery,
    make_invite,
    rendered,
    use_clock,
    volunteer_of,
)
from tests.lookups import audit_log, outbox
from tests.models.aid_world import AidWorld


async def sign_up(world: AidWorld, code: str, chat_id: str, village_id: int,
                  capacity: int, name: str = "Budi Santoso") -> Chat:
    """/volunteer CODE, carrying `capacity` packages, approved by the code."""
    chat = Chat(world.services.conversations, chat_id=chat_id)
    await chat.say(f"/volunteer {code}")
    await chat.say(name)
    await chat.send_kind(Kind.CONTACT, phone="+6281234567001", phone_is_own=True)
    await chat.tap(str(world.district_of(village_id)))
    await chat.tap("done")
    await chat.tap("motorbike")
    await chat.say(str(capacity))
    await chat.tap("submit")
    assert "You are now a volunteer of" in chat.last.text, chat.last.text
    return chat


async def take(chat: Chat, delivery_id: int) -> str:
    await chat.say("/tasks")
    await chat.tap(f"take:{delivery_id}", context="tk")
    return chat.last.text


async def test_no_more_tasks_at_once_than_the_volunteer_carries(services: Services) -> None:
    scene = await Scene.make(services, stock=6)
    tasks = await scene.deliveries(6)
    one = await sign_up(scene.world, await make_invite(scene.world, scene.aggregator,
                                                       pre_approved=True),
                        "carries-one", scene.village, capacity=1)
    assert "The task is yours" in await take(one, tasks[0])
    refused = await take(one, tasks[1])
    assert "as many as you can carry at once (1)" in refused
    assert (await delivery(services, tasks[1])).volunteer_id is None

    # Carrying 20 is still at most volunteer.max_open_tasks (3) under way.
    many = await sign_up(scene.world, await make_invite(scene.world, scene.aggregator,
                                                        pre_approved=True),
                         "carries-many", scene.village, capacity=20, name="Dewi Lestari")
    for task in tasks[1:4]:
        assert "The task is yours" in await take(many, task)
    assert "as many as you can carry at once (3)" in await take(many, tasks[4])
    # Once one is delivered, there is room for another.
    await many.tap(f"done:{tasks[1]}", context="tk")
    await many.say((await delivery(services, tasks[1])).code or "")
    assert "Delivered" in many.last.text
    assert "The task is yours" in await take(many, tasks[4])
    assert ("take", "too many open") in await audit_log(services)


async def test_taking_and_handing_back_again_and_again_is_flagged_to_staff(
        services: Services) -> None:
    scene = await Scene.make(services, stock=3)
    tasks = await scene.deliveries(3)
    code = await make_invite(scene.world, scene.aggregator, pre_approved=True, uses=5)
    chat = Chat(services.conversations)
    for round_, task in enumerate(tasks):
        chat = await sign_up(scene.world, code, "collector", scene.village, capacity=1)
        assert "The task is yours" in await take(chat, task)
        await chat.say("/leave")
        assert "You have stopped volunteering" in chat.last.text
        flagged = await outbox(services, "notice.volunteer_flagged")
        assert len(flagged) == (1 if round_ == 2 else 0)
    [notice] = await outbox(services, "notice.volunteer_flagged")
    assert notice.contact_id == await contact_of(services, scene.staff)
    text = rendered(services, notice, "en")
    assert "Budi Santoso" in text and "3 times in 24 hours" in text
    log = await audit_log(services)
    assert log.count(("hand_back", "done")) == 3
    assert ("volunteer_flagged", "hand-backs") in log


async def test_failing_tasks_after_pick_up_is_no_way_around_the_limit_or_the_flag(
        services: Services) -> None:
    """Picking tasks up (which shows each household's name, phone and address) and
    reporting them failed instead of handing them back: each failure after pick-up holds
    a place among the volunteer's open tasks for a day, and the third drop alerts staff
    as hand-backs do. A task failed before pick-up, its household unseen, counts for
    neither."""
    scene = await Scene.make(services, stock=6)
    clock = use_clock(services, scene.world.now)
    tasks = await scene.deliveries(6, street="Jl. Kenanga 7")
    code = await make_invite(scene.world, scene.aggregator, pre_approved=True)
    chat = await sign_up(scene.world, code, "collector", scene.village, capacity=5)

    async def fail(task: int) -> None:
        await chat.tap(f"fail:{task}", context="tk")
        await chat.tap(f"why:nobody_home:{task}")
        assert "Noted" in chat.last.text

    assert "The task is yours" in await take(chat, tasks[0])
    await fail(tasks[0])
    for round_, task in enumerate(tasks[1:4]):
        assert "The task is yours" in await take(chat, task)
        await chat.tap(f"up:{task}", context="tk")
        assert "Jl. Kenanga 7" in chat.last.text
        await fail(task)
        flagged = await outbox(services, "notice.volunteer_flagged")
        assert len(flagged) == (1 if round_ == 2 else 0)
    # Three failed after pick-up within the day: as many as they may have open (3).
    refused = await take(chat, tasks[4])
    assert "reported 3 tasks failed after pick-up in the last 24 hours" in refused
    assert (await delivery(services, tasks[4])).volunteer_id is None
    [notice] = await outbox(services, "notice.volunteer_flagged")
    assert notice.contact_id == await contact_of(services, scene.staff)
    text = rendered(services, notice, "en")
    assert "Budi Santoso" in text and "reported them failed after picking them up" in text
    assert "3 times in 24 hours" in text
    log = await audit_log(services)
    assert log.count(("fail_after_pickup", "done")) == 3
    assert ("volunteer_flagged", "hand-backs") in log
    assert ("take", "too many open") in log
    # A day later the failures no longer hold a place.
    clock.now += timedelta(hours=24, minutes=1)
    assert "The task is yours" in await take(chat, tasks[4])


async def admin(config: Config, *argv: str) -> str:
    out = io.StringIO()
    assert await run_admin(config, build_parser().parse_args(list(argv)), out=out) == 0
    return out.getvalue()


async def test_the_operator_sees_who_joined_with_a_code_and_revokes_them(
        config: Config, services: Services) -> None:
    scene = await Scene.make(services, stock=2)
    [task] = await scene.deliveries(1)
    world = scene.world
    shared = await make_invite(world, scene.aggregator, pre_approved=True, uses=5)
    other = await make_invite(world, scene.aggregator, pre_approved=True)
    budi = await sign_up(world, shared, "budi", scene.village, capacity=2)
    await sign_up(world, shared, "dewi", scene.village, capacity=2, name="Dewi Lestari")
    rina = await sign_up(world, other, "rina", scene.village, capacity=2, name="Rina Wati")
    assert "The task is yours" in await take(budi, task)

    listing = await admin(config, "invites", "list", "--aggregator", str(scene.aggregator))
    lines = listing.splitlines()
    first = next(i for i, line in enumerate(lines) if ", pre-approved" in line
                 and "3 uses left" in line)
    shared_id = int(lines[first].split()[1].rstrip(":"))
    assert "Budi Santoso (approved)" in lines[first + 1]
    assert "Dewi Lestari (approved)" in lines[first + 2]
    assert "Rina Wati" not in "\n".join(lines[first:first + 3])

    out = await admin(config, "invites", "revoke", str(shared_id))
    assert "Budi Santoso" in out and "Dewi Lestari" in out
    assert "deliveries back to staff: 1" in out
    assert (await volunteer_of(services, budi)).status == "revoked"
    assert (await volunteer_of(services, rina)).status == "approved"
    back = await delivery(services, task)
    assert (back.status, back.volunteer_id) == ("allocated", None)
    await budi.say("/tasks")
    assert "This is for volunteers" in budi.last.text
    # The code admits nobody more.
    stranger = Chat(services.conversations, chat_id="stranger")
    await stranger.say(f"/volunteer {shared}")
    assert "You are signing up" not in stranger.last.text
    listing = await admin(config, "invites", "list", "--aggregator", str(scene.aggregator))
    assert f"invite {shared_id}: volunteer, pre-approved" in listing and "revoked" in listing
    [returned] = await outbox(services, "notice.tasks_returned")
    assert returned.contact_id == await contact_of(services, scene.staff)
    log = await audit_log(services)
    assert ("revoke_invite", "done") in log and log.count(("revoke_volunteer", "done")) == 2
