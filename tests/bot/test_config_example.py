"""config.example.toml documents every key, with the defaults the code has."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, fields
from pathlib import Path

from gotong.bot.config import Config, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
README = EXAMPLE.parent / "README.md"


def test_example_lists_every_key_with_its_default() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    defaults = asdict(Config())
    assert set(example) == set(defaults)
    for section, values in defaults.items():
        assert set(example[section]) == set(values), section
        for key, default in values.items():
            expected = list(default) if isinstance(default, tuple) else default
            assert example[section][key] == expected, f"{section}.{key}"


def test_example_loads_once_the_secret_is_set() -> None:
    config = load_config(EXAMPLE, {"GOTONG_PRIVACY__NIK_HASH_KEY": "k" * 40})
    assert config.privacy.nik_hash_key == "k" * 40


def test_readme_names_every_key() -> None:
    readme = README.read_text()
    for section in fields(Config):
        for key in fields(getattr(Config(), section.name)):
            name = f"{section.name}.{key.name}"
            assert f"`{name}`" in readme, name
