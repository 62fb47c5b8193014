"""A household's request for aid, its status history, and the operations that change it."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Select, String, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from gotong.models.base import Base, utcnow
from gotong.models.contact import Role, grant_role
from gotong.models.delivery import SERVING_STATUSES, Delivery
from gotong.models.nik import ProtectedNik
from gotong.models.notifications import Event, Subject, announce
from gotong.models.outbox import Notice
from gotong.models.person import person_contact_ids, person_contacts, same_person
from gotong.models.priority import queue_rank
from gotong.models.request_status import RequestStatus
from gotong.models.rules import NotAllowed, write_guarded

# What a household can still take back: nothing has been allocated to it yet.
CANCELLABLE_STATUSES = (RequestStatus.SUBMITTED, RequestStatus.VERIFIED)

OPEN_STATUSES = (
    RequestStatus.SUBMITTED,
    RequestStatus.VERIFIED,
    RequestStatus.ALLOCATED,
    RequestStatus.OUT_FOR_DELIVERY,
    RequestStatus.FAILED,
)

VULNERABILITIES = ("elderly", "disability", "pregnant", "under_five", "chronic", "lost_income")
NEEDS = ("food", "hygiene", "medicine", "baby", "other")

# No 0/O, 1/I/L or U/V pairs that are misread when a code is spoken or handwritten.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
REFERENCE_PREFIX = "GT-"
REFERENCE_LENGTH = 5


def new_reference() -> str:
    return REFERENCE_PREFIX + "".join(
        secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH)
    )


class HelpRequest(Base):
    __tablename__ = "help_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    head_name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    nik_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    nik_last4: Mapped[str | None] = mapped_column(String(4))
    village_id: Mapped[int] = mapped_column(ForeignKey("area.id"), index=True)
    street: Mapped[str] = mapped_column(String(200))
    rt: Mapped[str] = mapped_column(String(3))
    rw: Mapped[str] = mapped_column(String(3))
    household_size: Mapped[int]
    vulnerabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    needs: Mapped[list[str]] = mapped_column(JSON, default=list)
    needs_other: Mapped[str | None] = mapped_column(String(200))
    # Normalised head name + address, to spot the same household registered twice.
    identity_key: Mapped[str] = mapped_column(String(400), index=True)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("help_request.id"))
    duplicate_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Whether the same household was allocated aid before (a part of the priority score).
    served_before: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Orders the verification queue like the priority score (models/priority.py).
    queue_rank: Mapped[float] = mapped_column(default=0.0, server_default="0")
    # Deliveries that failed since the request last went back to the queue: enough of
    # them and it goes back again (aid.max_delivery_failures).
    failed_deliveries: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When its personal data was erased (on the person's demand, or once closed longer
    # than privacy.retention_days); what the aid record needs stays.
    erased_at: Mapped[datetime | None]
    # Registered by a proxy (models/proxy.py) on the household's behalf, who said they
    # had the household's consent, and when. Its phone then does not tell households
    # apart: it may be a family's shared phone, or the proxy's own.
    proxy_id: Mapped[int | None] = mapped_column(ForeignKey("proxy.id", ondelete="SET NULL"),
                                                 index=True)
    consent_by: Mapped[int | None] = mapped_column(ForeignKey("contact.id",
                                                              ondelete="SET NULL"))
    consent_at: Mapped[datetime | None]
    # When the owner of the phone the proxy gave said "yes, that is us", and whether that
    # number was new to Gotong when asked (no contact of its person was seen before the
    # question): a proxy with a second number of their own could answer for the household,
    # which staff cannot rule out but should see.
    phone_confirmed_at: Mapped[datetime | None]
    phone_confirmed_new: Mapped[bool | None]

    events: Mapped[list[RequestEvent]] = relationship(
        back_populates="request", order_by="RequestEvent.id", cascade="all, delete-orphan"
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


Index("ix_help_request_queue", HelpRequest.status, HelpRequest.queue_rank.desc(),
      HelpRequest.id)
# The same order within one kelurahan, for aggregators covering few of them: the index
# above would walk past the requests of every other kelurahan first.
Index("ix_help_request_village_queue", HelpRequest.status, HelpRequest.village_id,
      HelpRequest.queue_rank.desc(), HelpRequest.id)
# Requests per day (the dashboard's and the public page's chart) read only recent ones.
Index("ix_help_request_created", HelpRequest.created_at)
# The same for an aggregator's kelurahan: only their recent requests, not the city's.
Index("ix_help_request_village_created", HelpRequest.village_id, HelpRequest.created_at)


class RequestEvent(Base):
    """One status change of a request: who made it and when."""

    __tablename__ = "request_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("help_request.id", ondelete="CASCADE"),
                                            index=True)
    status: Mapped[str] = mapped_column(String(20))
    actor_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    note: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    request: Mapped[HelpRequest] = relationship(back_populates="events")


@dataclass(frozen=True)
class NewRequest:
    head_name: str
    phone: str
    nik: ProtectedNik | None
    village_id: int
    street: str
    rt: str
    rw: str
    household_size: int
    vulnerabilities: Sequence[str]
    needs: Sequence[str]
    needs_other: str | None


@dataclass(frozen=True)
class ByProxy:
    """A request a proxy registers: who they are and the consent they confirmed."""

    proxy_id: int
    contact_id: int
    consent_at: datetime


def identity_key(head_name: str, village_id: int, street: str, rt: str, rw: str) -> str:
    """Name and address reduced to letters and digits, so spacing, case, accents and
    punctuation do not hide a second registration of the same household."""

    def fold(text: str) -> str:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        text = re.sub(r"\b(jalan|jln|jl|gang|gg|nomor|no)\b\.?", " ", text.casefold())
        return re.sub(r"[^a-z0-9]", "", text)

    return f"{fold(head_name)}|{village_id}|{fold(street)}|{int(rt)}|{int(rw)}"


def own_requests(contact_ids: Collection[int] | Select[int]) -> Any:
    """Requests of the person's household: theirs, except those they registered as a
    proxy for a household without a phone (whose news comes to them). The person's
    contacts as ids, or as a query of them (person_contacts) to read all in one
    statement."""
    ids = contact_ids if isinstance(contact_ids, Select) else list(contact_ids)
    return HelpRequest.contact_id.in_(ids) & or_(
        HelpRequest.proxy_id.is_(None), HelpRequest.consent_by.is_(None),
        HelpRequest.consent_by.not_in(ids))


async def open_request_of(session: AsyncSession, contact_id: int) -> HelpRequest | None:
    """The person's open request, made from this app or another."""
    return await session.scalar(
        select(HelpRequest)
        .where(own_requests(person_contacts(contact_id)),
               HelpRequest.status.in_(OPEN_STATUSES))
        .order_by(HelpRequest.id.desc())
        .limit(1)
    )


