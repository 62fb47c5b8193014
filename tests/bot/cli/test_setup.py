"""`gotong webhook set|info|delete` and `gotong check` against the fake Bot API, with a
real database: what they print, and what the API was told."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest

from gotong.bot.cli.main import build_parser
from gotong.bot.cli.setup import run_check, run_webhook, run_whatsapp
from gotong.bot.config import Config, DatabaseConfig
from gotong.bot.services import Services
from tests.bot.channels.whatsapp_harness import whatsapp_config
from tests.conftest import with_telegram
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.whatsapp_api import FakeWhatsAppAPI

URL = "https://aid.example.org/telegram/webhook"
SECRET = "setup-test-secret_123"


def telegram(config: Config, fake: FakeTelegramAPI, **changes: object) -> Config:
    settings: dict[str, object] = {"token": fake.token, "api_base_url": fake.base_url,
                                   "api_file_url": fake.base_file_url, **changes}
    return with_telegram(config, **settings)


def webhook(action: str, drop: bool = False) -> argparse.Namespace:
    return argparse.Namespace(action=action, drop_pending=drop)


async def test_the_webhook_is_set_shown_and_deleted(
        config: Config, fake: FakeTelegramAPI, capsys: pytest.CaptureFixture[str]) -> None:
    configured = telegram(config, fake, mode="webhook", webhook_url=URL, webhook_secret=SECRET)
    fake.push_update({"message": {"message_id": 1, "date": 0, "text": "hi",
                                  "chat": {"id": 5, "type": "private"}}})
    assert await run_webhook(configured, webhook("set")) == 0
    [call] = fake.calls_to("setWebhook")
    assert call["url"] == URL and call["secret_token"] == SECRET
    assert "callback_query" in str(call["allowed_updates"])
    printed = capsys.readouterr().out
    assert f"webhook set to {URL}" in printed and "pending updates: 1" in printed
    assert SECRET not in printed

    assert await run_webhook(configured, webhook("info")) == 0
    printed = capsys.readouterr().out
    assert f"url: {URL}" in printed and SECRET not in printed

    assert await run_webhook(configured, webhook("delete", drop=True)) == 0
    assert "url: (none: polling)" in capsys.readouterr().out
    assert fake.pending_updates() == []


async def test_the_webhook_needs_its_address_and_secret(
        config: Config, fake: FakeTelegramAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_webhook(telegram(config, fake), webhook("set")) == 2
    err = capsys.readouterr().err
    assert "telegram.webhook_url" in err and "telegram.webhook_secret" in err
    assert await run_webhook(config.__class__(), webhook("info")) == 2
    assert "telegram.token" in capsys.readouterr().err
    assert fake.calls_to("setWebhook") == []


async def test_check_reports_each_part(
        config: Config, services: Services, fake: FakeTelegramAPI,
        capsys: pytest.CaptureFixture[str]) -> None:
    configured = telegram(config, fake, mode="webhook", webhook_url=URL, webhook_secret=SECRET)
    # The webhook not set yet: the one failing part, named with what to do.
    assert await run_check(configured) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("config: ok:")
    assert lines[1].startswith("database: ok: schema at")
    assert lines[2].startswith("telegram: FAILED:") and "gotong webhook set" in lines[2]
    await run_webhook(configured, webhook("set"))
    capsys.readouterr()
    assert await run_check(configured) == 0
    assert f"webhook {URL}" in capsys.readouterr().out


async def test_check_fails_on_a_refused_token_and_an_empty_database(
        config: Config, fake: FakeTelegramAPI, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    wrong = telegram(config, fake, token="999:WRONG")
    empty = replace(wrong, database=DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    assert await run_check(empty) == 1
    out = capsys.readouterr().out
    assert "database: FAILED: empty: run `gotong db upgrade`" in out
    assert "telegram: FAILED:" in out and "999:WRONG" not in out


@pytest.mark.fake_api("whatsapp_api")
async def test_check_reaches_the_whatsapp_number(
        config: Config, services: Services, fake: FakeWhatsAppAPI,
        capsys: pytest.CaptureFixture[str]) -> None:
    configured = whatsapp_config(with_telegram(config, token=""), fake)
    assert await run_check(configured) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line == "whatsapp: ok: Gotong Test (+62 21 5555 0100), quality GREEN"
    refused = replace(configured,
                      whatsapp=replace(configured.whatsapp, access_token="not-the-token"))
    assert await run_check(refused) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("whatsapp: FAILED: the Graph API refused the access token (401")
    assert "whatsapp.access_token" in line and "not-the-token" not in line


# --- gotong whatsapp check --------------------------------------------------------------

OWN = "gotong_request_verified"


def with_account(config: Config, fake: FakeWhatsAppAPI, **changes: object) -> Config:
    configured = whatsapp_config(with_telegram(config, token=""), fake,
                                 business_account_id=fake.business_account_id,
                                 templates=(f"notice.request_verified={OWN}",))
    return replace(configured, whatsapp=replace(configured.whatsapp, **changes))


def approve_all(fake: FakeWhatsAppAPI) -> None:
    for name in ("gotong_update", OWN):
        for language in ("id", "en"):
            fake.add_template(name, language)


def whatsapp_check() -> argparse.Namespace:
    return argparse.Namespace(action="check")


@pytest.mark.fake_api("whatsapp_api")
async def test_whatsapp_check_passes_when_every_template_is_approved_in_both_languages(
        config: Config, fake: FakeWhatsAppAPI, capsys: pytest.CaptureFixture[str]) -> None:
    approve_all(fake)
    # Someone else's templates, on more than one page of the Graph API's answer.
    for n in range(60):
        fake.add_template(f"other_{n}", "en_US", "REJECTED")
    configured = with_account(config, fake)
    assert await run_whatsapp(configured, whatsapp_check()) == 0
    assert capsys.readouterr().out.splitlines() == [
        "whatsapp: ok: Gotong Test (+62 21 5555 0100), quality GREEN",
        "template gotong_update (id): ok: approved",
        "template gotong_update (en): ok: approved",
        f"template {OWN} (id): ok: approved",
        f"template {OWN} (en): ok: approved"]
    pages = [path for path, _ in fake.requests if path.endswith("/message_templates")]
    assert len(pages) == 1  # 100 a page
    # `gotong check` checks them too, once the account is configured.
    assert await run_check(configured) == 0
    assert "template gotong_update (en): ok: approved" in capsys.readouterr().out


@pytest.mark.fake_api("whatsapp_api")
async def test_whatsapp_check_names_a_missing_or_unapproved_template(
        config: Config, fake: FakeWhatsAppAPI, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add_template("gotong_update", "id")
    fake.add_template("gotong_update", "en_US")  # not the "en" Gotong sends
    fake.add_template(OWN, "id", "REJECTED")
    fake.add_template(OWN, "en", "PENDING")
    assert await run_whatsapp(with_account(config, fake), whatsapp_check()) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "template gotong_update (id): ok: approved"
    assert lines[2].startswith("template gotong_update (en): FAILED: missing")
    assert lines[3].startswith(f"template {OWN} (id): FAILED: REJECTED, not approved")
    assert lines[4].startswith(f"template {OWN} (en): FAILED: PENDING, not approved")


@pytest.mark.fake_api("whatsapp_api")
async def test_whatsapp_check_says_plainly_what_to_fix(
        config: Config, fake: FakeWhatsAppAPI, capsys: pytest.CaptureFixture[str]) -> None:
    approve_all(fake)
    wrong_token = with_account(config, fake, access_token="not-the-token")
    assert await run_whatsapp(wrong_token, whatsapp_check()) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "whatsapp: FAILED: the Graph API refused the access token (401: Invalid OAuth "
        "access token.); check whatsapp.access_token",
        "whatsapp templates: FAILED: the Graph API refused the access token (401: Invalid "
        "OAuth access token.); check whatsapp.access_token"]
    assert "not-the-token" not in out
    wrong_account = with_account(config, fake, business_account_id="111")
    assert await run_whatsapp(wrong_account, whatsapp_check()) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("whatsapp templates: FAILED: the Graph API refused (400")
    assert "whatsapp.business_account_id" in line
    no_account = with_account(config, fake, business_account_id="")
    assert await run_whatsapp(no_account, whatsapp_check()) == 1
    assert "set whatsapp.business_account_id" in capsys.readouterr().out
    assert await run_whatsapp(Config(), whatsapp_check()) == 2
    assert "whatsapp.phone_number_id" in capsys.readouterr().err


def test_whatsapp_check_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["whatsapp", "--help"])
    assert exit_.value.code == 0
    assert "check" in capsys.readouterr().out
