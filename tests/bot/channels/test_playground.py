"""The playground: four phone screens over real WebSockets of the real web app, with the
real dispatcher carrying notices between them, on the demo data `gotong run` seeds.

The whole life of aid is played as a person at the page would: the household asks, staff
verify, a donor pledges, staff count it in, allocate and assign it to the demo volunteer,
who delivers it with the household's code, and the household rates the help."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from gotong.bot import process
from gotong.bot.channels.webchat import LOCATION, MAX_TEXT, SCREENS, WebChat
from gotong.bot.config import Config, WebConfig
from gotong.bot.dispatcher import Dispatcher
from gotong.bot.process import attach_dispatcher, build_web_app
from gotong.bot.services import Services
from gotong.models.aggregator import Aggregator, StaffMember
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.demo import AGGREGATOR_NAME, VOLUNTEER_NAME, demo_area, seed_demo
from gotong.models.volunteer import Volunteer, VolunteerStatus
from tests.bot.cli.test_cli import GOTONG, gotong, with_key
from tests.bot.cli.test_run import free_port, stop, wait_healthy

WAIT = 10.0  # seconds; a notice takes the outbox and the dispatcher's way
REFERENCE = re.compile(r"GT-[2-9A-Z]{5}")
PLEDGE_CODE = re.compile(r"GP-[2-9A-Z]{5}")
DELIVERY_CODE = re.compile(r"Kode pengantaran Anda: (\d{6})")


def playground_config(config: Config) -> Config:
    return replace(config, web=replace(config.web, playground="on"))


class Phone:
    """One screen's socket, as the page sees it: the messages shown, in order."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.shown: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []

    @property
    def bot(self) -> list[dict[str, Any]]:
        return [m for m in self.shown if m["from"] == "bot"]

    @property
    def last(self) -> dict[str, Any]:
        return self.bot[-1]

    def texts(self) -> str:
        return "\n".join(m["text"] for m in self.bot)

    async def _event(self) -> dict[str, Any]:
        event: dict[str, Any] = await asyncio.wait_for(self.socket.receive_json(), WAIT)
        if event["type"] == "history":
            self.history = event["messages"]
            self.shown = list(event["messages"])
        elif event["type"] == "message":
            self.shown.append(event["message"])
        elif event["type"] == "edit":
            ids = [m["id"] for m in self.shown]
            self.shown[ids.index(event["message"]["id"])] = event["message"]
        return event

    async def opened(self) -> Phone:
        event = await self._event()
        assert event["type"] == "history"
        return self

    async def send_raw(self, data: str) -> list[dict[str, Any]]:
        """Send a WebSocket message; the bot's messages shown or redrawn until it is
        handled."""
        await self.socket.send_str(data)
        answers: list[dict[str, Any]] = []
        while True:
            event = await self._event()
            if event["type"] == "handled":
                return answers
            if event["type"] in ("message", "edit") and event["message"]["from"] == "bot":
                answers.append(event["message"])

    async def send(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.send_raw(json.dumps(payload))

    async def say(self, text: str) -> list[dict[str, Any]]:
        return await self.send({"type": "text", "text": text})

    def button(self, label: str) -> tuple[str, str]:
        """The context and id of the latest button labelled so (or whose label has it)."""
        for exact in (True, False):
            for message in reversed(self.bot):
                for option in (*message["options"], *message["controls"]):
                    if option["label"] == label or (not exact and label in option["label"]):
                        return message["context"], option["id"]
        raise AssertionError(f"no button {label!r} in:\n{self.texts()}")

    async def tap(self, label: str) -> list[dict[str, Any]]:
        context, option = self.button(label)
        return await self.send({"type": "choice", "context": context, "option": option})

    async def told(self, pattern: str | re.Pattern[str]) -> str:
        """Wait until a bot message says this (a notice comes whenever it comes)."""
        wanted = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        while True:
            for message in self.bot:
                if wanted.search(message["text"]):
                    return str(message["text"])
            await self._event()


@dataclass
class Playground:
    client: TestClient[Any, Any]
    webchat: WebChat
    dispatcher: Dispatcher

    async def phone(self, screen: str, **params: str) -> Phone:
        socket = await self.client.ws_connect(f"/playground/ws/{screen}", params=params)
        return await Phone(socket).opened()


@pytest.fixture
async def playground(config: Config, services: Services) -> AsyncIterator[Playground]:
    """The web app and the dispatcher as `gotong run` builds them for the playground."""
    webchat = await process.build_webchat(playground_config(config), services)
    assert webchat is not None
    dispatcher = attach_dispatcher(services, webchat)
    stop = asyncio.Event()
    dispatching = asyncio.create_task(dispatcher.run(stop))
    app = build_web_app(services, [webchat] if webchat else [])
    try:
        async with TestClient(TestServer(app)) as client:
            yield Playground(client, webchat, dispatcher)
    finally:
        stop.set()
        await dispatching


# --- the page and the sockets --------------------------------------------------------------


async def test_the_page_shows_four_screens(playground: Playground) -> None:
    response = await playground.client.get("/playground", params={"lang": "en"})
    assert response.status == 200
    page = await response.text()
    for screen in ("household", "donor", "volunteer", "staff"):
        assert f'<section class="phone" data-screen="{screen}"' in page
    assert page.count('aria-live="polite"') == 4
    assert page.count('name="text"') == 4
    assert page.count('class="share-photo') == 1
    assert "/static/playground.js" in page and "/static/playground.css" in page
    assert "fictional data" in page
    assert 'href="/public"' in page and 'href="/dashboard"' in page
    assert "<script>" not in page and "style=" not in page and "onclick" not in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    for name in ("playground.js", "playground.css"):
        assert (await playground.client.get(f"/static/{name}")).status == 200
    home = await playground.client.get("/", allow_redirects=False)
    assert home.headers["Location"] == "/playground"


async def test_an_unknown_screen_and_a_foreign_origin_are_refused(
        playground: Playground, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = playground.client
    assert (await client.get("/playground/ws/operator")).status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/playground/ws/household", origin="https://evil.example")
    assert refused.value.status == 403
    # A site rebinding its name to this server: Host and Origin both its own.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/playground/ws/staff", origin="http://rebind.evil.example",
                                headers={"Host": "rebind.evil.example"})
    assert refused.value.status == 421
    own = str(client.make_url("")).rstrip("/")
    socket = await client.ws_connect("/playground/ws/household", origin=own,
                                     protocols=("offered-protocol-secret",))
    assert (await Phone(socket).opened()).history == []
    await socket.close()
    # What a client offers is not quoted in the log.
    assert "offered-protocol-secret" not in caplog.text


async def test_the_household_starts_registering_and_a_reload_replays_it(
        playground: Playground) -> None:
    household = await playground.phone("household")
    [welcome] = await household.say("/start")
    assert "Halo! Saya Gotong" in welcome["text"]
    assert {"id": "request", "label": "Minta bantuan", "number": 1, "selected": False} \
        in welcome["options"]
    [consent] = await household.tap("Minta bantuan")
    assert consent["hint"] == "single" and consent["context"]
    await household.tap("Ya, saya setuju")
    [ask_phone] = await household.say("Siti Contoh")
    assert ask_phone["hint"] == "contact" and ask_phone["contact_label"]
    *_, ask_nik = await household.send({"type": "contact"})
    assert "NIK" in ask_nik["text"]
    # What the person sent shows on their side, the number they shared included.
    mine = [m["text"] for m in household.shown if m["from"] == "me"]
    assert mine == ["/start", "Minta bantuan", "Ya, saya setuju", "Siti Contoh",
                    "📱 Nomor saya: +6281200000001"]

    # A second page (a reload) gets the same screen, then what comes next.
    again = await playground.phone("household")
    assert again.history == household.shown
    await household.tap("Lewati")
    await again._event()  # the person's tap, echoed
    await again._event()
    assert again.shown == household.shown


async def test_unreadable_messages_get_a_clear_answer(playground: Playground) -> None:
    donor = await playground.phone("donor", lang="en")
    [welcome] = await donor.say("/start")
    assert "Hello! I am Gotong" in welcome["text"]
    unreadable = "That message could not be read."
    for raw in ("not json", "[1, 2]", '"text"', json.dumps({"type": "sticker"}),
                json.dumps({"text": "no type"}), json.dumps({"type": "text"}),
                json.dumps({"type": "text", "text": 42}),
                json.dumps({"type": "text", "text": ""}),
                json.dumps({"type": "choice", "context": "x"}),
                json.dumps({"type": "choice", "context": None, "option": "1"}),
                json.dumps({"type": "choice", "context": "x", "option": ["1"]}),
                "[" * 20_000 + "]" * 20_000):
        [answer] = await donor.send_raw(raw)
        assert answer["text"].startswith(unreadable), raw
    [too_long] = await donor.say("x" * (MAX_TEXT + 1))
    assert too_long["text"] == f"That message is too long: at most {MAX_TEXT} characters, please."
    await donor.socket.send_bytes(b"\x00\x01")
    event = await donor._event()
    assert event["message"]["text"].startswith(unreadable)
    assert (await donor._event())["type"] == "handled"
    # A button of another question is checked by the engine, not trusted.
    [stale] = await donor.send({"type": "choice", "context": "forged", "option": "1"})
    assert stale["text"].startswith("That button belongs to an earlier question.")
    # The screen still works.
    [menu] = await donor.say("/menu")
    assert menu["options"]


async def test_the_other_screens_get_location_and_photo(playground: Playground) -> None:
    volunteer = await playground.phone("volunteer")
    [answer] = await volunteer.send({"type": "location"})
    assert answer["text"]
    [answer] = await volunteer.send({"type": "photo"})
    assert answer["text"]
    assert [m["text"] for m in volunteer.shown if m["from"] == "me"] == [
        "📍 Lokasi saya", "📷 Sebuah foto"]
    assert LOCATION[0] < 0  # south of the equator, as Jakarta is


# --- the life of aid ---------------------------------------------------------------------


async def register_household(household: Phone) -> str:
    """Siti Contoh of Karet Semanggi asks for help; the reference she got."""
    await household.say("/start")
    await household.tap("Minta bantuan")
    await household.tap("Ya, saya setuju")
    await household.say("Siti Contoh")
    await household.send({"type": "contact"})
    await household.tap("Lewati")
    await household.tap("Jakarta Selatan")
    await household.tap("Berikutnya")  # a page turn redraws the list
    await household.tap("Setia Budi")
    await household.tap("Karet Semanggi")
    await household.say("Jl. Contoh No. 5 RT 03 RW 05")
    await household.say("5")
    await household.tap("Lansia")
    await household.tap("Selesai")
    await household.say("1")
    assert "Mohon periksa pendaftaran Anda" in household.last["text"]
    [registered] = await household.tap("Kirim")
    assert "Permintaan Anda sudah terdaftar" in registered["text"]
    found = REFERENCE.search(registered["text"])
    assert found is not None
    return found.group()


async def pledge_one_package(donor: Phone) -> str:
    """A donor in English pledges one staple food package to the demo posko."""
    await donor.say("/donate")
    await donor.tap("As a person")
    await donor.say("Maria Contoh")
    await donor.send({"type": "contact"})
    await donor.tap("Staple food packages")
    await donor.say("1")
    await donor.tap("Jakarta Selatan")
    await donor.tap("Next")
    await donor.tap("Setia Budi")
    # The demo posko is the one there: named, not asked for.
    assert f"Your gift goes to {AGGREGATOR_NAME}" in donor.last["text"]
    await donor.tap("I bring it to the posko")
    assert "Please check your pledge" in donor.last["text"]
    [done] = await donor.tap("Submit")
    found = PLEDGE_CODE.search(done["text"])
    assert found is not None, done["text"]
    return found.group()


async def test_the_life_of_aid_on_four_screens(playground: Playground) -> None:
    household = await playground.phone("household")
    donor = await playground.phone("donor", lang="en")
    volunteer = await playground.phone("volunteer")
    staff = await playground.phone("staff")

    reference = await register_household(household)

    # Staff verify it; the household hears so on its own screen, through the dispatcher.
    [card] = await staff.say("/antrian")
    assert card["text"].startswith(f"{reference} menunggu verifikasi")
    [verified] = await staff.tap("Verifikasi")
    assert verified["text"].startswith(f"{reference} sudah diverifikasi")
    await household.told(f"Kabar baik: permintaan Anda {reference} sudah diverifikasi")

    # A donor pledges one package; staff count it in, and the donor hears it.
    code = await pledge_one_package(donor)
    await staff.say("/donasi_masuk")
    await staff.tap(f"Terima {code}")
    [received] = await staff.say("1")
    assert received["text"].startswith(f"{code} diterima: 1 paket masuk stok.")
    await donor.told(f"Your pledge {code} has been received: 1 counted")

    # Staff allocate it and give the delivery to the demo volunteer.
    await staff.say("/alokasi")
    await staff.tap("Paket sembako")
    [proposal] = await staff.tap("1")
    assert f"{reference} Siti Contoh, Karet Semanggi" in proposal["text"]
    [allocated] = await staff.tap("Konfirmasi")
    assert allocated["text"].startswith("Dialokasikan 1 paket untuk 1 keluarga.")
    await staff.say("/tugaskan")
    await staff.tap("Tugaskan 1")
    [assigned] = await staff.tap(VOLUNTEER_NAME)
    assert assigned["text"].startswith(f"{reference} ditugaskan kepada {VOLUNTEER_NAME}.")
    found = DELIVERY_CODE.search(await household.told(DELIVERY_CODE))
    assert found is not None
    await volunteer.told(reference)

    # The volunteer carries it and confirms with the household's code.
    await volunteer.say("/tugas")
    [opened] = await volunteer.tap("Buka 1")
    # Who and where the household is shows once the aid is picked up.
    assert "Siti Contoh" not in opened["text"]
    [picked_up] = await volunteer.tap("Sudah diambil")
    assert "Kepada: Siti Contoh, +6281200000001" in picked_up["text"]
    await volunteer.tap("Dalam perjalanan")
    await volunteer.tap("Sudah diantar")
    [thanks] = await volunteer.say(found.group(1))
    assert f"Tugas {reference} (" in thanks["text"]

    # The household is asked to rate the help, and does; the donor hears it all arrived.
    await household.told(f"Bantuan Anda ({reference}) sudah diantar.")
    [rated] = await household.tap("5")
    assert rated["text"].startswith("Terima kasih atas penilaiannya!")
    await donor.told(f"Your pledge {code}")
    # Each screen showed only its own chat.
    assert reference not in donor.texts()
    assert "Siti Contoh" not in donor.texts()


# --- the demo data and where the playground is served --------------------------------------


async def test_the_demo_is_seeded_once(config: Config, services: Services) -> None:
    for expected in (True, False, False):
        async with services.sessions() as session, session.begin():
            assert await seed_demo(session, services.areas, utcnow(), "id") is expected
    async with services.sessions() as session:
        aggregators = (await session.scalars(
            select(Aggregator).options(selectinload(Aggregator.areas)))).all()
        assert [a.name for a in aggregators] == [AGGREGATOR_NAME]
        place = demo_area(services.areas)
        assert (place.kota.name, place.kecamatan.name, place.kelurahan.name) == (
            "Kota Jakarta Selatan", "Setia Budi", "Karet Semanggi")
        assert place.kelurahan.parent_id == place.kecamatan.id
        [aggregator] = aggregators
        assert {a.area_id for a in aggregator.areas} == {place.kecamatan.id}
        staff = await session.scalar(select(Contact).where(Contact.chat_id == "staff"))
        assert staff is not None and staff.channel == "web"
        assert await session.scalar(select(func.count()).select_from(StaffMember)
                                    .where(StaffMember.contact_id == staff.id)) == 1
        [volunteer] = (await session.scalars(select(Volunteer))).all()
        assert (volunteer.name, volunteer.status) == (VOLUNTEER_NAME, VolunteerStatus.APPROVED)
        assert await session.scalar(select(func.count()).select_from(Contact)) == 2


async def test_a_deployed_configuration_serves_no_playground(
        config: Config, services: Services) -> None:
    # A Telegram token is set and web.playground is "auto": as `gotong run` builds it.
    assert config.telegram.token and config.web.playground == "auto"
    assert not config.playground_on
    webchat = await process.build_webchat(config, services)
    assert webchat is None
    app = build_web_app(services, [webchat] if webchat else [])
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/playground")).status == 404
        assert (await client.get("/playground/ws/household")).status == 404
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Aggregator)) == 0


