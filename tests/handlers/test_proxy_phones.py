"""A phone a proxy types for a household is asked before it takes over: until its owner
says "yes, that is us", the request's news and delivery code go to the proxy, and the
owner (known on an app or not) gets one question naming the organisation and the
reference, and nothing else: no role, no request in /status, no household's details. Yes
hands the request over; no takes the number off; forged, foreign and repeated answers
change nothing."""

from __future__ import annotations

from sqlalchemy import select

from gotong.bot.services import Services, is_sqlite
from gotong.handlers.messages import Incoming, Kind, Reply
from gotong.handlers.notices import render_notice
from gotong.models.contact import Contact, ContactRole
from gotong.models.outbox import OutboxMessage
from gotong.models.phone_confirmation import PhoneConfirmation
from tests.chat import Chat
from tests.handlers.race import Move, held, race, texts
from tests.handlers.test_my_data import erase
from tests.handlers.test_proxies import (
    contact,
    new_proxy,
    proxy_world,
    register,
    request_by,
)
from tests.handlers.test_volunteers import contact_of
from tests.lookups import audit_log, outbox

NEIGHBOUR_PHONE = "+6281344445555"
# A number no one wrote from: a WhatsApp chat at it is asked.
STRANGER = "6281311112222"


async def neighbour_known_by_phone(services: Services) -> tuple[Chat, int]:
    """Someone known on the console app, in Indonesian, whose number the app vouched
    for."""
    neighbour = Chat(services.conversations, chat_id="neighbour", language="id")
    await neighbour.say("/start")
    neighbour_id = await contact_of(services, neighbour)
    async with services.sessions() as session, session.begin():
        known = await session.get(Contact, neighbour_id)
        assert known is not None
        known.verified_phone = NEIGHBOUR_PHONE
    return neighbour, neighbour_id


async def the_question(services: Services, contact_id: int) -> OutboxMessage:
    [asked] = await outbox(services, "notice.household_phone_check", contact_id)
    return asked


def button(asked: OutboxMessage, answer: str) -> tuple[str, str]:
    """The context and option of the question's yes or no button."""
    [(context, option)] = [(c, o) for c, o, _ in asked.actions if o.startswith(f"{answer}:")]
    return context, option


async def on_whatsapp(services: Services, chat_id: str, context: str, option: str,
                      language: str = "id") -> list[Reply]:
    """A tap in the WhatsApp chat at this number."""
    return await services.conversations.handle(Incoming(
        channel="whatsapp", chat_id=chat_id, kind=Kind.CHOICE, context=context,
        option=option, language_hint=language, sender_phone=f"+{chat_id}"))


async def roles(services: Services, contact_id: int) -> set[str]:
    async with services.sessions() as session:
        return set((await session.scalars(select(ContactRole.role).where(
            ContactRole.contact_id == contact_id))).all())


async def questions(services: Services) -> list[PhoneConfirmation]:
    async with services.sessions() as session:
        return list((await session.scalars(select(PhoneConfirmation))).all())