async def requests_of(session: AsyncSession, contact_id: int) -> Sequence[HelpRequest]:
    result = await session.scalars(
        select(HelpRequest)
        .where(own_requests(await person_contact_ids(session, contact_id)))
        .options(selectinload(HelpRequest.events))
        .order_by(HelpRequest.id.desc())
    )
    return result.all()


async def find_duplicate(
    session: AsyncSession, *, contact_id: int | None, nik_hash: str | None,
    phone: str | None, identity: str, now: datetime, window: timedelta,
) -> tuple[HelpRequest | None, list[str]]:
    """Another household's open or recent request that looks like the same household.

    Requests of `contact_id` are the household's own (None: any request may be another
    household's); a `phone` of None does not tell households apart (a proxy gave it).
    """
    same = [HelpRequest.identity_key == identity]
    if phone is not None:
        same.append((HelpRequest.phone == phone) & HelpRequest.proxy_id.is_(None))
    if nik_hash is not None:
        same.append(HelpRequest.nik_hash == nik_hash)
    others = [] if contact_id is None else [HelpRequest.contact_id != contact_id]
    candidates = (await session.scalars(
        select(HelpRequest)
        .where(*others, or_(*same),
               or_(HelpRequest.status.in_(OPEN_STATUSES), HelpRequest.updated_at >= now - window))
        .order_by(HelpRequest.id)
    )).all()
    for other in candidates:
        reasons = []
        if nik_hash is not None and other.nik_hash == nik_hash:
            reasons.append("nik")
        if phone is not None and other.phone == phone and other.proxy_id is None:
            reasons.append("phone")
        if other.identity_key == identity:
            reasons.append("name_address")
        if reasons:
            return other, reasons
    return None, []


