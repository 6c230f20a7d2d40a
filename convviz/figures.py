"""Plotly figure builders for the app: pure functions, no streamlit.

Two ways to draw a 2-D map, picked by size (see STYLE.md latency notes):

- :func:`heatmap_figure` - a ``go.Heatmap`` with a hover value on every cell
  (and the numbers written in the cells when the map is small). Right for
  kernels, patches, zoomed neighbourhoods and small outputs.
- :func:`image_figure` - the map colourised and encoded by :mod:`convviz.render`
  (its one cached PNG encoder) and shipped as one PNG (``go.Image``). A 512x512
  heatmap ships megabytes of JSON per rerun; the PNG is ~100 KB, so big maps
  repaint several times faster.

:func:`map_figure` chooses between them. Colour scales are consistent across
the app: :data:`DIVERGING` (blue - white - red, symmetric around 0) for signed
maps and :data:`GREYS` for images and non-negative maps.

Words: every builder that writes some (axis titles, hover text, legends)
takes ``t``, a :class:`~convviz.i18n.Translator` (None: English), reads them
from the ``figures`` catalogue (``fig.*``), sets ``layout.separators`` for the
locale (plotly then writes hover numbers as ``0,5`` in pt-BR) and writes the
numbers in cells with :func:`num_text`. Titles passed in are shown as given.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from convviz.errors import CodedError
from convviz.i18n import Translator, translator

# Colour scales, scaling and the PNG encoder live in convviz.render; the names
# the pages import from here are re-exported.
from convviz.render import (
    DIVERGING,
    GREYS,
    ColourScale,
    colorbar_strip,
    colorize,
    colour_scale,
    lut,
    png_bytes,
    png_data_url,
    png_from_map,
    value_range,
)
from convviz.shapes import check_integer

__all__ = [
    "DIVERGING",
    "GREYS",
    "HEATMAP_MAX_CELLS",
    "KERNEL_TEXT_MAX_CELLS",
    "PAD_FILL",
    "PAD_NAME",
    "PLOTLY_WORDS",
    "TEXT_MAX_CELLS",
    "ColourScale",
    "activation_curves_figure",
    "add_shapes",
    "add_window",
    "colorbar_strip",
    "colorize",
    "colour_legend",
    "colour_scale",
    "crosshair_shapes",
    "feature_grid_figure",
    "heatmap_figure",
    "histogram_figure",
    "image_figure",
    "image_grid",
    "kernel_figure",
    "map_figure",
    "not_yet_shapes",
    "num_text",
    "pad_shapes",
    "plot_config",
    "png_bytes",
    "value_grid",
    "value_range",
    "window_shape",
]

HEATMAP_MAX_CELLS = 64 * 64  # above this a map is sent as a PNG image instead
TEXT_MAX_CELLS = 16 * 16  # at or below this the numbers are written in the cells

_WINDOW_COLOUR = "#ff7f0e"  # orange: the sliding window everywhere in the app
# Padding: hatched yellow, on every page. No data colour is yellow (the diverging
# scale is blue-white-red, the sequential one black-white) and the hatch tells it
# apart even in a greyscale print; the fill is translucent so a zero-padded cell's
# number stays readable under it.
PAD_FILL = "rgba(240, 200, 0, 0.7)"
PAD_HATCH = "rgba(110, 85, 0, 0.9)"
PAD_NAME = "padding"  # layout shapes with this name are padding (the legend says so)
KERNEL_TEXT_MAX_CELLS = 49  # kernels up to 7x7 carry their numbers; larger ones are a heat view
LEGEND_WRAP = 56  # characters per legend line (plotly annotations do not wrap)
_LEGEND_LINE_PX = 15


#: plotly.js's own words (its modebar's tooltips and notices) -> the catalogue's key for
#: them. plotly's ``config.locales`` swaps them for the reader's language.
PLOTLY_WORDS: dict[str, tuple[str, ...]] = {
    "plotly.download_png": ("Download plot as a PNG", "Download plot as a png"),
    "plotly.download": ("Download plot",),
    "plotly.zoom": ("Zoom",),
    "plotly.pan": ("Pan",),
    "plotly.zoom_in": ("Zoom in",),
    "plotly.zoom_out": ("Zoom out",),
    "plotly.autoscale": ("Autoscale",),
    "plotly.reset_axes": ("Reset axes",),
    "plotly.reset": ("Reset", "Reset view", "Reset views"),
    "plotly.spikes": ("Toggle Spike Lines",),
    "plotly.hover_closest": ("Show closest data on hover", "Toggle show closest data on hover"),
    "plotly.hover_compare": ("Compare data on hover",),
    "plotly.box_select": ("Box Select",),
    "plotly.lasso_select": ("Lasso Select",),
    "plotly.zoom_back": ("Double-click to zoom back out",),
    "plotly.snapshot_error": ("Sorry, there was a problem downloading your image!",),
    "plotly.snapshot_wait": ("Taking snapshot - this may take a few seconds",),
    "plotly.snapshot_done": ("Snapshot succeeded",),
}
_PLOTLY_LOCALES = {"pt": "pt-BR"}  # convviz's language -> plotly.js's locale name


def plot_config(filename: str = "convviz", t: Translator | None = None) -> dict:
    """``st.plotly_chart(config=...)``: the toolbar's camera button saves a PNG, and its
    tooltips are in ``t``'s language (plotly's ``locales``, from the catalogue).

    >>> plot_config("kernel")["toImageButtonOptions"]["filename"]
    'kernel'
    >>> pt = plot_config("kernel", translator("pt"))
    >>> pt["locale"], pt["locales"]["pt-BR"]["dictionary"]["Zoom in"]
    ('pt-BR', 'Ampliar')
    """
    config = {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    }
    code = _PLOTLY_LOCALES.get(t.lang) if t is not None else None
    if code:
        words = {src: t(key) for key, sources in PLOTLY_WORDS.items() for src in sources}
        config["locale"] = code
        config["locales"] = {code: {"dictionary": words, "format": {}}}
    return config


def _tr(t: Translator | None) -> Translator:
    return translator("en") if t is None else t


def num_text(v: float, decimals: int, t: Translator | None = None) -> str:
    """``v`` with up to ``decimals`` decimals, as ``t.num(v, decimals, fixed=False)`` writes it.

    The same text as :meth:`Translator.num` (rounding half to even on the
    decimal value, grouping, no trailing zeros) without Babel's pattern
    machinery: about 4 µs a number instead of 16 (measured here), for figures
    that label hundreds of cells on every rerun. ``-0`` is written ``0``.

    >>> num_text(1234.5, 2), num_text(1234.5, 2, translator("pt")), num_text(-0.0004, 3)
    ('1,234.5', '1.234,5', '0')
    """
    t = _tr(t)
    v = float(v)
    if not math.isfinite(v):
        return t.num(v)
    d = Decimal(repr(v)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    text = f"{d:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        return "0"
    dec, group = t.separators
    return text.translate({ord(","): group, ord("."): dec})


def _sig_text(v: float, digits: int, t: Translator) -> str:
    """``v`` to ``digits`` significant digits (whole numbers in full), the locale's way."""
    if v == 0 or not math.isfinite(v):
        return num_text(v, 0, t)
    decimals = min(12, max(0, digits - 1 - math.floor(math.log10(abs(v)))))
    return num_text(v, decimals, t)


