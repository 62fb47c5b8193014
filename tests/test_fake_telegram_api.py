"""The Telegram Bot API fake, exercised by the real python-telegram-bot (no mocks)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from tests.fakes.telegram_api import (
    FakeTelegramAPI,
    UploadedFile,
    decode_form_value,
    post_webhook,
)
from tests.fakes.telegram_updates import TgUser, UpdateFactory
from tests.fakes.traffic import RateWindow

AnyApp = Application[Any, Any, Any, Any, Any, Any]

SITI = TgUser(id=111, first_name="Siti", language_code="id", username="siti")
JOHN = TgUser(id=222, first_name="John", language_code="en")
GROUP_ID = -100123


@pytest.fixture
async def app(fake: FakeTelegramAPI) -> AsyncIterator[AnyApp]:
    application = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .build()
    )
    await application.initialize()
    try:
        yield application
    finally:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()


@pytest.fixture
def updates() -> UpdateFactory:
    return UpdateFactory()


async def _raw_call(fake: FakeTelegramAPI, path: str, **kwargs: Any) -> tuple[int, Any]:
    """Call the fake without PTB (to check envelopes and status codes)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{fake.port}{path}", **kwargs) as response,
    ):
        return response.status, await response.json()


async def _send(fake: FakeTelegramAPI, chat_id: int, text: str = "halo") -> tuple[int, Any]:
    """``sendMessage`` without PTB; returns the HTTP status and the JSON body."""
    return await _raw_call(
        fake, f"/bot{fake.token}/sendMessage", json={"chat_id": chat_id, "text": text}
    )


# ---------------------------------------------------------------------- basics


async def test_initialize_calls_get_me(app: AnyApp, fake: FakeTelegramAPI) -> None:
    assert app.bot.id == 123456
    assert app.bot.username == "gotong_test_bot"
    assert app.bot.bot.can_join_groups is True
    assert fake.calls[0] == ("getMe", {})


async def test_wrong_token_and_unknown_method_answer_like_telegram(fake: FakeTelegramAPI) -> None:
    status, body = await _raw_call(fake, "/bot42:wrong-token/getMe")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})

    status, body = await _raw_call(fake, "/botnot-a-token/getMe")
    assert (status, body["error_code"]) == (404, 404)

    status, body = await _raw_call(fake, f"/bot{fake.token}/fooBar")
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}


async def test_json_body_and_case_insensitive_method(fake: FakeTelegramAPI) -> None:
    status, body = await _raw_call(
        fake, f"/bot{fake.token}/sendmessage", json={"chat_id": 5, "text": "123"}
    )
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["text"] == "123"
    assert fake.calls[-1] == ("sendmessage", {"chat_id": 5, "text": "123"})


async def test_unknown_method_through_ptb(app: AnyApp) -> None:
    with pytest.raises(EndPointNotFound):
        await app.bot.do_api_request("fooBar")


# ---------------------------------------------------------------------- sending and editing


async def test_send_message_with_inline_keyboard(app: AnyApp, fake: FakeTelegramAPI) -> None:
    markup = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Ya", callback_data="yes")],
            [InlineKeyboardButton("Tidak", callback_data="no")],
        ]
    )
    message = await app.bot.send_message(chat_id=SITI.id, text="Lanjut?", reply_markup=markup)

    assert message.message_id == 1
    assert message.chat.id == SITI.id
    assert message.chat.type == "private"
    assert message.from_user is not None and message.from_user.id == app.bot.id
    assert message.reply_markup == markup

    (sent,) = fake.messages(SITI.id)
    assert sent.text == "Lanjut?"
    assert sent.buttons() == [("Ya", "yes"), ("Tidak", "no")]
    assert fake.texts(SITI.id) == ["Lanjut?"]
    params = fake.calls_to("sendMessage")[0]
    assert params["chat_id"] == SITI.id  # JSON fields come back decoded
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "yes"

    second = await app.bot.send_message(chat_id=SITI.id, text="lagi")
    assert second.message_id == 2
    assert (await app.bot.send_message(chat_id=JOHN.id, text="hi")).message_id == 1


