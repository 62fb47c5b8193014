"""The operator's aggregator commands, invites and the audit log; and staff joining in
chat with an invite code, through the real Telegram channel and the fake Bot API."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gotong.bot.cli.admin import run_admin
from gotong.bot.cli.main import build_parser
from gotong.bot.config import Config
from gotong.bot.services import Services
from gotong.models.aggregator import Invite, StaffMember
from gotong.models.audit import AuditEntry
from gotong.models.base import utcnow
from gotong.models.contact import ContactRole
from tests.bot.channels.telegram_harness import TelegramBotUnderTest, running_telegram
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.handlers.test_proxies import accept
from tests.lookups import audit_log

CODE = re.compile(r"^([2-9A-Z]{8})$", re.MULTILINE)


async def admin(config: Config, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_admin(config, build_parser().parse_args(list(argv)), out=out)
    return code, out.getvalue()


async def add_yayasan(config: Config) -> None:
    code, out = await admin(config, "aggregator", "add", "--name", "Yayasan Peduli Tebet",
                            "--posko", "Jl. Tebet Raya 12; Senin-Sabtu 08.00-16.00",
                            "--kota", "Jakarta Selatan", "--kecamatan", "Tebet")
    assert code == 0, out


async def invite(config: Config, *options: str) -> str:
    code, out = await admin(config, "invite", "staff", "--aggregator", "1", *options)
    assert code == 0, out
    found = CODE.search(out)
    assert found is not None, out
    return found.group(1)


# --- the command line ----------------------------------------------------------------


async def test_aggregators_are_added_listed_and_edited(config: Config,
                                                       services: Services) -> None:
    await add_yayasan(config)
    code, out = await admin(config, "aggregator", "list")
    assert code == 0
    assert out == ("1: Yayasan Peduli Tebet\n   posko: Jl. Tebet Raya 12 (Senin-Sabtu "
                   "08.00-16.00)\n   covers: Tebet\n")
    code, out = await admin(config, "aggregator", "edit", "1", "--name", "Yayasan Peduli",
                            "--kota", "Jakarta Timur", "--kota", "Jakarta Selatan")
    assert code == 0
    assert "1: Yayasan Peduli\n" in out
    assert "covers: Kota Jakarta Selatan, Kota Jakarta Timur" in out
    assert "posko: Jl. Tebet Raya 12" in out


@pytest.mark.parametrize(("argv", "error"), [
    (["aggregator", "add", "--name", "X", "--posko", "Jl. A 1", "--kota", "Atlantis"],
     "no kota/kabupaten called 'Atlantis'"),
    (["aggregator", "add", "--name", "X", "--posko", "Jl. A 1"], "name the areas it covers"),
    (["aggregator", "add", "--name", "  ", "--posko", "Jl. A 1", "--kota", "Jakarta Barat"],
     "--name must not be empty"),
    (["aggregator", "add", "--name", "X", "--posko", "; 8-16", "--kota", "Jakarta Barat"],
     "--posko needs an address"),
    (["aggregator", "edit", "9"], "there is no aggregator 9"),
    (["invite", "staff", "--aggregator", "9"], "there is no aggregator 9"),
])
async def test_bad_operator_input_gets_a_clear_error(
        config: Config, services: Services, capsys: pytest.CaptureFixture[str],
        argv: list[str], error: str) -> None:
    code, _ = await admin(config, *argv)
    assert code == 2
    assert error in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["invite", "staff", "--aggregator", "1", "--expires", "soon"],
    ["invite", "staff", "--aggregator", "1", "--uses", "0"],
    ["invite", "donor", "--aggregator", "1"],
])
def test_bad_invite_options_are_refused_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


async def test_an_invite_is_printed_once_and_stored_only_as_a_hash(
        config: Config, services: Services) -> None:
    await add_yayasan(config)
    code = await invite(config, "--uses", "2", "--expires", "12h")
    async with services.sessions() as session:
        stored = (await session.scalars(select(Invite))).one()
    assert code not in stored.code_hash and len(stored.code_hash) == 64
    assert stored.uses_left == 2
    assert timedelta(hours=11) < stored.expires_at - utcnow() <= timedelta(hours=12)


async def test_a_volunteer_invite_can_need_no_approval(config: Config, services: Services
                                                       ) -> None:
    await add_yayasan(config)
    code, out = await admin(config, "invite", "volunteer", "--aggregator", "1",
                            "--pre-approved")
    assert code == 0
    assert "/volunteer " in out and "They need no approval." in out
    async with services.sessions() as session:
        stored = (await session.scalars(select(Invite))).one()
    assert (stored.role, stored.pre_approved) == ("volunteer", True)


# --- joining in chat -------------------------------------------------------------------


@pytest.fixture
async def bot(config: Config, services: Services, fake: FakeTelegramAPI
              ) -> AsyncIterator[TelegramBotUnderTest]:
    async with running_telegram(config, services, fake) as running:
        yield running.bot


async def test_staff_join_with_an_invite_code(config: Config, services: Services,
                                              bot: TelegramBotUnderTest) -> None:
    await add_yayasan(config)
    code = await invite(config)
    staff, other = bot.person(8001), bot.person(8002, language="en")
    replies = await staff.say(f"/gabung {code.lower()}")
    assert "Selamat datang! Anda sekarang petugas Yayasan Peduli Tebet." in replies[0].text
    # Used up: the next person is refused.
    replies = await other.say(f"/join {code}")
    assert "That invite code is not valid" in replies[0].text
    assert "4 tries left" in replies[0].text
    async with services.sessions() as session:
        members = (await session.scalars(select(StaffMember.contact_id))).all()
        roles = (await session.scalars(select(ContactRole.role))).all()
    assert len(members) == 1 and list(roles) == ["staff"]
    assert await audit_log(services) == [("join", "done"), ("join", "wrong code")]
    code, out = await admin(config, "audit")
    assert code == 0 and "join: done" in out and "join: wrong code" in out
    assert "/join" not in out  # what people typed is not logged


async def test_five_wrong_codes_lock_join_for_an_hour(config: Config, services: Services,
                                                      bot: TelegramBotUnderTest) -> None:
    await add_yayasan(config)
    person = bot.person(8003)
    for left in (4, 3, 2, 1):
        replies = await person.say("/gabung AAAAAAAA")
        assert f"sisa {left} kali percobaan" in replies[0].text
    replies = await person.say("/gabung BBBBBBBB")
    assert "dikunci untuk obrolan ini selama satu jam" in replies[0].text
    # Even a valid code is refused while the lock holds.
    code = await invite(config)
    replies = await person.say(f"/gabung {code}")
    assert "dikunci" in replies[0].text
    assert (await audit_log(services))[-1] == ("join", "locked")
    # An hour later the wrong codes no longer count.
    async with services.sessions() as session, session.begin():
        await session.execute(update(AuditEntry).values(at=utcnow() - timedelta(hours=1,
                                                                                 minutes=1)))
    replies = await person.say(f"/gabung {code}")
    assert "Anda sekarang petugas" in replies[0].text


async def test_an_expired_code_and_a_bare_join_are_answered(
        config: Config, services: Services, bot: TelegramBotUnderTest) -> None:
    await add_yayasan(config)
    code = await invite(config)
    async with services.sessions() as session, session.begin():
        await session.execute(update(Invite).values(expires_at=utcnow() - timedelta(minutes=1)))
    person = bot.person(8004, language="en")
    replies = await person.say(f"/join {code}")
    assert "not valid (wrong, used up or expired)" in replies[0].text
    replies = await person.say("/join")
    assert "type /join followed by the invite code" in replies[0].text


async def test_a_proxy_invite_is_accepted_in_chat(config: Config, services: Services) -> None:
    await add_yayasan(config)
    code, out = await admin(config, "invite", "proxy", "--aggregator", "1")
    assert code == 0
    assert "/proxy " in out and "/register_household" in out
    found = CODE.search(out)
    assert found is not None
    chat = await accept(services, found.group(0), "rt-01", "Budi Santoso", "+6281200000001")
    assert "You are now a proxy of Yayasan Peduli Tebet" in chat.last.text
    async with services.sessions() as session:
        stored = (await session.scalars(select(Invite))).one()
    assert (stored.role, stored.uses_left) == ("proxy", 0)
