"""What every signed-in dashboard page shares: the nav, the form token, the message
after an action (redirect-after-POST with the message's code in the URL, sealed), display helpers,
and the 404 of another aggregator's things."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gotong.bot.web.pages import SERVICES, render, translator
from gotong.bot.web.signin import PageError, Work, see_other
from gotong.handlers.stock import pledge_state_key

# Rows a list shows at once.
PAGE_ROWS = 50
# The messages pages show after an action: code in the URL -> (catalog key, refusal?).
# The dashboard module names them (where the catalog's checks look for keys).
FLASH_MESSAGES = web.AppKey("dashboard_flashes", dict[str, tuple[str, bool]])
# References and codes echoed in a flash: nothing else from the URL reaches the page.
_CODE = re.compile(r"^G[TP]-[A-Z0-9]{1,9}$")


def _seal(work: Work, query: Mapping[str, str]) -> str:
    """A flash is the server's word: sealed with the session's form token, so a link
    made elsewhere cannot show a staff member "GT-XXXXX verified"."""
    text = "&".join(f"{key}={query[key]}" for key in sorted(query))
    return hmac.new(work.csrf.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


def redirect(work: Work, path: str, flash: str, reference: str = "",
             count: int | None = None) -> web.Response:
    query = {"flash": flash, **({"ref": reference} if reference else {}),
             **({"n": str(count)} if count is not None else {})}
    return see_other(f"{path}?{urlencode({**query, 'seal': _seal(work, query)})}")


def flash(request: web.Request, work: Work) -> dict[str, Any] | None:
    code = request.query.get("flash", "")
    messages = request.app[FLASH_MESSAGES]
    query = {key: request.query[key] for key in ("flash", "ref", "n") if key in request.query}
    if code not in messages or not hmac.compare_digest(
            request.query.get("seal", ""), _seal(work, query)):
        return None
    key, error = messages[code]
    reference = request.query.get("ref", "")
    count = request.query.get("n", "")
    t = translator(request)
    text = t(key, reference=reference if _CODE.match(reference) else "",
             code=reference if _CODE.match(reference) else "",
             count=int(count) if count.isdigit() and len(count) < 7 else 0)
    return {"text": text, "error": error}


def page(request: web.Request, work: Work, template: str, nav: str,
         context: Mapping[str, Any]) -> web.Response:
    """A signed-in page: the nav with the current page marked, the form token, the
    message of the last action."""
    return render(request, f"dashboard_{template}.html", {
        **context, "nav": nav, "csrf": work.csrf, "flash": flash(request, work),
        "names": names(request)})


def names(request: web.Request) -> Any:
    """Display helpers for templates: kelurahan names, quantities with their unit."""
    t = translator(request)
    areas = request.app[SERVICES].areas

    class Names:
        @staticmethod
        def village(village_id: int) -> str:
            entry = areas.get(village_id)
            return entry.name if entry else ""

        @staticmethod
        def place(village_id: int) -> str:
            place = areas.place(village_id)
            return place.display() if place else ""

        @staticmethod
        def quantity(category: str, quantity: int) -> str:
            amount = f"{quantity:,}".replace(",", ".")
            unit = t(f"unit_one.{category}") if quantity == 1 else t(f"unit.{category}")
            return t("stock.quantity", quantity=amount, unit=unit)

        @staticmethod
        def pledge_state(status: str, handover: str) -> str:
            return t(pledge_state_key(status, handover))

    return Names


def not_found(work: Work, action: str) -> PageError:
    """Another aggregator's thing, or none: audited, and a 404 that tells nothing."""
    work.actor.refuse(action, "not their aggregator")
    return PageError(404, "not_found")


