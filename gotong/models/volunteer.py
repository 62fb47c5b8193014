"""Volunteers: who delivers for an aggregator, where, how, and whether staff approved them."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from gotong.models.base import Base, utcnow
from gotong.models.contact import Role, grant_role
from gotong.models.rules import write_guarded

TRAVEL_MODES = ("foot", "motorbike", "car")
MAX_CAPACITY = 500


class VolunteerStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    LEFT = "left"
    # Let in by an invite code the operator revoked.
    REVOKED = "revoked"


class Volunteer(Base):
    __tablename__ = "volunteer"
    __table_args__ = (UniqueConstraint("contact_id", "aggregator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"),
                                            index=True)
    aggregator_id: Mapped[int] = mapped_column(
        ForeignKey("aggregator.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(10), index=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20))
    travel: Mapped[str] = mapped_column(String(10))
    # Packages they can carry at once.
    capacity: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("contact.id",
                                                              ondelete="SET NULL"))
    # The invite code they signed up with (last): who let them in, to be revoked with it.
    invite_id: Mapped[int | None] = mapped_column(ForeignKey("invite.id",
                                                             ondelete="SET NULL"), index=True)

    areas: Mapped[list[VolunteerArea]] = relationship(
        cascade="all, delete-orphan", order_by="VolunteerArea.area_id")

    def task_limit(self, max_open_tasks: int) -> int:
        """Deliveries they may have under way at once: no more than they carry."""
        return max(1, min(self.capacity, max_open_tasks))

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name


class VolunteerArea(Base):
    """A kecamatan or kelurahan a volunteer can cover."""

    __tablename__ = "volunteer_area"
    __table_args__ = (UniqueConstraint("volunteer_id", "area_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    volunteer_id: Mapped[int] = mapped_column(ForeignKey("volunteer.id", ondelete="CASCADE"),
                                              index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"), index=True)


@dataclass(frozen=True)
class NewVolunteer:
    aggregator_id: int
    name: str
    phone: str
    area_ids: Sequence[int]
    travel: str
    capacity: int
    approved: bool
    invite_id: int | None = None


async def register_volunteer(session: AsyncSession, contact_id: int, new: NewVolunteer,
                             now: datetime) -> Volunteer:
    """Sign a person up (again) as a volunteer of an aggregator."""
    volunteer = await session.scalar(
        select(Volunteer).where(Volunteer.contact_id == contact_id,
                                Volunteer.aggregator_id == new.aggregator_id)
        .options(selectinload(Volunteer.areas)))
    if volunteer is None:
        volunteer = Volunteer(contact_id=contact_id, aggregator_id=new.aggregator_id,
                              created_at=now)
        session.add(volunteer)
    volunteer.name, volunteer.phone = new.name, new.phone
    volunteer.travel, volunteer.capacity = new.travel, new.capacity
    volunteer.status = VolunteerStatus.APPROVED if new.approved else VolunteerStatus.PENDING
    volunteer.decided_at = now if new.approved else None
    volunteer.invite_id = new.invite_id
    # Rows of areas kept are reused: a new row beside the old one of the same area would
    # be inserted before the old one is deleted, against the unique constraint.
    kept = {area.area_id: area for area in volunteer.areas}
    volunteer.areas = [kept.get(a) or VolunteerArea(area_id=a)
                       for a in dict.fromkeys(new.area_ids)]
    await session.flush()
    await grant_role(session, contact_id, Role.VOLUNTEER, now)
    return volunteer


async def volunteers_of(session: AsyncSession, contact_id: int,
                        statuses: Sequence[str] = (VolunteerStatus.APPROVED,)
                        ) -> list[Volunteer]:
    """The person's volunteer memberships in these statuses."""
    result = await session.scalars(
        select(Volunteer).where(Volunteer.contact_id == contact_id,
                                Volunteer.status.in_(statuses))
        .options(selectinload(Volunteer.areas)).order_by(Volunteer.id))
    return list(result.all())


async def pending_volunteers(session: AsyncSession, aggregator_ids: Sequence[int],
                             limit: int) -> list[Volunteer]:
    result = await session.scalars(
        select(Volunteer).where(Volunteer.aggregator_id.in_(aggregator_ids),
                                Volunteer.status == VolunteerStatus.PENDING)
        .options(selectinload(Volunteer.areas)).order_by(Volunteer.id).limit(limit))
    return list(result.all())


async def decide_volunteer(session: AsyncSession, volunteer: Volunteer, approved: bool,
                           staff_contact_id: int, now: datetime) -> None:
    """Staff approve or decline a volunteer waiting for it; NotAllowed once decided."""
    await write_guarded(session, update(Volunteer)
                        .where(Volunteer.id == volunteer.id,
                               Volunteer.status == VolunteerStatus.PENDING)
                        .values(status=VolunteerStatus.APPROVED if approved
                                else VolunteerStatus.DECLINED,
                                decided_at=now, decided_by=staff_contact_id),
                        volunteer.status)
    await session.refresh(volunteer)


async def approved_count(session: AsyncSession, aggregator_id: int) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(Volunteer)
        .where(Volunteer.aggregator_id == aggregator_id,
               Volunteer.status == VolunteerStatus.APPROVED)) or 0)
