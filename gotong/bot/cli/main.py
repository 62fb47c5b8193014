"""The `gotong` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from gotong.bot.channels.console import run_console
from gotong.bot.channels.telegram import PollingTaken
from gotong.bot.cli.admin import ADMIN_COMMANDS, add_admin_parsers, run_admin
from gotong.bot.cli.backup import add_backup_parsers, run_backup, run_restore
from gotong.bot.cli.broadcast import add_broadcast_parser, run_broadcast
from gotong.bot.cli.demo import add_demo_parser, run_demo
from gotong.bot.cli.setup import add_setup_parsers, run_check, run_webhook, run_whatsapp
from gotong.bot.config import Config, ConfigError, load_config
from gotong.bot.logs import setup_logging
from gotong.bot.process import run_bot, run_dispatcher
from gotong.bot.services import NotReady, open_services, prepare_database
from gotong.models.aggregator import list_aggregators
from gotong.models.base import utcnow
from gotong.models.db import create_engine
from gotong.models.failures import Waiting, reason_counts
from gotong.models.inbound import inbound_counts, set_aside_updates
from gotong.models.outbox import OutboxStatus
from gotong.models.sending import latest_failures, skip_reasons, status_counts

log = logging.getLogger("gotong")

NEW_CONFIG = """\
# Gotong configuration. Every key is documented in config.example.toml.
# Any key can be overridden by an environment variable GOTONG_<SECTION>__<KEY>.

[privacy]
# Secret key of the NIK hash. Keep it; changing it hides earlier duplicates.
nik_hash_key = "{nik_key}"

[telegram]
# Bot token from @BotFather. Without it, `gotong run` serves the playground on
# http://127.0.0.1:8080/playground (see [web] in config.example.toml).
token = ""
webhook_secret = "{webhook_secret}"
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gotong", description="Community aid chatbot")
    parser.add_argument("--config", type=Path, help="TOML file (default: ./config.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write a config.toml with fresh secrets")
    init.add_argument("--path", type=Path, default=Path("config.toml"))
    db = commands.add_parser("db", help="database")
    db.add_argument("action", choices=["upgrade"])
    commands.add_parser("run", help="run the bot (the playground without a chat app)")
    chat = commands.add_parser("chat", help="chat with the bot in this terminal")
    chat.add_argument("--language", choices=["id", "en"])
    dispatch = commands.add_parser(
        "dispatch", help="send notifications only (beside `gotong run` processes)")
    dispatch.add_argument("--until-idle", action="store_true",
                          help="stop when nothing is left to send")
    commands.add_parser("outbox", help="how many notifications are waiting, sent, failed, "
                        "skipped and why; what did not reach people, by aggregator")
    add_broadcast_parser(commands)
    add_admin_parsers(commands)
    add_backup_parsers(commands)
    add_setup_parsers(commands)
    add_demo_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    if args.command == "init":
        return init_config(args.path)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"gotong: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.logging.level, config.logging.format)
    try:
        return _run_command(args, config)
    except KeyboardInterrupt:
        return 130
    except (NotReady, PollingTaken, DBAPIError, OSError) as exc:
        print(f"gotong: {exc}", file=sys.stderr)
        return 1


