"""Convolution page: input, kernel editor, parameters, result and the sliding-window stepper.

Thin: widgets -> :func:`convviz.conv.conv2d` / :func:`convviz.conv.conv2d_step`
-> :mod:`convviz.figures`. The numbers in the stepper are the fields of the
``ConvStep`` the core returns, so what is shown is the tested arithmetic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from convviz.activations import ACTIVATIONS
from convviz.conv import ConvStep, conv2d, conv2d_step
from convviz.figures import (
    GREYS,
    HEATMAP_MAX_CELLS,
    colorbar_strip,
    crosshair_shapes,
    heatmap_figure,
    histogram_figure,
    image_figure,
    map_figure,
    not_yet_shapes,
    pad_shapes,
    png_bytes,
    value_range,
    window_shape,
)
from convviz.images import SAMPLES
from convviz.kernels import KERNELS
from convviz.shapes import PAD_MODES, resolve_padding
from convviz.ui.common import (
    download_buttons,
    image_input,
    play_controls,
    show_figure,
    step_controls,
    user_errors,
)
from convviz.ui.params import (
    CLASSIC_INPUT,
    KERNEL_MAX,
    NUMBERS_MAX,
    PADDING_CHOICES,
    ConvSettings,
    decode_query,
    encode_query,
    fmt,
    keep_last_valid,
    normalise_sum,
    output_size_latex,
    random_kernel,
)

# Widget keys kept across page switches (see common.persist_widget_state).
STATE_KEYS = (
    "conv_source",
    "conv_colour",
    "conv_max_side",
    "conv_sample",
    "conv_kh",
    "conv_kw",
    "conv_preset",
    "conv_per_channel",
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
    "conv_step",
    "conv_num_rows",
    "conv_num_cols",
)
ACTIVATION_LABELS = {
    "none": "None (raw feature map)",
    "relu": "ReLU",
    "leaky_relu": "Leaky ReLU (0.01)",
    "sigmoid": "Sigmoid",
    "tanh": "tanh",
}
CHANNELS = ("R", "G", "B")
SMALL_PADDED = 24  # padded inputs up to 24x24 are drawn whole, with numbers

ss = st.session_state


# --------------------------------------------------------------------------- state


def _set_kernel(k: np.ndarray) -> None:
    """Replace the kernel and start fresh editors on it (callbacks and first run only)."""
    k = np.array(k, dtype=np.float64)
    ss.conv_kernel = k
    ss.conv_kernel_base = k.copy()
    ss.conv_kernel_ver = ss.get("conv_kernel_ver", 0) + 1
    ss.conv_kh, ss.conv_kw = int(k.shape[-2]), int(k.shape[-1])
    ss.conv_per_channel = k.ndim == 3


def _set_numbers(a: np.ndarray) -> None:
    ss.conv_numbers = np.array(a, dtype=np.float64)
    ss.conv_numbers_base = ss.conv_numbers.copy()
    ss.conv_numbers_ver = ss.get("conv_numbers_ver", 0) + 1
    ss.conv_num_rows, ss.conv_num_cols = ss.conv_numbers.shape


def _init_state() -> None:
    """First run of a session: settings from the URL (a shared link), else the defaults."""
    if "conv_kernel" not in ss:
        s, problems = decode_query(st.query_params.to_dict(), SAMPLES)
        ss.conv_url_problems = problems
        _set_kernel(s.kernel)
        _set_numbers(CLASSIC_INPUT)
        ss.conv_bias = float(s.bias)
        ss.conv_stride = s.stride
        if isinstance(s.padding, int):
            ss.conv_padding, ss.conv_padding_n = "number", s.padding
        else:
            ss.conv_padding = s.padding
        ss.conv_pad_mode = s.pad_mode
        ss.conv_dilation = s.dilation
        ss.conv_flip = s.flip
        ss.conv_source = s.source
        ss.conv_sample = s.sample
        ss.conv_colour = "gray" if s.source == "numbers" else s.colour
        ss.conv_activation = s.activation
        if ss.conv_colour == "gray" and s.kernel.ndim == 3:
            _set_kernel(s.kernel[0])
    # Widgets dropped while another page was shown come back from the kernel.
    ss.setdefault("conv_kh", int(ss.conv_kernel.shape[-2]))
    ss.setdefault("conv_kw", int(ss.conv_kernel.shape[-1]))
    ss.setdefault("conv_per_channel", ss.conv_kernel.ndim == 3)
    ss.setdefault("conv_num_rows", ss.conv_numbers.shape[0])
    ss.setdefault("conv_num_cols", ss.conv_numbers.shape[1])
    for key, default in (
        ("conv_bias", 0.0),
        ("conv_stride", 1),
        ("conv_padding", "valid"),
        ("conv_padding_n", 1),
        ("conv_pad_mode", "zeros"),
        ("conv_dilation", 1),
        ("conv_flip", False),
        ("conv_activation", "none"),
        ("conv_preset", ""),
    ):
        ss.setdefault(key, default)


def _resized(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Centre crop / zero-pad the last two axes to ``(rows, cols)`` (keeps the middle)."""
    out = np.zeros((*a.shape[:-2], rows, cols))
    h, w = min(rows, a.shape[-2]), min(cols, a.shape[-1])
    sy, sx = (a.shape[-2] - h) // 2, (a.shape[-1] - w) // 2
    dy, dx = (rows - h) // 2, (cols - w) // 2
    out[..., dy : dy + h, dx : dx + w] = a[..., sy : sy + h, sx : sx + w]
    return out


