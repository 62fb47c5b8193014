"""Digests: news that would be too many messages on a busy day, sent at most once per
interval per person and topic.

A digest row holds the latest news of one topic for one person (a donor's pledge, a staff
member's queue). Each change overwrites it and marks it changed; a periodic pass turns the
changed rows whose last message is older than the interval into one outbox row each. So
fifty allocations from one pledge in an hour are one progress message, with the totals of
the moment it is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base
from gotong.models.outbox import About, Notice, Purpose, enqueue

# Digests turned into messages per pass; the rest wait for the next one.
BATCH = 500
# Subjects a digest keeps for the check at sending; news of more than this many in one
# interval is sent whatever became of them (so many have hardly all moved on).
MAX_SUBJECTS = 100


class Digest(Base):
    __tablename__ = "digest"
    __table_args__ = (
        UniqueConstraint("contact_id", "topic"),
        Index("ix_digest_changed_at", "changed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(40))
    message_key: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    essential: Mapped[bool] = mapped_column(default=True)
    # Set when there is news not yet sent; cleared when it is.
    changed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # What the news not yet sent is about (see outbox.About): every subject noted since
    # the last message; None when the news is worth sending whatever became of them.
    still: Mapped[str | None] = mapped_column(String(40))
    subject_ids: Mapped[list[int] | None] = mapped_column(JSON)

    def about(self) -> About | None:
        # No assignment: the rules of digests ask of a delivery's state, not of whom it
        # was given to.
        if self.still is None or not self.subject_ids:
            return None
        return About(self.still, tuple(self.subject_ids))

    def note(self, about: About | None) -> None:
        """Add the subject of a change to those of the news not yet sent."""
        if self.changed_at is None:
            # Nothing waits: the next message tells of this change alone.
            self.still = about.still if about else None
            self.subject_ids = list(about.ids) if about else None
            return
        if about is None or self.still != about.still or self.subject_ids is None:
            self.still, self.subject_ids = None, None
            return
        ids = list(dict.fromkeys([*self.subject_ids, *about.ids]))
        if len(ids) > MAX_SUBJECTS:
            self.still, self.subject_ids = None, None
        else:
            # A new list, not the old one changed in place: the ORM sees assignments only.
            self.subject_ids = ids


async def note_change(session: AsyncSession, contact_id: int, topic: str, key: str,
                      params: Mapping[str, Any], essential: bool, now: datetime,
                      about: About | None = None) -> None:
    """Keep the latest news of a topic for a person, to be sent by the next pass."""
    digest = await session.scalar(select(Digest).where(Digest.contact_id == contact_id,
                                                       Digest.topic == topic))
    if digest is None:
        # A concurrent first change of the same topic fails the unique constraint and the
        # unit of work is run again, then finding this row.
        digest = Digest(contact_id=contact_id, topic=topic, message_key=key,
                        params=dict(params), essential=essential)
        digest.note(about)
        digest.changed_at = now
        session.add(digest)
        return
    digest.note(about)
    digest.message_key, digest.params, digest.essential = key, dict(params), essential
    digest.changed_at = digest.changed_at or now


async def drop_pending(session: AsyncSession, contact_id: int, topic: str) -> None:
    """Forget news of a topic not yet sent (a final message has made it moot)."""
    await session.execute(
        update(Digest).where(Digest.contact_id == contact_id, Digest.topic == topic)
        .values(changed_at=None).execution_options(synchronize_session=False))


async def send_digests(session: AsyncSession, now: datetime, interval: timedelta) -> int:
    """Write an outbox row for each changed digest not sent within `interval`."""
    digests = (await session.scalars(
        select(Digest)
        .where(Digest.changed_at.is_not(None),
               or_(Digest.sent_at.is_(None), Digest.sent_at <= now - interval))
        .order_by(Digest.changed_at, Digest.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )).all()
    for digest in digests:
        enqueue(session, Notice(contact_id=digest.contact_id, key=digest.message_key,
                                params=digest.params, purpose=Purpose.STATUS,
                                essential=digest.essential, about=digest.about()), now)
        digest.changed_at = None
        digest.sent_at = now
    await session.flush()
    return len(digests)