def _cell_hover(t: Translator) -> str:
    return t("fig.hover.cell", row="%{y}", col="%{x}")


def _num(v: float, t: Translator) -> str:
    return _sig_text(v, 3, t)


def colour_legend(
    scale: ColourScale,
    t: Translator | None = None,
    *,
    padding: bool = False,
    each: bool = False,
) -> str:
    """What the colours of a map mean, in words (the ``figures`` catalogue, ``fig.legend.*``).

    Says which colour is positive, negative and zero (or lowest and highest), the
    range in the locale's numbers and the rule that chose it (:class:`ColourScale`'s
    ``rule``), the share of cells beyond the range, and the padding's look when
    ``padding``. ``each``: a grid of maps, each on its own range (no numbers).

    >>> from convviz.render import colour_scale
    >>> colour_legend(colour_scale(np.array([[-1.0, 3.0]])))
    'Red: positive, blue: negative, white: zero; range ±3 (the largest |value|).'
    >>> colour_legend(colour_scale(np.array([[0.0, 0.5]])), translator("pt"))
    'Preto: 0, branco: 0,5 (menor e maior valor).'
    """
    t = _tr(t)
    parts = []
    diverging = scale.colorscale == DIVERGING
    greys = scale.colorscale == GREYS
    if each:
        each_key = "fig.legend.each_signed" if diverging else "fig.legend.each_unsigned"
        parts.append(t(each_key))
    elif diverging and math.isclose(-scale.vmin, scale.vmax):
        rule = scale.rule if scale.rule in ("p99_abs", "max_abs") else "given"
        parts.append(t(f"fig.legend.signed.{rule}", m=_num(scale.vmax, t)))
    elif diverging:
        mid = (scale.vmin + scale.vmax) / 2
        lo, hi = _num(scale.vmin, t), _num(scale.vmax, t)
        parts.append(t("fig.legend.diverging_range", lo=lo, mid=_num(mid, t), hi=hi))
    else:
        rule = scale.rule if scale.rule in ("minmax", "p1_p99") else "given"
        key = f"fig.legend.unsigned.{rule}" if greys else "fig.legend.scale"
        parts.append(t(key, lo=_num(scale.vmin, t), hi=_num(scale.vmax, t)))
    if scale.clipped > 0 and not each:
        digits = 1 if scale.clipped >= 0.001 else 3  # one cell in a million is not "0.0%"
        parts.append(t("fig.legend.clipped", share=t.pct(scale.clipped, digits)))
    if padding:
        parts.append(t("fig.legend.padding"))
    return " ".join(parts)


# The x axis's tick labels under a plot: measured in Chromium under Streamlit's plotly
# theme, their text spans 14-30 px below the plot's bottom edge.
_TICKS_PX = 28