def _on_size() -> None:
    _set_kernel(_resized(ss.conv_kernel, int(ss.conv_kh), int(ss.conv_kw)))
    ss.conv_preset = ""


def _on_preset() -> None:
    name = ss.conv_preset
    if name in KERNELS:
        w = np.array(KERNELS[name].weights)
        _set_kernel(np.stack([w] * 3) if ss.conv_kernel.ndim == 3 else w)


def _on_random() -> None:
    _set_kernel(random_kernel(ss.conv_kernel.shape, np.random.default_rng()))
    ss.conv_preset = ""


def _on_normalise() -> None:
    try:
        k = ss.conv_kernel
        _set_kernel(np.stack([normalise_sum(c) for c in k]) if k.ndim == 3 else normalise_sum(k))
    except ValueError as exc:
        ss.conv_message = str(exc)


def _on_per_channel() -> None:
    k = ss.conv_kernel
    _set_kernel(
        np.stack([k] * 3) if ss.conv_per_channel and k.ndim == 2 else k[0] if k.ndim == 3 else k
    )


def _on_numbers_size() -> None:
    _set_numbers(_resized(ss.conv_numbers, int(ss.conv_num_rows), int(ss.conv_num_cols)))


def _grid_editor(base: np.ndarray, key: str, label: str) -> pd.DataFrame:
    df = pd.DataFrame(base, columns=[str(j) for j in range(base.shape[1])])
    config = {c: st.column_config.NumberColumn(c, width="small") for c in df.columns}
    return st.data_editor(df, key=key, column_config=config, width="content")


# --------------------------------------------------------------------------- widgets


def _sidebar_parameters() -> dict:
    sb = st.sidebar
    sb.subheader("Parameters")
    sb.number_input("Stride", 1, 16, key="conv_stride", help="Step between window positions")
    how = sb.selectbox(
        "Padding",
        PADDING_CHOICES,
        key="conv_padding",
        format_func={
            "valid": "valid (no padding)",
            "same": "same (output = input / stride)",
            "full": "full (every partial overlap)",
            "number": "a number of pixels",
        }.get,
    )
    padding: str | int = how
    if how == "number":
        padding = int(sb.number_input("Padding (pixels on each side)", 0, 64, key="conv_padding_n"))
    sb.selectbox(
        "Pad mode",
        list(PAD_MODES),
        key="conv_pad_mode",
        help="What the border holds: zeros, a mirror (reflect), the edge pixel (replicate) "
        "or the opposite side (circular).",
    )
    sb.number_input("Dilation", 1, 8, key="conv_dilation", help="Spacing between kernel taps")
    sb.toggle(
        "True convolution (flip the kernel)",
        key="conv_flip",
        help="CNNs compute cross-correlation (no flip). Mathematical convolution flips the "
        "kernel in both axes first.",
    )
    return {
        "stride": int(ss.conv_stride),
        "padding": padding,
        "pad_mode": ss.conv_pad_mode,
        "dilation": int(ss.conv_dilation),
        "flip": bool(ss.conv_flip),
    }


