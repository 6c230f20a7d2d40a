"""Pooling & activations page: max / average / min pooling stepped like the convolution,
and activation functions shown before/after with their curves.

Thin: widgets -> :func:`convviz.pool.pool2d` / :func:`convviz.pool.pool2d_step` and
:data:`convviz.activations.ACTIVATIONS` -> :mod:`convviz.figures`.
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from convviz.activations import ACTIVATIONS, leaky_relu
from convviz.figures import (
    HEATMAP_MAX_CELLS,
    activation_curves_figure,
    heatmap_figure,
    histogram_figure,
    image_figure,
    map_figure,
    not_yet_shapes,
    pad_shapes,
    value_range,
    window_shape,
)
from convviz.pool import pool2d, pool2d_step
from convviz.ui.common import (
    download_buttons,
    image_input,
    play_controls,
    show_figure,
    step_controls,
    user_errors,
)
from convviz.ui.params import fmt

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
    "pool_step",
    "pool_activation",
    "pool_alpha",
)
MODES = {"max": "Max", "avg": "Average", "min": "Min"}
ACT_LABELS = {"relu": "ReLU", "leaky_relu": "Leaky ReLU", "sigmoid": "Sigmoid", "tanh": "tanh"}
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

ss = st.session_state


def _input() -> tuple[np.ndarray | None, str, bool]:
    """The map to pool: ``(array (H, W), label, small)``."""
    has_fm = "conv_feature_map" in ss
    sources = (
        ("feature_map", "example", "sample", "upload")
        if has_fm
        else ("example", "sample", "upload")
    )
    if ss.get("pool_source") not in sources:
        ss.pool_source = sources[0]
    image, label, source, _ = image_input(
        "pool", sources=sources, allow_rgb=False, default_size=256
    )
    if source == "feature_map":
        return (
            np.asarray(ss.conv_feature_map, dtype=np.float64),
            ss.get("conv_feature_label", ""),
            False,
        )
    if source == "example":
        return EXAMPLE, "6x6 example", True
    if not has_fm:
        st.sidebar.caption("Tip: visit the Convolution page first to pool its feature map.")
    return image, label, False


def _pool_params(x: np.ndarray) -> dict:
    sb = st.sidebar
    sb.subheader("Pooling")
    sb.radio("Mode", list(MODES), key="pool_mode", format_func=MODES.get, horizontal=True)
    ss.setdefault("pool_size", 2)
    size = int(sb.number_input("Window size", 1, 8, key="pool_size"))
    ss.setdefault("pool_stride_same", True)
    same = sb.toggle("Stride = window size (no overlap)", key="pool_stride_same")
    stride = size
    if not same:
        ss.setdefault("pool_stride", 1)
        stride = int(sb.number_input("Stride", 1, 8, key="pool_stride"))
    ss["pool_padding"] = min(int(ss.get("pool_padding", 0)), size // 2)
    padding = int(
        sb.number_input(
            "Padding", 0, max(size // 2, 0), key="pool_padding", help="At most half the window"
        )
    )
    return {"size": size, "stride": stride, "padding": padding, "mode": ss.pool_mode}


def _pool_stepper(x: np.ndarray, out: np.ndarray, p: dict, small: bool) -> None:
    st.subheader("Pooling window, step by step")
    mode = p["mode"]
    st.caption(
        {
            "max": "Each output cell is the largest value in its window (ringed: the winner).",
            "min": "Each output cell is the smallest value in its window (ringed: the winner).",
            "avg": "Each output cell is the mean of its window (every cell counts).",
        }[mode]
    )
    interval = play_controls("pool")
    n = out.size

    @st.fragment(run_every=interval)
    def frag() -> None:
        idx = step_controls("pool", n, playing=interval is not None)
        with user_errors():
            step = pool2d_step(
                x, p["size"], index=idx, stride=p["stride"], padding=p["padding"], mode=mode
            )
            oy, ox = step.index
            y0, x0 = step.position
            kh, kw = step.window.shape
            ph, pw = step.pad
            window = [window_shape(y0, x0, kh, kw)]
            c1, c2, c3 = st.columns([3, 2, 3])
            with c1:
                if small:
                    xp = np.pad(x, ((ph, ph), (pw, pw)), constant_values=np.nan)
                    fig = heatmap_figure(
                        np.nan_to_num(xp),
                        title="Input (blue cells are padding)",
                        digits=3,
                        text=True,
                        mask=~np.isnan(xp) if ph or pw else None,
                        colorbar=False,
                        shapes=window,
                    )
                else:
                    lo, hi, scale = value_range(x)
                    fig = image_figure(
                        np.pad(x, ((ph, ph), (pw, pw)), constant_values=lo),
                        title="Where the window is",
                        vmin=lo,
                        vmax=hi,
                        colorscale=scale,
                        colorbar=False,
                        shapes=window,
                    )
                show_figure(fig, "pool_step_input", "pool_window")
            with c2:
                win = np.where(step.inside, step.window, np.nan)
                fig = heatmap_figure(
                    np.nan_to_num(win),
                    title="Window",
                    digits=4,
                    text=True,
                    mask=step.inside,
                    colorbar=False,
                    shapes=pad_shapes(~step.inside)
                    + ([window_shape(*step.winner, 1, 1)] if step.winner is not None else []),
                )
                show_figure(fig, "pool_step_window", "pool_window_values")
                vals = step.window[step.inside]
                if mode == "avg":
                    st.code(
                        f"({' + '.join(fmt(v, 4) for v in vals)}) / {step.window.size}"
                        f" = {fmt(step.value)}",
                        language=None,
                        wrap_lines=True,
                    )
                else:
                    st.code(
                        f"{mode}({', '.join(fmt(v, 4) for v in vals)}) = {fmt(step.value)}",
                        language=None,
                        wrap_lines=True,
                    )
                st.metric(f"Pooled value at ({oy}, {ox})", fmt(step.value))
            with c3:
                done = np.arange(out.size).reshape(out.shape) <= idx
                vmin, vmax, scale = value_range(x)  # the input's scale, as in the maps above
                if out.size <= HEATMAP_MAX_CELLS:
                    fig = heatmap_figure(
                        out,
                        title="Output: cells computed so far",
                        mask=done,
                        vmin=vmin,
                        vmax=vmax,
                        colorscale=scale,
                        digits=4,
                        shapes=[window_shape(oy, ox, 1, 1)],
                    )
                else:
                    fig = image_figure(
                        out,
                        title="Output: cells computed so far",
                        vmin=vmin,
                        vmax=vmax,
                        colorscale=scale,
                        shapes=[*not_yet_shapes(out.shape, oy, ox), window_shape(oy, ox, 1, 1)],
                    )
                show_figure(fig, "pool_step_output", "pool_progress")

    frag()


def _activations(x: np.ndarray) -> None:
    st.subheader("Activation functions")
    st.caption(
        "A CNN applies a non-linearity to every feature-map value. Negative values are where "
        "the filter matched the opposite pattern; ReLU throws them away, tanh and sigmoid squash."
    )
    c1, c2 = st.columns([1, 2])
    with c1:
        ss.setdefault("pool_activation", "relu")
        name = st.radio(
            "Activation", list(ACT_LABELS), key="pool_activation", format_func=ACT_LABELS.get
        )
        alpha = 0.01
        if name == "leaky_relu":
            ss.setdefault("pool_alpha", 0.1)
            alpha = st.slider("Leaky slope α", 0.0, 0.5, key="pool_alpha", step=0.01)
    fns = {ACT_LABELS[k]: ACTIVATIONS[k] for k in ACT_LABELS}
    fns["Leaky ReLU"] = functools.partial(leaky_relu, alpha=alpha)
    fn = fns[ACT_LABELS[name]]
    with c2:
        show_figure(
            activation_curves_figure(fns, highlight=ACT_LABELS[name], height=280),
            "pool_curves",
            "activations",
        )
    y = np.asarray(fn(x), dtype=np.float64)
    b1, b2 = st.columns(2)
    lo, hi, scale = value_range(x)
    with b1:
        show_figure(
            map_figure(x, title="Before", vmin=lo, vmax=hi, colorscale=scale, digits=3),
            "pool_act_before",
            "before_activation",
        )
        show_figure(
            histogram_figure(x, title="Values before", height=180),
            "pool_act_hist_before",
            "hist_before",
        )
    with b2:
        lo2, hi2, scale2 = value_range(y)
        show_figure(
            map_figure(
                y,
                title=f"After {ACT_LABELS[name]}",
                vmin=lo2,
                vmax=hi2,
                colorscale=scale2,
                digits=3,
            ),
            "pool_act_after",
            "after_activation",
        )
        show_figure(
            histogram_figure(y, title="Values after", height=180),
            "pool_act_hist_after",
            "hist_after",
        )
        download_buttons(y, f"after_{name}", "pool_act_dl", vmin=lo2, vmax=hi2)


def render() -> None:
    st.title("Pooling & activations")
    st.caption(
        "Pooling shrinks a feature map by keeping one number per window: the largest (max), "
        "the mean (average) or the smallest (min). Choose the map in the sidebar."
    )
    x, label, small = _input()
    if x is None:
        return
    if x.ndim == 3:  # an RGB upload: pool its grey version
        x = x.mean(axis=-1)
    x = np.asarray(x, dtype=np.float64)
    p = _pool_params(x)
    with user_errors() as ok:
        out = pool2d(x, p["size"], stride=p["stride"], padding=p["padding"], mode=p["mode"])
    if not ok[0]:
        return
    st.subheader(f"{MODES[p['mode']]} pooling {p['size']}x{p['size']}, stride {p['stride']}")
    lo, hi, scale = value_range(x)
    extent = (max(x.shape[0], out.shape[0]), max(x.shape[1], out.shape[1]))
    c1, c2 = st.columns(2)
    with c1:
        show_figure(
            map_figure(
                x,
                title=f"Input: {label}",
                vmin=lo,
                vmax=hi,
                colorscale=scale,
                extent=extent,
                digits=3,
            ),
            "pool_in",
            "pool_input",
        )
        st.caption(f"Input {x.shape[0]}x{x.shape[1]}")
    with c2:
        show_figure(
            map_figure(
                out, title="Pooled", vmin=lo, vmax=hi, colorscale=scale, extent=extent, digits=3
            ),
            "pool_out",
            "pooled",
        )
        st.caption(f"Pooled {out.shape[0]}x{out.shape[1]} (same colour scale as the input)")
        download_buttons(out, "pooled", "pool_dl", vmin=lo, vmax=hi)
    _pool_stepper(x, out, p, small)
    _activations(x)
