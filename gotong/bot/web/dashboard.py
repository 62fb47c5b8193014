"""The staff dashboard: the verification queue, pledges and stock, allocation, and the
routes of the other pages (deliveries, reviews, statistics, exports, messages that did
not reach people).

Every page and action runs as the signed-in staff member (bot/signin.py) and goes through
the same checks and domain operations as the chat's staff commands
(handlers/staff_actions.py), with the same audit entries marked as from the dashboard. A
request, pledge or delivery of another aggregator is a 404, and its attempt is audited.
After an action the browser is redirected to a page that says what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gotong.bot.web import dashboard_board, dashboard_failures, dashboard_inbox, signin
from gotong.bot.web.dashboard_common import (
    FLASH_MESSAGES,
    PAGE_ROWS,
    names,
    not_found,
    page,
    redirect,
)
from gotong.bot.web.signin import PREFIX, PageError, Work, staff_reading, staff_work
from gotong.handlers.staff_actions import (
    DUPLICATE,
    REJECT,
    VERIFY,
    Refusal,
    aggregator_villages,
    confirm_allocation,
    decide_request,
    pledge_to_receive,
    receive,
    request_to_review,
)
from gotong.handlers.validators import Invalid, parse_id, parse_quantity, parse_short_text
from gotong.models.aggregator import Aggregator
from gotong.models.allocation import propose
from gotong.models.help_request import REJECT_REASONS, HelpRequest, RequestEvent
from gotong.models.phone_confirmation import pending_for
from gotong.models.pledge import CATEGORIES, Pledge, PledgeStatus, max_quantity
from gotong.models.priority import score_parts
from gotong.models.proxy import proxy_names
from gotong.models.request_status import RequestStatus
from gotong.models.stock import incoming_pledges, stock_of

MAX_REASON = 200
# What the page after an action says: its code in the URL -> catalog key, and whether it
# is a refusal.
FLASHES: dict[str, tuple[str, bool]] = {
    "verify": ("queue.verify_done", False),
    "reject": ("queue.reject_done", False),
    "duplicate": ("queue.duplicate_done", False),
    "request_done": ("queue.already_done", True),
    "received": ("web.dashboard.flash_received", False),
    "pledge_done": ("incoming.already_done", True),
    "quantity": ("web.dashboard.flash_quantity", True),
    "reason": ("web.dashboard.flash_reason", True),
    "allocated": ("web.dashboard.flash_allocated", False),
    "resolved": ("review.resolved", False),
    "changed": ("review.changed", True),
    "assigned": ("web.dashboard.flash_assigned", False),
    "not_covering": ("assign.not_covering", True),
    "retried": ("web.failures.flash_retried", False),
    "not_retried": ("web.failures.flash_not_retried", True),
}
# --- the verification queue -----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A request as the queue shows it: its score and the parts of it, days waiting,
    and the request it may duplicate."""

    request: HelpRequest
    score: float
    parts: dict[str, float]
    days: int
    other: HelpRequest | None = None


def _row(request: HelpRequest, now: datetime, other: HelpRequest | None = None) -> Row:
    parts = score_parts(request.household_size, request.vulnerabilities,
                        request.created_at, now, request.served_before)
    return Row(request, sum(parts.values()), {k: v for k, v in parts.items() if v},
               max((now - request.created_at).days, 0), other)


async def queue_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        query = request.query
        villages = sorted(work.staff.villages,
                          key=lambda v: names(request).village(v))
        village = parse_id(query.get("kelurahan", ""))
        status = query.get("status", RequestStatus.SUBMITTED)
        if status not in [s.value for s in RequestStatus]:
            status = RequestStatus.SUBMITTED
        minimum = parse_id(query.get("min_priority", "")) or 0
        duplicates = query.get("duplicates") == "1"
        chosen = [village] if village in work.staff.villages else sorted(work.staff.villages)
        rows = await _queue_rows(work, chosen, status, minimum, duplicates)
        others = {r.duplicate_of_id for r in rows if r.duplicate_of_id}
        duplicate_of = {r.id: r for r in (await work.session.scalars(
            select(HelpRequest).where(HelpRequest.id.in_(others)))).all()} if others else {}
        now = work.actor.now
        table = [_row(r, now, duplicate_of.get(r.duplicate_of_id or 0)) for r in rows]
        return page(request, work, "queue", "queue", {
            "rows": [row for row in table if row.score >= minimum],
            "villages": villages, "village": village if village in work.staff.villages
            else None, "status": status, "statuses": [s.value for s in RequestStatus],
            "min_priority": minimum or "", "duplicates": duplicates,
            "reasons": REJECT_REASONS})


