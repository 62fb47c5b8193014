"""The dashboard's list of messages that did not reach the aggregator's people (given up
on, a person who blocked the bot, a template refused, news waiting too long), with a
"send again" for those a new try can get through (models/failures.py).

Like the other pages, it shows the reference of the request or the pledge, or a
volunteer's first name, and never a phone or a name of a household.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from gotong.bot.web.dashboard_common import PAGE_ROWS, not_found, page, redirect
from gotong.bot.web.signin import PREFIX, Work, staff_reading, staff_work
from gotong.handlers.validators import parse_id
from gotong.models.contact import Role
from gotong.models.failures import RetryRefusal, Waiting, retry, unreached
from gotong.models.outbox import Failure

PATH = f"{PREFIX}/failures"

# What each reason is called on the page.
REASON_KEYS: dict[str, str] = {
    Failure.UNREACHABLE: "web.failures.reason_unreachable",
    Failure.NOT_FOR_USERNAME: "web.failures.reason_not_for_username",
    Failure.TEMPLATE_REFUSED: "web.failures.reason_template_refused",
    Failure.REFUSED: "web.failures.reason_refused",
    Failure.GAVE_UP: "web.failures.reason_gave_up",
    Failure.UNKNOWN: "web.failures.reason_unknown",
    Waiting.STUCK: "web.failures.reason_stuck",
    Waiting.HELD: "web.failures.reason_held",
}
ROLE_KEYS: dict[str, str] = {
    Role.HOUSEHOLD: "web.failures.role_household",
    Role.DONOR: "web.failures.role_donor",
    Role.VOLUNTEER: "web.failures.role_volunteer",
}
APP_KEYS: dict[str, str] = {
    "telegram": "web.failures.app_telegram",
    "whatsapp": "web.failures.app_whatsapp",
}
OTHER_APP = "web.failures.app_other"


def _stuck_after(work: Work) -> timedelta:
    return timedelta(minutes=work.config.notifications.stuck_after_minutes)


async def failures_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        rows = await unreached(work.session, work.staff.aggregator_ids, work.actor.now,
                               _stuck_after(work), PAGE_ROWS)
        zone = ZoneInfo(work.config.i18n.timezone)
        return page(request, work, "failures", "failures", {
            "rows": [{"row": row, "reason": REASON_KEYS[row.reason],
                      "role": ROLE_KEYS[row.role], "app": APP_KEYS.get(row.channel, OTHER_APP),
                      "at": row.at.astimezone(zone).strftime("%Y-%m-%d %H:%M")}
                     for row in rows],
            "stuck_after": work.config.notifications.stuck_after_minutes})


async def retry_action(request: web.Request) -> web.Response:
    """Send a message again: only one of the aggregator's people's, and only one a new
    try can get through; audited like every staff action."""
    async with staff_work(request) as work:
        row_id = parse_id(request.match_info["id"]) or 0
        found, refusal = await retry(work.session, work.staff.aggregator_ids, row_id,
                                     work.actor.now, _stuck_after(work))
        if found is None or refusal == RetryRefusal.NOT_THEIRS:
            raise not_found(work, "retry_message")
        if refusal is not None:
            work.actor.audit("retry_message", str(refusal), detail=f"#{row_id}")
            return redirect(work, PATH, "not_retried")
        work.actor.audit("retry_message", "done", detail=f"#{row_id}")
        return redirect(work, PATH, "retried")


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, failures_page)
    app.router.add_post(f"{PATH}/{{id}}/retry", retry_action)
