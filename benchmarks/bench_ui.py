"""UI latency in headless Chromium: edit a kernel cell -> the feature map repainted.

Run: ``.venv/bin/python benchmarks/bench_ui.py [--edits 20]``

Opens the Convolution page on the 512x512 Cameraman sample, then N times: click
the kernel grid's bottom-right cell, type a new weight, and time from pressing
Enter until the feature map's PNG (the ``<image>`` inside the ``conv_output_fig``
chart) has changed in the DOM. The grid itself waits ~150 ms after Enter before
it sends the edit; that wait is part of what a user feels, so it is included.

The references, timed in the same run: the same edit on the 5x5 numbers example
(the smallest page the app draws), and on ``floor_app.py``, a page holding only a
3x3 grid and a 510x510 PNG: the floor Streamlit's own round trip sets here.
Nothing here is asserted; it prints numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.browser import (
    browser_missing_reason,
    chromium_browser,
    chromium_page,
    open_kernel_cell_editor,
    streamlit_server,
    wait_ready,
)

MAP_SRC = """() => {
  // big maps are an <img> (st.image); small ones a plotly heatmap drawn as an <image>
  const img = document.querySelector('.st-key-conv_output_img img');
  if (img) return img.getAttribute('src');
  const hm = document.querySelector('.st-key-conv_output_fig g.hm image');
  return hm ? hm.getAttribute('href') : null;
}"""


def _watch_sends(page) -> list[float]:
    """Times at which the page sends a websocket frame (call before ``goto``).

    The grid holds an edit ~150 ms after Enter (Streamlit's debounce) before it
    sends it, so the benchmark also reports the time from that moment.
    """
    sent: list[float] = []

    def on_ws(ws) -> None:
        ws.on("framesent", lambda payload: sent.append(time.perf_counter()))

    page.on("websocket", on_ws)
    return sent


def _time_edits(page, n: int, label: str, sent: list[float]) -> list[float]:
    page.wait_for_function(f"() => ({MAP_SRC})() !== null", timeout=60_000)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # only when it runs

    times, after_send, dropped = [], [], 0
    for i in range(n):
        value = str(2 + i % 7)  # 2..8: always differs from the cell's previous value
        for _attempt in range(3):
            old = page.evaluate(MAP_SRC)
            open_kernel_cell_editor(page, value)
            sent.clear()  # frames sent from here on belong to this edit
            t0 = time.perf_counter()
            page.keyboard.press("Enter")
            try:
                page.wait_for_function(
                    f"(old) => {{ const s = ({MAP_SRC})(); return s !== null && s !== old; }}",
                    arg=old,
                    polling="raf",
                    timeout=10_000,
                )
            except PlaywrightTimeout:
                # Now and then (about 1 edit in 20-40 here) the grid keeps its old value
                # after Enter: the edit never left the browser. Not a timing; try again.
                dropped += 1
                page.keyboard.press("Escape")
                wait_ready(page)
                continue
            break
        else:
            raise AssertionError(f"edit {i}: the map did not change in 3 tries")
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1000)
        if sent:
            after_send.append((t1 - sent[0]) * 1000)
        wait_ready(page)  # let the rest of the page (stepper) finish before the next edit
    p50, p90 = _pct(times, 50), _pct(times, 90)
    retried = f", {dropped} edits dropped by the grid and retried" if dropped else ""
    print(f"{label:<34} p50 {p50:6.0f} ms   p90 {p90:6.0f} ms   (n={n}, from Enter{retried})")
    if len(after_send) >= 2:
        q50, q90 = _pct(after_send, 50), _pct(after_send, 90)
        print(f"{'  same, from the send':<34} p50 {q50:6.0f} ms   p90 {q90:6.0f} ms")
    return times


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=20)
    args = ap.parse_args()
    reason = browser_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    floor_app = Path(__file__).with_name("floor_app.py")
    with streamlit_server(script=floor_app) as url, chromium_browser() as browser:
        with chromium_page(1500, 1400, browser) as page:
            sent = _watch_sends(page)
            page.goto(url)
            wait_ready(page)
            floor = _time_edits(page, args.edits, "floor: grid + 510x510 PNG only", sent)
    with streamlit_server() as url, chromium_browser() as browser:
        with chromium_page(1500, 1400, browser) as page:
            sent = _watch_sends(page)
            page.goto(f"{url}/?source=sample&sample=Cameraman")
            wait_ready(page)
            big = _time_edits(page, args.edits, "512x512 image -> 510x510 map", sent)
        with chromium_page(1500, 1400, browser) as page:  # a fresh session
            sent = _watch_sends(page)
            page.goto(url)  # numbers mode: the 5x5 classic example
            wait_ready(page)
            small = _time_edits(page, args.edits, "5x5 numbers (reference)", sent)
    ratio = statistics.median(big) / statistics.median(small)
    print(f"ratio 512x512 / 5x5 page (p50): {ratio:.2f}x   target: 512x512 p50 <= 250 ms")
    ratio = statistics.median(big) / statistics.median(floor)
    print(f"ratio 512x512 / Streamlit floor (p50): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