async def served_since(session: AsyncSession, requests: Sequence[HelpRequest],
                       since: datetime | None = None) -> set[int]:
    """Ids of these requests whose household (the same NIK hash, phone, or name and
    address) was allocated aid since then (ever, for None), by any aggregator."""
    if not requests:
        return set()
    # A phone a proxy gave may be shared by households: it does not tell them apart.
    phones = {r.phone for r in requests if r.proxy_id is None}
    identities = {r.identity_key for r in requests}
    hashes = {r.nik_hash for r in requests if r.nik_hash}
    same = [HelpRequest.phone.in_(phones) & HelpRequest.proxy_id.is_(None),
            HelpRequest.identity_key.in_(identities)]
    if hashes:
        same.append(HelpRequest.nik_hash.in_(hashes))
    # Two steps, each an index lookup: the requests of the same households (by phone,
    # name and address, NIK hash), then their deliveries. As one join, SQLite's planner
    # starts from the deliveries' status instead and reads every delivery.
    households = {row.id: row for row in (await session.execute(
        select(HelpRequest.id, HelpRequest.phone, HelpRequest.identity_key,
               HelpRequest.nik_hash, HelpRequest.proxy_id).where(or_(*same)))).all()}
    if not households:
        return set()
    query = (select(Delivery.request_id).distinct()
             .where(Delivery.request_id.in_(list(households)),
                    Delivery.status.in_(SERVING_STATUSES)))
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    served = [households[request_id] for request_id in (await session.scalars(query)).all()]
    served_phones = {row.phone for row in served if row.proxy_id is None}
    served_identities = {row.identity_key for row in served}
    served_hashes = {row.nik_hash for row in served if row.nik_hash}
    return {r.id for r in requests
            if (r.proxy_id is None and r.phone in served_phones)
            or r.identity_key in served_identities
            or (r.nik_hash is not None and r.nik_hash in served_hashes)}