def _kernel_section(rgb: bool) -> tuple[np.ndarray, float]:
    st.subheader("Kernel")
    c1, c2, c3 = st.columns([1, 1, 3])
    c1.number_input("Rows", 1, KERNEL_MAX, key="conv_kh", on_change=_on_size)
    c2.number_input("Columns", 1, KERNEL_MAX, key="conv_kw", on_change=_on_size)
    c3.selectbox(
        "Preset",
        ["", *KERNELS],
        key="conv_preset",
        on_change=_on_preset,
        format_func=lambda n: KERNELS[n].label if n in KERNELS else "Choose a preset…",
    )
    if ss.conv_preset in KERNELS:
        st.caption(KERNELS[ss.conv_preset].description)
    b1, b2, b3 = st.columns(3)
    b1.button("Random", key="conv_random", on_click=_on_random, width="stretch")
    b2.button("Normalise to sum 1", key="conv_normalise", on_click=_on_normalise, width="stretch")
    if rgb:
        b3.toggle("Per-channel kernel", key="conv_per_channel", on_change=_on_per_channel)
    if msg := ss.pop("conv_message", None):
        st.warning(msg)

    base, ver = ss.conv_kernel_base, ss.conv_kernel_ver
    if base.ndim == 3:
        tabs = st.tabs([f"{c} channel" for c in CHANNELS])
        edited = []
        for i, tab in enumerate(tabs):
            with tab:
                edited.append(_grid_editor(base[i], f"conv_kernel_editor_{ver}_{i}", CHANNELS[i]))
    else:
        edited = [_grid_editor(base, f"conv_kernel_editor_{ver}", "kernel")]
    parsed = []
    for i, frame in enumerate(edited):
        last = ss.conv_kernel[i] if base.ndim == 3 else ss.conv_kernel
        k, problem = keep_last_valid(frame, last, "kernel")
        if problem:
            st.warning(problem)
        parsed.append(k)
    ss.conv_kernel = np.stack(parsed) if base.ndim == 3 else parsed[0]
    st.number_input("Bias (added to every output)", key="conv_bias", step=0.1, format="%g")
    return ss.conv_kernel, float(ss.conv_bias)


def _numbers_input() -> np.ndarray:
    st.subheader("Input matrix")
    c1, c2 = st.columns(2)
    c1.number_input("Rows", 1, NUMBERS_MAX, key="conv_num_rows", on_change=_on_numbers_size)
    c2.number_input("Columns", 1, NUMBERS_MAX, key="conv_num_cols", on_change=_on_numbers_size)
    frame = _grid_editor(
        ss.conv_numbers_base, f"conv_numbers_editor_{ss.conv_numbers_ver}", "input"
    )
    a, problem = keep_last_valid(frame, ss.conv_numbers, "input", max_side=NUMBERS_MAX)
    if problem:
        st.warning(problem)
    ss.conv_numbers = a
    return a


def _formula(in_hw: tuple[int, int], k: np.ndarray, p: dict) -> None:
    kh, kw = k.shape[-2:]
    s, d = p["stride"], p["dilation"]
    pad = resolve_padding(p["padding"], in_hw, (kh, kw), (s, s), (d, d))
    st.markdown(
        "**Output size** — `out = floor((n + pad_before + pad_after − d·(k−1) − 1) / s) + 1`"
    )
    st.latex(output_size_latex(in_hw[0], kh, s, pad[0], d, "H"))
    st.latex(output_size_latex(in_hw[1], kw, s, pad[1], d, "W"))


# --------------------------------------------------------------------------- result


