"""Scenario test: the whole life of aid, from a household's request to its delivery and
rating, through the real python-telegram-bot and the fake Bot API, each person in their own
chat and language (PRODUCT.md, "the life of aid" and who hears what).

A household asks in Indonesian, staff verify it, a donor pledges one package in English and
staff count it in, staff allocate it, a volunteer (in English) joins with an invite code
made by staff in chat and is approved, staff assign the delivery, the volunteer carries it
and confirms it with the household's code, the household rates the help, and the donor
hears that all of the pledge was delivered. The donor never sees who the household is; the
volunteer sees the household's details only in the task they were given."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.aggregator import Invite
from gotong.models.contact import Contact
from gotong.models.delivery import Delivery, DeliverySource
from gotong.models.help_request import HelpRequest, RequestEvent
from gotong.models.pledge import Pledge
from gotong.models.stock import StockItem
from gotong.models.volunteer import Volunteer
from tests.bot.channels.telegram_harness import Person, Running
from tests.bot.dispatch_harness import wait_settled
from tests.bot.test_aid_chain import PLEDGE_CODE, register_in_indonesian, texts
from tests.bot.test_queue import staff_of

DELIVERY_CODE = re.compile(r"Kode pengantaran Anda: (\d{6})")
INVITE = re.compile(r"/relawan ([A-Z0-9]+) ke bot ini")

# What the household told the bot: no one but staff and its own volunteer may see it.
HOUSEHOLD_SECRETS = ("Siti", "Aminah", "+6281234567890", "81234567890", "3456", "Melati",
                     "No. 5")
HOUSEHOLD_TEXTS = 15  # the dialog of register_in_indonesian, up to "registered"
DONOR_TEXTS = 11  # the pledge dialog, up to the pledge code
VOLUNTEER_PHONE = "+6281299990000"


async def settle(services: Services) -> None:
    """Wait until every notice written so far has reached its chat."""
    counts = await wait_settled(services)
    assert set(counts) <= {"sent"}, counts


def assert_in_order(person: Person, expected: list[str]) -> None:
    """Exactly one message per expected phrase, each containing it, in this order."""
    got = texts(person)
    assert len(got) == len(expected), got
    for text, phrase in zip(got, expected, strict=True):
        assert phrase in text, (phrase, text)


async def pledge_one_package(person: Person) -> str:
    """The donor dialog in English: one staple food package for Jakarta Selatan, brought to
    the posko; the pledge code."""
    [ask] = await person.say("/donate")
    assert "as a person or for an organisation?" in ask.text
    await person.tap("As a person")
    await person.say("Maria Lestari")
    await person.say("0813 5555 7777")
    await person.tap("Staple food packages")
    assert "How many packages?" in person.last.text
    await person.say("1")
    await person.tap("Jakarta Selatan")
    await person.tap("The whole kota")
    await person.tap("I bring it to the posko")
    summary = person.last.text
    assert "Please check your pledge" in summary and "• Quantity: 1 package" in summary
    [done] = await person.tap("Submit")
    found = PLEDGE_CODE.search(done.text)
    assert found is not None, done.text
    assert done.text == (
        "Thank you! Your pledge is registered with Posko Jakarta Selatan.\n"
        f"Pledge code: {found.group()}\n\n"
        "Please bring it to the posko: Jl. Posko 1 (open 08-16) and show the pledge code.\n\n"
        "We will tell you here when it is received and each time it reaches households.")
    return found.group()


async def sign_up_as_volunteer(person: Person, code: str) -> None:
    """The volunteer sign-up in English, with the code staff gave: name, phone shared with
    the button (typing it or sharing someone else's is refused), two kecamatan on two pages
    of the list, motorbike, 10 packages."""
    [welcome, ask_name] = await person.say(f"/relawan {code}")
    assert welcome.text == "Welcome! You are signing up as a volunteer of Posko Jakarta Selatan."
    assert ask_name.text == "What is your full name?"
    [ask_phone] = await person.say("Budi Santoso")
    assert ask_phone.text == ("Please share your phone number with the button below: "
                              "the aid organisation will call you on it.")
    assert [b.get("request_contact") for b in ask_phone.reply_keyboard()] == [True]
    refusal = ("Please tap the button to share your own number (typing it is not enough).\n\n"
               + ask_phone.text)
    [typed] = await person.say("0812 9999 0000")
    assert typed.text == refusal
    [someone_else] = await person.share_contact("6281299990000", own=False)
    assert someone_else.text == refusal
    [saved, ask_areas] = await person.share_contact("6281299990000")
    assert saved.text == "Thank you, the phone number is noted."
    assert ask_areas.text == ("Which areas can you cover? Choose one or more, then Done.\n"
                              "(page 1 of 2)")
    # The aggregator covers the kota: its kecamatan are offered, eight to a page. Tapping
    # an area or turning the page changes the question in place.
    assert await person.tap("Pancoran") == []
    assert await person.tap("Next") == []
    assert await person.tap("Setia Budi") == []
    assert [label for label, _ in person.last.buttons()][:2] == ["✅ 9. Setia Budi",
                                                                 "▫️ 10. Tebet"]
    [ask_travel] = await person.tap("Done")
    assert ask_travel.text == "How do you travel?"
    [ask_capacity] = await person.tap("Motorbike")
    assert ask_capacity.text == "How many packages can you carry at once? Type a number."
    [summary] = await person.say("10")
    assert summary.text == ("Please check your details:\n"
                            "• Name: Budi Santoso\n"
                            f"• Phone: {VOLUNTEER_PHONE}\n"
                            "• Areas: Pancoran, Setia Budi\n"
                            "• Travel: Motorbike\n"
                            "• Packages at once: 10\n\n"
                            "Is everything right? Submit, or choose what to change.")
    replies = await person.tap("Submit")
    assert [r.text for r in replies] == [
        "Thank you! Posko Jakarta Selatan will review your sign-up, and we will tell you here."]


async def test_the_life_of_aid_from_request_to_rated_delivery(
        config: Config, services: Services, running: Running) -> None:
    bot, dispatch = running.bot, running.dispatch

    # The aggregator's staff member joins; a household of Karet Semanggi asks for help.
    staff = bot.person(8000, first_name="Rina")
    await staff_of(config, staff, "Jakarta Selatan")
    siti = bot.person(8001, language="id", first_name="Siti")
    ref = await register_in_indonesian(siti)
    assert len(siti.messages) == HOUSEHOLD_TEXTS

    # Staff hear of it in a digest and verify it.
    assert await dispatch.dispatcher.queue_digests() == 1  # staff's queue
    await settle(services)
    [card] = await staff.say("/antrian")
    assert card.text.startswith(f"{ref} menunggu verifikasi\nKepala keluarga: Siti Aminah")
    [verified] = await staff.tap("Verifikasi")
    assert verified.text == (f"{ref} sudah diverifikasi; keluarganya sudah diberi tahu.\n\n"
                             "Tidak ada permintaan yang menunggu verifikasi di wilayah Anda.")

    # A donor pledges one package; staff count it in.
    maria = bot.person(8002, language="en", first_name="Maria")
    code = await pledge_one_package(maria)
    assert len(maria.messages) == DONOR_TEXTS
    # Staff hear of the pledge at once (notifications.staff_new_pledge = "now").
    await settle(services)
    assert staff.messages[-1].text.startswith(f"Donasi baru untuk lembaga Anda: {code}")
    [incoming] = await staff.say("/donasi_masuk")
    assert (f"1. {code}: 1 paket sembako, dari Maria Lestari (+6281355557777). "
            "Diantar ke posko.") in incoming.text
    [question] = await staff.tap(f"Terima {code}")
    assert question.text.startswith(
        f"Berapa paket yang tiba untuk donasi {code}? Dijanjikan: 1 paket sembako.")
    [received] = await staff.say("1")
    assert received.text == (f"{code} diterima: 1 paket masuk stok. Donatur sudah diberi "
                             "tahu.\n\nTidak ada donasi yang menunggu diterima.")

    # Staff allocate it to the household.
    [what] = await staff.say("/alokasi")
    assert [label for label, _ in what.buttons()] == ["1. Paket sembako (1 paket)"]
    await staff.tap("Paket sembako")
    [proposal] = await staff.tap("1")
    assert proposal.text.startswith(
        "Usulan: 1 keluarga, masing-masing 1 paket (1 paket dari stok 1 paket), prioritas "
        f"tertinggi dulu:\n1. {ref} Siti Aminah, Karet Semanggi")
    [allocated] = await staff.tap("Konfirmasi")
    assert allocated.text == ("Dialokasikan 1 paket untuk 1 keluarga. Setiap keluarga sudah "
                              "diberi tahu.\nSisa stok: 0 paket.")
    assert await dispatch.dispatcher.queue_digests() == 1  # the donor's progress
    await settle(services)

    # Staff invite a volunteer in chat, who signs up and waits for approval.
    [invite] = await staff.say("/undang_relawan")
    found = INVITE.search(invite.text)
    assert found is not None, invite.text
    invite_code = found.group(1)
    assert invite.text == (f"Kode undangan untuk satu relawan (berlaku 7 hari): {invite_code}\n"
                           f"Relawan mengirim /relawan {invite_code} ke bot ini.")
    budi = bot.person(8003, language="en", first_name="Budi")
    await sign_up_as_volunteer(budi, invite_code)
    [still_pending] = await budi.say("/tasks")
    assert still_pending.text == ("Your sign-up is waiting for the aid organisation's approval. "
                                  "We will tell you here.")

    # Staff hear of the volunteer in a digest and approve them.
    assert await dispatch.dispatcher.queue_digests() == 1  # staff's volunteers waiting
    await settle(services)
    [volunteer_card] = await staff.say("/relawan_baru")
    assert volunteer_card.text == ("Relawan menunggu persetujuan:\n"
                                   "Nama: Budi Santoso\n"
                                   f"Telepon: {VOLUNTEER_PHONE}\n"
                                   "Wilayah: Pancoran, Setia Budi\n"
                                   "Kendaraan: Motor, membawa 10 paket")
    [approved] = await staff.tap("Setujui")
    assert approved.text == ("Budi Santoso disetujui.\n\n"
                             "Tidak ada relawan yang menunggu persetujuan.")
    await settle(services)

    # Staff assign the delivery to the volunteer.
    [waiting] = await staff.say("/tugaskan")
    assert waiting.text == ("Pengantaran yang menunggu relawan (terlama dulu):\n"
                            f"1. {ref}: 1 paket sembako, Karet Semanggi RW 005 "
                            "(menunggu relawan)")
    [choose] = await staff.tap("Tugaskan 1")
    assert choose.text == (f"{ref}: 1 paket sembako, Karet Semanggi RW 005 "
                           "(menunggu relawan)\n"
                           "Relawan yang menjangkau wilayah ini, yang paling longgar dulu:\n"
                           "1. Budi Santoso (Motor), 0 tugas berjalan")
    [assigned] = await staff.tap("Budi Santoso")
    assert assigned.text == (f"{ref} ditugaskan kepada Budi Santoso. Keluarga dan relawan "
                             "sudah diberi tahu.\n\n"
                             "Tidak ada pengantaran yang menunggu relawan.")
    await settle(services)

    # The household has the volunteer's first name and its delivery code.
    news = siti.last
    found = DELIVERY_CODE.search(news.text)
    assert found is not None, news.text
    delivery_code = found.group(1)

    # The volunteer carries the task through.
    task_notice = budi.last
    assert [label for label, _ in task_notice.buttons()] == ["Open the task"]
    [task_list] = await budi.say("/tasks")
    assert task_list.text == (f"Your tasks:\n1. {ref}: 1 staple food package, "
                              "Karet Semanggi RW 005 (assigned)")
    details = ("Deliver: 1 staple food package\n"
               "To: Siti Aminah, +6281234567890\n"
               "Address: Jl. Melati No. 5, RT 003/RW 005, Karet Semanggi, Setia Budi, "
               "Kota Jakarta Selatan 12930\n"
               "Needs: Staple food package, Medicine and health")
    [opened] = await budi.tap("Open 1")
    # Taken, not yet picked up: the area only, not who or where the household is.
    assert opened.text == (f"{ref}: 1 staple food package, Karet Semanggi RW 005 "
                           "(assigned)\nThe household's name, phone and address show once "
                           "you mark the aid picked up.")
    assert [label for label, _ in opened.buttons()] == [
        "1. Picked up", "2. On the way", "3. Delivered", "4. Could not deliver"]
    [picked_up] = await budi.tap("Picked up")
    assert picked_up.text == f"Task {ref} (picked up)\n{details}"
    [on_the_way] = await budi.tap("On the way")
    assert on_the_way.text == f"Task {ref} (on the way)\n{details}"
    assert [label for label, _ in on_the_way.buttons()] == [
        "1. Delivered", "2. Could not deliver"]
    [ask_code] = await budi.tap("Delivered")
    assert ask_code.text == ("Please type the household's 6-digit delivery code. If they "
                             "have no phone at hand, tap \"No code\".")
    await settle(services)  # the household hears the volunteer is on the way
    [thanks] = await budi.say(delivery_code)
    assert thanks.text == f"Delivered. Thank you!\n\nTask {ref} (delivered)\n{details}"
    assert thanks.buttons() == []
    await settle(services)

    # The household rates the help and adds a comment.
    assert siti.last.text.startswith(f"Bantuan Anda ({ref}) sudah diantar.")
    [rating_thanks] = await siti.tap("5")
    assert rating_thanks.text == ("Terima kasih atas penilaiannya! Ingin menambah komentar? "
                                  "Ketik, atau ketuk di bawah.")
    [done] = await siti.say("Relawannya ramah sekali")
    assert done.text == "Terima kasih!"
    await settle(services)

    # Who heard what, in their own chat and language.
    assert_in_order(staff, [
        "Selamat datang! Anda sekarang petugas Posko Jakarta Selatan.",
        "Apa yang ingin Anda lakukan?",  # the menu after joining
        "Ada permintaan baru yang menunggu verifikasi di wilayah Anda. Kirim /antrian",
        f"{ref} menunggu verifikasi",
        f"{ref} sudah diverifikasi",
        f"Donasi baru untuk lembaga Anda: {code}",
        "Donasi yang menunggu diterima",
        f"Berapa paket yang tiba untuk donasi {code}?",
        f"{code} diterima: 1 paket masuk stok.",
        "Apa yang ingin Anda alokasikan?",
        "Berapa paket per keluarga?",
        "Usulan: 1 keluarga",
        "Dialokasikan 1 paket untuk 1 keluarga.",
        "Kode undangan untuk satu relawan",
        "Ada relawan baru yang menunggu persetujuan Anda. Kirim /relawan_baru",
        "Relawan menunggu persetujuan:",
        "Budi Santoso disetujui.",
        "Pengantaran yang menunggu relawan",
        "Relawan yang menjangkau wilayah ini",
        f"{ref} ditugaskan kepada Budi Santoso.",
    ])

    household_news = texts(siti)[HOUSEHOLD_TEXTS - 1:]
    assert household_news == [
        "Terima kasih! Permintaan Anda sudah terdaftar.\n"
        f"Nomor referensi: {ref}\nStatus: menunggu verifikasi\n\n"
        "Kami akan mengabari Anda di sini setiap ada perkembangan. Ketik /status kapan saja.",
        f"Kabar baik: permintaan Anda {ref} sudah diverifikasi. Kami akan mengabari Anda di "
        "sini saat bantuan dialokasikan untuk keluarga Anda.",
        f"Bantuan sudah disiapkan untuk keluarga Anda ({ref}): 1 × Paket sembako. Kami akan "
        "mengabari Anda di sini saat relawan mengantarnya.",
        f"Bantuan Anda ({ref}) segera diantar: Budi, relawan, akan membawa 1 × Paket "
        f"sembako.\nKode pengantaran Anda: {delivery_code}\n"
        "Berikan kode ini kepada relawan hanya saat bantuan sudah di tangan Anda. Ketuk "
        "\"Sudah saya terima\" setelah menerimanya.",
        f"Budi sedang dalam perjalanan membawa bantuan Anda ({ref}). Siapkan kode pengantaran "
        f"{delivery_code}.",
        f"Bantuan Anda ({ref}) sudah diantar. Semoga bermanfaat bagi keluarga Anda. Bagaimana "
        "bantuan ini? Ketuk 1 (buruk) sampai 5 (sangat baik).",
        "Terima kasih atas penilaiannya! Ingin menambah komentar? Ketik, atau ketuk di bawah.",
        "Terima kasih!",
    ]
    news_messages = siti.messages[HOUSEHOLD_TEXTS - 1:]
    for message in news_messages[3:5]:  # assigned, on the way: "I received it" or not
        assert [label for label, _ in message.buttons()] == ["Sudah saya terima",
                                                             "Belum diterima"]
    assert [label for label, _ in news_messages[5].buttons()] == ["1", "2", "3", "4", "5"]
    # The household learns the volunteer's first name, not their full name or number.
    for text in household_news:
        for secret in ("Santoso", "9999", VOLUNTEER_PHONE):
            assert secret not in text, (secret, text)

    assert texts(maria)[DONOR_TEXTS - 1:] == [
        "Thank you! Your pledge is registered with Posko Jakarta Selatan.\n"
        f"Pledge code: {code}\n\n"
        "Please bring it to the posko: Jl. Posko 1 (open 08-16) and show the pledge code.\n\n"
        "We will tell you here when it is received and each time it reaches households.",
        f"Your pledge {code} has been received: 1 counted (pledged: 1) of Staple food "
        "packages. Thank you! We will tell you as it reaches households.",
        f"News of your pledge {code} (Staple food packages): 1 of 1 set aside for 1 "
        "household, 0 delivered so far. Kelurahan: Karet Semanggi.",
        f"All of your pledge {code} (Staple food packages) has been delivered: 1 to 1 "
        "household in Karet Semanggi. Thank you for giving!",
    ]
    # Donors see counts and areas, never who the households are.
    for text in texts(maria):
        for secret in (*HOUSEHOLD_SECRETS, ref, "GT-", delivery_code):
            assert secret not in text, (secret, text)

    volunteer_texts = texts(budi)
    assert len(volunteer_texts) == 20, volunteer_texts
    assert volunteer_texts[10:14] == [
        "Thank you! Posko Jakarta Selatan will review your sign-up, and we will tell you here.",
        "Your sign-up is waiting for the aid organisation's approval. We will tell you here.",
        "You are approved as a volunteer. Send /tasks to see deliveries in your area.",
        f"New delivery task {ref}: 1 × Staple food packages for a household in Karet "
        "Semanggi, RW 005. Pick it up at the posko, then open the task for the address.",
    ]
    assert volunteer_texts[14:] == [m.text for m in (
        task_list, opened, picked_up, on_the_way, ask_code, thanks)]
    # Before opening their own task, the volunteer sees the kelurahan and RW only; and
    # never the household's delivery code.
    for text in volunteer_texts[:15]:
        for secret in HOUSEHOLD_SECRETS:
            assert secret not in text, (secret, text)
    for text in volunteer_texts:
        assert delivery_code not in text, text

    # The end state in the database.
    async with services.sessions() as session:
        request = await session.scalar(select(HelpRequest))
        assert request is not None and request.reference == ref
        assert request.status == "delivered"
        events = (await session.execute(
            select(RequestEvent.status).where(RequestEvent.request_id == request.id)
            .order_by(RequestEvent.id))).scalars().all()
        assert list(events) == ["submitted", "verified", "allocated", "out_for_delivery",
                                "delivered"]
        volunteer = await session.scalar(
            select(Volunteer).options(selectinload(Volunteer.areas)))
        assert volunteer is not None
        volunteer_contact = await session.get(Contact, volunteer.contact_id)
        staff_contact = await session.scalar(
            select(Contact).where(Contact.chat_id == str(staff.user.id)))
        assert volunteer_contact is not None and staff_contact is not None
        assert volunteer_contact.chat_id == str(budi.user.id)
        assert volunteer_contact.verified_phone == VOLUNTEER_PHONE
        assert (volunteer.status, volunteer.name, volunteer.phone, volunteer.travel,
                volunteer.capacity, volunteer.decided_by) == (
            "approved", "Budi Santoso", VOLUNTEER_PHONE, "motorbike", 10, staff_contact.id)
        assert [services.areas.get(a.area_id).name  # type: ignore[union-attr]
                for a in volunteer.areas] == ["Pancoran", "Setia Budi"]
        [invite_row] = (await session.scalars(select(Invite).where(
            Invite.role == "volunteer"))).all()
        assert invite_row.uses_left == 0
        [delivery] = (await session.scalars(select(Delivery))).all()
        assert (delivery.request_id, delivery.status, delivery.volunteer_id, delivery.code,
                delivery.wrong_codes, delivery.rating, delivery.rating_comment) == (
            request.id, "delivered", volunteer.id, delivery_code, 0, 5,
            "Relawannya ramah sekali")
        assert delivery.delivered_at is not None
        pledge = await session.scalar(select(Pledge))
        assert pledge is not None and pledge.code == code
        assert (pledge.status, pledge.quantity, pledge.received_quantity,
                pledge.allocated_quantity, pledge.delivered_quantity) == (
            "received", 1, 1, 1, 1)
        assert pledge.delivered_quantity == pledge.received_quantity
        sources = (await session.execute(
            select(DeliverySource.delivery_id, DeliverySource.pledge_id,
                   DeliverySource.quantity))).all()
        assert [tuple(s) for s in sources] == [(delivery.id, pledge.id, 1)]
        stock = (await session.execute(select(StockItem.category, StockItem.quantity))).all()
        assert [tuple(s) for s in stock] == [("food_package", 0)]
