"""Administrative areas: province > kota/kabupaten > kecamatan > kelurahan/desa.

The hierarchy with postal codes comes from the `areaid` package and is copied into the
`area` table for the provinces in scope. At run time an `AreaDirectory` holds the areas in
memory (Jakarta has 267 kelurahan, all Indonesia about 83,000), which makes menus, postal
code look-ups and fuzzy name search cheap on every message.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process, utils
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gotong.models.base import Base


class AreaLevel(enum.StrEnum):
    PROVINCE = "province"
    REGENCY = "regency"  # kota or kabupaten
    DISTRICT = "district"  # kecamatan
    VILLAGE = "village"  # kelurahan or desa


# Area ids are derived from the source's ids so that they are the same in every
# database loaded from the same data: the source numbers each level on its own.
_ID_OFFSET = {
    AreaLevel.PROVINCE: 1_000_000,
    AreaLevel.REGENCY: 2_000_000,
    AreaLevel.DISTRICT: 3_000_000,
    AreaLevel.VILLAGE: 4_000_000,
}


@dataclass(frozen=True)
class Province:
    code: str  # BPS / Kemendagri code, the first two digits of a NIK
    name: str
    source: str  # file name in the areaid package
    aliases: tuple[str, ...] = ()


PROVINCES: tuple[Province, ...] = (
    Province("11", "Aceh", "aceh"),
    Province("12", "Sumatera Utara", "sumatra utara", ("Sumatra Utara",)),
    Province("13", "Sumatera Barat", "sumatra barat", ("Sumatra Barat",)),
    Province("14", "Riau", "riau"),
    Province("15", "Jambi", "jambi"),
    Province("16", "Sumatera Selatan", "sumatra selatan", ("Sumatra Selatan",)),
    Province("17", "Bengkulu", "bengkulu"),
    Province("18", "Lampung", "lampung"),
    Province("19", "Kepulauan Bangka Belitung", "kepulauan bangka belitung", ("Babel",)),
    Province("21", "Kepulauan Riau", "kepulauan riau", ("Kepri",)),
    Province("31", "DKI Jakarta", "daerah khusus ibukota jakarta", ("Jakarta",)),
    Province("32", "Jawa Barat", "jawa barat"),
    Province("33", "Jawa Tengah", "jawa tengah"),
    Province("34", "DI Yogyakarta", "daerah istimewa yogyakarta", ("Yogyakarta",)),
    Province("35", "Jawa Timur", "jawa timur"),
    Province("36", "Banten", "banten"),
    Province("51", "Bali", "bali"),
    Province("52", "Nusa Tenggara Barat", "nusa tenggara barat", ("NTB",)),
    Province("53", "Nusa Tenggara Timur", "nusa tenggara timur", ("NTT",)),
    Province("61", "Kalimantan Barat", "kalimantan barat"),
    Province("62", "Kalimantan Tengah", "kalimantan tengah"),
    Province("63", "Kalimantan Selatan", "kalimantan selatan"),
    Province("64", "Kalimantan Timur", "kalimantan timur"),
    Province("65", "Kalimantan Utara", "kalimantan utara"),
    Province("71", "Sulawesi Utara", "sulawesi utara"),
    Province("72", "Sulawesi Tengah", "sulawesi tengah"),
    Province("73", "Sulawesi Selatan", "sulawesi selatan"),
    Province("74", "Sulawesi Tenggara", "sulawesi tenggara"),
    Province("75", "Gorontalo", "gorontalo"),
    Province("76", "Sulawesi Barat", "sulawesi barat"),
    Province("81", "Maluku", "maluku"),
    Province("82", "Maluku Utara", "maluku utara"),
    Province("91", "Papua", "papua"),
    Province("92", "Papua Barat", "papua barat"),
)


class UnknownProvince(ValueError):
    pass


def find_province(name_or_code: str) -> Province:
    """A province by BPS code, official name, source name or alias (any case)."""
    wanted = name_or_code.strip().casefold()
    for province in PROVINCES:
        names = (province.code, province.name, province.source, *province.aliases)
        if wanted in (n.casefold() for n in names):
            return province
    raise UnknownProvince(name_or_code)


class Area(Base):
    __tablename__ = "area"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    level: Mapped[str] = mapped_column(String(10), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    # Province BPS code on provinces; five-digit postal code on villages.
    code: Mapped[str | None] = mapped_column(String(10), index=True)


def _source_rows(province: Province) -> Iterable[dict[str, Any]]:
    from areaid import buka_data

    for prov in buka_data(province.source):
        prov_id = _ID_OFFSET[AreaLevel.PROVINCE] + int(prov["id"])
        yield {"id": prov_id, "level": AreaLevel.PROVINCE, "parent_id": None,
               "name": province.name, "code": province.code}
        for kab in prov["kabupaten"]:
            kab_id = _ID_OFFSET[AreaLevel.REGENCY] + int(kab["id"])
            yield {"id": kab_id, "level": AreaLevel.REGENCY, "parent_id": prov_id,
                   "name": _tidy_regency(kab["kab_kota"]), "code": None}
            for kec in kab["kecamatan"]:
                kec_id = _ID_OFFSET[AreaLevel.DISTRICT] + int(kec["id"])
                yield {"id": kec_id, "level": AreaLevel.DISTRICT, "parent_id": kab_id,
                       "name": kec["kec"], "code": None}
                for kel in kec["kelurahan"]:
                    yield {"id": _ID_OFFSET[AreaLevel.VILLAGE] + int(kel["id"]),
                           "level": AreaLevel.VILLAGE, "parent_id": kec_id,
                           "name": kel["kelu"], "code": f"{int(kel['pos']):05d}"}


def _tidy_regency(name: str) -> str:
    # "Kota Adm. Jakarta Barat" reads as "Kota Jakarta Barat" to the people who live there.
    return re.sub(r"\s+Adm\.\s+", " ", name)


async def load_areas(session: AsyncSession, provinces: Sequence[str]) -> int:
    """Copy the provinces' areas into the database if missing; return rows added."""
    existing = set((await session.scalars(select(Area.id))).all())
    added = 0
    # One province may be named twice (by name and by code): load it once.
    in_scope = {p.code: p for p in map(find_province, provinces)}
    for province in in_scope.values():
        rows = [r for r in _source_rows(province) if r["id"] not in existing]
        # Parents come before children in the source order, so foreign keys hold.
        session.add_all(Area(**row) for row in rows)
        existing.update(r["id"] for r in rows)
        added += len(rows)
        await session.flush()
    return added