def _legend_room(lines: int) -> int:
    return _LEGEND_LINE_PX * lines + 6 + _TICKS_PX


def _legend_layout(text: str, base: dict, wrap: int = LEGEND_WRAP) -> dict:
    """An annotation under the plot with ``text`` wrapped, and the room for it."""
    lines = textwrap.wrap(text, wrap) or [""]
    room = _legend_room(len(lines))
    margin = {**base["margin"], "b": base["margin"]["b"] + room}
    note = {
        "text": "<br>".join(lines),
        "xref": "paper",
        "yref": "paper",
        "x": 0,
        "y": 0,
        "xanchor": "left",
        "yanchor": "top",
        "yshift": -4 - _TICKS_PX,  # below the x axis's tick labels, not over them
        "align": "left",
        "showarrow": False,
        "font": {"size": 11, "color": "#444"},
    }
    height = base.get("height")
    return {
        "margin": margin,
        "annotations": [note],
        "height": height + room if height else None,
        "meta": {"legend": text, "legend_room": room},  # the words, for tests and pages
    }


def _has_padding(shapes: Sequence[dict]) -> bool:
    return any(isinstance(s, dict) and s.get("name") == PAD_NAME for s in shapes)


def _axes(h: int, w: int, r0: int = 0, c0: int = 0, ticks: bool = False) -> dict:
    extra = {"dtick": 1} if ticks else {}  # whole rows/cols only
    common = {"constrain": "domain", "showgrid": False, "zeroline": False, **extra}
    return {
        "xaxis": {"range": [c0 - 0.5, c0 + w - 0.5], **common},
        # row 0 at the top, like an image; square pixels
        "yaxis": {"range": [r0 + h - 0.5, r0 - 0.5], "scaleanchor": "x", **common},
    }


def _base(title: str, height: int | None, t: Translator) -> dict:
    return {
        "separators": t.separators,
        "title": {"text": title, "font": {"size": 14}} if title else None,
        "margin": {"l": 10, "r": 10, "t": 36 if title else 10, "b": 10},
        "height": height,
        "plot_bgcolor": "rgba(0,0,0,0)",
    }


def _layout(fig: go.Figure, title: str, height: int | None, t: Translator) -> go.Figure:
    fig.update_layout(_base(title, height, t))
    return fig


def _colorbar_trace(vmin: float, vmax: float, colorscale: str | tuple) -> go.Scatter:
    # go.Image has no colour bar: an invisible marker carries one.
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        marker={
            "color": [vmin],
            "cmin": vmin,
            "cmax": vmax,
            "colorscale": colorscale,
            "showscale": True,
            "colorbar": {"thickness": 12, "len": 0.9},
        },
    )


_INK = "#31333f"  # Streamlit's text colour: the dark ink of value maps


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG 2's relative luminance of sRGB colours (``(..., 3)``, 0-255)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return linear @ [0.2126, 0.7152, 0.0722]


_INK_LUM = float(_luminance(np.array([int(_INK[i : i + 2], 16) for i in (1, 3, 5)])))


def _hex(rgb: Sequence[int]) -> str:
    r, g, b = rgb
    return f"#{r:02x}{g:02x}{b:02x}"


_NOT_YET = "#e1e1e1"  # a value map's cells not computed yet: the grey of not_yet_shapes' veils


def _colour_bar(cs: ColourScale, t: Translator) -> dict:
    """A value map's colour bar: 9 stops of the scale (its ends included) and the ends' numbers."""
    stops = lut(cs.colorscale)[np.linspace(0, 255, 9).round().astype(int)]
    return {
        "bar": [_hex(c) for c in stops.tolist()],
        "bar_ends": [_num(cs.vmin, t), _num(cs.vmax, t)],
    }


def _overlay(shapes: Sequence[dict]) -> list[dict]:
    """Layout shapes (:func:`window_shape`, :func:`not_yet_shapes`, :func:`crosshair_shapes`)
    as a value map draws them: rectangles and lines in cell coordinates (a cell's centre
    is its row and column), or across the whole map (``xref``/``yref`` "paper")."""
    out = []
    for s in shapes:
        if s.get("type") not in ("rect", "line"):
            continue
        line = s.get("line") or {}
        out.append(
            {
                "type": s["type"],
                "x0": float(s["x0"]), "x1": float(s["x1"]),
                "y0": float(s["y0"]), "y1": float(s["y1"]),
                "xref": s.get("xref", "x"), "yref": s.get("yref", "y"),
                "colour": line.get("color") or "rgba(0,0,0,0)",
                "width": float(line.get("width") or 0),
                "dash": line.get("dash") or "solid",
                "fill": s.get("fillcolor") or "rgba(0,0,0,0)",
            }
        )  # fmt: skip
    return out


