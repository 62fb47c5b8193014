"""The donor's pledge dialog: what, how much, where, through whom, and how it is handed
over; the aggregators offered are those covering the area chosen."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from gotong.bot.services import Services
from gotong.models.aggregator import Posko, create_aggregator
from gotong.models.area import AreaLevel
from gotong.models.base import utcnow
from gotong.models.contact import ContactRole
from gotong.models.help_request import HelpRequest, NewRequest, submit_request
from gotong.models.pledge import Pledge
from gotong.models.request_status import RequestStatus
from tests.chat import Chat


async def aggregator(services: Services, name: str, kota: str) -> int:
    [regency] = services.areas.named(AreaLevel.REGENCY, kota)
    async with services.sessions() as session, session.begin():
        created = await create_aggregator(session, name, Posko.parse(
            f"Jl. {name} 1; 08.00-16.00"), [regency.id], utcnow())
        return created.id


async def start(chat: Chat) -> None:
    await chat.say("/donate")
    assert "as a person or for an organisation?" in chat.last.text
    await chat.tap("individual")
    await chat.say("Budi Santoso")
    await chat.say("0812 3456 7890")
    assert "What do you give?" in chat.last.text


async def test_a_pledge_to_the_aggregator_of_a_kota(services: Services) -> None:
    await aggregator(services, "Posko Selatan", "Jakarta Selatan")
    await aggregator(services, "Posko Timur", "Jakarta Timur")
    chat = Chat(services.conversations)
    await start(chat)
    await chat.tap("food_package")
    assert "How many packages?" in chat.last.text
    await chat.say("1.000")
    await chat.tap(chat.option_id("Jakarta Selatan"))
    await chat.tap("all")
    # Only one aggregator covers that kota: the donor is told, not asked.
    assert chat.last.context == "dn.handover"
    assert ("Your gift goes to Posko Selatan, the aid organisation working there (posko: "
            "Jl. Posko Selatan 1, open 08.00-16.00).") in chat.last.text
    # Back goes to the question the donor answered, not to the one they were told.
    await chat.tap("back")
    assert chat.last.context == "dn.kecamatan"
    await chat.tap("all")
    assert chat.last.context == "dn.handover"
    await chat.tap("drop")
    summary = chat.last.text
    assert "Please check your pledge" in summary and "Staple food packages" in summary
    assert "1.000 packages" in summary and "Kota Jakarta Selatan" in summary
    assert "Aid organisation: Posko Selatan" in summary
    # Nothing else to choose, so nothing to change.
    assert "edit:aggregator" not in [o.id for o in chat.last.options]
    await chat.tap("submit")
    reply = chat.last.text
    code = re.search(r"Pledge code: (GP-[2-9A-Z]{5})", reply)
    assert code is not None, reply
    assert "Please bring it to the posko: Jl. Posko Selatan 1 (open 08.00-16.00)" in reply
    async with services.sessions() as session:
        pledge = await session.scalar(select(Pledge))
        roles = (await session.scalars(select(ContactRole.role))).all()
    assert pledge is not None and pledge.code == code.group(1)
    assert (pledge.category, pledge.quantity, pledge.status, pledge.handover) == (
        "food_package", 1000, "pledged", "drop")
    assert list(roles) == ["donor"]


async def test_choose_for_me_picks_where_most_households_wait(services: Services) -> None:
    await aggregator(services, "Posko Selatan", "Jakarta Selatan")
    await aggregator(services, "Posko Timur", "Jakarta Timur")
    chat = Chat(services.conversations)
    # Two verified households wait in Jakarta Timur, none in Jakarta Selatan.
    [timur] = services.areas.named(AreaLevel.REGENCY, "Jakarta Timur")
    village = services.areas.children(services.areas.children(timur.id)[0].id)[0].id
    household = Chat(services.conversations, chat_id="household")
    for i in range(2):
        await household.say("/start")  # any contact but the donor's will do
        async with services.sessions() as session, session.begin():
            request, _ = await submit_request(session, 1, NewRequest(
                head_name=f"Warga {i}", phone=f"+62812000000{i}", nik=None,
                village_id=village, street=f"Jl. Mawar {i}", rt="1", rw="2",
                household_size=3, vulnerabilities=[], needs=["food"], needs_other=None),
                now=utcnow(), duplicate_window=timedelta(days=90))
            request.status = RequestStatus.VERIFIED
    await start(chat)
    await chat.tap("money")
    assert "How many rupiah?" in chat.last.text
    await chat.say("Rp 20.000.000.000")
    assert "at most 10.000.000.000" in chat.last.text
    await chat.say("0")
    assert "The number of rupiah is at least 1. Type it, e.g. 50.000." in chat.last.text
    await chat.say("500.000")
    await chat.tap("any")
    assert [o.id for o in chat.last.options][-1] == "auto"
    await chat.tap("auto")
    # The donor hears which one before confirming anything.
    assert ("Chosen for you: Posko Timur, where most households wait for this aid."
            in chat.last.text)
    assert chat.last.context == "dn.handover"
    await chat.tap("pickup")
    assert "which address" in chat.last.text
    await chat.say("Jl. Kenanga 3, Menteng")
    await chat.say("Sabtu 09.00-12.00")
    assert "Aid organisation: Posko Timur (chosen for you)" in chat.last.text
    await chat.tap("submit")
    assert "registered with Posko Timur" in chat.last.text
    assert "will contact you to pick it up" in chat.last.text
    async with services.sessions() as session:
        pledge = await session.scalar(select(Pledge))
        households = (await session.scalars(select(HelpRequest.status))).all()
    assert pledge is not None and pledge.quantity == 500_000 and pledge.target_area_id is None
    assert (pledge.pickup_address, pledge.pickup_window) == ("Jl. Kenanga 3, Menteng",
                                                             "Sabtu 09.00-12.00")
    assert list(households) == ["verified", "verified"]


async def test_an_area_no_aggregator_covers_is_refused_with_a_hint(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await chat.say("/donasi")
    await chat.tap("organisation")
    await chat.say("PT Maju Bersama")
    await chat.say("081234567890")
    await chat.tap("hygiene")
    await chat.say("20")
    await chat.tap("any")
    assert "Belum ada lembaga bantuan di wilayah itu" in chat.last.text
    assert chat.last.context == "dn.target"
    await aggregator(services, "Posko Barat", "Jakarta Barat")
    await chat.tap(chat.option_id("Jakarta Selatan"))
    assert "Belum ada lembaga bantuan" in chat.last.text
    await chat.tap(chat.option_id("Jakarta Barat"))
    assert chat.last.context == "dn.kecamatan"
