"""The dashboard's inbox over HTTP: staff take, answer and close a person's support
conversation from the browser, with the form's CSRF token, and the person hears of each
step; staff of another aggregator can neither see nor touch it."""

from __future__ import annotations

from sqlalchemy import select

from gotong.models.support import MAX_TEXT, SupportConversation, SupportStatus
from tests.bot.web.test_dashboard import Site, audit_entries
from tests.handlers.test_staff_stock import join
from tests.handlers.test_support import registered
from tests.lookups import outbox

TIMUR, SELATAN = "Jakarta Timur", "Jakarta Selatan"


async def conversation(site: Site) -> SupportConversation:
    async with site.services.sessions() as session:
        [found] = (await session.scalars(select(SupportConversation))).all()
        return found


async def test_staff_take_reply_and_close_from_the_inbox_page(site: Site) -> None:
    world = site.world
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator(SELATAN)
    rina = await site.sign_in(await join(world, timur, "staff-rina"))
    budi = await site.sign_in(await join(world, timur, "staff-budi"))
    stranger = await site.sign_in(await join(world, selatan, "staff-selatan"))
    household, household_id = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    await household.say("We need a wheelchair for my father")
    number = (await conversation(site)).id
    page = f"/dashboard/inbox/{number}"

    status, text, _ = await rina.get("/dashboard/inbox")
    assert status == 200 and f'href="/dashboard/inbox/{number}">#{number}</a>' in text
    assert "household" in text and "GT-" in text and "Waiting for staff" in text
    assert 'aria-current="page">Inbox</a>' in text
    status, text, _ = await rina.get(page)
    assert status == 200 and "We need a wheelchair for my father" in text
    assert 'id="take"' in text and 'id="reply"' not in text

    # A form without its token is refused and changes nothing.
    status, _, _ = await rina.post(f"{page}/take", {"csrf": "0" * 64})
    assert status == 403
    assert (await conversation(site)).status == SupportStatus.OPEN

    # Another aggregator's staff: not listed, and a 404 for the page and every action.
    status, text, _ = await stranger.get("/dashboard/inbox")
    assert status == 200 and f"#{number}" not in text
    assert (await stranger.get(page))[0] == 404
    token = await stranger.csrf("/dashboard/inbox")
    for action, fields in (("take", {}), ("reply", {"text": "hello"}),
                           ("close", {"outcome": "answered"})):
        status, _, _ = await stranger.post(f"{page}/{action}", {"csrf": token, **fields})
        assert status == 404, action
    assert (await conversation(site)).status == SupportStatus.OPEN
    assert await outbox(site.services, "support.reply") == []

    # Rina takes it; Budi cannot take it after her, nor answer or close it.
    status, text = await rina.form(f"{page}/take", {}, from_page=page)
    assert status == 200 and "You took the conversation" in text
    assert 'id="reply"' in text and 'id="take"' not in text
    [taken] = await outbox(site.services, "support.taken", household_id)
    assert taken.params == {"name": "Posko Jakarta Timur"}
    for action, fields in (("take", {}), ("reply", {"text": "me too"}),
                           ("close", {"outcome": "answered"})):
        status, text = await budi.form(f"{page}/{action}", fields, from_page=page)
        assert status == 200 and "not yours to answer" in text, action

    # Her replies go to the household through the outbox; an empty one is refused.
    status, text = await rina.form(f"{page}/reply", {"text": "  "}, from_page=page)
    assert "Type a reply first" in text
    # Longer than a conversation keeps: refused whole, with a word, not cut.
    status, text = await rina.form(f"{page}/reply", {"text": "x" * (MAX_TEXT + 1)},
                                   from_page=page)
    assert "That reply is too long and was not sent" in text
    assert await outbox(site.services, "support.reply") == []
    status, text = await rina.form(f"{page}/reply", {"text": "We bring one tomorrow."},
                                   from_page=page)
    assert "Your reply is on its way" in text and "We bring one tomorrow." in text
    [reply] = await outbox(site.services, "support.reply", household_id)
    assert reply.params == {"name": "Posko Jakarta Timur", "text": "We bring one tomorrow."}

    status, text = await rina.form(f"{page}/close", {"outcome": "referred"}, from_page=page)
    assert status == 200 and "The conversation is closed" in text
    assert f"#{number}" not in text
    closed = await conversation(site)
    assert closed.status == SupportStatus.CLOSED and closed.outcome == "referred"
    [told] = await outbox(site.services, "support.closed", household_id)
    assert told.params == {"outcome": {"key": "support.outcome.referred"}}

    entries = await audit_entries(site.services)
    for entry in [("support_take", "done", f"#{number} [dashboard]"),
                  ("support_take", "already taken", f"#{number} [dashboard]"),
                  ("support_reply", "done", f"#{number} [dashboard]"),
                  ("support_reply", "not taken by them", f"#{number} [dashboard]"),
                  ("support_close", "done", f"#{number} referred [dashboard]"),
                  ("support_view", "not their aggregator", "[dashboard]"),
                  ("support_take", "not their aggregator", "[dashboard]"),
                  ("dashboard_form", "bad csrf", "")]:
        assert entry in entries, entry
    # What was written never reaches the audit log.
    assert not any("tomorrow" in detail for _, _, detail in entries)