@dataclass(frozen=True)
class Place:
    """A kelurahan with the names of the areas above it."""

    village_id: int
    village: str
    district_id: int
    district: str
    regency_id: int
    regency: str
    postal_code: str

    def display(self) -> str:
        return f"{self.village}, {self.district}, {self.regency} {self.postal_code}"


@dataclass(frozen=True)
class AreaEntry:
    id: int
    level: str
    parent_id: int | None
    name: str
    code: str | None


_VILLAGE_PREFIX = re.compile(r"^(kelurahan|kel\.?|desa|ds\.?)\s+", re.IGNORECASE)


def _normalise_name(text: str) -> str:
    return str(utils.default_process(_VILLAGE_PREFIX.sub("", text.strip())))


class AreaDirectory:
    """Read-only, in-memory view of the areas in scope."""

    def __init__(self, entries: Iterable[AreaEntry], province_codes: Sequence[str]) -> None:
        self._by_id: dict[int, AreaEntry] = {}
        self._children: dict[int | None, list[AreaEntry]] = defaultdict(list)
        for entry in entries:
            self._by_id[entry.id] = entry
            self._children[entry.parent_id].append(entry)
        for children in self._children.values():
            children.sort(key=lambda e: e.name)
        provinces = [e for e in self._children[None] if e.code in province_codes]
        self._regencies = sorted(
            (r for p in provinces for r in self._children[p.id]), key=lambda e: e.name
        )
        # Only kelurahan of provinces in scope can be found by postal code or name.
        districts = [d for r in self._regencies for d in self._children[r.id]]
        villages = [v for d in districts for v in self._children[d.id]]
        self._by_postal: dict[str, list[AreaEntry]] = defaultdict(list)
        for village in villages:
            if village.code:
                self._by_postal[village.code].append(village)
        self._village_ids = [v.id for v in villages]
        self._village_names = [_normalise_name(v.name) for v in villages]

    @classmethod
    async def load(cls, session: AsyncSession, provinces: Sequence[str]) -> AreaDirectory:
        rows = await session.execute(select(Area.id, Area.level, Area.parent_id, Area.name,
                                            Area.code))
        entries = [AreaEntry(*row) for row in rows]
        return cls(entries, [find_province(p).code for p in provinces])

    def get(self, area_id: int) -> AreaEntry | None:
        return self._by_id.get(area_id)

    def regencies(self) -> list[AreaEntry]:
        return list(self._regencies)

    def children(self, area_id: int) -> list[AreaEntry]:
        return list(self._children.get(area_id, ()))

    def place(self, village_id: int) -> Place | None:
        village = self._by_id.get(village_id)
        if village is None or village.level != AreaLevel.VILLAGE or village.parent_id is None:
            return None
        district = self._by_id[village.parent_id]
        assert district.parent_id is not None
        regency = self._by_id[district.parent_id]
        return Place(village.id, village.name, district.id, district.name, regency.id,
                     regency.name, village.code or "")

    def by_postal_code(self, code: str) -> list[Place]:
        places = (self.place(v.id) for v in self._by_postal.get(code.strip(), ()))
        return [p for p in places if p is not None]

    def search_villages(self, text: str, limit: int = 5, cutoff: float = 70.0) -> list[Place]:
        """Kelurahan whose names are close to `text`, best first."""
        query = _normalise_name(text)
        if not query:
            return []
        matches = process.extract(query, self._village_names, scorer=fuzz.WRatio,
                                  processor=None, limit=limit, score_cutoff=cutoff)
        places = (self.place(self._village_ids[index]) for _name, _score, index in matches)
        return [p for p in places if p is not None]

    def exact_village(self, text: str) -> list[Place]:
        """Kelurahan whose normalised name is exactly `text` (there can be several)."""
        query = _normalise_name(text)
        places = (self.place(self._village_ids[i])
                  for i, name in enumerate(self._village_names) if name == query)
        return [p for p in places if p is not None]

    def named(self, level: AreaLevel, name: str, within: Collection[int] = ()
              ) -> list[AreaEntry]:
        """Areas of a level in scope called `name` (with or without "Kota",
        "Kabupaten", "Kecamatan", "Kelurahan"), inside the areas `within` if given."""
        wanted = _fold_area_name(name)
        parents = list(within) or [r.id for r in self._regencies]
        if level == AreaLevel.REGENCY:
            candidates = [r for r in self._regencies if not within or r.id in within]
        elif level == AreaLevel.DISTRICT:
            candidates = [d for p in parents for d in self._descendants(p, AreaLevel.DISTRICT)]
        else:
            candidates = [v for p in parents for v in self._descendants(p, AreaLevel.VILLAGE)]
        return [c for c in candidates if _fold_area_name(c.name) == wanted]

    def villages_under(self, area_ids: Iterable[int]) -> set[int]:
        """Every kelurahan in the given areas (a kota, a kecamatan or a kelurahan)."""
        return {v.id for area_id in area_ids
                for v in self._descendants(area_id, AreaLevel.VILLAGE)}

    def _descendants(self, area_id: int, level: AreaLevel) -> list[AreaEntry]:
        entry = self._by_id.get(area_id)
        if entry is None:
            return []
        if entry.level == level:
            return [entry]
        return [d for child in self._children.get(area_id, ())
                for d in self._descendants(child.id, level)]


_AREA_PREFIX = re.compile(r"^(kota|kabupaten|kab\.?|kecamatan|kec\.?|kelurahan|kel\.?|desa)\s+")


def _fold_area_name(name: str) -> str:
    return _AREA_PREFIX.sub("", " ".join(name.casefold().split()))
