"""The last mile in the model: assigning with a fresh code, steps that only go forward,
wrong codes and the lock, proof for review, failures back to the queue, the household's
word (receipt, dispute, rating), volunteers leaving, and how long a volunteer sees the
household's details."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from gotong.bot.services import Services
from gotong.models.aggregator import StaffMember
from gotong.models.allocation import Pick, allocate
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.digest import Digest
from gotong.models.help_request import HelpRequest
from gotong.models.outbox import OutboxMessage
from gotong.models.rules import NotAllowed
from gotong.models.tasks import (
    CODE_DIGITS,
    DETAILS_AFTER_DELIVERY,
    MAX_WRONG_CODES,
    advance,
    assign,
    cancel,
    confirm_with_code,
    fail,
    household_answer,
    leave,
    open_deliveries,
    open_tasks,
    rate,
    resolve_dispute,
    review_proof,
    shows_details,
    submit_proof,
    tasks_of,
    volunteers_for,
)
from gotong.models.volunteer import NewVolunteer, Volunteer, register_volunteer
from tests.lookups import outbox
from tests.models.aid_world import AidWorld

TIMUR = "Jakarta Timur"
MAX_FAILURES = 3


class Mile:
    """An aggregator of Jakarta Timur with a staff member and stock, its households'
    deliveries, and volunteers covering the kecamatan of its village."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.world = AidWorld(services)
        self.now = self.world.now
        self.village = self.world.village(TIMUR)
        self.aggregator = 0
        self.pledge = 0
        self._volunteers = 0

    async def setup(self, stock: int = 3) -> Mile:
        self.aggregator = await self.world.aggregator(TIMUR)
        # A pledge is received only with something in it: none, for a stock of 0.
        self.pledge = await self.world.pledge(self.aggregator, max(stock, 1),
                                              received=stock or None)
        async with self.services.sessions() as session, session.begin():
            session.add(StaffMember(contact_id=self.world.staff_id,
                                    aggregator_id=self.aggregator))
        return self

    async def deliveries(self, count: int, village_id: int | None = None) -> list[int]:
        """One package allocated to each of `count` new verified households."""
        requests = [await self.world.household(village_id or self.village)
                    for _ in range(count)]
        async with self.services.sessions() as session, session.begin():
            outcome = await allocate(session, self.services.areas, self.aggregator,
                                     "food_package", 1, [Pick(r) for r in requests],
                                     self.world.staff_id, self.now, timedelta(days=14))
        assert len(outcome.deliveries) == count, outcome.refused
        return [d.id for d in outcome.deliveries]

    async def volunteer(self, name: str = "Budi Santoso", *, approved: bool = True,
                        area_id: int | None = None) -> int:
        self._volunteers += 1
        contact_id = await self.world.contact()
        async with self.services.sessions() as session, session.begin():
            volunteer = await register_volunteer(session, contact_id, NewVolunteer(
                aggregator_id=self.aggregator, name=name,
                phone=f"+628120000{self._volunteers:04d}",
                area_ids=[area_id or self.world.district_of(self.village)],
                travel="motorbike", capacity=5, approved=approved), self.now)
            return volunteer.id

    async def load(self, session: AsyncSession, task: int, volunteer_id: int
                   ) -> tuple[Delivery, Volunteer]:
        delivery = await session.get(Delivery, task)
        volunteer = await session.get(Volunteer, volunteer_id,
                                      options=[selectinload(Volunteer.areas)])
        assert delivery is not None and volunteer is not None
        return delivery, volunteer

    async def assign(self, task: int, volunteer_id: int) -> None:
        async with self.services.sessions() as session, session.begin():
            delivery, volunteer = await self.load(session, task, volunteer_id)
            await assign(session, self.services.areas, delivery, volunteer,
                         self.world.staff_id, self.now)

    async def deliver(self, task: int, volunteer_id: int) -> None:
        """The volunteer confirms the delivery with the household's code."""
        async with self.services.sessions() as session, session.begin():
            delivery, volunteer = await self.load(session, task, volunteer_id)
            check = await confirm_with_code(session, self.services.areas, delivery,
                                            volunteer, delivery.code or "", self.now)
            assert check.delivered

    async def get(self, task: int) -> Delivery:
        async with self.services.sessions() as session:
            delivery = await session.get(Delivery, task)
        assert delivery is not None
        return delivery

    async def request(self, task: int) -> HelpRequest:
        async with self.services.sessions() as session:
            request = await session.scalar(
                select(HelpRequest).join(Delivery, Delivery.request_id == HelpRequest.id)
                .where(Delivery.id == task))
        assert request is not None
        return request

    async def volunteer_contact(self, volunteer_id: int) -> int:
        async with self.services.sessions() as session:
            volunteer = await session.get(Volunteer, volunteer_id)
        assert volunteer is not None
        return volunteer.contact_id

    async def outbox(self, key: str) -> list[OutboxMessage]:
        return await outbox(self.services, key)

    async def digests(self, key: str) -> list[int]:
        """Who has news of this kind waiting for the next digest."""
        async with self.services.sessions() as session:
            return list((await session.scalars(
                select(Digest.contact_id).where(Digest.message_key == key,
                                                Digest.changed_at.is_not(None))
                .order_by(Digest.contact_id))).all())


