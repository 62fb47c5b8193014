"""Which processes send on which chat app right now, so that they share its limits.

A platform's overall limit (Telegram's 30 messages a second, say) is one budget for every
process sending for the bot. Each sending process says every few seconds that it is alive
and on which apps; each takes an equal share of an app's limit among those alive. One that
stops saying so (stopped, killed, paused) drops out after `alive_for`, and the others'
shares grow again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import String, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base


class SenderPresence(Base):
    __tablename__ = "sender_presence"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    alive_until: Mapped[datetime]


async def announce_presence(connection: AsyncConnection, owner: str,
                            channels: Sequence[str], now: datetime, alive_for: timedelta
                            ) -> dict[str, int]:
    """Say that `owner` sends on `channels` until `now + alive_for`; how many processes
    (this one included) send on each of them now."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    until = now + alive_for
    for channel in channels:
        statement = insert(SenderPresence).values(owner=owner, channel=channel,
                                                  alive_until=until)
        await connection.execute(statement.on_conflict_do_update(
            index_elements=[SenderPresence.owner, SenderPresence.channel],
            set_={"alive_until": until}))
    await connection.execute(delete(SenderPresence)
                             .where(SenderPresence.alive_until < now - alive_for))
    rows = await connection.execute(
        select(SenderPresence.channel, func.count())
        .where(SenderPresence.channel.in_(channels), SenderPresence.alive_until >= now)
        .group_by(SenderPresence.channel))
    counts = {channel: 1 for channel in channels}
    counts.update({channel: max(1, count) for channel, count in rows.all()})
    return counts


async def withdraw_presence(connection: AsyncConnection, owner: str) -> None:
    """This process stops sending: the others may take its share at once."""
    await connection.execute(delete(SenderPresence).where(SenderPresence.owner == owner))
