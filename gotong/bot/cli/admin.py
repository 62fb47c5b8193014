"""The operator's commands for aggregators: `gotong aggregator add|list|edit|disable|
enable`, `gotong uncovered`, `gotong invite staff`, `gotong invites list|revoke`,
`gotong audit`, `gotong export` and `gotong support`."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from gotong.bot.cli.operator import OperatorError, add_area_options, resolve_areas
from gotong.bot.config import Config
from gotong.bot.services import Services, open_services
from gotong.handlers.validators import parse_id
from gotong.models.admission import invites_of, revoke_invite
from gotong.models.aggregator import (
    Aggregator,
    InviteRole,
    Posko,
    UnknownAggregator,
    create_aggregator,
    create_invite,
    edit_aggregator,
    get_aggregator,
    list_aggregators,
)
from gotong.models.audit import recent_entries
from gotong.models.base import utcnow
from gotong.models.coverage import route_newly_covered, uncovered_requests
from gotong.models.export import FORMATS, KINDS, export_csv
from gotong.models.handover import OpenWork, disable_aggregator, enable_aggregator, open_work
from gotong.models.support import last_messages, unassigned

# The top-level commands `run_admin` carries out.
ADMIN_COMMANDS = ("aggregator", "uncovered", "invite", "invites", "audit", "export",
                  "support")

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(text: str) -> timedelta:
    """"7d", "12h" or "30m"."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 7d, 12h or 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def positive(text: str) -> int:
    value = parse_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return value


def add_admin_parsers(commands: Any) -> None:
    aggregator = commands.add_parser("aggregator", help="aid organisations and their areas")
    actions = aggregator.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add an aggregator")
    add.add_argument("--name", required=True)
    add.add_argument("--posko", required=True, metavar='"ADDRESS; HOURS"',
                     help="where donors drop aid, and when it is open")
    add_area_options(add, "covers")
    actions.add_parser("list", help="list aggregators with their areas")
    edit = actions.add_parser("edit", help="change an aggregator")
    edit.add_argument("id", type=int)
    edit.add_argument("--name")
    edit.add_argument("--posko", metavar='"ADDRESS; HOURS"')
    add_area_options(edit, "covers (replacing the areas it covered)")
    disable = actions.add_parser("disable", help="take no new requests or pledges; list its "
                                 "open work for hand-over and tell its staff (deletes nothing)")
    disable.add_argument("id", type=int)
    enable = actions.add_parser("enable", help="take requests and pledges again")
    enable.add_argument("id", type=int)

    commands.add_parser("uncovered", help="requests waiting in areas no aggregator covers "
                        "(reference, area, age)")

    invite = commands.add_parser("invite", help="one-time codes to join an aggregator")
    invite.add_argument("role", choices=[InviteRole.STAFF.value, InviteRole.VOLUNTEER.value,
                                         InviteRole.PROXY.value])
    invite.add_argument("--aggregator", type=int, required=True, metavar="ID")
    invite.add_argument("--uses", type=positive, default=1, help="people it admits (1)")
    invite.add_argument("--expires", type=duration, default=timedelta(days=7),
                        help="how long it is valid, e.g. 7d, 12h (7d)")
    invite.add_argument("--pre-approved", action="store_true",
                        help="volunteers who join with it need no staff approval")

    invites = commands.add_parser("invites", help="who joined with each invite code; "
                                  "revoke a code and the volunteers and proxies it let in")
    invite_actions = invites.add_subparsers(dest="action", required=True)
    listing = invite_actions.add_parser("list", help="an aggregator's codes and who joined")
    listing.add_argument("--aggregator", type=int, required=True, metavar="ID")
    revoke = invite_actions.add_parser(
        "revoke", help="a code admits nobody more, the volunteers it let in stop (tasks back "
        "to staff) and the proxies it let in register no more (their households stay; staff "
        "are told which of them no longer hear their news)")
    revoke.add_argument("id", type=positive, metavar="INVITE_ID")
    revoke.add_argument("--keep-volunteers", action="store_true",
                        help="the volunteers it let in stay")
    revoke.add_argument("--keep-proxies", action="store_true",
                        help="the proxies it let in stay")

    log = commands.add_parser("audit", help="staff actions and refused attempts")
    log.add_argument("--aggregator", type=int, metavar="ID")
    log.add_argument("--limit", type=positive, default=50)

    commands.add_parser("support", help="people who asked for a person where no aggregator "
                        "covers them, with their messages")

    export = commands.add_parser("export", help="an aggregator's requests, pledges or "
                                 "deliveries for reports, without personal data")
    export.add_argument("what", choices=KINDS)
    export.add_argument("--aggregator", type=int, required=True, metavar="ID")
    export.add_argument("--format", choices=FORMATS, default=FORMATS[0])
    export.add_argument("--output", type=Path, metavar="FILE",
                        help="write to this file (default: standard output)")


