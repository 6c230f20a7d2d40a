"""Inside the network page: follow one digit through a trained CNN, with its real numbers.

Read the widgets -> call :mod:`convviz` -> render. The model is the Train page's
live run (its current weights, :attr:`convviz.runs.Snapshot.live_model`), a
shipped pretrained model (``assets/models/*.npz``) or an uploaded ``.npz``; the
digit is drawn, photographed or one of the 10,000 MNIST test images, made into
an MNIST digit by :func:`convviz.digits.preprocess_digit` (each stage shown).
The page shows the prediction and every layer's output, steps a learned filter
with the Convolution page's stepper, operates on first-layer kernels (buttons, and
cell by cell in the Convolution page's grid editor), offers the model as a
standalone PyTorch or NumPy file (:func:`convviz.export.export_model`), and
computes nothing itself: the numbers come from :mod:`convviz.nn`,
:mod:`convviz.nn.inspect` and :mod:`convviz.export`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from convviz.digits import DigitStages, preprocess_digit
from convviz.errors import CodedError
from convviz.export import TARGETS as EXPORTS
from convviz.export import export_model
from convviz.figures import heatmap_figure
from convviz.i18n import Translator
from convviz.images import ImageLoadError, load_image
from convviz.kernels import KERNELS
from convviz.nn import PRESETS, Evaluation, load_mnist, load_model
from convviz.nn.inspect import (
    SLICE_SIZE,
    Prediction,
    SurgeryBench,
    conv_cell,
    conv_layers,
    dense_contributions,
    edited_kernel,
    evaluate_slice,
    filter_map,
    layer_input,
    learned_kernel,
    occlusion,
    predict_digit,
    saliency,
    test_slice,
)
from convviz.runs import Run, get_manager
from convviz.train_figures import (
    bars_image,
    confusion_figure,
    dense_figure,
    feature_maps_image,
    filters_image,
)
from convviz.ui.common import UPLOAD_TYPES, run_guarded, user_errors
from convviz.ui.i18n import error_text, tr
from convviz.ui.pages import train
from convviz.ui.params import CellProblem, ConvSettings, sig
from convviz.ui.widgets.canvas import draw_digit
from convviz.ui.widgets.charts import show
from convviz.ui.widgets.filters import filter_picker
from convviz.ui.widgets.grid import GridProblems, GridState, grid_editor, grid_value
from convviz.ui.widgets.labels import kernel_label
from convviz.ui.widgets.overlay import heat_image, overlay_image
from convviz.ui.widgets.stepper import conv_stepper

__all__ = ["STATE_KEYS", "render"]

_log = logging.getLogger(__name__)

P = "inside_"  # widget key prefix
MODELS_DIR = Path(__file__).resolve().parents[3] / "assets" / "models"
SOURCES = ("pretrained", "live", "upload")  # labels: inside.source.*
DIGITS = ("test", "draw", "upload")  # labels: inside.digit.*
SECTIONS = ("step", "surgery", "looks")  # labels: inside.section.*
RUN_KEY = train.P + "run_id"  # where the Train page keeps this session's run id
MNIST_TEST = 10_000
STAGE_SIDE = 84  # preprocessing stages fit this box (five side by side beside the canvas)
LIVE_REFRESH_S = 2.0  # while the live run trains, the prediction follows its weights this often
STROKES = (8, 40)  # brush widths the canvas offers (px on a 280 px canvas)
STROKE = 20  # about an MNIST stroke once the digit is scaled into its 20x20 box
PATCH, PATCH_STRIDE = 4, 2  # occlusion: a 4x4 patch every 2 pixels (169 occluded digits)
HEAD_TOP = 8  # terms of the logit listed

STATE_KEYS = (
    P + "source",
    P + "pretrained",
    P + "digit",
    P + "index",
    P + "section",
    P + "stroke",
    P + "layer",
    P + "filter",
    P + "deep_filter",
    P + "deep_row",
    P + "deep_col",
    P + "head_class",
    P + "head_top",
    P + "surgery_filter",
    P + "preset",
    P + "look_class",
    P + "patch",
    P + "patch_stride",
)


@dataclass(frozen=True)
class Source:
    """The model the page looks inside (use it read-only: it may be shared by sessions)."""

    kind: str  # one of SOURCES
    model: Any  # a convviz.nn.Sequential
    key: str  # identifies these weights (caches are keyed by it)
    data: bytes | None = None  # the .npz (shipped, uploaded): it can be evaluated
    run: Run | None = None  # the live run
    step: int = 0  # the live run's step of these weights
    name: str = "model"  # i18n: not text (what its files are called: made safe by _file_stem)


@dataclass(frozen=True)
class Digit:
    """The digit the model reads: ``x`` ``(28, 28)`` float32 in [0, 1]."""

    x: np.ndarray
    label: int | None = None  # the true class, for a test image
    stages: DigitStages | None = None  # how a drawing or photo was made into x


def render() -> None:
    """The page; errors become messages."""
    run_guarded(_render)


# ---------------------------------------------------------------------------- models
def _shipped_names() -> list[str]:
    """Shipped model files: the presets' first (in their order), then any others."""
    have = {p.stem for p in MODELS_DIR.glob("*.npz")}
    return [n for n in PRESETS if n in have] + sorted(have - set(PRESETS))