def value_grid(
    a: np.ndarray,
    *,
    title: str = "",
    colour: ColourScale | None = None,
    digits: int = 4,
    extent: tuple[int, int] | None = None,
    hover_name: str | None = None,
    shapes: Sequence[dict] = (),
    hatch: np.ndarray | None = None,
    t: Translator | None = None,
) -> dict:
    """A small map as its cells: what :mod:`convviz.ui.widgets.value_map` draws.

    The light way to show a map of up to :data:`TEXT_MAX_CELLS` cells with its numbers
    (the numbers page's input and feature map): each cell's colour (``fill``, on the
    scale of ``colour``, else :func:`colour_scale`'s default rules), its number to
    ``digits`` significant digits the locale's way (``text``), a legible ink on it
    (``ink``), its hover line (``hover``, the ``figures`` catalogue's words), the
    colour bar's gradient and ends, and :func:`colour_legend`'s sentence. All text
    is plain text; the component writes it with ``textContent``. ``extent``: the
    larger map the page draws beside this one, so both share one scale (cells per
    side, ``max(extent)``). ``z``: the values, NaN as None (JSON has no NaN); a NaN
    cell is empty and grey (not computed yet, as :func:`not_yet_shapes`' veils).
    ``shapes``: the window and markers drawn over the cells (:func:`_overlay`);
    ``hatch``: a ``(H, W)`` mask of padding cells, hatched yellow as :func:`pad_shapes`
    draws them, and the legend says so.

    >>> g = value_grid(np.array([[1.0, -2.0]]))
    >>> g["text"], g["fill"][0][1], g["ink"][0]
    ([['1', '-2']], '#053061', ['#31333f', '#ffffff'])
    >>> value_grid(np.array([[0.5]]), t=translator("pt"))["hover"]
    [['linha 0, coluna 0: valor 0,5']]
    """
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise CodedError("err.must_be_2d", name="a", shape=str(x.shape))
    if x.size > TEXT_MAX_CELLS:
        raise CodedError("err.too_many_cells", cells=x.size, limit=TEXT_MAX_CELLS)
    pad = None if hatch is None else np.asarray(hatch, bool)
    if pad is not None and pad.shape != x.shape:
        raise CodedError("err.shape", name="hatch", expected=str(x.shape), shape=str(pad.shape))
    t = _tr(t)
    cs = colour or colour_scale(x[np.isfinite(x)] if not np.isfinite(x).all() else x)
    finite = np.isfinite(x)
    rgb = colorize(np.where(finite, x, cs.vmin), cs.vmin, cs.vmax, cs.colorscale)
    # The ink of higher contrast (WCAG 2's ratio) on each cell: dark or white
    lum = _luminance(rgb)
    light = (lum + 0.05) / (_INK_LUM + 0.05) >= 1.05 / (lum + 0.05)
    name = t("fig.value") if hover_name is None else hover_name
    h, w = x.shape
    text = [["" for _ in range(w)] for _ in range(h)]
    z: list[list[float | None]] = [[None] * w for _ in range(h)]
    for r, c in zip(*np.nonzero(finite), strict=True):
        text[r][c] = _sig_text(x[r, c], digits, t)
        z[r][c] = float(x[r, c])
    eh, ew = extent if extent is not None else x.shape
    return {
        "title": title,
        "z": z,
        "text": text,
        "fill": [
            [_hex(c) if ok else _NOT_YET for c, ok in zip(row, okr, strict=True)]
            for row, okr in zip(rgb.tolist(), finite.tolist(), strict=True)
        ],
        "ink": [[_INK if v else "#ffffff" for v in row] for row in light.tolist()],
        "hover": [
            [f"{t('fig.hover.cell', row=r, col=c)}: {name} {text[r][c]}" for c in range(w)]
            for r in range(h)
        ],
        **_colour_bar(cs, t),
        "legend": colour_legend(cs, t, padding=pad is not None and bool(pad.any())),
        "extent": int(max(eh, ew)),
        "label": t("fig.grid.label", title=title or name, rows=h, cols=w),
        "shapes": _overlay(shapes),
        "hatch": None if pad is None or not pad.any() else pad.tolist(),
    }


def image_grid(
    a: np.ndarray,
    *,
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    colorscale: str | tuple | None = None,
    colour: ColourScale | None = None,
    shapes: Sequence[dict] = (),
    colorbar: bool = True,
    t: Translator | None = None,
) -> dict:
    """A map too big for its numbers, as :mod:`convviz.ui.widgets.value_map` draws it: one
    PNG (``image``; ``a`` is ``(H, W)`` values or ``(H, W, 3)`` RGB in [0, 1], as
    :func:`image_figure` takes it), the ``shapes`` over it, the colour bar and the
    legend's sentence; the pointer's row and column on hover (``hover_tpl``: the
    catalogue's words, the numbers put in by the component).

    >>> g = image_grid(np.zeros((4, 6)))
    >>> g["image"]["rows"], g["image"]["cols"], g["image"]["src"][:22], g["text"]
    (4, 6, 'data:image/png;base64,', [])
    """
    x = np.asarray(a)
    t = _tr(t)
    bar, ends, legend = None, None, ""
    if x.ndim == 3 and x.shape[2] == 3:
        src = png_data_url(png_bytes(x))
    elif x.ndim == 2:
        cs = colour or colour_scale(x, vmin=vmin, vmax=vmax, colorscale=colorscale)
        src = png_data_url(png_from_map(x, cs.vmin, cs.vmax, cs.colorscale))
        legend = colour_legend(cs, t)
        if colorbar:
            bar, ends = _colour_bar(cs, t).values()
    else:
        raise CodedError("err.map_or_rgb", name="a", shape=str(x.shape))
    h, w = x.shape[:2]
    return {
        "title": title,
        "image": {"src": src, "rows": int(h), "cols": int(w)},
        "z": [], "text": [], "fill": [], "ink": [], "hover": [],
        "hover_tpl": t("fig.hover.cell", row="{row}", col="{col}"),
        "bar": bar,
        "bar_ends": ends,
        "legend": legend,
        "extent": int(max(h, w)),
        "label": t("fig.grid.label", title=title or t("fig.value"), rows=h, cols=w),
        "shapes": _overlay(shapes),
        "hatch": None,
    }  # fmt: skip


