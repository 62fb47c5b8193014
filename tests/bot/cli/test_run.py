"""`gotong run` with a token: the whole program, in a subprocess, against the fake Bot API,
by polling and behind a webhook, stopped by SIGTERM as a service manager would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.fakes.telegram_api import FakeTelegramAPI, post_webhook
from tests.fakes.telegram_updates import TgUser, UpdateFactory

GOTONG = Path(sys.executable).parent / "gotong"
SECRET = "run-test-secret_123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_gotong(tmp_path: Path, fake: FakeTelegramAPI, port: int,
                       **env: str) -> asyncio.subprocess.Process:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOTONG_")}
    environ.update({
        "GOTONG_PRIVACY__NIK_HASH_KEY": "run-test-key-" + "k" * 32,
        "GOTONG_TELEGRAM__TOKEN": fake.token,
        "GOTONG_TELEGRAM__API_BASE_URL": fake.base_url,
        "GOTONG_TELEGRAM__API_FILE_URL": fake.base_file_url,
        "GOTONG_WEB__PORT": str(port),
        "GOTONG_METRICS__PORT": "0",
        **env,
    })
    return await asyncio.create_subprocess_exec(
        str(GOTONG), "run", cwd=tmp_path, env=environ, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def wait_healthy(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("gotong did not start")


async def stop(process: asyncio.subprocess.Process) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_run_by_polling(tmp_path: Path, fake: FakeTelegramAPI) -> None:
    port = free_port()
    process = await start_gotong(tmp_path, fake, port)
    try:
        await wait_healthy(port)
        await fake.wait_for_calls("getUpdates", 1, timeout=20)
        user = TgUser(id=777, language_code="en")
        fake.push_update(UpdateFactory().text(user, "/start"))
        [welcome] = await fake.wait_for_messages(777, 1, timeout=20)
        assert "Hello! I am Gotong" in welcome.text
        assert ("default", "id") in fake.commands
    finally:
        output = await stop(process)
    assert "telegram channel started (polling)" in output


async def test_run_behind_a_webhook(tmp_path: Path, fake: FakeTelegramAPI) -> None:
    port = free_port()
    process = await start_gotong(
        tmp_path, fake, port, GOTONG_TELEGRAM__MODE="webhook",
        GOTONG_TELEGRAM__WEBHOOK_URL="https://bot.example.org/hook/telegram",
        GOTONG_TELEGRAM__WEBHOOK_SECRET=SECRET,
    )
    try:
        await wait_healthy(port)
        await fake.wait_for_calls("setWebhook", 1, timeout=20)
        assert fake.webhook is not None and fake.webhook["secret_token"] == SECRET
        url = f"http://127.0.0.1:{port}/hook/telegram"
        update = UpdateFactory().text(TgUser(id=778, language_code="id"), "/start")
        assert (await post_webhook(url, update, "wrong"))[0] == 403
        assert (await post_webhook(url, update, SECRET))[0] == 200
        [welcome] = await fake.wait_for_messages(778, 1, timeout=20)
        assert "Halo! Saya Gotong" in welcome.text
    finally:
        await stop(process)


async def test_a_second_poller_refuses_to_start(tmp_path: Path, fake: FakeTelegramAPI,
                                               postgres_database: str) -> None:
    """Polling serves one process: on a shared database the second says so and stops."""
    first = await start_gotong(tmp_path, fake, free_port(),
                               GOTONG_DATABASE__URL=postgres_database)
    try:
        await fake.wait_for_calls("getUpdates", 1, timeout=30)
        second = await start_gotong(tmp_path, fake, free_port(),
                                    GOTONG_DATABASE__URL=postgres_database)
        output, _ = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 1, output.decode()
        assert "another gotong process is polling this bot" in output.decode()
        # The first goes on polling and answering.
        fake.push_update(UpdateFactory().text(TgUser(id=779, language_code="en"), "/start"))
        [welcome] = await fake.wait_for_messages(779, 1, timeout=20)
        assert "Hello! I am Gotong" in welcome.text
    finally:
        await stop(first)
