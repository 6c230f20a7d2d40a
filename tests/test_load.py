"""A bounded load test (issue 17): one ``streamlit run app.py`` on loopback, many browsers.

Eight Chromium contexts each upload their own image on the Convolution page and step
the sliding window while four others start training on the Train page (the server's cap
is 2 trainers, as in the issue: the other two queue). Measured and reported (printed,
never asserted: time bounds are not tests): the explorers' step latency p50/p90.
Asserted: no error or exception on any page, the queue holds the runs over the cap, and
the server's RSS, sampled every 0.5 s from ``/proc/<pid>/status``, comes back to within
100 MB of its idle baseline once every session has closed.

The baseline: RSS when the server is idle AFTER a warm-up session has opened both pages,
uploaded an image, stepped, and trained (then closed and been freed). That process holds
what any server that has served one student holds for good: the imports, the MNIST
arrays (loaded once, shared read-only) and Streamlit's caches; what a class adds beyond
it must go away. Closed sessions are dropped after 10 s (``disconnectedSessionTTL``; the
default is 120 s) and abandoned runs after 10 s (``CONVVIZ_ABANDON_AFTER_S``; default
900), so the test waits seconds, not minutes; the mechanism is the same.

The series is written to ``artifacts/load/rss.csv`` and drawn to ``artifacts/load/rss.png``.
The whole test is bounded at about 3 minutes: every phase has a deadline. Runs'
independence (same seed, same weights; different seeds, different weights) is checked
in-process on the runs service, in ``test_runs_are_independent_under_concurrency``.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import re
import statistics
import time

import numpy as np
import pytest
from PIL import Image

from tests.support.browser import CHROMIUM_ARGS, ROOT, chromium_path, require_browser
from tests.support.load_server import Sampler, app_server, plot_series, threads

ART = ROOT / "artifacts" / "load"
EXPLORERS = 8
TRAINERS = 4
CAP = 2
STEPS = 8  # sliding-window steps per explorer
EPOCHS = 5  # of the Train page's 5,000 images: ~6 s alone, so runs overlap and queue
LOAD_DEADLINE_S = 90.0  # explorers stop stepping after this, trainers stop waiting
STEP_GRACE_S = 30.0  # a step asked before the deadline may take this long past it
SETTLE_S = 60.0  # after closing: how long RSS may take to come back
IDLE_MARGIN_MB = 100.0  # issue 17: "within 100 MB of its idle baseline"
READY = (
    "() => { const a = document.querySelector(\"[data-testid='stApp']\");"
    " return a && a.getAttribute('data-test-script-state') === 'notRunning'; }"
)


def _image(seed: int) -> bytes:
    """A different 200x160 picture per explorer (so no decode is shared between them)."""
    yy, xx = np.mgrid[0:160, 0:200]
    a = (np.sin(xx / (4 + seed)) + np.cos(yy / (3 + seed)) + 2) * 63
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


async def _ready(page, timeout: float = 60_000) -> None:
    await page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    await page.wait_for_function(READY, timeout=timeout)
    await page.wait_for_timeout(200)


async def _errors(page) -> int:
    return await page.locator(
        "[data-testid='stException'], [data-testid='stAlertContentError']"
    ).count()


class Session:
    def __init__(self, browser, url: str, name: str, problems: list[str]):
        self.browser, self.url, self.name, self.problems = browser, url, name, problems

    async def open(self, path: str):
        self.context = await self.browser.new_context(viewport={"width": 1280, "height": 900})
        # Generous: twelve sessions opening at once on two shared cores took 30+ s to load.
        self.context.set_default_timeout(120_000)
        self.context.set_default_navigation_timeout(120_000)
        self.page = await self.context.new_page()
        self.page.on("pageerror", lambda e: self.problems.append(f"{self.name}: {e}"))
        await self.page.goto(f"{self.url}/{path}")
        await _ready(self.page)
        return self.page

    async def check(self, what: str) -> None:
        if await _errors(self.page):
            self.problems.append(f"{self.name}: an error on the page after {what}")

    async def close(self) -> None:
        await self.context.close()


async def explore(
    browser, url, i, problems, latencies, deadline, steps=STEPS, delay=0.0, late=None
):
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    late = [] if late is None else late
    await asyncio.sleep(delay)  # students do not all click in the same millisecond
    s = Session(browser, url, f"explorer {i}", problems)
    page = await s.open("?source=upload")
    await page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
        {"name": f"waves{i}.png", "mimeType": "image/png", "buffer": _image(i)}
    )
    await page.wait_for_timeout(500)
    await _ready(page)
    await s.check("the upload")
    # An image opens at its busiest window (convviz.lesson), not at position 1.
    caption = await page.get_by_text(re.compile(r"Position [\d,]+ of ")).first.inner_text()
    start = int(re.search(r"Position ([\d,]+) of", caption).group(1).replace(",", ""))
    nxt = page.locator(".st-key-conv_next button").first
    for k in range(1, steps + 1):
        if time.monotonic() > deadline:
            break
        t0 = time.monotonic()
        # A DOM click: with 4+ pages open on the loaded 2-core machine, Playwright's
        # click() hung at "attempting click action" for its whole 120 s (its actionability
        # checks wait on the page's animation frames); the warm-up's lone page clicked fine.
        await nxt.dispatch_event("click")
        # Bounded by the phase's deadline (plus a grace): a step still not shown then
        # is counted as late, and this explorer stops (its figure is "more than that").
        wait_s = max(10.0, deadline - time.monotonic() + STEP_GRACE_S)
        try:
            await page.get_by_text(f"Position {start + k:,} of ").first.wait_for(
                timeout=1000 * wait_s
            )
        except PlaywrightTimeout:
            late.append(time.monotonic() - t0)
            break
        latencies.append(time.monotonic() - t0)
        await _ready(page)
        await s.check(f"step {k}")
    return s


async def _state_after_start(page, timeout: float = 60.0) -> str:
    """The run's state as the page shows it once the rerun after Start has finished.

    Polled (bounded): the Pause button appears with the run running or queued, and the
    status line is drawn in the same rerun, so it is read once the rerun is over.
    (Reading the text 1.5 s after the click read the page before or during that rerun.)
    """
    main = page.locator("[data-testid='stMain']")
    pause = page.get_by_role("button", name="Pause", exact=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pause.count() and await page.evaluate(READY):
            text = await main.inner_text()
            return "queued" if "Queued: position" in text else "running"
        if "Finished." in await main.inner_text():
            return "finished"
        await page.wait_for_timeout(250)
    return "unknown"


async def train(browser, url, i, problems, states, delay=0.0, go=None) -> Session:
    """Open the Train page, then press Start (when every trainer of ``go`` is ready)."""
    await asyncio.sleep(delay)
    s = Session(browser, url, f"trainer {i}", problems)
    page = await s.open("train")
    box = page.get_by_role("spinbutton", name="Epochs", exact=True)
    await box.fill(str(EPOCHS))
    await box.press("Enter")
    await _ready(page)
    if go is not None:
        # All Starts within about a second, so the first runs are still training when
        # the last ones ask for a slot: the queue forms whatever the pages' load times.
        await go.wait()
    await page.get_by_role("button", name="Start", exact=True).click()
    states.append(await _state_after_start(page))
    await s.check("Start")
    return s


async def warm_up(browser, url, problems) -> None:
    """One student's visit: upload and step, then train a little; then leave."""
    latencies: list[float] = []
    s = await explore(browser, url, 99, problems, latencies, time.monotonic() + 60, steps=2)
    await s.close()
    t = await train(browser, url, 99, problems, [])
    await t.page.wait_for_timeout(5000)
    await t.close()


