"""The playground (placeholder until it is built)."""

from __future__ import annotations

from aiohttp import web


class WebChat:
    """The web chat channel of the playground."""


def add_routes(app: web.Application, webchat: WebChat) -> None:
    """Register the playground's routes."""