def image_figure(
    a: np.ndarray,
    *,
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    colorscale: str | tuple | None = None,
    height: int | None = None,
    extent: tuple[int, int] | None = None,
    colorbar: bool = True,
    shapes: Sequence[dict] = (),
    legend: bool = True,
    colour: ColourScale | None = None,
    t: Translator | None = None,
) -> go.Figure:
    """A map shipped as one PNG: ``a`` is ``(H, W)`` values or ``(H, W, 3)`` RGB in [0, 1].

    ``extent`` ``(rows, cols)`` fixes the axis ranges so that two figures of
    different sizes are drawn at the same scale (input beside feature map).
    Hover shows the pixel's row and column. The colours follow
    :func:`~convviz.render.colour_scale` (or ``colour``, a scale a page already
    computed, which also tells the legend its rule); ``legend`` writes under the
    map what they mean (:func:`colour_legend`; an RGB picture only gets one for
    its padding).

    >>> fig = image_figure(np.zeros((4, 6)))
    >>> fig.data[0].type, fig.data[0].source[:22]
    ('image', 'data:image/png;base64,')
    """
    x = np.asarray(a)
    t = _tr(t)
    padding = _has_padding(shapes)
    text = ""
    if x.ndim == 3 and x.shape[2] == 3:
        source = png_data_url(png_bytes(x))
        colorbar = False
        text = t("fig.legend.padding") if padding else ""
    elif x.ndim == 2:
        cs = colour or colour_scale(x, vmin=vmin, vmax=vmax, colorscale=colorscale)
        vmin, vmax, colorscale = cs.as_tuple()
        source = png_data_url(png_from_map(x, vmin, vmax, colorscale))
        text = colour_legend(cs, t, padding=padding)
    else:
        raise CodedError("err.map_or_rgb", name="a", shape=str(x.shape))
    data = [go.Image(source=source, hovertemplate=_cell_hover(t) + "<extra></extra>")]
    if colorbar:
        data.append(_colorbar_trace(float(vmin), float(vmax), colorscale))
    h, w = extent if extent is not None else x.shape[:2]
    # One constructor call: plotly validates each update, and that adds up per rerun.
    base = _base(title, height, t)
    layout = {**base, **_axes(h, w), "shapes": list(shapes)}
    if legend and text:
        layout.update(_legend_layout(text, base))
    return go.Figure(data=data, layout=layout)


