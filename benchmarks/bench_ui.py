"""UI latency in headless Chromium, against the Streamlit floor measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_ui.py [--edits 20] [--presets 20] [--loads 20]
[--pages '' pooling ...]`` (``--pages`` alone: no page's first paint, the floor's still)

Prints p50 and p90 (n >= 20 each) of:

- kernel-cell edit -> repainted feature map, on the 512x512 Cameraman sample and on
  the 5x5 numbers page: type a weight into the kernel editor's top-left cell
  (:mod:`convviz.ui.widgets.cell_editor`), press Enter (the edit leaves at once), time
  until the map (the ``st.image`` PNG, or the plotly heatmap's ``<image>``) changed;
  for the PNG also until it is on screen (decoded, and the next frame);
- preset change on 512x512: pick a preset (alternately Gabor 13x13 and Sobel x),
  time from the click on the option until the map changed;
- first paint of every page from a fresh tab (a new browser context: no cache, no
  session): from ``goto`` until the script run finished with content shown, and
  until every chart is drawn (no skeleton left);
- the floor: the same edit and first paint on ``floor_app.py`` (a 3x3 editor and a
  510x510 PNG: the least a Streamlit page can do per edit, on this machine, now).

With the machine's load (``/proc/loadavg``, ``/proc/pressure/cpu``) before and after:
on a shared machine the figures mean little without it, and the ratios to the floor
mean more than the milliseconds. Nothing here is asserted; it prints numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.browser import (
    READY,
    assert_no_exception,
    browser_missing_reason,
    chromium_browser,
    chromium_page,
    streamlit_server,
    wait_ready,
)
from tests.support.cell_editor import editor_cell

MAP_SRC = """() => {
  // big maps are an <img> (st.image); the numbers page's a value map (its grid's
  // version, set once its cells are written); others a plotly heatmap's <image>
  const img = document.querySelector('.st-key-conv_output_img img');
  if (img) return img.getAttribute('src');
  const frame = document.querySelector('.st-key-conv_output_map iframe');
  const grid = frame && frame.contentDocument && frame.contentDocument.querySelector('#grid');
  if (grid) return grid.dataset.version || null;
  const hm = document.querySelector('.st-key-conv_output_fig g.hm image');
  return hm ? hm.getAttribute('href') : null;
}"""
CHANGED = f"(old) => {{ const s = ({MAP_SRC})(); return s !== null && s !== old; }}"
# Installed before each edit: the wall-clock time (ms) at which the changed map was on
# screen, in ``window.__painted``: an <img> decoded, then the next frame (a plotly
# heatmap's <image> is drawn already when its href changes: the next frame).
WATCH_PAINT = f"""(old) => {{
  window.__painted = null;
  const obs = new MutationObserver(() => {{
    const s = ({MAP_SRC})();
    if (s === null || s === old) return;
    obs.disconnect();
    const img = document.querySelector('.st-key-conv_output_img img');
    const decoded = img ? img.decode().catch(() => null) : Promise.resolve();
    decoded.then(() => requestAnimationFrame(() => {{
      window.__painted = performance.timeOrigin + performance.now();
    }}));
  }});
  const opts = {{subtree: true, childList: true, attributes: true,
                 attributeFilter: ['src', 'href', 'data-version']}};
  obs.observe(document, opts);
  const frame = document.querySelector('.st-key-conv_output_map iframe');
  if (frame && frame.contentDocument) obs.observe(frame.contentDocument, opts);
}}"""
REST_MS = 500  # the pause before each edit, after the page is drawn and idle
PAGES = ("", "pooling", "feature-maps", "train", "step", "inside", "about")
# "Shown": the run finished and the main block holds content; "drawn": also no
# skeleton left (every chart drawn). Seen here under load: shown after 3-4.5 s,
# drawn after 13-19 s on the Convolution page (the browser drawing its plotly charts).
SHOWN = f"""() => {{
  const app = document.querySelector("{READY}");
  const main = document.querySelector("[data-testid='stMainBlockContainer']");
  return !!app && !!main && main.querySelectorAll("[data-testid='stElementContainer']").length > 0;
}}"""
DRAWN = f"""() => {{
  const app = document.querySelector("{READY}");
  if (!app || document.querySelector("[data-testid='stSkeleton']")) return false;
  const main = document.querySelector("[data-testid='stMainBlockContainer']");
  return !!main && main.querySelectorAll("[data-testid='stElementContainer']").length > 0;
}}"""


def load() -> str:
    """The machine's load now: /proc/loadavg and the CPU pressure (some avg10)."""
    avg = Path("/proc/loadavg").read_text().split()[:3]
    try:
        psi = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        psi = "n/a"
    return f"loadavg {' '.join(avg)} | cpu pressure {psi}"


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]


def report(label: str, times: list[float], floor: list[float] | None = None) -> None:
    p50, p90 = _pct(times, 50), _pct(times, 90)
    line = f"{label:<40} p50 {p50:6.0f} ms   p90 {p90:6.0f} ms   (n={len(times)})"
    if floor and len(floor) >= 2:
        line += f"   {p50 / _pct(floor, 50):4.1f}x floor"
    print(line, flush=True)


def at_rest(page) -> None:
    """Before each edit: the page drawn (no skeleton) and the browser idle for REST_MS.

    A person types the next cell after seeing the last repaint; pressing Enter while
    the browser still drew the previous run's charts timed that drawing too. The
    floor page is timed the same way.
    """
    page.wait_for_function(DRAWN, polling="raf", timeout=120_000)
    page.evaluate("() => new Promise(r => requestIdleCallback(() => r(), {timeout: 2000}))")
    page.wait_for_timeout(REST_MS)


