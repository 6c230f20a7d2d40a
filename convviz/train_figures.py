"""Figures and pictures for the training page: pure functions, no streamlit.

The page redraws these about once a second while a model trains, so each is
kept light (see STYLE.md latency notes):

- curves and the confusion matrix are small plotly figures with hover values;
  long histories are thinned to at most ``max_points`` per trace;
- first-layer filters are ONE ``go.Heatmap`` of all kernels tiled with NaN
  gaps (hundreds of cells, hover shows each weight);
- feature maps, deeper filters and digits are stitched into one ``uint8`` RGB
  picture each, for ``st.image`` (a small PNG instead of megabytes of JSON).

Kernels use the Keras layout ``(kh, kw, C, F)``; feature maps ``(H, W, C)``.

Builders that write words take ``t`` (a :class:`~convviz.i18n.Translator`,
None: English) and read them from the ``figures`` catalogue (``fig.*``), with
``layout.separators`` set for the locale; titles passed in are shown as given.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont
from plotly.subplots import make_subplots

from convviz.errors import CodedError
from convviz.figures import num_text
from convviz.i18n import Translator, translator
from convviz.render import DIVERGING, GREYS, colorize
from convviz.shapes import check_index, check_integer

__all__ = [
    "bars_image",
    "compare_figure",
    "confusion_figure",
    "confusion_image",
    "curves_figure",
    "dense_figure",
    "digit_tile",
    "feature_maps_image",
    "filters_figure",
    "filters_image",
    "format_duration",
    "mark_step",
    "smooth",
    "thin",
    "tile",
]

_GAP_RGB = (255, 255, 255)
_TRAIN_COLOUR = "#1f77b4"
_VAL_COLOUR = "#ff7f0e"
_RIGHT = (46, 160, 67)  # green border: correct prediction
_WRONG = (214, 39, 40)  # red border: wrong prediction


def thin(x: Sequence[float], y: Sequence[float], max_points: int = 600) -> tuple[list, list]:
    """At most ``max_points`` evenly spaced pairs of ``(x, y)``, always keeping the last.

    >>> thin(range(10), range(10), max_points=4)
    ([0, 3, 6, 9], [0, 3, 6, 9])
    >>> thin([1, 2], [3, 4])
    ([1, 2], [3, 4])
    """
    if max_points < 2:
        raise CodedError("err.must_be_at_least", name="max_points", minimum=2, value=max_points)
    x, y = list(x), list(y)
    if len(x) != len(y):
        raise CodedError("err.entries", name="y", count=len(x), got=len(y))
    n = len(x)
    if n <= max_points:
        return x, y
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return [x[i] for i in idx], [y[i] for i in idx]


def _curve_hover(t: Translator, name_key: str, fmt: str) -> str:
    return (
        t("fig.hover.curve", step="%{x}", name=t(name_key), value=f"%{{y:{fmt}}}")
        + "<extra></extra>"
    )


def curves_figure(
    chunks: Mapping[str, Sequence[float]],
    history: Mapping[str, Sequence[float]],
    *,
    total_steps: int | None = None,
    max_points: int = 600,
    height: int = 300,
    t: Translator | None = None,
) -> go.Figure:
    """Loss and accuracy against optimizer step: train (per chunk) as lines, validation as dots.

    Laid out to be cheap to redraw once a second: fixed margins (plotly's
    automatic margins measure every tick label and often draw twice), the
    legend inside the accuracy panel, panel names as axis titles, and the step
    axis fixed to ``[0, total_steps]`` so it does not re-tick as the run
    grows (and shows how far it has come). Measured in Chromium on this
    machine: about half the browser time of the previous layout.

    Parameters
    ----------
    chunks : mapping with ``step``, ``loss``, ``acc`` (running train values per chunk)
    history : mapping with ``val_step``, ``val_loss``, ``val_acc``
    total_steps : int, optional
        The run's length; the step axis spans it. None: fit the data.
    t : Translator, optional
        The reader's language (English when None): curve names, axis titles, hover.

    >>> fig = curves_figure({"step": [1, 2], "loss": [2.3, 2.1], "acc": [0.1, 0.2]},
    ...                     {"val_step": [2], "val_loss": [2.0], "val_acc": [0.3]},
    ...                     total_steps=10)
    >>> [(t.name, list(t.y)) for t in fig.data]
    [('train', [2.3, 2.1]), ('validation', [2.0]), ('train', [0.1, 0.2]), ('validation', [0.3])]
    >>> fig.layout.xaxis.range
    (0, 10)
    """
    t = translator("en") if t is None else t
    train, validation = t("fig.train"), t("fig.validation")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    steps = chunks.get("step", ())
    vsteps = history.get("val_step", ())
    for col, key in ((1, "loss"), (2, "acc")):
        x, y = thin(steps, chunks.get(key, ()), max_points)
        fmt = ".4f" if key == "loss" else ".2%"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=train,
                legendgroup="train",
                showlegend=col == 2,
                line={"color": _TRAIN_COLOUR, "width": 1.5},
                hovertemplate=_curve_hover(t, f"fig.curve.train_{key}", fmt),
            ),
            row=1,
            col=col,
        )
        vx, vy = thin(vsteps, history.get(f"val_{key}", ()), max_points)
        fig.add_trace(
            go.Scatter(
                x=vx,
                y=vy,
                mode="lines+markers",
                name=validation,
                legendgroup="validation",
                showlegend=col == 2,
                marker={"color": _VAL_COLOUR, "size": 7},
                line={"color": _VAL_COLOUR, "width": 1, "dash": "dot"},
                hovertemplate=_curve_hover(t, f"fig.curve.val_{key}", fmt),
            ),
            row=1,
            col=col,
        )
    xrange = {} if not total_steps else {"range": [0, int(total_steps)], "autorange": False}
    fig.update_xaxes(title_text=t("fig.step"), automargin=False, **xrange)
    fig.update_yaxes(title_text=t("fig.loss"), rangemode="tozero", automargin=False, row=1, col=1)
    fig.update_yaxes(
        title_text=t("fig.accuracy"),
        range=[0, 1.02],
        tickformat=".0%",
        automargin=False,
        row=1,
        col=2,
    )
    fig.update_layout(
        separators=t.separators,
        height=height,
        margin={"l": 60, "r": 10, "t": 10, "b": 45, "autoexpand": False},
        legend={
            "x": 0.99,
            "y": 0.03,
            "xanchor": "right",
            "yanchor": "bottom",
            "bgcolor": "rgba(255,255,255,0.7)",
        },
        uirevision="curves",  # keep the user's zoom across refreshes
    )
    return fig


def mark_step(
    fig: go.Figure, step: int, points: Sequence[float | None] = (None, None)
) -> go.Figure:
    """Mark ``step`` on the two panels of :func:`curves_figure`: a dashed vertical line, and a
    ring around the values ``points`` (loss, accuracy; None: no ring) at that step.

    The timeline's marker: which moment of the curves the scrubber shows.

    >>> fig = mark_step(curves_figure({}, {}, total_steps=10), 4, (0.5, None))
    >>> [(s.x0, s.xref) for s in fig.layout.shapes]
    [(4, 'x'), (4, 'x2')]
    >>> [(list(t.x), list(t.y)) for t in fig.data[4:]]
    [([4], [0.5])]
    """
    for col, value in ((1, points[0]), (2, points[1])):
        fig.add_vline(x=step, line={"color": "#444", "width": 1, "dash": "dash"}, row=1, col=col)
        if value is None:
            continue
        fig.add_trace(
            go.Scatter(
                x=[step],
                y=[value],
                mode="markers",
                showlegend=False,
                hoverinfo="skip",
                marker={
                    "size": 13,
                    "color": "rgba(0,0,0,0)",
                    "line": {"color": "#222", "width": 2},
                },
            ),
            row=1,
            col=col,
        )
    return fig


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average, TensorBoard's way: ``s[i] = w s[i-1] + (1 - w) v[i]``,
    divided by ``1 - w**(i+1)`` so the start is not pulled towards 0.

    >>> smooth([1.0, 1.0, 1.0])
    [1.0, 1.0, 1.0]
    >>> [round(v, 4) for v in smooth([0.0, 1.0], 0.5)]
    [0.0, 0.6667]
    """
    if not 0.0 <= weight < 1.0:
        raise CodedError("err.between", name="weight", low=0, high=1, value=weight)
    out, s = [], 0.0
    for i, v in enumerate(values):
        s = weight * s + (1.0 - weight) * float(v)
        out.append(s / (1.0 - weight ** (i + 1)))
    return out