def heatmap_figure(
    a: np.ndarray,
    *,
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    colorscale: str | tuple | None = None,
    text: bool | None = None,
    digits: int = 3,
    mask: np.ndarray | None = None,
    height: int | None = None,
    extent: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
    colorbar: bool = True,
    hover_name: str | None = None,
    shapes: Sequence[dict] = (),
    legend: bool = True,
    colour: ColourScale | None = None,
    t: Translator | None = None,
) -> go.Figure:
    """A ``go.Heatmap`` with the value of every cell on hover.

    Parameters
    ----------
    a : ndarray, shape (H, W)
    text : bool, optional
        Write the numbers in the cells (``digits`` significant digits, whole
        numbers in full, the locale's way); by default when ``a.size <= TEXT_MAX_CELLS``.
    mask : ndarray of bool, shape (H, W), optional
        Cells that are False are left blank (not computed yet, or padding).
    origin : (int, int)
        Row and column of ``a[0, 0]``, so a zoomed crop keeps its real coordinates.
    hover_name : str, optional
        The value's name on hover; ``fig.value`` ("value") by default.
    shapes : sequence of dict
        Layout shapes (:func:`window_shape`, :func:`pad_shapes`), set at construction:
        plotly validates every later update, which costs more than building the map.
    legend : bool
        Write under the map what its colours mean (:func:`colour_legend`, padding
        included when ``shapes`` has :func:`pad_shapes`).
    colour : ColourScale, optional
        A scale computed already (:func:`~convviz.render.colour_scale`); else from
        ``vmin`` / ``vmax`` / ``colorscale`` and the values (the default rules).
    t : Translator, optional
        The reader's language (English when None).

    >>> fig = heatmap_figure(np.array([[1.0, -2.0]]))
    >>> fig.data[0].type, list(fig.data[0].text[0])
    ('heatmap', ['1', '-2'])
    """
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise CodedError("err.must_be_2d", name="a", shape=str(x.shape))
    shown_values = x if mask is None else x[np.asarray(mask, bool)]
    cs = colour or colour_scale(shown_values, vmin=vmin, vmax=vmax, colorscale=colorscale)
    vmin, vmax, colorscale = cs.as_tuple()
    z = x if mask is None else np.where(np.asarray(mask, bool), x, np.nan)
    t = _tr(t)
    if text is None:
        text = x.size <= TEXT_MAX_CELLS
    labels = None
    if text and x.size:  # formatted only when written: hover numbers are plotly's
        labels = np.vectorize(lambda v: _sig_text(v, digits, t), otypes=[object])(x)
        if mask is not None:
            labels = np.where(np.asarray(mask, bool), labels, "")
    name = t("fig.value") if hover_name is None else hover_name
    r0, c0 = origin
    trace = go.Heatmap(
        z=z,
        x=np.arange(c0, c0 + x.shape[1]),
        y=np.arange(r0, r0 + x.shape[0]),
        zmin=vmin,
        zmax=vmax,
        colorscale=colorscale,
        text=labels,
        texttemplate="%{text}" if text else None,
        textfont={"size": 12 if x.size <= 49 else 10},
        hovertemplate=_cell_hover(t) + f"<br>{name} %{{z:.6g}}<extra></extra>",
        showscale=colorbar,
        colorbar={"thickness": 12, "len": 0.9},
        xgap=1 if x.size <= TEXT_MAX_CELLS else 0,
        ygap=1 if x.size <= TEXT_MAX_CELLS else 0,
    )
    h, w = extent if extent is not None else x.shape
    axes = _axes(h, w, r0, c0, ticks=max(h, w) <= 32)
    base = _base(title, height, t)
    layout = {**base, **axes, "shapes": list(shapes)}
    if legend:
        layout.update(_legend_layout(colour_legend(cs, t, padding=_has_padding(shapes)), base))
    return go.Figure(data=[trace], layout=layout)


def kernel_figure(
    k: np.ndarray,
    *,
    title: str = "",
    height: int | None = None,
    colorbar: bool = True,
    legend: bool = True,
    t: Translator | None = None,
) -> go.Figure:
    """A kernel as a heat map: red positive, blue negative, white zero, ``±max |w|``.

    Every weight counts, so the range is exact (never a percentile). Kernels up
    to :data:`KERNEL_TEXT_MAX_CELLS` cells (7x7) carry their numbers; larger ones
    (a Gabor 13x13) are the heat view alone, each weight's value on hover: the
    shape of the filter reads at a glance where a grid of numbers would scroll.

    >>> fig = kernel_figure(np.array([[-1.0, 0.0, 1.0]]))
    >>> fig.data[0].zmin, fig.data[0].zmax, fig.data[0].texttemplate
    (-1.0, 1.0, '%{text}')
    >>> kernel_figure(np.ones((13, 13))).data[0].texttemplate is None
    True
    """
    w = np.asarray(k, dtype=np.float64)
    if w.ndim != 2:
        raise CodedError("err.must_be_2d", name="k", shape=str(w.shape))
    cs = colour_scale(w, signed=True, robust=False)
    return heatmap_figure(
        w,
        title=title,
        colour=cs,
        text=w.size <= KERNEL_TEXT_MAX_CELLS,
        digits=3,
        height=height,
        colorbar=colorbar,
        legend=legend,
        hover_name=_tr(t)("fig.weight"),
        t=t,
    )


def map_figure(a: np.ndarray, **kwargs) -> go.Figure:
    """:func:`heatmap_figure` for small maps, :func:`image_figure` for big ones.

    >>> map_figure(np.zeros((8, 8))).data[0].type, map_figure(np.zeros((100, 100))).data[0].type
    ('heatmap', 'image')
    """
    x = np.asarray(a)
    if x.ndim == 2 and x.size <= HEATMAP_MAX_CELLS:
        return heatmap_figure(x, **kwargs)
    keep = (
        *("title", "vmin", "vmax", "colorscale", "height", "extent", "colorbar", "shapes"),
        *("legend", "colour", "t"),
    )
    kwargs = {k: v for k, v in kwargs.items() if k in keep}
    return image_figure(x, **kwargs)


def window_shape(
    top: float,
    left: float,
    height: float,
    width: float,
    *,
    colour: str = _WINDOW_COLOUR,
    dash: str | None = None,
) -> dict:
    """Layout shape (a dict) framing cells ``[top, top+height) x [left, left+width)``.

    >>> window_shape(1, 2, 3, 3)["x0"], window_shape(1, 2, 3, 3)["y1"]
    (1.5, 3.5)
    """
    return {
        "type": "rect",
        "x0": left - 0.5,
        "x1": left + width - 0.5,
        "y0": top - 0.5,
        "y1": top + height - 0.5,
        "line": {"color": colour, "width": 3, "dash": dash},
        "fillcolor": "rgba(0,0,0,0)",
    }


