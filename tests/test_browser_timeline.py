"""The training timeline in a real headless Chromium: train a short run, scrub the timeline
with the keyboard, reload the page, scrub again and play it; a watcher (another browser)
scrubs it too.

Screenshots at 1280x720 and 1920x1080 go to ``artifacts/screenshots/trainui/``. Skips with
the reason when Playwright or Chromium is missing, unless ``CONVVIZ_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import time

import pytest

from tests.support.browser import (
    ROOT,
    assert_no_exception,
    chromium_browser,
    chromium_page,
    require_browser,
    wait_ready,
)
from tests.support.train_browser import start_training, train_server

pytestmark = pytest.mark.browser
SHOTS = ROOT / "artifacts" / "screenshots" / "trainui"


@pytest.fixture(scope="module")
def server():
    require_browser()
    with train_server() as url:
        yield url


def timeline_frame(page):
    """The timeline's live panel frame (it holds the ``tl-filters`` block), or None."""
    for f in page.frames:
        try:
            if "live_panel" in f.url and f.evaluate(
                "() => !!document.querySelector(\"[data-name='tl-filters']\")"
            ):
                return f
        except Exception:  # a frame replaced while we looked
            continue
    return None


def metrics(page) -> dict[str, str]:
    frame = timeline_frame(page)
    if frame is None:
        return {}
    return frame.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll(\"[data-testid='metric']\")]"
        ".map(m => [m.querySelector('.metric-label').textContent,"
        " m.querySelector('.metric-value').textContent]))"
    )


def wait_step(page, step: str, timeout: float = 60.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (m := metrics(page)).get("Step") != step:
        assert time.monotonic() < deadline, f"the timeline shows {m}, not step {step}"
        page.wait_for_timeout(100)
    return m


def scrubber(page):
    slider = page.locator("[data-testid='stSlider']").filter(has_text="Moment of the run")
    return slider.get_by_role("slider")


def scrub(page, key: str, times: int = 1) -> None:
    thumb = scrubber(page)
    thumb.focus()
    for _ in range(times):
        thumb.press(key)
    wait_ready(page)


def shot(page, name: str) -> None:
    """The timeline section in the viewport, then a screenshot of what a person sees."""
    heading = page.get_by_role("heading", name="Training timeline")
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / name))


def test_scrub_reload_and_scrub_again(server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_browser() as browser, chromium_page(1280, 720, browser) as page:
        page.goto(server)
        wait_ready(page)
        start_training(page, epochs=2, timeout=120)  # tiny, 5,000 images: 158 steps, a few seconds
        page.get_by_role("button", name="Download the model (.npz)").wait_for(timeout=60_000)
        wait_ready(page)
        thumb = scrubber(page)
        thumb.wait_for(timeout=20_000)
        last = wait_step(page, "158")  # a finished run opens at its end
        assert last["Validation accuracy"].endswith("%")
        scrub(page, "Home")
        first = wait_step(page, "0")
        assert first["Train loss (that step)"] == "–" and first["Validation accuracy"] != "–"
        scrub(page, "ArrowRight", 3)  # steps 0, 1, 2, 5
        m = wait_step(page, "5")
        assert m["Validation loss"] == "–"  # an early frame: no validation there
        assert thumb.get_attribute("aria-valuetext") in (None, "step 5 · epoch 0.06")
        shot(page, "timeline_1280x720.png")
        assert_no_exception(page)

        url = page.url
        assert "run=" in url
        page.reload()
        wait_ready(page)
        scrubber(page).wait_for(timeout=20_000)
        assert page.url == url
        wait_step(page, "158")
        scrub(page, "Home")
        wait_step(page, "0")
        scrub(page, "ArrowRight", 2)
        wait_step(page, "2")
        shot(page, "timeline_reloaded_1280x720.png")
        # The comparison lists this browser's run after the reload (the owner's cookie).
        assert page.get_by_role("heading", name="Runs side by side").count() == 1
        # Play: from step 0 (at the end) through the frames, in order, to the end.
        scrub(page, "End")
        wait_step(page, "158")
        page.get_by_role("button", name="Play", exact=True).click()
        deadline = time.monotonic() + 240  # 11 frames, 0.6 s each; slower on a busy machine
        while metrics(page).get("Step") == "158":  # until the rerun that starts playing
            assert time.monotonic() < deadline, "playing did not start"
            page.wait_for_timeout(50)
        seen: list[str] = []
        while (s := metrics(page).get("Step")) != "158" or len(seen) < 2:
            assert time.monotonic() < deadline, f"playing did not reach the end: {seen}"
            if s and (not seen or seen[-1] != s):
                seen.append(s)
            page.wait_for_timeout(50)
        numbers = [int(v.replace(",", "")) for v in seen]
        assert numbers[0] == 0 and numbers == sorted(numbers), seen
        page.get_by_role("button", name="Play", exact=True).wait_for(timeout=30_000)
        assert_no_exception(page)

        # Another browser watches the same run at 1920x1080 and scrubs it.
        with chromium_page(1920, 1080, browser) as watcher:
            watcher.goto(url)
            wait_ready(watcher)
            scrubber(watcher).wait_for(timeout=60_000)
            wait_step(watcher, "158", timeout=180)  # a fresh browser loads the panels' plotly
            scrub(watcher, "Home")
            scrub(watcher, "ArrowRight", 4)
            wait_step(watcher, "10")
            shot(watcher, "timeline_1920x1080.png")
            assert watcher.get_by_role("heading", name="Runs side by side").count() == 0
            assert_no_exception(watcher)