def other_code(code: str | None) -> str:
    assert code is not None
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_assigning_gives_a_fresh_code_and_tells_the_volunteer_taken_off(
        services: Services) -> None:
    mile = await Mile(services).setup()
    [task] = await mile.deliveries(1)
    first = await mile.volunteer()
    second = await mile.volunteer("Sari Dewi")
    await mile.assign(task, first)
    assigned = await mile.get(task)
    assert (assigned.status, assigned.volunteer_id) == ("assigned", first)
    assert assigned.code is not None and len(assigned.code) == CODE_DIGITS
    assert assigned.code.isdigit()
    request = await mile.request(task)
    assert request.status == "allocated"
    [household] = await mile.outbox("notice.delivery_assigned")
    assert household.contact_id == request.contact_id
    assert (household.params["code"], household.params["volunteer"]) == (assigned.code,
                                                                         "Budi")
    # The household hears the kelurahan and RW, never the volunteer's phone.
    assert household.params["rw"] == "2" and "+6281200000000" not in str(household.params)
    [task_notice] = await mile.outbox("notice.task_assigned")
    assert task_notice.contact_id == await mile.volunteer_contact(first)

    # An assigned delivery is not free to assign again, unless it is locked.
    with pytest.raises(NotAllowed):
        await mile.assign(task, second)
    async with services.sessions() as session, session.begin():
        delivery = await session.get(Delivery, task)
        assert delivery is not None
        delivery.locked = True
    await mile.assign(task, second)
    moved = await mile.get(task)
    assert (moved.volunteer_id, moved.locked) == (second, False)
    [away] = await mile.outbox("notice.task_reassigned")
    assert away.contact_id == await mile.volunteer_contact(first)
    codes = [n.params["code"] for n in await mile.outbox("notice.delivery_assigned")]
    assert codes == [assigned.code, moved.code]


async def test_steps_only_go_forward(services: Services) -> None:
    mile = await Mile(services).setup()
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)

    async def step(status: DeliveryStatus) -> list[str]:
        async with services.sessions() as session, session.begin():
            delivery, volunteer = await mile.load(session, task, volunteer_id)
            notices = await advance(session, delivery, status, volunteer, mile.now)
            return [n.key for n in notices]

    assert await step(DeliveryStatus.PICKED_UP) == []
    assert (await mile.request(task)).status == "out_for_delivery"
    assert await mile.outbox("notice.delivery_on_the_way") == []
    assert await step(DeliveryStatus.ON_THE_WAY) == []
    [news] = await mile.outbox("notice.delivery_on_the_way")
    assert news.contact_id == (await mile.request(task)).contact_id
    for back in (DeliveryStatus.PICKED_UP, DeliveryStatus.ON_THE_WAY):
        with pytest.raises(NotAllowed):
            await step(back)
    assert (await mile.get(task)).status == "on_the_way"


