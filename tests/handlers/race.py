"""Two people acting on one thing at the same moment, through the conversations.

On PostgreSQL both handlers' checks must pass before either writes, or the race is not
played: the loser's update runs on an engine of its own, and when it is about to write
its table the winner's whole update runs and commits on the services' engine; the loser
then writes against the winner's change. SQLite serialises every unit of work (BEGIN
IMMEDIATE on its one connection), so there the winner, started first, commits before the
loser's check reads: the loser's check refuses it, and the answer must be the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.util import await_only

from gotong.bot.services import Services, handler_settings, is_sqlite
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Reply
from gotong.models.db import create_engine
from tests.chat import Chat

Move = Callable[[Chat], Awaitable[list[Reply]]]
# Long enough for a slow shared machine; a race that hangs fails instead of blocking.
RACE_TIMEOUT = 60


async def race(services: Services, winner: Chat, win: Move, loser: Chat, lose: Move,
               writes: str, verb: str = "UPDATE") -> tuple[list[Reply], list[Reply]]:
    """Play `win` in `winner`'s chat and `lose` in `loser`'s at once; `writes` is the
    table whose first UPDATE (or other `verb`, "DELETE FROM" say) by the loser is where
    the winner's change lands (on PostgreSQL). Returns the winner's replies and the
    loser's."""
    if is_sqlite(services.config.database.url):
        won, lost = await asyncio.wait_for(asyncio.gather(win(winner), lose(loser)),
                                           RACE_TIMEOUT)
        return won, lost
    engine = create_engine(services.config.database.url)
    twin = Chat(Conversations(engine, services.catalog, services.areas,
                              handler_settings(services.config)),
                chat_id=loser.chat_id, language=loser.language)
    twin.replies = list(loser.replies)
    checked, committed = asyncio.Event(), asyncio.Event()
    played = False

    def before_write(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal played
        if not played and statement.lstrip().upper().startswith(
                f"{verb} {writes.upper()} "):
            played = True
            checked.set()
            # In the unit of work's own greenlet: the loser waits here, its checks
            # done and its transaction open, until the winner has committed.
            await_only(committed.wait())

    async def first() -> list[Reply]:
        await checked.wait()
        try:
            return await win(winner)
        finally:
            committed.set()

    async def second() -> list[Reply]:
        try:
            return await lose(twin)
        finally:
            # A loser that never writes must not leave the winner waiting.
            checked.set()

    event.listen(engine.sync_engine, "before_cursor_execute", before_write)
    try:
        won, lost = await asyncio.wait_for(asyncio.gather(first(), second()), RACE_TIMEOUT)
    finally:
        await engine.dispose()
    assert played, f"the loser never wrote {writes}: the race was not played"
    loser.replies.extend(lost)
    # The loser's chat changed under the services' conversations.
    services.conversations.forget("console", loser.chat_id)
    return won, lost


def texts(replies: list[Reply]) -> str:
    return "\n".join(r.text for r in replies)


async def held(services: Services, chat: Chat, move: Move, at: str,
               meanwhile: Callable[[], Awaitable[Any]], wait: float = 3.0
               ) -> tuple[list[Reply], Any]:
    """PostgreSQL only: play `move` in `chat`'s conversation on an engine of its own and
    hold it, its transaction open, just before its first statement that starts with
    `at`; meanwhile run `meanwhile` on another connection and give it `wait` seconds
    (it may be waiting for a lock the held transaction took); then let `move` go on.
    Returns `move`'s replies and what `meanwhile` returned."""
    assert not is_sqlite(services.config.database.url)
    engine = create_engine(services.config.database.url)
    twin = Chat(Conversations(engine, services.catalog, services.areas,
                              handler_settings(services.config)),
                chat_id=chat.chat_id, language=chat.language)
    twin.replies = list(chat.replies)
    reached, release = asyncio.Event(), asyncio.Event()

    def before(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not reached.is_set() and statement.lstrip().upper().startswith(at.upper()):
            reached.set()
            await_only(release.wait())

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        played = asyncio.create_task(move(twin))
        try:
            await asyncio.wait_for(reached.wait(), RACE_TIMEOUT)
        except TimeoutError:
            release.set()
            await played
            raise AssertionError(f"the move never reached {at}") from None
        other = asyncio.create_task(meanwhile())
        await asyncio.wait({other}, timeout=wait)
        release.set()
        replies, result = await asyncio.wait_for(asyncio.gather(played, other),
                                                 RACE_TIMEOUT)
    finally:
        release.set()
        await engine.dispose()
    chat.replies.extend(replies)
    services.conversations.forget("console", chat.chat_id)
    return replies, result
