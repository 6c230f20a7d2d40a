"""Every page in Portuguese in a real headless Chromium, at 1280x720 and 1920x1080.

Each page opens from a ``?lang=pt`` link, runs without an exception, shows its
Portuguese navigation title as the current page and the picker on "Português
(Brasil)"; screenshots go to ``artifacts/screenshots/pt_<page>_<w>x<h>.png``
(git-ignored) for a person to look at. Switching the picker from English to
Português relabels the navigation and puts ``lang=pt`` in the URL.

Skips with the reason when Playwright or Chromium is missing, unless
``CONVVIZ_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from convviz.figures import PLOTLY_WORDS
from convviz.i18n import translator
from tests.support.apptest import PAGES
from tests.support.browser import (
    assert_no_exception,
    chromium_browser,
    require_browser,
    streamlit_server,
    wait_painted,
    wait_ready,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
SHOTS = ROOT / "artifacts" / "screenshots"
SIZES = [(1280, 720), (1920, 1080)]
PT, EN = translator("pt"), translator("en")
NAV = "[data-testid='stSidebarNav']"


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server(script=APP) as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium_browser() as b:
        yield b


# The tooltips of plotly's toolbar buttons that are shown (Streamlit's own "Fullscreen",
# which no catalogue reaches, is hidden in Portuguese).
MODEBAR_TITLES = """() => [...document.querySelectorAll('.modebar-btn')]
  .filter(b => getComputedStyle(b).display !== 'none')
  .map(b => b.getAttribute('data-title'))"""


def _context(browser, width: int, height: int):
    # An English browser: the Portuguese comes from the link or the picker alone.
    return browser.new_context(viewport={"width": width, "height": height}, locale="en-US")


def _picker(page):
    return page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("module", list(PAGES))
def test_every_page_in_portuguese(server, browser, module: str, width: int, height: int) -> None:
    nav_key, path = PAGES[module]
    context = _context(browser, width, height)
    try:
        page = context.new_page()
        page.goto(f"{server}/{path}?lang=pt")
        wait_painted(page)
        assert_no_exception(page)
        # The current page in the navigation carries its Portuguese title, and is on screen.
        current = page.locator(f"{NAV} a[aria-current='page']")
        assert current.count() == 1
        assert PT(nav_key) in current.inner_text()
        assert current.is_visible()
        labels = page.locator(f"{NAV} a").all_inner_texts()
        for key, _ in PAGES.values():
            assert any(PT(key) in label for label in labels), (key, labels)
            if EN(key) != PT(key):
                assert not any(EN(key) in label for label in labels), (key, labels)
        # plotly's toolbars speak Portuguese (every frame: the live panel draws its own)
        shown = []
        for frame in page.frames:
            shown += frame.evaluate(MODEBAR_TITLES)
        portuguese = {PT(key) for key in PLOTLY_WORDS}
        assert set(shown) <= portuguese, set(shown) - portuguese
        if module in ("convolution", "feature_maps"):  # pages with charts: checked, not vacuous
            assert PT("plotly.download_png") in shown and PT("plotly.zoom_in") in shown
        picker = _picker(page)
        assert picker.locator("input").input_value() == PT("app.language.pt")
        assert PT("app.language") in picker.inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"pt_{module}_{width}x{height}.png"))
    finally:
        context.close()


def test_the_picker_switches_to_portuguese(server, browser) -> None:
    context = _context(browser, 1280, 720)
    try:
        page = context.new_page()
        page.goto(f"{server}/feature-maps")
        wait_ready(page)
        nav = page.locator(f"{NAV} a")
        before = nav.all_inner_texts()
        assert any(EN("nav.feature_maps") in label for label in before), before
        assert "lang" not in parse_qs(urlparse(page.url).query)

        picker = _picker(page)
        assert picker.locator("input").input_value() == EN("app.language.en")
        picker.click()
        page.get_by_role("option", name=PT("app.language.pt"), exact=True).click()
        page.locator(NAV).get_by_text(PT("nav.convolution"), exact=True).wait_for(timeout=20_000)
        wait_ready(page)
        assert_no_exception(page)

        after = nav.all_inner_texts()
        for key, _ in PAGES.values():
            assert any(PT(key) in label for label in after), (key, after)
        assert not any(EN("nav.pooling") in label for label in after), after
        assert parse_qs(urlparse(page.url).query).get("lang") == ["pt"], page.url
        assert urlparse(page.url).path.rstrip("/").endswith("feature-maps")  # same page
        assert page.locator("h1").first.inner_text() == PT("fm.title")
        # and a link to another page keeps the language
        page.locator(NAV).get_by_text(PT("nav.about"), exact=True).click()
        page.wait_for_url("**/about**", timeout=20_000)
        wait_ready(page)
        assert page.locator("h1").first.inner_text() == PT("about.title")
        assert parse_qs(urlparse(page.url).query).get("lang") == ["pt"], page.url
    finally:
        context.close()
