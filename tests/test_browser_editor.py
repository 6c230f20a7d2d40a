"""The cell editor in Chromium: an edit repaints the map with the right numbers, a bad
cell keeps its value with a message, Portuguese decimals, and no request leaves the
machine on any page. Screenshots of Gabor 13x13 in the editor at 1280x720 and 1920x1080
(``artifacts/screenshots/editor/``)."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import urlparse

import numpy as np
import pytest
from scipy.signal import correlate2d

from convviz.i18n import translator
from convviz.kernels import KERNELS
from convviz.ui.params import CLASSIC_INPUT, CLASSIC_KERNEL
from tests.support.browser import (
    READY,
    ROOT,
    assert_no_exception,
    chromium_browser,
    chromium_page,
    require_browser,
    streamlit_server,
    wait_painted,
    wait_ready,
)
from tests.support.cell_editor import IFRAME, editor_cell, editor_frame, type_into_cell

pytestmark = pytest.mark.browser

SHOTS = ROOT / "artifacts" / "screenshots" / "editor"
EN, PT = translator("en"), translator("pt")
PAGES = ("", "pooling", "feature-maps", "train", "step", "inside", "about")

# The numbers-mode feature map: a value map (convviz.ui.widgets.value_map), its cells'
# values (data-value) and the numbers written on them, row by row.
MAP_CELLS = """(what) => {
  const f = document.querySelector('.st-key-conv_output_map iframe');
  const d = f && f.contentDocument;
  const cells = d ? Array.from(d.querySelectorAll('#grid .v')) : [];
  if (!cells.length) return null;
  const rows = Math.max(...cells.map(c => +c.dataset.r)) + 1;
  const out = Array.from({length: rows}, () => []);
  cells.forEach(c => {
    out[+c.dataset.r][+c.dataset.c] = what === 'text' ? c.textContent
      : (c.dataset.value === '' ? NaN : +c.dataset.value);
  });
  return out;
}"""
OUTPUT_Z = f"() => ({MAP_CELLS})('value')"


def output_text(page) -> list[list[str]]:
    """The numbers the feature map shows on its cells, as a person reads them."""
    return page.evaluate(MAP_CELLS, "text")


@pytest.fixture(scope="module")
def server():
    require_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium_browser() as b:
        yield b


@contextlib.contextmanager
def new_page(browser, width: int = 1280, height: int = 720):
    """A fresh page with long timeouts: this machine is shared by many test runs."""
    with chromium_page(width, height, browser) as page:
        page.set_default_timeout(90_000)
        yield page


def output_map(page, shape: tuple[int, int]) -> np.ndarray:
    z = np.array(page.evaluate(OUTPUT_Z), dtype=float)
    rows = [r[np.isfinite(r)] for r in z if np.isfinite(r).any()]
    got = np.array(rows)
    assert got.shape == shape, got.shape
    return got


def wait_map(page, expected: np.ndarray) -> np.ndarray:
    """Wait until the output heatmap holds ``expected`` (the repaint came), return it."""
    target = [float(v) for v in expected.ravel()]
    page.wait_for_function(
        f"""(target) => {{
          const z = ({OUTPUT_Z})();
          if (!z) return false;
          const got = z.flat().filter(v => Number.isFinite(v));
          return got.length === target.length &&
                 got.every((v, i) => Math.abs(v - target[i]) <= 1e-6 * (1 + Math.abs(target[i])));
        }}""",
        arg=target,
        timeout=90_000,
    )
    return output_map(page, expected.shape)


def wait_lesson_value(page, want: float) -> None:
    """Wait until the lesson's output-cell value reads ``want`` (English format)."""
    page.wait_for_function(
        """(want) => {
          const m = document.querySelector(".st-key-conv_step_value [data-testid='stMetricValue']");
          if (!m) return false;
          const v = parseFloat(m.innerText.replace(/,/g, ''));
          return Math.abs(v - want) <= 1e-6 * (1 + Math.abs(want));
        }""",
        arg=float(want),
        timeout=90_000,
    )


