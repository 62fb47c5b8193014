"""The WhatsApp channel end to end: signed webhooks posted to our aiohttp app, the real
aiohttp client sending to the fake Graph API (which refuses what WhatsApp would)."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from gotong.bot.channels.whatsapp import parse_notification
from gotong.bot.config import Config
from gotong.bot.services import Services, handler_settings
from gotong.handlers.conversations import Conversations
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.help_request import HelpRequest
from gotong.models.inbound import InboundUpdate, Stored, store_inbound
from tests.bot.channels.whatsapp_harness import APP_SECRET, VERIFY_TOKEN, WaPerson, running_whatsapp
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.fakes.whatsapp_webhooks import (
    combine,
    sign,
    text_message,
    verification_query,
)
from tests.lookups import count

SITI = "6281234567890"


pytestmark = pytest.mark.fake_api("whatsapp_api")


async def register_on_whatsapp(person: WaPerson) -> None:
    """The household form in Indonesian, answered with WhatsApp's buttons and lists."""
    [welcome] = await person.say("halo")
    assert "Halo! Saya Gotong" in welcome.text
    assert welcome.interactive_type == "list"
    assert [title for _, title in welcome.options()] == [
        "Minta bantuan", "Donasi", "Jadi relawan", "Status saya", "Bahasa", "Bantuan",
        "Hubungi petugas"]
    [consent] = await person.tap("Minta bantuan")
    assert consent.interactive_type == "button" and "Apakah Anda setuju?" in consent.text
    await person.tap("Ya, saya setuju")
    assert "nama lengkap kepala keluarga" in person.last.text
    [ask_phone] = await person.say("Siti Aminah")
    # WhatsApp gives the number: one tap uses it.
    assert ask_phone.options() == [("hh.phone|~own", "Pakai nomor ini")]
    await person.tap("Pakai nomor ini")
    assert "NIK" in person.last.text
    await person.tap("Lewati")
    await person.tap("Jakarta Selatan")
    assert "Kecamatan mana di Kota Jakarta Selatan?" in person.last.text
    await person.tap("Berikutnya")
    await person.tap("Setia Budi")
    await person.tap("Karet Semanggi")
    await person.say("Jl. Melati No. 5 RT 03 RW 05")
    await person.say("5")
    await person.tap("Lansia")
    assert any(title.startswith("✅") and "Lansia" in title
               for _, title in person.last.options())
    await person.tap("Selesai")
    await person.say("1, 3")
    assert "Mohon periksa pendaftaran Anda" in person.last.text
    await person.tap("Kirim")


