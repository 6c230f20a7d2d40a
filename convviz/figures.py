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
    colorbar_strip,
    colorize,
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
    "TEXT_MAX_CELLS",
    "activation_curves_figure",
    "add_shapes",
    "add_window",
    "colorbar_strip",
    "colorize",
    "crosshair_shapes",
    "feature_grid_figure",
    "heatmap_figure",
    "histogram_figure",
    "image_figure",
    "map_figure",
    "not_yet_shapes",
    "num_text",
    "pad_shapes",
    "plot_config",
    "png_bytes",
    "value_range",
    "window_shape",
]

HEATMAP_MAX_CELLS = 64 * 64  # above this a map is sent as a PNG image instead
TEXT_MAX_CELLS = 16 * 16  # at or below this the numbers are written in the cells

_WINDOW_COLOUR = "#ff7f0e"  # orange: the sliding window everywhere in the app
_PAD_COLOUR = "rgba(90, 150, 230, 0.55)"  # blue veil: padding, not image


def plot_config(filename: str = "convviz") -> dict:
    """``st.plotly_chart(config=...)``: the toolbar's camera button saves a PNG.

    >>> plot_config("kernel")["toImageButtonOptions"]["filename"]
    'kernel'
    """
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    }


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
    t: Translator | None = None,
) -> go.Figure:
    """A map shipped as one PNG: ``a`` is ``(H, W)`` values or ``(H, W, 3)`` RGB in [0, 1].

    ``extent`` ``(rows, cols)`` fixes the axis ranges so that two figures of
    different sizes are drawn at the same scale (input beside feature map).
    Hover shows the pixel's row and column.

    >>> fig = image_figure(np.zeros((4, 6)))
    >>> fig.data[0].type, fig.data[0].source[:22]
    ('image', 'data:image/png;base64,')
    """
    x = np.asarray(a)
    if x.ndim == 3 and x.shape[2] == 3:
        source = png_data_url(png_bytes(x))
        colorbar = False
    elif x.ndim == 2:
        lo, hi, scale = value_range(x)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
        colorscale = scale if colorscale is None else colorscale
        source = png_data_url(png_from_map(x, vmin, vmax, colorscale))
    else:
        raise CodedError("err.map_or_rgb", name="a", shape=str(x.shape))
    t = _tr(t)
    data = [go.Image(source=source, hovertemplate=_cell_hover(t) + "<extra></extra>")]
    if colorbar:
        data.append(_colorbar_trace(float(vmin), float(vmax), colorscale))
    h, w = extent if extent is not None else x.shape[:2]
    # One constructor call: plotly validates each update, and that adds up per rerun.
    layout = {**_base(title, height, t), **_axes(h, w), "shapes": list(shapes)}
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
    t : Translator, optional
        The reader's language (English when None).

    >>> fig = heatmap_figure(np.array([[1.0, -2.0]]))
    >>> fig.data[0].type, list(fig.data[0].text[0])
    ('heatmap', ['1', '-2'])
    """
    x = np.asarray(a, dtype=np.float64)
    if x.ndim != 2:
        raise CodedError("err.must_be_2d", name="a", shape=str(x.shape))
    lo, hi, scale = value_range(x if mask is None else x[np.asarray(mask, bool)])
    vmin = lo if vmin is None else vmin
    vmax = hi if vmax is None else vmax
    colorscale = scale if colorscale is None else colorscale
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
    layout = {**_base(title, height, t), **axes, "shapes": list(shapes)}
    return go.Figure(data=[trace], layout=layout)


def map_figure(a: np.ndarray, **kwargs) -> go.Figure:
    """:func:`heatmap_figure` for small maps, :func:`image_figure` for big ones.

    >>> map_figure(np.zeros((8, 8))).data[0].type, map_figure(np.zeros((100, 100))).data[0].type
    ('heatmap', 'image')
    """
    x = np.asarray(a)
    if x.ndim == 2 and x.size <= HEATMAP_MAX_CELLS:
        return heatmap_figure(x, **kwargs)
    keep = ("title", "vmin", "vmax", "colorscale", "height", "extent", "colorbar", "shapes", "t")
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
    """Grey squares over the True cells of a ``(H, W)`` mask (padding)."""
    r0, c0 = origin
    return [
        {
            "type": "rect",
            "x0": c0 + c - 0.5,
            "x1": c0 + c + 0.5,
            "y0": r0 + r - 0.5,
            "y1": r0 + r + 0.5,
            "line": {"width": 0},
            "fillcolor": _PAD_COLOUR,
            "layer": "above",
        }
        for r, c in np.argwhere(np.asarray(cells, bool))
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
    t: Translator | None = None,
) -> go.Figure:
    """A grid of feature maps, each its own PNG with its own colour range.

    ``titles`` (one per map) are shown as given, over each map and on hover.

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
    for i, m in enumerate(maps):
        lo, hi, scale = value_range(m, signed=signed, robust=True)
        fig.add_trace(
            go.Image(
                source=png_data_url(png_from_map(m, lo, hi, scale)),
                hovertemplate=hover + "<extra>" + titles[i] + "</extra>",
            ),
            row=i // ncols + 1,
            col=i % ncols + 1,
        )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    for i in range(len(maps)):
        suffix = "" if i == 0 else str(i + 1)
        fig.update_layout({f"yaxis{suffix}": {"scaleanchor": f"x{suffix}"}})
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=cell_height * nrows + 30,
        margin={"l": 5, "r": 5, "t": 30, "b": 5},
        showlegend=False,
        separators=t.separators,
    )
    return fig