@functools.cache
def _shipped(name: str) -> tuple[bytes, Any]:
    data = (MODELS_DIR / f"{name}.npz").read_bytes()
    return data, load_model(io.BytesIO(data))


@functools.lru_cache(maxsize=4)  # the same upload comes back at every rerun
def _uploaded(data: bytes) -> Any:
    """The uploaded model, or the coded error that says what is wrong with the file."""
    try:  # the Train page's checks: shapes and size from the header, before any weight
        return load_model(
            io.BytesIO(data),
            input_shape=(28, 28, 1),
            output_shape=(10,),
            max_params=train.MAX_UPLOAD_PARAMS,
        )
    except CodedError as exc:
        return exc
    except Exception:  # zip, npy and JSON errors: said plainly, never str(exc)
        return CodedError("train.err.not_a_model")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _live_run() -> Run | None:
    rid = st.session_state.get(RUN_KEY) or st.query_params.get("run")
    run = get_manager().get(rid) if rid else None
    if run is not None:
        run.touch()  # this session is still looking at it
    return run


def _model_source(t: Translator) -> Source | None:
    """The sidebar's model choice; None (with a message) when there is no model yet."""
    sb = st.sidebar
    sb.header(t("inside.sidebar.model"))
    kind = sb.radio(
        t("inside.source"), SOURCES, format_func=lambda s: t(f"inside.source.{s}"), key=P + "source"
    )
    if kind == "pretrained":
        names = _shipped_names()
        if not names:
            st.info(t("inside.source.none_shipped"))
            return None
        # Shipped file names: our own, shown as plain option text.
        name = sb.selectbox(t("inside.pretrained"), names, key=P + "pretrained")
        if t.has(f"train.preset.{name}"):
            sb.caption(t(f"train.preset.{name}"))
        data, model = _shipped(name)
        return Source("pretrained", model, f"shipped:{_digest(data)}", data=data, name=name)
    if kind == "upload":
        up = sb.file_uploader(t("inside.upload"), type=["npz"], key=P + "upload")
        if up is None:
            st.info(t("inside.upload.prompt"))
            return None
        data = up.getvalue()
        model = _uploaded(data)
        if isinstance(model, CodedError):
            st.error(t("inside.upload.bad", reason=error_text(model, t)))
            st.text(up.name)  # the uploader's text: plain, never Markdown
            return None
        stem = up.name[:-4] if up.name.lower().endswith(".npz") else up.name
        return Source("upload", model, f"upload:{_digest(data)}", data=data, name=stem)
    run = _live_run()
    if run is None:
        st.info(t("inside.live.none"))
        return None
    snap = run.snapshot()
    if snap.live_model is None:  # the run has not published its first views yet
        st.info(t("inside.live.waiting"))
        return None
    sb.caption(
        t(
            "inside.live.caption",
            step=snap.live_step,
            total=snap.total_steps,
            state=t(f"inside.live.state.{snap.state}"),
        )
    )
    return Source(
        "live",
        snap.live_model,
        f"live:{run.id}:{snap.live_step}",
        run=run,
        step=snap.live_step,
        name=f"convviz-{snap.model_name}-step{snap.live_step}",
    )


# ---------------------------------------------------------------------------- evaluation
_EVALS: OrderedDict[str, Evaluation] = OrderedDict()  # source key -> scores, shared, read-only
_EVALS_MAX = 8
_evals_lock = threading.Lock()


def _evaluation(source: Source) -> Evaluation | None:
    with _evals_lock:
        return _EVALS.get(source.key)


def _evaluate(source: Source) -> Evaluation:
    """Test accuracy and confusion matrix on the 10,000 test images, once per model."""
    done = _evaluation(source)
    if done is not None:
        return done
    data = load_mnist()
    # Through FastPlan on twins of the layers: 1.2 s for classic here, the reference
    # layers' evaluate_set 2.3 s, the same confusion matrix (measured).
    result = evaluate_slice(source.model, data.test_images, data.test_labels)
    with _evals_lock:
        _EVALS[source.key] = result
        while len(_EVALS) > _EVALS_MAX:
            _EVALS.popitem(last=False)
    return result


def _model_section(t: Translator, source: Source) -> None:
    model = source.model
    with st.expander(t("inside.model.summary", n=model.count_params())):
        st.code(model.summary(), language=None)  # layer names may be an upload's: code
    _export_section(t, source)
    if source.data is None:
        return
    result = _evaluation(source)
    if result is None:
        clicked = st.button(
            t("inside.eval.button", n=MNIST_TEST),
            key=P + "evaluate",
            icon=":material/fact_check:",
            help=t("inside.eval.help"),
        )
        if not clicked:
            return
        with st.spinner(t("inside.eval.running", n=MNIST_TEST)):
            result = _evaluate(source)
    c1, c2 = st.columns([1, 2])
    c1.metric(t("inside.eval.acc", n=MNIST_TEST), t.pct(result.acc, 2))
    c1.caption(t("inside.eval.caption", right=int(np.trace(result.confusion)), n=MNIST_TEST))
    with c2:
        show(t, confusion_figure(result.confusion, t=t), P + "confusion", "confusion")