async def test_a_household_registers_on_whatsapp(config: Config, services: Services,
                                                 fake: FakeWhatsAppAPI,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_whatsapp(config, services, fake) as bot:
        siti = bot.person(SITI)
        await register_on_whatsapp(siti)
        assert re.search(r"Nomor referensi: GT-[2-9A-Z]{5}", siti.last.text)
        # Every message was read: the read receipt of a chat's latest message marks the
        # earlier ones too, so messages handled in quick succession share one. Nothing we
        # sent broke WhatsApp's rules.
        await fake.wait_for_reads(bot.last_message_id)
        assert 0 < len(fake.read_ids) <= bot.posted
        assert fake.invalid_requests() == []
    async with services.sessions() as session:
        request = await session.scalar(select(HelpRequest))
        contact = await session.scalar(select(Contact))
    assert request is not None and contact is not None
    assert request.phone == "+6281234567890" and request.needs == ["food", "medicine"]
    assert (contact.channel, contact.chat_id, contact.verified_phone) == (
        "whatsapp", SITI, "+6281234567890")
    assert contact.last_inbound_at is not None
    # Nothing the person wrote, nor their number, reaches the logs.
    for secret in ("Siti", "Aminah", SITI, "81234567890", "Melati", "No. 5"):
        assert secret not in caplog.text, secret


async def test_the_webhook_handshake(config: Config, services: Services,
                                     fake: FakeWhatsAppAPI) -> None:
    async with running_whatsapp(config, services, fake) as bot:
        async def verify(query: dict[str, str]) -> tuple[int, str]:
            async with bot.http.get(bot.url, params=query) as response:
                return response.status, await response.text()

        assert await verify(verification_query(VERIFY_TOKEN, "12345")) == (200, "12345")
        for query in (verification_query("wrong", "12345"),
                      verification_query(VERIFY_TOKEN, "12345", mode="unsubscribe"),
                      {"hub.mode": "subscribe", "hub.challenge": "1"}, {}):
            status, _ = await verify(query)
            assert status == 403, query


async def test_forged_and_unsigned_webhooks_are_refused_and_store_nothing(
        config: Config, services: Services, fake: FakeWhatsAppAPI,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_whatsapp(config, services, fake) as bot:
        envelope = text_message(SITI, "halo")
        assert (await bot.post(envelope, secret=None))[0] == 401
        assert (await bot.post(envelope, secret="not-the-app-secret"))[0] == 401
        assert (await bot.post(envelope, signature="sha256=" + "0" * 64))[0] == 401
        # Not hex, not even ASCII: refused the same way, not a failure of ours.
        assert (await bot.post(envelope, signature="sha256=é" + "0" * 63))[0] == 401
        # Signed over other bytes than those sent.
        body = b'{"object": "whatsapp_business_account", "entry": []}'
        assert (await bot.post(body, signature=sign(body + b" ", APP_SECRET)))[0] == 401
        await asyncio.sleep(0.1)
        assert await count(services, InboundUpdate) == 0
        assert await count(services, Contact) == 0
        assert fake.messages == []
        # Signed but not JSON: refused as malformed; signed JSON that is not a
        # notification we know: accepted (Meta would only retry it) and ignored.
        assert (await bot.post(b"not json"))[0] == 400
        assert (await bot.post(b"[" * 20_000 + b"]" * 20_000))[0] == 400
        assert (await bot.post({"object": "page", "entry": []}))[0] == 200
        assert await count(services, InboundUpdate) == 0
    assert SITI not in caplog.text and "halo" not in caplog.text


async def test_a_replayed_message_is_answered_once(config: Config, services: Services,
                                                   fake: FakeWhatsAppAPI) -> None:
    async with running_whatsapp(config, services, fake) as bot:
        siti = bot.person(SITI)
        envelope = text_message(SITI, "halo", message_id="wamid.replayed")
        await siti.send(envelope)
        answered = len(siti.messages)
        assert answered >= 1
        for _ in range(3):
            status, _ = await bot.post(envelope)
            assert status == 200
        await asyncio.sleep(0.2)
        assert len(siti.messages) == answered
        assert await count(services, InboundUpdate) == 1


async def test_messages_of_one_notification_are_handled_in_order(
        config: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    """Meta batches messages; each chat's are answered in the order written, chats side
    by side."""
    async with running_whatsapp(config, services, fake) as bot:
        numbers = [f"62812000000{i:02d}" for i in range(8)]
        await bot.deliver(combine(*(text_message(n, "halo") for n in numbers)), len(numbers))
        await bot.deliver(combine(*(text_message(n, "1") for n in numbers)), len(numbers))
        for number in numbers:
            texts = fake.texts(number)
            assert "Halo! Saya Gotong" in texts[0]
            assert "Apakah Anda setuju?" in texts[-1], texts


async def test_what_cannot_be_read_gets_a_polite_re_ask(config: Config, services: Services,
                                                        fake: FakeWhatsAppAPI) -> None:
    async with running_whatsapp(config, services, fake) as bot:
        siti = bot.person(SITI)
        await siti.say("halo")
        await siti.tap("Minta bantuan")
        await siti.tap("Ya, saya setuju")
        question = siti.last.text
        for kind in ("sticker", "audio", "video", "document", "unsupported"):
            [answer] = await siti.send_unsupported(kind)
            assert answer.text.endswith(question), (kind, answer.text)
            assert answer.text != question
        # A button of another question, or a forged one, is not taken as an answer.
        [stale] = await siti.tap_id("hh.consent|yes")
        assert stale.text.endswith(question)
        [forged] = await siti.tap_id("no-separator")
        assert forged.text.endswith(question)
        [long] = await siti.say("x" * 5000)
        assert "terlalu panjang" in long.text
        assert fake.invalid_requests() == []


async def test_a_long_list_comes_in_pages_with_more(config: Config, services: Services,
                                                    fake: FakeWhatsAppAPI) -> None:
    config = replace(config, dialogs=replace(config.dialogs, page_size=20))
    services.conversations = Conversations(services.engine, services.catalog, services.areas,
                                           handler_settings(config))
    async with running_whatsapp(config, services, fake) as bot:
        siti = bot.person(SITI)
        await siti.say("halo")
        await siti.tap("Minta bantuan")
        await siti.tap("Ya, saya setuju")
        await siti.say("Siti Aminah")
        await siti.tap("Pakai nomor ini")
        await siti.tap("Lewati")
        [districts] = await siti.tap("Jakarta Timur")
        assert "Kecamatan mana di Kota Jakarta Timur?" in districts.text
        first_page = districts.options()
        more = [option for option in first_page if option[1] == "Lainnya…"]
        assert len(first_page) == 10 and len(more) == 1
        # "More" is answered by the channel: the rest of the list, nothing else.
        [second] = await siti.tap("Lainnya…")
        assert second.interactive_type == "list"
        rest = [title for _, title in second.options()]
        shown_first = {title for _, title in first_page if (_, title) not in more}
        controls = {title for _, title in second.options()} & shown_first
        assert rest and set(rest) - controls and not (set(rest) - controls) & shown_first
        [kelurahan] = await siti.tap(rest[0])
        assert "Kelurahan mana" in kelurahan.text
        # Every message, "more" included, is recorded as handled (none resumed at start).
        async with services.sessions() as session:
            unhandled = await session.scalar(
                select(func.count()).select_from(InboundUpdate)
                .where(InboundUpdate.processed_at.is_(None)))
        assert unhandled == 0
        assert fake.invalid_requests() == []

    # After a restart the channel no longer remembers the list: the open question again.
    async with running_whatsapp(config, services, fake) as bot:
        siti = bot.person(SITI)
        [again] = await siti.tap_id(more[0][0], row=True)
        assert "Kelurahan mana" in again.text


async def test_messages_stored_before_a_crash_are_handled_at_start(
        config: Config, services: Services, fake: FakeWhatsAppAPI) -> None:
    # A message stored (and answered 200) by a process that died before handling it.
    envelope = text_message(SITI, "halo", message_id="wamid.stored")
    [message], _ = parse_notification(envelope, fake.phone_number_id)
    async with services.sessions() as session, session.begin():
        assert await store_inbound(session, "whatsapp", message.message_id, message.sender,
                                   message.message, utcnow()) is Stored.NEW
    async with running_whatsapp(config, services, fake) as bot:
        await bot.channel.wait_handled(1)
        assert "Halo! Saya Gotong" in fake.texts(SITI)[0]
        # Meta's retry of the same message finds it handled.
        assert (await bot.post(envelope))[0] == 200
        await asyncio.sleep(0.1)
        assert len(fake.texts(SITI)) == 1
    async with services.sessions() as session:
        stored = await session.scalar(select(InboundUpdate))
    assert stored is not None and stored.processed_at is not None and stored.payload is None
