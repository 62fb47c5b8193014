"""A household in an area no aid organisation serves: told so before and after sending,
its request kept and listed for the operator (`gotong uncovered`, the operator's digest in
the log), then routed to the aggregator that covers the area later, the household told."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.dispatcher import Dispatcher, DispatchSettings
from gotong.bot.services import Services
from gotong.handlers.notices import render_notice
from gotong.models.contact import Contact
from gotong.models.digest import send_digests
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import OutboxMessage
from tests.bot.cli.test_admin import admin
from tests.chat import Chat
from tests.handlers.test_household_form import start_request
from tests.handlers.test_staff_stock import join
from tests.models.aid_world import AidWorld

# Karet Semanggi, Setia Budi, Jakarta Selatan.
SETIA_BUDI_POSTAL_CODE = "12930"
UNCOVERED_NOTE = "no aid organisation serves this area yet"
KEPT = "No aid organisation serves your area yet. Your request is kept"


async def register_up_to_the_summary(chat: Chat, postal_code: str = SETIA_BUDI_POSTAL_CODE,
                                     phone: str = "0812 3456 7890") -> str:
    await start_request(chat)
    await chat.say_all("Siti Aminah", phone, "skip", postal_code,
                       "Jl. Melati No. 5 RT 03 RW 05", "4", "1", "1")
    assert chat.last.context == "hh.summary", chat.last.text
    return chat.last.text


async def contact_id(services: Services, chat_id: str) -> int:
    async with services.sessions() as session:
        found = await session.scalar(select(Contact.id).where(Contact.chat_id == chat_id))
    assert found is not None
    return found


async def notices_to(services: Services, chat_id: str, language: str = "en") -> list[str]:
    """What the person was sent through the outbox, as they read it."""
    person = await contact_id(services, chat_id)
    async with services.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).where(
            OutboxMessage.contact_id == person, OutboxMessage.message_key.is_not(None))
            .order_by(OutboxMessage.id))).all()
    return [render_notice(services.catalog, language, row.message_key or "", row.params,
                          row.actions).text for row in rows]


async def test_the_household_is_told_before_and_after_sending_that_nobody_serves_the_area(
        services: Services) -> None:
    world = AidWorld(services)
    await world.aggregator("Jakarta Timur")
    chat = Chat(services.conversations, chat_id="household")
    summary = await register_up_to_the_summary(chat)
    assert UNCOVERED_NOTE in summary
    assert "we will tell you here as soon as one does" in summary
    replies = await chat.say("1")
    assert KEPT in replies[-1].text
    assert "Reference: GT-" in replies[-1].text
    async with services.sessions() as session:
        request = await session.scalar(select(HelpRequest))
    assert request is not None and request.status == "submitted"


async def test_a_household_in_a_served_area_reads_no_such_warning(services: Services) -> None:
    world = AidWorld(services)
    await world.aggregator("Jakarta Selatan")
    chat = Chat(services.conversations, chat_id="household")
    summary = await register_up_to_the_summary(chat)
    assert UNCOVERED_NOTE not in summary
    replies = await chat.say("1")
    assert "Reference: GT-" in replies[-1].text
    assert KEPT not in replies[-1].text


async def test_changing_the_area_at_the_summary_brings_the_warning_or_takes_it_away(
        services: Services) -> None:
    world = AidWorld(services)
    await world.aggregator("Jakarta Timur")
    chat = Chat(services.conversations, chat_id="household")
    assert UNCOVERED_NOTE in await register_up_to_the_summary(chat)
    await chat.tap(chat.option_id("Change Area"))
    # A kelurahan of Jakarta Timur, by its postal code (Cipinang Melayu).
    await chat.say("13620")
    # The address given for the old kelurahan no longer fits: asked again.
    assert chat.last.context == "hh.address", chat.last.text
    await chat.say("Jl. Kenanga 7 RT 02 RW 04")
    assert chat.last.context == "hh.summary", chat.last.text
    assert UNCOVERED_NOTE not in chat.last.text


async def test_the_operator_lists_waiting_requests_without_names_or_phones(
        config: Config, services: Services) -> None:
    chat = Chat(services.conversations, chat_id="household")
    await register_up_to_the_summary(chat, phone="0812 7777 1234")
    await chat.say("1")
    async with services.sessions() as session:
        request = await session.scalar(select(HelpRequest))
    assert request is not None
    code, out = await admin(config, "uncovered")
    assert code == 0
    assert f"{request.reference}  Karet Semanggi, Setia Budi, Kota Jakarta Selatan 12930  " \
           "waiting 0h (submitted)" in out
    assert "1 request waits where no aggregator covers the area" in out
    assert "Siti" not in out and "7777" not in out and "Melati" not in out


async def test_the_operators_digest_counts_them_in_the_log(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    chat = Chat(services.conversations, chat_id="household")
    await register_up_to_the_summary(chat)
    await chat.say("1")
    dispatcher = Dispatcher(services.engine, services.catalog, {}, {},
                            DispatchSettings(digest_interval=timedelta(hours=1)))
    with caplog.at_level(logging.WARNING, logger="gotong.bot.dispatcher"):
        assert await dispatcher.operator_digest() == 1
        # Once per digest interval.
        assert await dispatcher.operator_digest() == -1
    assert caplog.messages == [
        "1 request waits where no aggregator covers the area: see `gotong uncovered`"]


async def test_an_aggregator_added_later_takes_the_request_and_the_household_is_told(
        config: Config, services: Services) -> None:
    chat = Chat(services.conversations, chat_id="household")
    await register_up_to_the_summary(chat)
    await chat.say("1")
    code, out = await admin(config, "aggregator", "add", "--name", "Yayasan Setia",
                            "--posko", "Jl. Setia 1", "--kota", "Jakarta Selatan",
                            "--kecamatan", "Setia Budi")
    assert code == 0
    assert "1 waiting request in areas no aggregator covered now go to it" in out
    [told] = await notices_to(services, "household")
    assert told.startswith("Good news: Yayasan Setia now serves your area. Your request GT-")
    code, out = await admin(config, "uncovered")
    assert "every waiting request is in an area an aggregator covers" in out
    # Its staff find it in their queue.
    world = AidWorld(services)
    staff = await join(world, 1, "staff-setia")
    await staff.say("/queue")
    assert "Karet Semanggi" in staff.last.text


async def test_an_area_given_to_an_aggregator_routes_the_requests_and_its_staff_hear(
        config: Config, services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator("Jakarta Timur")
    staff = await join(world, timur, "staff-timur")
    household = Chat(services.conversations, chat_id="household", language="id")
    await register_up_to_the_summary(household)
    await household.say("1")
    assert "Belum ada lembaga bantuan yang melayani wilayah Anda" in household.last.text
    code, out = await admin(config, "aggregator", "edit", str(timur), "--kota",
                            "Jakarta Timur", "--kota", "Jakarta Selatan")
    assert code == 0 and "1 waiting request" in out
    [told] = await notices_to(services, "household", "id")
    assert told.startswith("Kabar baik: Posko Jakarta Timur kini melayani wilayah Anda.")
    async with services.sessions() as session, session.begin():
        await send_digests(session, world.now + timedelta(minutes=1), timedelta(hours=1))
    assert "New requests wait for verification in your area. Send /queue to see them." in \
        await notices_to(services, "staff-timur")
    await staff.say("/queue")
    assert "Karet Semanggi" in staff.last.text
    # Told once: editing again routes nothing more.
    code, out = await admin(config, "aggregator", "edit", str(timur), "--name", "Posko")
    assert "waiting request" not in out
    assert len(await notices_to(services, "household", "id")) == 1