async def submit_request(
    session: AsyncSession, contact_id: int, new: NewRequest, *, now: datetime,
    duplicate_window: timedelta, by_proxy: ByProxy | None = None,
) -> tuple[HelpRequest, list[Notice]]:
    """Store a submitted request with its first event; flag a possible duplicate.

    `contact_id` is who hears of the request: the household, or the proxy who registered
    it (for a household without a phone, or until it confirms the one the proxy gave).
    Returns what the one who submitted it is told.
    """
    protected = new.nik
    nik_hash = protected.hash if protected else None
    identity = identity_key(new.head_name, new.village_id, new.street, new.rt, new.rw)
    # A proxy may register several households on one phone, and any of them again.
    duplicate, reasons = await find_duplicate(
        session, contact_id=None if by_proxy else contact_id, nik_hash=nik_hash,
        phone=None if by_proxy else new.phone, identity=identity, now=now,
        window=duplicate_window,
    )
    actor = by_proxy.contact_id if by_proxy else contact_id
    reference = await _unused_reference(session)
    request = HelpRequest(
        reference=reference, contact_id=contact_id, status=RequestStatus.SUBMITTED,
        head_name=new.head_name, phone=new.phone, nik_hash=nik_hash,
        nik_last4=protected.last4 if protected else None, village_id=new.village_id,
        street=new.street, rt=new.rt, rw=new.rw, household_size=new.household_size,
        vulnerabilities=list(new.vulnerabilities), needs=list(new.needs),
        needs_other=new.needs_other, identity_key=identity,
        duplicate_of_id=duplicate.id if duplicate else None, duplicate_reasons=reasons,
        created_at=now, updated_at=now,
        proxy_id=by_proxy.proxy_id if by_proxy else None,
        consent_by=by_proxy.contact_id if by_proxy else None,
        consent_at=by_proxy.consent_at if by_proxy else None,
    )
    request.served_before = bool(await served_since(session, [request]))
    request.queue_rank = queue_rank(new.household_size, new.vulnerabilities, now,
                                    request.served_before)
    request.events.append(RequestEvent(status=RequestStatus.SUBMITTED,
                                       actor_contact_id=actor, at=now))
    session.add(request)
    await session.flush()
    # A proxy's request is told to the proxy until the household confirms a phone of its
    # own (models/phone_confirmation.py), which makes it a household then.
    if by_proxy is None:
        await grant_role(session, contact_id, Role.HOUSEHOLD, now)
    notices = await announce(session, Event.REQUEST_SUBMITTED, Subject(request=request), now,
                             actor_contact_id=actor)
    return request, notices


# --- registered by proxies (models/proxy.py) --------------------------------------


async def registered_by(session: AsyncSession, proxy_ids: Sequence[int]
                        ) -> list[HelpRequest]:
    """The requests these proxies registered, newest first."""
    if not proxy_ids:
        return []
    result = await session.scalars(
        select(HelpRequest).where(HelpRequest.proxy_id.in_(list(proxy_ids)))
        .order_by(HelpRequest.id.desc()))
    return list(result.all())


# How long a request a proxy took back still counts towards proxy.max_households.
TAKEN_BACK_COUNTS = timedelta(days=1)


async def open_households(session: AsyncSession, proxy_ids: Sequence[int], now: datetime
                          ) -> int:
    """How many households these proxies registered are still being helped, or were
    taken back in the last day: what proxy.max_households limits. (Taking requests back
    and registering again would otherwise let a proxy ask a number without end.)"""
    if not proxy_ids:
        return 0
    return int(await session.scalar(
        select(func.count()).select_from(HelpRequest)
        .where(HelpRequest.proxy_id.in_(list(proxy_ids)),
               or_(HelpRequest.status.in_(OPEN_STATUSES),
                   (HelpRequest.status == RequestStatus.CANCELLED)
                   & (HelpRequest.updated_at > now - TAKEN_BACK_COUNTS)))) or 0)


async def news_to_proxy(session: AsyncSession, proxy_id: int, contact_id: int
                        ) -> list[HelpRequest]:
    """The open requests the proxy registered whose news comes to them (the contact they
    registered from): households without a phone of their own, or that have yet to
    confirm the one the proxy gave."""
    result = await session.scalars(
        select(HelpRequest).where(HelpRequest.proxy_id == proxy_id,
                                  HelpRequest.contact_id == contact_id,
                                  HelpRequest.status.in_(OPEN_STATUSES))
        .order_by(HelpRequest.id))
    return list(result.all())


async def request_of(session: AsyncSession, contact_id: int, reference: str
                     ) -> HelpRequest | None:
    """A request by its reference, only if it is this contact's (or their person's)."""
    return await session.scalar(
        select(HelpRequest).where(
            HelpRequest.reference == reference,
            HelpRequest.contact_id.in_(await person_contact_ids(session, contact_id)))
    )


