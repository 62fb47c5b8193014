"""The dashboard's pages after allocation: the board of deliveries, what needs a review
(with the same resolutions as /review), ratings, statistics and CSV exports.

None of these pages shows a household's name, phone or address: staff see the reference,
the kelurahan and what was delivered; a volunteer appears by first name.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select

from gotong.bot.web.dashboard_common import PAGE_ROWS, not_found, page, redirect
from gotong.bot.web.pages import SERVICES
from gotong.bot.web.signin import PREFIX, PageError, Work, staff_reading, staff_work
from gotong.handlers.review import needs_review
from gotong.handlers.staff_actions import (
    RESOLUTIONS,
    Refusal,
    assign_volunteer,
    delivery_of_staff,
    resolve,
)
from gotong.handlers.validators import parse_id
from gotong.models.area import AreaLevel
from gotong.models.delivery import Delivery, DeliveryStatus
from gotong.models.export import KINDS, export_chunks
from gotong.models.help_request import HelpRequest
from gotong.models.stats import area_figures, daily_counts
from gotong.models.tasks import MAX_WRONG_CODES, Volunteers
from gotong.models.volunteer import Volunteer

# Days the statistics chart shows.
CHART_DAYS = 30


async def _rows(work: Work, deliveries: list[Delivery]) -> list[dict[str, Any]]:
    """Each delivery with its request's reference and kelurahan and the volunteer's
    first name: nothing that reaches the household."""
    requests = {r.id: r for r in (await work.session.scalars(select(HelpRequest).where(
        HelpRequest.id.in_({d.request_id for d in deliveries})))).all()} \
        if deliveries else {}
    volunteer_ids = {d.volunteer_id for d in deliveries if d.volunteer_id}
    volunteers = {v.id: v.first_name for v in (await work.session.scalars(
        select(Volunteer).where(Volunteer.id.in_(volunteer_ids)))).all()} \
        if volunteer_ids else {}
    return [{"delivery": d, "reference": requests[d.request_id].reference,
             "village": requests[d.request_id].village_id,
             "volunteer": volunteers.get(d.volunteer_id or 0, "")} for d in deliveries]


async def deliveries_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        columns = []
        for status in DeliveryStatus:
            deliveries = list((await work.session.scalars(
                select(Delivery).where(Delivery.aggregator_id.in_(work.staff.aggregator_ids),
                                       Delivery.status == status)
                .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
                .limit(PAGE_ROWS))).all())
            columns.append({"status": status.value, "rows": await _rows(work, deliveries)})
        return page(request, work, "deliveries", "deliveries",
                    {"columns": columns})


async def _own_delivery(work: Work, delivery_id: str, action: str) -> Delivery:
    delivery = await work.session.get(Delivery, parse_id(delivery_id) or 0)
    if delivery is None or delivery.aggregator_id not in work.staff.aggregator_ids:
        raise not_found(work, action)
    return delivery


async def delivery_page(request: web.Request) -> web.Response:
    async with staff_work(request) as work:
        delivery = await _own_delivery(work, request.match_info["id"], "view_delivery")
        [row] = await _rows(work, [delivery])
        return page(request, work, "delivery", "deliveries",
                    {"row": {**row, **await _review_choices(work, delivery)},
                     "attempts": MAX_WRONG_CODES})


async def _review_choices(work: Work, delivery: Delivery,
                          candidates: Volunteers | None = None) -> dict[str, Any]:
    """What /review offers for this delivery: the resolutions, and volunteers to give it
    to when it can be reassigned (from `candidates`, when a page offers them for many)."""
    if delivery.disputed:
        kind, actions = "disputed", [("yes", "review.was_delivered"),
                                     ("nd", "review.not_delivered")]
    elif delivery.status == DeliveryStatus.AWAITING_REVIEW:
        kind, actions = "proof", [("ok", "review.accept"), ("no", "review.reject")]
    elif delivery.locked or delivery.status == DeliveryStatus.FAILED:
        kind, actions = "locked" if delivery.locked else "failed", [("x", "review.cancel")]
    else:
        return {"kind": None, "actions": [], "volunteers": []}
    volunteers: list[Volunteer] = []
    if kind in ("locked", "failed"):
        request = await work.session.get(HelpRequest, delivery.request_id)
        assert request is not None
        candidates = candidates or Volunteers(work.session, work.actor.areas)
        volunteers = [v for v in await candidates.for_delivery(delivery, request.village_id)
                      if v.id != delivery.volunteer_id]
    return {"kind": kind, "actions": actions,
            "volunteers": [{"id": v.id, "name": v.first_name} for v in volunteers]}


async def reviews_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        ids = work.staff.aggregator_ids
        waiting = list((await work.session.scalars(
            select(Delivery).where(Delivery.aggregator_id.in_(ids),
                                   needs_review())  # type: ignore[arg-type]
            .order_by(Delivery.updated_at, Delivery.id).limit(PAGE_ROWS))).all())
        candidates = Volunteers(work.session, work.actor.areas)
        rows = [{**row, **await _review_choices(work, row["delivery"], candidates)}
                for row in await _rows(work, waiting)]
        rated = Delivery.rating.is_not(None)
        count, average = (await work.session.execute(
            select(func.count(), func.avg(Delivery.rating))
            .where(Delivery.aggregator_id.in_(ids), rated))).one()
        ratings = (await work.session.execute(
            select(HelpRequest.reference, Delivery.rating, Delivery.rating_comment)
            .join(HelpRequest, HelpRequest.id == Delivery.request_id)
            .where(Delivery.aggregator_id.in_(ids), rated)
            .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
            .limit(PAGE_ROWS))).all()
        return page(request, work, "reviews", "reviews", {
            "rows": rows, "attempts": MAX_WRONG_CODES, "rated": count,
            "average": f"{average:.1f}" if count else "", "ratings": ratings})


async def resolve_action(request: web.Request) -> web.Response:
    """A /review resolution: accept or reject a proof, settle a dispute, cancel."""
    async with staff_work(request) as work:
        delivery, refusal = await delivery_of_staff(work.actor, request.match_info["id"],
                                                    "review")
        if delivery is None or refusal is not None:
            raise PageError(404, "not_found")
        action = work.field("action")
        reference = (await _rows(work, [delivery]))[0]["reference"]
        path = f"{PREFIX}/reviews"
        if action not in RESOLUTIONS:
            return redirect(work, path, "changed")
        _, refusal = await resolve(work.actor, delivery, action,
                                   work.config.aid.max_delivery_failures)
        if refusal is not None:
            return redirect(work, path, "changed")
        return redirect(work, path, "resolved", reference)


async def assign_action(request: web.Request) -> web.Response:
    """Reassign a failed or locked delivery to a volunteer covering the household."""
    async with staff_work(request) as work:
        delivery, refusal = await delivery_of_staff(work.actor, request.match_info["id"],
                                                    "assign")
        if delivery is None or refusal is not None:
            raise PageError(404, "not_found")
        reference = (await _rows(work, [delivery]))[0]["reference"]
        path = f"{PREFIX}/reviews"
        volunteer, _, refusal = await assign_volunteer(work.actor, delivery,
                                                       work.field("volunteer"))
        if refusal == Refusal.NOT_YOURS or volunteer is None:
            return redirect(work, path, "not_covering", reference)
        if refusal is not None:
            return redirect(work, path, "changed")
        return redirect(work, path, "assigned", reference)


async def stats_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        config = work.config
        today = work.actor.now.astimezone(ZoneInfo(config.i18n.timezone)).date()
        villages = sorted(work.staff.villages)
        days = await daily_counts(work.session, since=today - timedelta(days=CHART_DAYS - 1),
                                  until=today, timezone=config.i18n.timezone,
                                  village_ids=villages,
                                  aggregator_ids=work.staff.aggregator_ids)
        figures = await area_figures(work.session, work.actor.areas, AreaLevel.VILLAGE,
                                     village_ids=villages)
        return page(request, work, "stats", "stats",
                    {"days": days, "figures": figures})


async def export(request: web.Request) -> web.StreamResponse:
    """An aggregator's requests, pledges or deliveries as CSV: the operator's export,
    with no personal data."""
    kind = request.match_info["kind"]
    if kind not in KINDS:
        raise web.HTTPNotFound()
    async with staff_work(request) as work:
        ids = work.staff.aggregator_ids
        aggregator_id = parse_id(request.query.get("aggregator", "")) or ids[0]
        if aggregator_id not in ids:
            raise not_found(work, f"export_{kind}")
        work.actor.audit(f"export_{kind}", "done", aggregator_id)
    services = request.app[SERVICES]
    # Sent as it is read: the first bytes at once, and memory flat whatever the size; read
    # on the read connections, beside the chat's writer, once the audit is committed.
    async with contextlib.aclosing(export_chunks(services.reads, services.areas, kind,
                                                 aggregator_id)) as chunks:
        response = web.StreamResponse(
            headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'})
        response.content_type = "text/csv"
        response.charset = "utf-8"
        await response.prepare(request)
        async for chunk in chunks:
            await response.write(chunk.encode())
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/deliveries", deliveries_page)
    app.router.add_get(f"{PREFIX}/deliveries/{{id}}", delivery_page)
    app.router.add_post(f"{PREFIX}/deliveries/{{id}}/resolve", resolve_action)
    app.router.add_post(f"{PREFIX}/deliveries/{{id}}/assign", assign_action)
    app.router.add_get(f"{PREFIX}/reviews", reviews_page)
    app.router.add_get(f"{PREFIX}/stats", stats_page)
    app.router.add_get(f"{PREFIX}/export/{{kind}}.csv", export)
