"""The public transparency page (placeholder until it is built)."""

from __future__ import annotations

from aiohttp import web

PATH = "/public"


def add_routes(app: web.Application) -> None:
    """Register the public page's routes."""