# ---------------------------------------------------------------------------- export
def _file_stem(name: str) -> str:
    """``name`` (a shipped model's, an upload's file name: data) in safe characters only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-")[:40] or "model"


def export_files(source: Source) -> dict[str, str]:
    """The download's file names: ``{"pytorch": ..., "numpy": ..., "npz": ...}``."""
    stem = _file_stem(source.name)
    return {to: f"{stem}_{to}.py" for to in EXPORTS} | {"npz": f"{stem}.npz"}


def export_source(model: Any, to: str) -> bytes:
    """The standalone ``.py`` file of ``model`` (:func:`convviz.export.export_model`)."""
    return export_model(model, to=to).encode("utf-8")


def weights_file(source: Source) -> bytes:
    """The model's ``.npz``: a shipped or uploaded file's own bytes, the live copy saved."""
    if source.data is not None:
        return source.data
    buf = io.BytesIO()
    source.model.save(buf)
    return buf.getvalue()


def _export_section(t: Translator, source: Source) -> None:
    """Downloads of the model as a PyTorch or NumPy file, and of its weights (both needed).

    The files are made only when clicked (deferred ``data``): an export of classic
    is a few milliseconds, but the page reruns at every stroke on the canvas.
    """
    files = export_files(source)
    model = source.model  # this script run's weights (a live run's copy at this step)
    with st.expander(t("inside.export.header"), icon=":material/download:"):
        st.caption(t("inside.export.intro"))
        cols = st.columns(3)
        for col, to in zip(cols, EXPORTS, strict=False):
            col.download_button(
                t(f"inside.export.{to}"),
                data=lambda to=to: export_source(model, to),
                file_name=files[to],
                mime="text/x-python",
                key=P + f"export_{to}",
                on_click="ignore",
                icon=":material/code:",
                width="stretch",
            )
        cols[2].download_button(
            t("inside.export.npz"),
            data=lambda: weights_file(source),
            file_name=files["npz"],
            mime="application/octet-stream",
            key=P + "export_npz",
            on_click="ignore",
            icon=":material/download:",
            width="stretch",
        )
        st.caption(t("inside.export.run"))
        st.code(t("inside.export.command", py=files["numpy"], npz=files["npz"]), language="bash")


# ---------------------------------------------------------------------------- digit
@functools.cache
def _test_set() -> tuple[np.ndarray, np.ndarray]:
    data = load_mnist()
    return data.test_images, data.test_labels


def _enlarged(image: np.ndarray, side: int = STAGE_SIDE) -> np.ndarray:
    """``image`` (h, w) in [0, 1] resized (nearest: crisp pixels) to fit a ``side`` box."""
    h, w = image.shape
    z = side / max(h, w)
    size = (max(1, round(w * z)), max(1, round(h * z)))  # Pillow's (width, height)
    im = Image.fromarray(np.clip(image, 0.0, 1.0).astype(np.float32))  # mode "F"
    return np.asarray(im.resize(size, Image.Resampling.NEAREST), dtype=np.float64)


