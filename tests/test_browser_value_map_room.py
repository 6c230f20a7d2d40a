"""The room a lesson's value map keeps before its frame loads (``value_map.room_css``)
against the height the frame then takes, in Chromium, with no Streamlit.

A host page plays Streamlit's part: a block with the map's ``st-key-<key>`` class in a
column of a given width, the room's style, and the component's ``index.html`` in an
(inline) iframe in a wrapper there, at height 0 (as Streamlit mounts it), its height then
set from ``streamlit:setFrameHeight``. The block's height before the frame draws must be the
frame's height after, to the pixel: on screens 720 to 1200 px tall (the cells scale with
the screen), in narrow columns (the cells' size then set by the width), for cells held
at their smallest size, for pictures, and with and without a title.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit

from convviz.figures import image_grid, value_grid
from convviz.i18n import translator
from convviz.ui.widgets import value_map
from convviz.ui.widgets.value_map import SIZES, map_args, room_css
from tests.support.browser import chromium_browser, require_browser, serve_folder

pytestmark = pytest.mark.browser

EN, PT = translator("en"), translator("pt")
FONT = "SourceSans.woff2"  # i18n: not text
HOST = """<!doctype html><html><body style="margin:0">
<div id="col"><div id="block" class="st-key-m"><div><iframe id="f" src="index.html"
  style="width:100%;height:0;border:0" scrolling="no"></iframe></div></div></div>
<style id="room"></style>
<script>
window.ready = false; window.heights = [];
const f = document.getElementById("f");
window.addEventListener("message", e => { const m = e.data;
  if (m.type === "streamlit:componentReady") window.ready = true;
  if (m.type === "streamlit:setFrameHeight") {
    window.heights.push(m.height); f.style.height = m.height + "px"; } });
window.send = args => f.contentWindow.postMessage({type: "streamlit:render", args: args}, "*");
</script></body></html>"""  # i18n: not text


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The component's page, Streamlit's font and the host page, on a loopback port."""
    require_browser()
    root = tmp_path_factory.mktemp("value_map_host")
    page = Path(value_map.__file__).parent / "value_map" / "index.html"
    shutil.copyfile(page, root / "index.html")
    media = Path(streamlit.__file__).parent / "static" / "static" / "media"
    fonts = sorted(media.glob("SourceSansVF-Upright*.woff2"))
    if fonts:
        shutil.copyfile(fonts[0], root / FONT)
    (root / "host.html").write_text(HOST)

    with serve_folder(root) as base, chromium_browser() as browser:
        yield browser, f"{base}/host.html", bool(fonts)


def kernel(n: int, t=EN, title: bool = True) -> dict:
    a = np.arange(n * n, dtype=float).reshape(n, n) - n  # signed: a red-blue legend
    return value_grid(a, title=t("conv.step.kernel") if title else "", t=t)


def picture(h: int, w: int, t=EN) -> dict:
    a = np.linspace(0, 1, h * w).reshape(h, w)
    return image_grid(a, title=t("conv.step.overview"), colorbar=False, t=t)


CASES = {
    # name: (viewport, column width px, grid, cells_height, legend lines, title lines)
    "3x3 at 1280x720": ((1280, 720), 250, lambda: kernel(3), 95, 3, 1),
    "3x3 at 1920x1080": ((1920, 1080), 380, lambda: kernel(3), 95, 3, 1),
    "3x3 at 1280x900": ((1280, 900), 250, lambda: kernel(3), 95, 3, 1),
    "3x3 on a tall screen (1.6x at most)": ((1280, 1400), 300, lambda: kernel(3), 95, 3, 1),
    "3x3 in Portuguese, a fractional column": ((1280, 720), 251.6, lambda: kernel(3, PT), 95, 3, 1),
    "5x5 in a narrow column (width-bound)": ((1280, 720), 150, lambda: kernel(5), 185, 5, 1),
    "5x5 narrow at 1920x1080": ((1920, 1080), 187.6, lambda: kernel(5), 185, 5, 1),
    "13x13 at the smallest cells": ((1280, 720), 260, lambda: kernel(13), 95, 3, 1),
    "3x3, no title": ((1280, 720), 250, lambda: kernel(3, title=False), 130, 3, 1),
    "a 514x514 picture": ((1280, 720), 290, lambda: picture(514, 514), 120, 2, 1),
    "a 514x514 picture at 1920x1080": ((1920, 1080), 440, lambda: picture(514, 514), 120, 2, 1),
    "a wide picture (width-bound)": ((1280, 720), 200, lambda: picture(100, 300), 120, 3, 1),
    "a narrow picture, 2 title lines": ((1280, 720), 120, lambda: picture(514, 514), 120, 3, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_room_kept_is_the_height_drawn(host, case: str) -> None:
    browser, url, has_font = host
    (w, h), column, make, cells_height, lines, title_lines = CASES[case]
    grid = make()
    t = PT if "Portuguese" in case else EN
    context = browser.new_context(viewport={"width": w, "height": h})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.ready")
        css = room_css(grid, "m", cells_height=cells_height, screen_height=720,
                       legend_lines=lines, title_lines=title_lines)  # fmt: skip
        page.evaluate(
            """([css, width]) => {
              document.getElementById('room').textContent = css;
              document.getElementById('col').style.width = width + 'px'; }""",
            [css.removeprefix("<style>").removesuffix("</style>"), column],
        )
        kept = page.evaluate("document.getElementById('block').getBoundingClientRect().height")
        args = map_args(grid, t=t, cells_height=cells_height, bar=False, screen_height=720,
                        legend_lines=lines, title_lines=title_lines)  # fmt: skip
        args["font"] = FONT if has_font else None
        page.evaluate("a => send(a)", json.loads(json.dumps(args)))
        page.wait_for_function("window.heights.length > 0")
        page.wait_for_timeout(600)  # the font loaded, laid out again
        drawn = page.evaluate("window.heights")
        text = page.frames[1].evaluate(
            "() => ['title', 'legend'].map(id => document.getElementById(id)"
            ".getBoundingClientRect().height)"
        )
        after = page.evaluate("document.getElementById('block').getBoundingClientRect().height")
    finally:
        context.close()
    # the words fit the lines kept for them (else the case is no test of the room)
    title = title_lines * SIZES.title_line if grid["title"] else 0
    assert text == [title, lines * SIZES.legend_line], text
    # one height, reported once: the frame's height is the room, and the block keeps it
    assert drawn == [round(kept)], (kept, drawn)
    assert after == kept
