"""Proxies in chat: invited by staff, they register households with the household's own
form and consent, on the household's phone or without one; a limit per proxy; their
/status; staff see who registered a request; and everyone else is refused."""

from __future__ import annotations

import dataclasses
import re

from sqlalchemy import select

from gotong.bot.services import Services, handler_settings
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Kind
from gotong.models.contact import Contact, ContactRole
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import OutboxMessage
from gotong.models.phone_confirmation import PhoneConfirmation
from gotong.models.proxy import Proxy
from gotong.models.request_status import RequestStatus
from tests.chat import Chat
from tests.handlers.test_household_form import NIK
from tests.handlers.test_my_data import erase
from tests.handlers.test_staff_stock import TIMUR, join
from tests.handlers.test_volunteers import (
    SELATAN,
    allocated,
    contact_of,
    delivery,
    enlist,
    take,
    volunteer_of,
)
from tests.lookups import audit_log, outbox
from tests.models.aid_world import AidWorld

REFERENCE = re.compile(r"GT-[2-9A-HJKMNP-TW-Z]{5}")
# Karet Semanggi, in Jakarta Selatan.
POSTAL_CODE = "12930"


async def invite_code(staff: Chat) -> str:
    await staff.say("/undang_pendamping")
    found = re.search(r"/proxy ([2-9A-Z]{8})", staff.last.text)
    assert found, staff.last.text
    return found.group(1)


async def accept(services: Services, code: str, chat_id: str, name: str,
                 phone: str) -> Chat:
    chat = Chat(services.conversations, chat_id=chat_id)
    await chat.say(f"/pendamping {code}")
    assert "as a proxy" in chat.replies[-2].text, chat.replies[-2].text
    await chat.say(name)
    await chat.send_kind(Kind.CONTACT, phone=phone, phone_is_own=True)
    assert "Please check your details" in chat.last.text, chat.last.text
    await chat.tap("submit")
    return chat


async def proxy_world(services: Services) -> tuple[AidWorld, int, Chat]:
    world = AidWorld(services)
    aggregator = await world.aggregator(SELATAN)
    staff = await join(world, aggregator, "staff-1")
    return world, aggregator, staff


async def new_proxy(services: Services, staff: Chat, chat_id: str = "rt-05",
                    name: str = "Budi Santoso", phone: str = "+6281200000005") -> Chat:
    chat = await accept(services, await invite_code(staff), chat_id, name, phone)
    assert "You are now a proxy of" in chat.last.text, chat.last.text
    return chat


async def fill(chat: Chat, *, phone: str | None, name: str = "Ibu Sumi",
               nik: str | None = NIK, address: str = "Jl. Melati No. 5 RT 03 RW 05",
               area: str = POSTAL_CODE) -> None:
    """/register_household and the whole form, sent."""
    await chat.say("/daftarkan")
    assert chat.last.context == "px.consent", chat.last.text
    assert "Did the household agree" in chat.last.text
    await chat.tap("yes")
    await chat.say(name)
    assert chat.last.context == "px.phone", chat.last.text
    await (chat.say(phone) if phone else chat.tap("skip"))
    await (chat.say(nik) if nik else chat.tap("skip"))
    await chat.say(area)
    if chat.last.context == "px.area_pick":  # a postal code of several kelurahan
        await chat.tap(chat.last.options[0].id)
    await chat.say_all(address, "4", "1,4", "1")
    assert chat.last.context == "px.summary", chat.last.text
    await chat.tap("submit")


async def register(chat: Chat, *, phone: str | None, name: str = "Ibu Sumi",
                   nik: str | None = NIK, address: str = "Jl. Melati No. 5 RT 03 RW 05"
                   ) -> str:
    """/register_household and the whole form; the reference the proxy is given."""
    await fill(chat, phone=phone, name=name, nik=nik, address=address)
    found = REFERENCE.search(chat.last.text)
    assert found and "Registered" in chat.last.text, chat.last.text
    return found.group(0)


async def request_by(services: Services, reference: str) -> HelpRequest:
    async with services.sessions() as session:
        request = await session.scalar(select(HelpRequest)
                                       .where(HelpRequest.reference == reference))
    assert request is not None
    return request


