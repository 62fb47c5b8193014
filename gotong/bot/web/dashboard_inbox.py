"""The dashboard's inbox: the support conversations of the staff member's aggregators,
each with the person's role, area, open request or pledge and its messages, and the same
take, reply and close as chat's /pesan (handlers/support_actions.py), audited as from the
dashboard. Another aggregator's conversation is a 404, and its attempt is audited.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from gotong.bot.web.dashboard_common import FLASH_MESSAGES, PAGE_ROWS, page, redirect
from gotong.bot.web.pages import SERVICES
from gotong.bot.web.signin import PREFIX, PageError, Work, staff_reading, staff_work
from gotong.handlers.staff_actions import Refusal
from gotong.handlers.support_actions import (
    CLOSE,
    REPLY,
    TAKE,
    VIEW,
    area_name,
    close_conversation,
    conversation_of_staff,
    reply_to,
    take_conversation,
)
from gotong.models.support import (
    OUTCOMES,
    SupportConversation,
    SupportMessage,
    inbox,
)

INBOX = f"{PREFIX}/inbox"
# What the page after an action says: its code in the URL -> catalog key, refusal?
FLASHES: dict[str, tuple[str, bool]] = {
    "support_taken": ("web.support.flash_taken", False),
    "support_replied": ("web.support.flash_replied", False),
    "support_closed": ("web.support.flash_closed", False),
    "support_not_yours": ("web.support.flash_not_taken", True),
    "support_empty": ("web.support.flash_empty", True),
    "support_too_long": ("web.support.flash_too_long", True),
}


async def _own(work: Work, conversation_id: str, action: str) -> SupportConversation:
    found, refusal = await conversation_of_staff(work.actor, conversation_id, action)
    if found is None or refusal is not None:
        raise PageError(404, "not_found")
    return found


async def inbox_page(request: web.Request) -> web.Response:
    async with staff_reading(request) as work:
        waiting = await inbox(work.session, work.staff.aggregator_ids, PAGE_ROWS)
        areas = request.app[SERVICES].areas
        rows = [{"conversation": c, "place": area_name(areas, c.area_id)} for c in waiting]
        return page(request, work, "inbox", "inbox", {"rows": rows})


async def conversation_page(request: web.Request) -> web.Response:
    async with staff_work(request) as work:
        found = await _own(work, request.match_info["id"], VIEW)
        messages = (await work.session.scalars(
            select(SupportMessage).where(SupportMessage.conversation_id == found.id)
            .order_by(SupportMessage.id))).all()
        return page(request, work, "support", "inbox", {
            "conversation": found, "messages": messages, "outcomes": OUTCOMES,
            "place": area_name(request.app[SERVICES].areas, found.area_id),
            "mine": found.status == "taken" and found.taken_by == work.actor.contact_id})


async def act(request: web.Request) -> web.Response:
    """Take, reply to or close a conversation: the same checks and operations as chat."""
    action = request.match_info["action"]
    audited = {"take": TAKE, "reply": REPLY, "close": CLOSE}.get(action)
    if audited is None:
        raise web.HTTPNotFound()
    async with staff_work(request) as work:
        found = await _own(work, request.match_info["id"], audited)
        path = f"{INBOX}/{found.id}"
        if action == "take":
            refusal = await take_conversation(work.actor, found)
        elif action == "reply":
            refusal = await reply_to(work.actor, found, work.field("text"))
        else:
            refusal = await close_conversation(work.actor, found, work.field("outcome"))
        if refusal == Refusal.INVALID:
            return redirect(work, path, "support_empty")
        if refusal == Refusal.TOO_LONG:
            return redirect(work, path, "support_too_long")
        if refusal is not None:
            return redirect(work, path, "support_not_yours")
        done = {"take": "support_taken", "reply": "support_replied",
                "close": "support_closed"}[action]
        return redirect(work, INBOX if action == "close" else path, done)


def add_routes(app: web.Application) -> None:
    # The dashboard's own messages are set first (dashboard.add_routes).
    app[FLASH_MESSAGES].update(FLASHES)
    app.router.add_get(INBOX, inbox_page)
    app.router.add_get(f"{INBOX}/{{id}}", conversation_page)
    app.router.add_post(f"{INBOX}/{{id}}/{{action}}", act)
