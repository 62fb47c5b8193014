"""python-telegram-bot on our aiohttp request class, against the fake Bot API."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from telegram import Bot, InputFile
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from gotong.bot.channels.http import AiohttpRequest
from tests.fakes.telegram_api import FakeTelegramAPI


def bot_on(fake: FakeTelegramAPI, request: AiohttpRequest) -> Bot:
    return Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url,
               request=request, get_updates_request=AiohttpRequest(1))


async def test_requests_and_answers_pass_through(fake: FakeTelegramAPI) -> None:
    async with bot_on(fake, AiohttpRequest()) as bot:
        assert bot.username == "gotong_test_bot"
        message = await bot.send_message(7, "Halo")
        assert message.text == "Halo" and fake.texts(7) == ["Halo"]
        assert await bot.set_my_commands([("status", "Status")], language_code="id")
        assert fake.commands[("default", "id")] == [{"command": "status",
                                                     "description": "Status"}]


async def test_errors_keep_their_meaning(fake: FakeTelegramAPI) -> None:
    async with bot_on(fake, AiohttpRequest()) as bot:
        fake.fail_next("sendMessage", error_code=429, description="Too Many Requests",
                       retry_after=3)
        with pytest.raises(RetryAfter) as retry:
            await bot.send_message(7, "x")
        assert retry.value.retry_after.total_seconds() == 3  # type: ignore[union-attr]
        fake.fail_next("sendMessage", error_code=403, description="Forbidden: blocked")
        with pytest.raises(Forbidden):
            await bot.send_message(7, "x")
        with pytest.raises(BadRequest):
            await bot.send_message(7, "")


async def test_files_go_as_multipart(fake: FakeTelegramAPI) -> None:
    received: list[dict[str, Any]] = []

    async def send_document(params: dict[str, Any]) -> dict[str, Any]:
        received.append(params)
        return {"message_id": 1, "date": 0, "chat": {"id": 7, "type": "private"}}

    fake.add_method("sendDocument", send_document)
    async with bot_on(fake, AiohttpRequest()) as bot:
        await bot.send_document(7, InputFile(b"a,b\n1,2\n", filename="report.csv"),
                                caption="laporan")
    assert received[0]["caption"] == "laporan"
    assert received[0]["chat_id"] in (7, "7")
    assert "document" in received[0]


async def test_a_silent_server_times_out(fake: FakeTelegramAPI) -> None:
    async def never_answers(params: dict[str, Any]) -> bool:
        await asyncio.sleep(5)
        return True

    fake.add_method("sendMessage", never_answers)
    async with bot_on(fake, AiohttpRequest(read_timeout=0.2)) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message(7, "x")


async def test_an_unreachable_server_is_a_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    request = AiohttpRequest(connect_timeout=1)
    await request.initialize()
    try:
        with pytest.raises(NetworkError):
            await request.post(f"http://127.0.0.1:{port}/bot1:x/getMe")
    finally:
        await request.shutdown()


async def test_using_it_before_initialize_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        await AiohttpRequest().do_request("http://127.0.0.1:1/", "POST")
