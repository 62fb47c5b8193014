"""Administrative areas: what is loaded into the database and the in-memory directory."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gotong.bot.services import Services
from gotong.models.area import (
    PROVINCES,
    Area,
    AreaDirectory,
    AreaLevel,
    Place,
    UnknownProvince,
    find_province,
    load_areas,
)

JAKARTA_REGENCIES = [
    "Kabupaten Kepulauan Seribu",
    "Kota Jakarta Barat",
    "Kota Jakarta Pusat",
    "Kota Jakarta Selatan",
    "Kota Jakarta Timur",
    "Kota Jakarta Utara",
]
# Postal codes of DI Yogyakarta kelurahan; none is used in Jakarta.
YOGYAKARTA_POSTAL = "55764"
YOGYAKARTA_POSTAL_VILLAGES = {"Mulyodadi", "Sidomulyo", "Sumbermulyo"}


def regency(services: Services, name: str) -> int:
    matches = [r.id for r in services.areas.regencies() if r.name == name]
    assert len(matches) == 1, name
    return matches[0]


def only(places: list[Place]) -> Place:
    assert len(places) == 1, places
    return places[0]


# --- the database -----------------------------------------------------------------------


async def test_jakarta_is_in_the_database(services: Services) -> None:
    async with services.sessions() as session:
        rows = await session.execute(select(Area.level, func.count()).group_by(Area.level))
        counts = {level: count for level, count in rows}
        province = await session.scalar(select(Area).where(Area.level == AreaLevel.PROVINCE))
    assert counts == {"province": 1, "regency": 6, "district": 44, "village": 267}
    assert province is not None
    assert (province.name, province.code, province.parent_id) == ("DKI Jakarta", "31", None)


async def test_every_area_hangs_from_the_level_above(services: Services) -> None:
    async with services.sessions() as session:
        areas = {a.id: a for a in (await session.scalars(select(Area))).all()}
    above = {AreaLevel.REGENCY: AreaLevel.PROVINCE, AreaLevel.DISTRICT: AreaLevel.REGENCY,
             AreaLevel.VILLAGE: AreaLevel.DISTRICT}
    for area in areas.values():
        if area.level == AreaLevel.PROVINCE:
            assert area.parent_id is None
        else:
            assert area.parent_id is not None
            assert areas[area.parent_id].level == above[AreaLevel(area.level)], area.name
        if area.level == AreaLevel.VILLAGE:
            assert area.code is not None
            assert len(area.code) == 5 and area.code.isdigit(), area.name


async def test_regency_names_read_without_adm(services: Services) -> None:
    async with services.sessions() as session:
        names = sorted((await session.scalars(
            select(Area.name).where(Area.level == AreaLevel.REGENCY))).all())
    assert names == JAKARTA_REGENCIES
    assert not any("Adm" in name for name in names)


async def test_load_areas_is_idempotent(services: Services) -> None:
    async with services.sessions() as session:
        before = await session.scalar(select(func.count()).select_from(Area))
        assert await load_areas(session, ("DKI Jakarta",)) == 0
        # The same province by any of its names.
        assert await load_areas(session, ("Jakarta", "31")) == 0
        after = await session.scalar(select(func.count()).select_from(Area))
        await session.rollback()
    assert before == after == 318


async def test_load_areas_takes_a_province_named_twice_once(services: Services) -> None:
    async with services.sessions() as session:
        assert await load_areas(session, ("DI Yogyakarta", "Yogyakarta")) == 522
        await session.rollback()


async def test_a_second_province_is_added_but_kept_out_of_scope(services: Services) -> None:
    async with services.sessions() as session:
        added = await load_areas(session, ("DI Yogyakarta",))
        # 1 province, 5 kota/kabupaten, 78 kecamatan, 438 kelurahan.
        assert added == 522
        assert await load_areas(session, ("di yogyakarta",)) == 0
        jakarta = await AreaDirectory.load(session, ("DKI Jakarta",))
        both = await AreaDirectory.load(session, ("DKI Jakarta", "DI Yogyakarta"))
        yogyakarta = await AreaDirectory.load(session, ("Yogyakarta",))
        # Nothing is kept: the database of the other tests still has Jakarta alone.
        await session.rollback()
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Area)) == 318

    assert [r.name for r in jakarta.regencies()] == JAKARTA_REGENCIES
    assert jakarta.by_postal_code(YOGYAKARTA_POSTAL) == []
    assert jakarta.exact_village("Sumbermulyo") == []
    assert all(p.regency in JAKARTA_REGENCIES for p in jakarta.search_villages("Sidomulyo"))
    assert only(jakarta.by_postal_code("12930")).village == "Karet Semanggi"

    regencies = [r.name for r in both.regencies()]
    assert len(regencies) == 11
    assert set(JAKARTA_REGENCIES) < set(regencies)
    assert {"Kota Yogyakarta", "Kabupaten Sleman", "Kabupaten Bantul"} < set(regencies)
    places = both.by_postal_code(YOGYAKARTA_POSTAL)
    assert {p.village for p in places} == YOGYAKARTA_POSTAL_VILLAGES
    assert {p.regency for p in places} == {"Kabupaten Bantul"}
    assert only(both.exact_village("Sumbermulyo")).postal_code == YOGYAKARTA_POSTAL
    assert only(both.by_postal_code("12930")).village == "Karet Semanggi"

    assert len(yogyakarta.regencies()) == 5
    assert yogyakarta.by_postal_code("12930") == []
    assert {p.village for p in yogyakarta.by_postal_code(YOGYAKARTA_POSTAL)} == \
        YOGYAKARTA_POSTAL_VILLAGES


async def test_unknown_province_is_not_loaded(services: Services) -> None:
    async with services.sessions() as session:
        with pytest.raises(UnknownProvince):
            await load_areas(session, ("Atlantis",))
        await session.rollback()


# --- the directory --------------------------------------------------------------------------


def test_directory_regencies(services: Services) -> None:
    regencies = services.areas.regencies()
    assert [r.name for r in regencies] == JAKARTA_REGENCIES
    assert all(r.level == AreaLevel.REGENCY for r in regencies)
    # A copy: callers cannot change the directory.
    regencies.clear()
    assert len(services.areas.regencies()) == 6


def test_directory_holds_44_kecamatan_and_267_kelurahan(services: Services) -> None:
    areas = services.areas
    districts = [d for r in areas.regencies() for d in areas.children(r.id)]
    villages = [v for d in districts for v in areas.children(d.id)]
    assert len(districts) == 44
    assert len(villages) == 267
    assert all(d.level == AreaLevel.DISTRICT for d in districts)
    assert all(v.level == AreaLevel.VILLAGE for v in villages)
    assert all(areas.children(v.id) == [] for v in villages)


def test_children_of_a_kota_are_its_kecamatan_by_name(services: Services) -> None:
    selatan = regency(services, "Kota Jakarta Selatan")
    children = services.areas.children(selatan)
    names = [c.name for c in children]
    assert names == sorted(names)
    assert names == ["Cilandak", "Jagakarsa", "Kebayoran Baru", "Kebayoran Lama",
                     "Mampang Prapatan", "Pancoran", "Pasar Minggu", "Pesanggrahan",
                     "Setia Budi", "Tebet"]
    assert all(c.parent_id == selatan and c.level == AreaLevel.DISTRICT for c in children)


def test_children_of_a_kecamatan_are_its_kelurahan_by_name(services: Services) -> None:
    setia_budi = next(c for c in services.areas.children(regency(services, "Kota Jakarta Selatan"))
                      if c.name == "Setia Budi")
    names = [c.name for c in services.areas.children(setia_budi.id)]
    assert names == sorted(names)
    assert "Karet Semanggi" in names
    assert "Karet" in names


def test_children_of_unknown_area(services: Services) -> None:
    assert services.areas.children(-1) == []


def test_get(services: Services) -> None:
    selatan = regency(services, "Kota Jakarta Selatan")
    entry = services.areas.get(selatan)
    assert entry is not None
    assert entry.name == "Kota Jakarta Selatan"
    assert services.areas.get(-1) is None


def test_place_gives_the_full_path(services: Services) -> None:
    karet = only(services.areas.exact_village("Karet Semanggi"))
    place = services.areas.place(karet.village_id)
    assert place == karet
    assert (place.village, place.district, place.regency, place.postal_code) == (
        "Karet Semanggi", "Setia Budi", "Kota Jakarta Selatan", "12930")
    district = services.areas.get(place.district_id)
    assert district is not None and district.name == "Setia Budi"
    assert district.parent_id == place.regency_id
    assert place.display() == "Karet Semanggi, Setia Budi, Kota Jakarta Selatan 12930"


def test_place_of_something_other_than_a_kelurahan(services: Services) -> None:
    areas = services.areas
    selatan = regency(services, "Kota Jakarta Selatan")
    assert areas.place(selatan) is None
    assert areas.place(areas.children(selatan)[0].id) is None
    assert areas.place(-1) is None


def test_by_postal_code(services: Services) -> None:
    place = only(services.areas.by_postal_code("12930"))
    assert place.village == "Karet Semanggi"
    assert place.regency == "Kota Jakarta Selatan"
    assert only(services.areas.by_postal_code(" 12930 ")) == place


@pytest.mark.parametrize(
    ("code", "villages"),
    [
        ("11460", {"Jelambar", "Jelambar Baru", "Wijaya Kusuma"}),
        ("12630", {"Ciganjur", "Cipedak", "Lenteng Agung"}),
    ],
)
def test_a_shared_postal_code_gives_every_kelurahan(
    services: Services, code: str, villages: set[str]
) -> None:
    places = services.areas.by_postal_code(code)
    assert {p.village for p in places} == villages
    assert all(p.postal_code == code for p in places)


@pytest.mark.parametrize("code", ["99999", "55764", "", "1293", "abcde"])
def test_unknown_postal_code(services: Services, code: str) -> None:
    assert services.areas.by_postal_code(code) == []


@pytest.mark.parametrize(
    "text",
    ["Karet Semanggi", "karet semangi", "KARET SEMANGGI", "kel. karet semanggi",
     "Kelurahan Karet Semanggi", "  karet  semanggi "],
)
def test_search_villages_finds_a_misspelt_or_prefixed_name(services: Services, text: str) -> None:
    places = services.areas.search_villages(text)
    assert places, text
    assert places[0].village == "Karet Semanggi"
    assert places[0].postal_code == "12930"
    assert len(places) <= 5


def test_search_villages_respects_the_limit(services: Services) -> None:
    assert len(services.areas.search_villages("karet", limit=2)) <= 2


@pytest.mark.parametrize("text", ["xqzzvbnw", "qwfpgjluy", "", "   ", "!!!"])
def test_search_villages_finds_nothing_for_gibberish(services: Services, text: str) -> None:
    assert services.areas.search_villages(text) == []


def test_exact_village(services: Services) -> None:
    areas = services.areas
    place = only(areas.exact_village("Karet Semanggi"))
    assert place.postal_code == "12930"
    assert areas.exact_village("kelurahan karet semanggi") == [place]
    assert areas.exact_village("kel. KARET SEMANGGI") == [place]
    assert only(areas.exact_village("Karet")).postal_code == "12920"
    # Exact means exact: no fuzzy matching.
    assert areas.exact_village("karet semangi") == []
    assert areas.exact_village("semanggi") == []


# --- provinces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["31", "DKI Jakarta", "dki jakarta", "DKI JAKARTA", "  DKI Jakarta ", "Jakarta",
     "jakarta", "daerah khusus ibukota jakarta"],
)
def test_find_province_by_code_name_or_alias(name: str) -> None:
    province = find_province(name)
    assert (province.code, province.name) == ("31", "DKI Jakarta")


@pytest.mark.parametrize(
    ("name", "code"),
    [("DI Yogyakarta", "34"), ("yogyakarta", "34"), ("Sumatra Utara", "12"),
     ("sumatera utara", "12"), ("NTT", "53"), ("Bali", "51")],
)
def test_find_other_provinces(name: str, code: str) -> None:
    assert find_province(name).code == code


@pytest.mark.parametrize("name", ["Atlantis", "", "99", "3", "Jakarta Selatan", "DKI"])
def test_unknown_province(name: str) -> None:
    with pytest.raises(UnknownProvince):
        find_province(name)
    assert issubclass(UnknownProvince, ValueError)


def test_no_name_or_code_names_two_provinces() -> None:
    owners: dict[str, set[str]] = {}
    for p in PROVINCES:
        for name in (p.code, p.name, p.source, *p.aliases):
            owners.setdefault(name.casefold(), set()).add(p.code)
    assert {name: codes for name, codes in owners.items() if len(codes) > 1} == {}
    assert len({p.code for p in PROVINCES}) == len(PROVINCES)
    assert all(len(p.code) == 2 and p.code.isdigit() for p in PROVINCES)