def test_the_playground_listens_on_loopback_by_default() -> None:
    web = WebConfig()
    assert (web.host, web.port, web.playground) == ("127.0.0.1", 8080, "auto")
    config = Config()
    assert config.playground_on
    assert process.playground_notice(config).splitlines() == [
        "Playground: http://127.0.0.1:8080/playground",
        "It lets anyone who opens it act as anyone, with fictional data: it is for trying "
        "Gotong locally.",
    ]
    assert set(SCREENS) == {"household", "donor", "volunteer", "staff"}
    # Told to listen on every address, it says what that means.
    exposed = Config(web=WebConfig(host="0.0.0.0", playground="on"))
    assert process.playground_notice(exposed).splitlines()[-1] == (
        "Warning: it listens on 0.0.0.0, so other machines can reach it too; set "
        'web.host = "127.0.0.1" or web.playground = "off".')


async def test_gotong_run_without_a_chat_app_serves_the_playground(tmp_path: Path) -> None:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOTONG_")}
    environ.update(with_key(GOTONG_WEB__PORT=str(port), GOTONG_METRICS__PORT="0"))
    process = await asyncio.create_subprocess_exec(
        str(GOTONG), "run", cwd=tmp_path, env=environ, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        await wait_healthy(port)
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{port}/playground") as response:
            assert response.status == 200
    finally:
        output = await stop(process)
    assert f"Playground: http://127.0.0.1:{port}/playground" in output
    assert "act as anyone" in output


def test_gotong_run_with_the_playground_off_chats_in_the_terminal(tmp_path: Path) -> None:
    result = gotong("run", cwd=tmp_path, env=with_key(GOTONG_WEB__PLAYGROUND="off"),
                    stdin="")
    assert result.returncode == 0, result.stderr
    assert "No Telegram token or WhatsApp number is configured" in result.stdout
    assert "Playground" not in result.stdout


async def test_the_dashboard_sign_in_link_is_a_link_on_the_staff_screen(
        playground: Playground) -> None:
    staff = await playground.phone("staff")
    [answer] = await staff.say("/dasbor")
    links = [part["link"] for part in answer["parts"] if "link" in part]
    assert len(links) == 1 and "/dashboard" in links[0], answer
    assert "".join(part.get("text", part.get("link", "")) for part in answer["parts"]) \
        == answer["text"]
    # What a person types is never drawn as a link.
    await staff.say("lihat https://contoh.example")
    assert "parts" not in [m for m in staff.shown if m["from"] == "me"][-1]
