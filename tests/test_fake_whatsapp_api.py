"""The WhatsApp Cloud API fake and the webhook builders, exercised over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.whatsapp_api import FakeWhatsAppAPI, SentMessage
from tests.fakes.whatsapp_webhooks import (
    PHONE_NUMBER_ID,
    SIGNATURE_HEADER,
    button_reply,
    combine,
    contacts_message,
    image_message,
    list_reply,
    location_message,
    post_webhook,
    sign,
    status_update,
    text_message,
    unsupported_message,
    verification_query,
)

SITI = "6281234567890"
JOHN = "6289876543210"

JSONDict = dict[str, Any]

pytestmark = pytest.mark.fake_api("whatsapp_api")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    token: str | None,
) -> tuple[int, JSONDict]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with session.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def _send(
    session: aiohttp.ClientSession,
    fake: FakeWhatsAppAPI,
    payload: JSONDict,
    *,
    to: str = SITI,
    token: str | None = None,
) -> tuple[int, JSONDict]:
    """Send like the bot does (``messaging_product`` and ``to`` added to ``payload``)."""
    body = {"messaging_product": "whatsapp", "to": to, **payload}
    return await _post(session, fake.messages_url, body, token or fake.access_token)


def _text(body: str) -> JSONDict:
    return {"type": "text", "text": {"body": body, "preview_url": False}}


def _buttons(titles: list[str], body: str = "Pilih satu", ids: list[str] | None = None) -> JSONDict:
    ids = ids if ids is not None else [f"b{n}" for n in range(len(titles))]
    buttons = [
        {"type": "reply", "reply": {"id": button_id, "title": title}}
        for button_id, title in zip(ids, titles, strict=True)
    ]
    interactive = {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}}
    return {"type": "interactive", "interactive": interactive}


def _list(rows_per_section: list[list[JSONDict]], body: str = "Pilih") -> JSONDict:
    sections = [{"title": f"Bagian {n}", "rows": rows} for n, rows in enumerate(rows_per_section)]
    interactive = {
        "type": "list",
        "body": {"text": body},
        "action": {"button": "Pilih", "sections": sections},
    }
    return {"type": "interactive", "interactive": interactive}


def _rows(count: int, start: int = 0) -> list[JSONDict]:
    return [{"id": f"r{n}", "title": f"Baris {n}"} for n in range(start, start + count)]


def _template(name: str = "notice", code: str = "id", text: str | None = None) -> JSONDict:
    template: JSONDict = {"name": name, "language": {"code": code}}
    if text is not None:
        template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": text}]}]
    return {"type": "template", "template": template}


def _error(body: JSONDict) -> JSONDict:
    error = body["error"]
    assert isinstance(error, dict)
    assert error["fbtrace_id"]
    return error


# ---------------------------------------------------------------------- sending


async def test_text_is_recorded(fake: FakeWhatsAppAPI, session: aiohttp.ClientSession) -> None:
    status, body = await _send(session, fake, _text("Halo Siti"))

    assert status == 200
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert body == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": SITI, "wa_id": SITI}],
        "messages": [{"id": wamid}],
    }
    [message] = fake.messages
    assert (message.to, message.type, message.id) == (SITI, "text", wamid)
    assert message.payload["text"]["body"] == "Halo Siti"
    assert fake.texts(SITI) == ["Halo Siti"]
    assert fake.sent_to(JOHN) == []
    assert fake.requests == [(f"/v21.0/{fake.phone_number_id}/messages", message.payload)]
    assert fake.refusals == []


async def test_message_ids_are_unique(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    for _ in range(5):
        await _send(session, fake, _text("x"))
    assert len({message.id for message in fake.messages}) == 5
    assert all(len(message.id) < 128 for message in fake.messages)


async def test_buttons_are_recorded_with_their_options(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    status, _ = await _send(session, fake, _buttons(["Ya", "Tidak", "x" * 20]))

    assert status == 200
    message = fake.last_message(SITI)
    assert message.text == "Pilih satu"
    assert message.interactive_type == "button"
    assert message.options() == [("b0", "Ya"), ("b1", "Tidak"), ("b2", "x" * 20)]
    assert fake.buttons(message) == message.options()


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (_buttons(["a", "b", "c", "d"]), "buttons count"),
        (_buttons([]), "buttons count"),
        (_buttons(["x" * 21]), "Button title length"),
        (_buttons(["Ya", "Ya"]), "not unique"),
        (_buttons(["Ya", "Tidak"], ids=["same", "same"]), "not unique"),
        (_buttons(["Ya"], ids=["i" * 257]), "Button id length"),
        (_buttons(["Ya"], body="b" * 1025), "Body text length"),
        (_list([_rows(6), _rows(5, start=6)]), "Total row count"),
        (_list([[{"id": "r", "title": "t" * 25}]]), "Row title length"),
        (_list([[{"id": "r", "title": "t", "description": "d" * 73}]]), "Row description"),
        (_list([[{"id": "i" * 201, "title": "t"}]]), "Row id length"),
        (_list([[{"id": "r", "title": "a"}, {"id": "r", "title": "b"}]]), "not unique"),
        (_list([[]]), "at least one row"),
        (_list([_rows(1)] * 11), "sections count"),
    ],
    ids=[
        "4-buttons",
        "0-buttons",
        "21-char-title",
        "duplicate-titles",
        "duplicate-ids",
        "long-button-id",
        "long-button-body",
        "11-rows",
        "25-char-row-title",
        "long-description",
        "long-row-id",
        "duplicate-row-ids",
        "empty-section",
        "11-sections",
    ],
)
async def test_invalid_interactive_is_refused(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession, payload: JSONDict, detail: str
) -> None:
    status, body = await _send(session, fake, payload)

    assert status == 400
    error = _error(body)
    assert error["code"] == 131009
    assert error["type"] == "OAuthException"
    assert error["message"] == "(#131009) Parameter value is not valid"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert detail in error["error_data"]["details"]
    assert fake.messages == []
    assert len(fake.requests) == 1
    assert [refusal.code for refusal in fake.invalid_requests()] == [131009]


async def test_list_limits_are_accepted_at_their_maximum(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    rows = [
        {"id": "i" * 199 + str(n), "title": f"{n:024d}", "description": "d" * 72} for n in range(4)
    ]
    payload = _list([rows, _rows(6, start=4)], body="b" * 4096)

    status, body = await _send(session, fake, payload)

    assert status == 200, body
    message = fake.last_message(SITI)
    assert message.interactive_type == "list"
    assert len(message.options()) == 10
    assert message.options()[4] == ("r4", "Baris 4")
    assert message.rows()[0]["description"] == "d" * 72


async def test_sections_need_titles_when_there_are_several(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    payload = _list([_rows(2), _rows(2, start=2)])
    del payload["interactive"]["action"]["sections"][1]["title"]
    status, body = await _send(session, fake, payload)
    assert status == 400
    assert _error(body)["code"] == 100

    single = _list([_rows(2)])
    del single["interactive"]["action"]["sections"][0]["title"]
    status, _ = await _send(session, fake, single)
    assert status == 200


@pytest.mark.parametrize(
    "change",
    [
        {"messaging_product": "sms"},
        {"to": "+6281234567890"},
        {"to": "0812"},
        {"to": 6281234567890},
        {"type": "image", "image": {"id": "1"}},
        {"text": {"body": ""}},
        {"text": {"body": "x" * 4097}},
        {"text": "halo"},
    ],
    ids=[
        "product",
        "plus-sign",
        "short-number",
        "number-not-string",
        "unsupported-type",
        "empty-text",
        "text-4097",
        "text-not-object",
    ],
)
async def test_malformed_sends_are_refused_with_code_100(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession, change: JSONDict
) -> None:
    body = {"messaging_product": "whatsapp", "to": SITI, **_text("halo"), **change}
    status, answer = await _post(session, fake.messages_url, body, fake.access_token)

    assert status == 400
    error = _error(answer)
    assert error["code"] == 100
    assert error["error_data"]["details"]
    assert fake.messages == []


async def test_text_of_4096_characters_is_accepted(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    status, _ = await _send(session, fake, _text("x" * 4096))
    assert status == 200


async def test_bad_or_missing_token_is_401(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    body = {"messaging_product": "whatsapp", "to": SITI, **_text("halo")}
    for token in ("WRONG", None):
        status, answer = await _post(session, fake.messages_url, body, token)
        assert status == 401
        error = _error(answer)
        assert error["code"] == 190
        assert error["type"] == "OAuthException"
        assert error["message"] == "Invalid OAuth access token."
    assert fake.messages == []
    assert len(fake.requests) == 2

    # Graph also takes the token as a query parameter.
    url = f"{fake.messages_url}?access_token={fake.access_token}"
    status, _ = await _post(session, url, body, None)
    assert status == 200


@pytest.mark.parametrize("path", ["/v21.0/999/messages", "/v1.0/1234567890/messages", "/v21.0/x"])
async def test_unknown_phone_number_or_version_is_400(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession, path: str
) -> None:
    body = {"messaging_product": "whatsapp", "to": SITI, **_text("halo")}
    status, answer = await _post(session, fake.base_url + path, body, fake.access_token)
    assert status == 400
    assert _error(answer)["code"] == 100
    assert fake.messages == []


async def test_mark_read_is_recorded_but_not_as_a_message(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC"}
    status, answer = await _post(session, fake.messages_url, body, fake.access_token)

    assert (status, answer) == (200, {"success": True})
    assert fake.read_ids == ["wamid.ABC"]
    assert fake.messages == []


# ---------------------------------------------------------------------- templates


async def test_template_is_recorded(fake: FakeWhatsAppAPI, session: aiohttp.ClientSession) -> None:
    status, _ = await _send(session, fake, _template(text="Ada kabar baru"))

    assert status == 200
    message = fake.last_message(SITI)
    assert message.text == "template:notice"
    assert message.template_parameters() == ["Ada kabar baru"]
    assert message.options() == []


async def test_unknown_template_is_refused_when_templates_are_listed(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.approved_templates = {("notice", "id")}

    status, body = await _send(session, fake, _template("notice", "en"))
    assert status == 400
    error = _error(body)
    assert error["code"] == 132001
    assert "does not exist" in error["error_data"]["details"]

    status, _ = await _send(session, fake, _template("notice", "id"))
    assert status == 200


@pytest.mark.parametrize("text", ["two\nlines", "tab\there", "five     spaces", ""])
async def test_template_parameter_text_is_checked(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession, text: str
) -> None:
    status, body = await _send(session, fake, _template(text=text))
    assert status == 400
    assert _error(body)["code"] == 100


# ---------------------------------------------------------------------- injected conditions


@pytest.mark.parametrize("code", [130429, 131056, 80007, 131047, 131026, 131048, 131000])
async def test_fail_next_answers_the_code_only_times_times(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession, code: int
) -> None:
    fake.fail_next(code, times=2)

    for _ in range(2):
        status, body = await _send(session, fake, _text("halo"))
        assert status == 400
        error = _error(body)
        assert error["code"] == code
        assert error["type"] == "OAuthException"
        assert error["message"].startswith(f"(#{code})")
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert error["error_data"]["details"]
    status, _ = await _send(session, fake, _text("halo"))

    assert status == 200
    assert len(fake.messages) == 1
    assert [refusal.injected for refusal in fake.refusals] == [True, True]
    assert fake.invalid_requests() == []


async def test_fail_next_for_one_recipient_and_custom_answer(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(131000, to=JOHN, http_status=503, message="Service unavailable")

    status, _ = await _send(session, fake, _text("untuk Siti"))
    assert status == 200
    status, body = await _send(session, fake, _text("untuk John"), to=JOHN)
    assert status == 503
    assert _error(body)["message"] == "Service unavailable"
    status, _ = await _send(session, fake, _text("untuk John"), to=JOHN)
    assert status == 200


async def test_fail_next_leaves_mark_read_alone(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(131000)
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.A"}
    status, _ = await _post(session, fake.messages_url, body, fake.access_token)
    assert status == 200
    status, _ = await _send(session, fake, _text("halo"))
    assert status == 400


async def test_disconnect_next_drops_the_connection(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.disconnect_next()

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _send(session, fake, _text("halo"))
    assert fake.messages == []
    status, _ = await _send(session, fake, _text("halo"))
    assert status == 200


async def test_outside_window_refuses_free_form_but_not_templates(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.outside_window.add(SITI)

    for payload in (_text("halo"), _buttons(["Ya"])):
        status, body = await _send(session, fake, payload)
        assert status == 400
        error = _error(body)
        assert error["code"] == 131047
        assert "Re-engagement message" in error["message"]
    status, _ = await _send(session, fake, _template())
    assert status == 200
    status, _ = await _send(session, fake, _text("halo"), to=JOHN)
    assert status == 200

    assert fake.texts(SITI) == ["template:notice"]
    assert fake.texts(JOHN) == ["halo"]


async def test_rate_limit_counts_violations(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.enforce_rate_limit(2)
    fake.fail_next(131056)
    results: list[tuple[int, int | None]] = []
    for n in range(6):
        status, body = await _send(session, fake, _text(f"pesan {n}"), to=[SITI, JOHN][n % 2])
        results.append((status, body["error"]["code"] if status != 200 else None))

    # The injected error comes first and is not a violation; then two sends fit the second.
    assert results[:3] == [(400, 131056), (200, None), (200, None)]
    assert results[3:] == [(400, 130429)] * 3
    assert fake.rate_limit_violations == 3
    assert len(fake.messages) == 2

    fake.enforce_rate_limit(None)
    assert fake.rate_limit_violations == 0
    status, _ = await _send(session, fake, _text("bebas"))
    assert status == 200


async def test_rate_limit_window_slides(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.enforce_rate_limit(20)  # 20 in any second: one window of 1 s
    for _ in range(20):
        assert (await _send(session, fake, _text("x")))[0] == 200
    assert (await _send(session, fake, _text("x")))[0] == 400
    await asyncio.sleep(1.0 - (time.monotonic() - fake.messages[0].at) + 0.01)
    assert (await _send(session, fake, _text("x")))[0] == 200
    assert fake.rate_limit_violations == 1


async def test_response_delay_slows_sends_only(
    fake: FakeWhatsAppAPI, session: aiohttp.ClientSession
) -> None:
    fake.response_delay = 0.2

    started = time.monotonic()
    await _send(session, fake, _text("halo"))
    assert time.monotonic() - started >= 0.2

    started = time.monotonic()
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.A"}
    await _post(session, fake.messages_url, body, fake.access_token)
    assert time.monotonic() - started < 0.2


async def test_wait_for_messages(fake: FakeWhatsAppAPI, session: aiohttp.ClientSession) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await _send(session, fake, _text("satu"))
        await _send(session, fake, _text("dua"), to=JOHN)

    task = asyncio.create_task(later())
    messages = await fake.wait_for_messages(2, timeout=2.0)
    await task

    assert [message.text for message in messages] == ["satu", "dua"]
    assert [m.text for m in await fake.wait_for_messages(1, to=JOHN)] == ["dua"]
    with pytest.raises(AssertionError, match="expected at least 3"):
        await fake.wait_for_messages(3, timeout=0.05)


def test_sent_message_helpers_without_server() -> None:
    message = SentMessage(to=SITI, type="text", payload=_text("hai"), id="wamid.X", at=0.0)
    assert message.text == "hai"
    assert message.options() == []
    assert message.rows() == []
    assert message.interactive_type is None


# ---------------------------------------------------------------------- webhooks


def test_sign_matches_hmac_sha256() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    expected = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert sign(body, "app-secret") == f"sha256={expected}"
    # RFC 4231, test case 2.
    assert sign(b"what do ya want for nothing?", "Jefe") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def _value(envelope: JSONDict) -> JSONDict:
    assert envelope["object"] == "whatsapp_business_account"
    [entry] = envelope["entry"]
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"]["phone_number_id"] == PHONE_NUMBER_ID
    assert value["metadata"]["display_phone_number"]
    assert isinstance(value, dict)
    return value


def _message(envelope: JSONDict, sender: str = SITI) -> JSONDict:
    value = _value(envelope)
    assert value["contacts"] == [{"profile": {"name": "Siti"}, "wa_id": sender}]
    [message] = value["messages"]
    assert message["from"] == sender
    assert message["id"].startswith("wamid.")
    assert isinstance(message["timestamp"], str)
    assert message["timestamp"].isdigit()
    assert isinstance(message, dict)
    return message


def test_text_message_envelope() -> None:
    before = int(time.time())
    message = _message(text_message(SITI, "halo"))
    assert message["type"] == "text"
    assert message["text"] == {"body": "halo"}
    assert before <= int(message["timestamp"]) <= int(time.time())

    custom = text_message(
        SITI, "x", phone_number_id="42", name="Budi", message_id="wamid.1", timestamp="100"
    )
    value = custom["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == "42"
    assert value["contacts"][0]["profile"]["name"] == "Budi"
    assert value["messages"][0]["id"] == "wamid.1"
    assert value["messages"][0]["timestamp"] == "100"
    assert _message(text_message(SITI, "a"))["id"] != _message(text_message(SITI, "a"))["id"]


def test_interactive_reply_envelopes() -> None:
    button = _message(button_reply(SITI, "ctx|yes", "Ya", context_id="wamid.OUT"))
    assert button["type"] == "interactive"
    assert button["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "ctx|yes", "title": "Ya"},
    }
    assert button["context"]["id"] == "wamid.OUT"

    row = _message(list_reply(SITI, "ctx|3", "Beras", "5 kg"))
    assert row["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "ctx|3", "title": "Beras", "description": "5 kg"},
    }
    assert "description" not in _message(list_reply(SITI, "a", "b"))["interactive"]["list_reply"]


def test_location_image_and_contacts_envelopes() -> None:
    location = _message(location_message(SITI, -6.2, 106.8, name="Posko", address="Jl. A"))
    assert location["type"] == "location"
    assert location["location"] == {
        "latitude": -6.2,
        "longitude": 106.8,
        "name": "Posko",
        "address": "Jl. A",
    }
    assert _message(location_message(SITI, 1.0, 2.0))["location"] == {
        "latitude": 1.0,
        "longitude": 2.0,
    }

    image = _message(image_message(SITI, "987654", caption="bukti"))
    assert image["type"] == "image"
    assert image["image"]["id"] == "987654"
    assert image["image"]["mime_type"] == "image/jpeg"
    assert image["image"]["caption"] == "bukti"

    card = _message(contacts_message(SITI, "+62 812-3456-7890", "Budi Santoso"))
    assert card["type"] == "contacts"
    [contact] = card["contacts"]
    assert contact["name"]["formatted_name"] == "Budi Santoso"
    assert contact["phones"] == [
        {"phone": "+62 812-3456-7890", "wa_id": "6281234567890", "type": "CELL"}
    ]
    hidden = _message(contacts_message(SITI, "021 555", "Kantor", on_whatsapp=False))
    assert "wa_id" not in hidden["contacts"][0]["phones"][0]


def test_unsupported_envelopes() -> None:
    sticker = _message(unsupported_message(SITI))
    assert sticker["type"] == "sticker"
    assert sticker["sticker"]["mime_type"] == "image/webp"
    assert sticker["sticker"]["id"]

    unsupported = _message(unsupported_message(SITI, type="unsupported"))
    assert unsupported["type"] == "unsupported"
    assert unsupported["errors"][0]["code"] == 131051


def test_status_envelopes() -> None:
    delivered = _value(status_update(SITI, "wamid.OUT", "delivered", timestamp="123"))
    assert "messages" not in delivered
    assert "contacts" not in delivered
    [status] = delivered["statuses"]
    assert status["id"] == "wamid.OUT"
    assert status["status"] == "delivered"
    assert status["timestamp"] == "123"
    assert status["recipient_id"] == SITI
    assert "errors" not in status

    failed = _value(status_update(SITI, "wamid.OUT", "failed", errors=[131047]))
    [error] = failed["statuses"][0]["errors"]
    assert error["code"] == 131047
    assert error["title"] == "Re-engagement message"

    default = _value(status_update(SITI, "wamid.OUT", "failed"))
    assert default["statuses"][0]["errors"][0]["code"] == 131000
    custom = _value(status_update(SITI, "w", "failed", errors=[{"code": 1, "title": "t"}]))
    assert custom["statuses"][0]["errors"] == [{"code": 1, "title": "t"}]


def test_combine_batches_messages_and_statuses() -> None:
    first = text_message(SITI, "satu")
    second = text_message(SITI, "dua")
    third = text_message(JOHN, "tiga", name="John")
    status = status_update(SITI, "wamid.OUT", "read")

    combined = combine(first, second, third, status)

    value = _value(combined)
    assert [m["text"]["body"] for m in value["messages"]] == ["satu", "dua", "tiga"]
    assert [c["wa_id"] for c in value["contacts"]] == [SITI, JOHN]
    assert [s["status"] for s in value["statuses"]] == ["read"]
    # The inputs are left as they were.
    assert len(_value(first)["messages"]) == 1

    other = text_message(SITI, "lain", phone_number_id="999")
    assert len(combine(first, other)["entry"][0]["changes"]) == 2


def test_verification_query() -> None:
    assert verification_query("tok", "12345") == {
        "hub.mode": "subscribe",
        "hub.verify_token": "tok",
        "hub.challenge": "12345",
    }
    assert verification_query("tok", "1", mode="unsubscribe")["hub.mode"] == "unsubscribe"


async def test_post_webhook_signs_the_raw_body(session: aiohttp.ClientSession) -> None:
    seen: list[tuple[bytes, str | None, str]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((body, request.headers.get(SIGNATURE_HEADER), request.content_type))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
    try:
        payload = text_message(SITI, "halo")
        assert await post_webhook(session, url, payload, "secret") == (200, "ok")
        assert await post_webhook(session, url, b"{not json", None) == (200, "ok")
        await post_webhook(session, url, payload, "secret", signature="sha256=bad")
    finally:
        await runner.cleanup()

    body, signature, content_type = seen[0]
    assert json.loads(body) == payload
    assert body == json.dumps(payload).encode()
    assert signature == sign(body, "secret")
    assert content_type == "application/json"
    assert seen[1] == (b"{not json", None, "application/json")
    assert seen[2][1] == "sha256=bad"
