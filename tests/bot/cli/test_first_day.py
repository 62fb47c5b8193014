"""The operator's first day: demo data never mixed with real data (`gotong demo load|clear`,
the playground's seed, the warning of `gotong run`), and an aggregator disabled and
enabled again (`gotong aggregator disable|enable`) with its open work listed, its staff
told, donors and new requests kept from it, and nothing deleted."""

from __future__ import annotations

import io
import logging
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from gotong.bot.cli.demo import run_demo
from gotong.bot.cli.main import build_parser
from gotong.bot.config import Config
from gotong.bot.process import seed_playground, warn_of_demo_data
from gotong.bot.services import Services
from gotong.handlers.messages import Incoming, Reply
from gotong.models.aggregator import Aggregator
from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge
from tests.bot.cli.test_admin import admin
from tests.chat import Chat
from tests.conftest import with_telegram
from tests.handlers.test_donor_form import start
from tests.handlers.test_staff_stock import TIMUR, join
from tests.handlers.test_uncovered_areas import notices_to, register_up_to_the_summary
from tests.models.aid_world import AidWorld


class PlaygroundChat(Chat):
    """A person on one of the playground's screens (the "web" channel)."""

    async def handle(self, incoming: Incoming) -> list[Reply]:
        return await super().handle(replace(incoming, channel="web"))


