"""`gotong broadcast`: the operator's message to many people, with a dry run, a
confirmation, and a progress bar while the dispatcher sends it."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from gotong.bot.cli.operator import OperatorError, add_area_options, resolve_areas
from gotong.bot.config import LANGUAGES, Config
from gotong.bot.services import open_services
from gotong.models.area import AreaDirectory
from gotong.models.base import utcnow
from gotong.models.broadcast import Audience, count_recipients, queue_broadcast
from gotong.models.contact import Role
from gotong.models.outbox import OutboxStatus
from gotong.models.sending import status_counts

# Longer texts would be cut into several messages; an announcement should be short.
MAX_BROADCAST_CHARS = 3000
PROGRESS_SECONDS = 0.5
# With no progress for this long, the operator is told that a dispatcher must run.
STALL_SECONDS = 30.0
BAR_WIDTH = 30


def add_broadcast_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "broadcast", help="send an announcement to many people",
        description="Queue one message for everyone who matches the filters (people who "
                    "sent /stop are left out). The running bot (`gotong run` or `gotong "
                    "dispatch`) sends it, after any news of people's own aid.")
    parser.add_argument("--message-file", type=Path, required=True,
                        help="UTF-8 text file with the message")
    parser.add_argument("--role", choices=[r.value for r in Role])
    add_area_options(parser, "only people in")
    parser.add_argument("--language", choices=LANGUAGES,
                        help="only people who chose this language")
    parser.add_argument("--dry-run", action="store_true",
                        help="print how many people would get it, and send nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--no-wait", action="store_true",
                        help="queue it and return without showing progress")


def resolve_villages(areas: AreaDirectory, kota: list[str], kecamatan: list[str],
                     kelurahan: list[str]) -> set[int] | None:
    """The kelurahan the area options name, or None when none was given."""
    chosen = resolve_areas(areas, kota, kecamatan, kelurahan)
    return areas.villages_under(chosen) if chosen else None


def read_message(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorError(f"cannot read {path}: {exc}") from exc
    if not text:
        raise OperatorError(f"{path} is empty")
    if len(text) > MAX_BROADCAST_CHARS:
        raise OperatorError(f"the message has {len(text)} characters; keep it under "
                             f"{MAX_BROADCAST_CHARS}")
    return text


async def run_broadcast(config: Config, args: argparse.Namespace,
                        stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    services = await open_services(config)
    try:
        text = read_message(args.message_file)
        villages = resolve_villages(services.areas, args.kota, args.kecamatan, args.kelurahan)
        described = {k: v for k, v in {
            "role": args.role, "kota": args.kota, "kecamatan": args.kecamatan,
            "kelurahan": args.kelurahan, "language": args.language}.items() if v}
        audience = Audience(role=Role(args.role) if args.role else None, villages=villages,
                            language=args.language, described=described)
        async with services.sessions() as session:
            count = await count_recipients(session, audience)
        print(f"{count} recipient{'s' if count != 1 else ''} "
              f"({_describe(described)}; people who sent /stop are left out)", file=out)
        if args.dry_run or count == 0:
            print("dry run: nothing was sent" if args.dry_run else "nothing to send",
                  file=out)
            return 0
        if not args.yes:
            print(f"Send this message to {count} people? [y/N] ", end="", file=out,
                  flush=True)
            if stdin.readline().strip().lower() not in ("y", "yes", "ya"):
                print("cancelled: nothing was sent", file=out)
                return 1
        broadcast = await queue_broadcast(
            services.sessions, text, audience, utcnow(),
            progress=lambda queued: _bar("queued", queued, count, "", out))
        print(file=out)
        print(f"broadcast {broadcast.id} queued for {broadcast.recipients} people", file=out)
        if args.no_wait:
            return 0
        await show_progress(services.sessions, broadcast.id, broadcast.recipients, out)
        return 0
    except OperatorError as exc:
        print(f"gotong: {exc}", file=sys.stderr)
        return 2
    finally:
        await services.close()


def _describe(described: dict[str, Any]) -> str:
    if not described:
        return "everyone"
    return ", ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}"
                     for k, v in described.items())


def _bar(what: str, done: int, total: int, detail: str, out: TextIO) -> None:
    """A progress bar, drawn again on the same line."""
    filled = min(BAR_WIDTH, BAR_WIDTH * done // total) if total else BAR_WIDTH
    print(f"\r{what} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}{detail}",
          end="", file=out, flush=True)


async def show_progress(sessions: Any, broadcast_id: int, total: int, out: TextIO) -> None:
    """Draw a progress bar until every row of the broadcast is settled."""
    last_done, last_change = -1, time.monotonic()
    warned = False
    while True:
        async with sessions() as session:
            counts = await status_counts(session, broadcast_id)
        waiting = counts.get(OutboxStatus.PENDING, 0) + counts.get(OutboxStatus.SENDING, 0)
        done = total - waiting
        failed = counts.get(OutboxStatus.FAILED, 0)
        skipped = counts.get(OutboxStatus.SKIPPED, 0)
        _bar("sending", done, total,
             f" ({done - failed - skipped} sent, {failed} failed, {skipped} skipped)", out)
        if waiting == 0:
            print(file=out)
            return
        if done != last_done:
            last_done, last_change = done, time.monotonic()
        elif not warned and time.monotonic() - last_change > STALL_SECONDS:
            warned = True
            print("\nno progress: is the bot (`gotong run` or `gotong dispatch`) running? "
                  "The broadcast stays queued; Ctrl-C stops watching.", file=out)
        await asyncio.sleep(PROGRESS_SECONDS)