def pad_shapes(cells: np.ndarray, *, origin: tuple[int, int] = (0, 0)) -> list[dict]:
    """Padding drawn the one way of the app: the True cells of a ``(H, W)`` mask hatched yellow.

    Two layout shapes whatever the number of cells (one path of squares filled with
    :data:`PAD_FILL`, one path of diagonal hatch lines), both named :data:`PAD_NAME`
    so the figure's legend says "hatched yellow: padding". No data colour is yellow.

    >>> [s["name"] for s in pad_shapes(np.array([[True, False]]))]
    ['padding', 'padding']
    >>> pad_shapes(np.zeros((2, 2), bool))
    []
    """
    r0, c0 = origin
    cells = np.argwhere(np.asarray(cells, bool))
    if not len(cells):
        return []
    squares, hatch = [], []
    for r, c in cells:
        x0, y0 = c0 + c - 0.5, r0 + r - 0.5
        squares.append(f"M{x0},{y0}H{x0 + 1}V{y0 + 1}H{x0}Z")
        # two diagonals a cell: a hatch that reads at any zoom
        hatch.append(f"M{x0},{y0 + 0.5}L{x0 + 0.5},{y0}M{x0},{y0 + 1}L{x0 + 1},{y0}")
        hatch.append(f"M{x0 + 0.5},{y0 + 1}L{x0 + 1},{y0 + 0.5}")
    common = {"type": "path", "name": PAD_NAME, "layer": "above"}
    return [
        {**common, "path": "".join(squares), "fillcolor": PAD_FILL, "line": {"width": 0}},
        {**common, "path": "".join(hatch), "line": {"color": PAD_HATCH, "width": 1}},
    ]


def crosshair_shapes(row: float, col: float, colour: str = _WINDOW_COLOUR) -> list[dict]:
    """A thin horizontal and vertical line through a cell, to find it on a big map."""
    line = {"type": "line", "line": {"color": colour, "width": 1}}
    return [
        {**line, "xref": "paper", "x0": 0, "x1": 1, "y0": row, "y1": row},
        {**line, "yref": "paper", "y0": 0, "y1": 1, "x0": col, "x1": col},
    ]


def add_shapes(fig: go.Figure, shapes: Sequence[dict]) -> go.Figure:
    """Add many shapes in one layout update (one validation pass, not one per shape)."""
    if shapes:
        fig.update_layout(shapes=[*fig.layout.shapes, *shapes])
    return fig


def add_window(fig: go.Figure, top: float, left: float, height: float, width: float, **kw):
    """Draw a rectangle around cells ``[top, top+height) x [left, left+width)``.

    >>> fig = add_window(go.Figure(), 1, 2, 3, 3)
    >>> (fig.layout.shapes[0].x0, fig.layout.shapes[0].y1)
    (1.5, 3.5)
    """
    return add_shapes(fig, [window_shape(top, left, height, width, **kw)])


def not_yet_shapes(out_shape: tuple[int, int], oy: int, ox: int) -> list[dict]:
    """Light-grey veils over the output cells after ``(oy, ox)`` in raster order.

    >>> [(s["y0"], s["y1"]) for s in not_yet_shapes((3, 4), 1, 2)]
    [(0.5, 1.5), (1.5, 2.5)]
    """
    ho, wo = out_shape
    veil = {"type": "rect", "fillcolor": "rgba(225,225,225,0.9)", "line": {"width": 0}}
    shapes = []
    if ox + 1 < wo:
        shapes.append({**veil, "x0": ox + 0.5, "x1": wo - 0.5, "y0": oy - 0.5, "y1": oy + 0.5})
    if oy + 1 < ho:
        shapes.append({**veil, "x0": -0.5, "x1": wo - 0.5, "y0": oy + 0.5, "y1": ho - 0.5})
    return shapes


