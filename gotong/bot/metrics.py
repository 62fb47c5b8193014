"""Metrics in the Prometheus text format, on a listening address of their own
(`metrics.host`:`metrics.port`, loopback by default) so that the public proxy never
serves them.

Counters and histograms are counted where things happen (the channels, the inbound
worker, the dispatcher, the rate limiter); the state of the aid and of the queues is read
from the database at each scrape (models/gauges.py). Labels name channels, kinds,
statuses, dialogs and reasons, never a person, a chat or a text.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gotong.models.gauges import read_gauges

log = logging.getLogger(__name__)

# What this process counted since it started.
REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES_RECEIVED = Counter(
    "gotong_updates_received", "Updates stored from a chat app, by channel and kind",
    ["channel", "kind"], registry=REGISTRY)
UPDATES_HANDLED = Counter(
    "gotong_updates_handled", "Stored updates finished here, by channel and outcome "
    "(handled; retry: failed and given back; set_aside: given up after max_attempts)",
    ["channel", "outcome"], registry=REGISTRY)
HANDLING_SECONDS = Histogram(
    "gotong_update_handling_seconds", "Seconds from an update's arrival to its answer "
    "having gone out (or been left to the dispatcher)", ["channel"], registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
DIALOG_STEPS = Counter(
    "gotong_dialog_steps", "Dialog steps answered (completed) and dialogs left before their "
    "end (abandoned), by dialog", ["dialog", "outcome"], registry=REGISTRY)
SENDS = Counter(
    "gotong_sends", "Messages sent to a chat app, by channel and result (sent, retry, "
    "failed, uncertain, held, skipped)", ["channel", "result"], registry=REGISTRY)
RATE_LIMIT_WAITS = Counter(
    "gotong_rate_limit_wait_seconds", "Seconds sends waited for the chat app's rate limits",
    ["channel"], registry=REGISTRY)
WEBHOOK_REFUSALS = Counter(
    "gotong_webhook_refusals", "Webhook calls refused, by channel and reason",
    ["channel", "reason"], registry=REGISTRY)


def count_dialog(dialog: str, outcome: str) -> None:
    DIALOG_STEPS.labels(dialog, outcome).inc()


async def exposition(sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The process's counters, then the database's state as gauges."""
    state = CollectorRegistry()
    outbox = Gauge("gotong_outbox_messages", "Outbox rows by status and purpose",
                   ["status", "purpose"], registry=state)
    requests = Gauge("gotong_requests", "Requests for help by status", ["status"],
                     registry=state)
    stock = Gauge("gotong_stock", "Stock on hand by category, all aggregators together",
                  ["category"], registry=state)
    inbound = Gauge("gotong_inbound_updates", "Stored updates not handled yet, by state "
                    "(waiting, set_aside)", ["state"], registry=state)
    up = Gauge("gotong_database_up", "Whether the database answered this scrape",
               registry=state)
    try:
        async with sessions() as session:
            gauges = await read_gauges(session)
    except Exception as exc:
        log.warning("metrics could not read the database: %s", type(exc).__name__)
        up.set(0)
    else:
        up.set(1)
        for (status, purpose), count in gauges.outbox.items():
            outbox.labels(status, purpose).set(count)
        for status, count in gauges.requests.items():
            requests.labels(status).set(count)
        for category, quantity in gauges.stock.items():
            stock.labels(category).set(quantity)
        inbound.labels("waiting").set(gauges.inbound_waiting)
        inbound.labels("set_aside").set(gauges.inbound_set_aside)
    return generate_latest(REGISTRY) + generate_latest(state)


SESSIONS = web.AppKey("metrics_sessions", async_sessionmaker)


async def metrics(request: web.Request) -> web.Response:
    body = await exposition(request.app[SESSIONS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_app(sessions: async_sessionmaker[AsyncSession]) -> web.Application:
    """The app of the metrics' own address: /metrics and nothing else."""
    app = web.Application(client_max_size=1024)
    app[SESSIONS] = sessions
    app.router.add_get("/metrics", metrics)
    return app
