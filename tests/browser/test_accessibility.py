"""Every page, checked in Chromium as a person with a screen reader, a keyboard or a
cheap phone meets it: a language, labelled controls, named buttons and links, text with
enough contrast (WCAG AA), and nothing wider than a 360-pixel screen."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from gotong.models.area import AreaLevel
from gotong.models.base import utcnow
from tests.browser.dialogs import ask_for_help, pledge
from tests.browser.screens import WAIT_MS, Screen
from tests.browser.site import Site, demo_staff_link

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# What a page does wrong, found by reading the rendered page as the browser has it.
PROBLEMS = """() => {
  const problems = [];
  const visible = (el) => el.getClientRects().length > 0
      && getComputedStyle(el).visibility !== "hidden";
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (document.querySelectorAll("h1").length !== 1) problems.push("not one h1");
  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (twice.length) problems.push(`ids used twice: ${[...new Set(twice)].join(", ")}`);
  for (const el of document.querySelectorAll(
      "input:not([type=hidden]), select, textarea")) {
    if (!el.labels.length && !el.getAttribute("aria-label")
        && !el.getAttribute("aria-labelledby")) {
      problems.push(`unlabelled ${el.outerHTML.slice(0, 80)}`);
    }
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (visible(el) && !(el.textContent.trim() || el.getAttribute("aria-label"))) {
      problems.push(`nameless ${el.outerHTML.slice(0, 80)}`);
    }
  }
  for (const el of document.querySelectorAll("[role=img]")) {
    if (!el.querySelector("title") && !el.getAttribute("aria-label")) {
      problems.push("image without a name");
    }
  }
  const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map((c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const color = rgba(getComputedStyle(node).backgroundColor);
      if (color.length === 3 || (color.length === 4 && color[3] > 0)) return color;
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll("body *")) {
    const ownText = [...el.childNodes].some(
        (n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!ownText || !visible(el) || el.closest("svg, .skip")) continue;
    const style = getComputedStyle(el);
    const [l1, l2] = [luminance(rgba(style.color)), luminance(background(el))];
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}: ${el.textContent.trim().slice(0, 40)}`);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    // Name the outermost element sticking out (content of a scrolling box may).
    const scrolls = (el) => ["auto", "scroll", "hidden"].includes(
        getComputedStyle(el).overflowX);
    const wide = [...document.querySelectorAll("body *")].find((el) => {
      for (let n = el.parentElement; n; n = n.parentElement) if (scrolls(n)) return false;
      return el.getBoundingClientRect().right > window.innerWidth + 1;
    });
    const what = wide ? `${wide.tagName.toLowerCase()}.${wide.className}#${wide.id}` : "?";
    problems.push(`wider than the screen: ${document.documentElement.scrollWidth}px (${what})`);
  }
  return problems;
}"""


async def problems_of(page: Page, url: str) -> list[str]:
    await page.goto(url)
    found: list[str] = await page.evaluate(PROBLEMS)
    return found


async def signed_in(page: Page, site: Site) -> None:
    """The demo's staff member signs in with a fresh link."""
    await page.goto(await demo_staff_link(site, utcnow()))
    await page.locator("#signin").click()
    await expect(page.locator("#signout")).to_be_visible()


@pytest.mark.parametrize("width", [360, 1280])
async def test_every_page_is_accessible_and_fits_the_screen(
        browser: Browser, page: Page, site: Site, width: int) -> None:
    await ask_for_help(Screen(page, "household"))
    await pledge(Screen(page, "donor"))
    [kota] = site.services.areas.named(AreaLevel.REGENCY, "Jakarta Selatan")
    context = await browser.new_context(viewport={"width": width, "height": 800})
    tab = await context.new_page()
    tab.set_default_timeout(WAIT_MS)
    pages = ["/playground", "/public", f"/public?area={kota.id}", "/public?lang=en"]
    report = {path: await problems_of(tab, site.url + path) for path in pages}
    await signed_in(tab, site)
    for path in ("/dashboard", "/dashboard/pledges", "/dashboard/allocate",
                 "/dashboard/deliveries", "/dashboard/reviews", "/dashboard/stats",
                 "/dashboard?lang=en"):
        report[path] = await problems_of(tab, site.url + path)
    await context.close()
    failing = {path: found for path, found in report.items() if found}
    assert failing == {}, "\n".join(f"{path}: {found}" for path, found in failing.items())


async def test_the_playground_works_from_the_keyboard(page: Page) -> None:
    household = Screen(page, "household")
    field = household.root.locator('input[name="text"]')
    # Tab from the top of the page until the household's message field has the focus.
    await page.locator("body").focus()
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await field.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("the household's message field cannot be reached with Tab")
    await page.keyboard.type("/minta")
    await page.keyboard.press("Enter")
    await household.wait_for_answer()
    await household.expect_text("setuju")
    # The answer's buttons are reachable and pressed with the keyboard too.
    await household.option("Ya, saya setuju").focus()
    await page.keyboard.press("Enter")
    await household.wait_for_answer()
    await household.expect_text("nama lengkap")
