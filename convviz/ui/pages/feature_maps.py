"""Feature maps page: a bank of filters applied to one image, "what a conv layer sees".

Thin: widgets -> :func:`convviz.conv.conv2d` (one ``(F, 1, kh, kw)`` call per
kernel size), activation, :func:`convviz.pool.pool2d` -> a grid figure.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convviz.activations import ACTIVATIONS
from convviz.conv import conv2d
from convviz.figures import feature_grid_figure, heatmap_figure
from convviz.images import encode_png, to_display
from convviz.kernels import KERNELS, Kernel, gabor_bank
from convviz.pool import pool2d
from convviz.ui.common import image_input, npy_bytes, show_figure, user_errors

STATE_KEYS = (
    "fm_source",
    "fm_max_side",
    "fm_sample",
    "fm_bank",
    "fm_chosen",
    "fm_orientations",
    "fm_frequency",
    "fm_activation",
    "fm_pool",
    "fm_cols",
)
BANKS = {"all": "All presets", "chosen": "Choose presets", "gabor": "Gabor bank"}
POOLS = {"none": "No pooling", "max": "Max pool 2x2", "avg": "Average pool 2x2"}
ACT_LABELS = {
    "none": "None",
    "relu": "ReLU",
    "leaky_relu": "Leaky ReLU",
    "sigmoid": "Sigmoid",
    "tanh": "tanh",
}

ss = st.session_state


def _bank() -> dict[str, Kernel]:
    sb = st.sidebar
    sb.subheader("Filters")
    ss.setdefault("fm_bank", "all")
    how = sb.radio("Filter bank", list(BANKS), key="fm_bank", format_func=BANKS.get)
    if how == "chosen":
        ss.setdefault("fm_chosen", ["sobel_x", "sobel_y", "laplacian_4", "gaussian_5x5"])
        chosen = sb.multiselect(
            "Presets",
            list(KERNELS),
            key="fm_chosen",
            format_func=lambda n: KERNELS[n].label,
        )
        return {n: KERNELS[n] for n in chosen}
    if how == "gabor":
        ss.setdefault("fm_orientations", 8)
        ss.setdefault("fm_frequency", 0.2)
        n = sb.slider("Orientations", 1, 16, key="fm_orientations")
        f = sb.slider("Frequency (cycles/pixel)", 0.05, 0.5, key="fm_frequency", step=0.01)
        return gabor_bank(n, frequency=f)
    return dict(KERNELS)


def _feature_maps(x: np.ndarray, bank: dict[str, Kernel], act: str, pool: str) -> np.ndarray:
    """``(F, H', W')``: every kernel on ``x`` with "same" padding, then activation and pooling."""
    by_shape: dict[tuple[int, int], list[str]] = {}
    for name, k in bank.items():
        by_shape.setdefault(k.weights.shape, []).append(name)
    order = {name: i for i, name in enumerate(bank)}
    results: dict[str, np.ndarray] = {}
    for names in by_shape.values():
        w = np.stack([bank[n].weights for n in names])[:, None]  # (F, 1, kh, kw)
        out = conv2d(x, w, padding="same", pad_mode="reflect")  # (F, H, W)
        for n, m in zip(names, out, strict=True):
            results[n] = m
    maps = [results[n] for n in sorted(results, key=order.get)]
    y = ACTIVATIONS[act](np.stack(maps))
    if pool != "none":
        y = pool2d(y, 2, mode=pool)
    return np.asarray(y, dtype=np.float64)


def _montage(maps: np.ndarray, ncols: int) -> np.ndarray:
    """Each map scaled to [0, 1] on its own, tiled with a 2-px white gap."""
    f, h, w = maps.shape
    nrows = -(-f // ncols)
    out = np.ones((nrows * (h + 2), ncols * (w + 2)), dtype=np.float32)
    for i, m in enumerate(maps):
        r, c = divmod(i, ncols)
        out[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = to_display(m)
    return out


def render() -> None:
    st.title("Feature maps")
    st.caption(
        "A convolution layer runs many filters over the same image. Each filter lights up "
        "where the image looks like it: edges in one direction, blobs, stripes at an angle. "
        "Blue is negative, red positive (white is 0); after ReLU, black is 0."
    )
    image, label, _, _ = image_input("fm", allow_rgb=False, default_size=256)
    if image is None:
        return
    bank = _bank()
    sb = st.sidebar
    sb.subheader("Layer")
    ss.setdefault("fm_activation", "relu")
    act = sb.selectbox(
        "Activation", list(ACT_LABELS), key="fm_activation", format_func=ACT_LABELS.get
    )
    ss.setdefault("fm_pool", "none")
    pool = sb.selectbox("Pooling", list(POOLS), key="fm_pool", format_func=POOLS.get)
    ss.setdefault("fm_cols", 4)
    ncols = sb.slider("Columns", 2, 6, key="fm_cols")
    if not bank:
        st.info("Choose at least one preset in the sidebar.")
        return

    with user_errors() as ok:
        maps = _feature_maps(image, bank, act, pool)
    if not ok[0]:
        return
    titles = [k.label for k in bank.values()]
    c1, c2 = st.columns([1, 3])
    with c1:
        st.image(image, caption=f"Input: {label} ({image.shape[0]}x{image.shape[1]})", clamp=True)
        st.markdown(
            f"**{len(bank)} filters** → {maps.shape[0]} maps of {maps.shape[1]}x{maps.shape[2]}"
        )
        st.caption("'same' padding with reflected borders, so every map has the input's size.")
        st.download_button(
            "Download all maps (.npy)",
            lambda: npy_bytes(maps),
            file_name="feature_maps.npy",
            key="fm_dl_npy",
            on_click="ignore",
            width="stretch",
        )
        st.download_button(
            "Download montage (.png)",
            lambda: encode_png(_montage(maps, ncols), vmin=0, vmax=1),
            file_name="feature_maps.png",
            mime="image/png",
            key="fm_dl_png",
            on_click="ignore",
            width="stretch",
        )
    with c2:
        signed = None if act in ("none", "leaky_relu", "tanh") else False
        fig = feature_grid_figure(list(maps), titles, ncols=ncols, signed=signed)
        show_figure(fig, "fm_grid", "feature_maps")
    with st.expander("The kernels in this bank"):
        cols = st.columns(min(len(bank), 6))
        for i, (name, k) in enumerate(bank.items()):
            with cols[i % len(cols)]:
                fig = heatmap_figure(
                    k.weights,
                    title=k.label,
                    digits=2,
                    text=k.weights.size <= 25,
                    colorbar=False,
                    height=220,
                )
                show_figure(fig, f"fm_kernel_{name}", name)
                st.caption(k.description)