async def scenario(url: str, sampler: Sampler) -> dict:
    from playwright.async_api import async_playwright

    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            sampler.phase = "warmup"
            await warm_up(browser, url, problems)
            # Idle: the warm-up's session and run are freed (TTL 10 s, janitor 10 s + 5 s).
            sampler.phase = "idle"
            idle_from = sampler.now() + 20
            await asyncio.sleep(30)
            baseline = statistics.median(sampler.values("idle", since=idle_from))
            idle_threads = threads(sampler.pid)

            sampler.phase = "load"
            deadline = time.monotonic() + LOAD_DEADLINE_S
            latencies: list[float] = []
            late: list[float] = []
            states: list[str] = []
            go = asyncio.Barrier(TRAINERS)
            trainers = [
                train(browser, url, i, problems, states, delay=0.5 * i, go=go)
                for i in range(TRAINERS)
            ]
            explorers = [
                explore(browser, url, i, problems, latencies, deadline, delay=0.5 * i, late=late)
                for i in range(EXPLORERS)
            ]
            sessions = await asyncio.gather(*trainers, *explorers)
            load_peak = max(sampler.values("load"))
            for s in sessions:
                await s.close()
        finally:
            await browser.close()
    sampler.phase = "closed"
    closed_at = sampler.now()
    settle_deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < settle_deadline:
        await asyncio.sleep(2)
        recent = sampler.values("closed", since=sampler.now() - 4)
        # 20 s at least (the TTL and the janitor), then as soon as it is back.
        if sampler.now() - closed_at > 25 and recent and max(recent) < baseline + 50:
            break
    await asyncio.sleep(2)
    after = statistics.median(sampler.values("closed", since=sampler.now() - 4))
    return {
        "threads": (idle_threads, threads(sampler.pid)),
        "problems": problems,
        "baseline": baseline,
        "load_peak": load_peak,
        "load_median": statistics.median(sampler.values("load")),
        "after": after,
        "latencies": latencies,
        "late": late,
        "states": states,
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:  # no step made it before the deadline: say so, the asserts tell why
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CONVVIZ_LOAD_TEST") != "1",
    reason="on demand (CONVVIZ_LOAD_TEST=1, about 4 min). Passed 2026-12-02 (load 3-15, "
    "the 12 browsers on the server's 2 cores): RSS idle 234 MB, max 427, after closing 253 "
    "(+19; +127 to +166 MB before MALLOC_ARENA_MAX=2); explorer step p50 18 s, p90 70 s",
)
def test_eight_explorers_and_four_trainers_on_one_server():
    require_browser()
    env = {"CONVVIZ_MAX_TRAINING_RUNS": str(CAP), "CONVVIZ_ABANDON_AFTER_S": "10"}
    t0 = time.monotonic()
    with app_server(env) as (url, proc):
        sampler = Sampler(proc.pid)
        try:
            result = asyncio.run(scenario(url, sampler))
        finally:
            sampler.stop()
            sampler.write_csv(ART / "rss.csv")
            plot_series(
                sampler.rows,
                ART / "rss.png",
                f"server RSS: {EXPLORERS} explorers + {TRAINERS} trainers (cap {CAP})",
                {"idle baseline": result["baseline"], "baseline + 100 MB":
                 result["baseline"] + IDLE_MARGIN_MB} if "result" in locals() else None,
            )  # fmt: skip
    lat = result["latencies"]
    print(
        f"\nload test ({time.monotonic() - t0:.0f} s): explorer step p50 "
        f"{1000 * _quantile(lat, 0.5):.0f} ms, p90 {1000 * _quantile(lat, 0.9):.0f} ms "
        f"(n={len(lat)}; {len(result['late'])} later than the deadline); "
        f"RSS idle {result['baseline']:.0f} MB, under load median "
        f"{result['load_median']:.0f} / max {result['load_peak']:.0f} MB, after closing "
        f"{result['after']:.0f} MB; threads idle {result['threads'][0]}, after closing "
        f"{result['threads'][1]}; trainers {result['states']}"
    )
    assert not result["problems"], result["problems"][:5]
    assert len(lat) >= EXPLORERS, "the explorers hardly stepped"
    assert result["states"].count("running") <= CAP and "queued" in result["states"]
    assert result["after"] < result["baseline"] + IDLE_MARGIN_MB, (
        f"RSS {result['after']:.0f} MB after closing, idle baseline {result['baseline']:.0f}"
    )


def test_runs_are_independent_under_concurrency():
    """Three runs at once on the service: the same seed gives the same weights, bit for
    bit; another seed gives others (the browser test's runs are these, started by pages)."""
    from convviz.nn import TrainConfig, load_mnist
    from convviz.runs import RunManager, RunOptions

    manager = RunManager(max_active=3, abandon_after=math.inf, data=load_mnist())
    try:
        base = {"model": "tiny", "train_size": 512, "val_size": 200, "batch_size": 64,
                "eval_every": 4, "epochs": 2}  # fmt: skip
        opts = RunOptions(test_size=200, sample=(0, 1, 2), max_misclassified=4)
        runs = [
            manager.create(TrainConfig(**base, seed=seed), options=opts, start=True)
            for seed in (0, 0, 1)
        ]
        snaps = [r.wait(lambda s: s.finished, 120.0) for r in runs]
        kernels = [dict(s.kernels)["conv2d"] for s in snaps]
        np.testing.assert_array_equal(kernels[0], kernels[1])
        assert snaps[0].history["loss"] == snaps[1].history["loss"]
        assert not np.array_equal(kernels[0], kernels[2])
        assert snaps[0].history["loss"] != snaps[2].history["loss"]
    finally:
        manager.shutdown()
