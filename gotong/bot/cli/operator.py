"""What the operator's commands share: their errors, and areas named by kota, kecamatan
and kelurahan."""

from __future__ import annotations

import argparse

from gotong.models.area import AreaDirectory, AreaLevel


class OperatorError(ValueError):
    """An operator's command cannot be carried out as given; the message says why."""


_LEVEL_NAMES = {AreaLevel.REGENCY: "kota/kabupaten", AreaLevel.DISTRICT: "kecamatan",
                AreaLevel.VILLAGE: "kelurahan"}


def add_area_options(parser: argparse.ArgumentParser, meaning: str) -> None:
    for level in ("kota", "kecamatan", "kelurahan"):
        parser.add_argument(f"--{level}", action="append", default=[], metavar="NAME",
                            help=f"{meaning} this {level} (repeatable)")


def resolve_areas(areas: AreaDirectory, kota: list[str], kecamatan: list[str],
                  kelurahan: list[str]) -> list[int]:
    """The areas the options name, at the most specific level given.

    The levels above it only say where to look its names up (two kecamatan can share a
    name); with no option given, the list is empty.
    """
    within: list[int] = []
    chosen: list[int] = []
    for level, names in ((AreaLevel.REGENCY, kota), (AreaLevel.DISTRICT, kecamatan),
                         (AreaLevel.VILLAGE, kelurahan)):
        if not names:
            continue
        found: list[int] = []
        for name in names:
            matches = areas.named(level, name, within)
            if not matches:
                raise OperatorError(f"no {_LEVEL_NAMES[level]} called {name!r} in scope")
            if len(matches) > 1:
                raise OperatorError(
                    f"{len(matches)} areas are called {name!r}: name the "
                    f"{'kota' if level == AreaLevel.DISTRICT else 'kecamatan'} too")
            found.append(matches[0].id)
        within = chosen = found
    return chosen
