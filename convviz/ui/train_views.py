"""The Train page's live views: a run's :class:`~convviz.runs.Snapshot` -> live-panel blocks.

:mod:`convviz.runs` reports data (numbers, arrays, probabilities, labels, a
model copy); this module turns it into what the page shows, in the reader's
language: progress text, metrics, pictures and charts (as
:mod:`convviz.ui.live_panel` blocks) and the model file to download.

Layer and model names come from model files a user may upload: they appear
only as panel text (set as text, never markup) and chart titles stripped of
markup, never in Streamlit Markdown.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np

from convviz.i18n import Translator
from convviz.runs import Snapshot
from convviz.train_figures import (
    bars_image,
    confusion_figure,
    confusion_image,
    curves_figure,
    dense_figure,
    digit_tile,
    feature_maps_image,
    filters_figure,
    filters_image,
    format_duration,
)
from convviz.ui.common import plot_config
from convviz.ui.live_panel import Block, Chart, Metric, Metrics, Pic, Pictures, Progress, Row

__all__ = [
    "activation_blocks",
    "fast_blocks",
    "model_file",
    "model_file_name",
    "progress_text",
    "sample_blocks",
    "sig",
    "training",
    "validation_blocks",
]

CURVES_H = 300  # pixels
DASH = "–"  # i18n: not text (a value not known yet)


def training(snap: Snapshot) -> bool:
    """While a run trains, the views draw pictures instead of plotly charts (but the curves).

    A plotly chart whose data change costs the browser a full redraw; with
    several of them at every refresh it took CPU from the training on this
    2-core machine (``benchmarks/bench_train_ui.py``). Hover values come back
    when the run pauses or finishes. The loss and accuracy curves stay plotly
    throughout (drawn with ``Plotly.react``, the user's zoom kept).
    """
    return snap.state in ("running", "queued")


def sig(t: Translator, x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, the locale's way: ``0.000734`` / ``0,000734``."""
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return t.num(x, 0)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return t.num(round(x, decimals), decimals, fixed=False)


def _plain(name: str) -> str:
    """A layer name for a plotly title: plotly reads tags there (links too), so none pass."""
    return name.replace("<", "‹").replace(">", "›")  # i18n: not text


def _themed(fig, t: Translator):
    fig.update_layout(separators=t.separators)
    return fig


# ------------------------------------------------------------------ the fast panel
def progress_text(snap: Snapshot, t: Translator) -> str:
    text = t(
        "train.progress",
        epoch=min(snap.epoch + 1, snap.epochs),
        epochs=snap.epochs,
        step=snap.step,
        total=snap.total_steps,
    )
    if np.isfinite(snap.images_per_s):
        eta = format_duration(snap.eta_s if snap.state == "running" else None, t)
        text += t("train.progress.speed", ips=t.int(round(snap.images_per_s)), eta=eta)
    return text


def _metrics(snap: Snapshot, t: Translator) -> list[Metric]:
    c, h = snap.chunks, snap.history
    return [
        Metric(t("train.metric.loss"), t.num(c["loss"][-1], 4) if c.get("loss") else DASH),
        Metric(t("train.metric.acc"), t.pct(c["acc"][-1], 1) if c.get("acc") else DASH),
        Metric(
            t("train.metric.val_acc"),
            t.pct(h["val_acc"][-1], 1) if h.get("val_acc") else DASH,
            help=t("train.metric.val_acc.help", n=snap.val_size),
        ),
        Metric(t("train.metric.lr"), sig(t, snap.lr)),
        Metric(t("train.metric.time"), format_duration(snap.train_seconds, t)),
    ]


def _first_filters(snap: Snapshot, t: Translator) -> list[Block]:
    """The first-layer filters: a picture while the run trains, a heatmap with hover values
    when it holds still (see :func:`training`)."""
    if not snap.kernels:
        return [Pictures([], t("train.filters.title.none"), t("train.filters.none"))]
    name, k = snap.kernels[0]
    title = t("train.filters.title", name=name, n=k.shape[3], kh=k.shape[0], kw=k.shape[1])
    note = t("train.filters.note")
    if not training(snap):
        fig = _themed(filters_figure(k, channel=0, ncols=min(8, k.shape[3]), t=t), t)
        return [Pictures([], title, note), Chart(fig, config=plot_config("filters"))]
    m = float(np.abs(k[:, :, 0, :]).max())
    zoom = max(4, 72 // max(k.shape[:2]))  # ~ the size of the paused heatmap
    pic = Pic(
        filters_image(k, channel=0, ncols=min(8, k.shape[3]), zoom=zoom),
        t("train.filters.scale", m=sig(t, m)),
    )
    return [Pictures([pic], title, note, name="filters")]


def fast_blocks(snap: Snapshot, t: Translator) -> list[Block]:
    """Progress, metrics, curves and first-layer filters: the panel fed every second."""
    curves = curves_figure(
        snap.chunks, snap.history, total_steps=snap.total_steps, height=CURVES_H, t=t
    )
    return [
        Progress(snap.progress, progress_text(snap, t)),
        Metrics(_metrics(snap, t)),
        Chart(_themed(curves, t), CURVES_H, plot_config("curves")),
        *_first_filters(snap, t),
    ]


# ------------------------------------------------------------------ the slower views
_STRIP = {True: "train.strip.right", False: "train.strip.wrong"}  # caption keys


def sample_blocks(snap: Snapshot, t: Translator) -> list[Block]:
    """The test digits of the run's sample with their predicted class (red frame: wrong)."""
    title, note = t("train.strip.title"), t("train.strip.note")
    if snap.sample_probs is None or snap.sample_images is None or not len(snap.sample_images):
        return [Pictures([], title, note)]
    pred = snap.sample_probs.argmax(axis=1)
    conf = snap.sample_probs.max(axis=1)
    pics = [
        Pic(digit_tile(img, bool(p == y)), t(_STRIP[bool(p == y)], digit=int(p), p=t.pct(c, 0)), 64)
        for img, p, c, y in zip(snap.sample_images, pred, conf, snap.sample_labels, strict=True)
    ]
    return [Pictures(pics, title, note, name="strip")]


def activation_blocks(snap: Snapshot, t: Translator) -> list[Block]:
    """The probe digit and every layer's output: feature-map grids, dense layers as bars."""
    if snap.probe_image is None:
        return []
    flat = "Flatten"  # i18n: not text (a layer class: a reshape, nothing new to see)
    shown = [a for a in snap.activations if a[1] != flat]
    maps: list[Block] = []
    last = len(shown) - 1
    for i, (name, kind, out) in enumerate(shown):
        if out.ndim == 3:
            image = feature_maps_image(out, ncols=min(16, out.shape[2]))
            h, w, c = out.shape
            maps.append(
                Pictures([Pic(image, t("train.act.map", name=name, kind=kind, h=h, w=w, c=c))])
            )
            continue
        probs = i == last and snap.probs is not None
        values = snap.probs if probs else out
        if probs:
            pred = int(np.argmax(snap.probs))
            title = t("train.act.softmax", digit=pred, p=t.pct(snap.probs[pred], 1))
        else:
            pred, title = None, t("train.act.dense", name=_plain(name), kind=kind, n=out.size)
        if training(snap):  # a picture while it changes (see training)
            bars = bars_image(values, probability=probs, highlight=pred)
            maps.append(Pictures([Pic(bars, title)]))
        else:
            fig = _themed(dense_figure(values, title, probability=probs, highlight=pred, t=t), t)
            maps.append(Chart(fig, config=plot_config("softmax" if probs else "dense")))
    digit = Pictures([Pic(digit_tile(snap.probe_image, zoom=3), t("train.act.input"))])
    return [Row([[digit], maps], weights=[1, 6])]


def validation_blocks(snap: Snapshot, t: Translator) -> list[Block]:
    """The last validation's confusion matrix and the misclassified digits."""
    title = t("train.confusion.title", step=snap.confusion_step or 0)
    note = t("train.confusion.note")
    if training(snap):  # a picture while it changes (see training)
        confusion: list[Block] = [
            Pictures([Pic(confusion_image(snap.confusion), width=330)], title, note)
        ]
    else:
        fig = _themed(confusion_figure(snap.confusion, t=t), t)
        confusion = [Pictures([], title, note), Chart(fig, config=plot_config("confusion"))]
    wrong = [
        Pic(digit_tile(img, False), t("train.wrong.caption", true=y, pred=p, p=t.pct(c, 0)), 64)
        for img, y, p, c in snap.misclassified
    ]
    gallery = Pictures(
        wrong,
        t("train.wrong.title", n=len(wrong)),
        "" if wrong else t("train.wrong.none"),
        name="misclassified",
    )
    return [Row([confusion, [gallery]], weights=[2, 3])]


# ------------------------------------------------------------------ the model file
def model_file(snap: Snapshot) -> bytes:
    """The snapshot's model copy as ``.npz`` bytes, with how it was trained as metadata."""
    model = snap.model
    if model is None:
        raise ValueError("`snap` has no model copy (the run was training)")
    meta = {
        **getattr(model, "metadata", {}),
        "trained_steps": snap.step,
        "train_config": dict(snap.config),
        "test_acc": snap.test_acc,
    }
    buf = io.BytesIO()
    model.save(buf, metadata=meta)
    return buf.getvalue()


def model_file_name(snap: Snapshot) -> str:
    """``convviz-<model>-step<n>.npz``, the model's name reduced to safe characters."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", snap.model_name)[:40] or "model"
    return f"convviz-{name}-step{snap.step}.npz"
