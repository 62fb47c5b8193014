"""`gotong invites revoke` takes out the proxies a code let in: they are told in chat and can
register no more, the households they registered stay, staff hear which requests no
longer have anyone receiving their news, and it is audited; `--keep-proxies` keeps them.
A proxy taken out who is invited again is a proxy again."""

from __future__ import annotations

from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.notices import render_notice
from gotong.models.contact import ContactRole
from gotong.models.request_status import RequestStatus
from tests.chat import Chat
from tests.handlers.test_proxies import (
    accept,
    invite_code,
    new_proxy,
    proxy_world,
    register,
    request_by,
)
from tests.handlers.test_proxy_phones import (
    STRANGER,
    button,
    neighbour_known_by_phone,
    on_whatsapp,
    the_question,
)
from tests.handlers.test_volunteer_limits import admin
from tests.handlers.test_volunteers import contact_of
from tests.lookups import audit_log, outbox


async def operator_code(config: Config, aggregator: int) -> tuple[str, int]:
    """A proxy code of the operator's for three people, and its invite number."""
    out = await admin(config, "invite", "proxy", "--aggregator", str(aggregator),
                      "--uses", "3")
    code = out.splitlines()[0]
    listing = await admin(config, "invites", "list", "--aggregator", str(aggregator))
    [line] = [line for line in listing.splitlines() if "3 uses left" in line]
    return code, int(line.split()[1].rstrip(":"))


async def proxy_roles(services: Services, chat: Chat) -> set[str]:
    async with services.sessions() as session:
        return set((await session.scalars(select(ContactRole.role).where(
            ContactRole.contact_id == await contact_of(services, chat)))).all())


async def test_revoking_a_code_takes_out_its_proxies_and_keeps_their_households(
        config: Config, services: Services) -> None:
    _, aggregator, staff = await proxy_world(services)
    neighbour, neighbour_id = await neighbour_known_by_phone(services)
    code, invite_id = await operator_code(config, aggregator)
    budi = await accept(services, code, "rt-05", "Budi Santoso", "+6281200000005")
    sari = await accept(services, code, "rw-02", "Sari Wulandari", "+6281200000002")
    # A proxy of another code, who stays.
    rina = await new_proxy(services, staff, "rw-09", "Rina Wati", "+6281200000009")

    no_phone = await register(budi, phone=None, name="Ibu Sumi", nik=None)
    asked = await register(budi, phone="0813 1111 2222", name="Pak Karto", nik=None,
                           address="Jl. Melati No. 7 RT 03 RW 05")
    confirmed = await register(budi, phone="0813 4444 5555", name="Ibu Ani", nik=None,
                               address="Jl. Melati No. 9 RT 03 RW 05")
    await neighbour.tap(*reversed(button(await the_question(services, neighbour_id), "yes")))
    of_sari = await register(sari, phone=None, name="Pak Darto", nik=None,
                             address="Jl. Kenanga No. 2 RT 01 RW 02")
    of_rina = await register(rina, phone=None, name="Bu Tini", nik=None,
                             address="Jl. Kenanga No. 4 RT 01 RW 02")
    listing = await admin(config, "invites", "list", "--aggregator", str(aggregator))
    assert "Budi Santoso (active)" in listing and "Sari Wulandari (active)" in listing

    out = await admin(config, "invites", "revoke", str(invite_id))
    assert "proxies removed: " in out and "Budi Santoso" in out and "Sari Wulandari" in out
    assert "Rina Wati" not in out
    # The requests whose news came to them, and now reaches nobody, are named.
    [unfollowed] = [line for line in out.splitlines() if "reaches nobody" in line]
    assert no_phone in unfollowed and asked in unfollowed and of_sari in unfollowed
    assert confirmed not in unfollowed and of_rina not in unfollowed

    # The proxies are told in chat, in their language.
    budi_id = await contact_of(services, budi)
    [told] = await outbox(services, "notice.proxy_removed", budi_id)
    text = render_notice(services.catalog, "en", told.message_key or "", told.params).text
    assert "You are no longer a proxy of Posko Jakarta Selatan" in text
    assert len(await outbox(services, "notice.proxy_removed")) == 2
    # Staff hear which requests of each proxy no longer reach anyone.
    staff_id = await contact_of(services, staff)
    news = await outbox(services, "notice.proxy_households_unfollowed", staff_id)
    by_proxy = {row.params["proxy"]: row.params for row in news}
    assert set(by_proxy) == {"Budi Santoso", "Sari Wulandari"}
    assert by_proxy["Budi Santoso"]["references"] == f"{no_phone}, {asked}"
    assert by_proxy["Budi Santoso"]["count"] == 2
    assert by_proxy["Sari Wulandari"]["references"] == of_sari
    log = await audit_log(services)
    assert log.count(("revoke_proxy", "done")) == 2 and ("revoke_invite", "done") in log
    listing = await admin(config, "invites", "list", "--aggregator", str(aggregator))
    assert "Budi Santoso (removed)" in listing and "Rina Wati (active)" in listing

    # They can register no more, and no longer follow the households.
    await budi.say("/register_household")
    assert "You are no longer a proxy" in budi.last.text, budi.last.text
    assert budi.last.context != "px.consent"
    assert ("proxy_register", "removed") in await audit_log(services)
    assert await proxy_roles(services, budi) == set()
    await budi.say("/status")
    assert no_phone not in budi.last.text

    # The households stay, their requests valid, and the news of those without a phone of
    # their own reaches no one; the household that confirmed its phone still hears.
    for reference in (no_phone, asked, confirmed, of_sari):
        assert (await request_by(services, reference)).status == RequestStatus.SUBMITTED
    for reference in (no_phone, confirmed):
        await staff.say("/queue")
        await staff.tap(f"v:{(await request_by(services, reference)).id}", context="q")
    assert await outbox(services, "notice.request_verified", budi_id) == []
    assert len(await outbox(services, "notice.request_verified", neighbour_id)) == 1
    # The household still asked may yet confirm its phone: then it hears, the proxy not.
    pending = await request_by(services, asked)
    [question] = [row for row in await outbox(services, "notice.household_phone_check")
                  if row.params["reference"] == asked]
    replies = await on_whatsapp(services, STRANGER, *button(question, "yes"))
    assert f"Permintaan {asked} sekarang diikuti di sini" in replies[-1].text
    assert (await request_by(services, asked)).contact_id != pending.contact_id
    told_budi = await outbox(services, "notice.proxy_phone_confirmed", budi_id)
    assert [row.params["reference"] for row in told_budi] == [confirmed]
    now_theirs = await request_by(services, asked)
    await staff.say("/queue")
    await staff.tap(f"v:{now_theirs.id}", context="q")
    assert len(await outbox(services, "notice.request_verified", now_theirs.contact_id)) == 1

    # The other code's proxy goes on.
    await rina.say("/register_household")
    assert rina.last.context == "px.consent", rina.last.text