async def contact(services: Services, contact_id: int) -> Contact:
    async with services.sessions() as session:
        found = await session.get(Contact, contact_id)
    assert found is not None
    return found


async def test_staff_invite_a_proxy_who_accepts(services: Services) -> None:
    _, aggregator, staff = await proxy_world(services)
    code = await invite_code(staff)
    chat = await accept(services, code, "rt-05", "Budi Santoso", "+6281200000005")
    assert "You are now a proxy of Posko Jakarta Selatan" in chat.last.text
    proxy_id = await contact_of(services, chat)
    async with services.sessions() as session:
        proxy = (await session.scalars(select(Proxy))).one()
        roles = set((await session.scalars(select(ContactRole.role).where(
            ContactRole.contact_id == proxy_id))).all())
    assert (proxy.contact_id, proxy.aggregator_id, proxy.name, proxy.phone) == (
        proxy_id, aggregator, "Budi Santoso", "+6281200000005")
    assert roles == {"proxy"}
    # The code admitted one person.
    other = Chat(services.conversations, chat_id="someone")
    await other.say(f"/proxy {code}")
    assert "wrong" in other.last.text.lower() or "tries" in other.last.text.lower(), \
        other.last.text
    assert ("invite_proxy", "done") in await audit_log(services)
    assert ("proxy_join", "done") in await audit_log(services)


async def test_without_a_phone_the_proxy_gets_the_news_and_the_code(services: Services
                                                                     ) -> None:
    world, aggregator, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone=None)
    assert "the news and the delivery code will come to you" in chat.last.text
    request = await request_by(services, reference)
    proxy_contact = await contact_of(services, chat)
    assert request.contact_id == proxy_contact
    # Reached at the proxy's number.
    assert request.phone == "+6281200000005"
    await staff.say("/queue")
    await staff.tap(f"v:{request.id}", context="q")
    [verified] = await outbox(services, "notice.request_verified", proxy_contact)
    assert verified.params["reference"] == reference
    await world.pledge(aggregator, 1, received=1)
    [delivery_id] = await allocated(world, aggregator, [request.id])
    volunteer = await enlist(world, aggregator, "volunteer-1", request.village_id)
    await volunteer_of(services, volunteer)
    await take(volunteer, delivery_id)
    code = (await delivery(services, delivery_id)).code
    assert code
    [assigned] = await outbox(services, "notice.delivery_assigned", proxy_contact)
    assert assigned.params["code"] == code
    await chat.say("/status")
    status = "\n".join(r.text for r in chat.replies[-2:])
    assert reference in status and "Ibu Sumi" in status
    assert f"delivery code to hand over: {code}" in status