def time_edits(page, n: int, painted: list[float] | None = None) -> list[float]:
    """Type into the kernel editor's top-left cell, Enter, until the map changed.

    ``painted`` (if given) collects the times until the changed map was on screen
    (:data:`WATCH_PAINT`): for an image, its decode and the next frame after the change.
    """
    page.wait_for_function(f"() => ({MAP_SRC})() !== null", timeout=60_000)
    cell = editor_cell(page, 0, 0)
    times = []
    for i in range(n):
        value = str(2 + i % 7)  # 2..8: always differs from the cell's previous value
        at_rest(page)
        old = page.evaluate(MAP_SRC)
        page.evaluate(WATCH_PAINT, old)
        cell.fill(value)
        wall0, t0 = time.time() * 1000, time.perf_counter()
        cell.press("Enter")
        page.wait_for_function(CHANGED, arg=old, polling="raf", timeout=30_000)
        times.append((time.perf_counter() - t0) * 1000)
        if painted is not None:
            page.wait_for_function("() => window.__painted !== null", timeout=30_000)
            painted.append(page.evaluate("() => window.__painted") - wall0)
        wait_ready(page, 120_000)  # let the rest of the page (the lesson) finish first
    return times


def time_presets(page, n: int, names: tuple[str, str]) -> list[float]:
    """Pick preset ``names[0]``, ``names[1]``, ... alternately; until the map changed."""
    times = []
    box = page.locator("[data-testid='stSelectbox']").filter(has_text="Preset")
    for i in range(n):
        at_rest(page)
        old = page.evaluate(MAP_SRC)
        box.click()
        option = page.get_by_role("option", name=names[i % 2], exact=True)
        option.wait_for()
        t0 = time.perf_counter()
        option.click()
        page.wait_for_function(CHANGED, arg=old, polling="raf", timeout=30_000)
        times.append((time.perf_counter() - t0) * 1000)
        wait_ready(page, 120_000)
    return times


def time_first_paint(browser, url: str, n: int) -> tuple[list[float], list[float]]:
    """``n`` fresh tabs: (shown, drawn) times; a tab not drawn in 120 s is left out."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # only when it runs

    shown, drawn = [], []
    for _ in range(n):
        with chromium_page(1280, 720, browser) as page:
            t0 = time.perf_counter()
            page.goto(url)
            try:
                page.wait_for_function(SHOWN, polling="raf", timeout=120_000)
                t1 = time.perf_counter()
                page.wait_for_function(DRAWN, polling="raf", timeout=120_000)
            except PlaywrightTimeout:
                print(f"  {url}: not drawn within 120 s (left out)", flush=True)
                continue
            shown.append((t1 - t0) * 1000)
            drawn.append((time.perf_counter() - t0) * 1000)
            assert_no_exception(page)
    return shown, drawn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--presets", type=int, default=20)
    ap.add_argument("--loads", type=int, default=20, help="fresh tabs per page")
    ap.add_argument("--paint-only", action="store_true", help="only the first paints")
    ap.add_argument(
        "--pages",
        nargs="*",
        default=list(PAGES),
        metavar="PATH",
        help="pages whose first paint is timed ('' is the Convolution page; none: no pages)",
    )
    args = ap.parse_args()
    reason = browser_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    print(f"before: {load()}", flush=True)
    floor_app = Path(__file__).with_name("floor_app.py")
    with streamlit_server(script=floor_app) as url, chromium_browser() as browser:
        with chromium_page(1280, 720, browser) as page:
            page.goto(url)
            wait_ready(page, 120_000)
            floor_on_screen: list[float] = []
            floor = [] if args.paint_only else time_edits(page, args.edits, floor_on_screen)
        floor_paint = time_first_paint(browser, url, args.loads)
    if floor:
        report("floor: 3x3 editor + 510x510 PNG, edit", floor)
        report("floor: ... until the PNG is on screen", floor_on_screen)
    if len(floor_paint[0]) >= 2:  # --loads 0 or 1: no first paints
        report("floor: first paint, shown", floor_paint[0])
        report("floor: first paint, drawn", floor_paint[1])
    with streamlit_server() as url, chromium_browser() as browser:
        if not args.paint_only:
            edits_and_presets(browser, url, args, floor, floor_on_screen)
        for path in args.pages:
            shown, drawn = time_first_paint(browser, f"{url}/{path}", args.loads)
            if len(shown) >= 2:
                report(f"first paint /{path}, shown", shown, floor_paint[0])
                report(f"first paint /{path}, drawn", drawn, floor_paint[1])
    print(f"after: {load()}", flush=True)
    return 0


def edits_and_presets(
    browser, url: str, args, floor: list[float], floor_on_screen: list[float]
) -> None:
    from convviz.kernels import KERNELS

    with chromium_page(1280, 720, browser) as page:
        page.goto(f"{url}/?source=sample&sample=Cameraman")
        wait_ready(page, 120_000)
        on_screen: list[float] = []
        report("edit -> map, 512x512 image", time_edits(page, args.edits, on_screen), floor)
        report("  ... until the PNG is on screen", on_screen, floor_on_screen)
        names = (KERNELS["gabor"].label, KERNELS["sobel_x"].label)
        report(
            "preset -> map, 512x512 (Gabor 13x13, Sobel)",
            time_presets(page, args.presets, names),
        )
    with chromium_page(1280, 720, browser) as page:  # a fresh session
        page.goto(url)  # numbers mode: the 5x5 classic example
        wait_ready(page, 120_000)
        on_screen = []
        report("edit -> map, 5x5 numbers page", time_edits(page, args.edits, on_screen), floor)
        report("  ... until the map is on screen", on_screen, floor_on_screen)


if __name__ == "__main__":
    raise SystemExit(main())
