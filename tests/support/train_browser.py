"""The Train page in Chromium: start a run, read its live panel (tests and bench_train_ui)."""

from __future__ import annotations

import io
import re
import time

import numpy as np
from PIL import Image

from tests.support.browser import ROOT, streamlit_server, wait_ready

SHOTS = ROOT / "artifacts" / "screenshots"
APP = ROOT / "tests" / "apps" / "train_app.py"


def train_server(timeout: float = 60.0):
    """``streamlit run`` the training page on its own; yield its URL; always stop it."""
    return streamlit_server(timeout, script=APP)


def start_training(page, epochs: int, model: str | None = None, timeout: float = 60.0) -> None:
    """On a loaded Train page: pick ``model`` (default: the page's), set ``epochs``, press Start."""
    if model is not None:
        page.locator("[data-testid='stSelectbox']").filter(has_text="Architecture").click()
        page.get_by_role("option", name=model, exact=True).click()
        wait_ready(page)
    box = page.get_by_role("spinbutton", name="Epochs", exact=True)
    box.fill(str(epochs))
    box.press("Enter")
    wait_ready(page)
    page.get_by_role("button", name="Start", exact=True).click()
    wait_for_panel(page, timeout)


def panel_frame(page):
    """The frame of the fast live panel (progress, metrics, curves, filters), or None.

    The page has several live_panel frames (predictions, activations, validation
    too): this is the one with the progress bar.
    """
    for f in page.frames:
        try:
            if "live_panel" in f.url and f.evaluate(
                "() => !!document.querySelector(\"[data-testid='progress']\")"
            ):
                return f
        except Exception:  # a frame replaced (detached) while we looked: the next poll sees
            continue
    return None


def progress_text(page) -> str:
    frame = panel_frame(page)
    if frame is None:
        return ""
    return frame.evaluate(
        "() => { const el = document.querySelector(\"[data-testid='progress']\");"
        " return el ? el.textContent.trim() : ''; }"
    )


def wait_for_panel(page, timeout: float = 30.0) -> None:
    """Until the live panel shows a progress text (the run's first refresh)."""
    deadline = time.monotonic() + timeout
    while "step" not in progress_text(page):
        assert time.monotonic() < deadline, "the live panel did not appear"
        page.wait_for_timeout(100)


def progress_step(page) -> int:
    text = progress_text(page)
    m = re.search(r"step ([\d,]+)/", text)
    assert m, f"no step in the progress text {text!r}"
    return int(m.group(1).replace(",", ""))


def curves_frame(page):
    """The frame that holds the curves: the live panel's."""
    return panel_frame(page)


def curve_points(page) -> int:
    """Points of the train-loss trace in the curves (-1 before they are drawn)."""
    frame = curves_frame(page)
    if frame is None:
        return -1
    return frame.evaluate(
        "() => { const g = document.querySelector('.chart');"
        " return g && g.data && g.data.length ? g.data[0].x.length : -1; }"
    )


def step_axis(page) -> list[float]:
    return curves_frame(page).evaluate(
        "() => document.querySelector('.chart')._fullLayout.xaxis.range"
    )


def wait_for_points(page, n: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while (points := curve_points(page)) < n:
        assert time.monotonic() < deadline, f"the curves did not reach {n} points"
        page.wait_for_timeout(200)
    return points


def filters_png(page) -> np.ndarray:
    """The first-layer filters (a picture in the live panel while training) as an RGB array."""
    img = panel_frame(page).locator("[data-name='filters'] img")
    img.wait_for(state="visible", timeout=20_000)
    # A clip of the page, not an element shot: the picture is redrawn every second.
    png = page.screenshot(clip=img.bounding_box())
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
