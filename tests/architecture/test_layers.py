"""The layering of README's design section holds, and each of its rules fails when broken:
the import contracts are checked on the package as it is, then on copies with one
forbidden import planted each."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_package_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# (module that gets the import, the import, a contract that must break)
PLANTED = [
    ("gotong/bot/channels/console.py", "from gotong.bot.web import pages",
     "Channels and web pages meet only in the composition root"),
    ("gotong/bot/web/public.py", "from gotong.bot.channels import telegram",
     "Channels and web pages meet only in the composition root"),
    ("gotong/handlers/commands.py", "from gotong.bot.cli import main",
     "Command line, composition root"),
    ("gotong/models/help_request.py", "import aiohttp",
     "Handlers and models know no chat platform"),
    ("gotong/handlers/turn.py", "import telegram",
     "Handlers and models know no chat platform"),
    ("gotong/models/outbox.py", "from gotong.models import sending",
     "No import cycles between the modules of a package"),
]


@pytest.mark.parametrize(("module", "planted", "contract"), PLANTED,
                         ids=[p[0].removeprefix("gotong/") for p in PLANTED])
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, module: str, planted: str,
                                                 contract: str) -> None:
    shutil.copytree(ROOT / "gotong", tmp_path / "gotong",
                    ignore=shutil.ignore_patterns("__pycache__", "static", "templates"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{planted}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in " ".join(broken.split()), result.stdout
