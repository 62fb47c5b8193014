"""The playground's page: four phone screens side by side, each a chat of the web chat
channel (its sockets are the channel's, added by the composition root)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from aiohttp import web

from gotong.bot.web.pages import render

PATH = "/playground"
TEMPLATE = "playground.html"


@dataclass(frozen=True)
class Screen:
    """What the page shows of a screen."""

    name: str
    title: str  # catalog key of the heading
    tip: str  # catalog key of the one-line hint under it
    photo: bool  # whether the screen can send a photo


SCREENS: web.AppKey[tuple[Screen, ...]] = web.AppKey("playground_screens")


async def playground_page(request: web.Request) -> web.Response:
    return render(request, TEMPLATE, {"screens": [asdict(s) for s in request.app[SCREENS]]})


def add_routes(app: web.Application, screens: Sequence[Screen]) -> None:
    app[SCREENS] = tuple(screens)
    app.router.add_get(PATH, playground_page)
