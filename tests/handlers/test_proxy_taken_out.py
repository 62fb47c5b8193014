"""What a proxy the operator took out can no longer do for the households they stood
in for, and what a request taken back leaves of the question to a phone."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import update

from gotong.bot.config import Config
from gotong.bot.services import Services, handler_settings
from gotong.handlers.conversations import Conversations
from gotong.models.help_request import HelpRequest
from gotong.models.request_status import RequestStatus
from tests.chat import Chat
from tests.handlers.test_proxies import accept, new_proxy, proxy_world, register, request_by
from tests.handlers.test_proxy_phones import STRANGER, button, on_whatsapp, questions
from tests.handlers.test_proxy_revoke import operator_code
from tests.handlers.test_volunteer_limits import admin
from tests.handlers.test_volunteers import (
    allocated,
    contact_of,
    delivery,
    enlist,
    take,
    volunteer_of,
)
from tests.lookups import audit_log, outbox
from tests.models.aid_world import AidWorld


async def take_back(chat: Chat, reference: str) -> None:
    """The household's own "take back my request" buttons, made up with a reference."""
    await chat.tap(f"cancel:{reference}", context="req")
    await chat.tap(f"yes:{reference}", context="reqc")


async def taken_out_proxy(config: Config, services: Services
                          ) -> tuple[AidWorld, int, Chat, Chat, list[str]]:
    """A proxy who registered a household without a phone and one whose phone is still
    to answer, then was taken out with the code that let them in."""
    world, aggregator, staff = await proxy_world(services)
    code, invite_id = await operator_code(config, aggregator)
    budi = await accept(services, code, "rt-05", "Budi Santoso", "+6281200000005")
    references = [await register(budi, phone=None, nik=None),
                  await register(budi, phone="0813 1111 2222", nik=None, name="Pak Karto",
                                 address="Jl. Melati No. 7 RT 03 RW 05")]
    await admin(config, "invites", "revoke", str(invite_id))
    return world, aggregator, staff, budi, references


async def under_way(world: AidWorld, aggregator_id: int, staff: Chat, reference: str
                    ) -> int:
    """Staff verify the request and allocate aid to it, and a volunteer takes the
    delivery (its code is then news for the household); the delivery's id."""
    request = await request_by(world.services, reference)
    await staff.say("/queue")
    await staff.tap(f"v:{request.id}", context="q")
    await world.pledge(aggregator_id, 1, received=1)
    [delivery_id] = await allocated(world, aggregator_id, [request.id])
    volunteer = await enlist(world, aggregator_id, "volunteer-1", request.village_id)
    await volunteer_of(world.services, volunteer)
    await take(volunteer, delivery_id)
    return delivery_id


async def test_a_proxy_taken_out_cannot_take_the_households_requests_back(
        config: Config, services: Services) -> None:
    _, _, _, budi, references = await taken_out_proxy(config, services)
    for reference in references:
        await budi.tap(f"cancel:{reference}", context="req")
        assert "no request that can still be cancelled" in budi.last.text, budi.last.text
        # Nor with the confirmation's button, made up.
        await budi.tap(f"yes:{reference}", context="reqc")
    assert [(await request_by(services, r)).status for r in references] == \
        [RequestStatus.SUBMITTED] * 2


async def test_a_proxy_taken_out_cannot_say_whether_the_households_aid_came(
        config: Config, services: Services) -> None:
    world, aggregator_id, staff, budi, [reference, _] = await taken_out_proxy(config,
                                                                               services)
    delivery_id = await under_way(world, aggregator_id, staff, reference)
    for option in (f"not:{delivery_id}", f"got:{delivery_id}"):
        await budi.tap(option, context="dl")
        assert budi.last.text == "That delivery is not yours.", budi.last.text
    after = await delivery(services, delivery_id)
    assert after.status != "delivered" and not after.disputed
    assert [entry for entry in await audit_log(services) if entry[0] == "receipt"] == \
        [("receipt", "not theirs")] * 2


async def test_news_not_yet_sent_to_a_proxy_taken_out_is_dropped(
        config: Config, services: Services) -> None:
    world, aggregator_id, staff = await proxy_world(services)
    code, invite_id = await operator_code(config, aggregator_id)
    budi = await accept(services, code, "rt-05", "Budi Santoso", "+6281200000005")
    reference = await register(budi, phone=None, nik=None)
    await under_way(world, aggregator_id, staff, reference)
    budi_id = await contact_of(services, budi)
    [code_news] = await outbox(services, "notice.delivery_assigned", budi_id)
    assert code_news.status in ("pending", "held")
    await admin(config, "invites", "revoke", str(invite_id))
    [code_news] = await outbox(services, "notice.delivery_assigned", budi_id)
    assert (code_news.status, code_news.last_error, code_news.body, code_news.params) == \
        ("skipped", "proxy removed", None, {})
    # Being told they are a proxy no more still goes.
    [told] = await outbox(services, "notice.proxy_removed", budi_id)
    assert told.status == "pending"


async def test_a_request_taken_back_is_no_longer_asked_about(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 1111 2222", nik=None)
    [asked] = await outbox(services, "notice.household_phone_check")
    # Someone who sent /stop is not asked: the question is not essential news.
    assert not asked.essential
    await take_back(chat, reference)
    assert (await request_by(services, reference)).status == RequestStatus.CANCELLED
    assert await questions(services) == []
    # The button already sent changes nothing.
    [reply] = await on_whatsapp(services, STRANGER, *button(asked, "yes"))
    assert reply.text == "Tombol itu bukan untuk Anda, atau sudah dijawab.", reply.text
    request = await request_by(services, reference)
    assert request.status == RequestStatus.CANCELLED and request.phone != "+6281311112222"


async def test_a_request_closed_otherwise_cannot_be_taken_over(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 1111 2222", nik=None)
    [asked] = await outbox(services, "notice.household_phone_check")
    # Closed while the question waits (as staff rejecting it would).
    async with services.sessions() as session, session.begin():
        await session.execute(update(HelpRequest).where(HelpRequest.reference == reference)
                              .values(status=RequestStatus.REJECTED))
    [reply] = await on_whatsapp(services, STRANGER, *button(asked, "yes"))
    assert "sudah dibatalkan atau ditutup" in reply.text, reply.text
    request = await request_by(services, reference)
    assert request.contact_id == await contact_of(services, chat)
    assert ("proxy_phone", "refused") in await audit_log(services)


async def test_requests_taken_back_count_towards_the_limit_for_a_day(
        services: Services) -> None:
    services.conversations = Conversations(
        services.engine, services.catalog, services.areas,
        dataclasses.replace(handler_settings(services.config), max_proxy_households=1))
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 1111 2222", nik=None)
    await take_back(chat, reference)
    assert (await request_by(services, reference)).status == RequestStatus.CANCELLED
    # Registering again at once is refused: the number is not asked a second time.
    await chat.say("/daftarkan")
    assert "taken back in the last day" in chat.last.text, chat.last.text
    assert len(await outbox(services, "notice.household_phone_check")) == 1
    assert ("proxy_register", "limit") in await audit_log(services)
    # A day later it counts no more.
    taken_back_at = (await request_by(services, reference)).updated_at
    async with services.sessions() as session, session.begin():
        await session.execute(update(HelpRequest).where(HelpRequest.reference == reference)
                              .values(updated_at=taken_back_at - timedelta(days=1)))
    await register(chat, phone=None, nik=None, name="Pak Karto",
                   address="Jl. Melati No. 7 RT 03 RW 05")