def _result(x_img, x, out, act_name, label, numbers, robust) -> np.ndarray:
    """Input and feature map side by side at the same scale; returns the activated map."""
    act = ACTIVATIONS[act_name](out)
    h, w = x_img.shape[:2]
    extent = (max(h, out.shape[0]), max(w, out.shape[1]))
    lo, hi, scale = value_range(act, robust=robust)
    title = "Feature map" + ("" if act_name == "none" else f" after {ACTIVATION_LABELS[act_name]}")
    big = act.size > HEATMAP_MAX_CELLS or h * w > HEATMAP_MAX_CELLS
    c1, c2 = st.columns(2)
    if big:
        # Big maps go out as images: a repaint swaps one <img>, several times faster
        # than redrawing a plotly chart. Both at the same pixel scale; the zoomed
        # neighbourhood in the stepper below shows the numbers.
        px_scale = 520 / max(extent)  # the larger map drawn 520 px wide, the other to scale
        with c1, st.container(key="conv_input_img"):
            st.markdown(f"**Input: {label}**")
            st.image(
                png_bytes(x_img, 0.0, 1.0, GREYS),
                width=max(1, round(w * px_scale)),
                output_format="PNG",  # as encoded: no lossy JPEG, no second encode
            )
            st.caption(f"Input {h}x{w}" + (" x 3 channels" if x_img.ndim == 3 else ""))
        with c2, st.container(key="conv_output_img"):
            st.markdown(f"**{title}**")
            width = max(1, round(act.shape[1] * px_scale))
            st.image(png_bytes(act, lo, hi, scale), width=width, output_format="PNG")
            st.image(png_bytes(colorbar_strip(scale) / 255.0), width=width, output_format="PNG")
    else:
        with c1:
            kw = {"colorscale": GREYS, "extent": extent}
            if numbers:
                fig = heatmap_figure(x_img, title="Input", digits=4, **kw)
            elif x_img.ndim == 3:
                fig = image_figure(x_img, title=f"Input: {label}", extent=extent)
            else:
                fig = image_figure(x_img, title=f"Input: {label}", vmin=0, vmax=1, **kw)
            show_figure(fig, "conv_input_fig", "input")
            st.caption(f"Input {h}x{w}" + (" x 3 channels" if x_img.ndim == 3 else ""))
        with c2:
            fig = map_figure(
                act, title=title, vmin=lo, vmax=hi, colorscale=scale, extent=extent, digits=4
            )
            show_figure(fig, "conv_output_fig", "feature_map")
    c2.caption(
        f"Feature map {act.shape[0]}x{act.shape[1]} · values from {fmt(act.min(), 4)} "
        f"to {fmt(act.max(), 4)} · colours from {fmt(lo, 3)} (left) to {fmt(hi, 3)} (right)"
    )
    h1, h2 = st.columns(2)
    with h1:
        show_figure(histogram_figure(act, title="Feature map values"), "conv_hist", "histogram")
    with h2:
        st.markdown("**Download the feature map**")
        download_buttons(act, "feature_map", "conv_dl", vmin=lo, vmax=hi)
        st.caption(".npy keeps the exact float values; .png is the picture as shown.")
    return act


# --------------------------------------------------------------------------- stepper


def _padded(x3: np.ndarray, pad, pad_mode: str) -> np.ndarray:  # (C, Hp, Wp)
    if not any(pad[0]) and not any(pad[1]):
        return x3
    kwargs = {"constant_values": 0} if pad_mode == "zeros" else {}
    return np.pad(x3, ((0, 0), *pad), mode=PAD_MODES[pad_mode], **kwargs)


def _padding_mask(shape: tuple[int, int], pad) -> np.ndarray:
    m = np.ones(shape, dtype=bool)
    (t, b), (left, r) = pad
    m[t : shape[0] - b, left : shape[1] - r] = False
    return m


def _window_shapes(step: ConvStep, dilated: bool) -> list[dict]:
    rows, cols = step.rows, step.cols
    shapes = [window_shape(rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)]
    if dilated:  # mark the taps actually used
        shapes += [
            window_shape(r, c, 1, 1, colour="#d62728", dash="dot") for r in rows for c in cols
        ]
    return shapes


def _overview(xp: np.ndarray, pad, rgb: bool, step: ConvStep) -> go.Figure:
    # The PNG is cached by content, so redrawing this on every step is cheap.
    shapes = _window_shapes(step, False)
    (t, b), (left, r) = pad
    if t or b or left or r:  # dashed outline: the real image inside its padding
        h, w = xp.shape[1] - t - b, xp.shape[2] - left - r
        shapes.append(window_shape(t, left, h, w, colour="#1f77b4", dash="dash"))
    title = "Where the window is"
    if rgb:
        return image_figure(np.moveaxis(xp, 0, -1), title=title, shapes=shapes)
    return image_figure(
        xp[0], title=title, vmin=0, vmax=1, colorscale=GREYS, colorbar=False, shapes=shapes
    )