async def test_one_phone_carries_several_households(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    first = await register(chat, phone="0813 7777 8888", name="Ibu Sumi", nik=None)
    second = await register(chat, phone="0813 7777 8888", name="Pak Karto", nik=None,
                            address="Jl. Melati No. 7 RT 03 RW 05")
    assert first != second
    one, two = await request_by(services, first), await request_by(services, second)
    assert one.contact_id == two.contact_id
    # A shared phone does not make them one household.
    assert two.duplicate_of_id is None
    # The same household again (same NIK) is flagged, as for everyone.
    third = await register(chat, phone=None, name="Ibu Sumi Lagi", nik=NIK)
    fourth = await register(chat, phone=None, name="Ibu S.", nik=NIK,
                            address="Jl. Mawar No. 1 RT 01 RW 01")
    flagged = await request_by(services, fourth)
    assert flagged.duplicate_of_id == (await request_by(services, third)).id
    assert flagged.duplicate_reasons == ["nik"]


async def test_a_proxy_over_the_limit_is_refused(services: Services) -> None:
    services.conversations = Conversations(
        services.engine, services.catalog, services.areas,
        dataclasses.replace(handler_settings(services.config), max_proxy_households=1))
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    await register(chat, phone=None)
    await chat.say("/register_household")
    assert "the most a proxy can have" in chat.last.text, chat.last.text
    assert "1 registered households" in chat.last.text
    assert ("proxy_register", "limit") in await audit_log(services)
    async with services.sessions() as session:
        assert len((await session.scalars(select(HelpRequest))).all()) == 1


async def test_a_proxy_sees_only_the_households_they_registered(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    budi = await new_proxy(services, staff)
    sari = await new_proxy(services, staff, "rw-02", "Sari Wulandari", "+6281200000002")
    mine = await register(budi, phone=None, name="Ibu Sumi", nik=None)
    theirs = await register(sari, phone=None, name="Pak Darto", nik=None,
                            address="Jl. Kenanga No. 2 RT 01 RW 02")
    before = len(budi.replies)
    await budi.say("/status")
    # One list, and no block of a household's own request (these are not Budi's own).
    assert len(budi.replies) == before + 1
    assert "Households you registered (1)" in budi.last.text, budi.last.text
    assert mine in budi.last.text and "Ibu Sumi" in budi.last.text
    assert "waiting for verification" in budi.last.text
    assert theirs not in budi.last.text and "Pak Darto" not in budi.last.text


async def test_people_who_are_not_proxies_are_refused(services: Services) -> None:
    await proxy_world(services)
    citizen = Chat(services.conversations, chat_id="citizen")
    await citizen.say("/register_household")
    assert "This is for proxies invited by an aid organisation" in citizen.last.text
    assert citizen.last.context != "px.consent"
    await citizen.say("/invite_proxy")
    assert "This is for the staff" in citizen.last.text
    assert ("proxy_register", "not proxy") in await audit_log(services)
    assert ("invite_proxy", "not staff") in await audit_log(services)


async def test_a_proxy_declining_consent_stores_nothing(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    await chat.say("/register_household")
    await chat.tap("no")
    assert "only be registered with its consent" in chat.last.text
    async with services.sessions() as session:
        assert (await session.scalars(select(HelpRequest))).all() == []


async def test_staff_see_that_a_request_came_through_a_proxy(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone=None)
    staff.language = "id"
    await staff.say("/bahasa id")
    await staff.say("/antrian")
    assert reference in staff.last.text
    assert "didaftarkan oleh pendamping Budi Santoso" in staff.last.text, staff.last.text


async def test_outbox_rows_for_the_household_name_no_proxy(services: Services) -> None:
    """What the household is told is its own receipt, not the proxy's words."""
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    await register(chat, phone="0813 1111 2222")
    async with services.sessions() as session:
        keys = set((await session.scalars(select(OutboxMessage.message_key))).all())
    assert not any(key and key.startswith("proxy.") for key in keys)


async def test_a_household_outside_the_aggregators_area_is_refused(services: Services
                                                                   ) -> None:
    world, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    elsewhere = services.areas.get(world.village(TIMUR))
    assert elsewhere is not None
    await fill(chat, phone=None, area=elsewhere.code)
    assert "outside the area of the organisation" in chat.last.text, chat.last.text
    assert ("proxy_register", "outside area") in await audit_log(services)
    async with services.sessions() as session:
        assert (await session.scalars(select(HelpRequest))).all() == []


async def test_a_proxys_data_is_theirs_and_the_households_stay(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    with_phone = await register(chat, phone="0813 1111 2222", nik=None)
    without = await register(chat, phone=None, name="Pak Karto", nik=None,
                             address="Jl. Melati No. 7 RT 03 RW 05")
    await chat.say("/my_data")
    shown = "\n".join(r.text for r in chat.replies[-3:])
    assert "Proxy for Posko Jakarta Selatan: name Budi Santoso, phone +6281200000005; " \
           "households registered: 2" in shown, shown
    answer = await erase(chat)
    # Erasing the proxy's data closes nothing of the households'.
    assert with_phone not in answer and without not in answer, answer
    one, two = await request_by(services, with_phone), await request_by(services, without)
    assert one.status == two.status == RequestStatus.SUBMITTED
    # The proxy's number stood in for both households' (one has yet to confirm its own,
    # which stays asked: it is the household's, not the proxy's).
    assert one.phone == two.phone == "-"
    async with services.sessions() as session:
        asked = (await session.scalars(select(PhoneConfirmation))).one()
    assert (asked.request_id, asked.phone) == (one.id, "+6281311112222")
    async with services.sessions() as session:
        proxy = (await session.scalars(select(Proxy))).one()
    assert (proxy.name, proxy.phone) == ("-", "-")
    # Staff still see that a proxy registered them.
    assert one.proxy_id == two.proxy_id == proxy.id
