"""Proxies: trusted people (RT/RW heads, village officials, volunteers) whom an aggregator
invited to register households that have no phone, or no smartphone, on their behalf."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, case, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, utcnow
from gotong.models.contact import Contact, ContactRole, Role, get_or_create_contact, grant_role
from gotong.models.person import same_person

# The app on which a household known only by its phone number is written to: a
# WhatsApp chat's address is the number itself (without the "+").
PHONE_CHANNEL = "whatsapp"


class Proxy(Base):
    """A person who registers households for an aggregator."""

    __tablename__ = "proxy"
    __table_args__ = (UniqueConstraint("contact_id", "aggregator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"),
                                            index=True)
    aggregator_id: Mapped[int] = mapped_column(
        ForeignKey("aggregator.id", ondelete="CASCADE"), index=True)
    # As staff see it beside the households they registered.
    name: Mapped[str] = mapped_column(String(100))
    # Their own number, shared from the app: the number of the households that have none.
    phone: Mapped[str] = mapped_column(String(20))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The invite code they accepted.
    invite_id: Mapped[int | None] = mapped_column(ForeignKey("invite.id",
                                                             ondelete="SET NULL"), index=True)
    # When the operator took them out with that code (models/admission.py): they register
    # no more, and the news of the households they stood in for no longer comes to them.
    # Kept, not deleted: staff still see who registered a request.
    removed_at: Mapped[datetime | None]


@dataclass(frozen=True)
class NewProxy:
    aggregator_id: int
    name: str
    phone: str
    invite_id: int | None = None


async def register_proxy(session: AsyncSession, contact_id: int, new: NewProxy,
                         now: datetime) -> Proxy:
    """Make the person a proxy of the aggregator (again: their name and phone renewed)."""
    proxy = await session.scalar(select(Proxy).where(
        Proxy.contact_id == contact_id, Proxy.aggregator_id == new.aggregator_id))
    if proxy is None:
        proxy = Proxy(contact_id=contact_id, aggregator_id=new.aggregator_id, joined_at=now)
        session.add(proxy)
    proxy.name, proxy.phone, proxy.invite_id = new.name, new.phone, new.invite_id
    proxy.removed_at = None
    await session.flush()
    await grant_role(session, contact_id, Role.PROXY, now)
    return proxy


async def proxies_of(session: AsyncSession, contact_id: int, *, lock: bool = False
                     ) -> list[Proxy]:
    """The person's proxy memberships, oldest first (not those taken out); with `lock`,
    locked until the transaction ends (PostgreSQL), in id order as revoking an invite
    locks them (models/admission.py): a proxy registering a household and the operator
    taking them out at that moment take turns."""
    query = select(Proxy).where(Proxy.contact_id == contact_id, Proxy.removed_at.is_(None)) \
        .order_by(Proxy.id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list((await session.scalars(query)).all())


async def was_removed(session: AsyncSession, contact_id: int) -> bool:
    """Whether the person was a proxy whom the operator took out."""
    return await session.scalar(select(Proxy.id).where(
        Proxy.contact_id == contact_id, Proxy.removed_at.is_not(None)).limit(1)) is not None


async def remove_proxy(session: AsyncSession, proxy: Proxy, now: datetime) -> None:
    """Take the proxy out: they register no more, and lose the proxy role once no
    aggregator has them as a proxy."""
    proxy.removed_at = now
    await session.flush()
    if not await proxies_of(session, proxy.contact_id):
        await session.execute(delete(ContactRole).where(
            ContactRole.contact_id == proxy.contact_id, ContactRole.role == Role.PROXY)
            .execution_options(synchronize_session=False))


async def stands_in_for_removed(session: AsyncSession, proxy_id: int, contact_id: int
                                ) -> bool:
    """Whether news for this contact about a request of this proxy would go to a proxy
    taken out, standing in for a household that has no phone of its own (or has yet to
    confirm it)."""
    return await session.scalar(select(Proxy.id).where(
        Proxy.id == proxy_id, Proxy.contact_id == contact_id,
        Proxy.removed_at.is_not(None))) is not None


async def acts_for_household(session: AsyncSession, actor_contact_id: int,
                             request_contact_id: int, proxy_id: int | None) -> bool:
    """Whether the person may act as a request's household (take it back, say whether
    its aid came): it is theirs, on any of their apps, unless they only stood in for the
    household as a proxy the operator has since taken out."""
    if not await same_person(session, actor_contact_id, request_contact_id):
        return False
    return proxy_id is None or not await stands_in_for_removed(session, proxy_id,
                                                               request_contact_id)


async def proxy_names(session: AsyncSession, proxy_ids: Sequence[int]) -> dict[int, str]:
    """Proxies' names by id, for staff to see who registered a request."""
    ids = [i for i in proxy_ids if i is not None]
    if not ids:
        return {}
    rows = await session.execute(select(Proxy.id, Proxy.name).where(Proxy.id.in_(ids)))
    return {row.id: row.name for row in rows.all()}


async def number_owner(session: AsyncSession, phone: str) -> Contact | None:
    """The person who holds this number now on either app, if anyone known does.

    A number can change hands: when its former owner said "this was not me" of the
    contact that proved it later on another app (models/person.py), that contact is the
    number's owner now, and the former owner, who disputed it, comes last. Else the
    WhatsApp chat at the number (that chat is the number), else the contact that
    verified it."""
    digits = phone.removeprefix("+")
    at_number = (Contact.channel == PHONE_CHANNEL) & (Contact.chat_id == digits)
    return await session.scalar(
        select(Contact).where(
            Contact.erased_at.is_(None),
            or_(Contact.verified_phone == phone, at_number))
        .order_by(Contact.unlinked_at.desc().nulls_last(),
                  case((at_number, 0), else_=1), Contact.id).limit(1))


async def household_contact(session: AsyncSession, phone: str, language: str,
                            now: datetime) -> Contact:
    """The contact a household with this phone is told on: the number's owner
    (`number_owner`), else a new WhatsApp chat at the number (written to within
    WhatsApp's rules: outside its 24 hours, as a template), marked as made only for the
    question: no broadcast reaches or counts it until the person writes."""
    known = await number_owner(session, phone)
    if known is not None:
        return known
    contact, created = await get_or_create_contact(
        session, PHONE_CHANNEL, phone.removeprefix("+"), language, now)
    if created:
        contact.proxy_typed_at = now
        await session.flush()
    return contact