def histogram_figure(
    a: np.ndarray,
    *,
    bins: int = 60,
    title: str = "",
    height: int = 220,
    t: Translator | None = None,
) -> go.Figure:
    """Histogram of the finite values, binned here (ships ``bins`` bars, not every value).

    >>> fig = histogram_figure(np.array([0.0, 0.0, 1.0]), bins=2)
    >>> fig.data[0].y.tolist()
    [2, 1]
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        x = np.zeros(1)
    lo, hi = float(x.min()), float(x.max())
    # numpy needs `bins` distinct float64 edges: a range narrower than that (equal
    # values, or values within a few ulps of each other, such as 1e9 and 1e9+1e-6)
    # is widened around its centre.
    narrow = 4 * bins * float(np.spacing(max(abs(lo), abs(hi), 1.0)))
    if hi - lo < narrow:
        mid, half = (lo + hi) / 2, max(0.5, narrow)
        lo, hi = mid - half, mid + half
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(
        go.Bar(
            x=centres,
            y=counts,
            width=np.diff(edges),
            marker={"color": "#4c78a8"},
            customdata=np.stack([edges[:-1], edges[1:]], axis=1),
            hovertemplate="[%{customdata[0]:.4g}, %{customdata[1]:.4g}): %{y}<extra></extra>",
        )
    )
    t = _tr(t)
    fig.update_layout(bargap=0, xaxis_title=t("fig.value"), yaxis_title=t("fig.count"))
    return _layout(fig, title, height, t)


def activation_curves_figure(
    functions: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    *,
    lo: float = -5.0,
    hi: float = 5.0,
    highlight: str | None = None,
    height: int = 300,
    t: Translator | None = None,
) -> go.Figure:
    """Plot ``f(x)`` for each activation over ``[lo, hi]``; ``highlight`` drawn thick.

    The legend shows the keys of ``functions`` as given (for example
    :func:`~convviz.activations.activation_label` names).

    >>> fig = activation_curves_figure({"id": lambda v: v}, lo=-1, hi=1)
    >>> float(fig.data[0].y[0]), float(fig.data[0].y[-1])
    (-1.0, 1.0)
    """
    xs = np.linspace(lo, hi, 201)
    fig = go.Figure()
    for name, fn in functions.items():
        thick = name == highlight
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=np.asarray(fn(xs), dtype=np.float64),
                name=name,
                mode="lines",
                line={"width": 4 if thick else 1.5},
                opacity=1.0 if thick or highlight is None else 0.45,
            )
        )
    t = _tr(t)
    fig.update_layout(
        xaxis_title=t("fig.input"),
        yaxis_title=t("fig.output"),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02},
    )
    return _layout(fig, "", height, t)


def feature_grid_figure(
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    ncols: int = 4,
    signed: bool | None = None,
    cell_height: int = 230,
    legend: bool = True,
    t: Translator | None = None,
) -> go.Figure:
    """A grid of feature maps, each its own PNG with its own colour range.

    ``titles`` (one per map) are shown as given, over each map and on hover. Each
    map is robust on its own (:func:`~convviz.render.colour_scale` with
    ``robust=True``: signed ``±P99 |x|``, unsigned 1st-99th percentile); hover
    gives the map's range and ``legend`` writes the rule under the grid.

    >>> fig = feature_grid_figure([np.zeros((3, 3)), np.ones((3, 3))], ["a", "b"], ncols=2)
    >>> [t.type for t in fig.data]
    ['image', 'image']
    """
    if len(maps) != len(titles):
        raise CodedError("err.entries", name="titles", count=len(maps), got=len(titles))
    ncols = check_integer(ncols, "ncols", 1)
    t = _tr(t)
    hover = _cell_hover(t)
    n = max(len(maps), 1)
    nrows = -(-n // ncols)
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=list(titles),
        horizontal_spacing=0.02,
        vertical_spacing=0.06 if nrows > 1 else 0.0,
    )
    scales, traces = [], []
    for i, m in enumerate(maps):
        cs = colour_scale(m, signed=signed, robust=True)
        scales.append(cs)
        lo, hi, scale = cs.as_tuple()
        if cs.signed:
            span = t("fig.legend.grid_hover_signed", m=_num(hi, t))
        else:
            span = t("fig.legend.grid_hover_unsigned", lo=_num(lo, t), hi=_num(hi, t))
        traces.append(
            go.Image(
                source=png_data_url(png_from_map(m, lo, hi, scale)),
                hovertemplate=hover + "<br>" + span + "<extra>" + titles[i] + "</extra>",
            )
        )
    if traces:
        rows = [i // ncols + 1 for i in range(len(traces))]
        fig.add_traces(traces, rows=rows, cols=[i % ncols + 1 for i in range(len(traces))])
    # The whole layout in one update: plotly validates the layout on each update_* call,
    # and one call per map's axis took 0.9 s of a 19-map grid's 1.4 s (cProfile).
    plain = {"showticklabels": False, "showgrid": False, "zeroline": False}
    layout: dict = {}
    for i in range(nrows * ncols):
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"] = dict(plain)
        layout[f"yaxis{suffix}"] = {**plain, "autorange": "reversed"}
        if i < len(maps):
            layout[f"yaxis{suffix}"]["scaleanchor"] = f"x{suffix}"
    titles_notes = [{**a.to_plotly_json(), "font": {"size": 12}} for a in fig.layout.annotations]
    base = {"height": cell_height * nrows + 30, "margin": {"l": 5, "r": 5, "t": 30, "b": 5}}
    extra: dict = {"annotations": titles_notes}
    if legend and scales:
        kinds = sorted({cs.colorscale == DIVERGING for cs in scales}, reverse=True)
        keys = {True: "fig.legend.each_signed", False: "fig.legend.each_unsigned"}
        extra = _legend_layout(" ".join(t(keys[k]) for k in kinds), base)
        extra["annotations"] = [*titles_notes, *extra["annotations"]]
    # assigned, not updated: an update with a longer list kept the titles' old font
    fig.layout.annotations = extra.pop("annotations")
    layout |= {**base, **extra, "showlegend": False, "separators": t.separators}
    fig.update_layout(layout)
    return fig
