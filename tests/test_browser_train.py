"""Train a CNN in a real headless Chromium: it trains, the views move, a reload keeps the run.

Runs ``streamlit run tests/apps/train_app.py`` (the page on its own). Skips with
the reason when Playwright or Chromium is missing, unless
``CONVVIZ_REQUIRE_BROWSER=1``. Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from tests.support.browser import (
    assert_no_exception,
    chromium_page,
    require_browser,
    wait_ready,
)
from tests.support.train_browser import (  # noqa: F401
    APP,
    SHOTS,
    curve_points,
    curves_frame,
    filters_png,
    panel_frame,
    progress_step,
    progress_text,
    start_training,
    step_axis,
    train_server,
    wait_for_panel,
    wait_for_points,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    require_browser()
    with train_server() as url:
        yield url


def test_train_live_and_reload_keeps_the_run(server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(1400, 2600) as page:  # tall: every view in one shot
        page.goto(server)
        wait_ready(page)
        assert_no_exception(page)
        # tiny on 5,000 images for 20 epochs (~15 s here): still training when paused below.
        start_training(page, epochs=20, timeout=30)
        wait_for_points(page, 2)
        step1, shot1 = progress_step(page), filters_png(page)
        page.screenshot(path=str(SHOTS / "train_1.png"), full_page=True)
        page.wait_for_timeout(3_000)
        step2, shot2 = progress_step(page), filters_png(page)
        page.screenshot(path=str(SHOTS / "train_2.png"), full_page=True)
        assert step2 > step1, "the progress did not advance"
        assert curve_points(page) >= 2, "the loss curve has no points"
        if shot1.shape == shot2.shape:
            change = np.abs(shot1 - shot2).mean()
        else:
            change = np.inf
        assert change > 0.5, f"the first-layer filters did not change (mean |diff| {change:.2f})"
        assert_no_exception(page)

        # Zoom into the curves with the mouse: the zoom survives the next refreshes
        # (the chart is updated in place, its uirevision kept).
        drag = curves_frame(page).locator(".nsewdrag").first.bounding_box()
        x0, y0 = drag["x"] + 10, drag["y"] + 10
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 100, y0 + 80, steps=5)
        page.mouse.up()
        zoomed, points = step_axis(page), curve_points(page)
        page.wait_for_timeout(2_500)  # two refreshes or more
        assert curve_points(page) > points, "the curves stopped updating"
        assert step_axis(page) == pytest.approx(zoomed), "the zoom was lost at a refresh"

        # Pause, so the numbers hold still, then reload: same run, same history.
        page.get_by_role("button", name="Pause", exact=True).click()
        page.get_by_role("button", name="Resume", exact=True).wait_for(timeout=20_000)
        page.wait_for_timeout(1_500)
        # Paused: the filters are a plotly heatmap again, with a value under the mouse.
        kinds: list[str] = []
        deadline = time.monotonic() + 20
        while kinds[1:2] != ["heatmap"] and time.monotonic() < deadline:
            page.wait_for_timeout(200)
            kinds = panel_frame(page).evaluate(
                "() => [...document.querySelectorAll('.js-plotly-plot')].map(g => g.data[0].type)"
            )
        assert kinds[:2] == ["scatter", "heatmap"], kinds
        url = page.url
        assert "run=" in url
        # The worker finishes its chunk after the click; the model download appears once
        # the run has settled, and the panel shows the settled numbers within a second.
        page.get_by_role("button", name="Download the model (.npz)").wait_for(timeout=20_000)
        step = -1
        while (now := progress_step(page)) != step:
            step = now
            page.wait_for_timeout(1_200)
        points = curve_points(page)
        page.reload()
        wait_ready(page)
        wait_for_panel(page)
        page.wait_for_timeout(1_000)
        assert page.url == url
        assert progress_step(page) == step and step > 0
        assert wait_for_points(page, points) == points
        page.get_by_role("button", name="Resume", exact=True).wait_for(timeout=10_000)
        page.screenshot(path=str(SHOTS / "train_reloaded.png"), full_page=True)
        assert_no_exception(page)
        page.get_by_role("button", name="Reset", exact=True).click()  # free the run's memory
        wait_ready(page)


def test_a_run_that_finishes_shows_its_result_without_a_click(server):
    """The live panel is fed between reruns; when the run finishes on its own, the page
    redraws around it: the Finished state, the test accuracy and the model download."""
    with chromium_page(1400, 1600) as page:
        page.goto(server)
        wait_ready(page)
        start_training(page, epochs=2)
        # The result's alert (the sidebar's preset caption mentions test accuracy too).
        success = page.locator("[data-testid='stAlertContentSuccess']")
        success.filter(has_text="Test accuracy:").wait_for(timeout=60_000)
        assert page.get_by_text("Finished.").count() == 1
        page.get_by_role("button", name="Download the model (.npz)").wait_for(timeout=10_000)
        total = re.search(r"step ([\d,]+)/([\d,]+)", progress_text(page))
        assert total and total.group(1) == total.group(2), progress_text(page)
        assert_no_exception(page)
        page.get_by_role("button", name="Reset", exact=True).click()  # free the run's memory
        wait_ready(page)
