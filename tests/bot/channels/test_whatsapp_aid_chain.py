"""The aid chain on WhatsApp: staff, a household and a donor each in their own WhatsApp
chat, through our webhook and the fake Graph API, with the dispatcher sending the news;
the same dialogs as on Telegram (tests/bot/test_aid_chain.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gotong.bot.config import Config
from gotong.bot.services import Services
from tests.bot.channels.whatsapp_harness import WaPerson, running_whatsapp
from tests.bot.dispatch_harness import wait_settled
from tests.bot.test_aid_chain import pledge_in_english, reference_in, register_in_indonesian
from tests.bot.test_queue import staff_of
from tests.fakes.whatsapp_api import FakeWhatsAppAPI

pytestmark = pytest.mark.fake_api("whatsapp_api")


def texts(person: WaPerson) -> list[str]:
    return person.texts()


async def test_the_aid_chain_on_whatsapp(config: Config, services: Services,
                                         fake: FakeWhatsAppAPI) -> None:
    quick = replace(config, notifications=replace(config.notifications, poll_seconds=0.1))
    async with running_whatsapp(quick, services, fake, dispatch=True) as bot:
        rina = bot.person("6281100000001", name="Rina")
        await staff_of(quick, rina, "Jakarta Selatan")  # type: ignore[arg-type]

        siti = bot.person("6281234567890", name="Siti")
        # The household dialog as on Telegram; the number is shared as a contact card.
        reference = await register_in_indonesian(siti)  # type: ignore[arg-type]
        siti_dialog = len(siti.messages)

        maria = bot.person("6281355557777", name="Maria")
        await maria.say("/language")
        await maria.tap("English")
        code = await pledge_in_english(maria)  # type: ignore[arg-type]
        maria_dialog = len(maria.messages)
        # Staff hear of the new request in the digest before they open the queue (news of
        # requests no longer waiting would be outdated, and not sent).
        assert bot.dispatcher is not None
        await bot.dispatcher.queue_digests()
        await wait_settled(services)

        [card] = await rina.say("/antrian")
        assert card.text.startswith(f"{reference} menunggu verifikasi")
        assert [title for _, title in card.options()][:2] == ["Verifikasi", "Tolak"]
        [verified] = await rina.tap("Verifikasi")
        assert verified.text.startswith(f"{reference} sudah diverifikasi")
        # The household hears of it before aid is allocated (after, "verified" is
        # outdated: the news of the aid says more).
        await wait_settled(services)

        [listing] = await rina.say("/donasi_masuk")
        assert f"1. {code}: 10 paket sembako, dari Maria Lestari" in listing.text
        [question] = await rina.tap(f"Terima {code}")
        assert f"Berapa paket yang tiba untuk donasi {code}?" in question.text
        [received] = await rina.say("8")
        assert received.text.startswith(f"{code} diterima: 8 paket masuk stok.")

        await rina.say("/alokasi")
        await rina.tap("Paket sembako")
        [how_many] = rina.messages[-1:]
        assert "Berapa paket per keluarga?" in how_many.text
        [proposal] = await rina.say("1")
        assert proposal.text.startswith("Usulan: 1 keluarga, masing-masing 1 paket")
        assert f"1. {reference} Siti Aminah, Karet Semanggi" in proposal.text
        [allocated] = await rina.tap("Konfirmasi")
        assert allocated.text.startswith("Dialokasikan 1 paket untuk 1 keluarga.")

        await bot.dispatcher.queue_digests()
        counts = await wait_settled(services)
        assert set(counts) == {"sent"}, counts
        assert fake.invalid_requests() == []

    assert reference_in(texts(siti)[siti_dialog - 1]) == reference
    assert texts(siti)[siti_dialog:] == [
        f"Kabar baik: permintaan Anda {reference} sudah diverifikasi. Kami akan mengabari "
        "Anda di sini saat bantuan dialokasikan untuk keluarga Anda.",
        f"Bantuan sudah disiapkan untuk keluarga Anda ({reference}): 1 × Paket sembako. Kami "
        "akan mengabari Anda di sini saat relawan mengantarnya.",
    ]
    assert texts(maria)[maria_dialog:] == [
        f"Your pledge {code} has been received: 8 counted (pledged: 10) of Staple food "
        "packages. Thank you! We will tell you as it reaches households.",
        f"News of your pledge {code} (Staple food packages): 1 of 8 set aside for 1 "
        "household, 0 delivered so far. Kelurahan: Karet Semanggi.",
    ]
    assert not any("Siti" in t or "Melati" in t for t in texts(maria))
    assert any("Ada permintaan baru" in t for t in texts(rina))
