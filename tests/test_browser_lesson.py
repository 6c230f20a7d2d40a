"""The lesson layout in a real Chromium: one screen at 1280x720 and 1920x1080, in English and
Portuguese, and the window placed by a click, the arrow keys and ◀ ▲ ▼ ▶.

Bounding boxes, not pixels: every element a teacher needs at once (the input with the window,
the kernel, the products, the sum, the output cell and map, the step controls) must lie
inside the viewport without scrolling. Screenshots go to ``artifacts/screenshots/lesson/``.
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

SHOTS = ROOT / "artifacts" / "screenshots" / "lesson"
CONTROLS = ("playing", "prev", "up", "down", "next", "step")
VIEWS = {
    # what must be on screen: keys of the elements (Streamlit's st-key-<key> classes)
    "numbers": (
        "",
        "conv",
        (
            *("conv_step_input", "conv_step_kernel_0", "conv_step_products_0"),
            *("conv_step_sum", "conv_step_value", "conv_step_output"),
        ),
    ),
    "image": (
        "source=sample",
        "conv",
        (
            *("conv_step_overview", "conv_step_patch_0", "conv_step_kernel_0"),
            *("conv_step_products_0", "conv_step_sum", "conv_step_value", "conv_step_output"),
        ),
    ),
    "pooling": (
        "pooling",
        "pool",
        (
            "pool_step_input",
            "pool_step_window",
            "pool_step_sum",
            "pool_step_value",
            "pool_step_output",
        ),
    ),
}


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium_browser() as b:
        yield b


def url_of(server: str, view: str, lang: str) -> str:
    target, *_ = VIEWS[view]
    path, query = ("pooling", "") if target == "pooling" else ("", target)
    query = "&".join(q for q in (query, "lang=pt" if lang == "pt" else "") if q)
    return f"{server}/{path}" + (f"?{query}" if query else "")


def wait_lesson(page, keys, timeout: float = 120_000) -> None:
    """The run finished and the lesson's charts have drawn (the rest of the page may still
    be painting below the fold: on these loaded 2-core machines that alone took over 60 s)."""
    wait_ready(page, timeout)
    charts = [k for k in keys if "sum" not in k and "value" not in k]
    page.wait_for_function(
        """(keys) => keys.every(k => {
          // a plotly chart drawn, or a value map (the kernel, the products) written
          if (document.querySelector(`.st-key-${k} .main-svg`)) return true;
          const f = document.querySelector(`.st-key-${k} iframe`);
          const d = f && f.contentDocument;
          return !!(d && d.querySelector('#grid[data-version]'));
        })""",
        arg=charts,
        timeout=timeout,
    )
    page.wait_for_timeout(500)


def box(page, key: str) -> dict:
    loc = page.locator(f".st-key-{key}").first
    loc.wait_for(timeout=20_000)
    b = loc.bounding_box()
    assert b is not None, f"{key} is not drawn"
    return b


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=["1280x720", "1920x1080"])
@pytest.mark.parametrize("lang", ["en", "pt"])
@pytest.mark.parametrize("view", list(VIEWS))
def test_the_lesson_fits_one_screen(server, browser, view: str, lang: str, size) -> None:
    w, h = size
    _, prefix, keys = VIEWS[view]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(w, h, browser) as page:
        page.goto(url_of(server, view, lang))
        wait_lesson(page, keys)
        assert_no_exception(page)
        page.screenshot(path=str(SHOTS / f"{view}_{lang}_{w}x{h}.png"))
        outside = []
        for key in (*keys, *(f"{prefix}_{c}" for c in CONTROLS)):
            b = box(page, key)
            inside = b["x"] >= 0 and b["y"] >= 0
            inside = inside and b["x"] + b["width"] <= w and b["y"] + b["height"] <= h
            if not inside:
                outside.append((key, {k: round(v) for k, v in b.items()}))
        assert not outside, f"outside the {w}x{h} viewport: {outside}"


def cell_point(page, key: str, row: float, col: float) -> tuple[float, float]:
    """The screen position of a cell's centre in the map ``key``: a value map's cell (or
    its picture's pixel), or a plotly chart's."""
    return page.evaluate(
        """([key, row, col]) => {
          const f = document.querySelector(`.st-key-${key} iframe`);
          if (f) {
            const d = f.contentDocument, fr = f.getBoundingClientRect();
            const cell = d.querySelector(`#grid [data-r='${row}'][data-c='${col}']`);
            if (cell) {
              const c = cell.getBoundingClientRect();
              return [fr.left + c.left + c.width / 2, fr.top + c.top + c.height / 2];
            }
            const r = d.querySelector('#picture img').getBoundingClientRect();
            const [nr, nc] = JSON.parse(d.getElementById('picture').dataset.size);
            return [
              fr.left + r.left + (col + 0.5) * r.width / nc,
              fr.top + r.top + (row + 0.5) * r.height / nr,
            ];
          }
          const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
          const xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;
          const r = el.getBoundingClientRect();
          return [r.left + xa._offset + xa.l2p(col), r.top + ya._offset + ya.l2p(row)];
        }""",
        [key, row, col],
    )


def position(page, n: int) -> int:
    """The window's position (1-based) from the caption ``Position i of n``."""
    text = page.get_by_text(f" of {n:,}:").first.inner_text()
    return int(text.split(" ")[1].rstrip(":").replace(",", ""))


def metric_text(page, key: str) -> str:
    return page.locator(f".st-key-{key} [data-testid='stMetricValue']").first.inner_text()


def wait_position(page, n: int, want: int) -> None:
    page.get_by_text(f"Position {want:,} of {n:,}:").first.wait_for(timeout=20_000)
    wait_ready(page)


def test_click_arrows_and_keys_place_the_window(server, browser) -> None:
    with chromium_page(1280, 720, browser) as page:
        page.goto(server)
        wait_painted(page)
        # the classic 5x5: a click on input cell (4, 4) centres the window on it: output (2, 2)
        page.mouse.click(*cell_point(page, "conv_step_input", 4, 4))
        wait_position(page, 9, 9)
        assert metric_text(page, "conv_step_value") == "660"
        # a click on output cell (1, 0) writes that cell: 115
        wait_painted(page)
        page.mouse.click(*cell_point(page, "conv_step_output", 1, 0))
        wait_position(page, 9, 4)
        assert metric_text(page, "conv_step_value") == "115"
        # the arrow keys work at once after a click on a map (it gives the keyboard back)
        page.keyboard.press("ArrowRight")
        wait_position(page, 9, 5)
        assert metric_text(page, "conv_step_value") == "338"
        # the same cell clicked again is a new click
        page.mouse.click(*cell_point(page, "conv_step_output", 1, 0))
        wait_position(page, 9, 4)
        # ▶ and ▼ on screen
        page.locator(".st-key-conv_next button").first.click()
        wait_position(page, 9, 5)
        assert metric_text(page, "conv_step_value") == "338"
        page.locator(".st-key-conv_down button").first.click()
        wait_position(page, 9, 8)
        assert metric_text(page, "conv_step_value") == "351"
        # the arrow keys, with the focus on the page (not in a widget)
        page.locator("[data-testid='stMain'] h1").first.click()
        page.keyboard.press("ArrowUp")
        wait_position(page, 9, 5)
        page.keyboard.press("ArrowLeft")
        wait_position(page, 9, 4)
        assert metric_text(page, "conv_step_value") == "115"
        # a second click on another input cell still counts
        wait_painted(page)
        page.mouse.click(*cell_point(page, "conv_step_input", 1, 3))
        wait_position(page, 9, 3)  # centred on (1, 3): output (0, 2) = 618
        assert metric_text(page, "conv_step_value") == "618"
        assert_no_exception(page)
        page.screenshot(path=str(SHOTS / "numbers_after_clicks.png"))


def test_a_click_places_the_pooling_window(server, browser) -> None:
    with chromium_page(1280, 720, browser) as page:
        page.goto(f"{server}/pooling")
        wait_painted(page)
        # the 6x6 example, 2x2 max pooling, stride 2: cell (5, 0) is in window (2, 0)
        page.mouse.click(*cell_point(page, "pool_step_input", 5, 0))
        wait_position(page, 9, 7)
        assert metric_text(page, "pool_step_value") == "7"  # max(-2, 5, 7, 0)
        wait_painted(page)
        page.mouse.click(*cell_point(page, "pool_step_output", 0, 2))
        wait_position(page, 9, 3)
        assert metric_text(page, "pool_step_value") == "5"  # max(5, 1, -3, 2)
        assert_no_exception(page)


def test_a_click_on_an_image_puts_the_window_there(server, browser) -> None:
    with chromium_page(1280, 720, browser) as page:
        page.goto(f"{server}/?source=sample")
        wait_painted(page)
        n = 510 * 510  # Cameraman at 512, a 3x3 kernel, valid padding
        start = position(page, n)
        assert start != 1  # it opens on structure, not on the corner
        page.mouse.click(*cell_point(page, "conv_step_overview", 100, 400))
        page.wait_for_function(
            f"() => !document.body.innerText.includes('Position {start:,} of')", timeout=20_000
        )
        wait_ready(page)
        oy, ox = divmod(position(page, n) - 1, 510)
        # the window centred on the pixel clicked, to within a screen pixel (~4 image pixels)
        assert abs(oy + 1 - 100) <= 4 and abs(ox + 1 - 400) <= 4, (oy, ox)
        assert_no_exception(page)


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_the_output_size_formula_is_never_cut(server, browser, lang: str) -> None:
    # A 512x512 image, "same" padding and stride 2: the longest numbers the formula gets
    # at the default working size. Each axis's formula fits its column at 1280x720.
    query = "source=sample&padding=same&stride=2" + ("&lang=pt" if lang == "pt" else "")
    with chromium_page(1280, 720, browser) as page:
        page.goto(f"{server}/?{query}")
        wait_painted(page)
        page.locator("[class*='st-key-conv_formula_H'] .katex").first.wait_for(timeout=20_000)
        sizes = page.evaluate(
            """() => [...document.querySelectorAll(
                "[class*='st-key-conv_formula_'] .katex-display"
              )].map(e => [e.scrollWidth, e.clientWidth])"""
        )
        assert len(sizes) == 2 and all(sw <= cw for sw, cw in sizes), sizes
        text = page.locator("[class*='st-key-conv_formula_W']").first.inner_text()
        assert "256" in text  # the result, on screen: 512 padded to 513, stride 2
        assert_no_exception(page)
