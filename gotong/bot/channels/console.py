"""The console channel: chat with Gotong in a terminal, options shown as numbers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Hint, Incoming, Kind, Reply

CHANNEL = "console"


def render(reply: Reply) -> str:
    lines = [reply.text]
    for option in reply.options:
        mark = ""
        if reply.hint == Hint.MULTI:
            mark = "[x] " if option.selected else "[ ] "
        number = f"{option.number}." if option.number is not None else "-"
        lines.append(f"  {number} {mark}{option.label}")
    if reply.controls:
        lines.append("  " + "   ".join(f"({c.label})" for c in reply.controls))
    return "\n".join(lines)


def to_incoming(line: str, chat_id: str, language: str | None) -> Incoming:
    text = line.rstrip("\n")
    if text.startswith("/"):
        word, _, args = text[1:].partition(" ")
        return Incoming(channel=CHANNEL, chat_id=chat_id, kind=Kind.COMMAND,
                        command=word.lower(), args=args.strip(), text=text,
                        language_hint=language)
    return Incoming(channel=CHANNEL, chat_id=chat_id, kind=Kind.TEXT, text=text,
                    language_hint=language)


async def run_console(
    conversations: Conversations,
    *,
    chat_id: str = "local",
    language: str | None = None,
    stdin: TextIO = sys.stdin,
    write: Callable[[str], object] = print,
) -> None:
    """Read lines until end of input; print every reply."""
    loop = asyncio.get_running_loop()
    # A language asked for on the command line wins over the one the chat had.
    first = f"/language {language}" if language else "/start"
    await _show(await conversations.handle(to_incoming(first, chat_id, language)), write)
    while True:
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            return
        replies = await conversations.handle(to_incoming(line, chat_id, language))
        await _show(replies, write)


async def _show(replies: Sequence[Reply], write: Callable[[str], object]) -> None:
    for reply in replies:
        write(render(reply))
        write("")