def _step_view(step: ConvStep, xp: np.ndarray, out: np.ndarray, ctx: dict) -> None:
    oy, ox = step.index
    c = step.patch.shape[0]
    dilated = ctx["dilation"] > 1
    small = ctx["numbers"] or (xp.shape[1] <= SMALL_PADDED and xp.shape[2] <= SMALL_PADDED)
    pad = step.pad
    pmask = _padding_mask(xp.shape[1:], pad)

    left, right = st.columns([3, 2])
    with left:
        if small and c == 1:
            fig = heatmap_figure(
                xp[0],
                title="Input (blue cells are padding)",
                colorscale=GREYS,
                digits=4,
                text=True,
                colorbar=False,
                shapes=pad_shapes(pmask) + _window_shapes(step, dilated),
            )
            show_figure(fig, "conv_step_input", "window")
        else:
            o1, o2 = st.columns(2)
            with o1:
                fig = _overview(xp, pad, c == 3, step)
                show_figure(fig, "conv_step_overview", "window")
            with o2:
                m = 2  # neighbourhood margin around the window
                r0, r1 = max(0, step.rows[0] - m), min(xp.shape[1], step.rows[-1] + m + 1)
                c0, c1 = max(0, step.cols[0] - m), min(xp.shape[2], step.cols[-1] + m + 1)
                tabs = st.tabs([f"{n} zoom" for n in CHANNELS]) if c == 3 else [st.container()]
                for ch, tab in enumerate(tabs):
                    with tab:
                        crop = xp[ch, r0:r1, c0:c1]
                        fig = heatmap_figure(
                            crop,
                            title="Zoomed neighbourhood",
                            colorscale=GREYS,
                            vmin=0,
                            vmax=1,
                            digits=2,
                            text=crop.size <= 24 * 24,
                            origin=(r0, c0),
                            colorbar=False,
                            shapes=pad_shapes(pmask[r0:r1, c0:c1], origin=(r0, c0))
                            + _window_shapes(step, dilated),
                        )
                        show_figure(fig, f"conv_step_zoom_{ch}", "neighbourhood")
    with right:
        vmin, vmax, scale = value_range(out)
        here = [window_shape(oy, ox, 1, 1)]
        if out.size <= HEATMAP_MAX_CELLS:
            flat = np.arange(out.size).reshape(out.shape)
            fig = heatmap_figure(
                out,
                title="Output: cells computed so far",
                mask=flat <= oy * out.shape[1] + ox,
                vmin=vmin,
                vmax=vmax,
                colorscale=scale,
                digits=4,
                shapes=here,
            )
        else:
            # The whole map (a cached PNG) under grey veils: stepping re-encodes nothing.
            fig = image_figure(
                out,
                title="Output: cells computed so far",
                vmin=vmin,
                vmax=vmax,
                colorscale=scale,
                shapes=not_yet_shapes(out.shape, oy, ox) + crosshair_shapes(oy, ox) + here,
            )
        show_figure(fig, "conv_step_output", "output_progress")

    kernel_title = "Kernel (flipped)" if ctx["flip"] else "Kernel"
    for ch in range(c):
        prefix = f"{CHANNELS[ch]} channel: " if c == 3 else ""
        inside = step.inside
        p1, p2, p3 = st.columns(3)
        with p1:
            fig = heatmap_figure(
                step.patch[ch],
                title=prefix + "input patch",
                colorscale=GREYS,
                vmin=ctx["in_range"][0],
                vmax=ctx["in_range"][1],
                digits=4,
                text=True,
                shapes=pad_shapes(~inside),
            )
            show_figure(fig, f"conv_step_patch_{ch}", "patch")
        with p2:
            fig = heatmap_figure(step.kernel[ch], title=prefix + kernel_title, digits=4, text=True)
            show_figure(fig, f"conv_step_kernel_{ch}", "kernel")
        with p3:
            fig = heatmap_figure(
                step.products[ch], title=prefix + "products (patch × kernel)", digits=4, text=True
            )
            show_figure(fig, f"conv_step_products_{ch}", "products")

    # The arithmetic, from the ConvStep fields.
    lines = []
    for ch in range(c):
        name = f"{CHANNELS[ch]}: " if c == 3 else ""
        if step.kernel[ch].size <= 25:
            terms = " + ".join(
                f"{fmt(k, 4)}×{fmt(v, 4)}"
                for k, v in zip(step.kernel[ch].ravel(), step.patch[ch].ravel(), strict=True)
            )
            lines.append(f"{name}{terms} = {fmt(step.partial_sums[ch])}")
        else:
            lines.append(
                f"{name}sum of {step.kernel[ch].size} products = {fmt(step.partial_sums[ch])}"
            )
    sums = " + ".join(fmt(s) for s in step.partial_sums)
    lines.append(f"output[{oy}, {ox}] = {sums} + bias {fmt(step.bias)} = {fmt(step.value)}")
    st.code("\n".join(lines), language=None, wrap_lines=True)
    m1, m2 = st.columns(2)
    m1.metric(f"Output value at ({oy}, {ox})", fmt(step.value))
    if ctx["activation"] != "none":
        a = float(ACTIVATIONS[ctx["activation"]](np.array([step.value]))[0])
        m2.metric(f"After {ACTIVATION_LABELS[ctx['activation']]}", fmt(a))


