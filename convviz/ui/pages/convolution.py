"""Convolution page: the sliding-window lesson, the kernel editor, parameters and result.

Thin: widgets -> :func:`convviz.conv.conv2d` -> :mod:`convviz.figures`; the grid
editors and the stepper are widgets (:mod:`convviz.ui.widgets`).

Layout, top to bottom: the lesson (the stepper with ``lesson=True``: the input with the
window, kernel, products, the sum, the output cell and map, and the step controls, on one
screen at 1280x720; ``tests/test_browser_lesson.py`` checks the boxes), then the
workbench (the kernel editor and, beside it, the whole feature map it makes), then the
Numbers input and the output-size formula beside the whole input, then the histogram and
downloads. The parameters live in the sidebar, reachable beside the lesson.

Two fragments (see [editor] below): a kernel change reruns only the workbench, so the
map repaints at once (``benchmarks/bench_ui.py``), and the lesson follows in a second run.

One owner per value. :class:`ConvState` (``st.session_state["conv"]``) owns the
kernel and the Numbers input (each a committed array in a
:class:`~convviz.ui.widgets.grid.GridState`, plus its editors' pending edits), the
preset the kernel came from and the messages for the next run; every other value
is owned by its widget's key. The callbacks form a tree: size, preset, random,
normalise and per-channel each make a new kernel and hand it to :func:`_new_kernel`.
Each run reads the grids once, resolves the padding once (:mod:`convviz.shapes`)
and draws the feature map before the editors (see :mod:`convviz.ui.widgets.grid`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from convviz.activations import ACTIVATIONS
from convviz.conv import conv2d
from convviz.errors import CodedError
from convviz.figures import (
    GREYS,
    HEATMAP_MAX_CELLS,
    TEXT_MAX_CELLS,
    colorbar_strip,
    colour_legend,
    colour_scale,
    heatmap_figure,
    histogram_figure,
    image_figure,
    kernel_figure,
    map_figure,
    png_bytes,
    value_grid,
)
from convviz.i18n import Translator
from convviz.images import SAMPLES
from convviz.kernels import KERNELS
from convviz.shapes import (
    DILATION_MAX,
    PAD_MODES,
    PADDING_MAX,
    STRIDE_MAX,
    VALUE_MAX,
    check_magnitude,
    output_size,
    resolve_padding,
)
from convviz.ui.common import download_buttons, image_input, lesson_css, user_errors
from convviz.ui.i18n import error_text, tr
from convviz.ui.params import (
    ACTIVATION_NAMES,
    CLASSIC_INPUT,
    DEFAULT_SAMPLE,
    KERNEL_MAX,
    NUMBERS_MAX,
    PADDING_CHOICES,
    QUERY_KEYS,
    ConvSettings,
    decode_query,
    encode_query,
    normalise_sum,
    output_size_latex,
    random_kernel,
    resized_keeping,
    sig,
)
from convviz.ui.widgets.charts import show
from convviz.ui.widgets.grid import GridProblems, GridState, grid_editor, grid_value, sent_back
from convviz.ui.widgets.labels import act_label, kernel_description, kernel_label, pad_mode_label
from convviz.ui.widgets.stepper import CHANNELS, conv_stepper
from convviz.ui.widgets.value_map import value_map

MAP_PX = 520  # the larger of the input and the feature map is drawn this wide (images, value maps)
# Widget keys kept across page switches (see common.persist_widget_state).
HEAT_MIN_SIDE = 7  # kernels this wide or taller are also drawn as a heat map

STATE_KEYS = (
    "conv_source",
    "conv_colour",
    "conv_max_side",
    "conv_sample",
    "conv_bias",
    "conv_stride",
    "conv_padding",
    "conv_padding_n",
    "conv_pad_mode",
    "conv_dilation",
    "conv_flip",
    "conv_activation",
    "conv_robust",
    "conv_speed",
    "conv_play_by",
    "conv_step",
)
STATE = "conv"  # session key of the ConvState
KERNEL = "conv_kernel"  # kernel editors: conv_kernel_<version>_<channel>
NUMBERS = "conv_numbers"  # Numbers editor: conv_numbers_<version>_0
FEATURE_MAP = "conv_feature_map"  # a FeatureMap, for the Pooling page

ss = st.session_state


@dataclass
class ConvState:
    """What the Convolution page remembers beyond its widgets."""

    kernel: GridState  # (kh, kw), or (3, kh, kw) per channel (a grey input uses channel 0)
    numbers: GridState  # the Numbers input (rows, cols)
    preset: str | None = None  # the preset the kernel came from
    url_problems: list[tuple[str, CodedError]] = field(default_factory=list)  # shown once
    message: CodedError | None = None  # from a callback, shown on the next run
    bias: float = 0.0  # the last valid bias: an out-of-range one typed is put back to it
    # what a resize keeps: each grid at the largest size it had (params.resized_keeping)
    kernel_canvas: np.ndarray | None = None
    numbers_canvas: np.ndarray | None = None


@dataclass(frozen=True)
class FeatureMap:
    """The page's current feature map, shared with the Pooling page."""

    values: np.ndarray  # (Ho, Wo), after the activation
    kernel_shape: tuple[int, int]


