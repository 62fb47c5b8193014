"""The menu and /help fit the person: the commands of the roles they have and none
they do not; /status gives each request that can be taken back its own button; /start
means one thing."""

from __future__ import annotations

from datetime import timedelta

from gotong.bot.channels.console import render
from gotong.bot.services import Services
from gotong.models.area import AreaLevel
from gotong.models.help_request import NewRequest, submit_request
from tests.chat import Chat
from tests.handlers.test_staff_stock import TIMUR, join
from tests.handlers.test_volunteers import contact_of, enlist
from tests.models.aid_world import AidWorld


def menu(chat: Chat) -> list[str]:
    assert chat.last.context == "menu", chat.last.text
    return [o.id for o in chat.last.options]


async def help_text(chat: Chat) -> str:
    [text, _] = await chat.say("/help")
    return text.text


async def test_a_newcomer_sees_how_to_ask_give_and_volunteer(services: Services) -> None:
    chat = Chat(services.conversations)
    await chat.say("/menu")
    assert menu(chat) == ["request", "donate", "volunteer", "status", "language", "help",
                          "person"]
    shown = await help_text(chat)
    assert "/request" in shown and "/donate" in shown and "/volunteer CODE" in shown
    for other in ("/tasks", "/queue", "/dashboard", "/cancel_request", "/leave"):
        assert other not in shown, other


async def test_a_volunteer_sees_their_tasks_and_no_offer_to_volunteer(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    [regency] = services.areas.named(AreaLevel.REGENCY, TIMUR)
    village = services.areas.children(services.areas.children(regency.id)[0].id)[0].id
    volunteer = await enlist(world, timur, "volunteer", village)
    await volunteer.say("/menu")
    items = menu(volunteer)
    assert "tasks" in items and "volunteer" not in items and "queue" not in items
    assert "My tasks" in [o.label for o in volunteer.last.options]
    shown = await help_text(volunteer)
    assert "/tasks" in shown and "/leave" in shown
    assert "/volunteer CODE" not in shown and "/queue" not in shown
    # The menu's own button opens the volunteer's screen.
    await volunteer.say("/menu")
    await volunteer.tap("tasks")
    assert "No tasks now" in volunteer.last.text or "Open deliveries" in volunteer.last.text


async def test_staff_see_their_own_commands(services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    staff = await join(world, timur, "staff")
    await staff.say("/menu")
    items = menu(staff)
    assert {"queue", "incoming", "allocate", "assign"} <= set(items)
    assert "volunteer" not in items and "tasks" not in items
    shown = await help_text(staff)
    for command in ("/queue", "/incoming", "/allocate", "/assign", "/review", "/dashboard"):
        assert command in shown, command
    assert "/tasks" not in shown and "/volunteer CODE" not in shown
    await staff.tap("queue", context="menu")
    assert "No requests are waiting" in staff.last.text


async def test_a_household_with_requests_gets_a_cancel_button_for_each(
        services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await chat.say("/mulai")
    contact_id = await contact_of(services, chat)
    areas = services.areas
    village = areas.children(areas.children(areas.regencies()[0].id)[0].id)[0].id
    references = []
    for i in range(2):
        async with services.sessions() as session, session.begin():
            request, _ = await submit_request(session, contact_id, NewRequest(
                head_name=f"Siti {'AB'[i]}", phone=f"+62812000000{i}", nik=None,
                village_id=village, street=f"Jl. Mawar {i + 1}", rt="1", rw="2",
                household_size=3, vulnerabilities=[], needs=["food"], needs_other=None),
                now=services.conversations.now(), duplicate_window=timedelta(seconds=1))
            references.append(request.reference)
    await chat.say("/status")
    status = chat.replies[-1]
    labels = [o.label for o in status.options]
    assert sorted(labels) == sorted(f"Batalkan permintaan {r}" for r in references)
    shown = render(status)
    assert "None." not in shown and "  1. Batalkan permintaan" in shown
    assert all(r in status.text for r in references)
    # Each button takes back its own request.
    await chat.tap(f"cancel:{references[1]}", context="req")
    assert references[1] in chat.last.text
    assert "/batalkan_permintaan" in await help_text(chat)


async def test_start_means_start(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await chat.say("/berhenti")
    [welcome] = await chat.say("/mulai")
    assert welcome.context == "menu"
    assert "Ketik /terima_kabar untuk menerimanya lagi" in welcome.text
    [resumed, _] = await chat.say("/terima_kabar")
    assert "Anda akan menerima pengingat dan pengumuman lagi" in resumed.text
    [welcome] = await chat.say("/mulai")
    assert "/terima_kabar" not in welcome.text
    assert "/mulai" not in await help_text(chat)
