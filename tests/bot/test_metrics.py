"""/metrics after a household registers through the Telegram channel with its dispatcher:
scraped from the metrics' own address, in Prometheus' text format, the numbers moved, and
no label names a person."""

from __future__ import annotations

import re

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gotong.bot.config import Config, WebConfig
from gotong.bot.metrics import metrics_app
from gotong.bot.services import Services
from gotong.bot.web.server import WebServer
from tests.bot.channels.telegram_harness import running_telegram
from tests.bot.channels.test_telegram_household import register_in_indonesian
from tests.fakes.telegram_api import FakeTelegramAPI

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(found: Samples, name: str, **labels: str) -> float:
    return sum(value for (sample, sample_labels), value in found.items()
               if sample == name and labels.items() <= dict(sample_labels).items())


async def scrape(server: WebServer) -> tuple[str, str]:
    async with aiohttp.ClientSession() as client, \
            client.get(f"http://127.0.0.1:{server.port}/metrics") as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


async def test_a_registration_moves_the_numbers(
        config: Config, services: Services, fake: FakeTelegramAPI) -> None:
    server = WebServer(metrics_app(services.sessions), WebConfig(port=0))
    await server.start()
    try:
        kind, text = await scrape(server)
        assert kind.startswith("text/plain; version=")
        before = samples(text)
        async with running_telegram(config, services, fake) as running:
            person = running.bot.person(5_550_001)
            await register_in_indonesian(person)
        _, text = await scrape(server)
    finally:
        await server.stop()
    after = samples(text)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # The person's updates: each received, handled, and how long each took to answer.
    assert moved("gotong_updates_received_total", channel="telegram", kind="person") >= 12
    assert moved("gotong_updates_handled_total", channel="telegram", outcome="handled") >= 12
    assert moved("gotong_update_handling_seconds_count", channel="telegram") >= 12
    assert moved("gotong_dialog_steps_total", dialog="household_request", outcome="step") >= 10
    assert moved("gotong_dialog_steps_total", dialog="household_request", outcome="completed") == 1
    assert moved("gotong_sends_total", channel="telegram", result="sent") >= 12
    assert total(after, "gotong_requests", status="submitted") == 1
    assert total(after, "gotong_database_up") == 1
    assert total(after, "gotong_outbox_messages", status="sent", purpose="reply") >= 12
    # No person in any label: only names of kinds, states and channels.
    for (_, labels), _ in after.items():
        for _, value in labels:
            assert re.fullmatch(r"[a-z_.+]*|[0-9.e+]*|\+Inf", value), value
    assert "Siti" not in text and "5550001" not in text
