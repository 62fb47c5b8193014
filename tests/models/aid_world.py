"""A small world of aid for model tests: aggregators, households, pledges in stock."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy import select

from gotong.bot.services import Services
from gotong.models.aggregator import Posko, create_aggregator
from gotong.models.area import AreaLevel
from gotong.models.base import utcnow
from gotong.models.contact import get_or_create_contact
from gotong.models.help_request import HelpRequest, NewRequest, submit_request, verify_request
from gotong.models.nik import protect_nik
from gotong.models.pledge import Handover, NewPledge, Pledge, create_pledge
from gotong.models.stock import StockItem, receive_pledge

_chats = itertools.count(1)
NIK_KEY = b"k" * 32


class AidWorld:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.now = utcnow()
        self.staff_id = 0

    def village(self, kota: str, index: int = 0) -> int:
        areas = self.services.areas
        [regency] = areas.named(AreaLevel.REGENCY, kota)
        district = areas.children(regency.id)[index % len(areas.children(regency.id))]
        return areas.children(district.id)[0].id

    def district_of(self, village_id: int) -> int:
        entry = self.services.areas.get(village_id)
        assert entry is not None and entry.parent_id is not None
        return entry.parent_id

    async def contact(self, language: str = "id") -> int:
        async with self.services.sessions() as session, session.begin():
            contact, _ = await get_or_create_contact(session, "telegram", str(next(_chats)),
                                                     language, self.now)
            return contact.id

    async def aggregator(self, kota: str) -> int:
        [regency] = self.services.areas.named(AreaLevel.REGENCY, kota)
        async with self.services.sessions() as session, session.begin():
            created = await create_aggregator(session, f"Posko {kota}", Posko.parse(
                "Jl. Posko 1; 08.00-16.00"), [regency.id], self.now)
            if not self.staff_id:
                contact, _ = await get_or_create_contact(session, "telegram", "staff", "id",
                                                         self.now)
                self.staff_id = contact.id
            return created.id

    async def household(self, village_id: int, *, size: int = 3,
                        vulnerabilities: tuple[str, ...] = (), name: str | None = None,
                        phone: str | None = None, nik: str | None = None,
                        street: str | None = None, verified: bool = True,
                        at: datetime | None = None) -> int:
        number = next(_chats)
        contact_id = await self.contact()
        async with self.services.sessions() as session, session.begin():
            request, _ = await submit_request(session, contact_id, NewRequest(
                head_name=name or f"Warga {number}", phone=phone or f"+62812{number:08d}",
                nik=protect_nik(nik, NIK_KEY) if nik else None, village_id=village_id,
                street=street or f"Jl. Mawar {number}", rt="1", rw="2",
                household_size=size, vulnerabilities=list(vulnerabilities), needs=["food"],
                needs_other=None), now=at or self.now, duplicate_window=timedelta(days=90))
            if verified:
                await verify_request(session, request, self.staff_id, at or self.now)
            return request.id

    async def pledge(self, aggregator_id: int, quantity: int, *, received: int | None = None,
                     category: str = "food_package", target_area_id: int | None = None
                     ) -> int:
        donor = await self.contact("en")
        async with self.services.sessions() as session, session.begin():
            pledge = await create_pledge(session, donor, NewPledge(
                organisation=False, donor_name="Donatur", phone="+6281299990000",
                category=category, quantity=quantity, target_area_id=target_area_id,
                aggregator_id=aggregator_id, handover=Handover.DROP, pickup_address=None,
                pickup_window=None), self.now)
            if received is not None:
                await receive_pledge(session, pledge, received, self.staff_id, self.now)
            return pledge.id

    async def stock(self, aggregator_id: int, category: str = "food_package") -> int:
        async with self.services.sessions() as session:
            quantity = await session.scalar(select(StockItem.quantity).where(
                StockItem.aggregator_id == aggregator_id, StockItem.category == category))
            return int(quantity or 0)

    async def statuses(self, request_ids: list[int]) -> list[str]:
        async with self.services.sessions() as session:
            rows = dict((await session.execute(
                select(HelpRequest.id, HelpRequest.status)
                .where(HelpRequest.id.in_(request_ids)))).all())
            return [rows[i] for i in request_ids]

    async def pledges(self, pledge_ids: list[int]) -> list[Pledge]:
        async with self.services.sessions() as session:
            found = {p.id: p for p in (await session.scalars(
                select(Pledge).where(Pledge.id.in_(pledge_ids)))).all()}
            return [found[i] for i in pledge_ids]
