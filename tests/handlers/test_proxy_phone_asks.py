"""What is asked of a number a proxy typed, and what becomes of it: a "no" is remembered
(by a keyed hash, never the number) and not asked again within proxy.declined_days, by
any proxy, and no number gets more than proxy.max_questions_per_day questions; a contact
made only for the question is in no broadcast, and is erased when it says no and holds
nothing else; a number that changed hands is asked of its current owner; staff see where
the phone stands; and the races of an answer with an erasure, and of a registration with
the code's revocation, end consistently on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services, is_sqlite
from gotong.handlers.messages import Incoming, Kind, Reply
from gotong.models.broadcast import Audience, count_recipients, queue_broadcast
from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from gotong.models.number_asks import NumberAsked
from gotong.models.request_status import RequestStatus
from tests.chat import Chat
from tests.handlers.race import held
from tests.handlers.test_proxies import (
    POSTAL_CODE,
    accept,
    new_proxy,
    proxy_world,
    register,
    request_by,
)
from tests.handlers.test_proxy_phones import (
    NEIGHBOUR_PHONE,
    STRANGER,
    button,
    neighbour_known_by_phone,
    on_whatsapp,
    questions,
    the_question,
)
from tests.handlers.test_proxy_revoke import operator_code
from tests.handlers.test_volunteer_limits import admin
from tests.handlers.test_volunteers import contact_of
from tests.lookups import audit_log, outbox

SAID_NO_TO_YOU = "said lately, for another household you registered, that it is not theirs"
NOT_NOW = "The number you gave cannot be asked now, so the request stays with you"
PENDING = "Phone: awaiting the household's answer"
NEW_NUMBER = "from a number Gotong first saw after the question was sent"


async def at_number(services: Services, digits: str) -> list[Contact]:
    """The WhatsApp contacts at this number (not erased)."""
    async with services.sessions() as session:
        return list((await session.scalars(select(Contact).where(
            Contact.channel == "whatsapp", Contact.chat_id == digits))).all())


async def recipients(services: Services) -> int:
    async with services.sessions() as session:
        return await count_recipients(session, Audience())


def other_household(n: int) -> dict[str, str]:
    return {"name": f"Pak Karto {'I' * n}", "address": f"Jl. Mawar No. {n} RT 01 RW 02"}


# --- a "no" remembered, and a cap per day -------------------------------------------------


async def test_a_number_that_said_no_is_not_asked_again_and_other_proxies_learn_nothing(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    budi = await new_proxy(services, staff)
    sari = await new_proxy(services, staff, "rw-02", "Sari Wulandari", "+6281200000002")
    await register(budi, phone="0813 1111 2222")
    [asked] = await questions(services)
    await on_whatsapp(services, STRANGER, *button(await the_question(
        services, asked.contact_id), "no"))
    assert await questions(services) == []

    # The same proxy, again: not asked, and told why.
    again = await register(budi, phone="0813 1111 2222", nik=None, **other_household(1))
    assert SAID_NO_TO_YOU in budi.last.text, budi.last.text
    assert await questions(services) == []
    # Another proxy: not asked either, in words that say nothing of the "no".
    other = await register(sari, phone="0813 1111 2222", nik=None, **other_household(2))
    assert NOT_NOW in sari.last.text and "not theirs" not in sari.last.text, sari.last.text
    assert await questions(services) == []
    # (The one question went with the contact made for it, erased at its "no".)
    assert await outbox(services, "notice.household_phone_check") == []
    # Both requests stay with their proxies, on their numbers, as without a phone.
    for reference, chat, phone in ((again, budi, "+6281200000005"),
                                   (other, sari, "+6281200000002")):
        request = await request_by(services, reference)
        assert (request.contact_id, request.phone) == (await contact_of(services, chat),
                                                       phone)
    assert (await audit_log(services)).count(("proxy_phone", "not asked")) == 2
    # What is remembered does not hold the number.
    async with services.sessions() as session:
        [kept] = (await session.scalars(select(NumberAsked))).all()
    assert kept.declined_at is not None
    assert STRANGER not in kept.number_key and "+62" not in kept.number_key
    assert kept.declined_for == await contact_of(services, budi)


async def test_a_number_is_asked_at_most_so_often_a_day_by_all_proxies(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    _, neighbour_id = await neighbour_known_by_phone(services)
    budi = await new_proxy(services, staff)
    sari = await new_proxy(services, staff, "rw-02", "Sari Wulandari", "+6281200000002")
    for n in range(1, 4):
        await register(budi if n % 2 else sari, phone="0813 4444 5555", nik=None,
                       **other_household(n))
        assert "We asked the number you gave" in (budi if n % 2 else sari).last.text
    assert len(await outbox(services, "notice.household_phone_check", neighbour_id)) == 3
    # The fourth, whoever types it: the same words as for a number that said no.
    await register(budi, phone="0813 4444 5555", nik=None, **other_household(4))
    assert NOT_NOW in budi.last.text, budi.last.text
    await register(sari, phone="0813 4444 5555", nik=None, **other_household(5))
    assert NOT_NOW in sari.last.text, sari.last.text
    assert len(await outbox(services, "notice.household_phone_check", neighbour_id)) == 3
    assert len(await questions(services)) == 3


# --- no broadcast to a number only a proxy typed --------------------------------------------


async def test_a_typed_number_gets_no_broadcast_and_saying_no_erases_it(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    budi = await new_proxy(services, staff)
    before = await recipients(services)
    await register(budi, phone="0813 1111 2222")
    [made] = await at_number(services, STRANGER)
    assert made.proxy_typed_at is not None
    # Never wrote: not counted, not written to.
    assert await recipients(services) == before
    broadcast = await queue_broadcast(services.sessions, "Pengumuman", Audience(),
                                      services.conversations.now())
    assert broadcast.recipients == before
    assert await outbox(services, "notice.broadcast", made.id) == []

    # "No", and nothing else: the contact is erased; the chat goes on as a new one, still
    # out of broadcasts until the person writes again.
    asked = await the_question(services, made.id)
    replies = await on_whatsapp(services, STRANGER, *button(asked, "no"))
    assert "Nomor ini sudah dihapus dari permintaan itu" in replies[-1].text
    async with services.sessions() as session:
        gone = await session.get(Contact, made.id)
    assert gone is not None and gone.erased_at is not None
    assert gone.chat_id == f"erased:{made.id}" and gone.verified_phone is None
    [fresh] = await at_number(services, STRANGER)
    assert fresh.id != made.id and fresh.proxy_typed_at is not None
    assert await recipients(services) == before
    assert ("erase_data", "number declined") in await audit_log(services)
    # Writing again makes the chat one like any other.
    await services.conversations.handle(Incoming(
        channel="whatsapp", chat_id=STRANGER, kind=Kind.TEXT, text="halo",
        language_hint="id", sender_phone=f"+{STRANGER}"))
    [fresh] = await at_number(services, STRANGER)
    assert fresh.proxy_typed_at is None
    assert await recipients(services) == before + 1


async def test_a_typed_number_that_says_yes_is_counted_in_broadcasts(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    budi = await new_proxy(services, staff)
    before = await recipients(services)
    await register(budi, phone="0813 1111 2222")
    [made] = await at_number(services, STRANGER)
    assert await recipients(services) == before
    await on_whatsapp(services, STRANGER, *button(await the_question(services, made.id),
                                                  "yes"))
    [kept] = await at_number(services, STRANGER)
    assert kept.id == made.id and kept.proxy_typed_at is None and kept.erased_at is None
    assert await recipients(services) == before + 1


async def test_a_known_person_who_says_no_keeps_their_contact(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    neighbour, neighbour_id = await neighbour_known_by_phone(services)
    budi = await new_proxy(services, staff)
    await register(budi, phone="0813 4444 5555")
    await neighbour.tap(*reversed(button(await the_question(services, neighbour_id), "no")))
    async with services.sessions() as session:
        known = await session.get(Contact, neighbour_id)
    assert known is not None and known.erased_at is None


# --- a number that changed hands ---------------------------------------------------------


async def test_a_number_that_changed_hands_is_asked_of_its_current_owner(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    former, former_id = await neighbour_known_by_phone(services)
    # Someone new writes on WhatsApp from the number: linked to the former owner, who
    # says "this was not me".
    digits = NEIGHBOUR_PHONE.removeprefix("+")
    await services.conversations.handle(Incoming(
        channel="whatsapp", chat_id=digits, kind=Kind.TEXT, text="halo",
        language_hint="id", sender_phone=NEIGHBOUR_PHONE))
    [current] = await at_number(services, digits)
    [linked] = await outbox(services, "notice.phone_linked", former_id)
    [(context, option, _)] = linked.actions
    await former.tap(option, context=context)
    async with services.sessions() as session:
        now_owner = await session.get(Contact, current.id)
    assert now_owner is not None and now_owner.unlinked_at is not None

    budi = await new_proxy(services, staff)
    await register(budi, phone="0813 4444 5555")
    [asked] = await questions(services)
    assert asked.contact_id == current.id
    assert await outbox(services, "notice.household_phone_check", former_id) == []


async def test_a_number_whose_former_owner_kept_its_whatsapp_chat_asks_the_new_owner(
        services: Services) -> None:
    """The other way round: the former owner is the WhatsApp chat at the number, and the
    new owner proved it on another app."""
    _, _, staff = await proxy_world(services)
    digits = NEIGHBOUR_PHONE.removeprefix("+")
    await services.conversations.handle(Incoming(
        channel="whatsapp", chat_id=digits, kind=Kind.TEXT, text="halo",
        language_hint="id", sender_phone=NEIGHBOUR_PHONE))
    [former] = await at_number(services, digits)
    newcomer = Chat(services.conversations, chat_id="new-owner", language="id")
    await newcomer.handle(Incoming(channel="console", chat_id="new-owner", kind=Kind.TEXT,
                                   text="/start", language_hint="id",
                                   sender_phone=NEIGHBOUR_PHONE))
    newcomer_id = await contact_of(services, newcomer)
    [linked] = await outbox(services, "notice.phone_linked", former.id)
    [(context, option, _)] = linked.actions
    await on_whatsapp(services, digits, context, option)
    async with services.sessions() as session:
        current = await session.get(Contact, newcomer_id)
    assert current is not None and current.unlinked_at is not None

    budi = await new_proxy(services, staff)
    await register(budi, phone="0813 4444 5555")
    [asked] = await questions(services)
    assert asked.contact_id == newcomer_id
    assert await outbox(services, "notice.household_phone_check", former.id) == []


# --- what staff see ------------------------------------------------------------------------


async def queue_card(staff: Chat) -> str:
    await staff.say("/queue")
    return staff.last.text


async def test_staff_see_a_phone_awaiting_the_answer_and_one_confirmed_from_a_new_number(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    budi = await new_proxy(services, staff)
    await register(budi, phone="0813 1111 2222")
    card = await queue_card(staff)
    assert PENDING in card, card
    assert "1111" not in card and STRANGER not in card
    [made] = await at_number(services, STRANGER)
    await on_whatsapp(services, STRANGER, *button(await the_question(services, made.id),
                                                  "yes"))
    card = await queue_card(staff)
    assert PENDING not in card
    assert "Phone confirmed by the household on" in card and NEW_NUMBER in card, card


async def test_staff_see_a_phone_confirmed_by_someone_known_before(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    neighbour, neighbour_id = await neighbour_known_by_phone(services)
    budi = await new_proxy(services, staff)
    reference = await register(budi, phone="0813 4444 5555")
    await neighbour.tap(*reversed(button(await the_question(services, neighbour_id),
                                         "yes")))
    request = await request_by(services, reference)
    assert request.phone_confirmed_at is not None and request.phone_confirmed_new is False
    card = await queue_card(staff)
    assert "Phone confirmed by the household on" in card and NEW_NUMBER not in card, card


# --- races (PostgreSQL) --------------------------------------------------------------------


def pg_only(services: Services) -> None:
    if is_sqlite(services.config.database.url):
        pytest.skip("SQLite has one writer at a time: nothing to race")


async def test_yes_on_one_app_while_the_person_erases_on_the_other(
        services: Services) -> None:
    pg_only(services)
    _, _, staff = await proxy_world(services)
    neighbour, neighbour_id = await neighbour_known_by_phone(services)
    other_app = Chat(services.conversations, chat_id="neighbour-2", language="id")
    await other_app.say("/start")
    other_id = await contact_of(services, other_app)
    async with services.sessions() as session, session.begin():
        for contact_id in (neighbour_id, other_id):
            linked = await session.get(Contact, contact_id)
            assert linked is not None
            linked.person_id = neighbour_id
    budi = await new_proxy(services, staff)
    reference = await register(budi, phone="0813 4444 5555")
    yes = button(await the_question(services, neighbour_id), "yes")
    await other_app.say("/delete_my_data")
    [confirm] = [o.id for o in other_app.last.options if o.id.startswith("yes:")]

    async def erase_it(chat: Chat) -> list[Reply]:
        return await chat.tap(confirm, context="erase")

    async def say_yes() -> list[Reply]:
        return await neighbour.tap(*reversed(yes))

    # The erasure is held after it read what is the person's, its transaction open,
    # while the "yes" comes on the other app.
    await held(services, other_app, erase_it, "UPDATE support_conversation", say_yes)
    request = await request_by(services, reference)
    async with services.sessions() as session:
        owner = await session.get(Contact, request.contact_id)
    assert owner is not None
    # Either the yes came first and its request was erased with the person, or it came
    # second and found nothing to answer: never an open request of an erased person.
    if owner.erased_at is not None:
        assert request.erased_at is not None and request.phone == "-"
        assert request.status == RequestStatus.CANCELLED
    else:
        assert request.contact_id == await contact_of(services, budi)
        assert request.phone == "+6281200000005"
    assert await questions(services) == []


async def test_a_registration_as_the_operator_revokes_the_proxys_code(
        config: Config, services: Services) -> None:
    pg_only(services)
    _, aggregator, _ = await proxy_world(services)
    code, invite_id = await operator_code(config, aggregator)
    budi = await accept(services, code, "rt-05", "Budi Santoso", "+6281200000005")
    await budi.say("/daftarkan")
    await budi.tap("yes")
    await budi.say("Ibu Sumi")
    await budi.tap("skip")
    await budi.tap("skip")
    await budi.say(POSTAL_CODE)
    if budi.last.context == "px.area_pick":
        await budi.tap(budi.last.options[0].id)
    await budi.say_all("Jl. Melati No. 5 RT 03 RW 05", "4", "1,4", "1")
    assert budi.last.context == "px.summary", budi.last.text

    async def submit(chat: Chat) -> list[Reply]:
        return await chat.tap("submit")

    async def revoke() -> str:
        return await admin(config, "invites", "revoke", str(invite_id))

    # The registration is held after its checks, about to write the request, while the
    # operator revokes the code.
    replies, out = await held(services, budi, submit, "INSERT INTO help_request", revoke)
    async with services.sessions() as session:
        registered = list((await session.scalars(select(HelpRequest))).all())
    # Either it came first, and staff hear of it with the proxy's other households whose
    # news reaches nobody now, or it came second and was refused.
    if registered:
        [request] = registered
        assert "Registered" in replies[-1].text
        [unfollowed] = [line for line in out.splitlines() if "reaches nobody" in line]
        assert request.reference in unfollowed, out
    else:
        assert "You are no longer a proxy" in replies[-1].text, replies[-1].text


async def test_the_cap_and_the_no_count_one_number_however_it_is_written(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    budi = await new_proxy(services, staff)
    sari = await new_proxy(services, staff, "rw-02", "Sari Wulandari", "+6281200000002")
    spellings = ("0813 4444 5555", "+62 813-4444-5555", "6281344445555", "(0813) 44445555",
                 "+62 0813 4444 5555")
    for n, spelling in enumerate(spellings[:3], start=1):
        await register(budi, phone=spelling, nik=None, **other_household(n))
        assert "We asked the number you gave" in budi.last.text
    for n, spelling in enumerate(spellings[3:], start=4):
        await register(sari, phone=spelling, nik=None, **other_household(n))
        assert NOT_NOW in sari.last.text, sari.last.text
    assert len(await questions(services)) == 3
    # One "no" to Budi's request: no spelling of the number is asked again.
    first = (await questions(services))[0]
    await on_whatsapp(services, "6281344445555", "hp", f"no:{first.id}:{first.token}")
    async with services.sessions() as session:
        [kept] = (await session.scalars(select(NumberAsked))).all()
    kept_key = kept.number_key
    for n, spelling in enumerate(spellings, start=6):
        async with services.sessions() as session, session.begin():
            # A new day: only the "no" counts.
            row = await session.scalar(select(NumberAsked))
            assert row is not None and row.number_key == kept_key
            row.asks = 0
        await register(sari, phone=spelling, nik=None, **other_household(n))
        assert NOT_NOW in sari.last.text, (spelling, sari.last.text)
    assert len(await questions(services)) == 2