async def test_reply_keyboard_is_recorded_but_not_returned(
    app: AnyApp, fake: FakeTelegramAPI
) -> None:
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton("Kirim nomor", request_contact=True)], ["Batal"]],
        one_time_keyboard=True,
    )
    message = await app.bot.send_message(SITI.id, "Bagikan nomor HP", reply_markup=keyboard)

    assert message.reply_markup is None  # Telegram only echoes inline keyboards
    sent = fake.messages(SITI.id)[0]
    assert sent.reply_keyboard() == [
        {"text": "Kirim nomor", "request_contact": True},
        {"text": "Batal"},
    ]
    assert sent.buttons() == []


async def test_edit_message_text_updates_in_place(app: AnyApp, fake: FakeTelegramAPI) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])
    sent = await app.bot.send_message(SITI.id, "Menunggu...", reply_markup=markup)

    edited = await app.bot.edit_message_text(
        "Selesai", chat_id=SITI.id, message_id=sent.message_id, reply_markup=markup
    )
    assert not isinstance(edited, bool)
    assert edited.text == "Selesai"
    assert edited.edit_date is not None
    (message,) = fake.messages(SITI.id)
    assert (message.text, message.edits, message.buttons()) == ("Selesai", 1, [("OK", "ok")])

    with pytest.raises(BadRequest, match="not modified"):
        await app.bot.edit_message_text(
            "Selesai", chat_id=SITI.id, message_id=sent.message_id, reply_markup=markup
        )

    # Like Telegram, an edit without reply_markup removes the inline keyboard.
    await app.bot.edit_message_text("Selesai", chat_id=SITI.id, message_id=sent.message_id)
    assert fake.messages(SITI.id)[0].buttons() == []
    assert fake.messages(SITI.id)[0].edits == 2

    with pytest.raises(BadRequest, match="not found"):
        await app.bot.edit_message_text("x", chat_id=SITI.id, message_id=99)


async def test_edit_message_reply_markup(app: AnyApp, fake: FakeTelegramAPI) -> None:
    sent = await app.bot.send_message(SITI.id, "Pilih")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])

    await app.bot.edit_message_reply_markup(SITI.id, sent.message_id, reply_markup=markup)
    assert fake.messages(SITI.id)[0].buttons() == [("A", "a")]

    with pytest.raises(BadRequest, match="not modified"):
        await app.bot.edit_message_reply_markup(SITI.id, sent.message_id, reply_markup=markup)

    await app.bot.edit_message_reply_markup(SITI.id, sent.message_id)
    assert fake.messages(SITI.id)[0].buttons() == []


async def test_delete_message(app: AnyApp, fake: FakeTelegramAPI) -> None:
    sent = await app.bot.send_message(SITI.id, "sementara")
    assert await app.bot.delete_message(SITI.id, sent.message_id) is True
    assert fake.messages(SITI.id)[0].deleted
    with pytest.raises(BadRequest, match="not found"):
        await app.bot.delete_message(SITI.id, sent.message_id)


async def test_add_method_and_multipart_upload(app: AnyApp, fake: FakeTelegramAPI) -> None:
    async def send_photo(params: dict[str, Any]) -> dict[str, Any]:
        return {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": params["chat_id"], "type": "private"},
            "caption": params.get("caption"),
        }

    fake.add_method("sendPhoto", send_photo)
    message = await app.bot.send_photo(SITI.id, photo=b"\x89PNG fake", caption="foto")

    assert message.caption == "foto"
    params = fake.calls_to("sendPhoto")[0]
    assert params["chat_id"] == SITI.id
    assert isinstance(params["photo"], UploadedFile)
    assert params["photo"].data == b"\x89PNG fake"


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "error"),
    [("   ", "text is empty"), ("x" * 4097, "too long")],
)
async def test_send_message_text_is_validated(app: AnyApp, text: str, error: str) -> None:
    with pytest.raises(BadRequest, match=error):
        await app.bot.send_message(SITI.id, text)


async def test_longest_message_is_accepted(app: AnyApp, fake: FakeTelegramAPI) -> None:
    await app.bot.send_message(SITI.id, "  " + "x" * 4096 + "\n")
    assert len(fake.texts(SITI.id)) == 1


async def test_callback_data_over_64_bytes_is_refused(app: AnyApp, fake: FakeTelegramAPI) -> None:
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await app.bot.send_message(SITI.id, "hi", reply_markup=too_long)

    just_fits = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 32)]])
    await app.bot.send_message(SITI.id, "hi", reply_markup=just_fits)
    assert fake.messages(SITI.id)[0].buttons() == [("x", "é" * 32)]


