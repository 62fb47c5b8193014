"""`gotong export`: an aggregator's requests, pledges and deliveries as CSV, with no
personal data, only of that aggregator, and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from gotong.bot.cli.admin import run_admin
from gotong.bot.cli.main import build_parser
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models import export
from gotong.models.allocation import Pick, allocate
from gotong.models.help_request import NewRequest, submit_request, verify_request
from gotong.models.nik import protect_nik
from gotong.models.pledge import Handover, NewPledge, create_pledge
from gotong.models.stock import receive_pledge
from tests.models.aid_world import AidWorld

SELATAN, TIMUR = "Jakarta Selatan", "Jakarta Timur"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass(frozen=True)
class Person:
    """Personal data that must never appear in an export."""

    name: str
    phone: str
    nik: str
    street: str
    rt: str
    rw: str
    needs_other: str

    def secrets(self, config: Config) -> list[str]:
        protected = protect_nik(self.nik, config.nik_key)
        return [self.name, self.phone, self.phone.removeprefix("+"), self.nik,
                protected.hash, protected.last4, self.street, f"{self.rt}/{self.rw}",
                self.needs_other]


SITI = Person("Siti Aminah Wulandari", "+6281299887766", "3174015505807319",
              "Jl. Kenari Dalam 17", "087", "093", "obat untuk Pak Joko")
BUDI = Person("Budi Hartono Saputra", "+6285711223344", "3175022212887395",
              "Gang Melati Ujung 4", "046", "058", "susu formula")
DONOR_NAME, DONOR_PHONE = "Hendra Kurniawan Wijaya", "+6287788776655"
PICKUP = "Jl. Cempaka Putih Raya 88"


async def admin(config: Config, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_admin(config, build_parser().parse_args(list(argv)), out=out)
    return code, out.getvalue()


async def exported(config: Config, *argv: str) -> list[dict[str, str]]:
    code, out = await admin(config, "export", *argv)
    assert code == 0, out
    return list(csv.DictReader(io.StringIO(out, newline="")))


async def household(world: AidWorld, village_id: int, person: Person, *,
                    vulnerabilities: tuple[str, ...] = (), verified: bool = False) -> int:
    contact_id = await world.contact()
    services = world.services
    async with services.sessions() as session, session.begin():
        request, _ = await submit_request(session, contact_id, NewRequest(
            head_name=person.name, phone=person.phone,
            nik=protect_nik(person.nik, services.config.nik_key), village_id=village_id,
            street=person.street, rt=person.rt, rw=person.rw, household_size=4,
            vulnerabilities=list(vulnerabilities), needs=["food", "medicine"],
            needs_other=person.needs_other), now=world.now,
            duplicate_window=timedelta(days=90))
        if verified:
            await verify_request(session, request, world.staff_id, world.now)
        return request.id


async def pledge(world: AidWorld, aggregator_id: int, quantity: int, *,
                 received: int | None = None, target_area_id: int | None = None) -> str:
    donor = await world.contact("en")
    async with world.services.sessions() as session, session.begin():
        created = await create_pledge(session, donor, NewPledge(
            organisation=True, donor_name=DONOR_NAME, phone=DONOR_PHONE,
            category="food_package", quantity=quantity, target_area_id=target_area_id,
            aggregator_id=aggregator_id, handover=Handover.PICKUP, pickup_address=PICKUP,
            pickup_window="Sabtu 09.00-12.00"), world.now)
        if received is not None:
            await receive_pledge(session, created, received, world.staff_id, world.now)
        return created.code


async def deliver(world: AidWorld, aggregator_id: int, request_id: int, quantity: int,
                  reason: str | None = None) -> None:
    async with world.services.sessions() as session, session.begin():
        outcome = await allocate(session, world.services.areas, aggregator_id,
                                 "food_package", quantity, [Pick(request_id, reason)],
                                 world.staff_id, world.now, timedelta(days=14))
    assert len(outcome.deliveries) == 1, outcome.refused


def assert_no_personal_data(config: Config, text: str) -> None:
    for secret in [*SITI.secrets(config), *BUDI.secrets(config), DONOR_NAME, DONOR_PHONE,
                   DONOR_PHONE.removeprefix("+"), PICKUP]:
        assert secret not in text


# --- requests ----------------------------------------------------------------------------


async def test_requests_of_the_aggregators_areas_without_personal_data(
        config: Config, services: Services) -> None:
    world = AidWorld(services)
    selatan = await world.aggregator(SELATAN)
    await world.aggregator(TIMUR)
    here, elsewhere = world.village(SELATAN), world.village(TIMUR)
    await household(world, here, SITI, vulnerabilities=("elderly", "chronic"), verified=True)
    await household(world, elsewhere, BUDI)

    code, out = await admin(config, "export", "requests", "--aggregator", str(selatan))
    assert code == 0
    assert out.splitlines()[0] == ("reference,status,kelurahan,kecamatan,kota,household_size,"
                                   "vulnerabilities,needs,created_at,updated_at")
    assert_no_personal_data(config, out)
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    # Budi lives in another aggregator's area.
    assert len(rows) == 1
    [row] = rows
    place = services.areas.place(here)
    assert place is not None
    assert re.fullmatch(r"GT-[2-9A-Z]{5}", row["reference"])
    assert (row["status"], row["kelurahan"], row["kecamatan"], row["kota"]) == (
        "verified", place.village, place.district, place.regency)
    assert (row["household_size"], row["vulnerabilities"], row["needs"]) == (
        "4", "elderly;chronic", "food;medicine")
    assert ISO_UTC.match(row["created_at"]) and ISO_UTC.match(row["updated_at"])


async def test_requests_are_read_in_batches(config: Config, services: Services,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    world = AidWorld(services)
    selatan = await world.aggregator(SELATAN)
    for index in range(5):
        await world.household(world.village(SELATAN, index), verified=False)
    # Smaller batches than rows: the export goes on past the first fetch.
    monkeypatch.setattr(export, "BATCH", 2)
    rows = await exported(config, "requests", "--aggregator", str(selatan))
    assert len(rows) == 5
    assert len({row["reference"] for row in rows}) == 5


async def test_an_aggregator_without_requests_exports_only_the_header(
        config: Config, services: Services) -> None:
    world = AidWorld(services)
    selatan = await world.aggregator(SELATAN)
    await world.aggregator(TIMUR)
    await household(world, world.village(TIMUR), BUDI)
    code, out = await admin(config, "export", "requests", "--aggregator", str(selatan))
    assert code == 0
    assert out.splitlines() == ["reference,status,kelurahan,kecamatan,kota,household_size,"
                                "vulnerabilities,needs,created_at,updated_at"]


# --- pledges -----------------------------------------------------------------------------


async def test_pledges_of_the_aggregator_without_the_donors_details(
        config: Config, services: Services) -> None:
    world = AidWorld(services)
    selatan = await world.aggregator(SELATAN)
    timur = await world.aggregator(TIMUR)
    district = world.district_of(world.village(SELATAN))
    targeted = await pledge(world, selatan, 10, received=8, target_area_id=district)
    anywhere = await pledge(world, selatan, 5)
    await pledge(world, timur, 7, received=7)

    code, out = await admin(config, "export", "pledges", "--aggregator", str(selatan))
    assert code == 0
    assert out.splitlines()[0] == (
        "code,status,organisation,category,quantity,received_quantity,allocated_quantity,"
        "delivered_quantity,target_area,handover,created_at,updated_at")
    assert_no_personal_data(config, out)
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    district_entry = services.areas.get(district)
    assert district_entry is not None
    assert [(r["code"], r["status"], r["organisation"], r["category"], r["quantity"],
             r["received_quantity"], r["allocated_quantity"], r["delivered_quantity"],
             r["target_area"], r["handover"]) for r in rows] == [
        (targeted, "received", "yes", "food_package", "10", "8", "0", "0",
         district_entry.name, "pickup"),
        (anywhere, "pledged", "yes", "food_package", "5", "", "0", "0", "", "pickup"),
    ]
    assert all(ISO_UTC.match(r["created_at"]) and ISO_UTC.match(r["updated_at"])
               for r in rows)


# --- deliveries --------------------------------------------------------------------------


async def test_deliveries_with_the_pledges_they_came_from(config: Config,
                                                          services: Services) -> None:
    world = AidWorld(services)
    selatan = await world.aggregator(SELATAN)
    timur = await world.aggregator(TIMUR)
    here = world.village(SELATAN)
    first = await pledge(world, selatan, 3, received=3)
    second = await pledge(world, selatan, 4, received=4)
    await pledge(world, timur, 2, received=2)
    siti = await household(world, here, SITI, verified=True)
    budi = await household(world, world.village(SELATAN, 1), BUDI, verified=True)
    other = await world.household(world.village(TIMUR))
    await deliver(world, selatan, siti, 5)
    await deliver(world, selatan, budi, 1,
                  reason='=HYPERLINK("http://example.com/x","klik")')
    await deliver(world, timur, other, 2)

    code, out = await admin(config, "export", "deliveries", "--aggregator", str(selatan))
    assert code == 0
    assert out.splitlines()[0] == ("id,request_reference,kelurahan,category,quantity,status,"
                                   "override_reason,pledges,created_at,updated_at")
    assert_no_personal_data(config, out)
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    requests = await exported(config, "requests", "--aggregator", str(selatan))
    references = [r["reference"] for r in requests]
    place = services.areas.place(here)
    assert place is not None
    assert len(rows) == 2
    assert (rows[0]["request_reference"], rows[0]["kelurahan"], rows[0]["category"],
            rows[0]["quantity"], rows[0]["status"], rows[0]["override_reason"],
            rows[0]["pledges"]) == (references[0], place.village, "food_package", "5",
                                    "allocated", "", f"{first}:3;{second}:2")
    # Typed by staff: a spreadsheet must show it as text, not run it.
    assert rows[1]["override_reason"] == '\'=HYPERLINK("http://example.com/x","klik")'
    assert (rows[1]["request_reference"], rows[1]["pledges"]) == (references[1],
                                                                 f"{second}:1")
    assert all(r["id"].isdigit() and ISO_UTC.match(r["created_at"]) for r in rows)


@pytest.mark.parametrize(("value", "shown"), [
    ("=1+2", "'=1+2"), ("+62812", "'+62812"), ("-5", "'-5"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("a=b", "a=b"), ("", ""),
])
def test_formula_starts_are_neutralised(value: str, shown: str) -> None:
    assert export.cell(value) == shown


# --- options and errors ------------------------------------------------------------------


async def test_output_file_is_written(config: Config, services: Services,
                                      tmp_path: Path) -> None:
    world = AidWorld(services)
    selatan = await world.aggregator(SELATAN)
    await household(world, world.village(SELATAN), SITI)
    await household(world, world.village(SELATAN, 1), BUDI)
    reports = tmp_path / "reports"
    reports.mkdir()
    target = reports / "requests.csv"
    code, out = await admin(config, "export", "requests", "--aggregator", str(selatan),
                            "--format", "csv", "--output", str(target))
    assert code == 0
    assert out == f"wrote 2 requests of aggregator {selatan} to {target}\n"
    text = target.read_text(encoding="utf-8")
    assert text.startswith("reference,status,kelurahan,")
    assert len(list(csv.DictReader(io.StringIO(text, newline="")))) == 2
    assert_no_personal_data(config, text)
    assert [p.name for p in reports.iterdir()] == ["requests.csv"]


async def test_an_unknown_aggregator_is_a_clear_error(
        config: Config, services: Services, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    target = reports / "pledges.csv"
    code, out = await admin(config, "export", "pledges", "--aggregator", "9",
                            "--output", str(target))
    assert code == 2
    assert out == ""
    assert "there is no aggregator 9" in capsys.readouterr().err
    # No empty or half report is left behind.
    assert list(reports.iterdir()) == []


async def test_an_unwritable_output_is_a_clear_error(
        config: Config, services: Services, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    await AidWorld(services).aggregator(SELATAN)
    target = tmp_path / "missing" / "requests.csv"
    code, _ = await admin(config, "export", "requests", "--aggregator", "1",
                          "--output", str(target))
    assert code == 2
    assert f"cannot write {target}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["export", "households", "--aggregator", "1"],
    ["export", "requests"],
    ["export", "requests", "--aggregator", "1", "--format", "xlsx"],
])
def test_bad_export_options_are_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