async def _queue_rows(work: Work, villages: list[int], status: str, minimum: int,
                      duplicates: bool) -> list[HelpRequest]:
    if not villages:
        return []
    query = (select(HelpRequest)
             .where(HelpRequest.status == status, HelpRequest.village_id.in_(villages))
             .order_by(HelpRequest.queue_rank.desc(), HelpRequest.id).limit(PAGE_ROWS))
    if duplicates:
        query = query.where(HelpRequest.duplicate_of_id.is_not(None))
    if minimum:
        # score = rank + days since the epoch (models/priority.py); a day of slack for
        # whole days waiting, the exact score is checked on each row.
        epoch_days = (work.actor.now - datetime(2020, 1, 1, tzinfo=UTC)).total_seconds() \
            / 86_400
        query = query.where(HelpRequest.queue_rank >= minimum - epoch_days - 1)
    return list((await work.session.scalars(query)).all())


async def _own_request(work: Work, action: str, request_id: str) -> HelpRequest:
    request = await work.session.get(HelpRequest, parse_id(request_id) or 0)
    if request is None or request.village_id not in work.staff.villages:
        raise not_found(work, action)
    return request


async def request_page(request: web.Request) -> web.Response:
    async with staff_work(request) as work:
        found = await _own_request(work, "view_request", request.match_info["id"])
        events = (await work.session.scalars(
            select(RequestEvent).where(RequestEvent.request_id == found.id)
            .order_by(RequestEvent.id))).all()
        other = await work.session.get(HelpRequest, found.duplicate_of_id) \
            if found.duplicate_of_id else None
        now = work.actor.now
        # Staff see who registered it when a proxy did, on the household's behalf.
        proxy = (await proxy_names(work.session, [found.proxy_id])).get(found.proxy_id) \
            if found.proxy_id is not None else None
        # Whether the phone shown is still the proxy's, the household's number waiting
        # for its answer (never shown), as in chat's /queue.
        phone_pending = bool(await pending_for(work.session, [found.id]))
        return page(request, work, "request", "queue", {
            "row": _row(found, now, other), "proxy": proxy, "phone_pending": phone_pending,
            "events": events, "reasons": REJECT_REASONS})


async def decide(request: web.Request) -> web.Response:
    """Verify, reject or mark a duplicate: the same checks and operation as /queue."""
    action = request.match_info["action"]
    if action not in (VERIFY, REJECT, DUPLICATE):
        raise web.HTTPNotFound()
    async with staff_work(request) as work:
        found, refusal = await request_to_review(work.actor, request.match_info["id"], action)
        if found is None or refusal == Refusal.NOT_YOURS:
            raise PageError(404, "not_found")
        back = work.field("back") if work.field("back") == "request" else ""
        path = f"{PREFIX}/requests/{found.id}" if back else PREFIX
        if refusal == Refusal.ALREADY_DONE:
            return redirect(work, path, "request_done", found.reference)
        reason: str | None = None
        if action == REJECT:
            reason = work.field("reason")
            if reason == "other" or reason not in REJECT_REASONS:
                typed = parse_short_text(work.field("other_reason"), MAX_REASON)
                if isinstance(typed, Invalid):
                    return redirect(work, path, "reason", found.reference)
                reason = typed
        refusal = await decide_request(work.actor, found, action, reason)
        if refusal is not None:
            return redirect(work, path, "request_done", found.reference)
        return redirect(work, path, action, found.reference)


# --- pledges and stock ----------------------------------------------------------------


async def pledges_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        ids = work.staff.aggregator_ids
        incoming = await incoming_pledges(work.session, ids, PAGE_ROWS)
        recent = (await work.session.scalars(
            select(Pledge).where(Pledge.aggregator_id.in_(ids),
                                 Pledge.status != PledgeStatus.PLEDGED)
            .order_by(Pledge.updated_at.desc(), Pledge.id.desc()).limit(PAGE_ROWS))).all()
        stock = await stock_of(work.session, ids)
        return page(request, work, "pledges", "pledges", {
            "incoming": incoming, "recent": recent, "categories": CATEGORIES,
            "stock": stock})


async def pledge_page(request: web.Request) -> web.Response:
    async with staff_work(request) as work:
        pledge = await work.session.get(Pledge, parse_id(request.match_info["id"]) or 0)
        if pledge is None or pledge.aggregator_id not in work.staff.aggregator_ids:
            raise not_found(work, "view_pledge")
        return page(request, work, "pledge", "pledges", {"pledge": pledge})


async def receive_action(request: web.Request) -> web.Response:
    """The pledge arrived: the quantity counted goes into stock, as /incoming does."""
    async with staff_work(request) as work:
        pledge, refusal = await pledge_to_receive(work.actor, request.match_info["id"])
        if pledge is None or refusal == Refusal.NOT_YOURS:
            raise PageError(404, "not_found")
        path = f"{PREFIX}/pledges"
        if refusal == Refusal.ALREADY_DONE:
            return redirect(work, path, "pledge_done", pledge.code)
        # The page says what a quantity must be; the hint's words are the chat's.
        counted = parse_quantity(work.field("quantity"), max_quantity(pledge.category),
                                 unit="")
        if isinstance(counted, Invalid):
            return redirect(work, path, "quantity", pledge.code)
        if await receive(work.actor, pledge, counted) is not None:
            return redirect(work, path, "pledge_done", pledge.code)
        return redirect(work, path, "received", pledge.code)


