"""Talking to a person, through the console chat: a household asks for staff from the middle
of a dialog, staff of its aggregator take, answer and close the conversation in chat, the
household hears each step, and staff of another aggregator can do nothing with it. Then
the button after wrong answers, the person with no aggregator, the alert when nobody
answers, and the messages forgotten after `support.keep_days`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from gotong.bot.channels.console import to_incoming
from gotong.bot.config import Config
from gotong.bot.dispatcher import Dispatcher, DispatchSettings
from gotong.bot.services import Services, open_services
from gotong.handlers import forms
from gotong.handlers.catalog import Catalog
from gotong.models.contact import get_or_create_contact
from gotong.models.handover import disable_aggregator
from gotong.models.help_request import NewRequest, submit_request
from gotong.models.outbox import OutboxMessage, OutboxStatus
from gotong.models.support import (
    MAX_TEXT,
    SupportConversation,
    SupportMessage,
    SupportStatus,
)
from tests.bot.cli.test_admin import admin
from tests.chat import Chat
from tests.handlers.test_my_data import erase, tables_holding
from tests.handlers.test_proxies import new_proxy, proxy_world
from tests.handlers.test_proxies import register as register_by_proxy
from tests.handlers.test_staff_stock import join
from tests.lookups import audit_log, count, outbox
from tests.models.aid_world import AidWorld

TIMUR, SELATAN = "Jakarta Timur", "Jakarta Selatan"


async def registered(world: AidWorld, chat_id: str, village_id: int) -> tuple[Chat, int]:
    """A household of the console channel with a submitted request: its chat and contact."""
    contact_id = await request_of(world, "console", chat_id, village_id, "en")
    return Chat(world.services.conversations, chat_id=chat_id), contact_id


async def request_of(world: AidWorld, channel: str, chat_id: str, village_id: int,
                     language: str) -> int:
    """A submitted request of the household at this chat; its contact."""
    services = world.services
    async with services.sessions() as session, session.begin():
        contact, _ = await get_or_create_contact(session, channel, chat_id, language,
                                                 world.now)
        await submit_request(session, contact.id, NewRequest(
            head_name="Dewi Lestari", phone="+6281277778888", nik=None,
            village_id=village_id, street="Jl. Kamboja 3", rt="2", rw="4",
            household_size=4, vulnerabilities=["chronic"], needs=["medicine"],
            needs_other=None), now=world.now, duplicate_window=timedelta(days=90))
        return contact.id


async def contact_of(services: Services, chat_id: str) -> int:
    async with services.sessions() as session:
        contact, _ = await get_or_create_contact(session, "console", chat_id, "en",
                                                 AidWorld(services).now)
        return contact.id


async def the_conversation(services: Services) -> SupportConversation:
    async with services.sessions() as session:
        [found] = (await session.scalars(select(SupportConversation))).all()
        return found


async def test_a_household_asks_for_a_person_and_staff_answer_in_chat(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    selatan = await world.aggregator(SELATAN)
    rina = await join(world, timur, "staff-rina")
    budi = await join(world, timur, "staff-budi")
    other = await join(world, selatan, "staff-selatan")
    household, household_id = await registered(world, "dewi", world.village(TIMUR))

    # In the middle of a pledge, the household asks for a person in words.
    await household.say("/donate")
    question = household.last.text
    await household.say("Talk to a person")
    assert "Staff of Posko Jakarta Timur will read your message" in household.last.text
    assert [o.label for o in household.last.options] == ["Back to the form"]
    # Both staff of the aggregator hear of it; the other aggregator's staff do not.
    told = {row.contact_id for row in await outbox(services, "support.staff_new")}
    assert told == {await contact_of(services, "staff-rina"),
                    await contact_of(services, "staff-budi")}
    await household.say("My mother needs insulin urgently, can someone call me?")
    assert "Sent to staff" in household.last.text

    # Staff see it in /inbox: role, area, the open request and the last message.
    await rina.say("/inbox")
    card = rina.last.text
    assert "Conversation #" in card and "As: household" in card
    assert "Area: " in card and "Jakarta Timur" in card
    assert "Request or pledge: GT-" in card
    assert "› Person: My mother needs insulin urgently" in card
    number = (await the_conversation(services)).id

    # Staff of another aggregator cannot see, take, reply to or close it.
    await other.say("/pesan")
    assert "No messages from people are waiting" in other.last.text
    for action in ("show", "take", "reply", "close", "o"):
        await other.tap(f"{action}:{number}" + (":answered" if action == "o" else ""),
                        context="sp")
        assert "not for your aid organisation" in other.last.text
    assert (await the_conversation(services)).status == SupportStatus.OPEN

    # Rina takes it; Budi, a moment later, cannot.
    await rina.tap(f"take:{number}", context="sp")
    assert f"You took conversation #{number}" in rina.replies[-2].text
    assert f"Type your reply to #{number}" in rina.last.text
    await budi.say("/inbox")
    assert "taken by other staff" in budi.last.text and not budi.last.options
    await budi.tap(f"take:{number}", context="sp")
    assert "already been taken" in budi.last.text
    await budi.tap(f"close:{number}", context="sp")
    assert "not yours to answer" in budi.last.text
    [taken] = await outbox(services, "support.taken", household_id)
    assert taken.params == {"name": "Posko Jakarta Timur"}

    # What Rina types goes to the household through the outbox.
    await rina.say("We will bring insulin tomorrow morning.")
    assert f"Reply sent to #{number}" in rina.last.text
    [answer] = await outbox(services, "support.reply", household_id)
    assert answer.params["text"] == "We will bring insulin tomorrow morning."
    # The household's next message goes to Rina alone.
    await household.say("Thank you, I will be home.")
    [forwarded] = await outbox(services, "support.staff_message")
    assert forwarded.contact_id == await contact_of(services, "staff-rina")
    assert forwarded.params["text"] == "Thank you, I will be home."

    # Rina closes it with an outcome; the household is told.
    await rina.tap(f"close:{number}", context="sp")
    assert [o.label for o in rina.last.options] == [
        "Answered", "Referred elsewhere", "No reply", "Not for us"]
    await rina.tap(rina.option_id("Answered"))
    assert f"Conversation #{number} closed: Answered" in rina.last.text
    [closed] = await outbox(services, "support.closed", household_id)
    assert closed.params == {"outcome": {"key": "support.outcome.answered"}}
    assert (await the_conversation(services)).outcome == "answered"

    # The household's next message is no longer for staff: the pledge's question again.
    await household.say("ok")
    assert "has been closed" in household.replies[-2].text
    assert household.last.text == question

    log = await audit_log(services)
    for entry in [("support_open", "done"), ("support_take", "done"),
                  ("support_take", "already taken"), ("support_reply", "done"),
                  ("support_close", "not taken by them"), ("support_close", "done"),
                  ("support_take", "not their aggregator"),
                  ("support_reply", "not their aggregator")]:
        assert entry in log, entry
    async with services.sessions() as session:
        kept = (await session.scalars(select(SupportMessage).order_by(SupportMessage.id))
                ).all()
    assert [m.from_staff for m in kept] == [False, True, False]


async def test_the_dialog_waits_and_resumes_and_one_conversation_stays_open(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    await join(world, timur, "staff-rina")
    household, _ = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/donate")
    question = household.last.text
    await household.say("/petugas")
    assert "Posko Jakarta Timur" in household.last.text
    await household.tap("resume")
    assert household.last.text.endswith(question)
    # Typed text answers the form again, not staff.
    await household.say("/human")
    assert "is still open" in household.last.text
    await household.say("/continue")
    assert household.last.text.endswith(question)
    assert await count(services, SupportConversation) == 1
    assert await count(services, SupportMessage) == 0
    # From the main menu too.
    await household.say("/menu")
    await household.tap("person", context="menu")
    assert "is still open" in household.last.text


async def test_wrong_answers_offer_a_person_and_nobody_covering_is_said_plainly(
        services: Services) -> None:
    chat = Chat(services.conversations, chat_id="newcomer")
    await chat.say("/request")
    for wrong in ("maybe", "what", "hmm"):
        await chat.say(wrong)
    assert "Type /human to talk to a person" in chat.last.text
    assert forms.TALK in [c.id for c in chat.last.controls]
    await chat.tap(forms.TALK)
    assert "no aid organisation serves your area yet" in chat.last.text
    await chat.say("I have no address, I sleep at the mosque")
    assert "kept for Gotong's operator" in chat.last.text
    conversation = await the_conversation(services)
    assert conversation.aggregator_id is None and conversation.role == "none"
    assert ("support_open", "no aggregator") in await audit_log(services)
    assert await count(services, SupportMessage) == 1
    # The operator sees it from the command line.
    code, out = await admin(services.config, "support")
    assert code == 0
    assert f"{conversation.id}: contact {conversation.contact_id}, none, asked" in out
    assert ": I have no address, I sleep at the mosque" in out


async def test_not_staff_are_refused(services: Services) -> None:
    citizen = Chat(services.conversations, chat_id="citizen")
    await citizen.say("/pesan")
    assert "This is for the staff of an aid organisation" in citizen.last.text
    await citizen.tap("take:1", context="sp")
    assert "This is for the staff" in citizen.last.text
    assert ("support_inbox", "not staff") in await audit_log(services)


async def test_nobody_answering_alerts_all_staff_and_messages_are_forgotten(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    await join(world, timur, "staff-rina")
    await join(world, timur, "staff-budi")
    household, household_id = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    await household.say("Please call me")
    clock = {"now": (await the_conversation(services)).opened_at}
    settings = DispatchSettings(support_answer_within=timedelta(minutes=30),
                                support_keep=timedelta(days=2))
    dispatcher = Dispatcher(services.engine, services.catalog, {}, {}, settings,
                            clock=lambda: clock["now"])
    clock["now"] += timedelta(minutes=29)
    assert await dispatcher.tend_support() == 0
    clock["now"] += timedelta(minutes=2)
    assert await dispatcher.tend_support() == 1
    alerts = await outbox(services, "support.staff_unanswered")
    assert {a.contact_id for a in alerts} == {await contact_of(services, "staff-rina"),
                                              await contact_of(services, "staff-budi")}
    assert alerts[0].params["minutes"] == 31
    # Once per conversation.
    assert await dispatcher.tend_support() == 0
    # Staff take and answer; after keep_days the words of both sides are gone, also from
    # the outbox, the reply still held for the person included.
    staff = Chat(services.conversations, chat_id="staff-rina")
    number = (await the_conversation(services)).id
    await staff.tap(f"take:{number}", context="sp")
    await staff.say("We are on our way")
    async with services.sessions() as session, session.begin():
        [held] = (await session.scalars(select(OutboxMessage).where(
            OutboxMessage.message_key == "support.reply"))).all()
        held.status = OutboxStatus.HELD
    assert await count(services, SupportMessage) == 2
    clock["now"] += timedelta(days=2, minutes=1)
    await dispatcher.tend_support()
    assert await count(services, SupportMessage) == 0
    async with services.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).where(
            OutboxMessage.id == held.id))).all()
    assert rows[0].status == OutboxStatus.SKIPPED and rows[0].params == {}
    assert await outbox(services, "support.reply") == []
    assert await outbox(services, "support.staff_message") == []
    # The conversation itself, with no free text, stays for the figures.
    assert (await the_conversation(services)).status == SupportStatus.TAKEN
    assert household_id


async def test_a_person_who_erases_their_data_leaves_no_support_messages(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    await join(world, timur, "staff-rina")
    household, _ = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    await household.say("I live at Jl. Kamboja 3 behind the mosque")
    assert await count(services, SupportMessage) == 1
    assert "erased" in (await erase(household)).lower()
    assert await count(services, SupportMessage) == 0
    assert await count(services, SupportConversation) == 0


SECRET = "Rumah saya Jl. Kenanga 7 belakang masjid"


async def test_what_an_erased_person_wrote_is_not_delivered_to_staff(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    rina = await join(world, timur, "staff-rina")
    household, _ = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    number = (await the_conversation(services)).id
    await rina.tap(f"take:{number}", context="sp")
    await household.say(SECRET)
    [carried] = await outbox(services, "support.staff_message")
    assert carried.params["text"] == SECRET
    await erase(household)
    async with services.sessions() as session:
        rows = (await session.execute(
            select(OutboxMessage.params, OutboxMessage.status))).all()
    assert not [row for row in rows if "Kenanga" in str(row.params)]


async def test_conversations_taken_by_staff_who_erase_their_data_go_back_to_colleagues(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    rina = await join(world, timur, "staff-rina")
    budi = await join(world, timur, "staff-budi")
    household, _ = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    number = (await the_conversation(services)).id
    await rina.tap(f"take:{number}", context="sp")
    assert (await the_conversation(services)).status == SupportStatus.TAKEN
    await erase(rina)
    conversation = await the_conversation(services)
    assert (conversation.status, conversation.taken_by) == (SupportStatus.OPEN, None)
    await budi.tap(f"take:{number}", context="sp")
    assert f"You took conversation #{number}" in budi.replies[-2].text


async def test_a_disabled_aggregator_gets_no_new_conversations(services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    rina = await join(world, timur, "staff-rina")
    async with services.sessions() as session, session.begin():
        await disable_aggregator(session, timur, world.now)
    household, _ = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    await household.say("I need help")
    assert (await the_conversation(services)).aggregator_id is None
    await rina.say("/inbox")
    assert "No messages from people are waiting" in rina.last.text


async def test_what_an_erased_person_wrote_leaves_staffs_messages_even_once_sent(
        services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    rina = await join(world, timur, "staff-rina")
    household, _ = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    await household.say("Saya tinggal di *gang* sempit, rumah_biru nomor 12")
    number = (await the_conversation(services)).id
    await rina.tap(f"take:{number}", context="sp")
    await household.say(SECRET)
    # Delivered to Rina already; and her /inbox card, kept in the outbox as the replies
    # of a chat app's update are, shows both messages.
    async with services.sessions() as session, session.begin():
        [carried] = (await session.scalars(select(OutboxMessage).where(
            OutboxMessage.message_key == "support.staff_message"))).all()
        carried.status = OutboxStatus.SENT
    await services.conversations.handle_update(
        to_incoming("/inbox", "staff-rina", "en"), keep_reply=True)
    assert set(await tables_holding(services, ["Kenanga 7", "rumah"])) == {
        "Kenanga 7", "rumah"}
    await erase(household)
    assert await tables_holding(services, ["Kenanga 7", "rumah", "sempit"]) == {}


async def test_a_proxy_asking_for_a_person_is_not_shown_as_a_household_they_registered(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    budi = await new_proxy(services, staff)
    # Without a phone of its own, the household's news comes to the proxy's chat: still
    # not the proxy's household.
    reference = await register_by_proxy(budi, phone=None)
    await budi.say("/petugas")
    assert "Posko Jakarta Selatan" in budi.last.text
    conversation = await the_conversation(services)
    assert (conversation.role, conversation.reference) == ("proxy", None)
    await staff.say("/pesan")
    assert "As: proxy" in staff.last.text and reference not in staff.last.text


async def test_a_message_too_long_is_refused_whole_with_a_word_not_cut(
        config: Config, catalog: Catalog) -> None:
    """An operator may let the dialogs read longer messages than a support conversation
    keeps: those are refused with a word, not cut without one."""
    config = replace(config, dialogs=replace(config.dialogs, max_text_length=4000))
    services = await open_services(config, migrate=False, catalog=catalog)
    try:
        await _too_long_refused(services)
    finally:
        await services.close()


async def _too_long_refused(services: Services) -> None:
    world = AidWorld(services)
    timur = await world.aggregator(TIMUR)
    rina = await join(world, timur, "staff-rina")
    household, _ = await registered(world, "dewi", world.village(TIMUR))
    await household.say("/human")
    await household.say("a" * (MAX_TEXT + 1))
    assert f"longer than {MAX_TEXT} characters and was not sent" in household.last.text
    assert await count(services, SupportMessage) == 0
    await household.say("b" * MAX_TEXT)  # at the limit: kept whole
    assert "Sent to staff" in household.last.text

    number = (await the_conversation(services)).id
    await rina.tap(f"take:{number}", context="sp")
    await rina.say("c" * (MAX_TEXT + 1))
    assert f"longer than {MAX_TEXT} characters and was not sent" in rina.last.text
    assert await outbox(services, "support.reply") == []
    await rina.say("short answer")  # still replying to the same conversation
    [answer] = await outbox(services, "support.reply")
    assert answer.params["text"] == "short answer"
    async with services.sessions() as session:
        kept = (await session.scalars(select(SupportMessage.text))).all()
    assert sorted(kept) == sorted(["b" * MAX_TEXT, "short answer"])
