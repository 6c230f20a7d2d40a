"""Colours that explain themselves, seen in Chromium (issue 16 §3).

The Feature maps page in English and Portuguese at 1280x720 and 1920x1080: the
grid's legend in words is drawn (plotly's SVG text) inside the chart's box, and
the Convolution page's stepper map of the Outline preset on a sample says its rule.
Screenshots: ``artifacts/screenshots/colours/`` (git-ignored), for a person to look at.
"""

from __future__ import annotations

import pytest

from tests.support.browser import (
    ROOT,
    assert_no_exception,
    chromium_browser,
    chromium_page,
    require_browser,
    streamlit_server,
    wait_painted,
    wait_ready,
)

pytestmark = pytest.mark.browser

SHOTS = ROOT / "artifacts" / "screenshots" / "colours"
SIZES = [(1280, 720), (1920, 1080)]
# The first words of the grid's legend (the figures catalogue, fig.legend.each_unsigned:
# the page's default activation is ReLU, so its maps are unsigned).
LEGEND = {"en": "Each map on its own range", "pt": "Cada mapa com sua própria faixa"}


def _legend(page, words: str):
    return page.locator("[data-testid='stPlotlyChart'] .annotation-text", has_text=words).first


def _legend_box(page, words: str) -> dict:
    note = _legend(page, words)
    assert note.count() == 1, f"no legend {words!r} drawn"
    return note.bounding_box()


def test_feature_maps_legend_and_screenshots() -> None:
    require_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as url, chromium_browser() as browser:
        for lang in ("en", "pt"):
            for w, h in SIZES:
                with chromium_page(w, h, browser) as page:
                    page.goto(f"{url}/feature-maps?lang={lang}")
                    wait_painted(page, timeout=120_000)
                    assert_no_exception(page)
                    page.screenshot(path=str(SHOTS / f"feature_maps_{lang}_{w}x{h}.png"))
                    chart = page.locator("[data-testid='stPlotlyChart']").first
                    _legend(page, LEGEND[lang]).scroll_into_view_if_needed()
                    page.wait_for_timeout(300)
                    box = _legend_box(page, LEGEND[lang])
                    outer = chart.bounding_box()
                    assert box["width"] > 0 and box["height"] > 0
                    # inside the chart's own box: not cut off, not drawn over something else
                    assert (
                        outer["x"] - 1
                        <= box["x"]
                        <= box["x"] + box["width"]
                        <= (outer["x"] + outer["width"] + 1)
                    )
                    assert (
                        outer["y"]
                        <= box["y"]
                        <= box["y"] + box["height"]
                        <= (outer["y"] + outer["height"] + 1)
                    )
                    page.screenshot(path=str(SHOTS / f"feature_maps_{lang}_{w}x{h}_legend.png"))


def test_convolution_map_legend_says_the_rule() -> None:
    require_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as url, chromium_browser() as browser:
        with chromium_page(1280, 720, browser) as page:
            # Outline on a sample: a big signed edge map. The lesson's output map (a value
            # map: its picture) has the default (robust) range, and says its rule.
            kernel = "-1,-1,-1;-1,8,-1;-1,-1,-1"
            page.goto(f"{url}/?lang=pt&source=sample&sample=Coins&kernel={kernel}")
            words = "Vermelho: positivo, azul: negativo"  # the legend's first words
            frame = page.frame_locator(".st-key-conv_step_output iframe")
            legend = frame.locator("#legend")
            # The page is heavy on a loaded machine: wait for the legend itself.
            legend.filter(has_text=words).wait_for(timeout=180_000)
            wait_ready(page, timeout=180_000)
            assert_no_exception(page)
            legend.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            assert legend.bounding_box()["height"] > 0
            # Robust by default: 1% of this edge map lies beyond its range, and the map's
            # legend says so (the lesson's small maps beside it keep ±max: every cell counts).
            assert "1,0% das células ficam fora da faixa" in legend.inner_text()
            page.screenshot(path=str(SHOTS / "convolution_pt_1280x720_legend.png"))
