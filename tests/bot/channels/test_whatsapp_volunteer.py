"""A volunteer on WhatsApp: signs up with an invite code (the phone in one tap), takes a
delivery in their area, and proves it with a photo and their location, all with
WhatsApp's buttons and lists."""

from __future__ import annotations

import pytest

from gotong.bot.config import Config
from gotong.bot.services import Services
from tests.bot.channels.whatsapp_harness import running_whatsapp
from tests.fakes.whatsapp_api import FakeWhatsAppAPI
from tests.handlers.test_volunteers import Scene, delivery, make_invite

BUDI = "6281299990000"


pytestmark = pytest.mark.fake_api("whatsapp_api")


async def test_a_volunteer_works_on_whatsapp(config: Config, services: Services,
                                             fake: FakeWhatsAppAPI) -> None:
    scene = await Scene.make(services)
    [task] = await scene.deliveries(1)
    code = await make_invite(scene.world, scene.aggregator, pre_approved=True)
    district = services.areas.get(scene.world.district_of(scene.village))
    assert district is not None
    async with running_whatsapp(config, services, fake) as bot:
        budi = bot.person(BUDI, name="Budi")
        await budi.say(f"/relawan {code}")
        assert budi.last.text == "Siapa nama lengkap Anda?"
        [ask_phone] = await budi.say("Budi Santoso")
        assert ask_phone.options() == [("vs.phone|~own", "Pakai nomor ini")]
        [saved, ask_areas] = await budi.tap("Pakai nomor ini")
        assert saved.text == "Terima kasih, nomor telepon sudah dicatat."
        assert ask_areas.interactive_type == "list"
        # A page of kecamatan, "more", and the controls (Done among them) on every page.
        titles = [title for _, title in ask_areas.options()]
        assert len(titles) == 10 and "Lainnya…" in titles and "Selesai ✓" in titles
        await budi.tap(district.name)
        assert f"✅ {district.name}" in [t for _, t in budi.last.options()]
        await budi.tap("Selesai")
        await budi.tap("Motor")
        [summary] = await budi.say("5")
        assert "• Telepon: +6281299990000" in summary.text
        [welcome] = await budi.tap("Kirim")
        assert "Anda sekarang relawan Posko Jakarta Timur" in welcome.text

        [tasks] = await budi.say("/tugas")
        assert tasks.options() == [(f"tk|take:{task}", "Ambil 1")]
        [_, card] = await budi.tap("Ambil 1")
        # Who and where the household is shows once the aid is picked up.
        assert card.interactive_type == "list" and "Kepada: Warga" not in card.text
        assert [title for _, title in card.options()] == [
            "Sudah diambil", "Dalam perjalanan", "Sudah diantar", "Tidak bisa diantar"]
        assert (await delivery(services, task)).status == "assigned"
        [picked_up] = await budi.tap("Sudah diambil")
        assert "Kepada: Warga" in picked_up.text
        await budi.tap("Sudah diantar")
        ask_code = budi.last
        assert "kode" in ask_code.text
        [no_code] = [title for _, title in ask_code.options() if "kode" in title.lower()]
        await budi.tap(no_code)
        [ask_place] = await budi.send_photo("media-123", "sudah diterima ibu")
        # WhatsApp has no "share location" button: the question says how.
        assert "📎" in ask_place.text
        [done] = await budi.share_location(-6.225, 106.9)
        assert "petugas" in done.text
        proved = await delivery(services, task)
        assert (proved.status, proved.proof_media_id, proved.proof_latitude) == (
            "awaiting_review", "media-123", -6.225)
        assert fake.invalid_requests() == []
