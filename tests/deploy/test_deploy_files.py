"""The deployment files (Dockerfile, compose.yaml, the systemd units, the Caddyfile, the
env file's example) checked as far as this machine can without a container engine: they
parse, say what README says they do, name only real config keys, and the image's entry
point migrates and then starts Gotong when run directly."""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from gotong.bot.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = ("gotong.service", "gotong-dispatch.service")
VARIABLE = re.compile(r"\bGOTONG_[A-Z0-9_]+?__[A-Z0-9_]+\b")
NIK_KEY = "deploy-test-nik-hash-key-" + "k" * 32


def config_keys() -> set[str]:
    """Every GOTONG_<SECTION>__<KEY> the configuration knows."""
    keys = set()
    for section, kind in get_type_hints(Config).items():
        if dataclasses.is_dataclass(kind):
            keys |= {f"GOTONG_{section}__{field.name}".upper()
                     for field in dataclasses.fields(kind)}
    return keys


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def unit(name: str) -> configparser.ConfigParser:
    # systemd repeats keys (Environment=); the last one read is enough to check here.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / "gotong.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_every_variable_the_files_set_is_a_config_key() -> None:
    known = config_keys()
    files = [ROOT / "Dockerfile", ROOT / "compose.yaml", DEPLOY / "gotong.env.example",
             *(DEPLOY / "systemd" / name for name in UNITS)]
    named = {(path.name, name) for path in files for name in VARIABLE.findall(path.read_text())}
    assert {name for _, name in named} >= {"GOTONG_DATABASE__URL", "GOTONG_WEB__HOST"}
    unknown = sorted((path, name) for path, name in named if name not in known)
    assert not unknown, unknown
    # The example, filled in, is a configuration Gotong accepts.
    filled = {name: value or "x" for name, value in env_example().items()
              if name.startswith("GOTONG_")}
    filled.update(GOTONG_DATABASE__URL="postgresql+asyncpg://gotong:pw@db:5432/gotong",
                  GOTONG_TELEGRAM__TOKEN="123456:ABC", GOTONG_WHATSAPP__PHONE_NUMBER_ID="1",
                  GOTONG_WHATSAPP__BUSINESS_ACCOUNT_ID="2")
    config = load_config(environ=filled)
    assert config.telegram.mode == "webhook" and not config.playground_on


def test_compose_runs_gotong_and_a_dispatcher_on_postgresql() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "gotong", "dispatch"}
    db = services["db"]
    assert db["image"].startswith("postgres:")
    assert "db-data:/var/lib/postgresql/data" in db["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "db-data" in compose()["volumes"]
    for name, command in (("gotong", ["run"]), ("dispatch", ["dispatch"])):
        service = services[name]
        assert service["command"] == command
        assert service["env_file"] == ".env"  # secrets stay out of the file
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        url = service["environment"]["GOTONG_DATABASE__URL"]
        assert url.startswith("postgresql+asyncpg://") and "@db:5432/" in url
    assert services["gotong"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "/healthz" in " ".join(services["gotong"]["healthcheck"]["test"])


def test_the_image_runs_as_its_own_user_through_the_entry_point() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    first = next(line for line in lines if line and not line.startswith("#"))
    assert first.startswith("FROM python:3.11-slim")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["gotong"]
    assert 'ENTRYPOINT ["gotong-entrypoint"]' in lines and 'CMD ["run"]' in lines
    copied = [line.split()[1] for line in lines if line.startswith("COPY ")]
    for source in copied:
        assert (ROOT / source).exists(), source


def test_the_units_run_gotong_and_a_dispatcher() -> None:
    for name, command in zip(UNITS, ("run", "dispatch"), strict=True):
        parsed = unit(name)
        assert set(parsed.sections()) == {"Unit", "Service", "Install"}
        service = parsed["Service"]
        assert shlex.split(service["ExecStart"])[1:] == [command]
        assert service["User"] == "gotong"
        assert service["EnvironmentFile"] == "/etc/gotong/gotong.env"
        assert service["Restart"] == "on-failure"
        assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert "db upgrade" in unit("gotong.service")["Service"]["ExecStartPre"]


def test_the_proxy_forwards_to_where_gotong_listens() -> None:
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert "reverse_proxy 127.0.0.1:8080" in caddy
    assert "Environment=GOTONG_WEB__PORT=8080" in (DEPLOY / "systemd" / UNITS[0]).read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_entry_point_migrates_then_starts(tmp_path: Path) -> None:
    database = tmp_path / "gotong.sqlite3"
    port = _free_port()
    environ = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GOTONG_DATABASE__URL": f"sqlite+aiosqlite:///{database}",
        "GOTONG_PRIVACY__NIK_HASH_KEY": NIK_KEY,
        "GOTONG_WEB__PORT": str(port),
        "GOTONG_METRICS__PORT": "0",
        "GOTONG_WEB__PLAYGROUND": "on",
    }
    log = tmp_path / "gotong.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(DEPLOY / "entrypoint.sh")], cwd=tmp_path,
                                   env=environ, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "gotong did not start"
                time.sleep(0.2)
        with sqlite3.connect(database) as connection:
            [(version,)] = connection.execute("SELECT version_num FROM alembic_version")
        assert version
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