async def demo(config: Config, action: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_demo(config, build_parser().parse_args(["demo", action]), out=out)
    return code, out.getvalue()


async def counts(services: Services) -> tuple[int, int, int]:
    async with services.sessions() as session:
        return (int(await session.scalar(select(func.count(Aggregator.id))) or 0),
                int(await session.scalar(select(func.count(Contact.id))) or 0),
                int(await session.scalar(select(func.count(HelpRequest.id))) or 0))


# --- demo data ------------------------------------------------------------------------


async def test_demo_data_is_loaded_and_cleared_leaving_nothing_behind(
        config: Config, services: Services) -> None:
    code, out = await demo(config, "load")
    assert code == 0 and "loaded the demo data: Posko Contoh (demo)" in out
    code, out = await demo(config, "load")
    assert "loaded already" in out
    code, out = await admin(config, "aggregator", "list")
    assert "1: Posko Contoh (demo) [demo data]" in out
    # Someone plays the household on the playground's screen.
    household = PlaygroundChat(services.conversations, chat_id="household")
    await register_up_to_the_summary(household)
    await household.say("1")
    assert await counts(services) == (1, 3, 1)
    code, out = await demo(config, "clear")
    assert code == 0, out
    assert "1 aggregators, 3 playground people, 1 requests and 0 pledges" in out
    assert await counts(services) == (0, 0, 0)


async def test_demo_data_is_never_loaded_into_a_database_with_real_data(
        config: Config, services: Services, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    await AidWorld(services).aggregator(TIMUR)
    code, _ = await demo(config, "load")
    assert code == 2
    assert "this database holds real data" in capsys.readouterr().err
    # Nor by the playground, which then runs without it and says so.
    with caplog.at_level(logging.WARNING, logger="gotong"):
        await seed_playground(config, services)
    assert "demo data not loaded: this database holds real data" in caplog.text
    async with services.sessions() as session:
        assert await session.scalar(select(Aggregator.id).where(Aggregator.demo)) is None


async def test_clearing_spares_real_data_beside_the_demo(
        config: Config, services: Services) -> None:
    await demo(config, "load")
    # The bot went live on the same database: a real aggregator and a real household.
    world = AidWorld(services)
    real = await world.aggregator(TIMUR)
    request = await world.household(world.village(TIMUR))
    code, out = await demo(config, "clear")
    assert code == 0, out
    async with services.sessions() as session:
        assert (await session.scalars(select(Aggregator.id))).all() == [real]
        assert await session.get(HelpRequest, request) is not None
    # The real aggregator's staff member and the household.
    assert await counts(services) == (1, 2, 1)


async def test_clearing_refuses_while_real_aid_is_tied_to_the_demo(
        config: Config, services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    await demo(config, "load")
    async with services.sessions() as session:
        demo_aggregator = await session.scalar(select(Aggregator.id).where(Aggregator.demo))
    assert demo_aggregator is not None
    # A real donor, on a chat app, pledged to the demo organisation.
    await AidWorld(services).pledge(demo_aggregator, 5)
    before = await counts(services)
    code, _ = await demo(config, "clear")
    assert code == 2
    assert "real aid is tied to the demo data" in capsys.readouterr().err
    assert await counts(services) == before


async def test_run_warns_when_demo_data_sits_beside_a_chat_app(
        config: Config, services: Services, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    live = with_telegram(config, token="123456:ABC-live")
    assert not await warn_of_demo_data(live, services)
    await demo(config, "load")
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="gotong"):
        assert await warn_of_demo_data(live, services)
    assert "this database holds demo data" in capsys.readouterr().out
    assert "gotong demo clear" in caplog.text


# --- disabling an aggregator ------------------------------------------------------------


async def test_a_disabled_aggregator_takes_nothing_new_and_its_work_is_listed(
        config: Config, services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    await join(world, timur, "staff-timur")
    waiting = await world.household(world.village(TIMUR))
    pledge = await world.pledge(timur, 5)
    code, out = await admin(config, "aggregator", "disable", str(timur))
    assert code == 0, out
    assert "disabled: it takes no new requests or pledges" in out
    async with services.sessions() as session:
        reference = (await session.get(HelpRequest, waiting)).reference  # type: ignore[union-attr]
        code_of_pledge = (await session.get(Pledge, pledge)).code  # type: ignore[union-attr]
    assert f"requests waiting in its areas: 1: {reference}" in out
    assert f"of which no other aggregator covers: 1: {reference}" in out
    assert f"pledges not yet received: 1: {code_of_pledge}" in out
    assert "deliveries not finished: 0" in out
    # Its staff are told, through the outbox.
    assert "Posko Jakarta Timur was disabled by the operator" in \
        (await notices_to(services, "staff-timur"))[-1]
    # Donors are not offered it.
    donor = Chat(services.conversations, chat_id="donor")
    await start(donor)
    await donor.tap("food_package")
    await donor.say("5")
    await donor.tap(donor.option_id("Jakarta Timur"))
    assert "No aid organisation works there yet" in donor.last.text
    # Its requests wait as uncovered; a new one is told nobody serves the area.
    code, out = await admin(config, "uncovered")
    assert reference in out
    # Listed as disabled; nothing deleted.
    code, out = await admin(config, "aggregator", "list")
    assert "Posko Jakarta Timur [disabled since" in out
    async with services.sessions() as session:
        assert await session.get(Pledge, pledge) is not None
    code, out = await admin(config, "aggregator", "disable", str(timur))
    assert "disabled already" in out


async def test_an_aggregator_enabled_again_takes_its_waiting_requests_back(
        config: Config, services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    staff = await join(world, timur, "staff-timur")
    await admin(config, "aggregator", "disable", str(timur))
    household = Chat(services.conversations, chat_id="household")
    summary = await register_up_to_the_summary(household, postal_code="13620")
    assert "no aid organisation serves this area yet" in summary
    await household.say("1")
    code, out = await admin(config, "aggregator", "enable", str(timur))
    assert code == 0
    assert "enabled: it takes requests and pledges again" in out
    assert "1 waiting request" in out
    assert (await notices_to(services, "household"))[-1].startswith(
        "Good news: Posko Jakarta Timur now serves your area.")
    assert "Posko Jakarta Timur is enabled again" in \
        (await notices_to(services, "staff-timur"))[-1]
    await staff.say("/queue")
    assert "Cipinang Melayu" in staff.last.text
    code, out = await admin(config, "aggregator", "enable", str(timur))
    assert "enabled already" in out