async def test_a_known_person_is_asked_and_gets_nothing_until_they_say_yes(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    neighbour, neighbour_id = await neighbour_known_by_phone(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 4444 5555")
    assert "We asked the number you gave to confirm" in chat.last.text, chat.last.text
    proxy_id = await contact_of(services, chat)

    # Until they answer, the request is the proxy's, as for a household without a phone.
    request = await request_by(services, reference)
    assert request.contact_id == proxy_id
    assert request.phone == "+6281200000005"  # the proxy's
    assert await roles(services, neighbour_id) == set()
    assert await outbox(services, "notice.request_submitted", neighbour_id) == []
    # One question, naming the organisation and the reference, in their language, and
    # nothing of the household.
    asked = await the_question(services, neighbour_id)
    assert asked.params == {"organisation": "Posko Jakarta Selatan", "reference": reference}
    text = render_notice(services.catalog, "id", asked.message_key or "", asked.params).text
    assert "Posko Jakarta Selatan mendaftarkan permintaan bantuan untuk keluarga Anda" in text
    assert reference in text
    for private in ("Ibu Sumi", "Melati", "3175"):
        assert private not in text
    assert [label for _, _, label in asked.actions] == ["notice.phone_ours",
                                                        "notice.phone_not_ours"]
    # Their /status and /my_data show nothing of it.
    await neighbour.say("/status")
    assert reference not in neighbour.last.text
    await neighbour.say("/data_saya")
    shown = "\n".join(r.text for r in neighbour.replies[-3:])
    assert reference not in shown and "Ibu Sumi" not in shown
    # The proxy sees that the household has yet to confirm.
    await chat.say("/status")
    assert "waiting for the household to confirm its phone" in chat.last.text

    # Yes: the request is theirs, they are told in their language, and the proxy hears it.
    await neighbour.tap(*reversed(button(asked, "yes")))
    assert f"Permintaan {reference} sekarang diikuti di sini" in neighbour.last.text
    assert "menunggu verifikasi" in neighbour.last.text
    request = await request_by(services, reference)
    assert (request.contact_id, request.phone) == (neighbour_id, NEIGHBOUR_PHONE)
    assert await roles(services, neighbour_id) == {"household"}
    [told] = await outbox(services, "notice.proxy_phone_confirmed", proxy_id)
    assert told.params == {"reference": reference}
    assert ("proxy_phone", "confirmed") in await audit_log(services)
    assert await questions(services) == []
    await neighbour.say("/status")
    assert reference in neighbour.last.text
    # From then on the news is theirs, not the proxy's.
    await staff.say("/queue")
    await staff.tap(f"v:{request.id}", context="q")
    assert len(await outbox(services, "notice.request_verified", neighbour_id)) == 1
    assert await outbox(services, "notice.request_verified", proxy_id) == []
    # The proxy still follows it, without its delivery code.
    await chat.say("/status")
    assert reference in chat.last.text and "confirm its phone" not in chat.last.text


async def test_an_unknown_number_that_says_no_is_taken_off_and_the_proxy_told(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 1111 2222")
    proxy_id = await contact_of(services, chat)
    # Unknown on both apps: a WhatsApp chat at the number is asked, through the outbox
    # (outside WhatsApp's 24 hours, as a template).
    request = await request_by(services, reference)
    [asked_row] = await questions(services)
    stranger = await contact(services, asked_row.contact_id)
    assert (stranger.channel, stranger.chat_id) == ("whatsapp", STRANGER)
    asked = await the_question(services, stranger.id)
    assert request.contact_id == proxy_id

    replies = await on_whatsapp(services, STRANGER, *button(asked, "no"))
    assert "Nomor ini sudah dihapus dari permintaan itu" in replies[-1].text
    assert reference not in replies[-1].text and "Ibu Sumi" not in replies[-1].text
    request = await request_by(services, reference)
    assert (request.contact_id, request.phone) == (proxy_id, "+6281200000005")
    assert await questions(services) == []
    assert await roles(services, stranger.id) == set()
    [told] = await outbox(services, "notice.proxy_phone_declined", proxy_id)
    assert told.params == {"reference": reference}
    assert ("proxy_phone", "declined") in await audit_log(services)

    # The same question answered again (yes, this time) changes nothing.
    replies = await on_whatsapp(services, STRANGER, *button(asked, "yes"))
    assert "bukan untuk Anda, atau sudah dijawab" in replies[-1].text
    assert (await request_by(services, reference)).contact_id == proxy_id
    assert await roles(services, stranger.id) == set()
    await chat.say("/status")
    assert "confirm its phone" not in chat.last.text


async def test_an_unknown_number_that_says_yes_takes_over_on_whatsapp(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 1111 2222")
    [asked_row] = await questions(services)
    asked = await the_question(services, asked_row.contact_id)
    replies = await on_whatsapp(services, STRANGER, *button(asked, "yes"))
    assert f"Permintaan {reference} sekarang diikuti di sini" in replies[-1].text
    request = await request_by(services, reference)
    assert (request.contact_id, request.phone) == (asked_row.contact_id, "+6281311112222")
    assert await roles(services, asked_row.contact_id) == {"household"}


async def test_forged_and_foreign_answers_change_nothing(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    neighbour, neighbour_id = await neighbour_known_by_phone(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 4444 5555")
    proxy_id = await contact_of(services, chat)
    asked = await the_question(services, neighbour_id)
    context, option = button(asked, "yes")
    _, number, token = option.split(":")

    # The right question with a made-up secret.
    await neighbour.tap(f"yes:{number}:{'x' * len(token)}", context=context)
    assert "bukan untuk Anda, atau sudah dijawab" in neighbour.last.text
    # Another question's number with this secret.
    await neighbour.tap(f"yes:{int(number) + 1}:{token}", context=context)
    assert "bukan untuk Anda, atau sudah dijawab" in neighbour.last.text
    # Not a button this question has.
    for made_up in (f"maybe:{number}:{token}", "yes", f"yes:x:{token}", f"no:{number}:"):
        await neighbour.tap(made_up, context=context)
        assert "tombol itu tidak berlaku" in neighbour.last.text, made_up
    # Someone else, even the proxy, tapping the real button.
    intruder = Chat(services.conversations, chat_id="intruder")
    await intruder.tap(option, context=context)
    assert "not for you, or it has been answered already" in intruder.last.text
    await chat.tap(button(asked, "no")[1], context=context)
    assert "not for you" in chat.last.text

    request = await request_by(services, reference)
    assert request.contact_id == proxy_id
    assert len(await questions(services)) == 1
    assert await roles(services, neighbour_id) == set()
    log = await audit_log(services)
    assert log.count(("proxy_phone", "refused")) == 4
    # The real button still works.
    await neighbour.tap(option, context=context)
    assert (await request_by(services, reference)).contact_id == neighbour_id


async def test_the_proxys_own_number_asks_nobody(services: Services) -> None:
    _, _, staff = await proxy_world(services)
    chat = await new_proxy(services, staff)
    async with services.sessions() as session, session.begin():
        proxy = await session.get(Contact, await contact_of(services, chat))
        assert proxy is not None
        proxy.verified_phone = "+6281200000005"
    reference = await register(chat, phone="0812 0000 0005")
    assert "the news and the delivery code will come to you" in chat.last.text
    assert await questions(services) == []
    request = await request_by(services, reference)
    assert request.contact_id == proxy.id


async def test_a_person_asked_who_erases_their_data_is_asked_no_more(
        services: Services) -> None:
    _, _, staff = await proxy_world(services)
    neighbour, neighbour_id = await neighbour_known_by_phone(services)
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 4444 5555")
    asked = await the_question(services, neighbour_id)
    await erase(neighbour)
    assert await questions(services) == []
    request = await request_by(services, reference)
    assert request.contact_id == await contact_of(services, chat)
    # Their old button, from the chat that starts afresh, is refused.
    await neighbour.tap(*reversed(button(asked, "yes")))
    assert (await request_by(services, reference)).contact_id != neighbour_id


async def test_two_answers_at_once_from_one_person_count_once(services: Services) -> None:
    """The same person on two apps taps yes on one and no on the other at the same moment:
    one answer counts, the other is refused (on PostgreSQL the second waits for the
    first's lock on the person's contacts)."""
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
    chat = await new_proxy(services, staff)
    reference = await register(chat, phone="0813 4444 5555")
    asked = await the_question(services, neighbour_id)
    context, yes = button(asked, "yes")
    no = button(asked, "no")[1]

    async def tap(option: str) -> Move:
        async def move(person: Chat) -> list[Reply]:
            return await person.tap(option, context=context)
        return move

    if not is_sqlite(services.config.database.url):
        # On PostgreSQL an answer locks the person's contacts first: the "no" held with
        # its lock taken, about to close the question, makes the "yes" wait, and counts.
        said_no, said_yes = await held(services, other_app, await tap(no),
                                       "DELETE FROM phone_confirmation",
                                       lambda: neighbour.tap(yes, context=context))
        assert "Nomor ini sudah dihapus dari permintaan itu" in texts(said_no)
        assert "bukan untuk Anda, atau sudah dijawab" in texts(said_yes)
        request = await request_by(services, reference)
        assert request.contact_id == await contact_of(services, chat)
        assert len(await outbox(services, "notice.proxy_phone_declined")) == 1
        log = await audit_log(services)
        assert log.count(("proxy_phone", "declined")) == 1
        assert ("proxy_phone", "confirmed") not in log and ("proxy_phone", "refused") in log
        return
    won, lost = await race(services, neighbour, await tap(yes), other_app, await tap(no),
                           "phone_confirmation", verb="DELETE FROM")
    assert "sekarang diikuti di sini" in texts(won)
    assert "bukan untuk Anda, atau sudah dijawab" in texts(lost)
    request = await request_by(services, reference)
    assert (request.contact_id, request.phone) == (neighbour_id, NEIGHBOUR_PHONE)
    assert await outbox(services, "notice.proxy_phone_declined") == []
    log = await audit_log(services)
    assert log.count(("proxy_phone", "confirmed")) == 1
    assert ("proxy_phone", "declined") not in log and ("proxy_phone", "refused") in log