async def test_five_wrong_codes_lock_the_delivery_and_alert_staff(
        services: Services) -> None:
    mile = await Mile(services).setup()
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    code = (await mile.get(task)).code

    async def confirm(typed: str) -> tuple[bool, int]:
        async with services.sessions() as session, session.begin():
            delivery, volunteer = await mile.load(session, task, volunteer_id)
            check = await confirm_with_code(session, services.areas, delivery, volunteer,
                                            typed, mile.now)
            return check.delivered, check.attempts_left

    for left in range(MAX_WRONG_CODES - 1, 0, -1):
        assert await confirm(other_code(code)) == (False, left)
        assert await mile.outbox("notice.delivery_locked") == []
    assert await confirm(other_code(code)) == (False, 0)
    locked = await mile.get(task)
    assert (locked.locked, locked.wrong_codes, locked.status) == (True, MAX_WRONG_CODES,
                                                                  "assigned")
    [alert] = await mile.outbox("notice.delivery_locked")
    assert alert.params["volunteer"] == "Budi"
    # Locked: not even the right code goes through.
    with pytest.raises(NotAllowed):
        await confirm(code or "")
    assert (await mile.get(task)).status == "assigned"


async def test_the_right_code_delivers_and_counts_for_the_pledge(services: Services
                                                                 ) -> None:
    mile = await Mile(services).setup(stock=2)
    first, second = await mile.deliveries(2)
    volunteer_id = await mile.volunteer()
    await mile.assign(first, volunteer_id)
    await mile.deliver(first, volunteer_id)
    delivered = await mile.get(first)
    assert (delivered.status, delivered.delivered_at) == ("delivered", mile.now)
    assert (await mile.request(first)).status == "delivered"
    [pledge] = await mile.world.pledges([mile.pledge])
    assert (pledge.allocated_quantity, pledge.delivered_quantity) == (2, 1)
    [news] = await mile.outbox("notice.request_delivered")
    assert [a[0] for a in news.actions] == ["rate"] * 5
    # Delivered once only.
    with pytest.raises(NotAllowed):
        await mile.deliver(first, volunteer_id)
    await mile.assign(second, volunteer_id)
    await mile.deliver(second, volunteer_id)
    [pledge] = await mile.world.pledges([mile.pledge])
    assert pledge.delivered_quantity == 2
    [done] = await mile.outbox("notice.pledge_completed")
    assert done.contact_id == pledge.contact_id


async def test_a_proof_is_reviewed_and_accepted_or_sent_back(services: Services) -> None:
    mile = await Mile(services).setup()
    accepted, rejected = await mile.deliveries(2)
    volunteer_id = await mile.volunteer()
    staff = mile.world.staff_id

    async def prove(task: int) -> None:
        await mile.assign(task, volunteer_id)
        async with services.sessions() as session, session.begin():
            delivery, volunteer = await mile.load(session, task, volunteer_id)
            await submit_proof(session, delivery, volunteer, "photo" * 50, -6.2, 106.8,
                               mile.now)

    async def review(task: int, accept: bool) -> None:
        async with services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, task)
            assert delivery is not None
            await review_proof(session, services.areas, delivery, accept, staff, mile.now)

    await prove(accepted)
    waiting = await mile.get(accepted)
    assert (waiting.status, len(waiting.proof_media_id or "")) == ("awaiting_review", 200)
    assert await mile.digests("notice.review_waiting") == [staff]
    await review(accepted, True)
    assert (await mile.get(accepted)).status == "delivered"
    with pytest.raises(NotAllowed):
        await review(accepted, False)

    await prove(rejected)
    await review(rejected, False)
    back = await mile.get(rejected)
    assert (back.status, back.proof_media_id, back.proof_longitude) == ("on_the_way", None,
                                                                       None)
    [told] = await mile.outbox("notice.proof_rejected")
    assert told.contact_id == await mile.volunteer_contact(volunteer_id)
    with pytest.raises(NotAllowed):
        await review(rejected, True)


