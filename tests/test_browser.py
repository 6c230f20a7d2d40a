"""End-to-end tests in a real headless Chromium against ``streamlit run app.py``.

They skip with the reason when Playwright or Chromium is missing, unless
``CONVVIZ_REQUIRE_BROWSER=1`` (CI sets it): then a missing browser fails.
Screenshots go to ``artifacts/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convviz.conv import conv2d_step
from convviz.images import load_image
from convviz.kernels import KERNELS
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


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium_browser() as b:
        yield b


@pytest.fixture
def page(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(1500, 1100, browser) as p:
        p.goto(server)
        wait_ready(p)
        yield p


def metric(page, label: str) -> float:
    m = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    m.wait_for(timeout=20_000)
    return float(m.locator("[data-testid='stMetricValue']").inner_text())


def edit_last_kernel_cell(page, value: str) -> None:
    open_kernel_cell_editor(page, value)
    page.keyboard.press("Enter")
    page.wait_for_timeout(400)  # the grid sends its edit ~150 ms after Enter
    wait_ready(page)


def test_default_page_shows_the_classic_example(page) -> None:
    assert_no_exception(page)
    assert metric(page, "Output value at (0, 0)") == 181
    wait_painted(page)
    page.screenshot(path=str(SHOTS / "ui_convolution_numbers.png"), full_page=True)


def test_upload_preset_edit_and_step(page, tmp_path: Path) -> None:
    # An image with structure, so every window gives a different sum.
    yy, xx = np.mgrid[0:90, 0:120]
    img = ((np.sin(xx / 7.0) + np.cos(yy / 5.0) + 2) * 63).astype(np.uint8)
    path = tmp_path / "waves.png"
    Image.fromarray(img).save(path)

    page.get_by_text("Upload your own").click()
    wait_ready(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
    page.wait_for_timeout(500)
    wait_ready(page)
    assert_no_exception(page)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0

    page.locator("[data-testid='stSelectbox']").filter(has_text="Preset").click()
    page.get_by_role("option", name=KERNELS["sobel_x"].label, exact=True).click()
    wait_ready(page)
    page.wait_for_timeout(1000)  # the preset remounts the kernel grid
    assert page.get_by_text(KERNELS["sobel_x"].description).count() == 1

    edit_last_kernel_cell(page, "3")  # sobel_x's bottom-right weight 1 -> 3
    assert_no_exception(page)
    assert " + 3×" in page.locator("[data-testid='stCode']").first.inner_text()

    # An image opens where it has most structure (convviz.lesson.busiest_window); ▶ moves on.
    x = load_image(path.read_bytes(), max_side=512, mode="gray")
    wo = x.shape[1] - 2
    caption = page.get_by_text(re.compile(r"Position [\d,]+ of ")).first.inner_text()
    start = int(re.search(r"Position ([\d,]+) of", caption).group(1).replace(",", "")) - 1
    nxt = page.locator(".st-key-conv_next button").first
    for i in range(1, 4):
        nxt.click()
        page.get_by_text(f"Position {start + i + 1:,} of ").wait_for(timeout=20_000)
        wait_ready(page)
    oy, ox = divmod(start + 3, wo)
    shown = metric(page, f"Output value at ({oy}, {ox})")
    wait_painted(page)
    page.screenshot(path=str(SHOTS / "ui_convolution_upload_step.png"), full_page=True)

    kernel = np.array(KERNELS["sobel_x"].weights)
    kernel[2, 2] = 3.0
    expected = conv2d_step(x, kernel, index=(oy, ox)).value
    assert shown == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the written-out sum shows the same number
    code = page.locator("[data-testid='stCode']").first.inner_text()
    assert re.search(rf"= {re.escape(f'{expected:.6g}')}\s*$", code.strip())


def test_bad_upload_shows_a_friendly_error(page, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image\n" * 10)
    page.get_by_text("Upload your own").click()
    wait_ready(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(bad))
    page.wait_for_timeout(500)
    wait_ready(page)
    assert_no_exception(page)
    err = page.locator("[data-testid='stAlertContentError']").first.inner_text()
    assert "not an image we can read" in err and "Traceback" not in err


@pytest.mark.parametrize("path", ["pooling", "feature-maps", "train", "about"])
def test_other_pages_render(page, server, path: str) -> None:
    page.goto(f"{server}/{path}")
    wait_painted(page)
    assert_no_exception(page)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    page.screenshot(path=str(SHOTS / f"ui_{path}.png"), full_page=True)
