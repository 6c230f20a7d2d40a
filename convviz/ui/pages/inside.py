"""Inside the network page: follow one digit through a trained CNN, with its real numbers.

Read the widgets -> call :mod:`convviz` -> render. The model is the Train page's
live run (its current weights, :attr:`convviz.runs.Snapshot.live_model`), a
shipped pretrained model (``assets/models/*.npz``) or an uploaded ``.npz``; the
digit is drawn, photographed or one of the 10,000 MNIST test images, made into
an MNIST digit by :func:`convviz.digits.preprocess_digit` (each stage shown).
The page shows the prediction and every layer's output, steps a learned filter
with the Convolution page's stepper, and computes nothing itself: the numbers
come from :mod:`convviz.nn` and :mod:`convviz.nn.inspect`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from convviz.digits import DigitStages, preprocess_digit
from convviz.errors import CodedError
from convviz.i18n import Translator
from convviz.images import ImageLoadError, load_image
from convviz.nn import PRESETS, Evaluation, evaluate_set, load_mnist, load_model
from convviz.runs import Run, get_manager
from convviz.train_figures import bars_image, confusion_figure, dense_figure, feature_maps_image
from convviz.ui.common import UPLOAD_TYPES, run_guarded, user_errors
from convviz.ui.i18n import error_text, tr
from convviz.ui.pages import train
from convviz.ui.widgets.canvas import draw_digit
from convviz.ui.widgets.charts import show

__all__ = ["STATE_KEYS", "render"]

_log = logging.getLogger(__name__)

P = "inside_"  # widget key prefix
MODELS_DIR = Path(__file__).resolve().parents[3] / "assets" / "models"
SOURCES = ("pretrained", "live", "upload")  # labels: inside.source.*
DIGITS = ("test", "draw", "upload")  # labels: inside.digit.*
RUN_KEY = train.P + "run_id"  # where the Train page keeps this session's run id
MNIST_TEST = 10_000
STAGE_SIDE = 112  # preprocessing stages are enlarged (nearest) to about this many pixels
LIVE_REFRESH_S = 2.0  # while the live run trains, the prediction follows its weights this often
STROKES = (8, 40)  # brush widths the canvas offers (px on a 280 px canvas)
STROKE = 20  # about an MNIST stroke once the digit is scaled into its 20x20 box

STATE_KEYS = (
    P + "source",
    P + "pretrained",
    P + "digit",
    P + "index",
    P + "stroke",
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
        return Source("pretrained", model, f"shipped:{_digest(data)}", data=data)
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
        return Source("upload", model, f"upload:{_digest(data)}", data=data)
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
        "live", snap.live_model, f"live:{run.id}:{snap.live_step}", run=run, step=snap.live_step
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
    result = evaluate_set(source.model, data.test_images, data.test_labels)
    with _evals_lock:
        _EVALS[source.key] = result
        while len(_EVALS) > _EVALS_MAX:
            _EVALS.popitem(last=False)
    return result


def _model_section(t: Translator, source: Source) -> None:
    model = source.model
    with st.expander(t("inside.model.summary", n=model.count_params())):
        st.code(model.summary(), language=None)  # layer names may be an upload's: code
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


# ---------------------------------------------------------------------------- digit
@functools.cache
def _test_set() -> tuple[np.ndarray, np.ndarray]:
    data = load_mnist()
    return data.test_images, data.test_labels


def _enlarged(image: np.ndarray, side: int = STAGE_SIDE) -> np.ndarray:
    """``image`` (h, w) in [0, 1] enlarged by whole pixels (nearest) to about ``side``."""
    zoom = max(1, side // max(image.shape))
    return np.clip(image.repeat(zoom, axis=0).repeat(zoom, axis=1), 0.0, 1.0)


def _stages_view(t: Translator, stages: DigitStages) -> None:
    st.markdown(f"**{t('inside.prep.header')}**")
    shown = stages.stages()
    for col, stage in zip(st.columns(len(shown)), shown, strict=True):
        caption = t(stage.key, **stage.params)
        col.image(_enlarged(stage.image), caption=caption, clamp=True, output_format="PNG")


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
        c1, c2 = st.columns([1, 2])
        with c1:
            st.session_state.setdefault(P + "stroke", STROKE)
            stroke = st.slider(t("inside.draw.stroke"), *STROKES, key=P + "stroke")
            picture = draw_digit(t, P + "canvas", stroke=stroke)
        if picture is None:
            c2.info(t("inside.draw.prompt"))
            return None
        with c2:
            return _preprocessed(t, picture)
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


def _preprocessed(t: Translator, picture: np.ndarray) -> Digit | None:
    try:
        stages = preprocess_digit(picture)
    except CodedError as exc:  # err.digit.*: no ink, a speck
        st.warning(error_text(exc, t))
        return None
    _stages_view(t, stages)
    return Digit(stages.digit, stages=stages)


# ---------------------------------------------------------------------------- prediction
def _prediction(t: Translator, model: Any, digit: Digit) -> np.ndarray:
    """The ten probabilities and every layer's output; returns the probabilities."""
    x = digit.x[None]  # (1, 28, 28)
    probs = model.predict_proba(x)[0].astype(np.float64)  # (10,)
    acts = model.activations(x)  # [(name, (1, ...))]
    pred = int(np.argmax(probs))
    c1, c2 = st.columns([1, 3])
    with c1:
        caption = t("inside.pred.input")
        st.image(_enlarged(digit.x, 140), caption=caption, clamp=True, output_format="PNG")
        st.metric(t("inside.pred.class"), str(pred), t.pct(probs[pred], 1), delta_color="off")
        if digit.label is not None:
            key = "inside.pred.right" if pred == digit.label else "inside.pred.wrong"
            st.caption(t(key, label=digit.label))
    with c2:
        fig = dense_figure(
            probs, t("inside.pred.probs"), probability=True, highlight=pred, height=260, t=t
        )
        show(t, fig, P + "probs", "probabilities")
    st.subheader(t("inside.act.header"))
    st.caption(t("inside.act.caption"))
    layers = {layer.name: layer for layer in model.layers}
    for name, out in acts:
        a = out[0]
        layer = layers.get(name)
        kind = getattr(layer, "keras_name", "")
        if kind == "Flatten":  # i18n: not text (a layer class: a reshape, nothing new to see)
            continue
        st.text(f"{name} · {kind} · {' × '.join(map(str, a.shape))}")  # data: plain text
        if a.ndim == 3:
            st.image(feature_maps_image(a, ncols=min(16, a.shape[2])), output_format="PNG")
        else:
            last = name == acts[-1][0]
            st.image(
                bars_image(probs if last else a, probability=last, highlight=pred if last else None)
            )
    return probs


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
    _prediction_view(t, source, digit)


def _prediction_view(t: Translator, source: Source, digit: Digit) -> None:
    """The prediction; while the live run trains, a fragment follows its newest weights."""
    run = source.run
    if run is None or run.snapshot().state not in ("running", "queued"):
        with user_errors():
            _prediction(t, source.model, digit)
        return

    def follow() -> None:  # a fragment: its reruns skip render's guard, so it has its own
        def body() -> None:
            snap = run.snapshot()
            st.caption(t("inside.live.following", step=snap.live_step, total=snap.total_steps))
            _prediction(t, snap.live_model, digit)

        run_guarded(body)

    st.fragment(run_every=LIVE_REFRESH_S)(follow)()
