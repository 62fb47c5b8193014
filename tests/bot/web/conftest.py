"""The signed-in dashboard's test site (tests/bot/web/test_dashboard.py), for the tests of
the dashboard's other pages."""

from tests.bot.web.test_dashboard import site

__all__ = ["site"]
