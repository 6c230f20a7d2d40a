"""The sliding-window stepper: one window at a time, for convolution and pooling.

:func:`run_stepper` is the frame both share (play/pause, ◀ ▲ ▼ ▶ and the arrow keys,
the position slider, a click on a map, in a fragment so a step reruns only the
stepper); :func:`progress_grid` / :func:`progress_view` is the output map with the
cells computed so far. ``lesson=True`` lays one window out for a projector (1280x720
and up: the input with the window, kernel, products, the sum and the output cell on
one screen, with the step controls above them), every map a value map
(:mod:`convviz.ui.widgets.value_map`: a step rewrites it in place, so Play keeps its
speed on a 512x512 image); without it, the stacked layout of charts the Inside page uses.
:func:`conv_stepper` shows a convolution window (input and window, kernel, products,
sum, bias, activation and output cell); :func:`pool_stepper` a pooling window (its
values, the winner, the pooled value). The numbers shown are the fields of the core's ``ConvStep`` /
``PoolStep``, so what is shown is the tested arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from convviz.activations import ACTIVATIONS
from convviz.conv import ConvStep, conv2d_step
from convviz.figures import (
    GREYS,
    HEATMAP_MAX_CELLS,
    TEXT_MAX_CELLS,
    crosshair_shapes,
    heatmap_figure,
    image_figure,
    image_grid,
    not_yet_shapes,
    pad_shapes,
    value_grid,
    value_range,
    window_shape,
)
from convviz.i18n import Translator
from convviz.lesson import busiest_window, window_at
from convviz.pool import pool2d_step
from convviz.render import ColourScale, colour_scale
from convviz.shapes import PAD_MODES
from convviz.ui.common import (
    play_controls,
    set_position,
    step_controls,
    user_errors,
)
from convviz.ui.params import ConvSettings, sig
from convviz.ui.widgets.charts import show
from convviz.ui.widgets.labels import act_label
from convviz.ui.widgets.value_map import value_map

__all__ = [
    "CHANNELS",
    "Click",
    "conv_stepper",
    "padded",
    "pool_stepper",
    "progress_view",
    "run_stepper",
    "start_window",
]

CHANNELS = ("r", "g", "b")  # catalogue: conv.channel.<c>
SMALL_PADDED = 24  # padded inputs up to 24x24 are drawn whole, with numbers
ZOOM_MARGIN = 2  # cells around the window in the zoomed neighbourhood
TAP_COLOUR = "#d62728"  # the taps of a dilated kernel
IMAGE_COLOUR = "#1f77b4"  # the real image inside its padding
LESSON_SCREEN_HEIGHT = 720  # px: the screen the lesson's sizes below are chosen for
LESSON_HEIGHT = 230  # px: the lesson's top row of small maps (1280x720 fits it all)
IMAGE_LESSON_HEIGHT = 160  # px: the same on an image, whose sum line is longer
LESSON_MAP_CHROME = 100  # px of the numbers lesson's row left for the maps' titles and legends
LESSON_INPUT_CHROME = 45  # the same for its input, whose legend is one line in a wider column
# The lines a lesson map's legend keeps room for: at 1280x720 the kernel's, the products'
# and the pooling maps' took 2, in English and Portuguese (measured), the others 1.
LESSON_LEGEND_LINES = 2
MANY_WINDOWS = 100  # from this many windows on, Play offers a whole row or a fast sweep

ss = st.session_state

# A click maps a chart's (row, col) to a raster index: {chart key: map}.
Click = dict[str, Callable[[float, float], int]]


# --------------------------------------------------------------------------- shared frame


def run_stepper(
    prefix: str,
    n: int,
    draw: Callable[[int], None],
    *,
    out_hw: tuple[int, int] | None = None,
    clicks: Click | None = None,
) -> None:
    """Play controls, then a fragment with ◀ ▶ (▲ ▼) and the slider that calls ``draw(index)``.

    ``prefix`` names the widget keys (``<prefix>_step``, ``<prefix>_playing``, ...).
    ``out_hw`` ``(Ho, Wo)`` adds ▲ ▼ and, for maps of ``MANY_WINDOWS`` windows or
    more, Play's whole-row and fast modes. ``clicks`` maps the keys of clickable
    charts ``draw`` shows to their (row, col) -> index rule: a new click there moves
    the window (:func:`clicked`).
    """
    interval = play_controls(prefix, modes=out_hw is not None and n >= MANY_WINDOWS)

    @st.fragment(run_every=interval)
    def frag() -> None:
        placed = clicked(clicks or {})
        idx = step_controls(prefix, n, interval, out_hw=out_hw, placed=placed)
        with user_errors():
            draw(idx)

    frag()


def _points(state: object) -> list[dict]:
    """The clicked points in a chart's selection, or a value map's click as one point."""
    if isinstance(state, dict) and {"row", "col", "seq"} <= state.keys():  # a value map's click
        return [{"x": state["col"], "y": state["row"], "seq": state["seq"]}]
    try:
        points = state["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return []
    return [p for p in points if isinstance(p, dict) and "x" in p and "y" in p]


def clicked(clicks: Click) -> int | None:
    """The raster index of a click made since the last run, if any.

    A clickable chart (or value map) keeps its selection in its widget state across
    runs, so a click counts once: the points handled are remembered (``<key>_seen``);
    a value map numbers its clicks, so a second click on the same cell counts too.
    """
    placed = None
    for key, to_index in clicks.items():
        points = _points(ss.get(key))
        seen = tuple((p["x"], p["y"], p.get("seq")) for p in points)
        if points and seen != ss.get(f"{key}_seen"):
            p = points[-1]
            placed = int(to_index(float(p["y"]), float(p["x"])))
        ss[f"{key}_seen"] = seen
    return placed


def start_window(prefix: str, signature: object, index: Callable[[], int]) -> None:
    """Put the window at ``index()`` when the input is new (its ``signature`` changed).

    The page passes what identifies its input (source, size, a checksum); a kernel
    or parameter change keeps the window where the user left it.
    """
    key = f"{prefix}_start"
    if ss.get(key) != signature:
        ss[key] = signature
        set_position(prefix, index())


def progress_view(
    t: Translator,
    out: np.ndarray,
    index: tuple[int, int],
    key: str,
    vrange: tuple[float, float, object] | None = None,
) -> None:
    """The output map with the cells computed so far (raster order up to ``index``), as
    a chart (the stacked views; the lesson's is :func:`progress_grid`).

    Small maps are a heatmap with the computed numbers; big ones the whole map
    (a cached PNG) under grey veils, so stepping re-encodes nothing.
    ``vrange`` is ``(vmin, vmax, colorscale)``, by default the map's own.
    """
    oy, ox = index
    vmin, vmax, scale = value_range(out) if vrange is None else vrange
    here = [window_shape(oy, ox, 1, 1)]
    title = t("conv.step.progress")
    if out.size <= HEATMAP_MAX_CELLS:
        done = np.arange(out.size).reshape(out.shape) <= oy * out.shape[1] + ox
        fig = heatmap_figure(
            out, title=title, mask=done, vmin=vmin, vmax=vmax, colorscale=scale, digits=4,
            shapes=here, t=t
        )  # fmt: skip
    else:
        fig = image_figure(
            out, title=title, vmin=vmin, vmax=vmax, colorscale=scale,
            shapes=not_yet_shapes(out.shape, oy, ox) + crosshair_shapes(oy, ox) + here, t=t
        )  # fmt: skip
    show(t, fig, key, "output_progress")


def _arith(t: Translator, v: float) -> str:
    return sig(t, v, 4)


# --------------------------------------------------------------------------- convolution


def padded(x3: np.ndarray, pad, pad_mode: str) -> np.ndarray:
    """``(C, H, W)`` -> the padded input ``(C, Hp, Wp)`` the windows slide over."""
    if not any(pad[0]) and not any(pad[1]):
        return x3
    kwargs = {"constant_values": 0} if pad_mode == "zeros" else {}
    return np.pad(x3, ((0, 0), *pad), mode=PAD_MODES[pad_mode], **kwargs)


def _padding_mask(shape: tuple[int, int], pad) -> np.ndarray:
    m = np.ones(shape, dtype=bool)
    (top, bottom), (left, right) = pad
    m[top : shape[0] - bottom, left : shape[1] - right] = False
    return m


def _window_shapes(step: ConvStep, dilated: bool) -> list[dict]:
    rows, cols = step.rows, step.cols
    shapes = [window_shape(rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)]
    if dilated:  # mark the taps actually used
        shapes += [
            window_shape(r, c, 1, 1, colour=TAP_COLOUR, dash="dot") for r in rows for c in cols
        ]
    return shapes


def _overview_shapes(xp: np.ndarray, step: ConvStep) -> list[dict]:
    """The window on the whole padded input, and the real image's outline inside its
    padding (dashed)."""
    shapes = _window_shapes(step, False)
    (top, bottom), (left, right) = step.pad
    if top or bottom or left or right:
        h, w = xp.shape[1] - top - bottom, xp.shape[2] - left - right
        shapes.append(window_shape(top, left, h, w, colour=IMAGE_COLOUR, dash="dash"))
    return shapes


def _overview(t: Translator, xp: np.ndarray, step: ConvStep) -> go.Figure:
    # The PNG is cached by content, so redrawing this on every step is cheap.
    shapes, title = _overview_shapes(xp, step), t("conv.step.overview")
    if xp.shape[0] == 3:
        return image_figure(np.moveaxis(xp, 0, -1), title=title, shapes=shapes, t=t)
    return image_figure(
        xp[0], title=title, vmin=0, vmax=1, colorscale=GREYS, colorbar=False, shapes=shapes, t=t
    )


def _window_views(
    t: Translator, step: ConvStep, xp: np.ndarray, *, numbers: bool, dilated: bool
) -> None:
    """Where the window is: the whole padded input, or an overview and a zoom."""
    c = step.patch.shape[0]
    small = numbers or (xp.shape[1] <= SMALL_PADDED and xp.shape[2] <= SMALL_PADDED)
    pmask = _padding_mask(xp.shape[1:], step.pad)
    if small and c == 1:
        fig = heatmap_figure(
            xp[0], title=t("conv.step.input"), colorscale=GREYS, digits=4, text=True,
            colorbar=False, shapes=pad_shapes(pmask) + _window_shapes(step, dilated),t=t
        )  # fmt: skip
        show(t, fig, "conv_step_input", "window")
        return
    o1, o2 = st.columns(2)
    with o1:
        show(t, _overview(t, xp, step), "conv_step_overview", "window")
    with o2:
        m = ZOOM_MARGIN
        r0, r1 = max(0, step.rows[0] - m), min(xp.shape[1], step.rows[-1] + m + 1)
        c0, c1 = max(0, step.cols[0] - m), min(xp.shape[2], step.cols[-1] + m + 1)
        names = [t(f"conv.channel.{n}") for n in CHANNELS]
        tabs = (
            st.tabs([t("conv.step.zoom_tab", channel=n) for n in names])
            if c == 3
            else [st.container()]
        )
        for ch, tab in enumerate(tabs):
            with tab:
                crop = xp[ch, r0:r1, c0:c1]
                fig = heatmap_figure(
                    crop, title=t("conv.step.zoom"), colorscale=GREYS, vmin=0, vmax=1, digits=2,
                    text=crop.size <= 24 * 24, origin=(r0, c0), colorbar=False,
                    shapes=pad_shapes(pmask[r0:r1, c0:c1], origin=(r0, c0))
                    + _window_shapes(step, dilated),t=t
                )  # fmt: skip
                show(t, fig, f"conv_step_zoom_{ch}", "neighbourhood")


def _arithmetic(t: Translator, step: ConvStep) -> str:
    """The sum written out, from the ConvStep fields."""
    c = step.patch.shape[0]
    lines = []
    for ch in range(c):
        name = t(f"conv.channel.{CHANNELS[ch]}") if c == 3 else ""
        total = sig(t, step.partial_sums[ch])
        if step.kernel[ch].size <= 25:
            terms = " + ".join(
                f"{_arith(t, k)}×{_arith(t, v)}"
                for k, v in zip(step.kernel[ch].ravel(), step.patch[ch].ravel(), strict=True)
            )
            line = t("conv.step.terms", terms=terms, total=total)
        else:
            line = t("conv.step.many_terms", n=step.kernel[ch].size, total=total)
        lines.append(t("conv.step.channel_line", channel=name, line=line) if name else line)
    oy, ox = step.index
    sums = " + ".join(sig(t, s) for s in step.partial_sums)
    lines.append(
        t(
            "conv.step.sum",
            row=oy,
            col=ox,
            sums=sums,
            bias=sig(t, step.bias),
            value=sig(t, step.value),
        )
    )
    return "\n".join(lines)


def conv_step_view(
    t: Translator,
    step: ConvStep,
    xp: np.ndarray,
    out: np.ndarray,
    *,
    numbers: bool,
    dilated: bool,
    flip: bool,
    activation: str,
    in_range: tuple[float, float],
) -> None:
    """One convolution window: where it is, the patch, kernel and products, the sum,
    the output cell (and the same after the activation)."""
    oy, ox = step.index
    left, right = st.columns([3, 2])
    with left:
        _window_views(t, step, xp, numbers=numbers, dilated=dilated)
    with right:
        progress_view(t, out, step.index, "conv_step_output")

    c = step.patch.shape[0]
    for ch in range(c):
        name = t(f"conv.channel.{CHANNELS[ch]}") if c == 3 else None

        def title(key: str, name=name) -> str:
            text = t(key)
            return t("conv.step.in_channel", channel=name, title=text) if name else text

        p1, p2, p3 = st.columns(3)
        with p1:
            fig = heatmap_figure(
                step.patch[ch], title=title("conv.step.patch"), colorscale=GREYS,
                vmin=in_range[0], vmax=in_range[1], digits=4, text=True,
                shapes=pad_shapes(~step.inside),t=t
            )  # fmt: skip
            show(t, fig, f"conv_step_patch_{ch}", "patch")
        with p2:
            kernel_title = title("conv.step.kernel_flipped" if flip else "conv.step.kernel")
            fig = heatmap_figure(step.kernel[ch], title=kernel_title, digits=4, text=True, t=t)
            show(t, fig, f"conv_step_kernel_{ch}", "kernel")
        with p3:
            fig = heatmap_figure(
                step.products[ch], title=title("conv.step.products"), digits=4, text=True, t=t
            )
            show(t, fig, f"conv_step_products_{ch}", "products")

    st.code(_arithmetic(t, step), language=None, wrap_lines=True)
    m1, m2 = st.columns(2)
    m1.metric(t("conv.step.value_at", row=oy, col=ox), sig(t, step.value))
    if activation != "none":
        a = float(ACTIVATIONS[activation](np.array([step.value]))[0])
        m2.metric(t("conv.step.after", activation=act_label(t, activation)), sig(t, a))


def _channel_title(t: Translator, key: str, name: str | None) -> str:
    text = t(key)
    return t("conv.step.in_channel", channel=name, title=text) if name else text


def _patch_grid(t: Translator, step: ConvStep, ch: int, name: str | None, in_range) -> dict:
    """The window's values of channel ``ch`` on the input's grey scale, its padding hatched."""
    grey = colour_scale(step.patch[ch], vmin=in_range[0], vmax=in_range[1], colorscale=GREYS)
    return value_grid(
        step.patch[ch], title=_channel_title(t, "conv.step.patch", name), colour=grey,
        hatch=~step.inside, t=t
    )  # fmt: skip


def _triple(
    t: Translator, step: ConvStep, ch: int, name: str | None, *, flip: bool, in_range
) -> tuple[dict, dict, dict]:
    """The window's values, the kernel and their products for channel ``ch``, as value
    maps (a step rewrites their numbers in place)."""
    kernel_key = "conv.step.kernel_flipped" if flip else "conv.step.kernel"
    kernel = value_grid(step.kernel[ch], title=_channel_title(t, kernel_key, name), t=t)
    products = value_grid(
        step.products[ch], title=_channel_title(t, "conv.step.products", name), t=t
    )
    return _patch_grid(t, step, ch, name, in_range), kernel, products


def _small_map(
    t: Translator,
    grid: dict,
    key: str,
    cells_height: int,
    *,
    click: bool = False,
    legend_lines: int = LESSON_LEGEND_LINES,
) -> None:
    """A map in the lesson's rows: a value map whose cells keep to ``cells_height`` px
    (the rows fit a 1280x720 screen; a taller one gets larger maps), no colour bar (the
    legend's sentence says the colours, in ``legend_lines`` lines at most). It keeps its
    room from the first paint (:func:`~convviz.ui.widgets.value_map.room_css`): its frame
    loads seconds after the page, and the lesson grew then, moving what is below it."""
    value_map(
        grid, key=key, t=t, cells_height=max(42, cells_height), bar=False, click=click,
        screen_height=LESSON_SCREEN_HEIGHT, legend_lines=legend_lines,
    )  # fmt: skip


def progress_grid(
    t: Translator, out: np.ndarray, index: tuple[int, int], colour: ColourScale | None = None
) -> dict:
    """:func:`progress_view`'s map as a value map: the cells computed so far (raster
    order up to ``index``) with their numbers, the rest empty; a big map as its picture
    under grey veils, with a crosshair on the cell being written. ``colour``: the
    scale (by default the whole map's, so a cell's colour does not change as it fills)."""
    oy, ox = index
    cs = colour or colour_scale(out)
    here = [window_shape(oy, ox, 1, 1)]
    title = t("conv.step.progress")
    if out.size <= TEXT_MAX_CELLS:
        done = np.arange(out.size).reshape(out.shape) <= oy * out.shape[1] + ox
        return value_grid(np.where(done, out, np.nan), title=title, colour=cs, shapes=here, t=t)
    veils = not_yet_shapes(out.shape, oy, ox) + crosshair_shapes(oy, ox)
    return image_grid(out, title=title, colour=cs, shapes=veils + here, t=t)


def _overview_grid(t: Translator, xp: np.ndarray, step: ConvStep) -> dict:
    """The whole padded input as a picture with :func:`_overview_shapes` over it."""
    shapes, title = _overview_shapes(xp, step), t("conv.step.overview")
    if xp.shape[0] == 3:
        return image_grid(np.moveaxis(xp, 0, -1), title=title, shapes=shapes, t=t)
    return image_grid(
        xp[0], title=title, vmin=0, vmax=1, colorscale=GREYS, colorbar=False, shapes=shapes, t=t
    )


def conv_lesson_view(
    t: Translator,
    step: ConvStep,
    xp: np.ndarray,
    out: np.ndarray,
    *,
    numbers: bool,
    dilated: bool,
    flip: bool,
    activation: str,
    in_range: tuple[float, float],
) -> None:
    """One convolution window laid out as a lesson, on one screen at 1280x720.

    Small inputs (numbers): the whole padded input with its numbers and the window,
    the kernel, the products and the output map side by side, the sum and the output
    cell below. Images: the input with the window, the window's values, the kernel
    and the products side by side; the sum, the output cell and the output map below.
    Every map is a value map (a step rewrites it in place, no chart is redrawn); the
    input and the output map take clicks.
    """
    c = step.patch.shape[0]
    h = LESSON_HEIGHT
    small = c == 1 and (numbers or (xp.shape[1] <= SMALL_PADDED and xp.shape[2] <= SMALL_PADDED))
    window = _window_shapes(step, dilated)
    if small:
        cells = h - LESSON_MAP_CHROME
        a, b, k, d = st.columns([4, 3, 3, 3])
        with a:
            grey = colour_scale(xp[0], colorscale=GREYS)
            pmask = _padding_mask(xp.shape[1:], step.pad)
            grid = value_grid(
                xp[0], title=t("conv.step.input"), colour=grey, shapes=window, hatch=pmask, t=t
            )
            # the widest column: its cells as large as the kernel's (a 5x5 input at ~37 px)
            _small_map(t, grid, "conv_step_input", h - LESSON_INPUT_CHROME, click=True)
        _, kernel, products = _triple(t, step, 0, None, flip=flip, in_range=in_range)
        with b:
            _small_map(t, kernel, "conv_step_kernel_0", cells)
        with k:
            _small_map(t, products, "conv_step_products_0", cells)
        with d:
            _small_map(t, progress_grid(t, out, step.index), "conv_step_output", cells, click=True)
        s1, s2 = st.columns([3, 1])
        with s1, st.container(key="conv_step_sum"):
            st.code(_arithmetic(t, step), language=None, wrap_lines=True)
        with s2:
            _value_metrics(t, step, activation, st.container(key="conv_step_value"))
        return
    h = IMAGE_LESSON_HEIGHT  # the sum wraps to 3 lines here: smaller maps keep it on screen
    a, rest = st.columns([1, 3])
    with a:
        grid = _overview_grid(t, xp, step)
        _small_map(t, grid, "conv_step_overview", h - 40, click=True)
    with rest:
        names = [t(f"conv.channel.{n}") for n in CHANNELS]
        tabs = st.tabs(names) if c == 3 else [st.container()]
        for ch, tab in enumerate(tabs):
            name = names[ch] if c == 3 else None
            grids = _triple(t, step, ch, name, flip=flip, in_range=in_range)
            with tab:
                for col, grid, what in zip(
                    st.columns(3), grids, ("patch", "kernel", "products"), strict=True
                ):
                    with col:
                        _small_map(t, grid, f"conv_step_{what}_{ch}", h - 10 * c - 55)
    s1, s2 = st.columns([3, 2])
    with s1:
        with st.container(key="conv_step_sum"):
            st.code(_arithmetic(t, step), language=None, wrap_lines=True)
        _value_metrics(t, step, activation, st.container(key="conv_step_value"))
    with s2:
        grid = progress_grid(t, out, step.index)
        _small_map(t, grid, "conv_step_output", h - 40, click=True)


def _value_metrics(t: Translator, step: ConvStep, activation: str, where) -> None:
    oy, ox = step.index
    m1, m2 = where.columns(2) if activation != "none" else (where, None)
    m1.metric(t("conv.step.value_at", row=oy, col=ox), sig(t, step.value))
    if m2 is not None:
        a = float(ACTIVATIONS[activation](np.array([step.value]))[0])
        m2.metric(t("conv.step.after", activation=act_label(t, activation)), sig(t, a))


def conv_stepper(
    t: Translator,
    x: np.ndarray,
    settings: ConvSettings,
    out: np.ndarray,
    pad: tuple[tuple[int, int], tuple[int, int]],
    *,
    numbers: bool,
    prefix: str = "conv",
    step_at: Callable[[int], ConvStep] | None = None,
    lesson: bool = False,
    start: object = None,
) -> None:
    """The convolution stepper over ``x`` ``(H, W)`` or ``(C, H, W)``.

    ``lesson`` lays it out for one screen (:func:`conv_lesson_view`), with ▲ ▼, clicks
    on the input and the output map, and Play's modes. ``start``: a signature of the
    input; when it changes the window moves to where the input has the most structure
    (:func:`convviz.lesson.busiest_window`). None keeps the position (the Numbers mode
    opens on cell (0, 0), the classic example's 181).

    ``pad`` is the page's resolved padding (:func:`convviz.shapes.resolve_padding`),
    ``out`` the map :func:`convviz.conv.conv2d` made with the same settings.
    ``prefix`` names the stepper's widget keys (another page's stepper keeps its own
    position). ``step_at(index)`` gives the step at a raster index when the numbers come
    from elsewhere (a network layer's own cell arithmetic); by default
    :func:`convviz.conv.conv2d_step` with ``settings``.
    """
    if not lesson:
        st.subheader(t("conv.step.title"))
        st.caption(t("conv.step.caption"))
    x3 = x[None] if x.ndim == 2 else x
    xp = padded(x3, pad, settings.pad_mode)
    out_hw = (int(out.shape[0]), int(out.shape[1]))
    kh, kw = settings.kernel.shape[-2:]
    d, s_ = settings.dilation, settings.stride
    if start is not None:
        extent = (d * (kh - 1) + 1, d * (kw - 1) + 1)
        start_window(
            prefix,
            start,
            lambda: int(np.ravel_multi_index(busiest_window(xp, extent, (s_, s_), out_hw), out_hw)),
        )
    # patches share the input's colour scale, so the same grey means the same value
    lo = float(x.min())
    in_range = (lo, max(float(x.max()), lo + 1e-9)) if numbers else (0.0, 1.0)
    n = out.shape[0] * out.shape[1]

    def draw(idx: int) -> None:
        if step_at is not None:
            step = step_at(idx)
        else:
            step = conv2d_step(
                x, settings.kernel, settings.bias, index=idx, **settings.conv_kwargs()
            )
        st.caption(
            t(
                "conv.step.position",
                i=idx + 1,
                n=n,
                row=step.index[0],
                col=step.index[1],
                prow=step.position[0],
                pcol=step.position[1],
            )
        )
        view = conv_lesson_view if lesson else conv_step_view
        view(
            t, step, xp, out, numbers=numbers, dilated=settings.dilation > 1, flip=settings.flip,
            activation=settings.activation, in_range=in_range,
        )  # fmt: skip

    if not lesson:
        run_stepper(prefix, n, draw)
        return

    def on_input(row: float, col: float) -> int:
        oy, ox = window_at(row, col, (kh, kw), (s_, s_), (d, d), out_hw)
        return oy * out_hw[1] + ox

    def on_output(row: float, col: float) -> int:
        oy = min(max(round(row), 0), out_hw[0] - 1)
        ox = min(max(round(col), 0), out_hw[1] - 1)
        return oy * out_hw[1] + ox

    clicks = {"conv_step_input": on_input, "conv_step_overview": on_input}
    clicks["conv_step_output"] = on_output
    run_stepper(prefix, n, draw, out_hw=out_hw, clicks=clicks)


# --------------------------------------------------------------------------- pooling


def pool_stepper(
    t: Translator,
    x: np.ndarray,
    out: np.ndarray,
    *,
    size: int,
    stride: int,
    padding: int,
    mode: str,
    small: bool,
    lesson: bool = False,
    start: object = None,
) -> None:
    """The pooling stepper over ``x`` ``(H, W)``; ``out`` is :func:`convviz.pool.pool2d`'s map.

    ``small`` draws the whole input with its numbers (else an image of it). ``lesson``:
    the window, its values, the pooled value and the output map on one screen, with
    ▲ ▼, clicks on the input and output, and Play's modes; ``start`` as for
    :func:`conv_stepper` (the window opens where the input varies most).
    """
    if not lesson:
        st.subheader(t("pool.step.title"))
        st.caption(t(f"pool.step.caption.{mode}"))
    scale = colour_scale(x)  # the input's scale, as in the maps above
    n = out.size
    out_hw = (int(out.shape[0]), int(out.shape[1]))
    if start is not None:
        xp = np.pad(x, padding, mode="edge") if padding else x
        start_window(
            "pool",
            start,
            lambda: int(
                np.ravel_multi_index(
                    busiest_window(xp, (size, size), (stride, stride), out_hw), out_hw
                )
            ),
        )

    def draw(idx: int) -> None:
        step = pool2d_step(x, size, index=idx, stride=stride, padding=padding, mode=mode)
        oy, ox = step.index
        st.caption(t("pool.step.position", i=idx + 1, n=n, row=oy, col=ox))
        (pool_lesson_view if lesson else _pool_step_view)(t, step, x, out, mode, small, scale)

    if not lesson:
        run_stepper("pool", n, draw)
        return

    def on_input(row: float, col: float) -> int:
        oy, ox = window_at(row, col, (size, size), (stride, stride), (1, 1), out_hw)
        return oy * out_hw[1] + ox

    def on_output(row: float, col: float) -> int:
        oy = min(max(round(row), 0), out_hw[0] - 1)
        ox = min(max(round(col), 0), out_hw[1] - 1)
        return oy * out_hw[1] + ox

    clicks = {"pool_step_input": on_input, "pool_step_output": on_output}
    run_stepper("pool", n, draw, out_hw=out_hw, clicks=clicks)


def _pool_sum_and_value(t: Translator, step, mode: str) -> None:
    oy, ox = step.index
    with st.container(key="pool_step_sum"):
        st.code(_pool_arithmetic(t, step, mode), language=None, wrap_lines=True)
    with st.container(key="pool_step_value"):
        st.metric(t("pool.step.value_at", row=oy, col=ox), sig(t, step.value))


def _pool_step_view(
    t: Translator, step, x: np.ndarray, out: np.ndarray, mode: str, small: bool, scale
) -> None:
    """One pooling window, stacked (charts): the input and window, its values and the
    pooled value, the output map so far."""
    y0, x0 = step.position
    kh, kw = step.window.shape
    ph, pw = step.pad
    window = [window_shape(y0, x0, kh, kw)]
    lo, hi, colours = scale.as_tuple()
    c1, c2, c3 = st.columns([3, 2, 3])
    with c1:
        if small:
            xp = np.pad(x, ((ph, ph), (pw, pw)), constant_values=np.nan)
            fig = heatmap_figure(
                np.nan_to_num(xp), title=t("pool.step.input"), digits=3, text=True,
                mask=~np.isnan(xp) if ph or pw else None, colorbar=False,
                shapes=pad_shapes(np.isnan(xp)) + window, t=t  # hatched, as on every page
            )  # fmt: skip
        else:
            fig = image_figure(
                np.pad(x, ((ph, ph), (pw, pw)), constant_values=lo),
                title=t("pool.step.overview"), vmin=lo, vmax=hi, colorscale=colours,
                colorbar=False, shapes=window, t=t
            )  # fmt: skip
        show(t, fig, "pool_step_input", "pool_window")
    with c2:
        winner = [window_shape(*step.winner, 1, 1)] if step.winner is not None else []
        fig = heatmap_figure(
            np.nan_to_num(np.where(step.inside, step.window, np.nan)),
            title=t("pool.step.window"), digits=4, text=True, mask=step.inside,
            colorbar=False, shapes=pad_shapes(~step.inside) + winner, t=t
        )  # fmt: skip
        show(t, fig, "pool_step_window", "pool_window_values")
        _pool_sum_and_value(t, step, mode)
    with c3:
        progress_view(t, out, step.index, "pool_step_output", (lo, hi, colours))


def pool_lesson_view(
    t: Translator, step, x: np.ndarray, out: np.ndarray, mode: str, small: bool, scale
) -> None:
    """One pooling window on one screen: the input with the window (its padding
    hatched), the window's values with the winner framed, the arithmetic and the pooled
    value, the output map so far; value maps, the input and output taking clicks. All
    on the input's colour ``scale``, so the same colour is the same value everywhere."""
    y0, x0 = step.position
    kh, kw = step.window.shape
    ph, pw = step.pad
    h = LESSON_HEIGHT
    window = [window_shape(y0, x0, kh, kw)]
    c1, c2, c3 = st.columns([3, 2, 3])
    with c1:
        if small:
            xp = np.pad(x, ((ph, ph), (pw, pw)), constant_values=np.nan)
            pad = np.isnan(xp)
            grid = value_grid(
                xp, title=t("pool.step.input"), colour=scale, digits=3, shapes=window,
                hatch=pad if pad.any() else None, t=t
            )  # fmt: skip
        else:
            xp = np.pad(x, ((ph, ph), (pw, pw)), constant_values=scale.vmin)
            grid = image_grid(
                xp, title=t("pool.step.overview"), colour=scale, shapes=window, colorbar=False, t=t
            )  # fmt: skip
        _small_map(t, grid, "pool_step_input", h - LESSON_INPUT_CHROME, click=True)
    with c2:
        winner = [window_shape(*step.winner, 1, 1)] if step.winner is not None else []
        inside = np.asarray(step.inside, bool)
        grid = value_grid(
            np.where(inside, step.window, np.nan), title=t("pool.step.window"), colour=scale,
            shapes=winner, hatch=None if inside.all() else ~inside, t=t
        )  # fmt: skip
        _small_map(t, grid, "pool_step_window", h - 140)  # the sum and value below it fit
        _pool_sum_and_value(t, step, mode)
    with c3:
        grid = progress_grid(t, out, step.index, scale)
        _small_map(t, grid, "pool_step_output", h - LESSON_MAP_CHROME, click=True)


def _pool_arithmetic(t: Translator, step, mode: str) -> str:
    vals = [_arith(t, v) for v in step.window[step.inside]]
    value = sig(t, step.value)
    if mode == "avg":
        return t("pool.step.mean", values=" + ".join(vals), n=step.window.size, value=value)
    return t(f"pool.step.{mode}", values=t("pool.step.sep").join(vals), value=value)
