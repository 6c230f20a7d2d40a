"""Play on the lesson layout, in Chromium: windows per second asked vs got, and repaints.

Play moves the window by the clock (``convviz.ui.common._ticks``): when a repaint takes
longer than a tick, the next run moves on by the ticks due, so the windows per second
follow the speed asked while the repaints per second show what the machine managed.
Prints one line per case; no assertion (timing depends on the machine's load)::

    .venv/bin/python benchmarks/bench_lesson_play.py [seconds]
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convviz.ui.common import SPEEDS
from tests.support.browser import (
    chromium_browser,
    chromium_page,
    streamlit_server,
    wait_painted,
    wait_ready,
)

POSITION = re.compile(r"Position ([\d,]+) of ([\d,]+)")


def read(page) -> tuple[int, int] | None:
    text = page.locator("[data-testid='stCaptionContainer']").filter(has_text="Position ")
    try:
        m = POSITION.search(text.first.inner_text(timeout=2000))
    except Exception:
        return None
    return (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))) if m else None


def measure(page, speed: str, seconds: float) -> tuple[float, float, float]:
    """(asked windows/s, got windows/s, repaints/s) over ``seconds`` of Play."""
    # the speed slider: from "medium" one step left is slow, one right is fast
    thumb = page.locator(".st-key-conv_speed input[type='range']").first
    thumb.focus()
    want = list(SPEEDS).index(speed) - list(SPEEDS).index("medium")
    for _ in range(abs(want)):
        page.keyboard.press("ArrowRight" if want > 0 else "ArrowLeft")
    wait_ready(page)
    page.locator(".st-key-conv_playing label").first.click()
    page.wait_for_timeout(1500)  # Play's first runs settle
    first = read(page)
    t0 = time.monotonic()
    moved, frames, last = 0, 0, first
    while time.monotonic() - t0 < seconds:
        page.wait_for_timeout(50)
        now = read(page)
        if now is None or last is None or now[0] == last[0]:
            continue
        step = (now[0] - last[0]) % now[1]
        if step > now[1] // 2:  # a stale caption of the run before (it moved back): skip it
            continue
        frames += 1
        moved += step
        last = now
    elapsed = time.monotonic() - t0
    page.locator(".st-key-conv_playing label").first.click()
    wait_ready(page, 120_000)
    return 1.0 / SPEEDS[speed], moved / elapsed, frames / elapsed


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    with streamlit_server() as url, chromium_browser() as b:
        for view, query in (("numbers 5x5", ""), ("image 512x512", "?source=sample")):
            for speed in ("medium", "fast"):
                with chromium_page(1280, 720, b) as page:
                    page.goto(url + query)
                    wait_painted(page)
                    asked, got, fps = measure(page, speed, seconds)
                    print(
                        f"{view:14s} {speed:6s} asked {asked:4.1f} windows/s, got {got:4.2f} "
                        f"({got / asked:4.0%}), {fps:4.2f} repaints/s"
                    )


if __name__ == "__main__":
    main()
