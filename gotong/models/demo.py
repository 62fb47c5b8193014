"""The playground's demo data: an aid organisation covering one kecamatan of Jakarta, its
staff member and an approved volunteer, each the person behind one playground screen.

Everything is fictional, and made with the same domain operations the operator's commands
and the chat use (an aggregator, an invite redeemed, a volunteer signed up), so the demo
behaves as a real deployment would. The household and the donor start with nothing and
register in chat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gotong.models.aggregator import (
    Aggregator,
    InviteRole,
    Posko,
    create_aggregator,
    create_invite,
    redeem_invite,
)
from gotong.models.area import AreaDirectory, AreaEntry, AreaLevel
from gotong.models.contact import get_or_create_contact
from gotong.models.volunteer import NewVolunteer, register_volunteer

CHANNEL = "web"  # the playground's channel (bot/playground.py)
STAFF_CHAT = "staff"
VOLUNTEER_CHAT = "volunteer"
AGGREGATOR_NAME = "Posko Contoh (demo)"
POSKO = Posko("Jl. Contoh No. 1, Setia Budi (alamat fiktif)", "Senin-Sabtu 08.00-16.00")
VOLUNTEER_NAME = "Rizky Contoh"
# The number the volunteer screen shares (bot/playground.py): fictional.
VOLUNTEER_PHONE = "+6281200000003"
# Where the demo happens; when the area data names them otherwise, the first kota,
# kecamatan and kelurahan in alphabetical order are taken instead.
KOTA = "Jakarta Selatan"
KECAMATAN = "Setia Budi"
KELURAHAN = "Karet Semanggi"


@dataclass(frozen=True)
class DemoArea:
    kota: AreaEntry
    kecamatan: AreaEntry
    kelurahan: AreaEntry


def _named_or_first(areas: AreaDirectory, level: AreaLevel, name: str,
                    candidates: list[AreaEntry], within: AreaEntry | None) -> AreaEntry:
    found = areas.named(level, name, [within.id] if within is not None else ())
    if found:
        return found[0]
    if not candidates:
        raise LookupError(f"no {level.value} for the demo: load the areas first")
    return candidates[0]


def demo_area(areas: AreaDirectory) -> DemoArea:
    """The kota, kecamatan and kelurahan of the demo, the same on every run."""
    kota = _named_or_first(areas, AreaLevel.REGENCY, KOTA, areas.regencies(), None)
    kecamatan = _named_or_first(areas, AreaLevel.DISTRICT, KECAMATAN,
                                areas.children(kota.id), kota)
    kelurahan = _named_or_first(areas, AreaLevel.VILLAGE, KELURAHAN,
                                areas.children(kecamatan.id), kecamatan)
    return DemoArea(kota, kecamatan, kelurahan)


async def seed_demo(session: AsyncSession, areas: AreaDirectory, now: datetime,
                    language: str) -> bool:
    """Make the demo's aggregator, staff member and volunteer; False if they exist."""
    existing = await session.scalar(
        select(Aggregator.id).where(Aggregator.name == AGGREGATOR_NAME))
    if existing is not None:
        return False
    place = demo_area(areas)
    aggregator = await create_aggregator(session, AGGREGATOR_NAME, POSKO,
                                         [place.kecamatan.id], now)
    # The staff screen joins as a person would, with a one-time code used at once.
    staff, _ = await get_or_create_contact(session, CHANNEL, STAFF_CHAT, language, now)
    code = await create_invite(session, aggregator.id, InviteRole.STAFF, 1,
                               now + timedelta(hours=1), now)
    if await redeem_invite(session, code, InviteRole.STAFF, staff.id, now) is None:
        raise AssertionError("a fresh invite was refused")
    volunteer, _ = await get_or_create_contact(session, CHANNEL, VOLUNTEER_CHAT, language,
                                               now)
    # As if the volunteer had shared their number from the app when signing up.
    volunteer.verified_phone = VOLUNTEER_PHONE
    await register_volunteer(session, volunteer.id, NewVolunteer(
        aggregator_id=aggregator.id, name=VOLUNTEER_NAME, phone=VOLUNTEER_PHONE,
        area_ids=[place.kecamatan.id], travel="motorbike", capacity=10, approved=True,
    ), now)
    return True
