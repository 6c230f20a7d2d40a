"""The One-training-step page in a real headless Chromium: ▶ through the five steps.

In English and Portuguese, at 1280x720 and 1920x1080: each stage is reached with the
page's ▶ button, draws without an exception, shows its key numbers (the walkthrough's,
written the locale's way) inside the window's width, and is screenshotted to
``artifacts/screenshots/step/step_<lang>_<size>_<n>_<stage>.png``. Skips without
Playwright or Chromium unless ``CONVVIZ_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import pytest

from convviz.i18n import translator
from convviz.nn.walkthrough import StepConfig, walkthrough
from convviz.ui.pages.step import STAGES
from convviz.walkthrough_figures import sig
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

SHOTS = ROOT / "artifacts" / "screenshots" / "step"
SIZES = ((1280, 720), (1920, 1080))
METRIC = "[data-testid='stMetric']"


@pytest.fixture(scope="module")
def server():
    require_browser()
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser(server):
    with chromium_browser() as b:
        yield b


def metric_value(page, label: str) -> str:
    m = page.locator(METRIC).filter(has_text=label).first
    m.wait_for(timeout=30_000)
    return m.locator("[data-testid='stMetricValue']").inner_text().strip()


def expected(t, w) -> dict[str, dict[str, str]]:
    """Stage -> {metric label: value} the page must show (the page's defaults)."""
    ch, up = w.weight, w.update
    _, _, u, v = ch.index
    return {
        "init": {},
        "forward": {},
        "loss": {t("step.loss.mean"): sig(t, w.loss, 6)},
        "backprop": {
            t("step.back.total"): sig(t, ch.total, 8),
            t("step.back.backprop"): sig(t, ch.gradient, 8),
            t("step.back.fd"): sig(t, ch.finite_difference, 8),
        },
        "update": {
            t("step.update.w_before", u=u, v=v): sig(t, up.before, 8),
            t("step.update.w_after", u=u, v=v): sig(t, up.after, 8),
            t("step.update.next_loss"): sig(t, w.next_loss, 6),
        },
    }


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("lang", ["en", "pt"])
def test_step_through_the_five_steps(server, browser, lang, width, height):
    SHOTS.mkdir(parents=True, exist_ok=True)
    t = translator(lang)
    w = walkthrough(StepConfig(lr=0.1))  # the page's defaults: hand-sized net, SGD
    want = expected(t, w)
    size = f"{width}x{height}"
    with chromium_page(width, height, browser) as page:
        page.goto(f"{server}/step" + ("?lang=pt" if lang == "pt" else ""))
        wait_ready(page, 90_000)
        page.get_by_text(t("step.title")).first.wait_for(timeout=90_000)
        for n, stage in enumerate(STAGES, start=1):
            if n > 1:
                page.locator(".st-key-step_next button").first.click()
                wait_ready(page, 60_000)
            header = t(f"step.stage.{stage}", n=n)
            page.get_by_role("heading", name=header).first.wait_for(timeout=90_000)
            wait_painted(page, 120_000)
            assert_no_exception(page)
            for label, value in want[stage].items():
                assert metric_value(page, label) == value, (stage, label)
                box = page.locator(METRIC).filter(has_text=label).first.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            if stage == "backprop":  # the written-out sum ends with the same total
                code = page.locator("[data-testid='stCode']").first.inner_text()
                assert t("step.back.sum_total", total=sig(t, w.weight.total, 8)) in code
            if stage == "loss":  # the table is on screen (a canvas grid: its box, not its text)
                grid = page.locator("[data-testid='stDataFrame']").first.bounding_box()
                assert grid is not None and grid["width"] > 200
            scroll = page.evaluate("() => document.documentElement.scrollWidth")
            assert scroll <= width, f"{stage}: the page is wider than the window ({scroll})"
            # the stage's own view at the top of the window, then the screenshot
            page.get_by_role("heading", name=header).first.evaluate(
                "e => e.scrollIntoView({block: 'start'})"
            )
            page.wait_for_timeout(300)
            page.screenshot(path=str(SHOTS / f"step_{lang}_{size}_{n}_{stage}.png"))
            extra = {
                "forward": t("conv.step.title"),
                "backprop": t("step.back.weight", f=0, c=0, u=1, v=1),
            }
            if stage in extra:  # the cell stepper / the chosen weight's written-out gradient
                page.get_by_role("heading", name=extra[stage]).first.evaluate(
                    "e => e.scrollIntoView({block: 'start'})"
                )
                page.wait_for_timeout(500)
                page.screenshot(path=str(SHOTS / f"step_{lang}_{size}_{n}b_{stage}.png"))
        # ◀ goes back one step
        page.locator(".st-key-step_prev button").first.click()
        wait_ready(page, 60_000)
        page.get_by_role("heading", name=t("step.stage.backprop", n=4)).first.wait_for()
