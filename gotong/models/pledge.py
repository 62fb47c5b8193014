"""Donors' pledges: what they give, to which aggregator, and how it is handed over."""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.aggregator import Aggregator, AggregatorArea
from gotong.models.base import Base, utcnow
from gotong.models.contact import Role, grant_role
from gotong.models.person import person_contact_ids

CATEGORIES = ("food_package", "hygiene", "medicine", "baby", "money")
# Money is counted in rupiah, everything else in packages or items.
MAX_QUANTITY = {"money": 10_000_000_000}
MAX_ITEMS = 100_000
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
CODE_PREFIX = "GP-"


class PledgeStatus(enum.StrEnum):
    PLEDGED = "pledged"
    RECEIVED = "received"
    CANCELLED = "cancelled"


class Handover(enum.StrEnum):
    DROP = "drop"  # the donor brings it to the posko
    PICKUP = "pickup"  # the aggregator collects it


class Pledge(Base):
    __tablename__ = "pledge"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), index=True)
    aggregator_id: Mapped[int] = mapped_column(ForeignKey("aggregator.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    organisation: Mapped[bool]
    donor_name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(BigInteger)
    received_quantity: Mapped[int | None] = mapped_column(BigInteger)
    # Of the received quantity: how much went to households, and how much reached them.
    allocated_quantity: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    delivered_quantity: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Where the donor wants it to go: a kota or kecamatan, or anywhere (None).
    target_area_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"))
    handover: Mapped[str] = mapped_column(String(8))
    pickup_address: Mapped[str | None] = mapped_column(String(300))
    pickup_window: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the donor's personal data was erased; the quantities stay.
    erased_at: Mapped[datetime | None]


@dataclass(frozen=True)
class NewPledge:
    organisation: bool
    donor_name: str
    phone: str
    category: str
    quantity: int
    target_area_id: int | None
    aggregator_id: int
    handover: Handover
    pickup_address: str | None
    pickup_window: str | None


def max_quantity(category: str) -> int:
    return MAX_QUANTITY.get(category, MAX_ITEMS)


async def aggregators_covering(session: AsyncSession, area_ids: Sequence[int] | None
                               ) -> list[Aggregator]:
    """Enabled aggregators covering any of these areas (all of them for None), by name:
    those a donor can give through."""
    query = (select(Aggregator).where(Aggregator.disabled_at.is_(None))
             .order_by(Aggregator.name, Aggregator.id))
    if area_ids is not None:
        query = query.where(Aggregator.id.in_(
            select(AggregatorArea.aggregator_id).where(AggregatorArea.area_id.in_(area_ids))))
    return list((await session.scalars(query)).all())


async def create_pledge(session: AsyncSession, contact_id: int, new: NewPledge,
                        now: datetime) -> Pledge:
    pledge = Pledge(
        code=await _unused_code(session), contact_id=contact_id,
        aggregator_id=new.aggregator_id, status=PledgeStatus.PLEDGED,
        organisation=new.organisation, donor_name=new.donor_name, phone=new.phone,
        category=new.category, quantity=new.quantity, target_area_id=new.target_area_id,
        handover=new.handover, pickup_address=new.pickup_address,
        pickup_window=new.pickup_window, created_at=now, updated_at=now)
    session.add(pledge)
    await session.flush()
    await grant_role(session, contact_id, Role.DONOR, now)
    return pledge


async def pledges_of(session: AsyncSession, contact_id: int) -> list[Pledge]:
    result = await session.scalars(
        select(Pledge).where(Pledge.contact_id.in_(await person_contact_ids(session, contact_id)))
        .order_by(Pledge.id.desc()))
    return list(result.all())


async def _unused_code(session: AsyncSession) -> str:
    while True:
        code = CODE_PREFIX + "".join(secrets.choice(CODE_ALPHABET) for _ in range(5))
        if await session.scalar(select(Pledge.id).where(Pledge.code == code)) is None:
            return code