# --------------------------------------------------------------------------- state


def _state() -> ConvState:
    """This session's ConvState; the first run takes the settings from the URL."""
    if STATE not in ss:
        s, problems = decode_query(st.query_params.to_dict(), SAMPLES)
        ss[STATE] = ConvState(
            GridState(s.kernel), GridState(CLASSIC_INPUT), url_problems=problems, bias=s.bias
        )
        for key, value in _widget_values(s).items():
            ss[key] = value
    for key, value in _widget_values(ConvSettings()).items():
        ss.setdefault(key, value)  # widgets a bare page script never drew
    # Signed edge maps on ±P99(|x|) by default: on ±max a few strong edges wash the rest
    # out to white (12-29% of a 512-px sample's pixels coloured instead of 5-14%).
    ss.setdefault("conv_robust", True)
    return ss[STATE]


def _widget_values(s: ConvSettings) -> dict[str, object]:
    padding = "number" if isinstance(s.padding, int) else s.padding
    return {
        "conv_source": s.source,
        "conv_sample": s.sample,
        "conv_colour": s.colour,
        "conv_bias": float(s.bias),
        "conv_stride": s.stride,
        "conv_padding": padding,
        "conv_padding_n": s.padding if isinstance(s.padding, int) else 1,
        "conv_pad_mode": s.pad_mode,
        "conv_dilation": s.dilation,
        "conv_flip": s.flip,
        "conv_activation": s.activation,
    }


def _valid_bias(state: ConvState) -> float:
    """The bias widget's value if within ``VALUE_MAX``; else the previous one, put back.

    Runs before the widget is drawn, so its value may still be set here.
    """
    try:
        state.bias = check_magnitude(ss.conv_bias, "bias")
    except (CodedError, TypeError):
        ss.conv_bias = state.bias
        state.message = CodedError("conv.bias.too_large", limit=VALUE_MAX)
    return state.bias


def _kernel() -> np.ndarray:
    return grid_value(KERNEL, ss[STATE].kernel, limit=VALUE_MAX)[0]


def _new_kernel(k: np.ndarray, preset: str | None = None, canvas: np.ndarray | None = None) -> None:
    """Every new kernel goes through here: fresh editors show it. ``canvas`` is what a
    resize remembers (None: a new kernel, nothing larger to remember)."""
    state = ss[STATE]
    state.kernel.replace(k)
    state.preset = preset
    state.kernel_canvas = canvas


def _on_size(rows_key: str, cols_key: str) -> None:
    state = ss[STATE]
    k, canvas = resized_keeping(
        _kernel(), int(ss[rows_key]), int(ss[cols_key]), state.kernel_canvas
    )
    _new_kernel(k, canvas=canvas)


def _on_preset(key: str) -> None:
    name = ss[key]
    if name not in KERNELS:
        ss[STATE].preset = None  # "Choose a preset": the kernel stays
        return
    w = np.array(KERNELS[name].weights)
    _new_kernel(np.stack([w] * 3) if _kernel().ndim == 3 else w, preset=name)


def _on_random() -> None:
    _new_kernel(random_kernel(_kernel().shape, np.random.default_rng()))


