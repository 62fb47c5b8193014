"""A phone a proxy typed for a household, asked of the phone's owner before it takes over.

A proxy types whatever number they are told, or misremember: it may belong to someone
already known on Telegram or WhatsApp, or to no one in the household. Had the request gone
to that number at once, its owner would get a household's role they never asked for, its
news, and its delivery code. So the request stays the proxy's, exactly as for a household
without a phone (news and code go to the proxy), and the number gets one question: the
proxy's organisation registered a request for your household with this reference, is that
you? Nothing else: not the household's name, address or needs, no role, and nothing in
/status or /my_data until they say yes.

Every typed number is asked, known or not: an unknown number may as well be a stranger's,
and one rule is simpler to trust.

The buttons name the question and carry its secret; the answer counts only with that
secret, from the person the question went to (on any of their linked apps), while it is
still open: a forged, stale or foreign button changes nothing (models/person.py's "this
was not me" works the same way).
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.audit import audit
from gotong.models.base import Base, utcnow
from gotong.models.contact import Contact, Role, grant_role
from gotong.models.help_request import OPEN_STATUSES, HelpRequest
from gotong.models.number_asks import note_answer, number_key
from gotong.models.outbox import Notice, enqueue
from gotong.models.person import lock_person, person_contacts, same_person
from gotong.models.proxy import stands_in_for_removed

# The question's buttons: context, and the options "yes:<id>:<token>", "no:<id>:<token>".
CONFIRM_CONTEXT = "hp"
YES, NO = "yes", "no"
QUESTION_NOTICE = "notice.household_phone_check"


class PhoneConfirmation(Base):
    """An open question to the owner of a phone a proxy gave for a household."""

    __tablename__ = "phone_confirmation"

    id: Mapped[int] = mapped_column(primary_key=True)
    # One question per request: a request has one phone.
    request_id: Mapped[int] = mapped_column(
        ForeignKey(HelpRequest.id, ondelete="CASCADE"), unique=True)
    # The contact the question went to: the person known by the number, or a new WhatsApp
    # chat at it.
    contact_id: Mapped[int] = mapped_column(ForeignKey(Contact.id, ondelete="CASCADE"),
                                            index=True)
    phone: Mapped[str] = mapped_column(String(20))
    # The secret the buttons carry.
    token: Mapped[str] = mapped_column(String(24))
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)


async def ask_household(session: AsyncSession, request: HelpRequest, contact_id: int,
                        phone: str, organisation: str, now: datetime) -> PhoneConfirmation:
    """Ask the phone's owner whether the request is their household's: one message
    through the outbox (on WhatsApp outside its 24 hours, a template), naming the
    organisation and the reference only."""
    asked = PhoneConfirmation(request_id=request.id, contact_id=contact_id, phone=phone,
                              token=secrets.token_urlsafe(12), asked_at=now)
    session.add(asked)
    await session.flush()
    # Not essential: someone who sent /stop is asked nothing (the request stays the
    # proxy's, as if they never answered).
    enqueue(session, Notice(
        contact_id=contact_id, key=QUESTION_NOTICE, essential=False,
        params={"organisation": organisation, "reference": request.reference},
        actions=((CONFIRM_CONTEXT, f"{YES}:{asked.id}:{asked.token}", "notice.phone_ours"),
                 (CONFIRM_CONTEXT, f"{NO}:{asked.id}:{asked.token}",
                  "notice.phone_not_ours"))), now)
    audit(session, now, "proxy_phone", "asked", contact_id=request.consent_by,
          detail=f"request {request.id}")
    return asked


async def pending_for(session: AsyncSession, request_ids: list[int]) -> set[int]:
    """Which of these requests wait for their household to confirm a phone."""
    if not request_ids:
        return set()
    return set((await session.scalars(select(PhoneConfirmation.request_id).where(
        PhoneConfirmation.request_id.in_(request_ids)))).all())


class Refused(enum.StrEnum):
    """Why an answer changed nothing."""

    # Not a question that exists, or not with this secret (forged, or already answered).
    UNKNOWN = "unknown"
    # The question went to someone else.
    NOT_THEIRS = "not theirs"
    # The request is no longer open (taken back, or closed).
    CLOSED = "closed"


class AnswerRefused(Exception):
    def __init__(self, reason: Refused) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Answered:
    request: HelpRequest
    confirmed: bool


async def answer_question(session: AsyncSession, by_contact_id: int, confirmation_id: int,
                          token: str, confirmed: bool, now: datetime, hash_key: bytes
                          ) -> Answered:
    """The phone's owner answers. Yes: the request is theirs from now on (its news, its
    delivery code, /status), and the proxy hears it. No: the phone leaves the request,
    which stays with the proxy, the proxy hears it, and the number (by its keyed hash,
    `hash_key`) is not asked again for proxy.declined_days. Either way the question is
    closed and audited; AnswerRefused when the answer does not count."""
    # The person's contacts first, as erasing them does (models/erasure.py): the same
    # person erasing their data on another app at this moment either finishes first,
    # and this finds its question gone, or waits, and erases the request this makes
    # theirs.
    await lock_person(session, by_contact_id)
    asked = await session.get(PhoneConfirmation, confirmation_id, populate_existing=True)
    if asked is None or not secrets.compare_digest(token.encode(), asked.token.encode()):
        audit(session, now, "proxy_phone", "refused", contact_id=by_contact_id,
              detail=Refused.UNKNOWN.value)
        raise AnswerRefused(Refused.UNKNOWN)
    if not await same_person(session, by_contact_id, asked.contact_id):
        audit(session, now, "proxy_phone", "refused", contact_id=by_contact_id,
              detail=Refused.NOT_THEIRS.value)
        raise AnswerRefused(Refused.NOT_THEIRS)
    # Closed first, and only by the one answer that closes it: a second tap at the same
    # moment (on another of the person's apps, say) finds it gone.
    closed = await session.execute(
        delete(PhoneConfirmation).where(PhoneConfirmation.id == asked.id)
        .execution_options(synchronize_session=False))
    if not closed.rowcount:  # type: ignore[attr-defined]
        audit(session, now, "proxy_phone", "refused", contact_id=by_contact_id,
              detail=Refused.UNKNOWN.value)
        raise AnswerRefused(Refused.UNKNOWN)
    request = await session.get(HelpRequest, asked.request_id, populate_existing=True)
    assert request is not None  # the question goes with its request
    if request.status not in OPEN_STATUSES:
        # Taken back (or closed) since it was asked: nothing is left to take over.
        audit(session, now, "proxy_phone", "refused", contact_id=by_contact_id,
              detail=Refused.CLOSED.value)
        raise AnswerRefused(Refused.CLOSED)
    proxy_contact = request.consent_by
    if confirmed:
        request.contact_id = by_contact_id
        request.phone = asked.phone
        request.updated_at = now
        request.phone_confirmed_at = now
        request.phone_confirmed_new = await _new_since(session, by_contact_id, asked.asked_at)
        await grant_role(session, by_contact_id, Role.HOUSEHOLD, now)
    await note_answer(session, number_key(asked.phone, hash_key), proxy_contact,
                      not confirmed, now)
    audit(session, now, "proxy_phone", "confirmed" if confirmed else "declined",
          contact_id=by_contact_id, detail=f"request {request.id}")
    await session.flush()
    # A proxy the operator took out hears nothing more of the households.
    if proxy_contact is not None and await _reachable(session, proxy_contact) \
            and not (request.proxy_id is not None and await stands_in_for_removed(
                session, request.proxy_id, proxy_contact)):
        enqueue(session, Notice(
            contact_id=proxy_contact,
            key="notice.proxy_phone_confirmed" if confirmed else "notice.proxy_phone_declined",
            params={"reference": request.reference}), now)
    return Answered(request, confirmed)


async def _new_since(session: AsyncSession, contact_id: int, asked_at: datetime) -> bool:
    """Whether the person had never been seen before the question was sent: each of
    their contacts was made after it, or only for a proxy's question and has not written
    (until this answer). A proxy's own second number, unknown to Gotong, answers so."""
    seen_before = await session.scalar(
        select(Contact.id).where(Contact.id.in_(person_contacts(contact_id)),
                                 Contact.created_at < asked_at,
                                 Contact.proxy_typed_at.is_(None)).limit(1))
    return seen_before is None


async def _reachable(session: AsyncSession, contact_id: int) -> bool:
    """Not an erased person's contact (never written to again)."""
    erased = await session.scalar(select(Contact.erased_at).where(Contact.id == contact_id))
    return erased is None


async def forget_questions(session: AsyncSession, *, request_ids: list[int] | None = None,
                           contact_ids: list[int] | None = None) -> None:
    """Drop the open questions of these requests (their data erased), or to these
    contacts (their person's data erased: the number is no longer asked)."""
    if request_ids is None and contact_ids is None:
        return
    query = delete(PhoneConfirmation)
    if request_ids is not None:
        query = query.where(PhoneConfirmation.request_id.in_(request_ids))
    if contact_ids is not None:
        query = query.where(PhoneConfirmation.contact_id.in_(contact_ids))
    await session.execute(query.execution_options(synchronize_session=False))
