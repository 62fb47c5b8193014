"""The household request dialog, driven as a person would type and tap."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gotong.bot.services import Services
from gotong.handlers.conversations import Conversations
from gotong.handlers.messages import Kind
from gotong.models.contact import Contact
from gotong.models.conversation import Conversation
from gotong.models.help_request import HelpRequest
from gotong.models.nik import nik_hash
from gotong.models.request_status import RequestStatus
from tests.chat import Chat
from tests.conftest import NIK_KEY

NIK = "3171234508900001"  # Jakarta, born 5 Aug 1990, a woman (day + 40)


async def start_request(chat: Chat) -> None:
    await chat.say("/start")
    await chat.tap("request")
    assert chat.last.context == "hh.consent"
    await chat.tap("yes")


async def register(chat: Chat, *, name: str = "Siti Aminah", phone: str = "0812 3456 7890",
                   nik: str = NIK, area: str = "12930",
                   address: str = "Jl. Melati No. 5 RT 03 RW 05") -> list[str]:
    """Answer every question by typing; return the texts of all replies."""
    await start_request(chat)
    await chat.say_all(name, phone, nik, area, address, "4", "1,4", "1")
    assert chat.last.context == "hh.summary", chat.last.text
    await chat.say("1")
    return [r.text for r in chat.replies]


async def stored_requests(services: Services) -> list[HelpRequest]:
    async with services.sessions() as session:
        return list((await session.scalars(select(HelpRequest).order_by(HelpRequest.id))).all())


async def test_full_registration_by_typing(services: Services) -> None:
    chat = Chat(services.conversations)
    texts = await register(chat)
    assert re.search(r"Reference: GT-[2-9A-HJKMNP-TW-Z]{5}\b", texts[-1])
    assert "waiting for verification" in texts[-1]
    [request] = await stored_requests(services)
    assert request.status == RequestStatus.SUBMITTED
    assert request.head_name == "Siti Aminah"
    assert request.phone == "+6281234567890"
    assert request.nik_hash == nik_hash(NIK, NIK_KEY.encode())
    assert request.nik_last4 == "0001"
    assert services.areas.place(request.village_id).village == "Karet Semanggi"  # type: ignore[union-attr]
    assert (request.street, request.rt, request.rw) == ("Jl. Melati No. 5", "003", "005")
    assert request.household_size == 4
    assert request.vulnerabilities == ["elderly", "under_five"]
    assert request.needs == ["food"]
    assert request.duplicate_of_id is None
    async with services.sessions() as session:
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None and conversation.dialog is None


async def test_the_nik_is_never_stored_in_clear(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Siti Aminah", "0812 3456 7890", NIK)
    async with services.sessions() as session:
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None
    assert NIK not in str(conversation.answers)
    await chat.say("12930")
    await chat.say_all("Jl. Melati No. 5 RT 03 RW 05", "4", "1", "1", "1")
    async with services.sessions() as session:
        rows = (await session.execute(select(HelpRequest.__table__))).all()
    assert rows and all(NIK not in str(row) for row in rows)


async def test_area_by_menus_with_paging(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "skip")
    assert chat.last.context == "hh.kota"
    await chat.tap(chat.option_id("Jakarta Timur"))
    assert chat.last.context == "hh.kecamatan"
    assert "Jakarta Timur" in chat.last.text
    # Jakarta Timur has 10 kecamatan: a second page.
    assert chat.last.pages == 2
    assert any(c.id == ">1" for c in chat.last.controls)
    await chat.tap(">1")
    assert chat.last.edit and chat.last.page == 1
    await chat.tap(chat.option_id("Pulo Gadung"))
    assert chat.last.context == "hh.kelurahan"
    await chat.say("rawamangun")
    assert chat.last.context == "hh.address"


async def test_typed_number_counts_across_pages(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "-")
    await chat.say("Jakarta Timur")
    assert chat.last.context == "hh.kecamatan"
    numbers = [o.number for o in chat.last.options]
    assert numbers == list(range(1, 9))
    await chat.say("10")
    assert chat.last.context == "hh.kelurahan"


async def test_fuzzy_kelurahan_name_asks_did_you_mean(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "skip", "karet semangi")
    assert chat.last.context == "hh.area_pick"
    assert "Did you mean" in chat.last.text
    await chat.tap(chat.option_id("Karet Semanggi"))
    assert chat.last.context == "hh.address"


async def test_none_of_these_goes_back_to_the_area_question(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "skip", "karet semangi")
    await chat.tap("none")
    assert chat.last.context == "hh.kota"


async def test_unknown_place_gets_a_specific_hint(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "skip", "99999")
    assert "postal code 99999" in chat.last.text and chat.last.context == "hh.kota"
    await chat.say("qqqqzzzz")
    assert "could not find that place" in chat.last.text


async def test_postal_code_shared_by_several_kelurahan_asks_which(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Budi Santoso", "081298765432", "skip", "11730")
    assert chat.last.context == "hh.area_pick"
    labels = [o.label for o in chat.last.options]
    assert any("Cengkareng Barat" in label for label in labels)
    assert any("Cengkareng Timur" in label for label in labels)


async def test_back_goes_one_question_back(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say("Budi Santoso")
    assert chat.last.context == "hh.phone"
    await chat.say("/back")
    assert chat.last.context == "hh.name"
    await chat.say("Budi Santoso")
    await chat.say("081298765432")
    await chat.tap("back")
    assert chat.last.context == "hh.phone"


async def test_edit_from_summary_returns_to_summary(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Siti Aminah", "0812 3456 7890", NIK, "12930",
                   "Jl. Melati No. 5 RT 03 RW 05", "4", "1,4", "1")
    assert chat.last.context == "hh.summary"
    await chat.tap("edit:phone")
    assert chat.last.context == "hh.phone"
    await chat.say("0857 1111 2222")
    assert chat.last.context == "hh.summary"
    assert "+6285711112222" in chat.last.text
    await chat.tap("edit:kota")
    assert chat.last.context == "hh.kota"
    await chat.say("10110")  # Gambir
    # The street given for the old kelurahan does not fit the new one.
    assert chat.last.context == "hh.address"
    assert "The area is now Gambir, so the address you gave before no longer fits" \
        in chat.last.text
    await chat.say("Jl. Kebon Sirih No. 2 RT 01 RW 02")
    assert chat.last.context == "hh.summary"
    assert "Gambir" in chat.last.text and "Jl. Kebon Sirih No. 2" in chat.last.text
    await chat.tap("submit")
    [request] = await stored_requests(services)
    assert request.phone == "+6285711112222"
    assert services.areas.place(request.village_id).village == "Gambir"  # type: ignore[union-attr]


async def test_multi_select_by_buttons_and_exclusive_none(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Siti Aminah", "0812 3456 7890", "skip", "12930",
                   "Jl. Melati No. 5 RT 03 RW 05", "4")
    assert chat.last.context == "hh.vulnerable"
    await chat.tap("elderly")
    await chat.tap("pregnant")
    assert {o.id for o in chat.last.options if o.selected} == {"elderly", "pregnant"}
    assert chat.last.edit
    # "None of these" is the whole answer: the question ends at once.
    await chat.tap("none")
    assert chat.last.context == "hh.needs"
    await chat.tap("done")
    assert "at least 1" in chat.last.text
    await chat.say("1, 5")
    assert chat.last.context == "hh.needs_other"
    await chat.say("adult diapers")
    assert chat.last.context == "hh.summary"
    await chat.say("submit")
    [request] = await stored_requests(services)
    assert request.vulnerabilities == []
    assert request.needs == ["food", "other"]
    assert request.needs_other == "adult diapers"


async def test_combining_none_with_others_by_typing_is_refused(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say_all("Siti Aminah", "0812 3456 7890", "skip", "12930",
                   "Jl. Melati No. 5 RT 03 RW 05", "4", "1,7")
    assert "cannot be combined" in chat.last.text
    await chat.say("1,9")
    assert 'option "9"' in chat.last.text
    assert chat.last.context == "hh.vulnerable"


async def test_consent_refused_stores_nothing(services: Services) -> None:
    chat = Chat(services.conversations)
    await chat.say("/start")
    await chat.tap("request")
    await chat.tap("no")
    assert "nothing has been saved" in chat.last.text
    assert await stored_requests(services) == []
    async with services.sessions() as session:
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None and conversation.answers == {}
    assert conversation.dialog is None


async def test_wrong_answers_get_hints_then_help(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say("Budi Santoso")
    await chat.say("12345")
    assert "does not look like a phone number" in chat.last.text
    assert chat.last.context == "hh.phone"
    await chat.say("+65 6123 4567")
    assert "Indonesian number" in chat.last.text
    assert "Having trouble?" not in chat.last.text
    await chat.say("021 555 1234")
    assert "mobile number" in chat.last.text
    assert "Having trouble?" in chat.last.text
    await chat.say("0812 3456 7890")
    assert chat.last.context == "hh.nik"


async def test_every_nik_failure_has_its_hint(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say("Budi Santoso")
    await chat.say("081298765432")
    cases = {
        "317123450890001": "16 digits; that was 15",
        "31712345089000AB": "only digits",
        "9971234508900001": "province code",
        "3100004508900001": "kota/kecamatan code",
        "3171239913900001": "not a real date",
        "3171234508900000": "cannot be 0000",
    }
    for nik, hint in cases.items():
        await chat.say(nik)
        assert hint in chat.last.text, (nik, chat.last.text)
        assert chat.last.context == "hh.nik"


async def test_non_text_messages_are_re_asked(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    expectations = {Kind.PHOTO: "cannot read photos", Kind.STICKER: "sticker",
                    Kind.VOICE: "voice messages", Kind.LOCATION: "cannot use a location",
                    Kind.OTHER: "that kind of message", Kind.CONTACT: "contact card"}
    for kind, hint in expectations.items():
        await chat.send_kind(kind)
        assert hint in chat.last.text, kind
        assert chat.last.context == "hh.name"
    await chat.say("   ")
    assert "did not get an answer" in chat.last.text
    await chat.say("Budi Santoso")
    assert chat.last.context == "hh.phone"


async def test_shared_contact_answers_the_phone_question(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say("Budi Santoso")
    assert chat.last.contact_label == "📱 Share my number"
    await chat.send_kind(Kind.CONTACT, phone="6281298765432", phone_is_own=True)
    assert chat.replies[-2].remove_keyboard
    assert chat.last.context == "hh.nik"
    async with services.sessions() as session:
        contact = await session.scalar(select(Contact))
    assert contact is not None and contact.verified_phone == "+6281298765432"


async def test_too_long_text_is_refused_with_the_limit(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say("A" * 5000)
    assert "at most 1000 characters" in chat.last.text
    assert chat.last.context == "hh.name"
    await chat.say("Budi " + "a" * 200)
    assert "at most 100 characters" in chat.last.text


async def test_language_switch_mid_dialog_repeats_the_question(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await start_request(chat)
    assert "nama lengkap kepala keluarga" in chat.last.text
    await chat.say("/language en")
    assert "Language changed to English" in chat.last.text
    assert "full name of the head of the household" in chat.last.text
    await chat.say("/bahasa")
    assert chat.last.context == "lang"
    await chat.say("1")
    assert "Bahasa Indonesia" in chat.last.text and "nama lengkap" in chat.last.text
    await chat.say("Budi Santoso")
    assert chat.last.context == "hh.phone"


async def test_cancel_leaves_the_dialog(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.say("Budi Santoso")
    await chat.say("/batal")
    assert chat.replies[-2].text == "Cancelled. Nothing was saved."
    assert chat.last.context == "menu"
    await chat.tap("request")
    assert chat.last.context == "hh.consent"


async def test_stale_and_tampered_buttons_are_refused(services: Services) -> None:
    chat = Chat(services.conversations)
    await start_request(chat)
    await chat.tap("yes", context="hh.consent")
    assert "earlier question" in chat.last.text and chat.last.context == "hh.name"
    await chat.say("Budi Santoso")
    await chat.say("081298765432")
    await chat.tap("9999999")
    assert "not valid" in chat.last.text and chat.last.context == "hh.nik"
    await chat.tap("<script>", context="menu")
    assert "not valid" in chat.last.text


async def test_an_open_request_is_shown_instead_of_a_second(services: Services) -> None:
    chat = Chat(services.conversations)
    await register(chat)
    [request] = await stored_requests(services)
    await chat.say("/request")
    assert f"You already have a request: {request.reference}" in chat.last.text
    assert len(await stored_requests(services)) == 1


async def test_possible_duplicates_are_flagged_not_dropped(services: Services) -> None:
    first = Chat(services.conversations, chat_id="a")
    await register(first)
    by_phone = Chat(services.conversations, chat_id="b")
    await register(by_phone, name="Ahmad Yani", nik="3171230101800002",
                   address="Jl. Kenanga 12 RT 1 RW 2")
    by_nik = Chat(services.conversations, chat_id="c")
    await register(by_nik, name="Ahmad Dahlan", phone="081311112222",
                   address="Jl. Kenanga 14 RT 1 RW 2")
    by_address = Chat(services.conversations, chat_id="d")
    await register(by_address, name="SITI  AMINAH", phone="081355556666", nik="skip",
                   address="jl melati no 5 rt 3 rw 5")
    unrelated = Chat(services.conversations, chat_id="e")
    await register(unrelated, name="Dewi Lestari", phone="081377778888",
                   nik="3171236512850003", address="Gg. Mawar RT 7 RW 8")
    a, b, c, d, e = await stored_requests(services)
    assert (b.duplicate_of_id, b.duplicate_reasons) == (a.id, ["phone"])
    assert (c.duplicate_of_id, c.duplicate_reasons) == (a.id, ["nik"])
    assert (d.duplicate_of_id, d.duplicate_reasons) == (a.id, ["name_address"])
    assert e.duplicate_of_id is None and e.duplicate_reasons == []
    assert all(r.status == RequestStatus.SUBMITTED for r in (a, b, c, d, e))


async def test_status_shows_history_with_times(services: Services) -> None:
    chat = Chat(services.conversations)
    await chat.say("/status")
    assert "no requests yet" in chat.replies[-1].text
    await register(chat)
    await chat.say("/status")
    [request] = await stored_requests(services)
    assert f"{request.reference}: waiting for verification" in chat.last.text
    assert re.search(r"• \d{1,2} \w{3} 20\d\d, \d\d:\d\d: waiting for verification",
                     chat.last.text)


async def test_a_day_away_resumes_at_the_same_question(services: Services) -> None:
    now = [datetime(2026, 11, 27, 8, 0, tzinfo=UTC)]
    conversations = Conversations(services.engine, services.catalog, services.areas,
                                  services.conversations._settings, clock=lambda: now[0])
    chat = Chat(conversations)
    await start_request(chat)
    await chat.say("Budi Santoso")
    now[0] += timedelta(days=1)
    await chat.say("halo")
    assert "Welcome back" in chat.last.text and chat.last.context == "hh.phone"
    await chat.say("081298765432")
    assert chat.last.context == "hh.nik"


async def test_volunteering_from_the_menu_says_how_to_join(services: Services) -> None:
    chat = Chat(services.conversations)
    await chat.say("/start")
    assert "Hello! I am Gotong" in chat.last.text
    assert [o.id for o in chat.last.options] == ["request", "donate", "volunteer", "status",
                                                  "language", "help", "person"]
    await chat.tap("volunteer")
    assert "ask an aid organisation for an invite code" in chat.last.text
    await chat.say("3")
    assert "send /volunteer CODE" in chat.last.text
    await chat.say("/nonsense")
    assert "do not know the command /nonsense" in chat.last.text

async def test_many_chats_register_at_the_same_time(services: Services) -> None:
    import asyncio

    chats = [Chat(services.conversations, chat_id=f"crowd-{i}") for i in range(12)]
    await asyncio.gather(*(register(chat, phone=f"08129999{i:04d}", nik="skip",
                                    name=f"Warga {chr(65 + i)}") for i, chat in
                           enumerate(chats)))
    requests = await stored_requests(services)
    assert len(requests) == 12
    assert len({r.reference for r in requests}) == 12
    assert all("Reference: GT-" in chat.last.text for chat in chats)


async def test_two_processes_on_one_chat_never_work_on_stale_state(services: Services) -> None:
    """Each process keeps chat state in memory; the version makes a stale copy harmless."""
    settings = services.conversations._settings
    first = Conversations(services.engine, services.catalog, services.areas, settings)
    second = Conversations(services.engine, services.catalog, services.areas, settings)
    chat_a, chat_b = Chat(first, chat_id="shared"), Chat(second, chat_id="shared")
    await start_request(chat_a)
    assert chat_a.last.context == "hh.name"
    await chat_b.say("Budi Santoso")  # the second process reads the chat fresh
    assert chat_b.last.context == "hh.phone"
    # The first process still holds the chat at the name question; its write is refused
    # and the update runs again on the chat as it is now.
    await chat_a.say("081298765432")
    assert chat_a.last.context == "hh.nik"
    async with services.sessions() as session:
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None
    assert conversation.answers["name"] == "Budi Santoso"
    assert conversation.answers["phone"] == "+6281298765432"
