"""Scenario test: the whole aid chain through the real python-telegram-bot and the fake Bot
API, each person in their own chat, and what each of them hears (PRODUCT.md, "who hears
what"): the operator sets up an aggregator, its staff member joins, three households
register, staff verify two and reject one, a donor pledges (staff hear of it), staff
receive the pledge into stock and allocate it by priority, and the digests go out."""

from __future__ import annotations

import re

from sqlalchemy import select

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.aggregator import Aggregator
from gotong.models.delivery import Delivery, DeliverySource
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.pledge import Pledge
from gotong.models.stock import StockItem
from tests.bot.channels.telegram_harness import Person, Running
from tests.bot.dispatch_harness import wait_settled
from tests.bot.test_queue import staff_of

REFERENCE = re.compile(r"GT-[2-9A-Z]{5}")
PLEDGE_CODE = re.compile(r"GP-[2-9A-Z]{5}")


def texts(person: Person) -> list[str]:
    return [m.text for m in person.messages]


def reference_in(text: str) -> str:
    found = REFERENCE.search(text)
    assert found is not None, text
    return found.group()


async def register_in_indonesian(person: Person) -> str:
    """The household dialog in Indonesian from the main menu, choosing the area by buttons:
    Siti Aminah, Karet Semanggi, 5 people with an elderly member; the reference it got."""
    replies = await person.say("/start")
    assert "Halo! Saya Gotong" in replies[0].text
    await person.tap("Minta bantuan")
    await person.tap("Ya, saya setuju")
    await person.say("Siti Aminah")
    await person.share_contact("+62 812-3456-7890")
    assert "NIK" in person.last.text
    await person.tap("Lewati")
    await person.tap("Jakarta Selatan")
    await person.tap("Berikutnya")
    await person.tap("Setia Budi")
    await person.tap("Karet Semanggi")
    await person.say("Jl. Melati No. 5 RT 03 RW 05")
    await person.say("5")
    await person.tap("Lansia")
    await person.tap("Selesai")
    await person.say("1, 3")
    assert "Mohon periksa pendaftaran Anda" in person.last.text
    replies = await person.tap("Kirim")
    assert "Permintaan Anda sudah terdaftar" in replies[-1].text
    return reference_in(replies[-1].text)


async def register_in_english(person: Person, *, name: str, phone: str, nik: str | None,
                              kelurahan: str, street: str, size: int,
                              vulnerable: list[str]) -> str:
    """The household dialog in English, typing the kelurahan; the reference it got."""
    replies = await person.say("/request")
    assert "Do you agree?" in replies[0].text
    await person.tap("Yes, I agree")
    assert "full name of the head of the household" in person.last.text
    await person.say(name)
    await person.say(phone)
    assert "NIK" in person.last.text
    if nik is None:
        await person.tap("Skip")
    else:
        await person.say(nik)
    assert "Where do you live?" in person.last.text
    await person.say(kelurahan)
    assert "street address" in person.last.text
    await person.say(street)
    await person.say(str(size))
    assert "Does your household include any of these?" in person.last.text
    for label in vulnerable or ["None of these"]:
        await person.tap(label)
    await person.tap("Done")
    await person.tap("Staple food package")
    await person.tap("Done")
    assert "Please check your registration" in person.last.text
    replies = await person.tap("Submit")
    assert "Your request is registered" in replies[-1].text
    return reference_in(replies[-1].text)


async def pledge_in_english(person: Person) -> str:
    """The donor dialog: 10 staple food packages for Jakarta Selatan, brought to the posko;
    the pledge code."""
    replies = await person.say("/donate")
    assert "as a person or for an organisation?" in replies[0].text
    await person.tap("As a person")
    await person.say("Maria Lestari")
    await person.say("0813 5555 7777")
    assert "What do you give?" in person.last.text
    await person.tap("Staple food packages")
    assert "How many packages?" in person.last.text
    await person.say("10")
    await person.tap("Jakarta Selatan")
    await person.tap("The whole kota")
    # The one aggregator of that kota is named, not asked for.
    assert "Your gift goes to Posko Jakarta Selatan" in person.last.text
    await person.tap("I bring it to the posko")
    summary = person.last.text
    assert "Please check your pledge" in summary and "Staple food packages" in summary
    replies = await person.tap("Submit")
    found = PLEDGE_CODE.search(replies[-1].text)
    assert found is not None, replies[-1].text
    return found.group()


