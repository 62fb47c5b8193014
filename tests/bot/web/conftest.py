"""The dashboard's web server, for every test of the web pages."""

from tests.bot.web.test_dashboard import site

__all__ = ["site"]