async def test_a_rejected_proof_leaves_the_request_on_its_way(services: Services) -> None:
    mile = await Mile(services).setup()
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    async with services.sessions() as session, session.begin():
        delivery, volunteer = await mile.load(session, task, volunteer_id)
        await submit_proof(session, delivery, volunteer, "photo", -6.2, 106.8, mile.now)
        await review_proof(session, services.areas, delivery, False, mile.world.staff_id,
                           mile.now)
    assert (await mile.get(task)).status == "on_the_way"
    assert (await mile.request(task)).status == "out_for_delivery"


async def fail_once(mile: Mile, task: int, volunteer_id: int, reason: str) -> None:
    async with mile.services.sessions() as session, session.begin():
        delivery, volunteer = await mile.load(session, task, volunteer_id)
        await fail(session, delivery, reason, volunteer.contact_id, mile.now, MAX_FAILURES)


async def test_a_failure_tells_the_household_why_and_staff_in_a_digest(
        services: Services) -> None:
    mile = await Mile(services).setup()
    staff_contact = mile.world.staff_id
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    await fail_once(mile, task, volunteer_id, "refused")
    failed = await mile.get(task)
    assert (failed.status, failed.failure_reason) == ("failed", "refused")
    assert (await mile.request(task)).status == "failed"
    [told] = await mile.outbox("notice.delivery_failed")
    assert told.params["reason"] == {"key": "failure.refused"}
    assert told.params["next"] == {"key": "failure.next_retry"}
    # A failed delivery cannot fail again, nor be confirmed.
    with pytest.raises(NotAllowed):
        await fail_once(mile, task, volunteer_id, "refused")
    with pytest.raises(NotAllowed):
        await mile.deliver(task, volunteer_id)
    # A reason typed by the volunteer is kept as typed (and cut to 200 characters).
    [other] = await mile.deliveries(1)
    await mile.assign(other, volunteer_id)
    await fail_once(mile, other, volunteer_id, "banjir " * 40)
    assert (await mile.get(other)).failure_reason == ("banjir " * 40)[:200]
    assert (await mile.outbox("notice.delivery_failed"))[-1].params["reason"].startswith(
        "banjir banjir")
    assert await mile.digests("notice.review_waiting") == [staff_contact]


async def test_cancel_returns_the_stock_to_its_pledge_and_requeues_the_household(
        services: Services) -> None:
    mile = await Mile(services).setup(stock=2)
    [task] = await mile.deliveries(1)
    assert await mile.world.stock(mile.aggregator) == 1
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    await fail_once(mile, task, volunteer_id, "nobody_home")
    async with services.sessions() as session, session.begin():
        delivery = await session.get(Delivery, task)
        assert delivery is not None
        notices = await cancel(session, delivery, mile.world.staff_id, mile.now)
    assert notices == []  # the household hears it; staff are not its audience
    assert (await mile.get(task)).status == "cancelled"
    request = await mile.request(task)
    assert request.status == "verified"
    assert await mile.world.stock(mile.aggregator) == 2
    [pledge] = await mile.world.pledges([mile.pledge])
    assert pledge.allocated_quantity == 0
    [requeued] = await mile.outbox("notice.request_requeued")
    assert requeued.contact_id == request.contact_id
    # The volunteer already knows a failed delivery is no longer theirs.
    assert await mile.outbox("notice.task_cancelled") == []
    with pytest.raises(NotAllowed):
        async with services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, task)
            assert delivery is not None
            await cancel(session, delivery, mile.world.staff_id, mile.now)
    assert await mile.world.stock(mile.aggregator) == 2