async def test_the_aid_chain_from_request_to_allocation_and_who_hears_what(
        config: Config, services: Services, running: Running) -> None:
    bot, dispatch = running.bot, running.dispatch

    # 1-2. The operator sets up the aggregator and invites its staff member, who joins.
    staff = bot.person(7000, first_name="Rina")
    await staff_of(config, staff, "Jakarta Selatan")

    # 3. Three households of Jakarta Selatan register in chat; their priority scores are
    # Daniel 45 (7 people, pregnancy, child under five), Siti 35 (5 people, elderly) and
    # Rudi 19 (2 people), each with 15 for no aid yet.
    siti = bot.person(7001, language="id", first_name="Siti")
    siti_ref = await register_in_indonesian(siti)
    daniel = bot.person(7002, language="en", first_name="Daniel")
    daniel_ref = await register_in_english(
        daniel, name="Daniel Hartono", phone="0857 1111 2222", nik="3171234508900001",
        kelurahan="Pela Mampang", street="Jl. Kenari 9 RT 04 RW 02", size=7,
        vulnerable=["Pregnant", "Child under five"])
    rudi = bot.person(7003, language="en", first_name="Rudi")
    rudi_ref = await register_in_english(
        rudi, name="Rudi Salim", phone="0858 3333 4444", nik=None, kelurahan="Kebagusan",
        street="Jl. Anggrek 2 RT 01 RW 07", size=2, vulnerable=[])
    dialogs = {p.user.id: len(p.messages) for p in (siti, daniel, rudi)}
    # Staff hear of the three new requests in one digest message, which waits for its
    # pass: news of requests no longer waiting when it comes would be outdated.
    assert await dispatch.dispatcher.queue_digests() == 1
    await wait_settled(services)

    # 4. Staff verify the queue, highest priority first, and reject the last one.
    [card] = await staff.say("/antrian")
    assert card.text.startswith(f"{daniel_ref} menunggu verifikasi")
    assert ("Prioritas 45: jumlah orang 14, kehamilan 8, balita 8, belum pernah dibantu 15"
            in card.text)
    [reply] = await staff.tap("Verifikasi")
    assert reply.text.startswith(f"{daniel_ref} sudah diverifikasi")
    assert f"{siti_ref} menunggu verifikasi" in reply.text
    assert "Prioritas 35: jumlah orang 10, lansia 10, belum pernah dibantu 15" in reply.text
    [reply] = await staff.tap("Verifikasi")
    assert reply.text.startswith(f"{siti_ref} sudah diverifikasi")
    assert f"{rudi_ref} menunggu verifikasi" in reply.text
    assert "Prioritas 19: jumlah orang 4, belum pernah dibantu 15" in reply.text
    await staff.tap("Tolak")
    [reply] = await staff.tap("data tidak lengkap atau salah")
    assert reply.text.startswith(f"{rudi_ref} ditolak")
    # The households hear of it before aid is allocated (after, "verified" is outdated).
    await wait_settled(services)

    # 5. A donor pledges 10 staple food packages to the aggregator, brought to the posko.
    maria = bot.person(7004, language="en", first_name="Maria")
    code = await pledge_in_english(maria)
    pledge_dialog = len(maria.messages)
    # Staff hear of it at once (notifications.staff_new_pledge = "now").
    await wait_settled(services)
    assert staff.messages[-1].text == (
        f"Donasi baru untuk lembaga Anda: {code}, 10 × Paket sembako, akan diantar "
        "donatur ke posko. Catat saat tiba dengan /donasi_masuk.")

    # 6. Staff receive the pledge and count 8.
    [listing] = await staff.say("/donasi_masuk")
    assert f"1. {code}: 10 paket sembako, dari Maria Lestari" in listing.text
    [question] = await staff.tap(f"Terima {code}")
    assert f"Berapa paket yang tiba untuk donasi {code}? Dijanjikan: 10 paket sembako." \
        in question.text
    [reply] = await staff.say("8")
    assert reply.text.startswith(f"{code} diterima: 8 paket masuk stok.")

    # 7. The stock holds what was counted.
    [stock] = await staff.say("/stok")
    assert "- Paket sembako: 8 paket" in stock.text

    # 8. Staff allocate one package per household: the two verified ones, by priority.
    [reply] = await staff.say("/alokasi")
    assert [t for t, _ in reply.buttons()] == ["1. Paket sembako (8 paket)"]
    await staff.tap("Paket sembako")
    [proposal] = await staff.tap("1")
    lines = proposal.text.splitlines()
    assert lines[0] == ("Usulan: 2 keluarga, masing-masing 1 paket (2 paket dari stok 8 paket), "
                        "prioritas tertinggi dulu:")
    assert lines[1].startswith(f"1. {daniel_ref} Daniel Hartono, Pela Mampang")
    assert lines[1].endswith("7 orang. Skor 45: jumlah orang 14, kehamilan 8, balita 8, "
                             "belum pernah dibantu 15")
    assert lines[2].startswith(f"2. {siti_ref} Siti Aminah, Karet Semanggi")
    assert lines[2].endswith("5 orang. Skor 35: jumlah orang 10, lansia 10, "
                             "belum pernah dibantu 15")
    assert len(lines) == 3
    [done] = await staff.tap("Konfirmasi")
    assert done.text == ("Dialokasikan 1 paket untuk 2 keluarga. Setiap keluarga sudah "
                         "diberi tahu.\nSisa stok: 6 paket.")

    # 9. The digest pass, then everything is delivered.
    assert await dispatch.dispatcher.queue_digests() == 1  # the donor's pledge
    counts = await wait_settled(services)
    assert set(counts) == {"sent"}, counts

    # Who heard what, in their own chat and language.
    staff_texts = texts(staff)
    assert len(staff_texts) == 17, staff_texts
    for text, expected in zip(staff_texts, [
            "Selamat datang! Anda sekarang petugas Posko Jakarta Selatan.",
            "Apa yang ingin Anda lakukan?",  # the menu after joining
            "Ada permintaan baru yang menunggu verifikasi di wilayah Anda. Kirim /antrian "
            "untuk melihatnya.",
            f"{daniel_ref} menunggu verifikasi",
            f"{daniel_ref} sudah diverifikasi",
            f"{siti_ref} sudah diverifikasi",
            f"Mengapa {rudi_ref} ditolak?",
            f"{rudi_ref} ditolak; keluarganya sudah diberi tahu alasannya.",
            f"Donasi baru untuk lembaga Anda: {code}",
            "Donasi yang menunggu diterima",
            f"Berapa paket yang tiba untuk donasi {code}?",
            f"{code} diterima: 8 paket masuk stok.",
            "Stok lembaga Anda:",
            "Apa yang ingin Anda alokasikan?",
            "Berapa paket per keluarga?",
            "Usulan: 2 keluarga",
            "Dialokasikan 1 paket untuk 2 keluarga.",
    ], strict=True):
        assert expected in text, (expected, text)
    # Three new requests, one digest message.
    assert sum("Ada permintaan baru" in t for t in staff_texts) == 1

    submitted_id = ("Terima kasih! Permintaan Anda sudah terdaftar.\n"
                    "Nomor referensi: {ref}\nStatus: menunggu verifikasi\n\n"
                    "Kami akan mengabari Anda di sini setiap ada perkembangan. Ketik /status "
                    "kapan saja.")
    submitted_en = ("Thank you! Your request is registered.\nReference: {ref}\n"
                    "Status: waiting for verification\n\n"
                    "We will tell you here when it moves. Type /status at any time.")
    assert texts(siti)[dialogs[siti.user.id] - 1:] == [
        submitted_id.format(ref=siti_ref),
        f"Kabar baik: permintaan Anda {siti_ref} sudah diverifikasi. Kami akan mengabari Anda "
        "di sini saat bantuan dialokasikan untuk keluarga Anda.",
        f"Bantuan sudah disiapkan untuk keluarga Anda ({siti_ref}): 1 × Paket sembako. Kami "
        "akan mengabari Anda di sini saat relawan mengantarnya.",
    ]
    assert texts(daniel)[dialogs[daniel.user.id] - 1:] == [
        submitted_en.format(ref=daniel_ref),
        f"Good news: your request {daniel_ref} is verified. We will tell you here when aid is "
        "allocated to your household.",
        f"Aid has been set aside for your household ({daniel_ref}): 1 × Staple food packages. "
        "We will tell you here when a volunteer brings it.",
    ]
    assert texts(rudi)[dialogs[rudi.user.id] - 1:] == [
        submitted_en.format(ref=rudi_ref),
        f"Your request {rudi_ref} could not be accepted: the data is incomplete or wrong. If "
        "you think this is a mistake, you can make a new request from the /menu.",
    ]

    maria_texts = texts(maria)
    assert maria_texts[pledge_dialog - 1:] == [
        "Thank you! Your pledge is registered with Posko Jakarta Selatan.\n"
        f"Pledge code: {code}\n\n"
        "Please bring it to the posko: Jl. Posko 1 (open 08-16) and show the pledge code.\n\n"
        "We will tell you here when it is received and each time it reaches households.",
        f"Your pledge {code} has been received: 8 counted (pledged: 10) of Staple food "
        "packages. Thank you! We will tell you as it reaches households.",
        f"News of your pledge {code} (Staple food packages): 2 of 8 set aside for 2 "
        "households, 0 delivered so far. Kelurahan: Karet Semanggi, Pela Mampang.",
    ]
    # Donors see counts and areas, never who the households are.
    for text in maria_texts:
        for secret in ("Siti", "Aminah", "Daniel", "Hartono", "Rudi", "Salim", "812",
                       "3456", "857", "1111", "858", "3333", "Melati", "Kenari", "Anggrek",
                       siti_ref, daniel_ref, rudi_ref, "GT-"):
            assert secret not in text, (secret, text)

    # The end state in the database.
    async with services.sessions() as session:
        pledge = await session.scalar(select(Pledge))
        assert pledge is not None and pledge.code == code
        assert (pledge.status, pledge.quantity, pledge.received_quantity,
                pledge.allocated_quantity, pledge.delivered_quantity) == (
            "received", 10, 8, 2, 0)
        [aggregator] = (await session.scalars(select(Aggregator))).all()
        assert pledge.aggregator_id == aggregator.id
        stock_rows = (await session.execute(
            select(StockItem.aggregator_id, StockItem.category, StockItem.quantity))).all()
        assert [tuple(r) for r in stock_rows] == [(aggregator.id, "food_package", 6)]
        requests = {r.reference: r for r in (await session.scalars(select(HelpRequest))).all()}
        assert {ref: r.status for ref, r in requests.items()} == {
            daniel_ref: "allocated", siti_ref: "allocated", rudi_ref: "rejected"}
        deliveries = (await session.scalars(select(Delivery).order_by(Delivery.id))).all()
        assert [(d.request_id, d.status, d.category, d.quantity, d.aggregator_id,
                 d.override_reason) for d in deliveries] == [
            (requests[daniel_ref].id, "allocated", "food_package", 1, aggregator.id, None),
            (requests[siti_ref].id, "allocated", "food_package", 1, aggregator.id, None)]
        sources = (await session.execute(
            select(DeliverySource.delivery_id, DeliverySource.pledge_id,
                   DeliverySource.quantity).order_by(DeliverySource.id))).all()
        assert [tuple(s) for s in sources] == [(d.id, pledge.id, 1) for d in deliveries]
        rejected = (await session.execute(
            select(RequestEvent.status, RequestEvent.note)
            .where(RequestEvent.request_id == requests[rudi_ref].id)
            .order_by(RequestEvent.id))).all()
        assert [tuple(e) for e in rejected] == [("submitted", None), ("rejected", "incomplete")]
