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
from convviz.nn.presets import PRESETS, VARIANTS, variant_of
from convviz.runs import Snapshot
from convviz.runs.snapshot import TimelineFrame
from convviz.train_figures import (
    bars_image,
    compare_figure,
    confusion_figure,
    confusion_image,
    curves_figure,
    dense_figure,
    digit_tile,
    feature_maps_image,
    filters_figure,
    filters_image,
    format_duration,
    mark_step,
)
from convviz.ui.common import plot_config
from convviz.ui.live_panel import (
    Block,
    Chart,
    Metric,
    Metrics,
    Pic,
    Pictures,
    Progress,
    Row,
    curves_chart,
)

__all__ = [
    "activation_blocks",
    "compare_blocks",
    "confusion_at",
    "fast_blocks",
    "frame_label",
    "model_file",
    "model_file_name",
    "progress_text",
    "run_label",
    "sample_blocks",
    "sig",
    "timeline_blocks",
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
        return [Pictures([], title, note), Chart(fig, config=plot_config("filters", t))]
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
        curves_chart(_themed(curves, t), CURVES_H, plot_config("curves", t), t=t),
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


_HIDDEN = ("Flatten", "Dropout")  # i18n: not text (a reshape; identity when not training)


def _probe_maps(
    acts: tuple[tuple[str, str, np.ndarray], ...],
    probs: np.ndarray | None,
    t: Translator,
    *,
    pictures: bool,
) -> list[Block]:
    """Every layer's output for the probe digit: feature-map grids, dense layers as bars
    (pictures, or plotly charts with hover values when ``pictures`` is False)."""
    shown = [a for a in acts if a[1] not in _HIDDEN]
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
        is_probs = i == last and probs is not None
        values = probs if is_probs else np.asarray(out, dtype=np.float64)
        if is_probs:
            pred = int(np.argmax(probs))
            title = t("train.act.softmax", digit=pred, p=t.pct(probs[pred], 1))
        else:
            pred, title = None, t("train.act.dense", name=_plain(name), kind=kind, n=out.size)
        if pictures:
            bars = bars_image(values, probability=is_probs, highlight=pred)
            maps.append(Pictures([Pic(bars, title)]))
        else:
            fig = _themed(dense_figure(values, title, probability=is_probs, highlight=pred, t=t), t)
            maps.append(Chart(fig, config=plot_config("softmax" if is_probs else "dense", t)))
    return maps


def activation_blocks(snap: Snapshot, t: Translator) -> list[Block]:
    """The probe digit and every layer's output: feature-map grids, dense layers as bars."""
    if snap.probe_image is None:
        return []
    # A picture while it changes (see training).
    maps = _probe_maps(snap.activations, snap.probs, t, pictures=training(snap))
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
        confusion = [Pictures([], title, note), Chart(fig, config=plot_config("confusion", t))]
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


# ------------------------------------------------------------------ the timeline
def frame_label(frame: TimelineFrame, t: Translator) -> str:
    """The scrubber's label of a frame: ``step 120 · epoch 1.52``."""
    return t("train.tl.frame", step=frame.step, epoch=t.num(frame.epoch, 2))


def confusion_at(frames: tuple[TimelineFrame, ...], index: int) -> tuple[int, np.ndarray] | None:
    """``(step, confusion)`` of the last frame at or before ``index`` that has one, or None."""
    for f in reversed(frames[: index + 1]):
        if f.confusion is not None:
            return f.step, f.confusion
    return None


def _frame_metrics(f: TimelineFrame, t: Translator) -> Metrics:
    def maybe(v, fmt):
        return DASH if v is None else fmt(v)

    return Metrics(
        [
            # The epoch is in the scrubber's label: five numbers fit one row at 1280 px.
            Metric(t("train.tl.step"), t.int(f.step)),
            Metric(t("train.tl.loss"), maybe(f.loss, lambda v: t.num(v, 4))),
            Metric(t("train.tl.val_loss"), maybe(f.val_loss, lambda v: t.num(v, 4))),
            Metric(t("train.tl.val_acc"), maybe(f.val_acc, lambda v: t.pct(v, 1))),
            Metric(t("train.metric.lr"), sig(t, f.lr)),
        ]
    )


def timeline_blocks(
    snap: Snapshot, index: int, t: Translator, digit: np.ndarray | None = None
) -> list[Block]:
    """Frame ``index`` of the run's timeline: its metrics, the curves marked at its step, the
    first-layer filters, the confusion matrix known then, and the probe digit's prediction
    and layer outputs (``digit``: that digit's image (28, 28) uint8, if known).

    Pictures throughout (a scrubbed view changes at every move; see :func:`training`),
    but the curves, updated in place with the user's zoom kept.
    """
    f = snap.timeline[index]
    curves = curves_figure(
        snap.chunks, snap.history, total_steps=snap.total_steps, height=CURVES_H, t=t
    )
    curves = _themed(mark_step(curves, f.step, (f.val_loss, f.val_acc)), t)
    blocks: list[Block] = [
        _frame_metrics(f, t),
        Chart(curves, CURVES_H, plot_config("curves", t)),
    ]
    if f.kernels is not None:
        name, k = f.kernels
        title = t("train.filters.title", name=name, n=k.shape[3], kh=k.shape[0], kw=k.shape[1])
        m = float(np.abs(k[:, :, 0, :]).max())
        zoom = max(4, 72 // max(k.shape[:2]))
        pic = Pic(
            filters_image(k, channel=0, ncols=min(8, k.shape[3]), zoom=zoom),
            t("train.tl.filters.scale", m=sig(t, m)),
        )
        filters = [Pictures([pic], title, t("train.tl.filters.note"), name="tl-filters")]
    else:
        filters = [Pictures([], t("train.filters.title.none"), t("train.filters.none"))]
    known = confusion_at(snap.timeline, index)
    if known is None:
        confusion = Pictures([], t("train.tl.confusion.none"), name="tl-confusion")
    else:
        step, cm = known
        confusion = Pictures(
            [Pic(confusion_image(cm), width=330)],
            t("train.confusion.title", step=step),
            t("train.confusion.note"),
            name="tl-confusion",
        )
    blocks.append(Row([filters, [confusion]], weights=[3, 2]))
    maps = _probe_maps(f.probe_activations, f.probe_probs, t, pictures=True)
    left: list[Block] = []
    if digit is not None:
        caption = t("train.tl.digit", index=f.probe_index)
        left = [Pictures([Pic(digit_tile(digit, zoom=3), caption)], name="tl-digit")]
    blocks.append(Row([left, maps], weights=[1, 6]))
    return blocks


# ------------------------------------------------------------------ runs side by side
def run_label(snap: Snapshot, n: int, t: Translator) -> str:
    """A run's settings in a few words: ``#2 classic + BN · adam · lr 0.001 · batch 64``.

    Only a preset's or variant's name is shown; an uploaded model's name is data (and goes
    into a plotly legend, which reads tags), so it is written as "uploaded".
    """
    c = snap.config
    if snap.model_name in PRESETS or snap.model_name in VARIANTS:
        base, bn, drop = variant_of(snap.model_name)
        model = base + (t("train.cmp.bn") if bn else "") + (t("train.cmp.dropout") if drop else "")
    else:
        model = t("train.cmp.uploaded")
    return t(
        "train.cmp.label",
        n=n,
        model=model,
        optimizer=str(c["optimizer"]),
        lr=sig(t, c["lr"]),
        batch=int(c["batch_size"]),
    )


def compare_blocks(runs: list[tuple[str, Snapshot]], t: Translator) -> list[Block]:
    """The picked runs (``(label, snapshot)``) on the same loss and accuracy axes."""
    fig = compare_figure([(_plain(label), s.history) for label, s in runs], t=t)
    return [Chart(_themed(fig, t), int(fig.layout.height), plot_config("runs", t))]


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