# --- allocation -----------------------------------------------------------------------


async def _stock_choices(work: Work) -> list[dict[str, Any]]:
    """(aggregator, category) pairs with stock, for the allocation form."""
    aggregators = {a.id: a.name for a in (await work.session.scalars(
        select(Aggregator).where(Aggregator.id.in_(work.staff.aggregator_ids)))).all()}
    choices = []
    for aggregator_id in work.staff.aggregator_ids:
        stock = await stock_of(work.session, [aggregator_id])
        choices += [{"aggregator": aggregator_id, "name": aggregators.get(aggregator_id, ""),
                     "category": c, "stock": stock[c]}
                    for c in CATEGORIES if stock.get(c, 0) > 0]
    return choices


async def _proposal(work: Work, aggregator_id: int, category: str, per: int
                    ) -> tuple[int, list[HelpRequest]]:
    """Stock in hand and the households it would go to now, as /allocate proposes."""
    in_stock = (await stock_of(work.session, [aggregator_id])).get(category, 0)
    room = min(work.config.aid.allocation_size, in_stock // per)
    households = await propose(work.session, await aggregator_villages(work.actor,
                                                                       aggregator_id),
                               room, work.actor.now, _cooldown(work))
    return in_stock, households


def _cooldown(work: Work) -> timedelta:
    return timedelta(days=work.config.aid.cooldown_days)


def _allocation_form(request: web.Request, work: Work, choices: list[dict[str, Any]]
                     ) -> tuple[int, str, int] | None:
    source = work.form if work.form is not None else request.query
    choice = str(source.get("stock", ""))
    aggregator, _, category = choice.partition(":")
    per = parse_quantity(str(source.get("per", "")), max_quantity(category)
                         if category in CATEGORIES else 1, unit="")
    picked = next((c for c in choices if f"{c['aggregator']}:{c['category']}" == choice),
                  None)
    if picked is None or isinstance(per, Invalid) or parse_id(aggregator) is None:
        return None
    return picked["aggregator"], picked["category"], per


async def allocate_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        choices = await _stock_choices(work)
        chosen = _allocation_form(request, work, choices)
        context: dict[str, Any] = {"choices": choices, "chosen": None,
                                   "stock_choice": request.query.get("stock", ""),
                                   "per": request.query.get("per", "1")}
        if chosen is not None:
            aggregator_id, category, per = chosen
            in_stock, households = await _proposal(work, aggregator_id, category, per)
            now = work.actor.now
            context.update(chosen={"aggregator": aggregator_id, "category": category,
                                   "per": per, "stock": in_stock,
                                   "total": per * len(households)},
                           households=[_row(r, now) for r in households])
        return page(request, work, "allocate", "allocate", context)


async def allocate_action(request: web.Request) -> web.Response:
    """Allocate the proposal the page showed: those of its households that the proposal
    still holds now (nobody can be slipped in out of order through the form)."""
    async with staff_work(request) as work:
        choices = await _stock_choices(work)
        chosen = _allocation_form(request, work, choices)
        path = f"{PREFIX}/allocate"
        if chosen is None:
            return redirect(work, path, "quantity")
        aggregator_id, category, per = chosen
        _, households = await _proposal(work, aggregator_id, category, per)
        shown = {parse_id(str(v)) for v in (work.form.getall("request", [])
                                             if work.form is not None else [])}
        picks = [r.id for r in households if r.id in shown]
        outcome = await confirm_allocation(work.actor, aggregator_id, category, per, picks,
                                           {}, _cooldown(work))
        if outcome is None:
            raise PageError(404, "not_found")
        return redirect(work, path, "allocated", count=len(outcome.deliveries))


def add_routes(app: web.Application) -> None:
    """Register the dashboard's routes."""
    signin.add_routes(app)
    # A copy: the other pages add their own (dashboard_inbox.py).
    app[FLASH_MESSAGES] = dict(FLASHES)
    app.router.add_get(PREFIX, queue_page)
    app.router.add_get(f"{PREFIX}/requests/{{id}}", request_page)
    app.router.add_post(f"{PREFIX}/requests/{{id}}/{{action}}", decide)
    app.router.add_get(f"{PREFIX}/pledges", pledges_page)
    app.router.add_get(f"{PREFIX}/pledges/{{id}}", pledge_page)
    app.router.add_post(f"{PREFIX}/pledges/{{id}}/receive", receive_action)
    app.router.add_get(f"{PREFIX}/allocate", allocate_page)
    app.router.add_post(f"{PREFIX}/allocate", allocate_action)
    dashboard_board.add_routes(app)
    dashboard_inbox.add_routes(app)
    dashboard_failures.add_routes(app)
