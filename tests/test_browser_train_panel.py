"""The Train page's live panel in Chromium: it never overlaps, after a pause from another tab
and after a run finishes, at 1920x1080 and 1280x720.

The cause of the old collapse (the curves' box at 0 px, the filters over them) was plotly's
responsive resize: see ``drawChart`` in ``convviz/ui/live_panel/index.html`` and
``test_browser_live_panel.py``, which reproduces it without Streamlit. Here the whole page:
a run paused by a second tab of the same owner (one browser context: the owner cookie is
shared) and a run that finishes on its own; then the window is resized, which is what
resized the panel's frame when the page's scroll bar came or went.
Screenshots: ``artifacts/screenshots/livepanel/``.
"""

from __future__ import annotations

import time

import pytest

from tests.support.browser import ROOT, assert_no_exception, chromium_browser, wait_ready
from tests.support.train_browser import (
    panel_frame,
    progress_step,
    start_training,
    train_server,
    wait_for_panel,
)

pytestmark = pytest.mark.browser
SHOTS = ROOT / "artifacts" / "screenshots" / "livepanel"
SIZES = [(1920, 1080), (1280, 720)]

LAYOUT = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom,
                     height: r.height}; };
  const blocks = [...document.getElementById("panel").children];
  const charts = [...document.querySelectorAll(".chart")];
  const curves = charts[0];
  const filters = charts.length > 1 ? charts[charts.length - 1]
                                    : document.querySelector("[data-name='filters']");
  return { blocks: blocks.map(box), curves: box(curves),
           svg: box(curves.querySelector(".main-svg")), filters: filters ? box(filters) : null,
           kinds: charts.map(g => g.data && g.data[0] ? g.data[0].type : null),
           panel: box(document.getElementById("panel")), inner: innerHeight,
           resizes: window._resizes || [] };
}"""
LOG_RESIZES = """() => { window._resizes = [];
  addEventListener("resize", () => window._resizes.push([innerWidth, innerHeight])); }"""


def layout(page) -> dict:
    return panel_frame(page).evaluate(LAYOUT)


def assert_no_overlap(page) -> dict:
    """The curves have their height, their drawing stays in its box, every block of the
    panel sits below the one before, and the page gives the panel's frame its full height."""
    b = layout(page)
    assert b["curves"]["height"] == pytest.approx(300, abs=1), f"curves' box: {b['curves']}"
    assert b["svg"]["top"] >= b["curves"]["top"] - 1, b
    assert b["svg"]["bottom"] <= b["curves"]["bottom"] + 1, "the curves overflow their box"
    assert b["filters"] is not None, "no first-layer filters in the panel"
    assert b["filters"]["top"] >= b["svg"]["bottom"] - 1, "the filters are drawn over the curves"
    for above, below in zip(b["blocks"], b["blocks"][1:], strict=False):
        assert below["top"] >= above["bottom"] - 1, f"blocks overlap: {b['blocks']}"
    assert b["inner"] >= b["panel"]["height"] - 1, "the frame cuts the panel off"
    return b


def wait_still(page, kinds: list[str], timeout: float = 90.0) -> None:
    """Until the panel shows a run that holds still: the filters a heatmap again."""
    deadline = time.monotonic() + timeout
    while (k := layout(page)["kinds"])[-1:] != kinds[-1:] or len(k) < 2:
        assert time.monotonic() < deadline, f"the panel still shows {k}"
        page.wait_for_timeout(200)
    step = -1
    while (now := progress_step(page)) != step:  # and its numbers have settled
        step = now
        page.wait_for_timeout(1_200)


def shoot(page, name: str) -> None:
    """A viewport shot with the panel scrolled to the top of the view."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel_frame(page).frame_element().scroll_into_view_if_needed()
    page.evaluate(
        "() => { const f = [...document.querySelectorAll('iframe')]"
        ".find(f => f.title.includes('live_panel')); f.scrollIntoView({block: 'start'}); }"
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / name))


def check_at_sizes(page, what: str) -> None:
    for width, height in SIZES:  # resizing the window resizes the panel's frame
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(1_500)  # plotly's resize handler ran after 100 ms
        assert_no_overlap(page)
        shoot(page, f"train_{what}_{width}x{height}.png")


@pytest.fixture(scope="module")
def server():
    from tests.support.browser import require_browser

    require_browser()
    with train_server() as url:
        yield url


def test_a_pause_from_another_tab_leaves_the_panel_laid_out(server):
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        try:
            a = context.new_page()
            a.goto(server)
            wait_ready(a, 90_000)
            start_training(a, epochs=20, timeout=120)
            panel_frame(a).evaluate(LOG_RESIZES)
            assert_no_overlap(a)  # while it trains
            b = context.new_page()  # the same owner's second tab (the cookie is shared)
            b.goto(a.url)
            wait_ready(b, 90_000)
            # Generous timeouts: 8 helpers share this machine's 2 cores (load 30 seen).
            b.get_by_role("button", name="Pause", exact=True).click(timeout=90_000)
            a.get_by_role("button", name="Resume", exact=True).wait_for(timeout=90_000)
            wait_for_panel(a, 60)
            wait_still(a, ["scatter", "heatmap"])
            print("frame resizes in A during the pause:", layout(a)["resizes"])
            assert_no_overlap(a)
            check_at_sizes(a, "paused_elsewhere")
            assert_no_exception(a)
            a.get_by_role("button", name="Reset", exact=True).click()  # free the run's memory
            wait_ready(a)
        finally:
            context.close()


def test_a_finished_run_leaves_the_panel_laid_out(server):
    with chromium_browser() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        try:
            page = context.new_page()
            page.goto(server)
            wait_ready(page, 90_000)
            start_training(page, epochs=2, timeout=120)
            panel_frame(page).evaluate(LOG_RESIZES)
            page.get_by_text("Finished.").wait_for(timeout=180_000)
            wait_for_panel(page, 60)
            wait_still(page, ["scatter", "heatmap"])
            print("frame resizes while finishing:", layout(page)["resizes"])
            assert_no_overlap(page)
            check_at_sizes(page, "finished")
            assert_no_exception(page)
            page.get_by_role("button", name="Reset", exact=True).click()
            wait_ready(page)
        finally:
            context.close()
