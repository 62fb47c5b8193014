"""The staff dashboard (placeholder until it is built)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    """Register the dashboard's routes."""
