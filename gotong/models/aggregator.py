"""Aggregator organisations, the areas they cover, their staff, and one-time invites."""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, delete, false, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from gotong.models.base import Base, utcnow
from gotong.models.contact import Role, grant_role

# Invite codes are read aloud and typed on phones: no 0/O, 1/I/L.
INVITE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
INVITE_LENGTH = 8


class Aggregator(Base):
    __tablename__ = "aggregator"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    posko_address: Mapped[str] = mapped_column(String(300))
    posko_hours: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Disabled by the operator: takes no new requests or pledges; nothing of it is deleted.
    disabled_at: Mapped[datetime | None]
    # Fictional, made for the playground (models/demo.py): `gotong demo clear` removes it.
    demo: Mapped[bool] = mapped_column(default=False, server_default=false())

    areas: Mapped[list[AggregatorArea]] = relationship(
        cascade="all, delete-orphan", order_by="AggregatorArea.area_id")


    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


class AggregatorArea(Base):
    """An area (kota, kecamatan or kelurahan) an aggregator covers."""

    __tablename__ = "aggregator_area"
    __table_args__ = (UniqueConstraint("aggregator_id", "area_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    aggregator_id: Mapped[int] = mapped_column(
        ForeignKey("aggregator.id", ondelete="CASCADE"), index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("area.id"), index=True)


class StaffMember(Base):
    __tablename__ = "staff_member"
    __table_args__ = (UniqueConstraint("contact_id", "aggregator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"),
                                            index=True)
    aggregator_id: Mapped[int] = mapped_column(
        ForeignKey("aggregator.id", ondelete="CASCADE"), index=True)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class InviteRole(enum.StrEnum):
    STAFF = "staff"
    VOLUNTEER = "volunteer"
    PROXY = "proxy"


class Invite(Base):
    """A code that makes whoever types it staff (or a volunteer) of an aggregator.

    Only a hash of the code is kept: the database alone cannot be used to join.
    """

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    aggregator_id: Mapped[int] = mapped_column(
        ForeignKey("aggregator.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    uses_left: Mapped[int]
    # A volunteer who joins with it needs no staff approval.
    pre_approved: Mapped[bool] = mapped_column(default=False, server_default=false())
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Revoked by the operator: admits nobody any more (and those it admitted are out).
    revoked_at: Mapped[datetime | None]


class UnknownAggregator(LookupError):
    pass


@dataclass(frozen=True)
class Posko:
    address: str
    hours: str

    @classmethod
    def parse(cls, text: str) -> Posko:
        """"Jl. Melati 5, Tebet; Mon-Sat 08.00-16.00" -> address and opening hours."""
        address, _, hours = text.partition(";")
        return cls(" ".join(address.split()), " ".join(hours.split()))


async def create_aggregator(session: AsyncSession, name: str, posko: Posko,
                            area_ids: Sequence[int], now: datetime, demo: bool = False
                            ) -> Aggregator:
    aggregator = Aggregator(name=name, posko_address=posko.address, posko_hours=posko.hours,
                            created_at=now, demo=demo,
                            areas=[AggregatorArea(area_id=a) for a in dict.fromkeys(area_ids)])
    session.add(aggregator)
    await session.flush()
    return aggregator


async def get_aggregator(session: AsyncSession, aggregator_id: int) -> Aggregator:
    aggregator = await session.scalar(
        select(Aggregator).where(Aggregator.id == aggregator_id)
        .options(selectinload(Aggregator.areas)))
    if aggregator is None:
        raise UnknownAggregator(aggregator_id)
    return aggregator


async def list_aggregators(session: AsyncSession) -> list[Aggregator]:
    result = await session.scalars(
        select(Aggregator).options(selectinload(Aggregator.areas)).order_by(Aggregator.id))
    return list(result.all())


async def edit_aggregator(session: AsyncSession, aggregator_id: int, *,
                          name: str | None = None, posko: Posko | None = None,
                          area_ids: Sequence[int] | None = None) -> Aggregator:
    """Change what is given; coverage, when given, replaces the old one."""
    aggregator = await get_aggregator(session, aggregator_id)
    if name is not None:
        aggregator.name = name
    if posko is not None:
        aggregator.posko_address, aggregator.posko_hours = posko.address, posko.hours
    if area_ids is not None:
        await session.execute(delete(AggregatorArea)
                              .where(AggregatorArea.aggregator_id == aggregator_id))
        session.expire(aggregator, ["areas"])
        session.add_all(AggregatorArea(aggregator_id=aggregator_id, area_id=a)
                        for a in dict.fromkeys(area_ids))
    await session.flush()
    return await get_aggregator(session, aggregator_id)


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def create_invite(session: AsyncSession, aggregator_id: int, role: InviteRole,
                        uses: int, expires_at: datetime, now: datetime,
                        pre_approved: bool = False) -> str:
    """A new invite; returns the code, which is shown once and never stored."""
    await get_aggregator(session, aggregator_id)
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
    session.add(Invite(code_hash=_hash_code(code), aggregator_id=aggregator_id, role=role,
                       uses_left=uses, pre_approved=pre_approved, expires_at=expires_at,
                       created_at=now))
    await session.flush()
    return code


async def valid_invite(session: AsyncSession, code: str, role: InviteRole, now: datetime
                       ) -> Invite | None:
    """The invite a code names, if it is for `role` and still usable (not used up)."""
    invite = await session.scalar(
        select(Invite).where(Invite.code_hash == _hash_code(code), Invite.role == role))
    if invite is None or invite.uses_left < 1 or invite.expires_at <= now \
            or invite.revoked_at is not None:
        return None
    return invite


async def use_invite(session: AsyncSession, invite_id: int, now: datetime) -> Invite | None:
    """Use up one use of an invite; None if it has none left or has expired meanwhile."""
    invite = await session.get(Invite, invite_id, populate_existing=True)
    if invite is None or invite.uses_left < 1 or invite.expires_at <= now \
            or invite.revoked_at is not None:
        return None
    # Guarded, so two people typing the last use at once cannot both have it, and a code
    # revoked meanwhile admits nobody.
    used = await session.execute(
        update(Invite).where(Invite.id == invite.id, Invite.uses_left == invite.uses_left,
                             Invite.revoked_at.is_(None))
        .values(uses_left=invite.uses_left - 1).execution_options(synchronize_session=False))
    return invite if used.rowcount == 1 else None  # type: ignore[attr-defined]


async def redeem_invite(session: AsyncSession, code: str, role: InviteRole, contact_id: int,
                        now: datetime) -> Aggregator | None:
    """Use up one use of a valid code for `role`; the aggregator joined, or None."""
    invite = await valid_invite(session, code, role, now)
    if invite is None or await use_invite(session, invite.id, now) is None:
        return None
    if role == InviteRole.STAFF:
        member = await session.scalar(select(StaffMember.id).where(
            StaffMember.contact_id == contact_id,
            StaffMember.aggregator_id == invite.aggregator_id))
        if member is None:
            session.add(StaffMember(contact_id=contact_id, aggregator_id=invite.aggregator_id,
                                    joined_at=now))
        await grant_role(session, contact_id, Role.STAFF, now)
    return await get_aggregator(session, invite.aggregator_id)


async def covered_areas(session: AsyncSession, aggregator_ids: Sequence[int] | None = None
                        ) -> dict[int, list[int]]:
    """The areas each enabled aggregator covers (of these aggregators, or all).

    A disabled aggregator covers nothing: its areas take no new requests through it, and
    its staff have no queue to verify or allocate from.
    """
    query = (select(AggregatorArea.aggregator_id, AggregatorArea.area_id)
             .join(Aggregator, Aggregator.id == AggregatorArea.aggregator_id)
             .where(Aggregator.disabled_at.is_(None)))
    if aggregator_ids is not None:
        query = query.where(AggregatorArea.aggregator_id.in_(aggregator_ids))
    covered: dict[int, list[int]] = {}
    for aggregator_id, area_id in (await session.execute(query)).all():
        covered.setdefault(aggregator_id, []).append(area_id)
    return covered


async def staff_aggregators(session: AsyncSession, contact_id: int) -> list[int]:
    result = await session.scalars(
        select(StaffMember.aggregator_id).where(StaffMember.contact_id == contact_id))
    return list(result.all())