#: One colour per run in :func:`compare_figure` (plotly's qualitative "Plotly" palette).
RUN_COLOURS = (
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880",
)  # fmt: skip


def compare_figure(
    runs: Sequence[tuple[str, Mapping[str, Sequence[float]]]],
    *,
    weight: float = 0.9,
    max_points: int = 400,
    height: int = 420,
    t: Translator | None = None,
) -> go.Figure:
    """Several runs on the same loss and accuracy axes: validation solid with dots, training
    (per step, smoothed by :func:`smooth` with ``weight``) dotted, one colour per run.

    Parameters
    ----------
    runs : sequence of ``(label, history)``
        ``history`` as :attr:`Snapshot.history`: ``step``, ``loss``, ``acc`` per optimizer
        step and ``val_step``, ``val_loss``, ``val_acc``. ``label`` goes to the legend as
        given (the caller strips markup from names that are data).

    >>> h = {"step": [1, 2], "loss": [2.0, 1.0], "acc": [0.1, 0.3],
    ...      "val_step": [2], "val_loss": [1.5], "val_acc": [0.4]}
    >>> fig = compare_figure([("a", h)], weight=0.0)
    >>> [(d.name, d.showlegend, list(d.y)) for d in fig.data]
    [('a', True, [1.5]), ('a', False, [2.0, 1.0]), ('a', False, [0.4]), ('a', False, [0.1, 0.3])]
    """
    t = translator("en") if t is None else t
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for i, (label, h) in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        for col, key in ((1, "loss"), (2, "acc")):
            fmt = ".4f" if key == "loss" else ".2%"
            vx, vy = thin(h.get("val_step", ()), h.get(f"val_{key}", ()), max_points)
            sx, sy = thin(h.get("step", ()), smooth(h.get(key, ()), weight), max_points)
            for x, y, val in ((vx, vy, True), (sx, sy, False)):
                curve = t(f"fig.curve.{'val' if val else 'train'}_{key}")
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=y,
                        mode="lines+markers" if val else "lines",
                        name=label,
                        legendgroup=f"run{i}",
                        showlegend=val and col == 1,
                        marker={"color": colour, "size": 6},
                        line={"color": colour, "width": 2 if val else 1.2}
                        | ({} if val else {"dash": "dot"}),
                        opacity=1.0 if val else 0.75,
                        hovertemplate=t(
                            "fig.hover.curve", step="%{x}", name=curve, value=f"%{{y:{fmt}}}"
                        )
                        + "<extra>%{fullData.name}</extra>",
                    ),
                    row=1,
                    col=col,
                )
    fig.update_xaxes(title_text=t("fig.step"), automargin=False)
    fig.update_yaxes(title_text=t("fig.loss"), rangemode="tozero", automargin=False, row=1, col=1)
    fig.update_yaxes(title_text=t("fig.accuracy"), tickformat=".0%", automargin=False, row=1, col=2)
    fig.update_layout(
        separators=t.separators,
        height=height,
        # The legend (one entry per run, its settings) under the panels, in the fixed margin.
        margin={"l": 60, "r": 10, "t": 10, "b": 130, "autoexpand": False},
        legend={"orientation": "h", "x": 0, "y": -0.3, "xanchor": "left", "yanchor": "top"},
        uirevision="compare",
    )
    return fig