def _on_normalise() -> None:
    try:
        _new_kernel(normalise_sum(_kernel()))
    except CodedError as exc:
        ss[STATE].message = exc


def _on_per_channel(key: str) -> None:
    k = _kernel()
    if ss[key] and k.ndim == 2:
        _new_kernel(np.stack([k] * 3), ss[STATE].preset)
    elif not ss[key] and k.ndim == 3:
        _new_kernel(k[0], ss[STATE].preset)


def _on_numbers_size(rows_key: str, cols_key: str) -> None:
    state = ss[STATE]
    a = grid_value(NUMBERS, state.numbers, limit=VALUE_MAX)[0]
    a, state.numbers_canvas = resized_keeping(
        a, int(ss[rows_key]), int(ss[cols_key]), state.numbers_canvas
    )
    state.numbers.replace(a)


# --------------------------------------------------------------------------- widgets


def _sidebar(t: Translator) -> dict:
    """The convolution's parameters, the activation and the colour range."""
    sb = st.sidebar
    sb.subheader(t("conv.params"))
    stride = sb.number_input(
        t("conv.stride"), 1, STRIDE_MAX, key="conv_stride", help=t("conv.stride.help")
    )
    how = sb.selectbox(
        t("conv.padding"),
        PADDING_CHOICES,
        key="conv_padding",
        format_func=lambda h: t(f"conv.padding.{h}"),
        help=t("conv.padding.help"),
    )
    padding: str | int = how
    if how == "number":
        padding = int(sb.number_input(t("conv.padding_n"), 0, PADDING_MAX, key="conv_padding_n"))
    pad_mode = sb.selectbox(
        t("conv.pad_mode"),
        list(PAD_MODES),
        key="conv_pad_mode",
        format_func=lambda m: pad_mode_label(t, m),
        help=t("conv.pad_mode.help"),
    )
    dilation = sb.number_input(
        t("conv.dilation"), 1, DILATION_MAX, key="conv_dilation", help=t("conv.dilation.help")
    )
    flip = sb.toggle(t("conv.flip"), key="conv_flip", help=t("conv.flip.help"))
    activation = sb.selectbox(
        t("conv.activation"),
        ACTIVATION_NAMES,
        key="conv_activation",
        format_func=lambda a: act_label(t, a),
        help=t("conv.activation.help", alpha=0.01),
    )
    robust = sb.toggle(t("conv.robust"), key="conv_robust", help=t("conv.robust.help"))
    return {
        "stride": int(stride),
        "padding": padding,
        "pad_mode": pad_mode,
        "dilation": int(dilation),
        "flip": bool(flip),
        "activation": activation,
        "robust": bool(robust),
    }


def _kernel_section(
    t: Translator, state: ConvState, rgb: bool, problems: GridProblems, sync: str | None = None
) -> None:
    st.subheader(t("conv.kernel"))
    k, v = state.kernel.base, state.kernel.version
    rows_key, cols_key = f"conv_kh_{v}", f"conv_kw_{v}"
    c1, c2, c3 = st.columns([1, 1, 3])
    size = {"on_change": _on_size, "args": (rows_key, cols_key)}
    c1.number_input(t("conv.rows"), 1, KERNEL_MAX, value=k.shape[-2], key=rows_key, **size)
    c2.number_input(t("conv.cols"), 1, KERNEL_MAX, value=k.shape[-1], key=cols_key, **size)
    options = ["", *KERNELS]
    c3.selectbox(
        t("conv.preset"),
        options,
        index=options.index(state.preset) if state.preset in KERNELS else 0,
        key=f"conv_preset_{v}",
        on_change=_on_preset,
        args=(f"conv_preset_{v}",),
        format_func=lambda n: kernel_label(t, n) if n in KERNELS else t("conv.preset.choose"),
    )
    if state.preset in KERNELS:
        st.caption(kernel_description(t, state.preset))
    b1, b2, b3 = st.columns(3)
    b1.button(t("conv.random"), key="conv_random", on_click=_on_random, width="stretch")
    b2.button(t("conv.normalise"), key="conv_normalise", on_click=_on_normalise, width="stretch")
    if rgb:
        b3.toggle(
            t("conv.per_channel"),
            value=k.ndim == 3,
            key=f"conv_per_channel_{v}",
            on_change=_on_per_channel,
            args=(f"conv_per_channel_{v}",),
            help=t("conv.per_channel.help"),
        )
    if state.message is not None:
        st.warning(error_text(state.message, t))
        state.message = None
    grid_editor(
        KERNEL,
        state.kernel,
        t,
        problems,
        channels=None if rgb else [0],  # a grey input uses the first channel
        channel_names=[t(f"conv.channel.{c}") for c in CHANNELS],
        sync=sync,
        on_change=_on_kernel_editor,
    )
    if max(k.shape[-2:]) >= HEAT_MIN_SIDE:  # large kernels read better as colours
        planes = [k] if k.ndim == 2 else [k[c] for c in range(k.shape[0])]
        cols = st.columns(len(planes))
        for c, (col, plane) in enumerate(zip(cols, planes, strict=True)):
            fig = kernel_figure(plane, title=t("conv.kernel.heat"), t=t)
            with col:
                show(t, fig, f"conv_kernel_heat_{c}", "kernel")
    st.number_input(
        t("conv.bias"),
        # No min/max here: Streamlit silently replaces an out-of-range value by the
        # minimum (measured: 1e308 typed became -1e6); _valid_bias keeps the last one.
        key="conv_bias",
        step=0.1,
        format="%g",
        help=t("conv.bias.help"),
    )


