"""Staff see how households rated the help of their own aggregator, and only theirs."""

from __future__ import annotations

from datetime import timedelta

from gotong.bot.services import Services
from gotong.models.allocation import Pick, allocate
from gotong.models.delivery import Delivery
from gotong.models.fulfilment import mark_delivered
from gotong.models.help_request import HelpRequest
from gotong.models.tasks import rate
from tests.chat import Chat
from tests.handlers.test_staff_stock import TIMUR, join
from tests.models.aid_world import AidWorld


async def test_staff_see_the_ratings_of_their_aggregator(services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator("Jakarta Selatan")
    village = world.village(TIMUR)
    households = [await world.household(village) for _ in range(2)]
    await world.pledge(timur, 2, received=2)
    async with services.sessions() as session, session.begin():
        outcome = await allocate(session, services.areas, timur, "food_package", 1,
                                 [Pick(h) for h in households], world.staff_id, world.now,
                                 timedelta(days=14))
        for delivery, stars in zip(outcome.deliveries, (5, 3), strict=True):
            await mark_delivered(session, services.areas, delivery.id, world.staff_id,
                                 world.now)
            request = await session.get(HelpRequest, delivery.request_id)
            assert request is not None
            await session.refresh(delivery)
            await rate(session, delivery, request.contact_id, stars, world.now)
        first = await session.get(Delivery, outcome.deliveries[0].id)
        assert first is not None
        first.rating_comment = "cepat dan ramah"
    staff = await join(world, timur, "staff-timur")
    await staff.say("/ratings")
    assert "Rated by 2 households: 4.0 of 5 on average" in staff.last.text
    assert "5/5, cepat dan ramah" in staff.last.text and "3/5, -" in staff.last.text
    other = await join(world, selatan, "staff-selatan")
    await other.say("/ratings")
    assert other.last.text == "No household has rated a delivery yet."
    citizen = Chat(services.conversations, chat_id="citizen")
    await citizen.say("/ratings")
    assert "This is for the staff" in citizen.last.text