async def test_chat_id_is_required(fake: FakeTelegramAPI) -> None:
    status, body = await _raw_call(fake, f"/bot{fake.token}/sendMessage", data={"text": "hi"})
    assert status == 400
    assert body["description"] == "Bad Request: chat_id is empty"


async def test_html_is_parsed_like_telegram(app: AnyApp, fake: FakeTelegramAPI) -> None:
    message = await app.bot.send_message(
        SITI.id, "<b>Halo</b> &lt;Siti&gt;", parse_mode=ParseMode.HTML
    )
    assert message.text == "Halo <Siti>"
    assert fake.texts(SITI.id) == ["<b>Halo</b> &lt;Siti&gt;"]  # as the bot sent it

    with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
        await app.bot.send_message(SITI.id, "a<br>b", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="end tag"):
        await app.bot.send_message(SITI.id, "<b>bold", parse_mode=ParseMode.HTML)


# ---------------------------------------------------------------------- injected errors


async def test_fail_next_429_raises_retry_after(
    app: AnyApp, fake: FakeTelegramAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PTB 22.8 warns (PTBDeprecationWarning, an error here) whenever it builds a RetryAfter
    # unless timedelta time periods are opted in.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    fake.fail_next(
        "sendMessage",
        error_code=429,
        description="Too Many Requests: retry after 7",
        retry_after=7,
    )
    with pytest.raises(RetryAfter) as raised:
        await app.bot.send_message(SITI.id, "hi")
    assert raised.value.retry_after == dt.timedelta(seconds=7)

    await app.bot.send_message(SITI.id, "hi")  # only the next call failed
    assert fake.texts(SITI.id) == ["hi"]


async def test_fail_next_403_for_one_chat(app: AnyApp, fake: FakeTelegramAPI) -> None:
    fake.fail_next(
        "sendMessage",
        error_code=403,
        description="Forbidden: bot was blocked by the user",
        chat_id=JOHN.id,
        times=2,
    )
    await app.bot.send_message(SITI.id, "ok")
    for _ in range(2):
        with pytest.raises(Forbidden, match="blocked"):
            await app.bot.send_message(JOHN.id, "hi")
    await app.bot.send_message(JOHN.id, "hi")
    assert fake.texts(JOHN.id) == ["hi"]


