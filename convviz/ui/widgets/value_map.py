"""``value_map``: a small map drawn as its cells, each with its number, or a big one as
one picture; the sliding window over either, and a click on a cell reported.

Why not a plotly heatmap: measured here in headless Chromium (``benchmarks/bench_ui.py``),
a kernel edit on the numbers page repainted its 3x3 plotly map in 124-143 ms against
86-103 ms with the map as an image and 100-110 ms with this one, in the same runs;
Streamlit's chart element redraws its whole figure on every rerun (~40 ms of the
browser's time on 2 cores), and every chart on the page costs each rerun ~2.5 ms
more even when it is not redrawn (measured: 4 more charts, +11 ms). This one
is a grid of ``<div>`` cells in a Streamlit v1 custom component with no build step
(like :mod:`convviz.ui.widgets.cell_editor`): a rerun sends it new colours and numbers
and it rewrites them in place, the frame mounted once (a stable ``key``).

Python owns every colour, number and word (:func:`convviz.figures.value_grid`); the
component writes them with ``textContent`` and CSS colours, never as markup. Each
cell's number is on the cell, its row, column and value in its tooltip and its
``aria-label``; a colour bar and the legend's sentence say what the colours mean.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import streamlit.components.v1 as components

from convviz.figures import PAD_FILL, PAD_HATCH
from convviz.i18n import Translator
from convviz.ui.widgets.cell_editor import font_url

__all__ = ["value_map"]

_DIR = Path(__file__).resolve().parent / "value_map"


def value_map(
    grid: dict,
    *,
    key: str,
    t: Translator,
    max_px: int | None = None,
    cells_height: int | None = None,
    bar: bool = True,
    click: bool = False,
    screen_height: int | None = None,
) -> None:
    """Draw :func:`convviz.figures.value_grid`'s ``grid`` (mounted once per ``key``).

    ``max_px``: the width of ``grid["extent"]`` cells (a page drawing two maps to one
    scale); else the column's width. ``cells_height``: the most pixels the cells may
    take down the page (the lesson's row of small maps keeps to one screen), on a screen
    ``screen_height`` px tall: a taller one scales it up, at most 1.6x; ``bar``:
    draw the colour bar (the legend's sentence is always there). ``click``: a click on a
    cell sets the component's value, ``{"row", "col", "seq"}`` in
    ``st.session_state[key]`` (``seq`` numbers the clicks), which reruns the fragment
    the map is in. ``version`` (a digest of what is drawn) is set on the grid once it
    is written: tests and the benchmark wait for it to change.
    """
    image = grid.get("image") or {}
    drawn = json.dumps(
        [grid["text"], grid["fill"], grid["title"], grid["legend"], grid.get("shapes"),
         grid.get("hatch"), image.get("src", "")]
    )  # fmt: skip
    args = {
        **grid,
        "max_px": max_px,
        "cells_height": cells_height,
        "show_bar": bar,
        "screen_height": screen_height,
        "click": click,
        "pad_style": {"fill": PAD_FILL, "hatch": PAD_HATCH},
        "lang": t.lang,
        "font": font_url(),
        "version": hashlib.blake2s(drawn.encode(), digest_size=6).hexdigest(),
    }
    # Declared on every call: cheap, and right for each Streamlit runtime (tests make several).
    component = components.declare_component("value_map", path=str(_DIR))
    component(**args, key=key, default=None)