def _stages_view(t: Translator, stages: DigitStages, per_row: int) -> None:
    st.markdown(f"**{t('inside.prep.header')}**")
    shown = stages.stages()
    cols = [c for _ in range(-(-len(shown) // per_row)) for c in st.columns(per_row)]
    for col, stage in zip(cols, shown, strict=False):
        caption = t(stage.key, **stage.params)
        img = _enlarged(stage.image)
        col.image(img, clamp=True, output_format="PNG", width=img.shape[1])
        col.caption(caption)  # the column's width: an image caption wraps at the image's


def _digit_input(t: Translator) -> Digit | None:
    """The digit chooser; None (with a hint) until there is a digit."""
    ss = st.session_state
    st.header(t("inside.digit.header"))
    kind = st.radio(
        t("inside.digit"),
        DIGITS,
        format_func=lambda s: t(f"inside.digit.{s}"),
        key=P + "digit",
        horizontal=True,
    )
    if kind == "test":
        images, labels = _test_set()
        c1, c2, c3 = st.columns([2, 1, 4], vertical_alignment="bottom")
        index = int(
            c1.number_input(t("inside.test.index"), 0, MNIST_TEST - 1, step=1, key=P + "index")
        )

        def pick_random() -> None:
            ss[P + "index"] = int(np.random.default_rng().integers(MNIST_TEST))

        c2.button(t("inside.test.random"), key=P + "random", on_click=pick_random, width="stretch")
        label = int(labels[index])
        c3.caption(t("inside.test.caption", index=index, label=label))
        return Digit(images[index].astype(np.float32) / np.float32(255.0), label=label)
    if kind == "draw":
        c1, c2 = st.columns([3, 5])  # the 280 px canvas fits the left column at 1280 px
        with c1:
            st.session_state.setdefault(P + "stroke", STROKE)
            stroke = st.slider(t("inside.draw.stroke"), *STROKES, key=P + "stroke")
            picture = draw_digit(t, P + "canvas", stroke=stroke)
        if picture is None:
            c2.info(t("inside.draw.prompt"))
            return None
        with c2:  # beside the canvas: three stages a row, so their captions have room
            return _preprocessed(t, picture, per_row=3)
    up = st.file_uploader(t("inside.photo"), type=UPLOAD_TYPES, key=P + "photo")
    if up is None:
        st.info(t("inside.photo.prompt"))
        return None
    try:
        picture = _decoded(up.getvalue())
    except ImageLoadError as exc:
        st.error(t("inside.photo.bad", reason=error_text(exc, t)))
        st.text(up.name)  # the uploader's text: plain, never Markdown
        return None
    return _preprocessed(t, picture)


@functools.lru_cache(maxsize=4)
def _decoded(data: bytes) -> np.ndarray:
    # 512 px are plenty for a 20x20 box; photos from phones are turned upright by load_image.
    return load_image(data, max_side=512, mode="gray")


def _preprocessed(t: Translator, picture: np.ndarray, per_row: int = 5) -> Digit | None:
    try:
        stages = preprocess_digit(picture)
    except CodedError as exc:  # err.digit.*: no ink, a speck
        st.warning(error_text(exc, t))
        return None
    _stages_view(t, stages, per_row)
    return Digit(stages.digit, stages=stages)


# ---------------------------------------------------------------------------- prediction
def _prediction(t: Translator, model: Any, digit: Digit) -> Prediction:
    """The ten probabilities and every layer's output (:func:`predict_digit`)."""
    pred = predict_digit(model, digit.x)
    probs, label = pred.probs, pred.label
    c1, c2 = st.columns([1, 3])
    with c1:
        caption = t("inside.pred.input")
        st.image(
            _enlarged(digit.x, 140), caption=caption, clamp=True, output_format="PNG", width=140
        )
        st.metric(
            t("inside.pred.class"),
            str(label),
            t.pct(probs[label], 1),
            delta_color="off",
            delta_arrow="off",
        )
        if digit.label is not None:
            key = "inside.pred.right" if label == digit.label else "inside.pred.wrong"
            st.caption(t(key, label=digit.label))
    with c2:
        fig = dense_figure(
            probs, t("inside.pred.probs"), probability=True, highlight=label, height=260, t=t
        )
        show(t, fig, P + "probs", "probabilities")
    st.subheader(t("inside.act.header"))
    st.caption(t("inside.act.caption"))
    last = len(pred.layers) - 1
    for out in pred.layers:
        if out.class_name == "Flatten":  # i18n: not text (a layer class: a reshape)
            continue
        a = out.output
        # The layer's name is the model's (an upload's: data): plain text only.
        st.text(f"{out.name} · {out.class_name} · {' × '.join(map(str, a.shape))}")
        if a.ndim == 3:
            st.image(feature_maps_image(a, ncols=min(16, a.shape[2])), output_format="PNG")
        elif out.index == last:  # the logits: shown as the probabilities
            st.image(bars_image(probs, probability=True, highlight=label), output_format="PNG")
        else:
            st.image(bars_image(a), output_format="PNG")
    return pred


def _prediction_view(t: Translator, source: Source, digit: Digit) -> Prediction | None:
    """The prediction; while the live run trains, a fragment follows its newest weights."""
    run = source.run
    if run is None or run.snapshot().state not in ("running", "queued"):
        with user_errors() as ok:
            pred = _prediction(t, source.model, digit)
        return pred if ok[0] else None

    def follow() -> None:  # a fragment: its reruns skip render's guard, so it has its own
        def body() -> None:
            snap = run.snapshot()
            st.caption(t("inside.live.following", step=snap.live_step, total=snap.total_steps))
            _prediction(t, snap.live_model, digit)

        run_guarded(body)

    st.fragment(run_every=LIVE_REFRESH_S)(follow)()
    # The sections below use the weights of this script run (source.model).
    return predict_digit(source.model, digit.x)


# ---------------------------------------------------------------------------- step a filter
HEAD = -1  # the layer choice that means the dense head


def _choice(key: str, options: list) -> None:
    """Keep a selector's stored value among its options (they change with the model)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = options[0]


def _step_section(t: Translator, model: Any, digit: Digit, pred: Prediction) -> None:
    st.caption(t("inside.step.intro"))
    convs = conv_layers(model)
    options = [*convs, HEAD]
    _choice(P + "layer", options)
    names = {i: model.layers[i].name for i in convs}
    # The stepper slides over one map: a first conv that reads the (one-channel) digit.
    first = convs[0] if convs and model.layers[convs[0]].input_shape[-1] == 1 else None

    def label(i: int) -> str:  # option texts are plain text: a layer name (data) is safe here
        if i == HEAD:
            return t("inside.step.layer.head")
        key = "inside.step.layer.first" if i == first else "inside.step.layer.deeper"
        return t(key, name=names[i])

    layer = st.selectbox(t("inside.step.layer"), options, format_func=label, key=P + "layer")
    with user_errors():
        if layer == HEAD:
            _head(t, model, digit, pred)
        elif layer == first:
            _first_layer(t, model, layer, digit)
        else:
            _deeper_layer(t, model, layer, digit, pred)


def _sig(t: Translator, v: float, digits: int = 4) -> str:
    return sig(t, v, digits)


def _first_layer(t: Translator, model: Any, i: int, digit: Digit) -> None:
    """Pick a learned filter (click it or choose it) and step it over the digit."""
    layer = model.layers[i]
    kernels = layer.params["kernel"]  # (kh, kw, 1, F): read only
    n = kernels.shape[3]
    key = P + "filter"
    _choice(key, list(range(n)))
    st.caption(t("inside.filters.caption", n=n, kh=kernels.shape[0], kw=kernels.shape[1]))
    filter_picker(t, kernels, P + "filter_pick", key)
    f = st.selectbox(
        t("inside.step.filter"),
        list(range(n)),
        format_func=lambda v: t("inside.step.filter.n", f=v),
        key=key,
    )
    x_in = layer_input(model, i, digit.x)  # (H, W, 1): the digit as the layer gets it
    kernel, bias = learned_kernel(model, i, f)  # (kh, kw, 1)
    fm = filter_map(model, i, digit.x, f)  # every cell stepped, beside the layer's own map
    if fm.agrees:
        st.success(t("inside.step.match", f=f, diff=_sig(t, fm.max_abs_diff, 3)))
    else:
        st.warning(t("inside.step.mismatch", f=f, diff=_sig(t, fm.max_abs_diff, 3)))
    activation = "relu" if layer.activation == "relu" else "none"
    settings = ConvSettings(
        kernel=kernel[..., 0],
        bias=bias,
        stride=layer.strides[0],
        padding=layer.pads[0][0],  # for the record: the steps come from step_at
        activation=activation,
    )
    ho, wo = layer.output_shape[:2]
    # The stepper opens on the middle of the map, where the digit is (a corner sees paper).
    st.session_state.setdefault(P + "conv_step", (ho // 2) * wo + wo // 2)

    def step_at(idx: int):  # the layer's own cell arithmetic, as a ConvStep
        return conv_cell(model, i, x_in, idx // wo, idx % wo, f).step()

    conv_stepper(
        t, x_in[..., 0], settings, fm.stepped, layer.pads, numbers=False, prefix=P + "conv",
        step_at=step_at,
    )  # fmt: skip


def _deeper_layer(t: Translator, model: Any, i: int, digit: Digit, pred: Prediction) -> None:
    """One output cell of a deeper conv: a partial sum per input channel, their total, the bias."""
    layer = model.layers[i]
    ho, wo, n = layer.output_shape
    c1, c2, c3 = st.columns(3)
    f = c1.selectbox(
        t("inside.step.filter"),
        list(range(n)),
        format_func=lambda v: t("inside.step.filter.n", f=v),
        key=P + "deep_filter",
    )
    for k, hi in (("deep_row", ho - 1), ("deep_col", wo - 1)):
        st.session_state.setdefault(P + k, hi // 2)  # the middle: a cell that sees the digit
        if int(st.session_state[P + k]) > hi:
            st.session_state[P + k] = hi
    row = c2.number_input(t("inside.deep.row", last=ho - 1), 0, ho - 1, step=1, key=P + "deep_row")
    col = c3.number_input(t("inside.deep.col", last=wo - 1), 0, wo - 1, step=1, key=P + "deep_col")
    x_in = layer_input(model, i, digit.x)  # (H, W, C): the previous layer's maps
    cell = conv_cell(model, i, x_in, int(row), int(col), f)
    c = len(cell.partial_sums)
    st.caption(t("inside.deep.caption", c=c, kh=cell.kernel.shape[1], kw=cell.kernel.shape[2]))
    p1, p2, p3 = st.columns(3)
    pics = (
        (p1, feature_maps_image(cell.window.transpose(1, 2, 0), min_side=40), "window"),
        (p2, filters_image(cell.kernel.transpose(1, 2, 0)[..., None], ncols=16, zoom=10), "kernel"),
        (p3, feature_maps_image(cell.products.transpose(1, 2, 0), min_side=40), "products"),
    )
    for col_, image, what in pics:
        col_.image(image, caption=t(f"inside.deep.{what}", c=c), output_format="PNG")
    fig = dense_figure(
        cell.partial_sums, t("inside.deep.partials"), labels=[str(k) for k in range(c)], t=t
    )
    show(t, fig, P + "partials", "partial_sums")
    sums = " + ".join(_sig(t, v) for v in cell.partial_sums)
    lines = [
        t("inside.deep.total", sums=sums, total=_sig(t, cell.total)),
        t("inside.deep.bias", total=_sig(t, cell.total), bias=_sig(t, cell.bias),
          pre=_sig(t, cell.pre_activation)),
    ]  # fmt: skip
    if cell.activation == "relu":
        lines.append(
            t("inside.deep.relu", pre=_sig(t, cell.pre_activation), value=_sig(t, cell.value))
        )
    st.code("\n".join(lines), language=None, wrap_lines=True)
    network = float(pred.layers[i].output[int(row), int(col), f])
    diff = abs(network - cell.value)
    st.success(
        t("inside.deep.match", row=int(row), col=int(col), f=f, value=_sig(t, network, 6),
          diff=_sig(t, diff, 3))
    )  # fmt: skip


def _head(t: Translator, model: Any, digit: Digit, pred: Prediction) -> None:
    """The predicted (or a chosen) class's logit as its largest terms w·x, then the softmax."""
    c1, c2 = st.columns(2)
    options = [HEAD, *range(len(pred.probs))]
    choice = c1.selectbox(
        t("inside.head.class"),
        options,
        format_func=lambda v: t("inside.head.predicted", c=pred.label) if v == HEAD else str(v),
        key=P + "head_class",
    )
    st.session_state.setdefault(P + "head_top", HEAD_TOP)
    top = c2.slider(t("inside.head.top"), 3, 20, key=P + "head_top")
    cls = pred.label if choice == HEAD else int(choice)
    dc = dense_contributions(model, digit.x, cls, top=int(top))
    st.caption(t("inside.head.caption", c=cls, d=len(dc.x)))
    labels = [t("inside.head.term", i=int(k)) for k in dc.top]
    fig = dense_figure(dc.top_wx, t("inside.head.terms", c=cls), labels=labels, t=t)
    show(t, fig, P + "head_terms", "contributions")
    terms = " + ".join(
        f"{_sig(t, w)}×{_sig(t, x)}" for w, x in zip(dc.top_w, dc.top_x, strict=True)
    )
    st.code(
        "\n".join(
            [
                t("inside.head.logit", c=cls, bias=_sig(t, dc.bias), terms=terms,
                  rest=_sig(t, dc.rest), n=len(dc.x) - len(dc.top), logit=_sig(t, dc.logit)),
                t("inside.head.softmax", c=cls, logit=_sig(t, dc.logit),
                  p=t.pct(dc.probs[cls], 2)),
            ]
        ),
        language=None,
        wrap_lines=True,
    )  # fmt: skip
    fig = dense_figure(
        dc.probs, t("inside.head.probs"), probability=True, highlight=cls, height=220, t=t
    )
    show(t, fig, P + "head_probs", "softmax")


# ---------------------------------------------------------------------------- surgery
_BENCHES: OrderedDict[str, SurgeryBench] = OrderedDict()  # shared: read-only once built
_BENCHES_MAX = 3  # classic's bench keeps ~70 MB (SurgeryBench)
_benches_lock = threading.Lock()
OPS = ("zero", "negate")  # buttons: inside.surgery.<op>; presets have their own
CELLS = "cells"  # an operation ("cells", values row by row): the kernel typed in the grid
GRID = P + "kernel_grid"  # the grid editor's key prefix (its editors: GRID_<version>_0)
CELL_MAX = 1000  # a typed weight within ±CELL_MAX (the learned ones are below 1)


def _bench(key: str, model: Any, i: int) -> SurgeryBench:
    """The surgery bench of ``model``'s layer ``i`` on the fixed slice (built once per key)."""
    with _benches_lock:
        bench = _BENCHES.get(key)
        if bench is not None:
            _BENCHES.move_to_end(key)
            return bench
    images, labels = test_slice(SLICE_SIZE)
    bench = SurgeryBench(model, i, images, labels)  # a copy: training goes on undisturbed
    with _benches_lock:
        _BENCHES[key] = bench
        while len(_BENCHES) > _BENCHES_MAX:
            _BENCHES.popitem(last=False)
    return bench


def _bench_key(t: Translator, source: Source, i: int) -> str:
    """Which weights surgery works on: the source's; a live run's are pinned until refreshed."""
    ss = st.session_state
    if source.run is None:
        return f"{source.key}:{i}"
    pinned = ss.get(P + "bench_key")
    with _benches_lock:
        kept = pinned in _BENCHES
    if not (kept and pinned.startswith(f"live:{source.run.id}:")):
        pinned = ss[P + "bench_key"] = f"{source.key}:{i}"  # the weights of this script run
    step = int(pinned.split(":")[2])
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    c1.caption(t("inside.surgery.live", step=step))

    def refresh() -> None:
        ss.pop(P + "bench_key", None)

    c2.button(
        t("inside.surgery.refresh"),
        key=P + "bench_refresh",
        on_click=refresh,
        disabled=step == source.step,
        width="stretch",
    )
    return pinned


def _presets(kh: int, kw: int) -> list[str]:
    """The kernel presets that fit a (kh, kw) filter."""
    return [name for name, k in KERNELS.items() if k.weights.shape == (kh, kw)]


def _edit_kernels(bench: SurgeryBench, ops: dict[int, str]) -> dict[int, np.ndarray]:
    """The edited kernels ``{filter: (kh, kw, C)}`` of the operations ``{filter: op}``."""
    model, i = bench.model, bench.layer_index
    out = {}
    kh, kw = model.layers[i].params["kernel"].shape[:2]
    for f, op in ops.items():
        if isinstance(op, tuple):  # (CELLS, values): typed in the grid
            out[f] = edited_kernel(model, i, f, np.array(op[1], dtype=np.float64).reshape(kh, kw))
        elif op in OPS:
            out[f] = edited_kernel(model, i, f, **{op: True})
        else:  # "preset:<name>"
            out[f] = edited_kernel(model, i, f, KERNELS[op.split(":", 1)[1]].weights)
    return out


def _kernel_grid(bench: SurgeryBench, key: str, ops: dict, f: int):
    """The grid that shows filter ``f``'s kernel now and takes cell-by-cell edits.

    Returns ``(grid, problems)``. Its committed array is always the kernel in the
    surgery: a button (zero, negate, preset, undo) or another filter mounts fresh
    editors on the new kernel, and a valid typed cell becomes the operation
    ``(CELLS, values)`` of ``f`` (the learned values again: no edit), then the
    editors are mounted on it. A cell that does not parse keeps its value (the
    grid's message says which): the kernel in the surgery stays as it was.
    """
    ss = st.session_state
    i = bench.layer_index
    learned = learned_kernel(bench.model, i, f)[0][..., 0]  # (kh, kw): the copy's
    now = _edit_kernels(bench, {f: ops[f]})[f][..., 0] if f in ops else learned
    tag = (key, f, ops.get(f))  # what the editors were mounted for
    grid = ss.get(GRID)
    if not isinstance(grid, GridState):
        grid = ss[GRID] = GridState(now)
    elif ss.get(GRID + "_for") != tag:
        grid.replace(now)
    ss[GRID + "_for"] = tag
    value, problems = grid_value(GRID, grid)
    # A number the float32 network cannot take (1e300 is infinite there) is refused
    # like a cell that does not parse: it keeps the kernel's value.
    big = np.argwhere(np.abs(value) > CELL_MAX)
    if len(big):
        value = np.array(value, copy=True)
        cells = list(problems.cells)
        for r, col in big:
            value[r, col] = now[r, col]
            error = CodedError("inside.surgery.cell_big", row=r + 1, col=col + 1, max=CELL_MAX)
            cells.append((0, CellProblem(error, float(now[r, col]))))
        problems = GridProblems(tuple(cells))
    if not np.array_equal(value, now):
        if np.array_equal(value, learned):
            ops.pop(f, None)
        else:
            ops[f] = (CELLS, tuple(tuple(float(v) for v in row) for row in value))
        now = value
        ss[GRID + "_for"] = (key, f, ops.get(f))
    if not np.array_equal(grid.base, now):
        grid.replace(now)  # the editors show the kernel in the surgery
    return grid, problems


def _surgery_section(t: Translator, source: Source) -> None:
    st.caption(t("inside.surgery.intro", n=SLICE_SIZE))
    convs = conv_layers(source.model)
    if not convs:
        return
    i = convs[0]
    key = _bench_key(t, source, i)
    with st.spinner(t("inside.surgery.building", n=SLICE_SIZE)):
        bench = _bench(key, source.model, i)  # a pinned live bench comes from the cache
    ss = st.session_state
    state = ss.get(P + "edits")
    if not (isinstance(state, dict) and state.get("key") == key):
        state = ss[P + "edits"] = {"key": key, "ops": {}}
    ops: dict[int, str] = state["ops"]
    layer = bench.model.layers[i]
    kh, kw, c, n = layer.params["kernel"].shape
    fkey = P + "surgery_filter"
    _choice(fkey, list(range(n)))
    f = int(ss[fkey])  # the selectbox below shows it
    grid = _kernel_grid(bench, key, ops, f) if c == 1 else None  # before anything uses ops
    edited = _edit_kernels(bench, ops)
    shown = np.array(layer.params["kernel"], copy=True)  # (kh, kw, C, F): with the edits
    for f, k in edited.items():
        shown[..., f] = k
    filter_picker(t, shown, P + "surgery_pick", fkey)
    f = st.selectbox(
        t("inside.surgery.filter"),
        list(range(n)),
        format_func=lambda v: (
            t("inside.step.filter.n", f=v) + (t("inside.surgery.edited_mark") if v in ops else "")
        ),
        key=fkey,
    )

    def apply(op: str) -> None:
        ops[int(ss[fkey])] = op

    def undo() -> None:
        ops.pop(int(ss[fkey]), None)

    b = st.columns([1, 1, 2, 1, 1, 1], vertical_alignment="bottom")
    for col, op in zip(b[:2], OPS, strict=True):
        col.button(t(f"inside.surgery.{op}"), key=P + f"op_{op}", on_click=apply, args=(op,),
                   width="stretch")  # fmt: skip
    presets = _presets(kh, kw) if c == 1 else []
    if presets:
        _choice(P + "preset", presets)
        name = b[2].selectbox(
            t("inside.surgery.preset"),
            presets,
            format_func=lambda k: kernel_label(t, k),
            key=P + "preset",
        )
        b[3].button(t("inside.surgery.replace"), key=P + "op_preset", on_click=apply,
                    args=(f"preset:{name}",), width="stretch")  # fmt: skip
    b[4].button(t("inside.surgery.undo"), key=P + "op_undo", on_click=undo,
                disabled=f not in ops, width="stretch")  # fmt: skip
    b[5].button(t("inside.surgery.reset"), key=P + "op_reset", on_click=ops.clear,
                disabled=not ops, width="stretch")  # fmt: skip

    learned, _ = learned_kernel(bench.model, i, f)  # (kh, kw, C): the copy's, never edited
    if grid is not None:  # a row of its own: beside the two kernels a 3x3 grid was clipped
        st.markdown(f"**{t('inside.surgery.cells', f=f)}**")
        st.caption(t("inside.surgery.cells.help", f=f))
        grid_editor(GRID, grid[0], t, grid[1])
    k1, k2 = st.columns(2)
    with k1:
        fig = heatmap_figure(learned[..., 0], title=t("inside.surgery.learned", f=f),
                             digits=3, text=True, t=t)  # fmt: skip
        show(t, fig, P + "kernel_before", "learned_kernel")
    with k2:
        now = edited.get(f, learned)[..., 0]
        fig = heatmap_figure(now, title=t("inside.surgery.now", f=f), digits=3, text=True, t=t)
        show(t, fig, P + "kernel_after", "edited_kernel")

    done = ss.get(P + "surgery_done")  # (key, ops, scores, ms): a rerun for another reason
    if isinstance(done, tuple) and done[:2] == (key, dict(ops)):  # (a new digit) reuses it
        after, ms = done[2], done[3]
    else:
        t0 = time.perf_counter()
        after = bench.evaluate(edited)
        ms = (time.perf_counter() - t0) * 1e3
        ss[P + "surgery_done"] = (key, dict(ops), after, ms)
    before = bench.baseline
    c1, c2 = st.columns(2)
    with c1:
        st.metric(t("inside.surgery.before", n=SLICE_SIZE), t.pct(before.acc, 2))
        show(t, confusion_figure(before.confusion, t=t), P + "confusion_before", "before")
    with c2:
        delta = t.num((after.acc - before.acc) * 100, 2) + " pp"  # i18n: not text (a unit)
        st.metric(t("inside.surgery.after", n=SLICE_SIZE), t.pct(after.acc, 2), delta)
        show(t, confusion_figure(after.confusion, t=t), P + "confusion_after", "after")
    st.caption(t("inside.surgery.timing", n=len(ops), images=SLICE_SIZE, ms=t.num(ms, 0)))


# ---------------------------------------------------------------------------- looks at
def _looks_section(t: Translator, model: Any, digit: Digit, pred: Prediction) -> None:
    st.caption(t("inside.look.intro"))
    c1, c2, c3 = st.columns(3)
    options = [HEAD, *range(len(pred.probs))]
    choice = c1.selectbox(
        t("inside.head.class"),
        options,
        format_func=lambda v: t("inside.head.predicted", c=pred.label) if v == HEAD else str(v),
        key=P + "look_class",
    )
    ss = st.session_state
    ss.setdefault(P + "patch", PATCH)
    ss.setdefault(P + "patch_stride", PATCH_STRIDE)
    patch = c2.slider(t("inside.look.patch"), 2, 10, key=P + "patch")
    stride = c3.slider(t("inside.look.stride"), 1, 4, key=P + "patch_stride")
    cls = pred.label if choice == HEAD else int(choice)
    grad = saliency(model, digit.x, cls)  # (28, 28)
    occ = occlusion(model, digit.x, cls, patch=int(patch), stride=int(stride))
    drop = t.pct(float(occ.drop.max()), 1)
    pictures = (
        (heat_image(grad), t("inside.look.saliency", c=cls)),
        (overlay_image(digit.x, grad), t("inside.look.saliency_on", c=cls)),
        (overlay_image(digit.x, occ.heat),
         t("inside.look.occlusion", c=cls, patch=occ.patch, base=t.pct(occ.base, 1), drop=drop)),
    )  # fmt: skip
    for col, (image, caption) in zip(st.columns(3), pictures, strict=True):
        col.image(image, output_format="PNG", width=image.shape[1])
        col.caption(caption)


def _render() -> None:
    t = tr()
    st.title(t("inside.title"))
    st.caption(t("inside.intro"))
    source = _model_source(t)
    if source is None:
        return
    _model_section(t, source)
    digit = _digit_input(t)
    if digit is None:
        return
    pred = _prediction_view(t, source, digit)
    if pred is None:
        return
    # One closer look at a time: a stroke on the canvas reruns the page, and the three
    # together (a stepper, two confusion matrices, occlusion) more than doubled the time
    # until the page settled (1.5-2.3 s measured in Chromium with classic on 2 cores).
    section = st.radio(
        t("inside.section"),
        SECTIONS,
        format_func=lambda k: t(f"inside.section.{k}"),
        key=P + "section",
        horizontal=True,
    )
    with user_errors():
        if section == "step":
            _step_section(t, source.model, digit, pred)
        elif section == "surgery":
            _surgery_section(t, source)
        else:
            _looks_section(t, source.model, digit, pred)
