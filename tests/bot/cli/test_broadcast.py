"""`gotong broadcast`: the audience by role, area and language, the dry run, the
confirmation and the progress bar, with the dispatcher sending through the fake Bot API."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from gotong.bot.cli.broadcast import resolve_villages, run_broadcast
from gotong.bot.cli.main import build_parser
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.area import AreaDirectory, AreaEntry, AreaLevel
from gotong.models.base import utcnow
from gotong.models.contact import Contact
from gotong.models.help_request import NewRequest, submit_request
from gotong.models.outbox import OutboxMessage
from tests.bot.dispatch_harness import (
    DispatchUnderTest,
    add_contacts,
    dispatch_config,
    wait_settled,
)
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.lookups import count, outbox

MESSAGE = "Posko Cakung buka Sabtu 08.00-12.00 untuk pembagian sembako."
TIMUR_ID, TIMUR_EN, SELATAN, TIMUR_STOPPED, NO_REQUEST = 9001, 9002, 9003, 9004, 9005


@pytest.fixture
async def dispatch(config: Config, services: Services, fake: FakeTelegramAPI
                   ) -> AsyncIterator[DispatchUnderTest]:
    dispatch = DispatchUnderTest(services, dispatch_config(config, fake, poll_seconds=0.1))
    await dispatch.start()
    try:
        yield dispatch
    finally:
        await dispatch.stop()


def village_in(services: Services, kota: str, kecamatan: str | None = None) -> int:
    [regency] = services.areas.named(AreaLevel.REGENCY, kota)
    districts = services.areas.children(regency.id)
    if kecamatan is not None:
        [district] = services.areas.named(AreaLevel.DISTRICT, kecamatan, [regency.id])
    else:
        district = districts[0]
    return services.areas.children(district.id)[0].id


async def household(services: Services, chat: int, language: str, village_id: int) -> int:
    [contact_id] = await add_contacts(services, [chat], language=language)
    new = NewRequest(head_name=f"Warga {chat}", phone=f"+62812000{chat}", nik=None,
                     village_id=village_id, street=f"Jl. Mawar {chat}", rt="1", rw="2",
                     household_size=3, vulnerabilities=[], needs=["food"], needs_other=None)
    async with services.sessions() as session, session.begin():
        await submit_request(session, contact_id, new, now=utcnow(),
                             duplicate_window=timedelta(days=90))
    return contact_id


@pytest.fixture
async def people(services: Services) -> None:
    timur = village_in(services, "Jakarta Timur")
    await household(services, TIMUR_ID, "id", timur)
    await household(services, TIMUR_EN, "en", timur)
    await household(services, SELATAN, "id", village_in(services, "Jakarta Selatan",
                                                        "Setia Budi"))
    stopped = await household(services, TIMUR_STOPPED, "id", timur)
    await add_contacts(services, [NO_REQUEST])
    async with services.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == stopped)
                              .values(opted_out_at=utcnow()))


async def broadcast(config: Config, tmp_path: Path, *options: str, answer: str = ""
                    ) -> tuple[int, str]:
    message = tmp_path / "message.txt"
    if not message.exists():
        message.write_text(MESSAGE + "\n", encoding="utf-8")
    args = build_parser().parse_args(["broadcast", "--message-file", str(message), *options])
    out = io.StringIO()
    code = await run_broadcast(config, args, stdin=io.StringIO(answer), out=out)
    return code, out.getvalue()


@pytest.mark.usefixtures("people")
async def test_dry_run_counts_and_sends_nothing(config: Config, services: Services,
                                                tmp_path: Path) -> None:
    code, out = await broadcast(config, tmp_path, "--role", "household", "--kota",
                                "Jakarta Timur", "--dry-run")
    assert code == 0
    assert out.startswith("2 recipients (role: household, kota: Jakarta Timur;")
    assert "dry run: nothing was sent" in out
    assert await count(services, OutboxMessage) == 0


@pytest.mark.usefixtures("people")
async def test_a_broadcast_to_one_kota_reaches_its_households_in_their_language(
        config: Config, services: Services, tmp_path: Path, fake: FakeTelegramAPI,
        dispatch: DispatchUnderTest) -> None:
    code, out = await broadcast(config, tmp_path, "--role", "household", "--kota",
                                "Kota Jakarta Timur", "--yes")
    assert code == 0
    assert "broadcast 1 queued for 2 people" in out
    # The progress bar was drawn until everything was sent.
    assert out.rstrip().endswith("[" + "#" * 30 + "] 2/2 (2 sent, 0 failed, 0 skipped)")
    [to_id] = fake.texts(TIMUR_ID)
    [to_en] = fake.texts(TIMUR_EN)
    assert to_id.startswith("📢 Pengumuman dari Gotong:") and MESSAGE in to_id
    assert to_en.startswith("📢 Announcement from Gotong:") and MESSAGE in to_en
    for chat in (SELATAN, TIMUR_STOPPED, NO_REQUEST):
        assert fake.texts(chat) == []


@pytest.mark.usefixtures("people")
async def test_kecamatan_and_language_narrow_the_audience(
        config: Config, services: Services, tmp_path: Path) -> None:
    _, out = await broadcast(config, tmp_path, "--kota", "Jakarta Selatan", "--kecamatan",
                             "Setia Budi", "--dry-run")
    assert out.startswith("1 recipient (")
    _, out = await broadcast(config, tmp_path, "--language", "en", "--dry-run")
    assert out.startswith("1 recipient (language: en;")
    # Everyone who did not send /stop, with or without a request.
    _, out = await broadcast(config, tmp_path, "--dry-run")
    assert out.startswith("4 recipients (everyone;")


@pytest.mark.usefixtures("people")
async def test_declining_the_confirmation_queues_nothing(
        config: Config, services: Services, tmp_path: Path) -> None:
    code, out = await broadcast(config, tmp_path, "--role", "household", answer="n\n")
    assert code == 1
    assert "Send this message to 3 people? [y/N]" in out
    assert "cancelled: nothing was sent" in out
    assert await count(services, OutboxMessage) == 0


async def test_unknown_and_ambiguous_areas_are_refused(
        config: Config, services: Services, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await broadcast(config, tmp_path, "--kota", "Jakarta Tengah", "--dry-run")
    assert code == 2
    assert "no kota/kabupaten called 'Jakarta Tengah' in scope" in capsys.readouterr().err
    code, _ = await broadcast(config, tmp_path, "--kecamatan", "Tebet Raya", "--dry-run")
    assert code == 2
    assert "no kecamatan called 'Tebet Raya'" in capsys.readouterr().err


def test_a_name_shared_by_two_areas_needs_the_level_above() -> None:
    # Two kecamatan called "Sukamaju" in two kabupaten of one province.
    entries = [AreaEntry(1, "province", None, "Jawa Barat", "32"),
               AreaEntry(10, "regency", 1, "Kabupaten Bogor", None),
               AreaEntry(20, "regency", 1, "Kabupaten Cianjur", None),
               AreaEntry(11, "district", 10, "Sukamaju", None),
               AreaEntry(21, "district", 20, "Sukamaju", None),
               AreaEntry(111, "village", 11, "Cibeuteung", "16310"),
               AreaEntry(211, "village", 21, "Sukamaju Kaler", "43211")]
    areas = AreaDirectory(entries, ["32"])
    with pytest.raises(ValueError, match="name the kota too"):
        resolve_villages(areas, [], ["Sukamaju"], [])
    assert resolve_villages(areas, ["Kab. Cianjur"], ["Kecamatan Sukamaju"], []) == {211}
    assert resolve_villages(areas, ["Bogor", "Cianjur"], [], []) == {111, 211}
    assert resolve_villages(areas, [], [], []) is None


async def test_empty_and_huge_messages_are_refused(
        config: Config, services: Services, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "message.txt").write_text("  \n", encoding="utf-8")
    assert (await broadcast(config, tmp_path, "--yes"))[0] == 2
    assert "is empty" in capsys.readouterr().err
    (tmp_path / "message.txt").write_text("x" * 3001, encoding="utf-8")
    assert (await broadcast(config, tmp_path, "--yes"))[0] == 2
    assert "keep it under 3000" in capsys.readouterr().err


@pytest.mark.usefixtures("people")
async def test_a_broadcast_waits_behind_status_news(
        config: Config, services: Services, tmp_path: Path, fake: FakeTelegramAPI,
        dispatch: DispatchUnderTest) -> None:
    code, _ = await broadcast(config, tmp_path, "--yes", "--no-wait")
    assert code == 0
    await wait_settled(services)
    rows = [r for r in await outbox(services) if r.broadcast_id is not None]
    assert len(rows) == 4
    assert {(r.priority, r.essential, r.status) for r in rows} == {(3, False, "sent")}
