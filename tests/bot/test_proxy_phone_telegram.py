"""A phone a proxy typed that belongs to someone on Telegram: through the real
python-telegram-bot, the fake Bot API and the dispatcher, that person gets one question
with two buttons and nothing of the household; "Bukan, bukan kami" takes the number off,
and the same button pressed again, or one with a made-up secret, changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from gotong.bot.services import Services
from gotong.models.contact import Contact
from gotong.models.phone_confirmation import PhoneConfirmation
from tests.bot.channels.telegram_harness import Running
from tests.bot.dispatch_harness import wait_settled_for
from tests.handlers.test_proxies import new_proxy, proxy_world, register, request_by
from tests.lookups import audit_log, outbox


async def test_a_person_on_telegram_is_asked_and_says_it_is_not_them(
        services: Services, running: Running) -> None:
    bot = running.bot
    neighbour = bot.person(8201, first_name="Wati")
    await neighbour.say("/start")
    async with services.sessions() as session, session.begin():
        known = await session.scalar(select(Contact).where(
            Contact.channel == "telegram", Contact.chat_id == "8201"))
        assert known is not None
        known.verified_phone = "+6281344445555"
    _, _, staff = await proxy_world(services)
    proxy = await new_proxy(services, staff)
    reference = await register(proxy, phone="0813 4444 5555")
    async with services.sessions() as session:
        asked = (await session.scalars(select(PhoneConfirmation))).one()
    assert asked.contact_id == known.id

    await wait_settled_for(services, known.id)
    question = neighbour.last_with_buttons()
    assert "Posko Jakarta Selatan mendaftarkan permintaan bantuan" in question.text
    assert reference in question.text and "Ibu Sumi" not in question.text
    assert [text for text, _ in question.buttons()] == ["Ya, itu kami", "Bukan, bukan kami"]
    # The buttons' data fit Telegram's 64 bytes and carry the question's secret.
    [(_, yes), (_, no)] = question.buttons()
    assert yes.startswith("hp|yes:") and no.startswith("hp|no:")
    assert len(yes.encode()) <= 64 and yes.rsplit(":", 1)[1] == asked.token

    # A made-up secret changes nothing.
    [refused] = await neighbour.tap_data(no.rsplit(":", 1)[0] + ":forged", question)
    assert "bukan untuk Anda, atau sudah dijawab" in refused.text

    # No: the number leaves the request, which stays the proxy's; nothing more is said.
    [answer] = await neighbour.tap_data(no, question)
    assert "Nomor ini sudah dihapus dari permintaan itu" in answer.text
    assert reference not in answer.text
    request = await request_by(services, reference)
    assert request.phone == "+6281200000005" and request.contact_id != known.id
    [again] = await neighbour.tap_data(yes, question)
    assert "bukan untuk Anda, atau sudah dijawab" in again.text
    assert (await request_by(services, reference)).contact_id != known.id
    assert len(await outbox(services, "notice.proxy_phone_declined")) == 1
    log = await audit_log(services)
    assert ("proxy_phone", "declined") in log and log.count(("proxy_phone", "refused")) == 2
