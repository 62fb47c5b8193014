"""How often a number a proxy typed was asked "is this your household?", and whether it
said no: so that a "no" is not asked again by the next registration, and no number is
asked without end, whichever proxies type it.

Kept by a keyed hash of the number (HMAC-SHA256 with the server's secret, as the NIK),
never the number itself: what is remembered of someone who said "not us" must not name
them. A row holds only the hash, the day's count of questions, when the number last said
no and for which proxy; it is dropped once neither the day nor the refusal counts any
more (`forget_old`, run daily with retention).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, utcnow
from gotong.models.contact import Contact

# The questions to one number are counted over this window.
DAY = timedelta(days=1)


class NumberAsked(Base):
    """What is remembered of the questions sent to one number."""

    __tablename__ = "number_asked"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Hex HMAC of the number in E.164 (with "+"), under privacy.nik_hash_key.
    number_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The start of the day (a rolling 24 hours) whose questions `asks` counts.
    window_start: Mapped[datetime] = mapped_column(default=utcnow)
    asks: Mapped[int] = mapped_column(default=0)
    # When the number last said "no, not us", and to whose request (the proxy's contact):
    # that proxy may be told the number said no, any other may not.
    declined_at: Mapped[datetime | None]
    declined_for: Mapped[int | None] = mapped_column(ForeignKey(Contact.id,
                                                                ondelete="SET NULL"))


@dataclass(frozen=True)
class AskLimits:
    """proxy.declined_days and proxy.max_questions_per_day."""

    declined_for: timedelta = timedelta(days=30)
    per_day: int = 3


class Verdict(enum.StrEnum):
    """Whether a number may be asked now."""

    ASK = "ask"
    # It said no to a request of this same proxy, within proxy.declined_days.
    DECLINED_YOURS = "declined yours"
    # It said no to another proxy's request, or was asked as often as a day allows:
    # to the proxy, the same neutral "cannot be asked now", which tells nothing of
    # someone else's household.
    NOT_NOW = "not now"


def number_key(phone: str, key: bytes) -> str:
    """The keyed hash a number is remembered by (separate from the NIK's by a prefix)."""
    if not key:
        raise ValueError("the hashing key must not be empty")
    return hmac.new(key, f"phone:{phone}".encode(), hashlib.sha256).hexdigest()


async def _locked(session: AsyncSession, key: str, now: datetime) -> NumberAsked:
    """The number's row, made if new, and locked (PostgreSQL) until the transaction ends:
    two proxies typing the same number at once count one after the other."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(NumberAsked).values(number_key=key, window_start=now, asks=0)
                          .on_conflict_do_nothing(index_elements=[NumberAsked.number_key]))
    row = await session.scalar(select(NumberAsked).where(NumberAsked.number_key == key)
                               .with_for_update().execution_options(populate_existing=True))
    assert row is not None  # made just above, or there already
    return row


async def may_ask(session: AsyncSession, key: str, proxy_contact_ids: list[int],
                  now: datetime, limits: AskLimits) -> Verdict:
    """Whether the number may be asked for a request of the proxy (any of their
    contacts); counted as one question of the day when it may."""
    row = await _locked(session, key, now)
    if row.declined_at is not None and now - row.declined_at < limits.declined_for:
        return Verdict.DECLINED_YOURS if row.declined_for in proxy_contact_ids \
            else Verdict.NOT_NOW
    if now - row.window_start >= DAY:
        row.window_start, row.asks = now, 0
    if row.asks >= limits.per_day:
        return Verdict.NOT_NOW
    row.asks += 1
    await session.flush()
    return Verdict.ASK


async def note_answer(session: AsyncSession, key: str, proxy_contact_id: int | None,
                      declined: bool, now: datetime) -> None:
    """The number answered: a "no" is remembered for proxy.declined_days; a "yes"
    forgets an earlier "no" (the household has the number now)."""
    row = await _locked(session, key, now)
    row.declined_at = now if declined else None
    row.declined_for = proxy_contact_id if declined else None
    await session.flush()


async def forget_old(session: AsyncSession, now: datetime, declined_for: timedelta) -> int:
    """Drop what no longer counts: a day gone by and no refusal within its period."""
    result = await session.execute(
        delete(NumberAsked).where(
            NumberAsked.window_start < now - DAY,
            or_(NumberAsked.declined_at.is_(None),
                NumberAsked.declined_at < now - declined_for))
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