def test_typed_cells_repaint_the_map_with_the_conv_of_the_test(server, browser) -> None:
    with new_page(browser) as page:
        page.goto(server)  # numbers mode: the classic 5x5 example
        wait_ready(page, 90_000)
        assert_no_exception(page)
        kernel = CLASSIC_KERNEL.copy()
        oracle = correlate2d(CLASSIC_INPUT, kernel, mode="valid")
        np.testing.assert_allclose(
            wait_map(page, oracle), [[181, 303, 618], [115, 338, 605], [189, 351, 660]]
        )
        assert output_text(page) == [["181", "303", "618"], ["115", "338", "605"],
                                     ["189", "351", "660"]]  # fmt: skip
        # The centre weight, then its right neighbour through the keyboard only.
        type_into_cell(page, 1, 1, "2", key="ArrowRight")
        kernel[1, 1] = 2
        focused = editor_frame(page).locator("input:focus")
        assert focused.get_attribute("data-c") == "2" and focused.get_attribute("data-r") == "1"
        focused.fill("-0.5")
        focused.press("Enter")
        kernel[1, 2] = -0.5
        got = wait_map(page, correlate2d(CLASSIC_INPUT, kernel, mode="valid"))
        np.testing.assert_allclose(got, correlate2d(CLASSIC_INPUT, kernel, mode="valid"))
        assert editor_cell(page, 1, 2).input_value() == "-0.5"
        # The edit reran only the workbench's fragment (the kernel and the map); the
        # lesson above (window at cell (0, 0)) catches up in the page fragment's run the
        # editor asks for once the map is on screen: 187.5, not 181.
        wait_lesson_value(page, correlate2d(CLASSIC_INPUT, kernel, mode="valid")[0, 0])
        wait_ready(page, 90_000)
        assert_no_exception(page)

        # A cell that is no number: a message, the cell marked, the map as it was.
        before = output_map(page, (3, 3))
        type_into_cell(page, 0, 0, "abc")
        warning = EN("conv.grid.kept", reason=EN("conv.grid.not_number", row=1, col=1), value="0")
        page.get_by_text(warning).wait_for(timeout=90_000)
        wait_ready(page, 90_000)
        np.testing.assert_array_equal(output_map(page, (3, 3)), before)
        cell = editor_cell(page, 0, 0)
        assert cell.get_attribute("aria-invalid") == "true" and cell.input_value() == "abc"
        # Beyond the documented range (convviz.shapes.VALUE_MAX): kept too.
        type_into_cell(page, 0, 0, "1e7")
        page.get_by_text(re.compile(r"1,000,000")).first.wait_for(timeout=90_000)
        wait_ready(page, 90_000)
        np.testing.assert_array_equal(output_map(page, (3, 3)), before)
        # Fixed: the message goes, the map follows.
        type_into_cell(page, 0, 0, "1/4")
        kernel[0, 0] = 0.25
        wait_map(page, correlate2d(CLASSIC_INPUT, kernel, mode="valid"))
        wait_ready(page, 90_000)
        assert page.locator("[data-testid='stAlertContentWarning']").count() == 0
        assert cell.input_value() == "0.25"
        # The input grid is the same editor: its first cell feeds the map too.
        type_into_cell(page, 0, 0, "0", index=1)
        x = CLASSIC_INPUT.copy()
        x[0, 0] = 0
        wait_map(page, correlate2d(x, kernel, mode="valid"))
        assert_no_exception(page)


def test_the_lesson_follows_every_kernel_change_the_workbench_makes(server, browser) -> None:
    """A preset, the bias and a cell typed after them each rerun only the workbench
    (the kernel and the map); the lesson, the formula and the input below catch up."""
    with new_page(browser) as page:
        page.goto(server)  # numbers mode: the classic 5x5 example, window at (0, 0)
        wait_ready(page, 90_000)
        wait_lesson_value(page, 181)
        choose_preset(page, "identity")
        kernel = np.array(KERNELS["identity"].weights, dtype=float)
        wait_map(page, correlate2d(CLASSIC_INPUT, kernel, mode="valid"))
        wait_lesson_value(page, CLASSIC_INPUT[1, 1])  # the identity's window centre: 22
        wait_ready(page, 90_000)
        bias = page.get_by_role("spinbutton", name=EN("conv.bias"), exact=True)
        bias.fill("10")
        bias.press("Enter")
        wait_map(page, correlate2d(CLASSIC_INPUT, kernel, mode="valid") + 10)
        wait_lesson_value(page, CLASSIC_INPUT[1, 1] + 10)
        wait_ready(page, 90_000)
        type_into_cell(page, 0, 0, "1")
        kernel[0, 0] = 1
        want = correlate2d(CLASSIC_INPUT, kernel, mode="valid") + 10
        wait_map(page, want)
        wait_lesson_value(page, want[0, 0])  # 22 + 128 + 10
        wait_ready(page, 90_000)
        assert_no_exception(page)