async def test_keep_proxies_revokes_the_code_only(config: Config, services: Services
                                                  ) -> None:
    _, aggregator, _ = await proxy_world(services)
    code, invite_id = await operator_code(config, aggregator)
    budi = await accept(services, code, "rt-05", "Budi Santoso", "+6281200000005")
    out = await admin(config, "invites", "revoke", str(invite_id), "--keep-proxies")
    assert "proxies removed: none" in out and "reaches nobody" not in out
    await budi.say("/register_household")
    assert budi.last.context == "px.consent", budi.last.text
    assert await outbox(services, "notice.proxy_removed") == []
    # The code itself admits nobody more.
    late = Chat(services.conversations, chat_id="late")
    await late.say(f"/proxy {code}")
    assert "as a proxy" not in late.last.text


async def test_a_proxy_taken_out_and_invited_again_is_a_proxy_again(
        config: Config, services: Services) -> None:
    _, aggregator, staff = await proxy_world(services)
    code, invite_id = await operator_code(config, aggregator)
    budi = await accept(services, code, "rt-05", "Budi Santoso", "+6281200000005")
    reference = await register(budi, phone=None)
    await admin(config, "invites", "revoke", str(invite_id))
    await budi.say("/register_household")
    assert "You are no longer a proxy" in budi.last.text

    again = await accept(services, await invite_code(staff), "rt-05", "Budi Santoso",
                         "+6281200000005")
    assert "You are now a proxy of" in again.last.text
    assert await proxy_roles(services, budi) == {"proxy"}
    await budi.say("/status")
    assert reference in budi.last.text
    # Its news comes to them again.
    await staff.say("/queue")
    await staff.tap(f"v:{(await request_by(services, reference)).id}", context="q")
    assert len(await outbox(services, "notice.request_verified",
                            await contact_of(services, budi))) == 1
