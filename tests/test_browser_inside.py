"""The Inside the network page in a real headless Chromium: draw a digit, see it classified,
click a learned filter and step it.

The canvas (``streamlit-drawable-canvas``) only runs under ``streamlit run``, so this is
where it is tested: a stroke drawn with the mouse on ``canvas.upper-canvas`` must reach
the script, be preprocessed and classified. Skips without Playwright or Chromium unless
``CONVVIZ_REQUIRE_BROWSER=1``. Screenshots: ``artifacts/screenshots/inside_*.png``.
"""

from __future__ import annotations

import re
import time

import pytest

from convviz.i18n import translator
from tests.support.browser import (
    ROOT,
    assert_no_exception,
    chromium_browser,
    chromium_page,
    open_kernel_cell_editor,
    require_browser,
    streamlit_server,
    wait_painted,
    wait_ready,
)

pytestmark = pytest.mark.browser

SHOTS = ROOT / "artifacts" / "screenshots"
SIZES = ((1280, 720), (1920, 1080))
EN = translator("en")
METRIC = "[data-testid='stMetric']"


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium_browser() as b:
        yield b


def draw_seven(page) -> float:
    """A "7" drawn with the mouse on the canvas; returns when the mouse came up."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None and box["width"] >= 200
    x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 11):  # the bar, left to right
        page.mouse.move(x0 + 12 * k, y0)
    for k in range(1, 21):  # the stem, down to the left
        page.mouse.move(x0 + 120 - 4 * k, y0 + 10 * k)
    page.mouse.up()
    return time.monotonic()


def prediction(page, timeout: float = 30_000) -> str:
    m = page.locator(METRIC).filter(has_text=EN("inside.pred.class")).first
    m.wait_for(timeout=timeout)
    return m.locator("[data-testid='stMetricValue']").inner_text().strip()


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_draw_a_digit_get_a_prediction_and_step_a_learned_filter(server, browser, width, height):
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = f"{width}x{height}"
    with chromium_page(width, height, browser) as page:
        page.goto(f"{server}/inside")
        wait_ready(page, 60_000)
        assert_no_exception(page)
        page.get_by_text(EN("inside.digit.draw"), exact=True).click()
        wait_ready(page)
        page.get_by_text(EN("inside.draw.prompt")).wait_for(timeout=20_000)
        assert page.locator(METRIC).filter(has_text=EN("inside.pred.class")).count() == 0

        up = draw_seven(page)
        label = prediction(page)
        waited = time.monotonic() - up
        assert label.isdigit(), label
        wait_ready(page)
        assert_no_exception(page)
        # Every preprocessing stage is shown, ending in the centred 28x28 digit.
        body = page.locator("[data-testid='stMain']").inner_text()
        assert EN("inside.stage.grey", h=280, w=280) in body
        assert EN("inside.stage.inverted") in body  # black ink on white paper
        assert "Centred in 28×28" in body
        print(f"\n{size}: stroke to prediction on screen in {waited:.2f} s, predicted {label}")
        wait_painted(page)
        page.get_by_text(EN("inside.digit.header")).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"inside_draw_{size}.png"))

        # Click filter 3 in the learned filters' picture: the stepper opens on it.
        points = page.locator(".st-key-inside_filter_pick .scatterlayer .point")
        points.nth(3).scroll_into_view_if_needed()
        points.nth(3).click(force=True)  # the markers are near-transparent on purpose
        match = re.escape(EN("inside.step.match", f=3, diff="").split(":")[0])
        page.locator("[data-testid='stAlertContentSuccess']").filter(
            has_text=re.compile(match)
        ).first.wait_for(timeout=20_000)
        wait_ready(page)
        # Step it: two clicks on ▶ from the middle window (13, 13) of the 26x26 map.
        nxt = page.locator(".st-key-inside_conv_next button").first
        for _ in range(2):
            nxt.click()
            wait_ready(page)
        position = EN("conv.step.position", i=354, n=676, row=13, col=15, prow=13, pcol=15)
        page.get_by_text(position).wait_for(timeout=20_000)
        assert_no_exception(page)
        wait_painted(page)
        page.locator(".st-key-inside_filter").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"inside_step_{size}.png"))
        page.get_by_text(EN("conv.step.value_at", row=13, col=15)).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"inside_step_numbers_{size}.png"))
        # The other closer looks: kernel surgery (zero the filter) and what it looks at.
        page.get_by_text(EN("inside.section.surgery"), exact=True).click()
        wait_ready(page)
        # Type a weight into the learned kernel's grid: it becomes filter 0's kernel.
        page.get_by_text(EN("inside.surgery.cells", f=0)).scroll_into_view_if_needed()
        page.locator(
            "iframe[title='convviz.ui.widgets.cell_editor.cell_editor']"
        ).first.scroll_into_view_if_needed()
        open_kernel_cell_editor(page, "5")  # the only grid on the page: bottom-right cell
        page.keyboard.press("Enter")
        page.get_by_text(re.compile(re.escape("1 filter(s) edited"))).wait_for(timeout=30_000)
        wait_painted(page)
        assert_no_exception(page)
        assert "5" in page.locator(".st-key-inside_kernel_after").inner_text()
        page.get_by_text(EN("inside.surgery.cells", f=0)).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"inside_surgery_cells_{size}.png"))
        page.locator(".st-key-inside_op_undo button").first.click()
        page.get_by_text(re.compile(re.escape("0 filter(s) edited"))).wait_for(timeout=30_000)
        wait_ready(page)
        page.locator(".st-key-inside_op_zero button").first.click()
        page.get_by_text(re.compile(re.escape("1 filter(s) edited"))).wait_for(timeout=30_000)
        wait_painted(page)
        assert_no_exception(page)
        page.get_by_text(EN("inside.surgery.intro", n="2,000")).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"inside_surgery_{size}.png"))
        page.get_by_text(EN("inside.surgery.before", n="2,000")).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"inside_surgery_scores_{size}.png"))
        page.get_by_text(EN("inside.section.looks"), exact=True).click()
        wait_painted(page)
        assert_no_exception(page)
        page.get_by_text(EN("inside.look.intro")).scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"inside_looks_{size}.png"))


def test_export_downloads_the_standalone_file_and_the_weights(server, browser):
    """A click on the NumPy and weights buttons downloads what export_model and the
    shipped file give (made on click: deferred data)."""
    import ast

    from convviz.export import export_model

    with chromium_page(1280, 720, browser) as page:
        page.goto(f"{server}/inside")
        wait_ready(page, 60_000)
        page.get_by_text(EN("inside.export.header")).click()
        wait_ready(page)
        got = {}
        for key in ("numpy", "npz"):
            with page.expect_download(timeout=30_000) as info:
                page.locator(f".st-key-inside_export_{key} button").first.click()
            download = info.value
            got[key] = (download.suggested_filename, download.path().read_bytes())
        wait_painted(page)
        assert_no_exception(page)
        page.screenshot(path=str(SHOTS / "inside_export_1280x720.png"))
    models = ROOT / "assets" / "models"
    assert got["npz"] == ("tiny.npz", (models / "tiny.npz").read_bytes())
    name, text = got["numpy"]
    assert name == "tiny_numpy.py"
    ast.parse(text.decode("utf-8"))
    assert text.decode("utf-8") == export_model(models / "tiny.npz", to="numpy")