def test_portuguese_decimals_in_and_out(server, browser) -> None:
    with new_page(browser) as page:
        page.goto(f"{server}/?lang=pt")
        wait_ready(page, 90_000)
        type_into_cell(page, 0, 1, "0,5")
        kernel = CLASSIC_KERNEL.copy()
        kernel[0, 1] = 0.5
        want = correlate2d(CLASSIC_INPUT, kernel, mode="valid")
        wait_map(page, want)
        wait_ready(page, 90_000)
        assert editor_cell(page, 0, 1).input_value() == "0,5"
        # The map's numbers the Portuguese way: 132.5 is written 132,5.
        assert output_text(page)[0][0] == PT.num(want[0, 0]) == "132,5", output_text(page)
        hint = editor_frame(page).locator("#hint").inner_text()
        assert hint == PT("editor.hint")
        assert_no_exception(page)


def preset_box(page):
    return page.locator("[data-testid='stSelectbox']").filter(has_text=EN("conv.preset"))


def choose_preset(page, name: str) -> None:
    """Open the Preset box and pick ``name``. On an image the lesson above it keeps its
    height from the first paint (see the test below), so one click opens it. On the
    numbers page the lesson's sum and value still grow once Streamlit has loaded their
    code (+37 px, seen in 3 of 8 loads; not fixed yet), which closed the list once in a
    clean-clone run: there the box is opened until its list stays open, three tries."""
    option = page.get_by_role("option", name=KERNELS[name].label, exact=True)
    for _ in range(3):
        preset_box(page).click()
        try:
            option.wait_for(timeout=3_000)
            break
        except Exception:  # the list closed: Escape, then open it again
            page.keyboard.press("Escape")
    option.click()


# The Preset box's top in the page (stMain scrolls, not the window).
PRESET_TOP = """(box) => box.getBoundingClientRect().top
  + document.querySelector("[data-testid='stMain']").scrollTop"""


def test_the_preset_box_stays_put_and_opens_at_the_first_paint(server, browser) -> None:
    """The lesson's maps are component frames that Streamlit mounts 1.3-2 s after the run
    ends, at height 0: the lesson grew by 256 px then (at 1280x720), so a click on Preset
    as soon as the page was ready found its list closed again in about a quarter of loads
    (the box moved under the pointer, or the page scrolled). Each map keeps its room from
    the first paint (value_map.room_css): the box stays where it was drawn, and its list
    opens at the first click, on every fresh load. (The old code failed 5 of 8 loads
    here: in the others the box itself was drawn after the frames.)"""
    moved, closed = [], []
    for load in range(8):
        with new_page(browser) as page:
            page.goto(f"{server}/?source=sample&sample=Cameraman")
            page.wait_for_selector(READY)
            box = preset_box(page)
            top = box.evaluate(PRESET_TOP)
            box.evaluate("e => e.scrollIntoView({block: 'center'})")
            box.click()
            page.wait_for_timeout(1_500)
            if page.get_by_role("listbox").count() == 0:
                closed.append(load)
            page.wait_for_timeout(1_500)
            if abs(box.evaluate(PRESET_TOP) - top) > 1:
                moved.append((load, round(top), round(box.evaluate(PRESET_TOP))))
            assert_no_exception(page)
    assert not (moved or closed), (
        f"the Preset box moved after it was drawn (load, from, to): {moved}; "
        f"its list closed again after one click in loads {closed}"
    )