async def _change(session: AsyncSession, request: HelpRequest, allowed: Collection[str],
                  now: datetime, **values: object) -> None:
    """Change the request if it is still in one of the allowed statuses; else NotAllowed."""
    await write_guarded(session, update(HelpRequest)
                        .where(HelpRequest.id == request.id,
                               HelpRequest.status.in_(list(allowed)))
                        .values(updated_at=now, **values), request.status)
    await session.refresh(request)


async def cancel_request(session: AsyncSession, request: HelpRequest, actor_contact_id: int,
                         now: datetime) -> list[Notice]:
    """The household takes its request back; returns what the household is told."""
    if not await same_person(session, actor_contact_id, request.contact_id):
        raise NotAllowed("not theirs")
    await _change(session, request, CANCELLABLE_STATUSES, now,
                  status=RequestStatus.CANCELLED)
    session.add(RequestEvent(request_id=request.id, status=RequestStatus.CANCELLED,
                             actor_contact_id=actor_contact_id, at=now))
    await session.flush()
    return await announce(session, Event.REQUEST_CANCELLED, Subject(request=request), now,
                          actor_contact_id=actor_contact_id)


async def _unused_reference(session: AsyncSession) -> str:
    while True:
        reference = new_reference()
        taken = await session.scalar(
            select(HelpRequest.id).where(HelpRequest.reference == reference)
        )
        if taken is None:
            return reference



# Reasons staff can pick when rejecting; anything else is typed.
REJECT_REASONS = ("outside_area", "incomplete", "not_eligible", "unreachable")


async def queue_of(session: AsyncSession, village_ids: Collection[int], limit: int = 1
                   ) -> list[HelpRequest]:
    """Submitted requests in these kelurahan, highest priority first."""
    if not village_ids:
        return []
    result = await session.scalars(
        select(HelpRequest)
        .where(HelpRequest.status == RequestStatus.SUBMITTED,
               HelpRequest.village_id.in_(list(village_ids)))
        .order_by(HelpRequest.queue_rank.desc(), HelpRequest.id)
        .limit(limit))
    return list(result.all())


async def _review(session: AsyncSession, request: HelpRequest, status: RequestStatus,
                  event: Event, staff_contact_id: int, now: datetime, note: str | None,
                  params: dict[str, object] | None = None, **values: object
                  ) -> list[Notice]:
    await _change(session, request, (RequestStatus.SUBMITTED,), now, status=status, **values)
    session.add(RequestEvent(request_id=request.id, status=status,
                             actor_contact_id=staff_contact_id, note=note, at=now))
    await session.flush()
    return await announce(session, event, Subject(request=request, params=params), now,
                          actor_contact_id=staff_contact_id)


async def verify_request(session: AsyncSession, request: HelpRequest, staff_contact_id: int,
                         now: datetime) -> list[Notice]:
    # The household may have been served through another request since it asked.
    served_before = bool(await served_since(session, [request]))
    return await _review(session, request, RequestStatus.VERIFIED, Event.REQUEST_VERIFIED,
                         staff_contact_id, now, None, served_before=served_before,
                         queue_rank=queue_rank(request.household_size,
                                               request.vulnerabilities, request.created_at,
                                               served_before))


async def reject_request(session: AsyncSession, request: HelpRequest, staff_contact_id: int,
                         reason: str, now: datetime) -> list[Notice]:
    """Reject with a listed reason (its id) or one staff typed."""
    shown: object = {"key": f"reject.{reason}"} if reason in REJECT_REASONS else reason
    return await _review(session, request, RequestStatus.REJECTED, Event.REQUEST_REJECTED,
                         staff_contact_id, now, reason[:200], {"reason": shown})


async def mark_duplicate(session: AsyncSession, request: HelpRequest, of: HelpRequest,
                         staff_contact_id: int, now: datetime) -> list[Notice]:
    return await _review(session, request, RequestStatus.REJECTED, Event.REQUEST_REJECTED,
                         staff_contact_id, now, f"duplicate of {of.reference}",
                         {"reason": {"key": "reject.duplicate"}}, duplicate_of_id=of.id)
