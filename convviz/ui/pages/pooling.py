"""Pooling & activations page: max / average / min pooling stepped like the convolution,
and activation functions shown before/after with their curves.

Thin: widgets -> :func:`convviz.pool.pool2d` and :data:`convviz.activations.ACTIVATIONS`
-> :mod:`convviz.figures`; the stepper is :func:`convviz.ui.widgets.stepper.pool_stepper`.
Every value is owned by its widget's key (defaults set once, below).
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from convviz.activations import ACTIVATIONS, leaky_relu
from convviz.figures import activation_curves_figure, histogram_figure, map_figure, value_range
from convviz.i18n import Translator
from convviz.pool import POOL_MODES, check_settings, pool2d
from convviz.shapes import SLOPE_MAX, WINDOW_MAX, output_size
from convviz.ui.common import download_buttons, image_input, lesson_css, user_errors
from convviz.ui.i18n import tr
from convviz.ui.widgets.charts import show
from convviz.ui.widgets.labels import act_label, pool_mode_label
from convviz.ui.widgets.stepper import pool_stepper

STATE_KEYS = (
    "pool_source",
    "pool_colour",
    "pool_max_side",
    "pool_sample",
    "pool_mode",
    "pool_size",
    "pool_stride_same",
    "pool_stride",
    "pool_padding",
    "pool_speed",
    "pool_play_by",
    "pool_step",
    "pool_activation",
    "pool_alpha",
)
DEFAULTS = {
    "pool_mode": "max",
    "pool_size": 2,
    "pool_stride_same": True,
    "pool_stride": 1,
    "pool_padding": 0,
    "pool_activation": "relu",
    "pool_alpha": 0.1,
}
ACTIVATION_NAMES = ("relu", "leaky_relu", "sigmoid", "tanh")
FEATURE_MAP = "conv_feature_map"  # set by the Convolution page
# A small signed example: pooling picks visibly different winners per mode.
EXAMPLE = np.array(
    [
        [1, 3, -2, 0, 5, 1],
        [4, -1, 2, 8, -3, 2],
        [0, 6, -5, 1, 2, 7],
        [3, 2, 4, -4, 0, 1],
        [-2, 5, 1, 3, 6, -1],
        [7, 0, 2, 2, -3, 4],
    ],
    dtype=np.float64,
)
EXAMPLE.setflags(write=False)

ss = st.session_state


def _input(t: Translator) -> tuple[np.ndarray | None, str, bool, str]:
    """The map to pool: ``(array (H, W), caption, small, source)``."""
    fm = ss.get(FEATURE_MAP)
    sources = ("example", "sample", "upload")
    if fm is not None:
        sources = ("feature_map", *sources)
    if ss.get("pool_source") not in sources:
        ss.pool_source = sources[0]
    image, _, source, _ = image_input("pool", sources=sources, allow_rgb=False, default_size=256)
    if source == "feature_map":
        kh, kw = fm.kernel_shape
        caption = t("pool.input.feature_map", kh=kh, kw=kw)
        return np.asarray(fm.values, np.float64), caption, False, source
    if source == "example":
        return EXAMPLE, t("pool.input.example"), True, source
    if fm is None:
        st.sidebar.caption(t("pool.tip"))
    if image is not None and image.ndim == 3:  # an RGB upload: pool its grey version
        image = image.mean(axis=-1)
    return image, "", False, source


def _on_size() -> None:
    # The padding may be at most half the window: a smaller window lowers it.
    ss.pool_padding = min(int(ss.pool_padding), int(ss.pool_size) // 2)


def _params(t: Translator) -> dict:
    sb = st.sidebar
    sb.subheader(t("pool.params"))
    mode = sb.radio(
        t("pool.mode"),
        POOL_MODES,
        key="pool_mode",
        format_func=lambda m: pool_mode_label(t, m),
        horizontal=True,
    )
    size = int(
        sb.number_input(
            t("pool.size"),
            1,
            WINDOW_MAX,
            key="pool_size",
            on_change=_on_size,
            help=t("pool.size.help"),
        )
    )
    same = sb.toggle(t("pool.stride_same"), key="pool_stride_same")
    stride = size
    if not same:
        stride = int(
            sb.number_input(
                t("pool.stride"), 1, WINDOW_MAX, key="pool_stride", help=t("pool.stride.help")
            )
        )
    padding = int(
        sb.number_input(
            t("pool.padding"), 0, size // 2, key="pool_padding", help=t("pool.padding.help")
        )
    )
    return {"size": size, "stride": stride, "padding": padding, "mode": mode}


def _activations(t: Translator, x: np.ndarray) -> None:
    st.subheader(t("pool.act"))
    st.caption(t("pool.act.caption"))
    c1, c2 = st.columns([1, 2])
    with c1:
        name = st.radio(
            t("pool.act.choose"),
            ACTIVATION_NAMES,
            key="pool_activation",
            format_func=lambda a: act_label(t, a),
        )
        alpha = 0.01
        if name == "leaky_relu":
            alpha = st.slider(
                t("pool.act.alpha"),
                0.0,
                SLOPE_MAX,
                key="pool_alpha",
                step=0.01,
                help=t("pool.act.alpha.help"),
            )
    fns = {a: ACTIVATIONS[a] for a in ACTIVATION_NAMES}
    fns["leaky_relu"] = functools.partial(leaky_relu, alpha=alpha)
    with c2:
        curves = activation_curves_figure(
            {act_label(t, a): f for a, f in fns.items()},
            highlight=act_label(t, name),
            height=280,
            t=t,
        )
        show(t, curves, "pool_curves", "activations")
    y = np.asarray(fns[name](x), dtype=np.float64)
    b1, b2 = st.columns(2)
    lo, hi, scale = value_range(x)
    with b1:
        before = map_figure(
            x, title=t("pool.act.before"), vmin=lo, vmax=hi, colorscale=scale, digits=3, t=t
        )
        show(t, before, "pool_act_before", "before_activation")
        hist = histogram_figure(x, title=t("pool.act.hist_before"), height=180, t=t)
        show(t, hist, "pool_act_hist_before", "hist_before")
    with b2:
        lo2, hi2, scale2 = value_range(y)
        after = map_figure(
            y,
            title=t("pool.act.after", activation=act_label(t, name)),
            vmin=lo2,
            vmax=hi2,
            colorscale=scale2,
            digits=3,
            t=t,
        )
        show(t, after, "pool_act_after", "after_activation")
        hist = histogram_figure(y, title=t("pool.act.hist_after"), height=180, t=t)
        show(t, hist, "pool_act_hist_after", "hist_after")
        download_buttons(y, f"after_{name}", "pool_act_dl", vmin=lo2, vmax=hi2)


def render() -> None:
    t = tr()
    for key, value in DEFAULTS.items():
        ss.setdefault(key, value)
    lesson_css()
    st.title(t("pool.title"))
    st.caption(t("pool.intro"))
    x, caption, small, source = _input(t)
    if x is None:
        return
    x = np.asarray(x, dtype=np.float64)
    p = _params(t)
    out_hw = [output_size(n, p["size"], p["stride"], p["padding"]) for n in x.shape]
    if min(out_hw) < 1:
        st.error(
            t(
                "pool.error.too_big",
                size=p["size"],
                h=x.shape[0] + 2 * p["padding"],
                w=x.shape[1] + 2 * p["padding"],
            )
        )
        return
    with user_errors() as ok:
        check_settings(p["size"], p["stride"], p["padding"])  # the documented ranges
        out = pool2d(x, p["size"], stride=p["stride"], padding=p["padding"], mode=p["mode"])
    if not ok[0]:
        return
    # The lesson first, on one screen (window, values, pooled value, output map, controls);
    # an image's window opens where the map varies most (the example's on its corner).
    st.caption(t(f"pool.step.caption.{p['mode']}"))
    start = None if small else (source, x.shape, round(float(x.sum()), 3))
    with st.container(key="pool_lesson"):
        pool_stepper(t, x, out, small=small, lesson=True, start=start, **p)
    st.subheader(
        t("pool.heading", mode=pool_mode_label(t, p["mode"]), size=p["size"], stride=p["stride"])
    )
    lo, hi, scale = value_range(x)
    extent = (max(x.shape[0], out.shape[0]), max(x.shape[1], out.shape[1]))
    same = {"vmin": lo, "vmax": hi, "colorscale": scale, "extent": extent, "digits": 3}
    c1, c2 = st.columns(2)
    with c1:
        show(t, map_figure(x, title=t("pool.input"), **same, t=t), "pool_in", "pool_input")
        st.caption(t("pool.input.size", h=x.shape[0], w=x.shape[1]))
        if caption:
            st.caption(caption)
    with c2:
        show(t, map_figure(out, title=t("pool.pooled"), **same, t=t), "pool_out", "pooled")
        st.caption(t("pool.pooled.size", h=out.shape[0], w=out.shape[1]))
        download_buttons(out, "pooled", "pool_dl", vmin=lo, vmax=hi)
    _activations(t, x)