async def test_the_third_failed_delivery_of_a_request_requeues_it(services: Services
                                                                  ) -> None:
    """Failures across deliveries of one request (cancelled and allocated again)."""
    mile = await Mile(services).setup(stock=1)
    volunteer_id = await mile.volunteer()
    household = await mile.world.household(mile.village)
    for attempt in range(1, MAX_FAILURES + 1):
        async with services.sessions() as session, session.begin():
            [delivery] = (await allocate(
                session, services.areas, mile.aggregator, "food_package", 1,
                [Pick(household)], mile.world.staff_id, mile.now, timedelta(days=14))
            ).deliveries
        await mile.assign(delivery.id, volunteer_id)
        await fail_once(mile, delivery.id, volunteer_id, "nobody_home")
        if attempt < MAX_FAILURES:
            assert (await mile.request(delivery.id)).status == "failed"
            async with services.sessions() as session, session.begin():
                again = await session.get(Delivery, delivery.id)
                assert again is not None
                await cancel(session, again, mile.world.staff_id, mile.now)
    assert (await mile.get(delivery.id)).status == "cancelled"
    assert (await mile.request(delivery.id)).status == "verified"
    assert await mile.world.stock(mile.aggregator) == 1
    notices = await mile.outbox("notice.delivery_failed")
    assert [n.params["next"]["key"] for n in notices] == [
        "failure.next_retry", "failure.next_retry", "failure.next_queue"]


async def test_three_failures_of_one_reassigned_delivery_requeue_the_request(
        services: Services) -> None:
    mile = await Mile(services).setup(stock=1)
    [task] = await mile.deliveries(1)
    first = await mile.volunteer()
    second = await mile.volunteer("Sari Dewi")
    for volunteer_id in (first, second, first):
        await mile.assign(task, volunteer_id)
        await fail_once(mile, task, volunteer_id, "nobody_home")
    assert (await mile.request(task)).status == "verified"
    assert await mile.world.stock(mile.aggregator) == 1
    [pledge] = await mile.world.pledges([mile.pledge])
    assert pledge.allocated_quantity == 0


async def test_the_household_confirms_or_disputes_and_staff_settle_it(
        services: Services) -> None:
    mile = await Mile(services).setup()
    travelling, confirmed, disputed = await mile.deliveries(3)
    volunteer_id = await mile.volunteer()
    staff = mile.world.staff_id

    async def answer(task: int, received: bool, contact_id: int | None = None
                     ) -> list[str]:
        household = contact_id or (await mile.request(task)).contact_id
        async with services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, task)
            assert delivery is not None
            return [n.key for n in await household_answer(
                session, services.areas, delivery, received, household, mile.now)]

    async def settle(task: int, delivered: bool) -> None:
        async with services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, task)
            assert delivery is not None
            await resolve_dispute(session, delivery, delivered, staff, mile.now,
                                  MAX_FAILURES)

    for task in (travelling, confirmed, disputed):
        await mile.assign(task, volunteer_id)
    # Nothing to dispute before delivery; only the household answers.
    with pytest.raises(NotAllowed):
        await answer(travelling, False)
    with pytest.raises(NotAllowed):
        await answer(travelling, True, contact_id=staff)
    with pytest.raises(NotAllowed):
        await settle(travelling, False)
    # The household's own word is a confirmation.
    assert await answer(confirmed, True) == ["notice.request_delivered"]
    assert (await mile.get(confirmed)).status == "delivered"
    with pytest.raises(NotAllowed):
        await answer(confirmed, True)

    await mile.deliver(disputed, volunteer_id)
    assert await answer(disputed, False) == []
    assert (await mile.get(disputed)).disputed
    await settle(disputed, True)
    settled = await mile.get(disputed)
    assert (settled.status, settled.disputed) == ("delivered", False)
    await answer(disputed, False)
    await settle(disputed, False)
    failed = await mile.get(disputed)
    assert (failed.status, failed.disputed, failed.failure_reason) == ("failed", False,
                                                                       "disputed")
    assert (await mile.request(disputed)).status == "failed"
    # The household hears each decision on what it reported.
    household = (await mile.request(disputed)).contact_id
    [dismissed] = await mile.outbox("notice.dispute_dismissed")
    [upheld] = await mile.outbox("notice.dispute_upheld")
    assert dismissed.contact_id == upheld.contact_id == household
    assert upheld.params["next"] == {"key": "failure.next_retry"}


