"""People talking to the real WhatsApp channel: signed webhooks posted to our aiohttp app,
answers sent with aiohttp to the fake Graph API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from gotong.bot.channels.telegram import TelegramChannel
from gotong.bot.channels.whatsapp import WhatsAppChannel
from gotong.bot.config import Config
from gotong.bot.dispatcher import Dispatcher
from gotong.bot.process import attach_dispatcher
from gotong.bot.services import Services
from gotong.bot.web.app import create_web_app
from tests.fakes.whatsapp_api import FakeWhatsAppAPI, SentMessage
from tests.fakes.whatsapp_webhooks import (
    button_reply,
    contacts_message,
    image_message,
    list_reply,
    location_message,
    post_webhook,
    text_message,
    unsupported_message,
    with_user_id,
)

APP_SECRET = "wa-app-secret-for-tests"
VERIFY_TOKEN = "wa-verify-token"
WEBHOOK_PATH = "/whatsapp/webhook"


def whatsapp_config(config: Config, fake: FakeWhatsAppAPI, **changes: Any) -> Config:
    return replace(config, whatsapp=replace(
        config.whatsapp, phone_number_id=fake.phone_number_id, access_token=fake.access_token,
        app_secret=APP_SECRET, verify_token=VERIFY_TOKEN, api_base_url=fake.base_url,
        api_version=fake.api_version, webhook_path=WEBHOOK_PATH, **changes))


class WhatsAppBotUnderTest:
    """Our web app with the WhatsApp channel, and a client posting webhooks to it."""

    def __init__(self, fake: FakeWhatsAppAPI, channel: WhatsAppChannel, server: TestServer,
                 http: aiohttp.ClientSession, dispatcher: Dispatcher | None) -> None:
        self.fake = fake
        self.channel = channel
        self.server = server
        self.http = http
        self.dispatcher = dispatcher
        self.posted = 0
        # The id of the latest message delivered, to follow its read receipt.
        self.last_message_id = ""

    @property
    def url(self) -> str:
        return str(self.server.make_url(WEBHOOK_PATH))

    async def post(self, payload: Any, *, secret: str | None = APP_SECRET,
                   signature: str | None = None) -> tuple[int, str]:
        return await post_webhook(self.http, self.url, payload, secret, signature=signature)

    async def deliver(self, envelope: dict[str, Any], messages: int = 1) -> None:
        """Post a notification and wait until its messages are handled."""
        status, _ = await self.post(envelope)
        assert status == 200
        self.posted += messages
        self.last_message_id = _message_ids(envelope)[-1] if messages else self.last_message_id
        await self.channel.wait_handled(self.posted)

    def person(self, number: str | None, name: str = "Siti", *, user_id: str | None = None
               ) -> WaPerson:
        """Someone writing from `number`; with `user_id`, a person WhatsApp also knows by
        that business-scoped user id (without `number`: by a username alone)."""
        return WaPerson(self, number, name, user_id)


def shows(title: str, description: str, label_part: str) -> bool:
    """Whether an option shows the label: in its title, its description, or its title cut
    short with "…" (WhatsApp's 20 or 24 characters)."""
    cut = title.endswith("…") and label_part.startswith(title[:-1])
    return label_part in title or label_part in description or cut


class WaPerson:
    def __init__(self, bot: WhatsAppBotUnderTest, number: str | None, name: str,
                 user_id: str | None = None) -> None:
        assert number or user_id
        self.bot = bot
        self.user_id = user_id
        self.name = name
        # Every address they have had: their number while withheld is still theirs.
        self._addresses = {user_id} if user_id else set()
        self._number: str | None = None
        self.number = number

    @property
    def number(self) -> str | None:
        """Their number as Meta shares it now (None: withheld); it may be set later."""
        return self._number

    @number.setter
    def number(self, number: str | None) -> None:
        self._number = number
        if number:
            self._addresses.add(number)

    @property
    def sender(self) -> str:
        """Who the builders write from (the user id alone goes in once the envelope is
        built: see `send`)."""
        return self.number or self.user_id or ""

    @property
    def messages(self) -> list[SentMessage]:
        """What reached them, at any number or user id of theirs."""
        return [m for m in self.bot.fake.messages if m.to in self._addresses]

    @property
    def last(self) -> SentMessage:
        return self.messages[-1]

    def texts(self) -> list[str]:
        return [m.text for m in self.messages]

    async def send(self, envelope: dict[str, Any]) -> list[SentMessage]:
        if self.user_id is not None:
            envelope = with_user_id(envelope, self.user_id, number=self.number is not None)
        before = len(self.messages)
        await self.bot.deliver(envelope)
        return self.messages[before:]

    async def say(self, text: str) -> list[SentMessage]:
        return await self.send(text_message(self.sender, text, name=self.name))

    async def tap(self, label_part: str) -> list[SentMessage]:
        """Tap the button or list row whose title contains `label_part` on the latest
        message that has any."""
        message = next(m for m in reversed(self.messages) if m.options())
        descriptions = {row.get("id"): str(row.get("description", "")) for row in message.rows()}
        matches = [(id_, title) for id_, title in message.options()
                   if shows(title, descriptions.get(id_, ""), label_part)]
        assert len(matches) == 1, (label_part, message.options())
        [(option_id, title)] = matches
        if message.interactive_type == "list":
            return await self.send(list_reply(self.sender, option_id, title, name=self.name))
        return await self.send(button_reply(self.sender, option_id, title, name=self.name))

    async def tap_id(self, option_id: str, title: str = "x", *, row: bool = False
                     ) -> list[SentMessage]:
        build = list_reply if row else button_reply
        return await self.send(build(self.sender, option_id, title, name=self.name))

    async def share_location(self, latitude: float, longitude: float) -> list[SentMessage]:
        return await self.send(location_message(self.sender, latitude, longitude))

    async def send_photo(self, media_id: str, caption: str | None = None
                         ) -> list[SentMessage]:
        return await self.send(image_message(self.sender, media_id, caption, name=self.name))

    async def share_contact(self, phone: str, name: str | None = None) -> list[SentMessage]:
        """Send a contact card (WhatsApp's "share contact")."""
        return await self.send(contacts_message(self.sender, phone, name or self.name,
                                                name=self.name))

    async def send_unsupported(self, kind: str = "sticker") -> list[SentMessage]:
        return await self.send(unsupported_message(self.sender, kind, name=self.name))


@asynccontextmanager
async def running_whatsapp(config: Config, services: Services, fake: FakeWhatsAppAPI, *,
                           dispatch: bool = False, telegram: TelegramChannel | None = None,
                           **changes: Any) -> AsyncIterator[WhatsAppBotUnderTest]:
    """The channel behind our web app; with `dispatch`, the outbox dispatcher too, sending
    through this channel and the Telegram one if given."""
    config = whatsapp_config(config, fake, **changes)
    channel = WhatsAppChannel(config.whatsapp, services.conversations, services.sessions)
    dispatcher = attach_dispatcher(replace(services, config=config), telegram, channel) \
        if dispatch else None
    server = TestServer(create_web_app([channel.add_routes]), host="127.0.0.1")
    await server.start_server()
    await channel.start()
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop)) if dispatcher is not None else None
    try:
        async with aiohttp.ClientSession() as http:
            yield WhatsAppBotUnderTest(fake, channel, server, http, dispatcher)
    finally:
        await channel.stop()
        stop.set()
        if task is not None:
            await task
        await server.close()


def _message_ids(envelope: dict[str, Any]) -> list[str]:
    return [str(message["id"]) for entry in envelope.get("entry", [])
            for change in entry.get("changes", [])
            for message in change.get("value", {}).get("messages", [])]
