"""Feature maps page: a bank of filters applied to one image, "what a conv layer sees".

Thin: widgets -> :func:`convviz.conv.conv2d` (one ``(F, 1, kh, kw)`` call per
kernel size), activation, :func:`convviz.pool.pool2d` -> a grid figure.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convviz.activations import ACTIVATIONS, activation_label
from convviz.conv import conv2d
from convviz.figures import feature_grid_figure, kernel_figure
from convviz.i18n import Translator
from convviz.images import encode_png, to_display
from convviz.kernels import KERNELS, Kernel, gabor_bank
from convviz.pool import pool2d
from convviz.ui.common import image_input, npy_bytes, sample_slug, show_figure, user_errors
from convviz.ui.i18n import tr

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
KERNELS_OPEN = "fm_kernels"  # the kernel cards' expander: open or closed
BANKS = ("all", "chosen", "gabor")  # labels: fm.bank.*
POOLS = ("none", "max", "avg")  # labels: fm.pool.*
# Labels: the core's act.* (convviz.activations.activation_label).
ACTIVATION_NAMES = ("none", "relu", "leaky_relu", "sigmoid", "tanh")
KERNELS_PER_ROW = 4
FREQUENCIES = tuple(round(0.05 + 0.01 * i, 2) for i in range(46))  # 0.05 .. 0.5 cycles/pixel

ss = st.session_state


def kernel_text(t: Translator, kernel: Kernel) -> tuple[str, str]:
    """A kernel's ``(label, description)`` in the page's language (the ``kernels`` catalogue)."""
    return t(kernel.msg + ".label", **kernel.msg_params), t(
        kernel.msg + ".description", **kernel.msg_params
    )


def _bank(t: Translator) -> dict[str, Kernel]:
    """The chosen kernels (a Gabor bank's entries carry their angle and frequency)."""
    sb = st.sidebar
    sb.subheader(t("fm.filters"))
    ss.setdefault("fm_bank", "all")
    how = sb.radio(t("fm.bank"), BANKS, key="fm_bank", format_func=lambda b: t(f"fm.bank.{b}"))
    if how == "chosen":
        ss.setdefault("fm_chosen", ["sobel_x", "sobel_y", "laplacian_4", "gaussian_5x5"])
        chosen = sb.multiselect(
            t("fm.presets"),
            list(KERNELS),
            key="fm_chosen",
            format_func=lambda n: kernel_text(t, KERNELS[n])[0],
            placeholder=t("fm.presets.placeholder"),
        )
        return {n: KERNELS[n] for n in chosen}
    if how == "gabor":
        ss.setdefault("fm_orientations", 8)
        ss.setdefault("fm_frequency", 0.2)
        n = sb.slider(t("fm.orientations"), 1, 16, key="fm_orientations")
        # A select_slider, not a slider: its format_func writes pt-BR's "0,20".
        f = sb.select_slider(
            t("fm.frequency"),
            FREQUENCIES,
            key="fm_frequency",
            format_func=lambda v: t.num(v, 2),
            help=t("fm.frequency.help"),
        )
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
    t = tr()
    st.title(t("fm.title"))
    st.caption(t("fm.intro"))
    image, name, source, _ = image_input("fm", allow_rgb=False, default_size=256)
    if image is None:
        return
    bank = _bank(t)
    sb = st.sidebar
    sb.subheader(t("fm.layer"))
    ss.setdefault("fm_activation", "relu")
    act = sb.selectbox(
        t("fm.activation"),
        ACTIVATION_NAMES,
        key="fm_activation",
        format_func=lambda a: activation_label(a, t),
    )
    ss.setdefault("fm_pool", "none")
    pool = sb.selectbox(
        t("fm.pooling"), POOLS, key="fm_pool", format_func=lambda p: t(f"fm.pool.{p}")
    )
    ss.setdefault("fm_cols", 4)
    ncols = sb.slider(t("fm.columns"), 2, 6, key="fm_cols")
    if not bank:
        st.info(t("fm.empty_bank"))
        return

    with user_errors() as ok:
        maps = _feature_maps(image, bank, act, pool)
    if not ok[0]:
        return
    texts = {n: kernel_text(t, k) for n, k in bank.items()}
    h, w = image.shape[:2]
    # The sample's name from the catalogue; an upload's file name is data, never a caption.
    what = t(f"app.sample.{sample_slug(name)}") if source == "sample" else t("fm.input.upload")
    c1, c2 = st.columns([1, 3])
    with c1:
        st.image(image, caption=t("fm.input", name=what, h=h, w=w), clamp=True)
        n = len(bank)
        summary = "fm.summary.one" if n == 1 else "fm.summary.other"
        st.markdown(t(summary, n=n, h=maps.shape[1], w=maps.shape[2]))
        st.caption(t("fm.same_padding"))
        st.download_button(
            t("fm.download_npy"),
            lambda: npy_bytes(maps),
            file_name="feature_maps.npy",
            key="fm_dl_npy",
            on_click="ignore",
            width="stretch",
        )
        st.download_button(
            t("fm.download_png"),
            lambda: encode_png(_montage(maps, ncols), vmin=0, vmax=1),
            file_name="feature_maps.png",
            mime="image/png",
            key="fm_dl_png",
            on_click="ignore",
            width="stretch",
        )
    with c2:
        signed = None if act in ("none", "leaky_relu", "tanh") else False
        titles = [texts[n][0] for n in bank]
        # the figure has the locale's separators (a second update_layout re-validated it)
        fig = feature_grid_figure(list(maps), titles, ncols=ncols, signed=signed, t=t)
        show_figure(fig, "fm_grid", "feature_maps")
    # Lazy: the cards are drawn only while the expander is open (its state reruns the
    # page). Closed, every heat view (19 in the default bank) was still built, sent and
    # charted by the browser on each first paint of this page.
    kernels = st.expander(t("fm.kernels"), key=KERNELS_OPEN, on_change="rerun")
    with kernels:
        st.caption(t("fm.kernels.legend"))  # one legend for every card below
        if kernels.open:
            # Rows of 4, not 6 staggered columns: at 1280 px wide a sixth of the page was
            # narrower than the plotted kernel (cut off) and its title.
            names = list(bank)
            for row in range(0, len(names), KERNELS_PER_ROW):
                cols = st.columns(KERNELS_PER_ROW)
                for col, kname in zip(cols, names[row : row + KERNELS_PER_ROW], strict=False):
                    _kernel_card(t, col, kname, bank[kname], *texts[kname])


def _kernel_card(t: Translator, col, name: str, k: Kernel, label: str, description: str) -> None:
    with col:
        # A heat view: a 13x13 Gabor reads at a glance, its weights on hover.
        fig = kernel_figure(k.weights, title=label, colorbar=False, legend=False, height=220, t=t)
        show_figure(fig, f"fm_kernel_{name}", name)
        st.caption(description)