async def run_admin(config: Config, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    services = await open_services(config)
    try:
        if args.command == "aggregator":
            await _aggregator(services, args, out)
        elif args.command == "invite":
            await _invite(services, args, out)
        elif args.command == "invites":
            await _invites(services, args, out)
        elif args.command == "export":
            await _export(services, args, out)
        elif args.command == "support":
            await _support(services, out)
        elif args.command == "uncovered":
            await _uncovered(services, out)
        else:
            await _audit(services, args, out)
        return 0
    except OperatorError as exc:
        print(f"gotong: {exc}", file=sys.stderr)
        return 2
    except UnknownAggregator as exc:
        print(f"gotong: there is no aggregator {exc.args[0]} (see `gotong aggregator list`)",
              file=sys.stderr)
        return 2
    finally:
        await services.close()


def _posko(text: str) -> Posko:
    posko = Posko.parse(text)
    if not posko.address:
        raise OperatorError('--posko needs an address: "Jl. Melati 5, Tebet; Mon-Sat 8-16"')
    return posko


async def _aggregator(services: Services, args: argparse.Namespace, out: TextIO) -> None:
    if args.action in ("disable", "enable"):
        await _switch(services, args, out)
        return
    areas = resolve_areas(services.areas, args.kota, args.kecamatan, args.kelurahan) \
        if args.action != "list" else []
    now = utcnow()
    async with services.sessions() as session, session.begin():
        # Requests waiting where nobody served: those the new coverage reaches are routed.
        before = [row.id for row in await uncovered_requests(session)] \
            if args.action != "list" else []
        if args.action == "add":
            name = " ".join(args.name.split())
            if not name:
                raise OperatorError("--name must not be empty")
            if not areas:
                raise OperatorError("name the areas it covers with --kota, --kecamatan or "
                                    "--kelurahan")
            aggregator = await create_aggregator(session, name, _posko(args.posko), areas, now)
            print(f"added aggregator {aggregator.id}", file=out)
            _show(services, aggregator, out)
            _routed(await route_newly_covered(session, before, aggregator, now), out)
        elif args.action == "edit":
            new_name = " ".join(args.name.split()) if args.name is not None else None
            if new_name == "":
                raise OperatorError("--name must not be empty")
            aggregator = await edit_aggregator(
                session, args.id, name=new_name,
                posko=_posko(args.posko) if args.posko is not None else None,
                area_ids=areas or None)
            _show(services, aggregator, out)
            if aggregator.enabled:
                _routed(await route_newly_covered(session, before, aggregator, now), out)
        else:
            aggregators = await list_aggregators(session)
            if not aggregators:
                print("no aggregators yet: add one with `gotong aggregator add`", file=out)
            for aggregator in aggregators:
                _show(services, aggregator, out)


def _show(services: Services, aggregator: Aggregator, out: TextIO) -> None:
    names = []
    for area in aggregator.areas:
        entry = services.areas.get(area.area_id)
        names.append(entry.name if entry is not None else str(area.area_id))
    hours = f" ({aggregator.posko_hours})" if aggregator.posko_hours else ""
    state = f" [disabled since {aggregator.disabled_at:%Y-%m-%d %H:%M} UTC]" \
        if aggregator.disabled_at is not None else ""
    demo = " [demo data]" if aggregator.demo else ""
    print(f"{aggregator.id}: {aggregator.name}{demo}{state}\n"
          f"   posko: {aggregator.posko_address}{hours}\n"
          f"   covers: {', '.join(names)}", file=out)


def _routed(count: int, out: TextIO) -> None:
    if count:
        print(f"{count} waiting {'request' if count == 1 else 'requests'} in areas no "
              "aggregator covered now go to it; the households are told, and its staff "
              "see them in /queue", file=out)


async def _switch(services: Services, args: argparse.Namespace, out: TextIO) -> None:
    """`aggregator disable|enable ID`."""
    now = utcnow()
    async with services.sessions() as session, session.begin():
        if args.action == "enable":
            enabled = await enable_aggregator(session, args.id, now)
            if enabled is None:
                print(f"aggregator {args.id} is enabled already", file=out)
                return
            print(f"aggregator {args.id} enabled: it takes requests and pledges again; "
                  "its staff are told", file=out)
            _routed(enabled[1], out)
            return
        if await disable_aggregator(session, args.id, now) is None:
            print(f"aggregator {args.id} is disabled already", file=out)
        else:
            print(f"aggregator {args.id} disabled: it takes no new requests or pledges, and "
                  "donors no longer see it; nothing is deleted; its staff are told", file=out)
        work = await open_work(session, services.areas, await get_aggregator(session, args.id))
    _show_open_work(work, out)


def _show_open_work(work: OpenWork, out: TextIO) -> None:
    """Its open work by reference, for whoever takes it over."""
    print("open work to hand over:", file=out)
    for label, references in (
            ("requests waiting in its areas", work.requests),
            ("  of which no other aggregator covers", work.uncovered),
            ("pledges not yet received", work.pledges),
            ("pledges with stock not yet allocated", work.stock_pledges),
            ("deliveries not finished", work.deliveries)):
        listed = f": {', '.join(references)}" if references else ""
        print(f"   {label}: {len(references)}{listed}", file=out)
    if work.uncovered:
        print("   (see `gotong uncovered`; they go to the aggregator that covers their "
              "area next)", file=out)


def _age(created_at: datetime, now: datetime) -> str:
    waited = now - created_at
    if waited >= timedelta(days=1):
        return f"{waited.days}d"
    return f"{int(waited.total_seconds() // 3600)}h"


async def _uncovered(services: Services, out: TextIO) -> None:
    """Each waiting request no enabled aggregator covers: its reference, area and age.
    Never a name or a phone."""
    now = utcnow()
    async with services.sessions() as session:
        waiting = await uncovered_requests(session)
    if not waiting:
        print("every waiting request is in an area an aggregator covers", file=out)
        return
    for request in waiting:
        place = services.areas.place(request.village_id)
        area = place.display() if place is not None else str(request.village_id)
        print(f"{request.reference}  {area}  waiting {_age(request.created_at, now)} "
              f"({request.status})", file=out)
    print(f"{len(waiting)} {'request waits' if len(waiting) == 1 else 'requests wait'} "
          "where no aggregator covers the area: add one with `gotong aggregator add`, or "
          "give the area to one with `gotong aggregator edit`", file=out)


async def _invite(services: Services, args: argparse.Namespace, out: TextIO) -> None:
    now = utcnow()
    async with services.sessions() as session, session.begin():
        code = await create_invite(session, args.aggregator, InviteRole(args.role), args.uses,
                                   now + args.expires, now,
                                   pre_approved=args.pre_approved)
    until = (now + args.expires).strftime("%Y-%m-%d %H:%M UTC")
    if args.role == InviteRole.VOLUNTEER:
        how = f"/volunteer {code} (/relawan {code})"
        approval = " They need no approval." if args.pre_approved else \
            " Staff approve them in the bot (/volunteers)."
    elif args.role == InviteRole.PROXY:
        how = f"/proxy {code} (/pendamping {code})"
        approval = " Then they register households with /register_household (/daftarkan)."
    else:
        how, approval = f"/join {code} (/gabung {code})", ""
    print(f"{code}\nGive this code to the new {args.role}: in the bot they type {how}. "
          f"It admits {args.uses} {'person' if args.uses == 1 else 'people'} until "
          f"{until}.{approval}", file=out)


async def _invites(services: Services, args: argparse.Namespace, out: TextIO) -> None:
    now = utcnow()
    async with services.sessions() as session, session.begin():
        if args.action == "revoke":
            revoked = await revoke_invite(session, args.id, now,
                                          volunteers=not args.keep_volunteers,
                                          proxies=not args.keep_proxies)
            if revoked is None:
                raise OperatorError(f"there is no invite {args.id} (see `gotong invites "
                                    "list --aggregator ID`)")
            names = ", ".join(f"{v.id} {v.name}" for v in revoked.volunteers) or "none"
            proxies = ", ".join(f"{p.id} {p.name}" for p in revoked.proxies) or "none"
            print(f"invite {args.id} revoked; volunteers stopped: {names}; deliveries back "
                  f"to staff: {revoked.tasks_returned}; proxies removed: {proxies}",
                  file=out)
            if revoked.unfollowed:
                print(f"requests whose news came to those proxies and now reaches nobody "
                      f"(staff told): {', '.join(revoked.unfollowed)}", file=out)
            return
        await get_aggregator(session, args.aggregator)
        uses = await invites_of(session, args.aggregator)
    if not uses:
        print(f"aggregator {args.aggregator} has no invite codes", file=out)
    for use in uses:
        invite = use.invite
        state = f"revoked {invite.revoked_at:%Y-%m-%d %H:%M}" if invite.revoked_at else (
            "expired" if invite.expires_at <= now else
            f"{invite.uses_left} uses left until {invite.expires_at:%Y-%m-%d %H:%M}")
        approved = ", pre-approved" if invite.pre_approved else ""
        print(f"invite {invite.id}: {invite.role}{approved}, made "
              f"{invite.created_at:%Y-%m-%d %H:%M}, {state}", file=out)
        for volunteer in use.volunteers:
            print(f"   volunteer {volunteer.id}: {volunteer.name} ({volunteer.status}), "
                  f"joined {volunteer.created_at:%Y-%m-%d %H:%M}", file=out)
        for proxy in use.proxies:
            state = "removed" if proxy.removed_at else "active"
            print(f"   proxy {proxy.id}: {proxy.name} ({state}), "
                  f"joined {proxy.joined_at:%Y-%m-%d %H:%M}", file=out)


async def _audit(services: Services, args: argparse.Namespace, out: TextIO) -> None:
    async with services.sessions() as session:
        entries = await recent_entries(session, args.limit, args.aggregator)
    if not entries:
        print("the audit log is empty", file=out)
    for entry in reversed(entries):
        where = f" aggregator {entry.aggregator_id}" if entry.aggregator_id else ""
        detail = f" ({entry.detail})" if entry.detail else ""
        print(f"{entry.at:%Y-%m-%d %H:%M:%S} contact {entry.contact_id or '-'}{where}: "
              f"{entry.action}: {entry.outcome}{detail}", file=out)


async def _support(services: Services, out: TextIO) -> None:
    """The support conversations no aggregator's staff can see: kept for the operator."""
    async with services.sessions() as session:
        waiting = await unassigned(session)
        if not waiting:
            print("nobody is waiting for the operator", file=out)
        for conversation in waiting:
            print(f"{conversation.id}: contact {conversation.contact_id}, "
                  f"{conversation.role}, asked {conversation.opened_at:%Y-%m-%d %H:%M}",
                  file=out)
            for message in await last_messages(session, conversation.id, 20):
                print(f"   {message.at:%Y-%m-%d %H:%M}: {message.text}", file=out)


async def _export(services: Services, args: argparse.Namespace, out: TextIO) -> None:
    if args.output is None:
        await export_csv(services.reads, services.areas, args.what, args.aggregator, out)
        return
    with output_file(args.output) as fh:
        count = await export_csv(services.reads, services.areas, args.what, args.aggregator, fh)
    print(f"wrote {count} {args.what} of aggregator {args.aggregator} to {args.output}",
          file=out)


@contextlib.contextmanager
def output_file(path: Path) -> Iterator[TextIO]:
    """A file that appears under `path` only once it is complete: a failed export leaves
    no half report that looks whole. Readable by its owner only, like the database."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    except OSError as exc:
        raise OperatorError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
