"""Signed by Meta, yet not shaped as Meta documents: each bad part of a notification is
dropped where the adapter reads it (ids, types, lengths, ASCII digits), with a short reason
in the log, and the webhook answers 200, so that Meta does not send it again for days, and
nothing of it reaches the database; the good parts beside it are handled."""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import pytest
from sqlalchemy import select

from gotong.bot.channels.whatsapp import parse_notification
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.contact import Contact
from gotong.models.inbound import InboundUpdate
from tests.bot.channels.whatsapp_harness import running_whatsapp
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.fakes.whatsapp_webhooks import (
    PHONE_NUMBER_ID,
    combine,
    image_message,
    location_message,
    status_update,
    text_message,
    with_user_id,
)
from tests.lookups import count

SITI = "6281234567890"
# The same number in Arabic-Indic and in superscript digits: str.isdigit() takes both.
ARABIC_INDIC = "٦٢٨١٢٣٤٥٦٧٨٩٠"
SUPERSCRIPT = "⁶²⁸¹²³⁴⁵⁶⁷⁸⁹⁰"
SIXTY_DIGITS = "6" * 60

pytestmark = pytest.mark.fake_api("whatsapp_api")


def changed(envelope: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The envelope with fields of its one message replaced (None: left out)."""
    envelope = copy.deepcopy(envelope)
    [message] = envelope["entry"][0]["changes"][0]["value"]["messages"]
    for name, value in fields.items():
        if value is None:
            message.pop(name, None)
        else:
            message[name] = value
    return envelope


def bad_messages() -> dict[str, dict[str, Any]]:
    """Signed notifications that must store nothing, by what is wrong with them."""
    text = text_message(SITI, "halo")
    return {
        "arabic-indic digits": text_message(ARABIC_INDIC, "halo"),
        "superscript digits": text_message(SUPERSCRIPT, "halo"),
        "60 digits": text_message(SIXTY_DIGITS, "halo"),
        "a number for the sender": changed(text, **{"from": int(SITI)}),
        "no sender": changed(text, **{"from": None}),
        "300-character id": text_message(SITI, "halo", message_id="wamid." + "A" * 294),
        "an id with spaces": text_message(SITI, "halo", message_id="wamid. A"),
        "a number for the id": changed(text, id=12345),
        "a list for the text": changed(text, text={"body": ["halo"]}),
        "a string for the text": changed(text, text="halo"),
        "a number for the type": changed(text, type=1),
        "a list for the reply": changed(text, type="interactive",
                                        interactive={"type": "button_reply",
                                                     "button_reply": ["x"]}),
        "a latitude that is a word": changed(
            location_message(SITI, 0, 0), location={"latitude": "north", "longitude": 106.8}),
        "a 300-character media id": image_message(SITI, "9" * 300),
        "a malformed user id": with_user_id(text, "siti.aminah"),
        "a 200-character user id": with_user_id(text, "ID." + "1" * 197),
        "a user id in arabic-indic digits": with_user_id(text, "ID." + ARABIC_INDIC),
    }


def test_each_bad_message_is_dropped_where_it_is_read(caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    caplog.set_level(logging.INFO)
    cases = bad_messages()
    cases["a latitude that is not a number"] = changed(
        location_message(SITI, 0, 0), location={"latitude": math.nan, "longitude": 106.8})
    cases["a latitude that is true"] = changed(
        location_message(SITI, 0, 0), location={"latitude": True, "longitude": 106.8})
    for what, envelope in cases.items():
        assert parse_notification(envelope, PHONE_NUMBER_ID) == ([], []), what
    # The reason is logged, never the value.
    assert "ignored a whatsapp message" in caplog.text
    for secret in (ARABIC_INDIC, SIXTY_DIGITS, "halo", "siti.aminah"):
        assert secret not in caplog.text
    # A timestamp that is not one, or in the future, is taken as now.
    [message], _ = parse_notification(changed(text_message(SITI, "x"), timestamp=True),
                                      PHONE_NUMBER_ID)
    [later], _ = parse_notification(changed(text_message(SITI, "x"), timestamp="9" * 12),
                                    PHONE_NUMBER_ID)
    assert message.sent_at.year == later.sent_at.year < 2100
    # Statuses: a bad id drops the status; a bad recipient is no one.
    _, statuses = parse_notification(combine(
        status_update(SITI, "wamid." + "A" * 300, "read"),
        status_update(ARABIC_INDIC, "wamid.ok", "read")), PHONE_NUMBER_ID)
    assert [(s.message_id, s.recipient) for s in statuses] == [("wamid.ok", "")]


async def test_a_signed_malformed_notification_is_answered_200_and_poisons_nothing(
        config: Config, services: Services, fake: FakeWhatsAppAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_whatsapp(config, services, fake) as bot:
        # Each alone, and all of them beside a good message in one notification.
        for what, envelope in bad_messages().items():
            assert (await bot.post(envelope))[0] == 200, what
        assert (await bot.post(status_update(SITI, "wamid." + "A" * 300, "read")))[0] == 200
        siti = bot.person(SITI)
        [answer] = await siti.send(combine(*bad_messages().values(),
                                           text_message(SITI, "halo")))
        assert "Halo! Saya Gotong" in answer.text
        assert fake.invalid_requests() == []
    assert await count(services, InboundUpdate) == 1
    async with services.sessions() as session:
        contacts = (await session.scalars(select(Contact))).all()
    assert [(c.chat_id, c.verified_phone) for c in contacts] == [(SITI, "+" + SITI)]
    for secret in (ARABIC_INDIC, SUPERSCRIPT, SIXTY_DIGITS, "siti.aminah"):
        assert secret not in caplog.text
