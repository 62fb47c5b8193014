"""Staff in chat: receiving pledges into stock, seeing stock, allocating it by priority
with skips and out-of-order additions; everyone else refused and audited; donors see and
cancel their pledges."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from gotong.bot.services import Services
from gotong.models.aggregator import InviteRole, create_invite
from gotong.models.contact import Contact
from gotong.models.delivery import Delivery
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge
from tests.chat import Chat
from tests.lookups import audit_log, outbox
from tests.models.aid_world import AidWorld

TIMUR = "Jakarta Timur"


async def join(world: AidWorld, aggregator_id: int, chat_id: str) -> Chat:
    async with world.services.sessions() as session, session.begin():
        code = await create_invite(session, aggregator_id, InviteRole.STAFF, 1,
                                   world.now + timedelta(days=1), world.now)
    chat = Chat(world.services.conversations, chat_id=chat_id)
    await chat.say(f"/join {code}")
    assert "You are now staff" in chat.replies[-2].text
    return chat


async def test_people_who_are_not_staff_are_refused_and_audited(services: Services) -> None:
    world = AidWorld(services)
    citizen = Chat(services.conversations, chat_id="citizen")
    for command in ("/incoming", "/stock", "/allocate"):
        await citizen.say(command)
        assert "This is for the staff of an aid organisation" in citizen.last.text
    # Forged taps on staff buttons, with no screen ever shown.
    aggregator = await world.aggregator(TIMUR)
    pledge = await world.pledge(aggregator, 5)
    await citizen.tap(f"p:{pledge}", context="inc")
    assert "This is for the staff" in citizen.last.text
    await citizen.tap(f"c:{aggregator}:food_package", context="al")
    assert "earlier question" in citizen.last.text
    assert await audit_log(services) == [
        ("incoming", "not staff"), ("stock", "not staff"), ("allocate", "not staff"),
        ("receive", "not staff")]


async def test_staff_of_another_aggregator_cannot_receive_or_allocate_its_stock(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator("Jakarta Selatan")
    pledge = await world.pledge(timur, 5)
    await world.pledge(timur, 3, received=3)
    staff = await join(world, selatan, "staff-selatan")
    await staff.say("/incoming")
    assert "No pledges are waiting" in staff.last.text
    await staff.tap(f"p:{pledge}", context="inc")
    assert "not for your aid organisation" in staff.last.text
    await staff.say("/allocate")
    assert "no stock to allocate" in staff.last.text
    # A tampered category button naming the other aggregator's stock.
    await world.pledge(selatan, 1, received=1)
    await staff.say("/allocate")
    await staff.tap(f"c:{timur}:food_package")
    assert "not your aid organisation's" in staff.last.text
    assert ("receive", "not their aggregator") in await audit_log(services)
    assert ("allocate", "not their aggregator") in await audit_log(services)
    async with services.sessions() as session:
        status = await session.scalar(select(Pledge.status).where(Pledge.id == pledge))
    assert status == "pledged"


async def test_staff_receive_a_counted_quantity_and_the_donor_hears_it(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    pledge = await world.pledge(aggregator, 10)
    staff = await join(world, aggregator, "staff-timur")
    await staff.say("/incoming")
    assert "10 staple food packages, from Donatur" in staff.last.text
    await staff.tap(staff.option_id("Received"))
    assert "Pledged: 10 staple food packages" in staff.last.text
    await staff.say("about eight")
    assert "Type the number of packages, e.g. 10." in staff.last.text
    await staff.say("8")
    assert re.search(r"GP-\w+ received: 8 packages added to stock", staff.replies[-1].text)
    assert "No pledges are waiting" in staff.last.text
    # The same button again, after it was received.
    await staff.tap(f"p:{pledge}", context="inc")
    assert "no longer waits to be received" in staff.last.text
    await staff.say("/stock")
    assert "- Staple food packages: 8 packages" in staff.last.text
    async with services.sessions() as session:
        received = await session.get(Pledge, pledge)
    [notice] = await outbox(services, "notice.pledge_received")
    assert received is not None and (received.status, received.received_quantity) == (
        "received", 8)
    assert notice.contact_id == received.contact_id
    assert (notice.params["received"], notice.params["pledged"]) == (8, 10)


async def test_staff_allocate_with_a_skip_and_an_addition_out_of_order(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    village = world.village(TIMUR)
    first = await world.household(village, size=8, vulnerabilities=("elderly",))
    second = await world.household(village, size=5)
    third = await world.household(village, size=2)
    last = await world.household(village, size=1)
    await world.pledge(aggregator, 3, received=3)
    staff = await join(world, aggregator, "staff-timur")
    async with services.sessions() as session:
        references = {r.id: r.reference for r in (await session.scalars(
            select(HelpRequest))).all()}

    await staff.say("/allocate")
    await staff.tap(staff.option_id("Staple food"))
    assert "How many packages per household?" in staff.last.text
    await staff.tap("n:1")
    proposal = staff.last.text
    assert "Proposal: 3 households, 1 package each (3 packages of 3 packages in stock)" \
        in proposal
    order = [proposal.index(references[r]) for r in (first, second, third)]
    assert order == sorted(order) and references[last] not in proposal
    assert "elderly 10" in proposal and "no aid yet 15" in proposal

    await staff.tap(staff.option_id("Skip 2"))
    assert f"Why skip {references[second]}?" in staff.last.text
    await staff.say("moved to Bekasi")
    assert f"{references[second]} skipped." in staff.last.text
    assert references[second] not in staff.last.text.split("skipped.")[1]
    assert references[last] in staff.last.text

    await staff.tap(staff.option_id("Add a household"))
    await staff.say("GT-ZZZZZ")
    assert "No request with that reference" in staff.last.text
    await staff.say(references[second])
    await staff.say("went back home after all")
    assert f"{references[second]} added." in staff.last.text
    assert "(added out of order: went back home after all)" in staff.last.text

    await staff.tap("ok:")
    assert "Allocated 1 package to 3 households" in staff.last.text
    assert "Left in stock: 0 packages" in staff.last.text
    async with services.sessions() as session:
        deliveries = {d.request_id: d.override_reason for d in (await session.scalars(
            select(Delivery))).all()}
    households = {n.contact_id for n in await outbox(services, "notice.request_allocated")}
    assert deliveries == {second: "went back home after all", first: None, third: None}
    assert len(households) == 3
    assert ("allocate_skip", "done") in await audit_log(services)
    # The proposal's buttons are stale once it is confirmed.
    await staff.tap("ok:", context="al")
    assert "earlier question" in staff.last.text


async def test_a_donor_sees_their_pledges_and_cancels_one_not_yet_received(
        services: Services) -> None:
    world = AidWorld(services)
    aggregator = await world.aggregator(TIMUR)
    donor = Chat(services.conversations, chat_id="donor")
    await donor.say("/start")
    async with services.sessions() as session:
        contact = await session.scalar(select(Contact).where(Contact.chat_id == "donor"))
    assert contact is not None
    waiting = await world.pledge(aggregator, 5)
    received = await world.pledge(aggregator, 4, received=4)
    async with services.sessions() as session, session.begin():
        for pledge_id in (waiting, received):
            pledge = await session.get(Pledge, pledge_id)
            assert pledge is not None
            pledge.contact_id = contact.id
    await donor.say("/status")
    status = "\n".join(r.text for r in donor.replies[-2:])
    assert "staple food packages, waiting to be brought to the posko" in status
    assert "4 received, 0 set aside for 0 households, 0 delivered." in status
    [cancel] = [o for r in donor.replies[-2:] for o in r.options if o.id.startswith("cancel:")]
    await donor.tap(cancel.id, context="req")
    assert "Cancel pledge" in donor.last.text
    await donor.say("yes")
    assert "is cancelled" in donor.replies[-2].text or "is cancelled" in donor.last.text
    async with services.sessions() as session:
        statuses = [(await session.get(Pledge, p)).status  # type: ignore[union-attr]
                    for p in (waiting, received)]
    assert statuses == ["cancelled", "received"]
    # The received pledge has no cancel button, and a forged one is refused.
    await donor.tap("cancel:GP-ZZZZZ", context="req")
    assert "cannot be cancelled" in donor.last.text
