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

A lesson map keeps its room before its frame loads (:func:`room_css`): Streamlit mounts a
component's frame 1.3-2 s after the script run ends, at height 0, and the frame then
grew by its drawing's height, so the lesson grew by 256 px at 1280x720 after the page
looked done and moved the kernel's Preset box under the pointer (a click there closed
its list again). The frame lays out to :data:`SIZES`, and the room is worked out in CSS
from the same numbers: the frame's final height, at any screen size. The style goes out
in a Markdown block (:func:`convviz.ui.common.style`), which Streamlit draws once it has
loaded its HTML code: measured here, before the run's end on an image (the run is long)
and up to ~0.6 s after it on the numbers page, the frames 1.3-2 s after it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import streamlit.components.v1 as components

from convviz.figures import PAD_FILL, PAD_HATCH
from convviz.i18n import Translator
from convviz.ui.common import style
from convviz.ui.widgets.cell_editor import font_url

__all__ = ["SIZES", "Sizes", "map_args", "room_css", "value_map"]

_DIR = Path(__file__).resolve().parent / "value_map"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The map's sizes in px: sent to the frame, which lays out to them (``index.html``),
    and used by :func:`room_css` for the room a lesson map keeps. Their one owner."""

    head: int = 22  # the row numbers' column
    top: int = 18  # the column numbers' row
    gap: int = 1  # between cells
    side: int = 6  # the frame's width less the row numbers and this is the cells' room
    min_room: int = 40  # ... at least
    min_cell: int = 14  # a cell's side: never smaller (the numbers stay legible) ...
    max_cell: int = 110  # ... nor larger
    max_boost: float = 1.6  # a screen taller than screen_height scales the cells, this at most
    title_line: int = 18  # the title's line (14 px type)
    title_gap: int = 4  # under the title
    legend_line: int = 16  # a line of the lesson's legend (12 px type)
    legend_gap: int = 4  # over the legend
    frame: int = 6  # the frame is its drawing's height and this (the drawing's margins)
    # Cells and pictures are whole pixels high, rounded down after adding this, in the
    # frame and in the CSS alike: a product that is a whole number in exact arithmetic
    # (1080/720 * 120) can come out a hair under it in either.
    eps: float = 0.001


SIZES = Sizes()
_KEY = re.compile(r"[a-z][a-z0-9_]*")  # keys the app chooses: safe in a CSS selector


def _px(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".") + "px"  # i18n: not text


def room_css(
    grid: dict,
    key: str,
    *,
    cells_height: int,
    screen_height: int,
    legend_lines: int,
    title_lines: int = 1,
    max_px: int | None = None,
) -> str:
    """A style that keeps the room :func:`value_map`'s lesson map (no colour bar) takes
    once drawn: on its block (Streamlit's ``st-key-<key>``), before its frame loads.

    The frame's height is the title's ``title_lines`` and gap, the column numbers' row, the cells
    and their gaps (or the picture), the legend's gap and ``legend_lines`` lines, and
    :attr:`Sizes.frame`. A cell's side is the room across (the column's width less the
    row numbers, ``max_px`` at most) over the grid's extent, or ``cells_height`` over
    the rows, whichever is less, in whole pixels within ``min_cell`` and ``max_cell``; a
    picture is as high as its room across allows, ``cells_height`` at most. The frame
    scales ``cells_height`` with the screen, by its height over ``screen_height``
    within 1 and ``max_boost``: here ``clamp(b, b * 100vh / screen_height, b * max_boost)``.
    The column's width is ``100cqw``: the block is made a size container.

    >>> css = room_css({"title": "K", "text": [[""] * 3] * 3, "extent": 3}, "k",
    ...                cells_height=90, screen_height=720, legend_lines=2)
    >>> css.startswith("<style>.st-key-k{container-type:inline-size}")
    True
    """
    if not _KEY.fullmatch(key):
        raise ValueError(f"`key` must be lowercase letters, digits and _: {key!r}")
    s = SIZES
    image = grid.get("image")
    rows = max(1, image["rows"] if image else len(grid["text"]))
    across = max(1, image["cols"] if image else grid["extent"])
    fixed = s.top + s.legend_gap + legend_lines * s.legend_line + s.frame
    if grid.get("title"):
        fixed += title_lines * s.title_line + s.title_gap
    # the room across: the column's whole pixels less the row numbers' column
    less = _px(s.head + s.side)
    room = f"max({_px(s.min_room)},round(down,100cqw,1px) - {less})"  # i18n: not text
    if max_px:
        room = f"min({room},{_px(max_px)})"  # i18n: not text
    # the tallest the cells may be (a picture), or a cell (cells), on this screen
    per = cells_height if image else cells_height / rows
    vh = per * 100 / screen_height
    high = f"clamp({_px(per)},{vh:.9f}vh,{_px(per * s.max_boost)})"  # i18n: not text
    if image:
        wide = f"{room} * {rows / across:.9f}"  # i18n: not text
        body = f"max(1px,round(down,min({wide},{high}) + {_px(s.eps)},1px))"  # i18n: not text
    else:
        side = f"round(down,min({room} / {across},{high}) + {_px(s.eps)},1px)"  # i18n: not text
        side = f"clamp({_px(s.min_cell)},{side},{_px(s.max_cell)})"  # i18n: not text
        body = f"{rows} * ({side} + {_px(s.gap)})"  # i18n: not text
    # On the block's child: Streamlit's loading skeleton, then the frame's wrapper. The
    # frame is a block (inline, it sat on a text line: 5.6 px more under it, measured).
    block = f".st-key-{key}"  # i18n: not text
    return (
        f"<style>{block}{{container-type:inline-size}}"  # i18n: not text
        f"{block} > *{{min-height:calc({_px(fixed)} + {body})}}"  # i18n: not text
        f"{block} iframe{{display:block}}</style>"  # i18n: not text
    )


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
    legend_lines: int | None = None,
    title_lines: int = 1,
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
    is written: tests and the benchmark wait for it to change. ``legend_lines``: the
    lines the legend keeps room for (a lesson map, with ``cells_height`` and
    ``screen_height`` and no ``bar``): the map then keeps its drawn height from the
    first paint on (:func:`room_css`), so nothing below it moves when its frame loads;
    ``title_lines``, the same for the title.
    """
    args = map_args(
        grid, t=t, max_px=max_px, cells_height=cells_height, bar=bar, click=click,
        screen_height=screen_height, legend_lines=legend_lines, title_lines=title_lines,
    )  # fmt: skip
    if legend_lines is not None:
        if not (cells_height and screen_height) or bar:
            raise ValueError("`legend_lines` needs `cells_height` and `screen_height`, no `bar`")
        lines = {"legend_lines": legend_lines, "title_lines": title_lines}
        room = room_css(grid, key, cells_height=cells_height, screen_height=screen_height,
                        max_px=max_px, **lines)  # fmt: skip
        style(room)  # at once: the frame loads seconds later
    # Declared on every call: cheap, and right for each Streamlit runtime (tests make several).
    component = components.declare_component("value_map", path=str(_DIR))
    component(**args, key=key, default=None)


def map_args(
    grid: dict,
    *,
    t: Translator,
    max_px: int | None = None,
    cells_height: int | None = None,
    bar: bool = True,
    click: bool = False,
    screen_height: int | None = None,
    legend_lines: int | None = None,
    title_lines: int = 1,
) -> dict:
    """What :func:`value_map` sends its frame (tests host the frame with it)."""
    image = grid.get("image") or {}
    drawn = json.dumps(
        [grid["text"], grid["fill"], grid["title"], grid["legend"], grid.get("shapes"),
         grid.get("hatch"), image.get("src", "")]
    )  # fmt: skip
    return {
        **grid,
        "max_px": max_px,
        "cells_height": cells_height,
        "show_bar": bar,
        "screen_height": screen_height,
        "legend_lines": legend_lines,
        "title_lines": title_lines,
        "sizes": dataclasses.asdict(SIZES),
        "click": click,
        "pad_style": {"fill": PAD_FILL, "hatch": PAD_HATCH},
        "lang": t.lang,
        "font": font_url(),
        "version": hashlib.blake2s(drawn.encode(), digest_size=6).hexdigest(),
    }
