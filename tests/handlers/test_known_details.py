"""A donor or household who gave or asked before is greeted by name and offered the
name and phone on file for one tap, with changing them one tap away."""

from __future__ import annotations

from sqlalchemy import select

from gotong.bot.services import Services
from gotong.models.help_request import HelpRequest
from gotong.models.pledge import Pledge
from tests.chat import Chat
from tests.handlers.test_donor_form import aggregator, start
from tests.handlers.test_household_form import register


async def pledge_money(chat: Chat, amount: str = "50000") -> None:
    await chat.tap("money")
    await chat.say(amount)
    await chat.tap("any")
    await chat.tap("drop")
    assert chat.last.context == "dn.summary", chat.last.text
    await chat.tap("submit")


async def test_a_donor_who_gave_before_confirms_with_one_tap(services: Services) -> None:
    await aggregator(services, "Posko Selatan", "Jakarta Selatan")
    chat = Chat(services.conversations, language="id")
    await chat.say("/donasi")
    # The first time, everything is asked.
    assert chat.last.context == "dn.kind"
    await chat.tap("individual")
    await chat.say("Budi Santoso")
    await chat.say("0812 3456 7890")
    await pledge_money(chat)

    await chat.say("/donasi")
    greeting = chat.last
    assert greeting.context == "dn.use_on_file"
    assert greeting.text.startswith("Selamat datang kembali, Budi Santoso!")
    assert "Telepon: +6281234567890" in greeting.text
    assert [o.label for o in greeting.options] == ["Ya, pakai data ini",
                                                   "Ubah nama atau telepon"]
    await chat.tap("yes")
    # Name, phone and kind are taken: the next question is what to give.
    assert chat.last.context == "dn.category"
    await pledge_money(chat, "75000")
    async with services.sessions() as session:
        pledges = (await session.scalars(select(Pledge).order_by(Pledge.id))).all()
    assert [(p.donor_name, p.phone, p.organisation) for p in pledges] == [
        ("Budi Santoso", "+6281234567890", False)] * 2


async def test_changing_the_details_on_file_is_one_tap_away(services: Services) -> None:
    await aggregator(services, "Posko Selatan", "Jakarta Selatan")
    chat = Chat(services.conversations)
    await start(chat)
    await pledge_money(chat)
    await chat.say("/donate")
    assert chat.last.text.startswith("Welcome back, Budi Santoso!")
    await chat.tap("change")
    assert chat.last.context == "dn.kind"
    await chat.tap("organisation")
    await chat.say("Yayasan Peduli")
    await chat.say("0857 1111 2222")
    await pledge_money(chat)
    # Back at the first question after "yes", the offer is made again.
    await chat.say("/donate")
    assert "Name: Yayasan Peduli (For an organisation)" in chat.last.text
    await chat.tap("yes")
    await chat.tap("back")
    assert chat.last.context == "dn.use_on_file"


async def test_a_household_that_asked_before_is_greeted_by_name(services: Services) -> None:
    chat = Chat(services.conversations, language="id")
    await chat.say("/bahasa id")
    await register(chat, name="Siti Aminah", phone="0812 3456 7890")
    async with services.sessions() as session, session.begin():
        request = await session.scalar(select(HelpRequest))
        assert request is not None
        request.status = "closed"  # the aid came; she asks again another month
    await chat.say("/minta")
    await chat.tap("yes")  # consent, given for this request too
    assert chat.last.context == "hh.use_on_file"
    assert chat.last.text.startswith("Selamat datang kembali, Siti Aminah!")
    assert "Kepala keluarga: Siti Aminah" in chat.last.text
    await chat.tap("yes")
    assert chat.last.context == "hh.nik"
    await chat.say_all("-", "12930", "Jl. Melati No. 5 RT 03 RW 05", "4", "1", "1")
    assert chat.last.context == "hh.summary"
    assert "Siti Aminah" in chat.last.text and "+6281234567890" in chat.last.text
    # The details stay one tap from a change at the summary too.
    assert "edit:name" in [o.id for o in chat.last.options]
    await chat.tap("submit")
    async with services.sessions() as session:
        requests = (await session.scalars(select(HelpRequest))).all()
    assert [(r.head_name, r.phone) for r in requests] == [
        ("Siti Aminah", "+6281234567890")] * 2


async def test_a_donor_who_asked_for_help_is_offered_that_name(services: Services) -> None:
    await aggregator(services, "Posko Selatan", "Jakarta Selatan")
    chat = Chat(services.conversations)
    await register(chat, name="Siti Aminah", phone="0812 3456 7890")
    await chat.say("/donate")
    assert chat.last.context == "dn.use_on_file"
    assert "Name: Siti Aminah (As a person)" in chat.last.text