def _numbers_section(t: Translator, state: ConvState, problems: GridProblems) -> None:
    st.subheader(t("conv.numbers"))
    a, v = state.numbers.base, state.numbers.version
    rows_key, cols_key = f"conv_num_rows_{v}", f"conv_num_cols_{v}"
    size = {"on_change": _on_numbers_size, "args": (rows_key, cols_key)}
    c1, c2 = st.columns(2)
    c1.number_input(t("conv.rows"), 1, NUMBERS_MAX, value=a.shape[0], key=rows_key, **size)
    c2.number_input(t("conv.cols"), 1, NUMBERS_MAX, value=a.shape[1], key=cols_key, **size)
    grid_editor(NUMBERS, state.numbers, t, problems)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """The padding and output size of this run, resolved once."""

    in_hw: tuple[int, int]
    k_hw: tuple[int, int]
    pad: tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
    out_hw: tuple[int, int]

    def fits(self) -> bool:
        return min(self.out_hw) >= 1

    def extent(self, dilation: int) -> dict[str, int]:
        """The dilated kernel's extent and the padded input's size (for the message)."""
        (kh, kw), (h, w), ((top, bottom), (left, right)) = self.k_hw, self.in_hw, self.pad
        return {
            "eh": dilation * (kh - 1) + 1,
            "ew": dilation * (kw - 1) + 1,
            "hp": h + top + bottom,
            "wp": w + left + right,
        }


def _geometry(in_hw: tuple[int, int], s: ConvSettings) -> Geometry:
    k_hw = (int(s.kernel.shape[-2]), int(s.kernel.shape[-1]))
    st_, d = (s.stride, s.stride), (s.dilation, s.dilation)
    pad = resolve_padding(s.padding, in_hw, k_hw, st_, d)
    out_hw = tuple(output_size(in_hw[i], k_hw[i], s.stride, pad[i], s.dilation) for i in range(2))
    return Geometry(in_hw, k_hw, pad, out_hw)


def _formula(t: Translator, g: Geometry, s: ConvSettings) -> None:
    """The output-size formula per axis with the user's numbers; where no window fits,
    the reason in words (the formula would end in a size of 0 or less)."""
    st.markdown(t("conv.formula"))
    out = t("conv.formula.out")
    for axis, i in (("H", 0), ("W", 1)):  # i18n: not text (axis letters of the formula)
        if g.out_hw[i] >= 1:
            # keyed: common.LESSON_CSS sets its size so it fits its half of a 1280 px screen
            st.container(key=f"conv_formula_{axis}").latex(
                output_size_latex(
                    g.in_hw[i], g.k_hw[i], s.stride, g.pad[i], s.dilation, axis, t=t, out=out
                )
            )
            continue
        pad = sum(g.pad[i])
        st.markdown(
            t(
                "conv.formula.none",
                axis=axis,
                extent=s.dilation * (g.k_hw[i] - 1) + 1,
                d=s.dilation,
                k=g.k_hw[i],
                padded=g.in_hw[i] + pad,
                n=g.in_hw[i],
                pad=pad,
            )
        )