async def test_a_delivery_disputed_and_delivered_again_counts_once(services: Services
                                                                  ) -> None:
    mile = await Mile(services).setup(stock=1)
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    await mile.deliver(task, volunteer_id)
    household = (await mile.request(task)).contact_id
    async with services.sessions() as session, session.begin():
        delivery = await session.get(Delivery, task)
        assert delivery is not None
        await household_answer(session, services.areas, delivery, False, household, mile.now)
        await resolve_dispute(session, delivery, False, mile.world.staff_id, mile.now,
                              MAX_FAILURES)
    await mile.assign(task, volunteer_id)
    await mile.deliver(task, volunteer_id)
    [pledge] = await mile.world.pledges([mile.pledge])
    assert (pledge.received_quantity, pledge.delivered_quantity) == (1, 1)


async def test_only_the_household_rates_a_delivered_delivery(services: Services) -> None:
    mile = await Mile(services).setup()
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    household = (await mile.request(task)).contact_id

    async def rate_as(contact_id: int, stars: int) -> None:
        async with services.sessions() as session, session.begin():
            delivery = await session.get(Delivery, task)
            assert delivery is not None
            await rate(session, delivery, contact_id, stars, mile.now)

    with pytest.raises(NotAllowed):
        await rate_as(household, 5)  # not delivered yet
    await mile.deliver(task, volunteer_id)
    for contact_id, stars in ((await mile.volunteer_contact(volunteer_id), 5),
                              (mile.world.staff_id, 5), (household, 0), (household, 6)):
        with pytest.raises(NotAllowed):
            await rate_as(contact_id, stars)
    assert (await mile.get(task)).rating is None
    await rate_as(household, 4)
    assert (await mile.get(task)).rating == 4


async def test_a_volunteer_who_leaves_returns_the_tasks_under_way(services: Services
                                                                  ) -> None:
    mile = await Mile(services).setup()
    done, assigned, travelling = await mile.deliveries(3)
    volunteer_id = await mile.volunteer()
    idle = await mile.volunteer("Sari Dewi")
    for task in (done, assigned, travelling):
        await mile.assign(task, volunteer_id)
    await mile.deliver(done, volunteer_id)
    async with services.sessions() as session, session.begin():
        delivery, volunteer = await mile.load(session, travelling, volunteer_id)
        await advance(session, delivery, DeliveryStatus.ON_THE_WAY, volunteer, mile.now)
    async with services.sessions() as session, session.begin():
        _, volunteer = await mile.load(session, done, volunteer_id)
        assert await leave(session, volunteer, mile.now) == []
        assert volunteer.status == "left"
    for task in (assigned, travelling):
        back = await mile.get(task)
        assert (back.status, back.volunteer_id, back.code) == ("allocated", None, None)
        assert (await mile.request(task)).status == "allocated"
    assert (await mile.get(done)).status == "delivered"
    [returned] = await mile.outbox("notice.tasks_returned")
    assert returned.contact_id == mile.world.staff_id
    assert (returned.params["volunteer"], returned.params["count"]) == ("Budi", 2)
    # An idle volunteer leaving has nothing to hand back.
    async with services.sessions() as session, session.begin():
        _, volunteer = await mile.load(session, done, idle)
        assert await leave(session, volunteer, mile.now) == []
    assert len(await mile.outbox("notice.tasks_returned")) == 1
    async with services.sessions() as session:
        returned_delivery = await session.get(Delivery, assigned)
        assert returned_delivery is not None
        request = await session.get(HelpRequest, returned_delivery.request_id)
        assert request is not None
        # Whoever has left is no candidate for the returned deliveries.
        assert await volunteers_for(session, services.areas, returned_delivery,
                                    request.village_id) == []


