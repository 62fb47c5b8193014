"""The staff dashboard's sign-in: one-time links sent in chat, and browser sessions.

Only a SHA-256 hash of a link's or a session's token is stored: whoever reads the
database cannot sign in with what they find there. A link is used up by one guarded
UPDATE, so two clicks racing on it cannot both open a session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base, utcnow

# 32 random bytes, URL-safe: 43 characters.
TOKEN_BYTES = 32
# How often a session's last use is written: every request would be one write per page.
SEEN_PRECISION = timedelta(minutes=1)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SignInLink(Base):
    """A link that signs its staff member in once, within minutes of being sent."""

    __tablename__ = "dashboard_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"),
                                            index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class DashboardSession(Base):
    """A signed-in browser: it ends at `expires_at`, after a spell unused, or on sign-out."""

    __tablename__ = "dashboard_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"),
                                            index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


async def create_link(session: AsyncSession, contact_id: int, now: datetime,
                      valid: timedelta) -> str:
    """A new sign-in link's token; shown once (in the link), never stored."""
    token = new_token()
    session.add(SignInLink(token_hash=hash_token(token), contact_id=contact_id,
                           created_at=now, expires_at=now + valid))
    await session.flush()
    return token


async def link_is_usable(session: AsyncSession, token: str, now: datetime) -> bool:
    """Whether the link would sign in now (without using it)."""
    link = await session.scalar(select(SignInLink).where(
        SignInLink.token_hash == hash_token(token)))
    return link is not None and link.used_at is None and link.expires_at > now


async def use_link(session: AsyncSession, token: str, now: datetime) -> int | None:
    """Use the link up; the contact it signs in, or None if it is unknown, used or
    expired."""
    token_hash = hash_token(token)
    used = await session.execute(
        update(SignInLink)
        .where(SignInLink.token_hash == token_hash, SignInLink.used_at.is_(None),
               SignInLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False))
    if used.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await session.scalar(select(SignInLink.contact_id).where(
        SignInLink.token_hash == token_hash))


async def start_session(session: AsyncSession, contact_id: int, now: datetime,
                        lasts: timedelta) -> str:
    """A new session's token, for the browser's cookie."""
    token = new_token()
    session.add(DashboardSession(token_hash=hash_token(token), contact_id=contact_id,
                                 created_at=now, last_seen_at=now, expires_at=now + lasts,
                                 ended_at=None))
    await session.flush()
    return token


async def live_session(session: AsyncSession, token: str, now: datetime,
                       idle: timedelta) -> DashboardSession | None:
    """The session of this token if it is still live, marked as used now; a session
    found expired is ended, so it stays ended."""
    found = await session.scalar(select(DashboardSession).where(
        DashboardSession.token_hash == hash_token(token)))
    if found is None or found.ended_at is not None:
        return None
    if found.expires_at <= now or found.last_seen_at + idle <= now:
        found.ended_at = now
        await session.flush()
        return None
    if now - found.last_seen_at >= SEEN_PRECISION:
        found.last_seen_at = now
        await session.flush()
    return found


async def end_session(session: AsyncSession, session_id: int, now: datetime) -> None:
    await session.execute(
        update(DashboardSession)
        .where(DashboardSession.id == session_id, DashboardSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False))