# --------------------------------------------------------------------------- result


def _convolve(x: np.ndarray, s: ConvSettings) -> tuple[np.ndarray, np.ndarray] | None:
    """The raw map and the map after the activation; None (an error shown) when the core
    refused the settings. ``x`` is ``(H, W)`` or ``(3, H, W)``."""
    with user_errors() as ok:
        out = conv2d(x, s.kernel, s.bias, **s.conv_kwargs()).astype(np.float64)
    if not ok[0]:
        return None
    with user_errors() as ok:
        act = ACTIVATIONS[s.activation](out)
    if not ok[0]:
        return None
    return out, act


def _map_extent(image: np.ndarray, act: np.ndarray) -> tuple[int, int]:
    """The larger of the input's and the map's sizes: both are drawn to this scale."""
    return (max(image.shape[0], act.shape[0]), max(image.shape[1], act.shape[1]))


def _as_image(image: np.ndarray, act: np.ndarray) -> bool:
    """Big maps go out as images: a repaint swaps one <img>, several times faster than
    redrawing a plotly chart (the zoomed neighbourhood in the lesson shows the numbers)."""
    h, w = image.shape[:2]
    return act.size > HEATMAP_MAX_CELLS or h * w > HEATMAP_MAX_CELLS


def _px_scale(image: np.ndarray, act: np.ndarray) -> float:
    """Pixels per cell: the larger of the two maps is drawn :data:`MAP_PX` wide, the other
    to scale."""
    return MAP_PX / max(_map_extent(image, act))


def _map_view(
    t: Translator, image: np.ndarray, act: np.ndarray, s: ConvSettings, robust: bool
) -> tuple[float, float]:
    """The feature map (``act``, after the activation) at the input's scale, with its
    colour bar, legend and caption; it becomes the map the Pooling page pools
    (:data:`FEATURE_MAP`). Returns its colour range, for the downloads."""
    cs = colour_scale(act, robust=None if robust else False)  # None: robust unless tiny
    lo, hi, scale = cs.as_tuple()
    if s.activation == "none":
        title = t("conv.result.map")
    else:
        title = t("conv.result.map_after", activation=act_label(t, s.activation))
    if _as_image(image, act):
        with st.container(key="conv_output_img"):
            st.markdown(f"**{title}**")
            width = max(1, round(act.shape[1] * _px_scale(image, act)))
            st.image(png_bytes(act, lo, hi, scale), width=width, output_format="PNG")
            st.image(png_bytes(colorbar_strip(scale) / 255.0), width=width, output_format="PNG")
            st.caption(colour_legend(cs, t))
    elif act.size <= TEXT_MAX_CELLS:  # the numbers page: each cell with its number
        grid = value_grid(act, title=title, colour=cs, extent=_map_extent(image, act), t=t)
        value_map(grid, key="conv_output_map", t=t, max_px=MAP_PX)
    else:
        fig = map_figure(act, title=title, colour=cs, extent=_map_extent(image, act), digits=4, t=t)
        show(t, fig, "conv_output_fig", "feature_map")
    st.caption(
        t(
            "conv.result.caption",
            h=act.shape[0],
            w=act.shape[1],
            min=sig(t, act.min(), 4),
            max=sig(t, act.max(), 4),
            lo=sig(t, lo, 3),
            hi=sig(t, hi, 3),
        )
    )
    ss[FEATURE_MAP] = FeatureMap(act, (int(s.kernel.shape[-2]), int(s.kernel.shape[-1])))
    return lo, hi


