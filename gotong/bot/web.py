"""The aiohttp application: the Telegram and WhatsApp webhooks, the health check, and the
pages (public figures, the staff dashboard, the playground)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from gotong.bot import dashboard, playground, public
from gotong.bot.app import Services
from gotong.bot.pages import setup_pages
from gotong.bot.telegram import SECRET_HEADER, MalformedUpdate, TelegramChannel
from gotong.bot.whatsapp import SIGNATURE_HEADER, MalformedPayload, WhatsAppChannel

log = logging.getLogger(__name__)

TELEGRAM_CHANNEL = web.AppKey("telegram_channel", TelegramChannel)
WHATSAPP_CHANNEL = web.AppKey("whatsapp_channel", WhatsAppChannel)
WEBHOOK_PATH = "/telegram/webhook"
# Telegram updates are small; anything bigger is not from Telegram.
MAX_BODY = 1024 * 1024


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def telegram_webhook(request: web.Request) -> web.Response:
    channel = request.app[TELEGRAM_CHANNEL]
    if not channel.secret_matches(request.headers.get(SECRET_HEADER)):
        log.warning("refused a telegram webhook call without the right secret")
        raise web.HTTPForbidden()
    body = await request.read()
    try:
        payload = json.loads(body)
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
        raise web.HTTPBadRequest(text="not a Telegram update")
    try:
        await channel.accept_webhook(payload)
    except MalformedUpdate:
        raise web.HTTPBadRequest(text="malformed update") from None
    return web.json_response({"ok": True})


async def whatsapp_verification(request: web.Request) -> web.Response:
    """Meta checks the webhook URL: echo the challenge if the token is ours."""
    channel = request.app[WHATSAPP_CHANNEL]
    query = request.query
    challenge = channel.verify(query.get("hub.mode"), query.get("hub.verify_token"),
                               query.get("hub.challenge"))
    if challenge is None:
        log.warning("refused a whatsapp webhook verification with a wrong token")
        raise web.HTTPForbidden()
    return web.Response(text=challenge)


async def whatsapp_webhook(request: web.Request) -> web.Response:
    """A signed notification: stored, answered 200 at once, processed afterwards."""
    channel = request.app[WHATSAPP_CHANNEL]
    body = await request.read()
    if not channel.signature_matches(body, request.headers.get(SIGNATURE_HEADER)):
        log.warning("refused a whatsapp webhook call without a valid signature")
        raise web.HTTPUnauthorized()
    try:
        payload = json.loads(body)
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    try:
        await channel.accept_webhook(payload)
    except MalformedPayload:
        # Signed by Meta yet not a notification we know: retrying will not change it.
        log.warning("ignored a signed whatsapp webhook call that is not a notification")
    return web.json_response({"ok": True})


def _redirect(location: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    # A coroutine function: aiohttp warns about (and tests fail on) a plain callable.
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    return handler


def webhook_path(webhook_url: str) -> str:
    """The path Telegram posts to: that of the public webhook URL (a proxy in front of
    us may map the host, not the path)."""
    return urlsplit(webhook_url).path or WEBHOOK_PATH


def create_web_app(telegram: TelegramChannel | None = None,
                   whatsapp: WhatsAppChannel | None = None, *,
                   services: Services | None = None,
                   webchat: playground.WebChat | None = None) -> web.Application:
    """The web app; with `services` it serves the pages too, and with `webchat` the
    playground (which lets anyone act as anyone: only where the configuration says)."""
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_get("/healthz", health)
    if services is not None:
        setup_pages(app, services)
        public.add_routes(app)
        dashboard.add_routes(app)
        if webchat is not None:
            playground.add_routes(app, webchat)
        home = "/playground" if webchat is not None else public.PATH
        app.router.add_get("/", _redirect(home))
    if telegram is not None and telegram.webhook:
        app[TELEGRAM_CHANNEL] = telegram
        app.router.add_post(webhook_path(telegram.config.webhook_url), telegram_webhook)
    if whatsapp is not None:
        app[WHATSAPP_CHANNEL] = whatsapp
        app.router.add_get(whatsapp.config.webhook_path, whatsapp_verification)
        app.router.add_post(whatsapp.config.webhook_path, whatsapp_webhook)
    return app