def _stepper(
    x: np.ndarray, w: np.ndarray, bias: float, p: dict, out: np.ndarray, ctx: dict
) -> None:
    st.subheader("Sliding window, step by step")
    st.caption(
        "The orange box is the window. Each output cell is the sum of the products of the "
        "window's values and the kernel, plus the bias. Scrub the slider, use ◀ ▶, or press Play."
    )
    interval = play_controls("conv")
    n = out.shape[0] * out.shape[1]

    @st.fragment(run_every=interval)
    def frag() -> None:
        idx = step_controls("conv", n, playing=interval is not None)
        with user_errors():
            step = conv2d_step(x, w, bias, index=idx, **p)
            st.caption(
                f"Position {idx + 1} of {n}: output cell "
                f"(row {step.index[0]}, col {step.index[1]}); "
                f"window's top-left tap at padded row {step.position[0]}, col {step.position[1]}."
            )
            _step_view(step, ctx["xp"], out, ctx)

    frag()


# --------------------------------------------------------------------------- page


def _pending(base: np.ndarray, edits: dict | None, last: np.ndarray, name: str, **kw) -> np.ndarray:
    """What a grid editor will return this run: ``base`` plus the ``edited_rows`` in its
    widget state (``{row: {column: value}}``), validated like the editor's own result."""
    grid = base.astype(object)
    for r, cells in (edits or {}).get("edited_rows", {}).items():
        for c, v in cells.items():
            grid[int(r), int(c)] = v
    return keep_last_valid(grid, last, name, **kw)[0]


def _pending_inputs(image: np.ndarray | None, numbers: bool):
    """``((kernel, bias), input)`` before the editors are drawn, or None (no fast path)."""
    if ss.pop("conv_no_fast_path", False):
        return None
    if ss.conv_kernel_base.ndim != 2 or (image is None and not numbers):
        return None  # per-channel kernels and missing uploads take the plain path
    k = _pending(
        ss.conv_kernel_base,
        ss.get(f"conv_kernel_editor_{ss.conv_kernel_ver}"),
        ss.conv_kernel,
        "kernel",
    )
    if numbers:
        image = _pending(
            ss.conv_numbers_base,
            ss.get(f"conv_numbers_editor_{ss.conv_numbers_ver}"),
            ss.conv_numbers,
            "input",
            max_side=NUMBERS_MAX,
        )
    if image.ndim == 3 and k.ndim == 2 and ss.conv_per_channel:
        return None
    return (k, float(ss.conv_bias)), image


def _draw_result(slot, image, label, kernel, p, numbers, robust):
    """Convolve and draw the Result section into ``slot``; ``(x, out)`` or None on bad settings."""
    w, bias = kernel
    rgb = image.ndim == 3
    x = np.moveaxis(image, -1, 0) if rgb else image  # (C, H, W) or (H, W)
    with slot.container():
        with user_errors() as ok:
            out = conv2d(x, w, bias, **p).astype(np.float64)
        if not ok[0]:
            return None
        st.subheader("Result")
        act = _result(image, x, out, ss.conv_activation, label, numbers, robust)
    # Shared with the Pooling page: the current feature map and where it came from.
    ss.conv_feature_map = act
    ss.conv_feature_label = f"{label} ⊛ kernel {w.shape[-2]}x{w.shape[-1]}"
    return x, out