def _input_view(t: Translator, image: np.ndarray, act: np.ndarray, numbers: bool) -> None:
    """The input at the feature map's scale. ``image`` is ``(H, W)`` or ``(H, W, 3)``."""
    h, w = image.shape[:2]
    in_title = t("conv.result.input")
    if image.ndim == 3:
        in_caption = t("conv.result.input_rgb", h=h, w=w)
    else:
        in_caption = t("conv.result.input_size", h=h, w=w)
    if _as_image(image, act):
        with st.container(key="conv_input_img"):
            st.markdown(f"**{in_title}**")
            st.image(
                png_bytes(image, 0.0, 1.0, GREYS),
                width=max(1, round(w * _px_scale(image, act))),
                output_format="PNG",  # as encoded: no lossy JPEG, no second encode
            )
            st.caption(in_caption)
        return
    kw = {"colorscale": GREYS, "extent": _map_extent(image, act)}
    if numbers and image.size <= TEXT_MAX_CELLS:  # drawn like the feature map beside it
        cs = colour_scale(image, colorscale=GREYS)
        grid = value_grid(image, title=in_title, colour=cs, extent=kw["extent"], t=t)
        value_map(grid, key="conv_input_map", t=t, max_px=MAP_PX)
        st.caption(in_caption)
        return
    if numbers:
        fig = heatmap_figure(image, title=in_title, digits=4, **kw, t=t)
    elif image.ndim == 3:
        fig = image_figure(image, title=in_title, extent=kw["extent"], t=t)
    else:
        fig = image_figure(image, title=in_title, vmin=0, vmax=1, **kw, t=t)
    show(t, fig, "conv_input_fig", "input")
    st.caption(in_caption)


def _histogram_and_downloads(t: Translator, act: np.ndarray, lo: float, hi: float) -> None:
    h1, h2 = st.columns(2)
    with h1:
        show(
            t,
            histogram_figure(act, title=t("conv.result.histogram"), t=t),
            "conv_hist",
            "histogram",
        )
    with h2:
        st.markdown(f"**{t('conv.result.download')}**")
        download_buttons(act, "feature_map", "conv_dl", vmin=lo, vmax=hi)
        st.caption(t("conv.result.download.help"))


# --------------------------------------------------------------------------- page


def render() -> None:
    t = tr()
    state = _state()
    lesson_css()
    st.title(t("conv.title"))
    st.caption(t("conv.intro"))
    for name, err in state.url_problems:
        st.warning(t("conv.url.ignored", name=name, reason=error_text(err, t)))
    state.url_problems = []

    image, _, source, colour = image_input(
        "conv",
        sources=("numbers", "sample", "upload"),
        allow_rgb=ss.get("conv_source") != "numbers",
    )
    p = _sidebar(t)
    _editable(t, state, image, source, colour, p)


@dataclass(frozen=True)
class Work:
    """What the workbench computed in this run, for the lesson and the rest of the page."""

    settings: ConvSettings
    x: np.ndarray | None  # the input as the core takes it, (H, W) or (3, H, W); None: none
    geometry: Geometry | None  # None: no input
    maps: tuple[np.ndarray, np.ndarray] | None  # (raw, after the activation); None: none made
    colour_range: tuple[float, float] = (0.0, 1.0)


# [editor] Two fragments. The page's (``_editable``): a parameter of the page's own
# (the Numbers grid) reruns the lesson, the editors and the maps, not the input decode
# and the sidebar. Inside it the workbench's (``_workbench``: the kernel editor and the
# feature map beside it): a kernel edit, a preset, the kernel's buttons rerun only that,
# so the map repaints at once; the kernel editor then sends back a token (its ``sync``)
# once that run is on screen, and its callback reruns the page's fragment, which brings
# the lesson up to date. Measured in Chromium (benchmarks/bench_ui.py): a kernel edit's
# map waited for the lesson's ~90 deltas and the browser's drawing of them otherwise.
PAGE_FRAGMENT = "conv_editable"
WHOLE_RUN = "conv_whole_run"  # session key: the number of the page fragment's last run
BENCH_RUN = "conv_bench_run"  # ... the page run the workbench last ran inside
SYNC = "conv_sync"  # ... the token the kernel editor is to send back (None: none)


def _on_kernel_editor(key: str) -> None:
    """A kernel editor's value changed: an edit (the workbench reruns by itself), or
    the token sent back after a partial run (the page's fragment reruns: the lesson)."""
    if sent_back(key, ss.get(SYNC)):
        ss[SYNC] = None
        st.rerun(PAGE_FRAGMENT)


