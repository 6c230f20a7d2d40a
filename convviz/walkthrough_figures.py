"""What the One-training-step page draws: formulas with the step's numbers, maps, histograms.

Pure builders (no streamlit) over a :class:`convviz.nn.walkthrough.Walkthrough`; every
word through a Translator ``t`` (the ``step`` catalogue), every number written the
locale's way (a decimal comma is braced in TeX: ``0{,}5``).

>>> from convviz.i18n import translator
>>> tex(translator("pt"), 0.125)
'0{,}125'
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from convviz.figures import (
    GREYS,
    heatmap_figure,
    histogram_figure,
    image_figure,
    num_text,
)
from convviz.i18n import Translator
from convviz.nn.walkthrough import Chosen, LayerInit, Update, Walkthrough

__all__ = [
    "GRID_CHANNELS",
    "MAX_TERMS",
    "finite_difference_latex",
    "gradient_sum_text",
    "histogram",
    "init_formula",
    "init_latex",
    "loss_latex",
    "map_figure",
    "sig",
    "softmax_latex",
    "tex",
    "update_latex",
]

MAX_TERMS = 400  # the written-out sum lists every term up to this many (the hand net: 192)
GRID_CHANNELS = 8  # a preset's map shows its first 8 channels


def sig(t: Translator, v: float, digits: int = 4) -> str:
    """``v`` to ``digits`` significant digits, the locale's way (``-0`` reads ``0``).

    >>> from convviz.i18n import translator
    >>> sig(translator("en"), 0.000123456), sig(translator("pt"), -1.5)
    ('0.0001235', '-1,5')
    """
    v = float(v)
    if v == 0 or not math.isfinite(v):
        return num_text(v, 0, t)
    decimals = min(14, max(0, digits - 1 - math.floor(math.log10(abs(v)))))
    return num_text(v, decimals, t)


def tex(t: Translator, v: float, digits: int = 4) -> str:
    """:func:`sig` for TeX math: the decimal comma braced so TeX adds no space after it."""
    return sig(t, v, digits).replace(",", "{,}")


def _word(t: Translator, key: str) -> str:
    return "\\text{" + t(key) + "}"


# ------------------------------------------------------------------------------ 1. initialise


def init_formula(t: Translator, scheme: str) -> str:
    """The scheme's formula in general (TeX)."""
    w = _word(t, "step.tex.fan_in")
    wo = _word(t, "step.tex.fan_out")
    if scheme == "glorot_uniform":
        frac = f"\\frac{{6}}{{{w} + {wo}}}"
        return f"W \\sim \\mathcal{{U}}(-\\ell, \\ell),\\quad \\ell = \\sqrt{{{frac}}}"
    if scheme == "he_normal":
        return (
            f"W \\sim \\mathcal{{N}}_{{[-2\\sigma', 2\\sigma']}}(0, \\sigma'^2),\\quad "
            f"\\operatorname{{std}}(W) = \\sigma = \\sqrt{{\\frac{{2}}{{{w}}}}}"
        )
    if scheme == "gaussian":
        return f"W \\sim \\mathcal{{N}}(0, \\sigma^2),\\quad \\sigma = {tex(t, 0.05)}"
    return f"W \\sim \\mathcal{{U}}(-\\ell, \\ell),\\quad \\ell = {tex(t, 0.05)}"


def init_latex(t: Translator, layer: LayerInit) -> str:
    """The formula with this layer's fans and the parameter it gives (TeX)."""
    fi, fo = t.int(layer.fan_in), t.int(layer.fan_out)
    p = tex(t, layer.parameter)
    if layer.scheme == "glorot_uniform":
        return f"\\ell = \\sqrt{{\\frac{{6}}{{{fi} + {fo}}}}} = {p}"
    if layer.scheme == "he_normal":
        return f"\\sigma = \\sqrt{{\\frac{{2}}{{{fi}}}}} = {p}"
    name = "\\sigma" if layer.parameter_name == "std" else "\\ell"
    return f"{name} = {p}"


def histogram(t: Translator, layer: LayerInit) -> go.Figure:
    """The layer's initial weights as a histogram, titled with its name and shape."""
    shape = "×".join(str(d) for d in layer.shape)
    title = t("step.init.hist_title", name=layer.name, shape=shape, n=int(np.prod(layer.shape)))
    return histogram_figure(layer.kernel, bins=30, title=title, height=230, t=t)


