"""Whatever the engine says and whatever people send, WhatsApp gets only what it accepts
and every message gets an answer (hypothesis)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gotong.bot.channels.whatsapp import Labels, render
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.messages import Hint, Option, Reply
from tests.bot.channels.whatsapp_harness import WhatsAppBotUnderTest, running_whatsapp
from tests.fakes.whatsapp_api import FakeWhatsAppAPI, check_send
from tests.fakes.whatsapp_webhooks import (
    button_reply,
    contacts_message,
    image_message,
    list_reply,
    location_message,
    text_message,
    unsupported_message,
)

LABELS = Labels(choose="Choose", more="More…", use_my_number="Use this number",
                share_location="Tap 📎, then Location.")
texts = st.text(min_size=0, max_size=6000)
labels = st.text(min_size=1, max_size=80)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_:-.", min_size=1, max_size=40)


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    options = draw(st.lists(st.tuples(ids, labels, st.booleans()), max_size=30,
                            unique_by=lambda o: o[0]))
    controls = draw(st.lists(st.tuples(ids, labels), max_size=4, unique_by=lambda c: c[0]))
    return Reply(
        text=draw(texts), context=draw(st.none() | ids),
        hint=draw(st.sampled_from(list(Hint))),
        options=tuple(Option(f"o{i}{oid}", label, number=i + 1, selected=selected)
                      for i, (oid, label, selected) in enumerate(options)),
        controls=tuple(Option(f"c{cid}", label) for cid, label in controls),
        contact_label=draw(st.none() | labels))


@settings(max_examples=40, deadline=None, database=None)
@given(replies())
def test_every_reply_renders_to_messages_whatsapp_accepts(reply: Reply) -> None:
    payloads, page = render(reply, LABELS)
    assert payloads
    for payload in payloads:
        check_send({"messaging_product": "whatsapp", "to": "6281234567890", **payload})
    if page is not None:
        assert len(reply.options) + len(reply.controls) > 10


_numbers = itertools.count(6285000000000)


@st.composite
def inbound(draw: st.DrawFn, number: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "command", "button", "row", "location", "image",
                                 "contact", "sticker", "audio", "video", "unsupported"]))
    if kind == "text":
        return text_message(number, draw(st.text(min_size=1, max_size=5000)))
    if kind == "command":
        return text_message(number, "/" + draw(st.text(max_size=40)))
    if kind in ("button", "row"):
        option_id = draw(st.text(max_size=256) | st.sampled_from([
            "hh.consent|yes", "menu|request", "menu|status", "hh.phone|~own", "x|~more:9"]))
        build = button_reply if kind == "button" else list_reply
        return build(number, option_id, draw(st.text(min_size=1, max_size=20)))
    if kind == "location":
        return location_message(number, draw(st.floats(-90, 90)), draw(st.floats(-180, 180)))
    if kind == "image":
        return image_message(number, draw(ids), draw(st.none() | st.text(max_size=200)))
    if kind == "contact":
        return contacts_message(number, "+62 812 " + draw(st.text("0123456789", max_size=9)),
                                draw(st.text(min_size=1, max_size=30)))
    return unsupported_message(number, kind)


@pytest.fixture
async def bot(config: Config, services: Services, whatsapp_api: FakeWhatsAppAPI
              ) -> AsyncIterator[WhatsAppBotUnderTest]:
    async with running_whatsapp(config, services, whatsapp_api) as bot:
        yield bot


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_arbitrary_whatsapp_messages_are_all_answered(bot: WhatsAppBotUnderTest,
                                                            data: st.DataObject) -> None:
    person = bot.person(str(next(_numbers)))
    await person.say("halo")
    await person.tap("Minta bantuan")
    for _ in range(data.draw(st.integers(1, 4))):
        sent = await person.send(data.draw(inbound(person.number)))
        assert sent and all(m.text for m in sent)
    assert bot.fake.invalid_requests() == []