async def test_rate_limits_answer_429(
    app: AnyApp, fake: FakeTelegramAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # see test_fail_next_429_raises_retry_after
    fake.enforce_rate_limits(per_chat_per_second=1.0, overall_per_second=None)
    await app.bot.send_message(SITI.id, "satu")
    with pytest.raises(RetryAfter):
        await app.bot.send_message(SITI.id, "dua")
    await app.bot.send_message(JOHN.id, "other chat is fine")

    fake.enforce_rate_limits(per_chat_per_second=None, overall_per_second=2.0)
    await app.bot.send_message(SITI.id, "a")
    await app.bot.send_message(JOHN.id, "b")
    with pytest.raises(RetryAfter):
        await app.bot.send_message(SITI.id, "c")


# ---------------------------------------------------------------------- flood limits


def test_rate_window_capacity_and_window() -> None:
    per_chat = RateWindow.from_rate(1.0)
    assert (per_chat.capacity, per_chat.window) == (1, 1.0)
    per_chat.hit(100.0)
    assert per_chat.retry_after(100.999) == 1  # less than 1.0 s after the accepted one
    assert per_chat.retry_after(101.0) is None

    overall = RateWindow.from_rate(30.0)
    assert (overall.capacity, overall.window) == (30, 1.0)
    group = RateWindow.from_rate(20.0, 60.0)
    assert (group.capacity, group.window) == (20, 60.0)
    for second in range(20):
        group.hit(float(second))
    assert group.retry_after(30.0) == 30  # the first hit leaves the window at 60 s
    assert group.retry_after(60.0) is None
    slow = RateWindow.from_rate(0.5)
    assert (slow.capacity, slow.window) == (1, 2.0)

    window = RateWindow(3, 10.0)
    for at in (0.0, 1.0, 2.0):
        assert window.retry_after(at) is None
        window.hit(at)
    assert window.retry_after(9.5) == 1
    with pytest.raises(ValueError):
        RateWindow(0, 1.0)
    with pytest.raises(ValueError):
        RateWindow.from_rate(0.0)


async def test_per_chat_violations_are_counted(fake: FakeTelegramAPI) -> None:
    fake.enforce_rate_limits(per_chat_per_second=1.0, overall_per_second=None)
    assert (fake.rate_limit_violations, fake.violations_by_chat) == (0, {})

    assert (await _send(fake, SITI.id, "satu"))[0] == 200
    for text in ("dua", "tiga"):
        status, body = await _send(fake, SITI.id, text)
        assert status == 429
        assert body["parameters"] == {"retry_after": 1}
        assert body["description"] == "Too Many Requests: retry after 1"
    assert (await _send(fake, JOHN.id, "other chat"))[0] == 200
    status, _ = await _send(fake, JOHN.id, "again")
    assert status == 429

    assert fake.rate_limit_violations == 3
    assert fake.violations_by_chat == {SITI.id: 2, JOHN.id: 1}
    assert fake.texts(SITI.id) == ["satu"]
    assert len(fake.calls_to("sendMessage")) == 5  # refused calls are recorded too


async def test_overall_violations_are_counted_and_reset(fake: FakeTelegramAPI) -> None:
    fake.enforce_rate_limits(per_chat_per_second=None, overall_per_second=2.0)
    assert (await _send(fake, SITI.id))[0] == 200
    assert (await _send(fake, JOHN.id))[0] == 200
    assert (await _send(fake, 333))[0] == 429
    assert (await _send(fake, SITI.id))[0] == 429
    assert fake.rate_limit_violations == 2
    assert fake.violations_by_chat == {333: 1, SITI.id: 1}

    fake.enforce_rate_limits(per_chat_per_second=None, overall_per_second=2.0)
    assert (fake.rate_limit_violations, fake.violations_by_chat) == (0, {})
    assert (await _send(fake, 333))[0] == 200  # the windows were reset too


async def test_injected_failures_are_not_violations(fake: FakeTelegramAPI) -> None:
    fake.enforce_rate_limits()
    fake.fail_next(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 5", retry_after=5
    )
    status, body = await _send(fake, SITI.id)
    assert (status, body["parameters"]) == (429, {"retry_after": 5})
    assert (fake.rate_limit_violations, fake.violations_by_chat) == (0, {})

    assert (await _send(fake, SITI.id))[0] == 200  # the injected refusal used no quota
    assert (await _send(fake, SITI.id))[0] == 429
    assert (fake.rate_limit_violations, fake.violations_by_chat) == (1, {SITI.id: 1})


async def test_group_window_replaces_the_per_chat_limit(fake: FakeTelegramAPI) -> None:
    fake.enforce_rate_limits(
        per_chat_per_second=1.0, overall_per_second=None, per_group_per_minute=3
    )
    for number in range(3):  # faster than 1/s: the per-chat limit is for private chats
        assert (await _send(fake, GROUP_ID, f"pesan {number}"))[0] == 200
    status, body = await _send(fake, GROUP_ID, "pesan 3")
    assert status == 429
    assert 59 <= body["parameters"]["retry_after"] <= 60  # until the first one is 60 s old
    assert (await _send(fake, -42, "another group"))[0] == 200

    assert (await _send(fake, SITI.id))[0] == 200
    assert (await _send(fake, SITI.id))[0] == 429
    assert fake.violations_by_chat == {GROUP_ID: 1, SITI.id: 1}
    assert fake.texts(GROUP_ID) == ["pesan 0", "pesan 1", "pesan 2"]

    fake.enforce_rate_limits(per_chat_per_second=1.0, overall_per_second=None)
    for _ in range(3):  # the default group limit is 20 per minute
        assert (await _send(fake, GROUP_ID))[0] == 200

    fake.enforce_rate_limits(overall_per_second=3.0, per_group_per_minute=None)
    for _ in range(3):  # no group limit, but the overall limit still counts group messages
        assert (await _send(fake, GROUP_ID))[0] == 200
    assert (await _send(fake, GROUP_ID))[0] == 429


async def test_call_times_measure_the_wait_after_a_429(
    app: AnyApp, fake: FakeTelegramAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # see test_fail_next_429_raises_retry_after
    fake.fail_next("sendMessage", error_code=429, description="Too Many Requests", retry_after=1)
    with pytest.raises(RetryAfter):
        await app.bot.send_message(SITI.id, "halo")
    refused_at = fake.call_times[-1]
    await asyncio.sleep(0.05)
    await app.bot.send_message(SITI.id, "halo")
    (message,) = fake.messages(SITI.id)
    assert message.sent_at - refused_at >= 0.05


# ---------------------------------------------------------------------- timing and connections


async def test_call_times_and_sent_at(app: AnyApp, fake: FakeTelegramAPI) -> None:
    before = time.monotonic()
    await app.bot.send_message(SITI.id, "satu")
    await app.bot.send_chat_action(SITI.id, "typing")
    await app.bot.send_message(JOHN.id, "dua")
    after = time.monotonic()

    assert len(fake.call_times) == len(fake.calls)
    assert fake.call_times == sorted(fake.call_times)
    assert before <= fake.call_times[-3] and fake.call_times[-1] <= after
    first, second = fake.all_messages()
    assert fake.call_times[-3] <= first.sent_at <= fake.call_times[-2]
    assert fake.call_times[-1] <= second.sent_at <= after


async def test_all_messages_in_acceptance_order(app: AnyApp, fake: FakeTelegramAPI) -> None:
    assert fake.all_messages() == []
    sent = await app.bot.send_message(SITI.id, "a")
    await app.bot.send_message(JOHN.id, "b")
    await app.bot.send_message(GROUP_ID, "c")
    await app.bot.send_message(SITI.id, "d")
    await app.bot.delete_message(SITI.id, sent.message_id)
    await app.bot.edit_message_text("b!", chat_id=JOHN.id, message_id=1)

    assert [(m.chat_id, m.text, m.deleted) for m in fake.all_messages()] == [
        (SITI.id, "a", True),
        (JOHN.id, "b!", False),
        (GROUP_ID, "c", False),
        (SITI.id, "d", False),
    ]
    assert fake.all_messages()[0] is fake.messages(SITI.id)[0]


async def test_fail_next_server_errors(app: AnyApp, fake: FakeTelegramAPI) -> None:
    fake.fail_next("sendMessage", error_code=502, description="Bad Gateway")
    fake.fail_next("getMe", error_code=500, description="Internal Server Error")
    status, body = await _send(fake, SITI.id)
    assert (status, body) == (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
    status, body = await _raw_call(fake, f"/bot{fake.token}/getMe")
    assert (status, body["error_code"], body["description"]) == (500, 500, "Internal Server Error")

    fake.fail_next("sendMessage", error_code=500, description="Internal Server Error", times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await app.bot.send_message(SITI.id, "halo")
    await app.bot.send_message(SITI.id, "halo")
    assert fake.texts(SITI.id) == ["halo"]
    assert fake.rate_limit_violations == 0


async def test_reset_connection_next_drops_the_connection(
    fake: FakeTelegramAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    fake.reset_connection_next("sendMessage")
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await _send(fake, SITI.id, "lost")
    status, _ = await _send(fake, SITI.id, "arrives")
    assert status == 200

    assert [params["text"] for params in fake.calls_to("sendMessage")] == ["lost", "arrives"]
    assert fake.texts(SITI.id) == ["arrives"]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_reset_connection_next_through_ptb(app: AnyApp, fake: FakeTelegramAPI) -> None:
    fake.reset_connection_next("sendMessage", times=2, chat_id=JOHN.id)
    await app.bot.send_message(SITI.id, "not affected")
    for _ in range(2):
        with pytest.raises(NetworkError):
            await app.bot.send_message(JOHN.id, "lost")
    await app.bot.send_message(JOHN.id, "arrives")
    assert fake.texts(JOHN.id) == ["arrives"]
    assert fake.texts(SITI.id) == ["not affected"]
    assert len(fake.calls_to("sendMessage")) == 4


async def test_reset_connection_and_failures_keep_their_order(fake: FakeTelegramAPI) -> None:
    fake.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked")
    fake.reset_connection_next("sendMessage")
    assert (await _send(fake, SITI.id))[0] == 403
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await _send(fake, SITI.id)
    assert (await _send(fake, SITI.id))[0] == 200
    with pytest.raises(ValueError):
        fake.reset_connection_next("sendMessage", times=0)


async def test_response_delay_keeps_the_request_in_flight(
    app: AnyApp, fake: FakeTelegramAPI
) -> None:
    fake.response_delay = 0.2
    started = time.monotonic()
    sending = asyncio.create_task(app.bot.send_message(SITI.id, "pelan"))
    (message,) = await fake.wait_for_messages(SITI.id, 1, timeout=1)
    assert not sending.done()  # delivered, but not answered yet
    answered = await asyncio.wait_for(sending, 1)
    assert answered.text == "pelan"
    assert time.monotonic() - started >= 0.2
    assert message.sent_at - started < 0.2

    fake.response_delay = 0.0
    started = time.monotonic()
    await app.bot.send_chat_action(SITI.id, "typing")  # only sendMessage is delayed anyway
    await app.bot.send_message(SITI.id, "cepat")
    assert time.monotonic() - started < 0.2


async def test_response_delay_message_counts_when_the_client_gives_up(
    fake: FakeTelegramAPI,
) -> None:
    fake.response_delay = 5.0
    sending = asyncio.create_task(_send(fake, SITI.id, "terkirim"))
    await fake.wait_for_messages(SITI.id, 1, timeout=1)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert fake.texts(SITI.id) == ["terkirim"]

    fake.response_delay = 0.0
    assert (await _send(fake, SITI.id, "lagi"))[0] == 200


# ---------------------------------------------------------------------- commands and webhook


async def test_set_my_commands_per_language_and_scope(app: AnyApp, fake: FakeTelegramAPI) -> None:
    await app.bot.set_my_commands([BotCommand("start", "Mulai")], language_code="id")
    await app.bot.set_my_commands([("start", "Start"), ("help", "Help")])
    await app.bot.set_my_commands(
        [BotCommand("admin", "Admin")], scope=BotCommandScopeChat(SITI.id)
    )

    assert fake.commands[("default", "id")] == [{"command": "start", "description": "Mulai"}]
    assert [c["command"] for c in fake.commands[("default", "")]] == ["start", "help"]
    assert fake.commands[(f"chat:{SITI.id}", "")] == [{"command": "admin", "description": "Admin"}]

    fetched = await app.bot.get_my_commands(language_code="id")
    assert fetched == (BotCommand("start", "Mulai"),)

    await app.bot.delete_my_commands(language_code="id")
    assert ("default", "id") not in fake.commands
    assert await app.bot.get_my_commands(language_code="id") == ()

    with pytest.raises(BadRequest):
        await app.bot.set_my_commands([BotCommand("Bad-Command", "x")])


async def test_webhook_set_info_delete(app: AnyApp, fake: FakeTelegramAPI) -> None:
    await app.bot.set_webhook(
        "https://example.org/tg", secret_token="s3cret", allowed_updates=["message"]
    )
    assert fake.webhook is not None
    assert fake.webhook["url"] == "https://example.org/tg"
    assert fake.webhook["secret_token"] == "s3cret"
    assert fake.webhook["allowed_updates"] == ["message"]

    info = await app.bot.get_webhook_info()
    assert info.url == "https://example.org/tg"
    assert info.allowed_updates == ("message",)

    with pytest.raises(Conflict):
        await app.bot.get_updates(timeout=0)

    assert await app.bot.delete_webhook() is True
    assert fake.webhook is None
    assert (await app.bot.get_webhook_info()).url == ""

    with pytest.raises(BadRequest, match=r"(?i)secret token"):
        await app.bot.set_webhook("https://example.org/tg", secret_token="no spaces!")


async def test_post_webhook_sends_json_and_secret_header(updates: UpdateFactory) -> None:
    received: list[tuple[str | None, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response(text="ok")

    webhook_app = web.Application()
    webhook_app.router.add_post("/hook", hook)
    runner = web.AppRunner(webhook_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        update = updates.text(SITI, "halo")
        assert await post_webhook(f"http://127.0.0.1:{port}/hook", update, "s3cret") == (
            200,
            "ok",
        )
        await post_webhook(f"http://127.0.0.1:{port}/hook", update, None)
    finally:
        await runner.cleanup()
    assert received == [("s3cret", update), (None, update)]


# ---------------------------------------------------------------------- getUpdates and polling


async def test_get_updates_offset_limit_and_confirmation(
    app: AnyApp, fake: FakeTelegramAPI, updates: UpdateFactory
) -> None:
    for word in ("a", "b", "c"):
        fake.push_update(updates.text(SITI, word))

    first_two = await app.bot.get_updates(timeout=0, limit=2)
    assert [u.update_id for u in first_two] == [1000, 1001]
    assert len(await app.bot.get_updates(timeout=0)) == 3  # nothing confirmed yet

    rest = await app.bot.get_updates(offset=1002, timeout=0)
    assert [u.message.text for u in rest if u.message] == ["c"]
    assert [u["update_id"] for u in fake.pending_updates()] == [1002]

    assert await app.bot.get_updates(offset=1003, timeout=0) == ()
    assert fake.pending_updates() == []

    fake.push_update({"message": updates.text(SITI, "d")["message"]})  # update_id filled in
    (late,) = await app.bot.get_updates(offset=1003, timeout=0)
    assert late.update_id == 1003


async def test_long_poll_wakes_on_push(
    app: AnyApp, fake: FakeTelegramAPI, updates: UpdateFactory
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(app.bot.get_updates(timeout=5))
    await fake.wait_for_calls("getUpdates", 1)
    assert not poll.done()
    fake.push_update(updates.text(SITI, "halo"))
    result = await asyncio.wait_for(poll, 1)
    assert [u.message.text for u in result if u.message] == ["halo"]
    assert loop.time() - started < 1


async def test_opt_in_update_types_need_allowed_updates(
    app: AnyApp, fake: FakeTelegramAPI, updates: UpdateFactory
) -> None:
    fake.push_update(updates.raw(message_reaction={"chat": {"id": 1, "type": "private"}}))
    fake.push_update(updates.text(SITI, "halo"))
    result = await app.bot.get_updates(timeout=0)
    assert [u.update_id for u in result] == [1001]


async def test_polling_application_echoes(
    app: AnyApp, fake: FakeTelegramAPI, updates: UpdateFactory
) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(f"echo: {update.message.text}")

    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    assert app.updater is not None
    await app.start()
    await app.updater.start_polling()

    fake.push_update(updates.text(SITI, "halo"))
    fake.push_update(updates.text(JOHN, "hello"))

    (siti_reply,) = await fake.wait_for_messages(SITI.id, 1, timeout=2)
    (john_reply,) = await fake.wait_for_messages(JOHN.id, 1, timeout=2)
    assert siti_reply.text == "echo: halo"
    assert john_reply.text == "echo: hello"
    assert fake.calls_to("deleteWebhook")  # PTB's polling bootstrap

    await app.updater.stop()
    assert fake.pending_updates() == []  # PTB confirmed the updates when stopping


async def test_callback_query_is_answered(
    app: AnyApp, fake: FakeTelegramAPI, updates: UpdateFactory
) -> None:
    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Tersimpan")
        await query.edit_message_text(f"Pilihan: {query.data}")

    app.add_handler(CallbackQueryHandler(on_button))
    assert app.updater is not None
    await app.start()
    await app.updater.start_polling()

    sent = await app.bot.send_message(
        SITI.id,
        "Pilih",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Ya", callback_data="yes")]]),
    )
    fake.push_update(updates.callback(SITI, "yes", sent.message_id, "Pilih"))

    (answer,) = await fake.wait_for_calls("answerCallbackQuery", 1, timeout=2)
    assert answer["text"] == "Tersimpan"
    assert fake.callback_answers == [answer]
    await fake.wait_for_calls("editMessageText", 1, timeout=2)
    assert fake.texts(SITI.id) == ["Pilihan: yes"]

    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await app.bot.answer_callback_query(str(answer["callback_query_id"]))


async def test_wait_for_messages_times_out_with_details(app: AnyApp, fake: FakeTelegramAPI) -> None:
    await app.bot.send_message(SITI.id, "cuma satu")
    with pytest.raises(AssertionError, match="cuma satu"):
        await fake.wait_for_messages(SITI.id, 2, timeout=0.05)
    with pytest.raises(AssertionError, match="sendPhoto"):
        await fake.wait_for_calls("sendPhoto", 1, timeout=0.05)


# ---------------------------------------------------------------------- update factories


async def test_factory_text_and_command(app: AnyApp, updates: UpdateFactory) -> None:
    update = Update.de_json(updates.text(SITI, "halo"), app.bot)
    assert update.update_id == 1000
    assert update.effective_user is not None
    assert update.effective_user.language_code == "id"
    assert update.effective_user.username == "siti"
    assert update.effective_chat is not None
    assert (update.effective_chat.id, update.effective_chat.type) == (SITI.id, "private")
    assert update.message is not None and update.message.text == "halo"
    assert update.message.entities == ()

    command = Update.de_json(updates.command(JOHN, "start", "ref-42"), app.bot)
    assert command.update_id == 1001
    assert command.message is not None
    assert command.message.text == "/start ref-42"
    assert command.message.parse_entities() != {}
    (entity,) = command.message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
    assert command.effective_user is not None
    assert command.effective_user.language_code == "en"
    assert filters.COMMAND.check_update(command)


async def test_factory_callback(app: AnyApp, updates: UpdateFactory) -> None:
    update = Update.de_json(updates.callback(SITI, "vol:yes", 7, "Mau bantu?"), app.bot)
    query = update.callback_query
    assert query is not None
    assert query.data == "vol:yes"
    assert query.from_user.id == SITI.id
    assert query.chat_instance
    assert query.message is not None
    assert query.message.message_id == 7
    assert query.message.chat.id == SITI.id
    assert update.effective_message is not None
    assert update.effective_message.text == "Mau bantu?"


async def test_factory_contact(app: AnyApp, updates: UpdateFactory) -> None:
    own = Update.de_json(updates.contact(SITI, "6281234567890"), app.bot)
    assert own.message is not None and own.message.contact is not None
    assert own.message.contact.phone_number == "6281234567890"
    assert own.message.contact.user_id == SITI.id

    other = Update.de_json(updates.contact(SITI, "+628111", own=False), app.bot)
    assert other.message is not None and other.message.contact is not None
    assert other.message.contact.user_id is None
    assert filters.CONTACT.check_update(other)


async def test_factory_media_and_location(app: AnyApp, updates: UpdateFactory) -> None:
    photo = Update.de_json(updates.photo(SITI, caption="banjir"), app.bot)
    assert photo.message is not None
    assert photo.message.caption == "banjir"
    assert photo.message.photo[-1].width == 1280

    sticker = Update.de_json(updates.sticker(SITI), app.bot)
    assert sticker.message is not None and sticker.message.sticker is not None
    assert sticker.message.sticker.type == "regular"
    assert not sticker.message.sticker.is_animated

    voice = Update.de_json(updates.voice(SITI), app.bot)
    assert voice.message is not None and voice.message.voice is not None
    assert voice.message.voice.mime_type == "audio/ogg"

    location = Update.de_json(updates.location(SITI, -6.2, 106.8), app.bot)
    assert location.message is not None and location.message.location is not None
    assert (location.message.location.latitude, location.message.location.longitude) == (
        -6.2,
        106.8,
    )

    document = Update.de_json(updates.document(SITI), app.bot)
    assert document.message is not None and document.message.document is not None
    assert document.message.document.file_name == "surat.pdf"

    for update in (photo, sticker, voice, location, document):
        assert not filters.TEXT.check_update(update)


async def test_factory_edited_text_and_raw(app: AnyApp, updates: UpdateFactory) -> None:
    original = updates.text(SITI, "halo")
    edited = Update.de_json(updates.edited_text(SITI, "halo!"), app.bot)
    assert edited.edited_message is not None
    assert edited.edited_message.text == "halo!"
    assert edited.edited_message.message_id == original["message"]["message_id"]
    assert edited.edited_message.edit_date is not None
    assert edited.message is None

    raw = updates.raw(my_chat_member=None)
    assert raw == {"update_id": 1002, "my_chat_member": None}


# ---------------------------------------------------------------------- parameter decoding


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(min_size=1, max_size=50),
    chat_id=st.integers(min_value=-(10**13), max_value=10**13),
    flag=st.booleans(),
)
def test_form_values_decode_like_ptb_encodes(text: str, chat_id: int, flag: bool) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data="d")]])
    data = {"chat_id": chat_id, "text": text, "reply_markup": markup, "protect_content": flag}
    request_data = RequestData([RequestParameter.from_input(k, v) for k, v in data.items()])
    form = parse_qsl(urlencode(request_data.json_parameters), keep_blank_values=True)
    decoded = {name: decode_form_value(name, value) for name, value in form}
    assert decoded == {
        "chat_id": chat_id,
        "text": text,
        "reply_markup": markup.to_dict(),
        "protect_content": flag,
    }


async def test_bot_context_manager_against_fake(fake: FakeTelegramAPI) -> None:
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        assert (await bot.get_me()).username == fake.username