def render() -> None:
    _init_state()
    st.title("Convolution")
    st.caption(
        "Pick an input in the sidebar (numbers, a sample or your own image), edit the kernel, "
        "and watch the window slide. Everything updates as you type."
    )
    for problem in ss.pop("conv_url_problems", []):
        st.warning(problem)

    image, label, source, _ = image_input(
        "conv",
        sources=("numbers", "sample", "upload"),
        allow_rgb=ss.get("conv_source") != "numbers",
    )
    if source == "numbers" and ss.get("conv_colour") == "rgb":
        ss.conv_colour = "gray"  # numbers mode is one channel
    numbers = source == "numbers"
    rgb = image is not None and image.ndim == 3
    if rgb and ss.conv_kernel.ndim == 2 and ss.conv_per_channel:
        ss.conv_per_channel = False
    if not rgb and ss.conv_kernel.ndim == 3:
        _set_kernel(ss.conv_kernel[0])
    p = _sidebar_parameters()
    st.sidebar.selectbox(
        "Activation",
        list(ACTIVATION_LABELS),
        key="conv_activation",
        format_func=ACTIVATION_LABELS.get,
    )
    robust = st.sidebar.toggle(
        "Robust colour range (1st–99th percentile)",
        key="conv_robust",
        help="Ignore the most extreme 1% of values when choosing colours.",
    )

    top_left, top_right = st.columns(2, gap="large")
    result_slot = st.empty()  # below the editors on the page, but may be drawn before them
    # Latency: draw the feature map from the editors' pending edits *before* the
    # editors themselves, so its delta leaves the server first; the editors below
    # then confirm the same values (or the map is drawn again).
    early = _pending_inputs(image, numbers)
    drawn = None
    if early is not None:
        drawn = _draw_result(
            result_slot, early[1], "numbers" if numbers else label, early[0], p, numbers, robust
        )
    with top_left:
        w, bias = _kernel_section(rgb)
    with top_right:
        if numbers:
            image = _numbers_input()
            label = "numbers"
        if image is not None:
            _formula(image.shape[:2], w, p)
    if image is None:
        _write_url(w, bias, p, source)
        return
    same = (
        early is not None
        and np.array_equal(early[0][0], w)
        and early[0][1] == bias
        and np.array_equal(early[1], image)
    )
    if not same:
        if early is not None:
            # The editors disagreed with their pending edits (should not happen): the
            # map drawn above is stale and its widgets are taken, so run once more
            # without the fast path rather than draw it twice.
            ss.conv_no_fast_path = True
            st.rerun()
        drawn = _draw_result(result_slot, image, label, (w, bias), p, numbers, robust)
    if drawn is None:  # conv2d refused these settings; the message is shown
        _write_url(w, bias, p, source)
        return
    x, out = drawn

    x3 = x[None] if x.ndim == 2 else x
    kh, kw = w.shape[-2:]
    s, d = p["stride"], p["dilation"]
    pad = resolve_padding(p["padding"], x3.shape[1:], (kh, kw), (s, s), (d, d))
    xp = _padded(x3, pad, p["pad_mode"])
    ctx = {
        "xp": xp,
        "numbers": numbers,
        "dilation": d,
        "flip": p["flip"],
        "activation": ss.conv_activation,
        # patches share the input's colour scale, so the same grey means the same value
        "in_range": (float(x.min()), max(float(x.max()), float(x.min()) + 1e-9))
        if numbers
        else (0.0, 1.0),
    }
    _stepper(x, w, bias, p, out, ctx)
    _write_url(w, bias, p, source)


def _write_url(w: np.ndarray, bias: float, p: dict, source: str) -> None:
    """Mirror the shareable state into the URL, so a link reproduces this view."""
    settings = ConvSettings(
        kernel=w,
        bias=bias,
        stride=p["stride"],
        padding=p["padding"],
        pad_mode=p["pad_mode"],
        dilation=p["dilation"],
        flip=p["flip"],
        source=source,
        sample=ss.get("conv_sample", "Cameraman"),
        colour=ss.get("conv_colour", "gray"),
        activation=ss.conv_activation,
    )
    query = encode_query(settings)
    if st.query_params.to_dict() != query:
        st.query_params.from_dict(query)