# ------------------------------------------------------------------------------ 2. forward


def map_figure(
    t: Translator,
    a: np.ndarray,
    title: str,
    *,
    digits: int = 3,
    signed: bool = False,
    grey: bool = False,
) -> go.Figure:
    """One sample's output of a layer: ``(H, W, C)`` maps side by side, or a ``(D,)`` vector.

    Small maps carry their numbers (a heatmap, the channels side by side with a gap);
    bigger ones are one image of the channels side by side, each scaled to its own
    range (one cached PNG: a plotly subplot per channel cost ~0.2 s a figure). Only
    the first :data:`GRID_CHANNELS` channels are drawn; the title then says so.
    """
    a = np.asarray(a, np.float64)
    if a.ndim == 1:
        text = a.size <= 16  # 10 logits read well in a row; 32 values do not
        return heatmap_figure(a[None, :], title=title, digits=digits, text=text, height=120, t=t)
    h, w, c = a.shape
    n = min(c, GRID_CHANNELS)
    if n < c:
        title = t("step.channels_shown", title=title, n=n, c=c)
    elif c > 1:
        title = t("step.channels_side", title=title, c=c)
    if h * w <= 100:  # 10x10, 8x8, 5x5, 4x4: numbers in each cell
        gap = np.full((h, 1), np.nan)
        parts = []
        for k in range(n):
            parts += [a[:, :, k], gap]
        wide = np.concatenate(parts[:-1], axis=1)
        fig = heatmap_figure(
            np.nan_to_num(wide), title=title, digits=digits, text=h * w * n <= 256,
            mask=~np.isnan(wide), height=60 + max(34, 200 // h) * h // (2 if n > 4 else 1), t=t
        )  # fmt: skip
        if n > 1:  # the columns run on across the channels: their numbers would mislead
            fig.layout.xaxis.showticklabels = False
        return fig
    tiles = []
    for k in range(n):
        m = a[:, :, k]
        lo, hi = float(m.min()), float(m.max())
        if signed:
            top = max(abs(lo), abs(hi)) or 1.0
            tiles += [(m / top + 1) / 2, np.full((h, 1), 1.0)]
        else:
            tiles += [(m - lo) / ((hi - lo) or 1.0), np.full((h, 1), 1.0)]
    mosaic = np.concatenate(tiles[:-1], axis=1)
    scale = "RdBu_r" if signed else (GREYS if grey else "Viridis")
    return image_figure(
        mosaic, title=title, vmin=0, vmax=1, colorscale=scale, colorbar=False,
        height=60 + 4 * h if n > 1 else None, t=t,
    )  # fmt: skip


# ------------------------------------------------------------------------------ 3. loss


def softmax_latex(t: Translator) -> str:
    return (
        "p_{i,k} = \\frac{e^{z_{i,k}}}{\\sum_{j=0}^{9} e^{z_{i,j}}},\\qquad "
        "\\ell_i = -\\log p_{i, y_i}"
    )


def loss_latex(t: Translator, w: Walkthrough) -> str:
    """The batch loss as the mean of the per-sample losses, with the numbers."""
    n = len(w.losses)
    terms = " + ".join(tex(t, v) for v in w.losses)
    return (
        f"L = \\frac{{1}}{{N}}\\sum_{{i=1}}^{{N}} \\ell_i = \\frac{{1}}{{{n}}}"
        f"\\left({terms}\\right) = {tex(t, w.loss, 6)}"
    )


# ------------------------------------------------------------------------------ 4. backprop


def gradient_sum_text(t: Translator, chosen: Chosen, max_terms: int = MAX_TERMS) -> str:
    """The chosen weight's gradient written out: one line per sample, then the total.

    Each term is ``upstream×input`` (4 significant digits); terms that are exactly
    zero (a position the ReLU or the pool blocked) are counted, not listed. Past
    ``max_terms`` listed terms, a sample's line gives only its partial sum.
    """
    f, c, u, v = chosen.index
    lines = [t("step.back.sum_head", f=f, c=c, u=u, v=v)]
    listed = 0
    for n in range(chosen.products.shape[0]):
        g, x, p = chosen.upstream[n].ravel(), chosen.inputs[n].ravel(), chosen.products[n].ravel()
        nz = np.flatnonzero(p)
        part = sig(t, p.sum(), 6)
        if listed + nz.size <= max_terms:
            listed += nz.size
            terms = " + ".join(f"({sig(t, g[j])})×{sig(t, x[j])}" for j in nz) or "0"
            lines.append(
                t("step.back.sum_sample", n=n, terms=terms, zeros=p.size - nz.size, part=part)
            )
        else:
            lines.append(t("step.back.sum_sample_short", n=n, count=nz.size, part=part))
    lines.append(t("step.back.sum_total", total=sig(t, chosen.total, 8)))
    return "\n".join(lines)


def finite_difference_latex(t: Translator, chosen: Chosen) -> str:
    h = tex(t, chosen.h)
    return (
        f"\\frac{{L(w + h) - L(w - h)}}{{2h}}\\Big|_{{h = {h}}} = "
        f"{tex(t, chosen.finite_difference, 8)}"
    )


# ------------------------------------------------------------------------------ 5. update


def update_latex(t: Translator, up: Update) -> list[str]:
    """The optimizer's formula for the chosen weight, line by line with its numbers (TeX)."""
    g, lr, w0, w1 = tex(t, up.g, 6), tex(t, up.lr), tex(t, up.before, 6), tex(t, up.after, 6)
    if up.optimizer == "sgd":
        return [
            "w \\leftarrow w - \\eta\\, g",
            f"{w1} = {w0} - {lr} \\times {g}",
        ]
    if up.optimizer == "rmsprop":
        rho, eps = tex(t, up.hyper["rho"]), tex(t, up.hyper["eps"])
        v = tex(t, up.state["velocity"], 6)
        d = tex(t, up.derived["denominator"], 6)
        return [
            "v \\leftarrow \\rho\\, v + (1 - \\rho)\\, g^2,\\qquad "
            "w \\leftarrow w - \\eta\\, \\frac{g}{\\sqrt{v + \\epsilon}}",
            f"v = {rho} \\times 0 + (1 - {rho}) \\times ({g})^2 = {v}",
            f"\\sqrt{{v + \\epsilon}} = \\sqrt{{{v} + {eps}}} = {d}",
            f"{w1} = {w0} - {lr} \\times \\frac{{{g}}}{{{d}}}",
        ]
    b1, b2, eps = tex(t, up.hyper["beta1"]), tex(t, up.hyper["beta2"]), tex(t, up.hyper["eps"])
    m, v = tex(t, up.state["m"], 6), tex(t, up.state["v"], 6)
    c1, c2 = tex(t, up.derived["correction1"], 6), tex(t, up.derived["correction2"], 6)
    mh, vh = tex(t, up.derived["m_hat"], 6), tex(t, up.derived["v_hat"], 6)
    alpha = tex(t, up.derived["alpha"], 6)
    step = up.t
    return [
        "m \\leftarrow \\beta_1 m + (1 - \\beta_1)\\, g,\\quad "
        "v \\leftarrow \\beta_2 v + (1 - \\beta_2)\\, g^2,\\quad "
        "w \\leftarrow w - \\eta \\frac{\\sqrt{1 - \\beta_2^t}}{1 - \\beta_1^t}"
        "\\frac{m}{\\sqrt{v} + \\epsilon}",
        f"m = (1 - {b1}) \\times {g} = {m},\\quad v = (1 - {b2}) \\times ({g})^2 = {v}",
        f"1 - \\beta_1^{{{step}}} = {c1},\\quad 1 - \\beta_2^{{{step}}} = {c2},\\quad "
        f"\\hat m = \\frac{{m}}{{1 - \\beta_1^{{{step}}}}} = {mh},\\quad "
        f"\\hat v = \\frac{{v}}{{1 - \\beta_2^{{{step}}}}} = {vh}",
        f"\\eta_t = {lr} \\times \\frac{{\\sqrt{{{c2}}}}}{{{c1}}} = {alpha},\\quad "
        f"{w1} = {w0} - {alpha} \\times \\frac{{{m}}}{{\\sqrt{{{v}}} + {eps}}}",
    ]
