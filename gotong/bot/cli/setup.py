"""Setting Gotong up against the world: `gotong webhook set|info|delete` (Telegram's
webhook, through python-telegram-bot), `gotong whatsapp check` (the number, and each
configured template approved in every language) and `gotong check` (the configuration,
the database and every configured chat app's API, a line each; non-zero on any
failure)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from sqlalchemy.engine import make_url
from telegram import Bot
from telegram.error import InvalidToken, NetworkError, TelegramError

from gotong.bot.channels.http import AiohttpRequest
from gotong.bot.channels.telegram import ALLOWED_UPDATES
from gotong.bot.channels.whatsapp import (
    ACCESS_TOKEN,
    GraphError,
    Templates,
    message_templates,
    number_details,
)
from gotong.bot.config import LANGUAGES, Config
from gotong.models.db import create_engine
from gotong.models.migrate import schema_state


def add_setup_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhook = commands.add_parser("webhook", help="Telegram's webhook: set, show or delete it")
    webhook.add_argument("action", choices=["set", "info", "delete"])
    webhook.add_argument("--drop-pending", action="store_true",
                         help="set/delete: drop the updates Telegram still holds for the bot")
    commands.add_parser("check", help="check the configuration, the database and every "
                                      "configured chat app's API")
    whatsapp = commands.add_parser(
        "whatsapp", help="the WhatsApp number: check that its id and token answer and that "
                         "the configured templates are approved in id and en")
    whatsapp.add_argument("action", choices=["check"])


def telegram_bot(config: Config) -> Bot:
    return Bot(config.telegram.token, base_url=config.telegram.api_base_url,
               base_file_url=config.telegram.api_file_url, request=AiohttpRequest(1))


async def run_webhook(config: Config, args: argparse.Namespace) -> int:
    tg = config.telegram
    if not tg.token:
        print("gotong: no Telegram bot is configured (set telegram.token)", file=sys.stderr)
        return 2
    if args.action == "set":
        missing = [key for key, value in (("telegram.webhook_url", tg.webhook_url),
                                          ("telegram.webhook_secret", tg.webhook_secret))
                   if not value]
        if missing:
            print(f"gotong: set {' and '.join(missing)} first", file=sys.stderr)
            return 2
    bot = telegram_bot(config)
    try:
        async with bot:
            if args.action == "set":
                await bot.set_webhook(tg.webhook_url, secret_token=tg.webhook_secret,
                                      allowed_updates=ALLOWED_UPDATES,
                                      drop_pending_updates=args.drop_pending)
                print(f"webhook set to {tg.webhook_url}")
            elif args.action == "delete":
                await bot.delete_webhook(drop_pending_updates=args.drop_pending)
                print("webhook deleted: the bot can be run by polling "
                      "(telegram.mode = \"polling\")")
            info = await bot.get_webhook_info()
    except TelegramError as exc:
        print(f"gotong: Telegram refused: {_telegram_problem(exc)}", file=sys.stderr)
        return 1
    # Never the secret token: Telegram does not give it back, and it stays in the config.
    print(f"url: {info.url or '(none: polling)'}")
    print(f"pending updates: {info.pending_update_count}")
    if info.allowed_updates:
        print(f"allowed updates: {', '.join(info.allowed_updates)}")
    if info.last_error_date is not None:
        print(f"last error: {info.last_error_date:%Y-%m-%d %H:%M} UTC: {info.last_error_message}")
    if info.url and info.url != tg.webhook_url:
        print(f"note: telegram.webhook_url is {tg.webhook_url or '(empty)'}; "
              "`gotong webhook set` sets it")
    return 0


def _telegram_problem(exc: TelegramError) -> str:
    if isinstance(exc, InvalidToken):
        return "the token was refused (check telegram.token)"
    if isinstance(exc, NetworkError):
        return f"Telegram could not be reached ({type(exc).__name__})"
    return exc.message


@dataclass(frozen=True)
class Line:
    part: str
    ok: bool
    said: str


def _print(lines: list[Line]) -> int:
    for line in lines:
        print(f"{line.part}: {'ok' if line.ok else 'FAILED'}: {line.said}")
    return 0 if all(line.ok for line in lines) else 1


async def run_check(config: Config) -> int:
    checks: list[Callable[[Config], Awaitable[Line]]] = [check_database, check_telegram,
                                                          check_whatsapp]
    lines = [Line("config", True, _describe(config))]
    for check in checks:
        lines.append(await check(config))
    if config.whatsapp.enabled and config.whatsapp.business_account_id:
        lines += await check_templates(config)
    return _print(lines)


async def run_whatsapp(config: Config, args: argparse.Namespace) -> int:
    """`gotong whatsapp check`: the number, then each template in each language."""
    wa = config.whatsapp
    if not wa.enabled:
        print("gotong: no WhatsApp number is configured (set whatsapp.phone_number_id)",
              file=sys.stderr)
        return 2
    lines = [await check_whatsapp(config)]
    if wa.business_account_id:
        lines += await check_templates(config)
    else:
        lines.append(Line("whatsapp templates", False, "not checked: set "
                          "whatsapp.business_account_id to the WhatsApp Business Account "
                          "that owns the number"))
    return _print(lines)


def _describe(config: Config) -> str:
    url = make_url(config.database.url)
    apps = [f"telegram ({config.telegram.mode})" if config.telegram.token else "",
            "whatsapp" if config.whatsapp.enabled else ""]
    return (f"database {url.get_backend_name()}, chat apps: "
            f"{', '.join(app for app in apps if app) or 'none (the playground)'}")


async def check_database(config: Config) -> Line:
    engine = create_engine(config.database.url)
    try:
        state = await schema_state(engine)
    except Exception as exc:
        # The URL may hold a password: the kind of failure only.
        return Line("database", False, f"cannot be reached ({type(exc).__name__})")
    finally:
        await engine.dispose()
    if state.current is None:
        return Line("database", False, "empty: run `gotong db upgrade`")
    if not state.up_to_date:
        return Line("database", False, f"schema at {state.current}, this version needs "
                                       f"{state.head}: run `gotong db upgrade`")
    return Line("database", True, f"schema at {state.current}, up to date")


async def check_telegram(config: Config) -> Line:
    tg = config.telegram
    if not tg.token:
        return Line("telegram", True, "not configured")
    bot = telegram_bot(config)
    try:
        async with bot:
            me = await bot.get_me()
            info = await bot.get_webhook_info()
    except TelegramError as exc:
        return Line("telegram", False, _telegram_problem(exc))
    if tg.mode == "webhook" and info.url != tg.webhook_url:
        return Line("telegram", False, f"@{me.username} answers, but its webhook is "
                                       f"{info.url or 'not set'}: run `gotong webhook set`")
    if tg.mode == "polling" and info.url:
        return Line("telegram", True, f"@{me.username}; a webhook is set, which `gotong run` "
                                      "deletes to poll")
    where = f"webhook {info.url}" if tg.mode == "webhook" else "polling"
    return Line("telegram", True, f"@{me.username}, {where}, "
                                  f"{info.pending_update_count} updates pending")


async def check_whatsapp(config: Config) -> Line:
    """The number answers with the token (its details through the Graph API)."""
    wa = config.whatsapp
    if not wa.enabled:
        return Line("whatsapp", True, "not configured")
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=15),
                headers={"Authorization": f"Bearer {wa.access_token}"}) as http:
            info = await number_details(http, wa)
    except GraphError as exc:
        return Line("whatsapp", False, _graph_problem(exc, "whatsapp.phone_number_id"))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Line("whatsapp", False, f"the Graph API could not be reached "
                                       f"({type(exc).__name__})")
    return Line("whatsapp", True, f"{info.get('verified_name', '?')} "
                                  f"({info.get('display_phone_number', '?')}), quality "
                                  f"{info.get('quality_rating', 'unknown')}")


def _graph_problem(exc: GraphError, id_key: str) -> str:
    """What a Graph API refusal means, naming the key to fix; never the token."""
    if exc.http_status == 401 or exc.code == ACCESS_TOKEN:
        return (f"the Graph API refused the access token ({exc.http_status}: "
                f"{exc.message}); check whatsapp.access_token")
    return (f"the Graph API refused ({exc.http_status}: {exc.message}); check {id_key} "
            "and whatsapp.access_token")


def configured_templates(config: Config) -> list[str]:
    """The templates Gotong sends: the generic one and each kind of news' own."""
    wa = config.whatsapp
    names = [wa.fallback_template, *Templates.parse(wa.templates, "").by_key.values()]
    return list(dict.fromkeys(name for name in names if name))


async def check_templates(config: Config) -> list[Line]:
    """A line per template and language: it exists in the WhatsApp Business Account and
    is approved (only approved templates can be sent)."""
    wa = config.whatsapp
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                headers={"Authorization": f"Bearer {wa.access_token}"}) as http:
            found = await message_templates(http, wa)
    except GraphError as exc:
        return [Line("whatsapp templates", False,
                     _graph_problem(exc, "whatsapp.business_account_id"))]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [Line("whatsapp templates", False, f"the Graph API could not be reached "
                                                  f"({type(exc).__name__})")]
    status = {(str(t.get("name")), str(t.get("language"))): str(t.get("status", "")).upper()
              for t in found}
    lines = []
    for name in configured_templates(config):
        for language in LANGUAGES:
            part = f"template {name} ({language})"
            state = status.get((name, language))
            if state is None:
                lines.append(Line(part, False, f"missing: create it in language {language!r} "
                                               "in WhatsApp Manager and get it approved"))
            elif state != "APPROVED":
                lines.append(Line(part, False, f"{state}, not approved: WhatsApp sends "
                                               "only approved templates"))
            else:
                lines.append(Line(part, True, "approved"))
    return lines