async def test_household_details_show_until_a_day_after_delivery(services: Services
                                                                 ) -> None:
    now = AidWorld(services).now
    for status in (DeliveryStatus.PICKED_UP, DeliveryStatus.ON_THE_WAY,
                   DeliveryStatus.AWAITING_REVIEW):
        assert shows_details(Delivery(status=status, delivered_at=None),
                             now + timedelta(days=30))
    # Taken but not picked up: the area only.
    for status in (DeliveryStatus.ALLOCATED, DeliveryStatus.ASSIGNED, DeliveryStatus.FAILED,
                   DeliveryStatus.CANCELLED):
        assert not shows_details(Delivery(status=status, delivered_at=None), now)
    delivered = Delivery(status=DeliveryStatus.DELIVERED, delivered_at=now)
    assert shows_details(delivered, now)
    assert shows_details(delivered, now + DETAILS_AFTER_DELIVERY - timedelta(seconds=1))
    assert not shows_details(delivered, now + DETAILS_AFTER_DELIVERY)
    assert timedelta(hours=24) == DETAILS_AFTER_DELIVERY


async def test_lists_of_tasks_open_deliveries_and_volunteers(services: Services) -> None:
    mile = await Mile(services).setup(stock=4)
    here = await mile.deliveries(3)
    elsewhere_village = mile.world.village(TIMUR, 1)
    [elsewhere] = await mile.deliveries(1, elsewhere_village)
    busy = await mile.volunteer()
    free = await mile.volunteer("Sari Dewi")
    await mile.volunteer("Waiting Person", approved=False)
    await mile.volunteer("Far Away", area_id=mile.world.district_of(elsewhere_village))
    await mile.assign(here[0], busy)
    await mile.assign(here[1], busy)
    await mile.deliver(here[0], busy)
    async with services.sessions() as session:
        mine = await tasks_of(session, [busy])
        # Under way first, then the others, the latest first.
        assert [d.id for d in mine] == [here[1], here[0]]
        assert await open_tasks(session, [busy, free]) == {busy: 1}
        villages = services.areas.villages_under([mile.world.district_of(mile.village)])
        assert [d.id for d in await open_deliveries(session, [mile.aggregator], villages,
                                                    10)] == [here[2]]
        assert await open_deliveries(session, [mile.aggregator], set(), 10) == []
        assert await open_deliveries(session, [mile.aggregator + 1000], villages, 10) == []
        delivery = await session.get(Delivery, here[2])
        assert delivery is not None
        candidates = await volunteers_for(session, services.areas, delivery, mile.village)
        # Approved volunteers covering the kelurahan, least busy first.
        assert [v.name for v in candidates] == ["Sari Dewi", "Budi Santoso"]
        far = await session.get(Delivery, elsewhere)
        assert far is not None
        assert [v.name for v in await volunteers_for(session, services.areas, far,
                                                     elsewhere_village)] == ["Far Away"]


async def test_a_delivery_changed_meanwhile_cannot_be_confirmed(services: Services) -> None:
    """Whoever acts second on a delivery is refused, not both obeyed."""
    mile = await Mile(services).setup()
    [task] = await mile.deliveries(1)
    volunteer_id = await mile.volunteer()
    await mile.assign(task, volunteer_id)
    # The volunteer's view of the delivery, read before staff take it back.
    async with services.sessions() as session:
        delivery, volunteer = await mile.load(session, task, volunteer_id)
    # Wrong codes locked it meanwhile (as staff see it), and staff take it back.
    async with services.sessions() as session, session.begin():
        await session.execute(update(Delivery).where(Delivery.id == task)
                              .values(locked=True))
    async with services.sessions() as session, session.begin():
        staff_copy = await session.get(Delivery, task)
        assert staff_copy is not None
        await cancel(session, staff_copy, mile.world.staff_id, mile.now)
    assert delivery.status == "assigned"
    with pytest.raises(NotAllowed):
        async with services.sessions() as session, session.begin():
            await confirm_with_code(session, services.areas, delivery, volunteer,
                                    delivery.code or "", mile.now)
    assert (await mile.get(task)).status == "cancelled"
    [pledge] = await mile.world.pledges([mile.pledge])
    assert pledge.delivered_quantity == 0
    # The volunteer it was given to hears that it is off.
    [told] = await mile.outbox("notice.task_cancelled")
    assert told.contact_id == await mile.volunteer_contact(volunteer_id)