def tile(maps: np.ndarray, ncols: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Lay ``maps`` (N, h, w) out row-major in a grid with ``gap``-wide ``fill`` lines.

    >>> tile(np.ones((3, 2, 2)), ncols=2, gap=1, fill=0).astype(int)
    array([[1, 1, 0, 1, 1],
           [1, 1, 0, 1, 1],
           [0, 0, 0, 0, 0],
           [1, 1, 0, 0, 0],
           [1, 1, 0, 0, 0]])
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or len(maps) == 0:
        raise CodedError("err.stack_shape", name="maps", shape=str(maps.shape))
    ncols = check_integer(ncols, "ncols", 1)
    gap = check_integer(gap, "gap", 0)
    n, h, w = maps.shape
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap), fill, dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = maps[i]
    return out


def _filters_of(kernel: np.ndarray, channel: int | None) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 4:
        raise CodedError("err.shape", name="kernel", expected="(kh, kw, C, F)", shape=str(k.shape))
    if channel is None:
        return np.moveaxis(k, (2, 3), (1, 0)).reshape(-1, *k.shape[:2])  # (F*C, kh, kw)
    channel = check_index(channel, "channel", k.shape[2])
    return np.moveaxis(k[:, :, channel, :], 2, 0)  # (F, kh, kw)


