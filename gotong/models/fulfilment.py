"""What happens when aid reaches a household: the delivery and request are closed as
delivered, the pledges it came from count it, and their donors hear of it (progress in
a digest, and "all delivered" at once when a pledge's last unit arrives)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from gotong.models.allocation import pledge_progress
from gotong.models.area import AreaDirectory
from gotong.models.delivery import UNDER_WAY, Delivery, DeliveryStatus
from gotong.models.digest import drop_pending
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.notifications import Event, Subject, announce, pledge_topic
from gotong.models.outbox import Notice
from gotong.models.pledge import Pledge
from gotong.models.request_status import RequestStatus
from gotong.models.rules import write_guarded

# A delivery can be confirmed from any state before the household has it.
UNDELIVERED = (DeliveryStatus.ALLOCATED, *UNDER_WAY, DeliveryStatus.AWAITING_REVIEW)


async def mark_delivered(session: AsyncSession, areas: AreaDirectory, delivery_id: int,
                         actor_contact_id: int, now: datetime) -> list[Notice]:
    """Record that the household received the delivery; returns what the actor is told."""
    await write_guarded(session, update(Delivery)
                        .where(Delivery.id == delivery_id, Delivery.status.in_(UNDELIVERED))
                        .values(status=DeliveryStatus.DELIVERED, delivered_at=now,
                                updated_at=now), "not undelivered")
    delivery = await session.get(Delivery, delivery_id, populate_existing=True,
                                 options=[selectinload(Delivery.sources)])
    request = await session.get(HelpRequest, delivery.request_id) if delivery else None
    assert delivery is not None and request is not None
    request.status = RequestStatus.DELIVERED
    request.updated_at = now
    session.add(RequestEvent(request_id=request.id, status=RequestStatus.DELIVERED,
                             actor_contact_id=actor_contact_id, at=now))
    await session.flush()
    notices = await announce(session, Event.REQUEST_DELIVERED,
                             Subject(request=request, delivery=delivery), now,
                             actor_contact_id=actor_contact_id)
    for source in delivery.sources:
        await session.execute(
            update(Pledge).where(Pledge.id == source.pledge_id)
            .values(delivered_quantity=Pledge.delivered_quantity + source.quantity,
                    updated_at=now)
            .execution_options(synchronize_session=False))
        pledge = await session.get(Pledge, source.pledge_id, populate_existing=True)
        assert pledge is not None
        progress = await pledge_progress(session, areas, pledge)
        subject = Subject(pledge=pledge, params=progress)
        if pledge.delivered_quantity >= (pledge.received_quantity or 0):
            # The last unit of the pledge reached its household: the donor hears it at
            # once, and progress news still waiting for its interval is moot.
            await drop_pending(session, pledge.contact_id, pledge_topic(subject))
            event = Event.PLEDGE_COMPLETED
        else:
            event = Event.PLEDGE_PROGRESS
        notices += await announce(session, event, subject, now,
                                  actor_contact_id=actor_contact_id)
    return notices
