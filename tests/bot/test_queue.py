"""Staff verify the queue of their areas in chat; households hear the outcome through the
outbox; everyone else is refused and audited. The real Telegram channel and dispatcher
run against the fake Bot API."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from gotong.bot.cli.admin import run_admin
from gotong.bot.cli.main import build_parser
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.handlers.messages import Incoming, Kind
from gotong.models.area import AreaLevel
from gotong.models.base import utcnow
from gotong.models.help_request import HelpRequest, NewRequest, RequestEvent, submit_request
from tests.bot.channels.telegram_harness import Person, TelegramBotUnderTest
from tests.lookups import audit_log


async def admin(config: Config, *argv: str) -> str:
    out = io.StringIO()
    assert await run_admin(config, build_parser().parse_args(list(argv)), out=out) == 0
    return out.getvalue()


async def staff_of(config: Config, person: Person, kota: str) -> None:
    await admin(config, "aggregator", "add", "--name", f"Posko {kota}", "--posko",
                "Jl. Posko 1; 08-16", "--kota", kota)
    listed = await admin(config, "aggregator", "list")
    aggregator_id = re.findall(r"^(\d+): Posko " + kota, listed, re.MULTILINE)[0]
    out = await admin(config, "invite", "staff", "--aggregator", aggregator_id)
    code = out.split()[0]
    replies = await person.say(f"/gabung {code}")
    assert "Anda sekarang petugas" in replies[0].text


@dataclass
class Household:
    person: Person
    request: HelpRequest


async def household(services: Services, person: Person, kota: str, size: int,
                    vulnerable: list[str], phone: str) -> Household:
    await person.say("/start")
    contact_id = (await services.conversations.handle_update(Incoming(
        channel="telegram", chat_id=str(person.user.id), kind=Kind.OTHER))).contact_id
    [regency] = services.areas.named(AreaLevel.REGENCY, kota)
    district = services.areas.children(regency.id)[0]
    village = services.areas.children(district.id)[0]
    new = NewRequest(head_name=person.user.first_name, phone=phone, nik=None,
                     village_id=village.id, street=f"Jl. Mawar {person.user.id}", rt="1",
                     rw="2", household_size=size, vulnerabilities=vulnerable, needs=["food"],
                     needs_other=None)
    async with services.sessions() as session, session.begin():
        request, _ = await submit_request(session, contact_id, new, now=utcnow(),
                                          duplicate_window=timedelta(days=90))
    return Household(person, request)


async def told(bot: TelegramBotUnderTest, person: Person, text: str) -> None:
    """Wait for a notification to reach the person."""
    for _ in range(100):
        if any(text in m.text for m in person.messages):
            return
        await bot.fake.wait_for_messages(person.user.id, len(person.messages) + 1, timeout=5)
    raise AssertionError(text)


async def status_of(services: Services, request: HelpRequest) -> str:
    async with services.sessions() as session:
        stored = await session.get(HelpRequest, request.id)
        assert stored is not None
        return stored.status


async def test_staff_verify_and_reject_by_priority_and_households_hear_it(
        config: Config, services: Services, bot: TelegramBotUnderTest) -> None:
    staff = bot.person(9100, first_name="Rina")
    await staff_of(config, staff, "Jakarta Selatan")
    small = await household(services, bot.person(9101, first_name="Adi"), "Jakarta Selatan",
                            2, [], "+6281200000001")
    large = await household(services, bot.person(9102, language="en", first_name="Budi"),
                            "Jakarta Selatan", 6, ["elderly", "disability"], "+6281200000002")
    await household(services, bot.person(9103, first_name="Citra"), "Jakarta Timur", 9,
                    ["pregnant"], "+6281200000003")  # another aggregator's area

    [card] = await staff.say("/antrian")
    assert card.text.startswith(f"{large.request.reference} menunggu verifikasi")
    assert "Kepala keluarga: Budi" in card.text and "Telepon: +6281200000002" in card.text
    assert ("Prioritas 47: jumlah orang 12, lansia 10, disabilitas 10, "
            "belum pernah dibantu 15") in card.text
    replies = await staff.tap("Verifikasi")
    assert f"{large.request.reference} sudah diverifikasi" in replies[0].text
    assert replies[0].text.count("menunggu verifikasi") == 1  # the next card: the small one
    assert small.request.reference in replies[0].text
    await told(bot, large.person, f"Good news: your request {large.request.reference} is "
                                  "verified")

    await staff.tap("Tolak")
    assert f"Mengapa {small.request.reference} ditolak?" in staff.last.text
    replies = await staff.tap("data tidak lengkap atau salah")
    assert "ditolak; keluarganya sudah diberi tahu" in replies[0].text
    assert "Tidak ada permintaan yang menunggu verifikasi" in replies[0].text
    await told(bot, small.person, f"Permintaan Anda {small.request.reference} tidak dapat "
                                  "diterima: data tidak lengkap atau salah.")
    assert await status_of(services, large.request) == "verified"
    assert await status_of(services, small.request) == "rejected"
    async with services.sessions() as session:
        events = (await session.execute(
            select(RequestEvent.status, RequestEvent.note).where(
                RequestEvent.request_id == small.request.id).order_by(RequestEvent.id))).all()
    assert [(s, n) for s, n in events] == [("submitted", None), ("rejected", "incomplete")]
    assert await audit_log(services) == [
        ("join", "done"), ("verify", "done"), ("reject", "done")]


async def test_a_typed_reason_and_a_duplicate(
        config: Config, services: Services, bot: TelegramBotUnderTest) -> None:
    staff = bot.person(9200)
    await staff_of(config, staff, "Jakarta Selatan")
    first = await household(services, bot.person(9201, first_name="Dewi"), "Jakarta Selatan",
                            4, ["elderly"], "+6281200000011")
    again = await household(services, bot.person(9202, first_name="Dewi S"),
                            "Jakarta Selatan", 4, ["elderly", "chronic"], "+6281200000011")
    assert again.request.duplicate_of_id == first.request.id
    [card] = await staff.say("/antrian")
    # The suspected duplicate comes first (higher score), with the other side by side.
    assert card.text.startswith(again.request.reference)
    assert f"Mungkin keluarga yang sama dengan {first.request.reference}" in card.text
    assert "telepon sama" in card.text
    replies = await staff.tap("Ganda dengan yang lain")
    assert "ditandai ganda" in replies[0].text
    await told(bot, again.person, "tidak dapat diterima: keluarga ini sudah terdaftar")
    await staff.tap("Tolak")
    await staff.tap("Alasan lain")
    replies = await staff.say("Alamat tidak ditemukan petugas lapangan")
    assert "ditolak" in replies[0].text
    await told(bot, first.person, "tidak dapat diterima: Alamat tidak ditemukan petugas "
                                  "lapangan.")


async def test_people_who_may_not_act_are_refused_and_audited(
        config: Config, services: Services, bot: TelegramBotUnderTest) -> None:
    ours, theirs, citizen = bot.person(9300), bot.person(9301), bot.person(9302)
    await staff_of(config, ours, "Jakarta Selatan")
    await staff_of(config, theirs, "Jakarta Timur")
    waiting = await household(services, bot.person(9303), "Jakarta Selatan", 3, [],
                              "+6281200000021")
    await citizen.say("/start")
    replies = await citizen.say("/antrian")
    assert "Ini untuk petugas lembaga bantuan" in replies[0].text
    replies = await citizen.tap_data(f"q|v:{waiting.request.id}")
    assert "Ini untuk petugas lembaga bantuan" in replies[0].text
    replies = await theirs.tap_data(f"q|v:{waiting.request.id}")
    assert "tidak berada di wilayah lembaga Anda" in replies[0].text
    replies = await theirs.tap_data("q|v:99999")
    assert "tidak berada di wilayah lembaga Anda" in replies[0].text
    replies = await theirs.tap_data("q|zz:1")
    assert replies[0].text
    assert await status_of(services, waiting.request) == "submitted"
    # Acting twice on the same request: the second tap finds it done.
    await ours.say("/antrian")
    await ours.tap_data(f"q|v:{waiting.request.id}")
    replies = await ours.tap_data(f"q|r:{waiting.request.id}")
    assert "sudah tidak menunggu verifikasi" in replies[0].text
    outcomes = await audit_log(services)
    assert ("queue", "not staff") in outcomes and ("verify", "not staff") in outcomes
    assert outcomes.count(("verify", "outside area")) == 2
    assert await status_of(services, waiting.request) == "verified"


async def test_a_command_ends_the_question_for_a_reason(
        config: Config, services: Services, bot: TelegramBotUnderTest) -> None:
    staff = bot.person(9400)
    await staff_of(config, staff, "Jakarta Selatan")
    waiting = await household(services, bot.person(9401), "Jakarta Selatan", 3, [],
                              "+6281200000031")
    await staff.say("/antrian")
    await staff.tap("Tolak")
    await staff.say("/menu")
    await staff.say("halo")  # not a reason any more
    assert await status_of(services, waiting.request) == "submitted"