def _symmetric(a: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 0.0
    return m if m > 0 else 1.0


def filters_figure(
    kernel: np.ndarray,
    *,
    channel: int | None = 0,
    ncols: int = 8,
    height: int | None = None,
    t: Translator | None = None,
) -> go.Figure:
    """All filters of a conv layer for one input ``channel``, as one tiled ``go.Heatmap``.

    One colour scale (blue < 0 < red, white = 0) for the whole layer, so the
    filters can be compared and their growth out of the initial noise is seen.

    >>> k = np.arange(2 * 2 * 1 * 3, dtype=float).reshape(2, 2, 1, 3)
    >>> fig = filters_figure(k, ncols=3)
    >>> np.asarray(fig.data[0].z).shape, fig.data[0].zmax
    ((2, 8), 11.0)
    """
    t = translator("en") if t is None else t
    maps = _filters_of(kernel, channel)  # (F, kh, kw)
    grid = tile(maps, ncols)
    m = _symmetric(grid)
    kh, kw = maps.shape[1:]
    # Which filter each cell belongs to, for the hover text (-1 in the gaps).
    ids = tile(np.arange(len(maps), dtype=float)[:, None, None] * np.ones((1, kh, kw)), ncols)
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            customdata=ids,
            zmin=-m,
            zmax=m,
            colorscale=DIVERGING,
            hovertemplate=t("fig.hover.filter_weight", filter="%{customdata}", weight="%{z:.4f}")
            + "<extra></extra>",
            hoverongaps=False,
            xgap=0,
            ygap=0,
            colorbar={"thickness": 10, "len": 0.9, "x": 1.0, "xpad": 8},
        )
    )
    rows, cols = grid.shape
    fig.update_xaxes(visible=False, range=[-0.5, cols - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[rows - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_layout(
        height=height or max(120, min(420, 28 * rows + 20)),
        # Room for the colour bar kept by hand: letting it push the margin makes
        # plotly measure and draw twice on every refresh.
        margin={"l": 0, "r": 60, "t": 0, "b": 0, "autoexpand": False},
        separators=t.separators,
        plot_bgcolor="rgba(0,0,0,0)",
        paper_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def _to_rgb(grid: np.ndarray, lo: float, hi: float, scale: str, zoom: int) -> np.ndarray:
    gaps = np.isnan(grid)
    rgb = colorize(np.where(gaps, lo, grid), lo, hi, scale)  # (H, W, 3) uint8
    rgb[gaps] = _GAP_RGB
    if zoom > 1:
        rgb = rgb.repeat(zoom, axis=0).repeat(zoom, axis=1)  # nearest: crisp pixels
    return rgb


def filters_image(
    kernel: np.ndarray, *, channel: int | None = None, ncols: int | None = None, zoom: int = 4
) -> np.ndarray:
    """A conv layer's filters as one RGB picture (diverging colours, white = 0).

    With ``channel=None`` every (filter, input channel) kernel is shown: one
    row per filter, one column per input channel.

    >>> filters_image(np.ones((3, 3, 2, 4)), zoom=1).shape
    (15, 7, 3)
    """
    maps = _filters_of(kernel, channel)
    k = np.asarray(kernel)
    if ncols is None:
        ncols = k.shape[2] if channel is None else min(16, k.shape[3])
    grid = tile(maps, ncols)
    m = _symmetric(grid)
    return _to_rgb(grid, -m, m, DIVERGING, zoom)


def feature_maps_image(
    fmap: np.ndarray, *, ncols: int = 8, min_side: int = 56, max_channels: int = 64
) -> np.ndarray:
    """The channels of one feature map ``(H, W, C)`` side by side as an RGB picture.

    All channels share one range (greys for non-negative maps, blue-white-red
    when signed), so bright channels are the ones that respond. Each map is
    enlarged (nearest) to at least ``min_side`` pixels.

    >>> feature_maps_image(np.zeros((5, 5, 3)), ncols=3, min_side=10).shape
    (10, 34, 3)
    """
    a = np.asarray(fmap, dtype=np.float64)
    if a.ndim != 3:
        raise CodedError("err.shape", name="fmap", expected="(H, W, C)", shape=str(a.shape))
    maps = np.moveaxis(a[:, :, :max_channels], 2, 0)  # (C, H, W)
    zoom = max(1, -(-min_side // max(a.shape[:2])))
    grid = tile(maps, ncols)
    if np.nanmin(grid) < 0:
        m = _symmetric(grid)
        lo, hi, scale = -m, m, DIVERGING
    else:
        lo, hi, scale = 0.0, float(np.nanmax(grid)) or 1.0, GREYS
    return _to_rgb(grid, lo, hi, scale, zoom)


def dense_figure(
    values: np.ndarray,
    title: str,
    *,
    labels: Sequence[str] | None = None,
    highlight: int | None = None,
    probability: bool = False,
    height: int = 200,
    t: Translator | None = None,
) -> go.Figure:
    """Bar chart of a dense layer's outputs (or softmax probabilities when ``probability``).

    ``title`` and ``labels`` are shown as given; ``t`` sets the number separators.

    >>> fig = dense_figure(np.array([0.1, 0.9]), "softmax", probability=True, highlight=1)
    >>> list(fig.data[0].y), fig.layout.yaxis.range
    ([0.1, 0.9], (0, 1))
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    x = list(labels) if labels is not None else [str(i) for i in range(len(v))]
    if len(x) != len(v):
        raise CodedError("err.entries", name="labels", count=len(v), got=len(x))
    colours = [_VAL_COLOUR if i == highlight else _TRAIN_COLOUR for i in range(len(v))]
    fmt = ".1%" if probability else ".4f"
    fig = go.Figure(
        go.Bar(
            x=x,
            y=v.tolist(),
            marker_color=colours,
            hovertemplate=f"%{{x}}: %{{y:{fmt}}}<extra></extra>",
        )
    )
    fig.update_layout(
        separators=(translator("en") if t is None else t).separators,
        title={"text": title, "font": {"size": 13}},
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        bargap=0.15,
        xaxis={"type": "category", "showticklabels": len(v) <= 32},
    )
    if probability:
        fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def confusion_figure(
    confusion: np.ndarray, *, title: str = "", height: int = 380, t: Translator | None = None
) -> go.Figure:
    """Confusion matrix ``[true, predicted]`` as an annotated heatmap (diagonal = right).

    Axis titles and hover in the language of ``t`` (English when None); counts
    are written with the locale's grouping.

    >>> cm = np.array([[5, 1], [0, 4]])
    >>> fig = confusion_figure(cm)
    >>> fig.data[0].z.tolist(), fig.data[0].text.tolist()
    ([[5, 1], [0, 4]], [['5', '1'], ['0', '4']])
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise CodedError("err.square", name="confusion", shape=str(cm.shape))
    t = translator("en") if t is None else t
    n = cm.shape[0]
    names = [str(i) for i in range(n)]
    counts = cm.astype(int)
    fig = go.Figure(
        go.Heatmap(
            z=cm,
            x=names,
            y=names,
            text=np.vectorize(lambda c: num_text(c, 0, t), otypes=[object])(counts)
            if counts.size
            else counts.astype(str),
            texttemplate="%{text}",
            colorscale="Blues",
            hovertemplate=t("fig.hover.confusion", true="%{y}", predicted="%{x}", count="%{z}")
            + "<extra></extra>",
            showscale=False,
        )
    )
    fig.update_xaxes(title_text=t("fig.predicted"), type="category", side="top")
    fig.update_yaxes(
        title_text=t("fig.true"), type="category", autorange="reversed", scaleanchor="x"
    )
    fig.update_layout(
        separators=t.separators,
        title={"text": title, "font": {"size": 13}} if title else None,
        height=height,
        margin={"l": 10, "r": 10, "t": 50 if title else 30, "b": 10},
    )
    return fig


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


@functools.lru_cache(maxsize=8)
def _label_font(size: int):  # loaded once per size, not at every redraw
    return ImageFont.load_default(size=size)


def bars_image(
    values: np.ndarray,
    *,
    highlight: int | None = None,
    probability: bool = False,
    height: int = 110,
    width: int = 640,
) -> np.ndarray:
    """A dense layer's outputs as a bar chart drawn into an RGB picture ``(H, W, 3)`` uint8.

    The live page shows this while a run trains: Streamlit 1.67 rebuilds a
    plotly chart from scratch whenever its data changes (two full draws per
    update, measured), and a picture costs the browser almost nothing. The
    paused page shows :func:`dense_figure` with hover values instead.

    Bars rise from a grey zero line; the scale runs from ``min(0, values)`` to
    ``max(0, values)`` (``[0, 1]`` for probabilities). Up to 16 bars get their
    index written under them. NaN and inf (a diverged run) show as a red mark
    on the zero line.

    >>> img = bars_image(np.array([0.0, 0.5, 1.0]), probability=True, height=50, width=60)
    >>> img.shape
    (50, 60, 3)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise CodedError("err.empty", name="values", shape=str(v.shape))
    bad = ~np.isfinite(v)  # a diverged run: marked in red on the zero line, not drawn
    v = np.where(bad, 0.0, v)
    n = v.size
    labelled = n <= 16
    label_h = 14 if labelled else 0
    plot_h = height - label_h
    gap = 1 if n > 32 else 2
    bar_w = max(1, (width - gap * (n + 1)) // n)
    w = max(width, gap + n * (bar_w + gap))  # wider only if 1-pixel bars do not fit
    lo, hi = (0.0, 1.0) if probability else (min(0.0, v.min()), max(0.0, v.max()))
    if hi <= lo:
        hi = lo + 1.0
    to_row = lambda a: np.rint((hi - a) / (hi - lo) * (plot_h - 1)).astype(int)  # noqa: E731
    rows = to_row(np.clip(v, lo, hi))
    zero = int(to_row(np.array(0.0)))
    img = np.full((height, w, 3), 255, np.uint8)
    img[zero] = (190, 190, 190)
    train, val = _hex_rgb(_TRAIN_COLOUR), _hex_rgb(_VAL_COLOUR)
    for i, r in enumerate(rows):
        x0 = gap + i * (bar_w + gap)
        if bad[i]:
            img[max(zero - 2, 0) : zero + 3, x0 : x0 + bar_w] = _WRONG
            continue
        if r == zero:
            continue  # nothing to draw: the zero line shows
        top, bottom = min(r, zero), max(r, zero)
        img[top : bottom + 1, x0 : x0 + bar_w] = val if i == highlight else train
    if labelled:
        pic = Image.fromarray(img)
        draw = ImageDraw.Draw(pic)
        font = _label_font(11)
        for i in range(n):
            cx = gap + i * (bar_w + gap) + bar_w / 2
            draw.text((cx, plot_h + 1), str(i), fill=(60, 60, 60), font=font, anchor="ma")
        img = np.asarray(pic)
    return img


def confusion_image(confusion: np.ndarray, *, cell: int = 30) -> np.ndarray:
    """Confusion matrix ``[true, predicted]`` as an RGB picture with the counts written in.

    Rows are true classes, columns predicted ones, with their digits along
    the top and left edges; cells are shaded from white (0) to dark blue (the
    largest count), the plotly ``Blues`` scale of :func:`confusion_figure`.
    The live page's cheap stand-in for that figure (see :func:`bars_image`).

    >>> confusion_image(np.eye(3, dtype=int), cell=20).shape
    (80, 80, 3)
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise CodedError("err.square", name="confusion", shape=str(cm.shape))
    n = cm.shape[0]
    top = max(1, int(cm.max()))
    shades = colorize(cm.astype(np.float64), 0.0, float(top), "Blues")  # (n, n, 3)
    img = np.full(((n + 1) * cell, (n + 1) * cell, 3), 255, np.uint8)
    img[cell:, cell:] = shades.repeat(cell, axis=0).repeat(cell, axis=1)
    pic = Image.fromarray(img)
    draw = ImageDraw.Draw(pic)
    font = _label_font(max(8, cell * 2 // 5))
    half = cell / 2
    for i in range(n):
        c = (i + 1) * cell + half
        draw.text((c, half), str(i), fill=(90, 90, 90), font=font, anchor="mm")
        draw.text((half, c), str(i), fill=(90, 90, 90), font=font, anchor="mm")
        for j in range(n):
            dark = cm[i, j] > top / 2
            draw.text(
                ((j + 1) * cell + half, c),
                str(int(cm[i, j])),
                fill=(255, 255, 255) if dark else (30, 30, 30),
                font=font,
                anchor="mm",
            )
    return np.asarray(pic)


def digit_tile(image: np.ndarray, correct: bool | None = None, *, zoom: int = 2) -> np.ndarray:
    """A digit ``(28, 28)`` uint8 as RGB, framed green (right), red (wrong) or not (None).

    >>> t = digit_tile(np.zeros((28, 28), np.uint8), correct=False, zoom=1)
    >>> t.shape, t[0, 0].tolist(), t[5, 5].tolist()
    ((32, 32, 3), [214, 39, 40], [0, 0, 0])
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise CodedError("err.must_be_2d", name="image", shape=str(img.shape))
    g = np.clip(img, 0, 255).astype(np.uint8)
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    if correct is not None:
        rgb = np.pad(rgb, ((2, 2), (2, 2), (0, 0)))
        frame = np.ones(rgb.shape[:2], dtype=bool)
        frame[2:-2, 2:-2] = False
        rgb[frame] = _RIGHT if correct else _WRONG
    if zoom > 1:
        rgb = rgb.repeat(zoom, axis=0).repeat(zoom, axis=1)
    return rgb


def format_duration(seconds: float | None, t: Translator | None = None) -> str:
    """``75 -> '1:15'``, ``3725 -> '1:02:05'``; ``None`` or not finite -> ``'–'``.

    The one duration formatter of the app: hours, minutes and seconds as a
    clock (``fig.duration.hms`` / ``fig.duration.ms`` in the language of ``t``).

    >>> format_duration(75), format_duration(3725.2), format_duration(None)
    ('1:15', '1:02:05', '–')
    """
    t = translator("en") if t is None else t
    if seconds is None or not np.isfinite(seconds) or seconds < 0:
        return t("fig.duration.unknown")
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        # Text, not numbers: a clock is not grouped (pt-BR would write 1.000 h otherwise).
        return t("fig.duration.hms", h=str(h), m=f"{m:02d}", s=f"{s:02d}")
    return t("fig.duration.ms", m=str(m), s=f"{s:02d}")