def _run_command(args: argparse.Namespace, config: Config) -> int:
    if args.command == "broadcast":
        return asyncio.run(run_broadcast(config, args))
    if args.command in ADMIN_COMMANDS:
        return asyncio.run(run_admin(config, args))
    if args.command == "demo":
        return asyncio.run(run_demo(config, args))
    if args.command == "outbox":
        asyncio.run(print_outbox(config))
        return 0
    if args.command == "backup":
        return run_backup(config, args)
    if args.command == "webhook":
        return asyncio.run(run_webhook(config, args))
    if args.command == "check":
        return asyncio.run(run_check(config))
    if args.command == "whatsapp":
        return asyncio.run(run_whatsapp(config, args))
    if args.command == "restore":
        return run_restore(config, args)
    if args.command == "dispatch":
        if not config.has_chat_channel:
            print("gotong: nothing to dispatch to: no chat channel is configured "
                  "(set telegram.token, or the [whatsapp] number)", file=sys.stderr)
            return 2
        asyncio.run(run_dispatcher(config, until_idle=args.until_idle))
        return 0
    if args.command == "db":
        asyncio.run(upgrade_database(config))
        print("database is up to date")
        return 0
    if args.command == "chat" or not (config.has_chat_channel or config.playground_on):
        if args.command == "run":
            print("No Telegram token or WhatsApp number is configured, so Gotong runs as a\n"
                  "chat in this terminal. To run the Telegram bot, set telegram.token in\n"
                  "config.toml (or the GOTONG_TELEGRAM__TOKEN environment variable) to the\n"
                  "token @BotFather gave you; for WhatsApp, see [whatsapp] in\n"
                  "config.example.toml. Type /help for help; end with Ctrl-D.\n")
        asyncio.run(chat_in_terminal(config, getattr(args, "language", None)))
        return 0
    asyncio.run(run_bot(config))
    return 0


def init_config(path: Path) -> int:
    if path.exists():
        print(f"{path} exists; leaving it as it is")
        return 0
    text = NEW_CONFIG.format(nik_key=secrets.token_urlsafe(48),
                             webhook_secret=secrets.token_urlsafe(32))
    # The file holds secrets: readable by its owner only.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(text)
    print(f"wrote {path} with fresh secrets")
    return 0


async def upgrade_database(config: Config) -> None:
    engine = create_engine(config.database.url)
    try:
        await prepare_database(engine, config.areas.provinces, config.i18n.timezone)
    finally:
        await engine.dispose()


async def chat_in_terminal(config: Config, language: str | None) -> None:
    services = await open_services(config)
    try:
        await run_console(services.conversations, language=language)
    finally:
        await services.close()


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in counts.items())


async def print_outbox(config: Config) -> None:
    """Counts by status, why messages were skipped, and the latest messages given up on
    with the reason; what did not reach people (or waits too long), by reason and by
    aggregator; updates waiting to be handled, and the latest ones set aside with the
    reason."""
    services = await open_services(config)
    try:
        async with services.sessions() as session:
            counts = await status_counts(session)
            skipped = await skip_reasons(session)
            failures = await latest_failures(session)
            waiting, aside = await inbound_counts(session)
            set_aside = await set_aside_updates(session)
            now = utcnow()
            stuck_after = timedelta(minutes=config.notifications.stuck_after_minutes)
            unreached = await reason_counts(session, now, stuck_after)
            by_aggregator = [(aggregator, await reason_counts(session, now, stuck_after,
                                                              [aggregator.id]))
                             for aggregator in await list_aggregators(session)]
    finally:
        await services.close()
    for status in OutboxStatus:
        print(f"{status.value:>9}: {counts.get(status.value, 0)}")
    if skipped:
        # "outdated": news whose subject moved on before it could be sent.
        print("skipped, by reason: " + ", ".join(f"{reason} {count}"
                                                 for reason, count in skipped.items()))
    if failures:
        print("latest failures:")
    for row in failures:
        print(f"  #{row.id} {row.created_at:%Y-%m-%d %H:%M} UTC, {row.attempts} attempts: "
              f"{row.last_error}")
    # What staff see on their dashboard, by aggregator (a person may be the people of
    # several: each counts them).
    print("not reached, by reason: " + (_reasons(unreached) or "none"))
    for aggregator, counts in by_aggregator:
        print(f"  aggregator #{aggregator.id} {aggregator.name}: {_reasons(counts) or 'none'}")
    print(f"waiting over {config.notifications.stuck_after_minutes} minutes: "
          f"{unreached.get(Waiting.STUCK, 0)} queued, {unreached.get(Waiting.HELD, 0)} held "
          "for the person to write")
    print(f"updates waiting: {waiting}")
    print(f"updates set aside: {aside}")
    for update in set_aside:
        print(f"  update #{update.id} ({update.channel}) received "
              f"{update.received_at:%Y-%m-%d %H:%M} UTC, set aside after {update.attempts} "
              f"attempts: {update.reason}")