@st.fragment(key=PAGE_FRAGMENT)
def _editable(
    t: Translator, state: ConvState, image: np.ndarray | None, source: str, colour: str, p: dict
) -> None:
    numbers = source == "numbers"
    number_problems = GridProblems()
    if numbers:
        image, number_problems = grid_value(NUMBERS, state.numbers, limit=VALUE_MAX)
    ss[WHOLE_RUN] = ss.get(WHOLE_RUN, 0) + 1
    # The lesson first on the page, on one screen: the window, kernel, products, sum and
    # output cell with the step controls; the workbench (kernel and map) and the rest
    # below it. Drawn last: the workbench's map goes out first (see widgets.grid).
    lesson = st.container(key="conv_lesson")
    work = _workbench(t, state, image, source, colour, p)
    s, g = work.settings, work.geometry
    left, right = st.columns(2, gap="large")
    with left:
        if numbers:
            _numbers_section(t, state, number_problems)  # the Numbers grid editor
        if g is not None:
            _formula(t, g, s)
    if work.x is not None and g is not None:
        if not g.fits():
            with lesson:
                st.error(t("conv.error.too_big", **g.extent(s.dilation)))
        elif work.maps is not None:
            out, act = work.maps
            with right:
                _input_view(t, image, act, numbers)
            _histogram_and_downloads(t, act, *work.colour_range)
            with lesson:
                start = None if numbers else (source, s.sample, colour, image.shape,
                                              round(float(image.sum()), 3))  # fmt: skip
                conv_stepper(t, work.x, s, out, g.pad, numbers=numbers, lesson=True, start=start)
    # A link reproduces this view; other parameters (the language) stay.
    now = st.query_params.to_dict()
    query = {k: v for k, v in now.items() if k not in QUERY_KEYS} | encode_query(s)
    if now != query:
        st.query_params.from_dict(query)


@st.fragment
def _workbench(
    t: Translator, state: ConvState, image: np.ndarray | None, source: str, colour: str, p: dict
) -> Work:
    """The kernel editor and the feature map beside it; see [editor] above.

    Reruns by itself when a kernel widget changes (a partial run: the lesson is then
    behind, and the kernel editor is given a token to send back). ``image`` is the
    page's input, ``(H, W)`` or ``(H, W, 3)`` (the Numbers grid's value in numbers mode).
    """
    partial = ss.get(BENCH_RUN) == ss.get(WHOLE_RUN)  # no page run since its last run
    ss[BENCH_RUN] = ss.get(WHOLE_RUN)
    ss[SYNC] = f"{ss.get(WHOLE_RUN)}.{time.monotonic_ns()}" if partial else None
    rgb = image is not None and image.ndim == 3
    kernel, kernel_problems = grid_value(KERNEL, state.kernel, limit=VALUE_MAX)
    s = ConvSettings(
        kernel=kernel if rgb or kernel.ndim == 2 else kernel[0],
        bias=_valid_bias(state),  # its widget is drawn below, with the kernel
        stride=p["stride"],
        padding=p["padding"],
        pad_mode=p["pad_mode"],
        dilation=p["dilation"],
        flip=p["flip"],
        source=source,
        sample=ss.get("conv_sample", DEFAULT_SAMPLE),
        colour=colour,
        activation=p["activation"],
    )
    left, right = st.columns(2, gap="large")
    x = g = maps = None
    colour_range = (0.0, 1.0)
    if image is not None:
        x = np.moveaxis(image, -1, 0) if rgb else image  # (3, H, W) or (H, W)
        g = _geometry(image.shape[:2], s)
        if g.fits():
            maps = _convolve(x, s)
            if maps is not None:
                # Latency: the feature map goes out first, before the kernel editor
                # drawn beside it (see widgets.grid).
                with right:
                    st.subheader(t("conv.result"))
                    colour_range = _map_view(t, image, maps[1], s, p["robust"])
    with left:
        _kernel_section(t, state, rgb, kernel_problems, sync=ss[SYNC])
    return Work(s, x, g, maps, colour_range)