def _choose_gabor(page) -> None:
    choose_preset(page, "gabor")
    editor_cell(page, 12, 12).wait_for(timeout=90_000)
    wait_ready(page, 90_000)


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_gabor_13x13_is_legible(server, browser, size: tuple[int, int]) -> None:
    with new_page(browser, *size) as page:
        page.goto(f"{server}/?source=sample&sample=Cameraman")
        wait_ready(page, 90_000)
        _choose_gabor(page)
        wait_painted(page)
        assert_no_exception(page)
        frame = editor_frame(page)
        texts = frame.locator("input").evaluate_all("els => els.map(e => e.value)")
        assert len(texts) == 169
        assert all(len(s) <= 6 for s in texts), max(texts, key=len)  # no runs of zeros
        assert not any(re.search(r"000", s) for s in texts)
        weights = np.array(KERNELS["gabor"].weights)
        tiny = int(np.argmin(np.abs(weights)))
        assert abs(weights.flat[tiny]) < 1e-15 and texts[tiny] == "0"
        # In thousandths, said above the grid: the largest weight 0.0398 reads 40.
        assert frame.locator("#scale").inner_text() == EN("editor.scale", factor="0.001")
        top = int(np.argmax(weights))
        assert texts[top] == f"{weights.flat[top] * 1000:.0f}" == "40"
        iframe = page.locator(IFRAME)
        iframe.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"convolution_gabor_{size[0]}x{size[1]}.png"))
        # The whole grid is visible in its column: no sideways scroll.
        box = iframe.bounding_box()
        scroll = frame.locator("#wrap").evaluate("e => e.scrollWidth - e.clientWidth")
        assert scroll <= 0 and box["x"] + box["width"] <= size[0]
        # Clicked, a cell shows its exact value to edit.
        editor_cell(page, 6, 6).click()
        assert editor_cell(page, 6, 6).input_value() == f"{weights[6, 6]:.10g}"
        status = frame.locator("#status").inner_text()
        assert status == f"{EN('editor.cell', row=7, col=7)}: {weights[6, 6]:.10g}"
        page.screenshot(path=str(SHOTS / f"convolution_gabor_{size[0]}x{size[1]}_editing.png"))
        editor_cell(page, 6, 6).press("Escape")


def test_no_request_leaves_the_machine(server, browser) -> None:
    for path in PAGES:
        with new_page(browser) as page:
            seen: list[str] = []
            page.on("request", lambda r, seen=seen: seen.append(r.url))
            page.goto(f"{server}/{path}")
            wait_ready(page, timeout=60_000)
            page.wait_for_timeout(1500)  # late requests: favicon, fonts, component frames
            hosts = {
                urlparse(u).hostname
                for u in seen
                if urlparse(u).scheme in ("http", "https", "ws", "wss")
            }
            assert hosts <= {"127.0.0.1", "localhost"}, (path, sorted(hosts))
            assert seen, path


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_the_numbers_pages_maps_are_legible(server, browser, size: tuple[int, int]) -> None:
    """The 5x5 input and the 3x3 map beside the kernel: every number whole on its cell,
    both maps on one scale (a cell as wide in each), the colour bar and the legend's
    sentence in the frame (not cut), the map inside the window sideways."""
    with new_page(browser, *size) as page:
        page.goto(server)
        wait_ready(page, 90_000)
        wait_map(page, correlate2d(CLASSIC_INPUT, CLASSIC_KERNEL, mode="valid"))
        widths = {}
        for key, shape in (("conv_output_map", (3, 3)), ("conv_input_map", (5, 5))):
            iframe = page.locator(f".st-key-{key} iframe")
            iframe.scroll_into_view_if_needed()
            frame = page.frame_locator(f".st-key-{key} iframe")
            frame.locator("#grid[data-version]").wait_for(timeout=90_000)
            cells = frame.locator("#grid .v")
            assert cells.count() == shape[0] * shape[1]
            # No number cut: each fits its cell.
            over = cells.evaluate_all("es => es.filter(e => e.scrollWidth > e.clientWidth).length")
            assert over == 0, key
            widths[key] = cells.first.evaluate("e => e.getBoundingClientRect().width")
            legend = frame.locator("#legend")
            assert legend.inner_text().strip(), key
            # The frame holds all it draws: its height covers the legend's bottom.
            bottom = legend.evaluate("e => e.getBoundingClientRect().bottom")
            assert bottom <= iframe.bounding_box()["height"] + 1, (key, bottom)
            box = frame.locator("#grid").bounding_box()
            assert box["x"] + box["width"] <= size[0], key
        assert abs(widths["conv_output_map"] - widths["conv_input_map"]) <= 1, widths
        hover = page.frame_locator(".st-key-conv_output_map iframe").locator("#grid .v").first
        assert (
            hover.get_attribute("title") == f"{EN('fig.hover.cell', row=0, col=0)}: "
            f"{EN('fig.value')} 181"
        )
        page.locator(".st-key-conv_output_map iframe").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"numbers_maps_{size[0]}x{size[1]}.png"))
        assert_no_exception(page)
