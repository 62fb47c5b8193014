"""A person chatting with the conversations directly, through the console channel's
parsing: for tests of dialog behaviour that does not depend on Telegram."""

from __future__ import annotations

import itertools

from gotong.bot.channels.console import to_incoming
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Incoming, Kind, Reply

_ids = itertools.count(1)


class Chat:
    def __init__(self, conversations: Conversations, chat_id: str = "person-1",
                 language: str | None = "en") -> None:
        self.conversations = conversations
        self.chat_id = chat_id
        self.language = language
        self.replies: list[Reply] = []

    @property
    def last(self) -> Reply:
        return self.replies[-1]

    async def handle(self, incoming: Incoming) -> list[Reply]:
        replies = await self.conversations.handle(incoming)
        self.replies.extend(replies)
        return replies

    async def say(self, text: str) -> list[Reply]:
        return await self.handle(to_incoming(text, self.chat_id, self.language))

    async def say_all(self, *texts: str) -> None:
        """Answer several questions in a row by typing."""
        for text in texts:
            await self.say(text)

    async def tap(self, option: str, context: str | None = None) -> list[Reply]:
        """Tap a button of the last question (or of the given context)."""
        context = context if context is not None else self.last.context
        return await self.handle(Incoming(channel="console", chat_id=self.chat_id,
                                          kind=Kind.CHOICE, context=context, option=option,
                                          language_hint=self.language))

    async def send_kind(self, kind: Kind, **fields: object) -> list[Reply]:
        return await self.handle(Incoming(channel="console", chat_id=self.chat_id, kind=kind,
                                          language_hint=self.language, **fields))  # type: ignore[arg-type]

    def option_id(self, label_part: str) -> str:
        """The id of the last reply's option whose label contains `label_part`."""
        matches = [o.id for o in self.last.options if label_part.lower() in o.label.lower()]
        assert len(matches) == 1, (label_part, [o.label for o in self.last.options])
        return matches[0]


def new_external_id() -> str:
    return f"test-{next(_ids)}"
