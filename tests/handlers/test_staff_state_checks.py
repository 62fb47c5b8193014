"""Staff actions checked against the state of what they act on, whatever sends them: the
chat's review buttons forged for a delivery the card offers no such action for, and the
domain operations themselves, which refuse before writing anything."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gotong.bot.services import Services
from gotong.models.allocation import allocate
from gotong.models.delivery import Delivery
from gotong.models.pledge import Pledge
from gotong.models.rules import NotAllowed
from gotong.models.stock import receive_pledge
from gotong.models.tasks import cancel
from tests.handlers.test_volunteers import Scene, delivery
from tests.lookups import audit_log


async def test_forged_review_buttons_are_refused_in_chat(services: Services) -> None:
    scene = await Scene.make(services, stock=2)
    waiting, travelling = await scene.deliveries(2)
    async with services.sessions() as session, session.begin():
        moving = await session.get(Delivery, travelling)
        assert moving is not None
        moving.status = "on_the_way"
    staff = scene.staff
    for forged in (f"x:{waiting}", f"x:{travelling}", f"re:{travelling}",
                   f"yes:{waiting}", f"ok:{travelling}"):
        await staff.tap(forged, context="rv")
        assert "That delivery has changed meanwhile" in staff.last.text, forged
    assert ((await delivery(services, waiting)).status,
            (await delivery(services, travelling)).status) == ("allocated", "on_the_way")
    assert await scene.world.stock(scene.aggregator) == 0
    log = await audit_log(services)
    assert ("review_x", "not allowed now") in log
    assert ("review_reassign", "not allowed now") in log
    assert not any(action.startswith("review_") and outcome == "done"
                   for action, outcome in log)


async def test_the_operations_refuse_states_and_quantities_they_do_not_allow(
        services: Services) -> None:
    scene = await Scene.make(services, stock=1)
    [waiting] = await scene.deliveries(1)
    world = scene.world
    pledge_id = await world.pledge(scene.aggregator, 5)
    household = await world.household(scene.village)
    async with services.sessions() as session, session.begin():
        allocated_one = await session.get(Delivery, waiting)
        pledge = await session.get(Pledge, pledge_id)
        assert allocated_one is not None and pledge is not None
        with pytest.raises(NotAllowed):
            await cancel(session, allocated_one, world.staff_id, world.now)
        for counted in (0, -3):
            with pytest.raises(NotAllowed):
                await receive_pledge(session, pledge, counted, world.staff_id, world.now)
        with pytest.raises(NotAllowed):
            await allocate(session, services.areas, scene.aggregator, "food_package", 0,
                           [], world.staff_id, world.now, timedelta(days=14))
    assert (await delivery(services, waiting)).status == "allocated"
    assert await world.statuses([household]) == ["verified"]
