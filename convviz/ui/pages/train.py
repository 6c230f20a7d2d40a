"""Train a CNN page: start a NumPy CNN on MNIST and watch it learn, live.

Training runs in a background worker owned by :mod:`convviz.runs` (a thread
per run, state outside the script run): this page only sends commands (start,
pause, step, reset, learning rate, probe digit) and draws the run's latest
immutable snapshot, so the controls stay responsive; a browser refresh
reattaches to the run through ``?run=<id>`` in the URL.

The live views are :func:`~convviz.ui.live_panel.live_panel` components, one
element per group of views, updated in place: on this 2-core machine the
browser shares the cores with the training, and every Streamlit element sent
at a refresh cost it CPU (``benchmarks/bench_train_ui.py``). While the run
trains, the fast panel (progress, metrics, curves, first-layer filters) is fed
about once a second by a :class:`~convviz.ui.live_panel.Feeder` thread, with
no Streamlit rerun; a fragment redraws the heavier views every few seconds.
"""

from __future__ import annotations

import io
import logging
import secrets
from pathlib import Path

import numpy as np
import streamlit as st

from convviz.nn.model import load_model
from convviz.nn.optim import OPTIMIZERS
from convviz.nn.presets import PRESETS, build_model
from convviz.nn.train import TrainConfig
from convviz.runs import Run, RunManager, RunOptions, Snapshot, get_manager
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
from convviz.ui.common import plot_config, run_guarded
from convviz.ui.live_panel import (
    Block,
    Chart,
    Metric,
    Metrics,
    Pic,
    Pictures,
    Progress,
    Row,
    live_panel,
)
from convviz.ui.live_panel import feeder as live_panel_feeder

__all__ = ["STATE_KEYS", "render"]

_log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[2] / "assets" / "models"
MNIST_TRAIN = 60_000
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
BATCHES = (16, 32, 64, 128, 256)
TRAIN_SIZES = (1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 0)  # 0: all that is left
VAL_SIZES = (200, 500, 1_000, 2_000, 5_000)
TEST_SIZES = (500, 1_000, 2_000, 5_000, 10_000)
INITS = {"random": "Random weights", "pretrained": "Shipped pretrained model", "upload": "Upload"}
# Two timers: progress, metrics, curves and first-layer filters redraw at
# ~1.2 Hz; the heavy views (prediction strip, activations, confusion matrix,
# gallery: two dozen pictures) every 4 s. The browser shares the 2 cores with
# the training: bench_train_ui.py, classic, training throughput with the page
# open over headless, heavy views every 1 s: 0.74-0.79; every 2 s: 0.79-0.87;
# every 4 s: 0.87-0.92 (target >= 0.80).
REFRESH_S = 0.85
CURVES_H = 300  # pixels
SLOW_REFRESH_S = 4.0
P = "train_"  # widget key prefix
STATE_KEYS = tuple(
    P + k
    for k in (
        "model",
        "optimizer",
        "lr",
        "batch",
        "epochs",
        "train_size",
        "val_size",
        "eval_every",
        "seed",
        "init",
        "test_size",
    )
)
_STATE_TEXT = {
    "ready": "Ready: press **Start** (or **Step** for one optimizer step).",
    "running": "Training…",
    "paused": "Paused.",
    "finished": "Finished.",
    "failed": "Training stopped because of an internal error.",
}


@st.cache_resource(show_spinner=False)
def _manager() -> RunManager:
    # One manager per server process is fine to share: every run inside is private to its id.
    return get_manager()


def render() -> None:
    """The page: settings in the sidebar, controls on top, live views below."""
    run_guarded(_render)


# ---------------------------------------------------------------------------- run lookup
def _current_run(manager: RunManager) -> Run | None:
    ss = st.session_state
    rid = st.query_params.get("run") or ss.get(P + "run_id")
    run = manager.get(rid)
    if rid and run is None:
        st.info("That training run has ended (idle runs are freed after a while). Start a new one.")
        ss.pop(P + "run_id", None)
        if "run" in st.query_params:
            del st.query_params["run"]
        return None
    if run is not None:
        ss[P + "run_id"] = run.id
        if st.query_params.get("run") != run.id:
            st.query_params["run"] = run.id  # a reload reattaches
        run.touch(_alive_check())
    return run


def _alive_check():
    """A callable telling the janitor whether this browser session is still connected."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():
            return None
        sid = ctx.session_id
    except Exception:  # internals moved: fall back to heartbeats only
        return None

    def alive() -> bool:
        return Runtime.exists() and Runtime.instance().is_active_session(sid)

    return alive


def _adopt_settings(snap: Snapshot) -> None:
    """After a reload, show the reattached run's settings in the sidebar widgets."""
    ss = st.session_state
    if ss.get(P + "adopted") == snap.run_id:
        return
    ss[P + "adopted"] = snap.run_id
    c = snap.config
    if snap.init != "upload" and c["model"] in PRESETS:
        ss[P + "model"] = c["model"]
    ss[P + "optimizer"] = c["optimizer"]
    ss[P + "lr"] = min(LRS, key=lambda v: abs(np.log(v / c["lr"])))
    ss[P + "batch"] = c["batch_size"] if c["batch_size"] in BATCHES else 64
    ss[P + "epochs"] = int(c["epochs"])
    ss[P + "train_size"] = c["train_size"] if c["train_size"] in TRAIN_SIZES else 0
    ss[P + "val_size"] = c["val_size"] if c["val_size"] in VAL_SIZES else 1_000
    ss[P + "eval_every"] = int(c["eval_every"])
    ss[P + "seed"] = int(c["seed"])
    if snap.init in INITS:
        ss[P + "init"] = snap.init
    ss[P + "test_size"] = snap.test_size if snap.test_size in TEST_SIZES else 10_000


# ---------------------------------------------------------------------------- settings
def _settings(run: Run | None) -> tuple[TrainConfig, str, object, RunOptions]:
    """Sidebar widgets -> (config, init, model factory or None, options)."""
    ss = st.session_state
    sb = st.sidebar
    sb.header("Network")
    ss.setdefault(P + "model", "tiny")
    name = sb.selectbox("Architecture", list(PRESETS), key=P + "model")
    sb.caption(PRESETS[name])
    ss.setdefault(P + "init", "random")
    init = sb.radio("Start from", list(INITS), format_func=INITS.get, key=P + "init")
    source = None  # the starting model's .npz bytes (None: the preset, random weights)
    if init == "pretrained":
        path = MODELS_DIR / f"{name}.npz"
        if path.is_file():
            source = path.read_bytes()
        else:
            sb.warning(f"No pretrained `{name}` model ships with this copy; using random weights.")
            init = "random"
    elif init == "upload":
        up = sb.file_uploader("Model (.npz saved by this page)", type=["npz"], key=P + "upload")
        if up is None:
            sb.info("Upload a model, or start from random weights.")
            init = "random"
        else:
            data = up.getvalue()
            try:
                _check_model(data)
                source = data
            except ValueError as exc:
                sb.error(f"Could not use {up.name!r}: {exc}")
                init = "random"

    sb.header("Training")
    ss.setdefault(P + "optimizer", "adam")
    sb.selectbox("Optimizer", sorted(OPTIMIZERS), key=P + "optimizer")
    ss.setdefault(P + "lr", 1e-3)
    sb.select_slider(
        "Learning rate",
        LRS,
        key=P + "lr",
        format_func=lambda v: f"{v:g}",
        on_change=_lr_changed,
        help="Changes the current run's learning rate too, from its next chunk of steps.",
    )
    ss.setdefault(P + "batch", 64)
    sb.select_slider("Batch size", BATCHES, key=P + "batch")
    ss.setdefault(P + "epochs", 5)  # ~400 steps of tiny: long enough to watch it learn
    sb.number_input("Epochs", 1, 20, step=1, key=P + "epochs")
    ss.setdefault(P + "val_size", 1_000)
    val_size = sb.select_slider(
        "Validation images", VAL_SIZES, key=P + "val_size", format_func=lambda v: f"{v:,}"
    )
    ss.setdefault(P + "train_size", 5_000)
    sb.select_slider(
        "Training images",
        TRAIN_SIZES,
        key=P + "train_size",
        format_func=lambda v: f"{v:,}" if v else f"all ({MNIST_TRAIN - val_size:,})",
    )
    ss.setdefault(P + "seed", 0)
    sb.number_input("Seed", 0, 2**31 - 1, step=1, key=P + "seed")
    with sb.expander("More"):
        ss.setdefault(P + "eval_every", 50)
        st.number_input(
            "Validate every … steps (0: at epoch ends only)",
            0,
            10_000,
            step=10,
            key=P + "eval_every",
        )
        ss.setdefault(P + "test_size", 10_000)
        st.select_slider(
            "Test images for the final accuracy",
            TEST_SIZES,
            key=P + "test_size",
            format_func=lambda v: f"{v:,}",
        )
    ss[P + "source"] = (init, source)
    return _from_state()


def _from_state() -> tuple[TrainConfig, str, object, RunOptions]:
    """The settings as the widgets hold them now (callbacks run before the widgets redraw)."""
    ss = st.session_state
    init, source = ss.get(P + "source", ("random", None))
    config = TrainConfig(
        model=ss[P + "model"],
        optimizer=ss[P + "optimizer"],
        lr=float(ss[P + "lr"]),
        batch_size=int(ss[P + "batch"]),
        epochs=int(ss[P + "epochs"]),
        train_size=int(ss[P + "train_size"]) or None,
        val_size=int(ss[P + "val_size"]),
        seed=int(ss[P + "seed"]),
        eval_every=int(ss[P + "eval_every"]),
    )
    factory = None if source is None else _loader(source)
    return config, init, factory, RunOptions(test_size=int(ss[P + "test_size"]))


def _loader(data: bytes):
    def factory():  # a fresh model object per run (and per reset): nothing is shared
        return load_model(io.BytesIO(data))

    return factory


def _check_model(data: bytes) -> None:
    try:
        model = load_model(io.BytesIO(data))
    except ValueError:
        raise ValueError("it is not a model file saved by convviz") from None
    except Exception:  # zip, npy and JSON errors: say it plainly, never str(exc)
        raise ValueError("it is not a model file saved by convviz") from None
    if tuple(model.input_shape) != (28, 28, 1) or tuple(model.output_shape) != (10,):
        raise ValueError("the model must take 28x28x1 digits and output 10 classes")


def _lr_changed() -> None:
    run = _manager().get(st.session_state.get(P + "run_id"))
    if run is not None:
        run.set_lr(float(st.session_state[P + "lr"]))


# ---------------------------------------------------------------------------- controls
def _new_run(*, start: bool, steps: int = 0) -> None:
    ss = st.session_state
    config, init, factory, options = _from_state()
    manager = _manager()
    old = manager.get(ss.get(P + "run_id"))
    if old is not None:
        manager.discard(old.id)  # one run per session: the old one frees its memory
    try:
        run = manager.create(config, model_factory=factory, init=init, options=options, start=start)
    except ValueError as exc:
        ss[P + "error"] = str(exc)
        return
    if steps:
        run.step(steps)
    ss[P + "run_id"] = run.id
    ss[P + "adopted"] = run.id
    st.query_params["run"] = run.id


def _controls(run: Run | None, settings) -> Snapshot | None:
    snap = run.snapshot() if run is not None else None
    state = snap.state if snap else None
    cols = st.columns(5)
    if run is None:
        cols[0].button(
            "Start",
            type="primary",
            icon=":material/play_arrow:",
            key=P + "start",
            on_click=_new_run,
            kwargs={"start": True},
            width="stretch",
        )
        cols[1].button(
            "Step",
            icon=":material/skip_next:",
            key=P + "step",
            on_click=_new_run,
            kwargs={"start": False, "steps": 1},
            help="One optimizer step, then pause",
            width="stretch",
        )
        return None
    if state in ("running", "queued"):
        cols[0].button(
            "Pause",
            icon=":material/pause:",
            key=P + "pause",
            on_click=run.pause,
            width="stretch",
        )
    else:
        cols[0].button(
            "Resume" if state == "paused" else "Start",
            type="primary",
            icon=":material/play_arrow:",
            key=P + "start",
            on_click=run.start,
            disabled=state not in ("ready", "paused"),
            width="stretch",
        )
    cols[1].button(
        "Step",
        icon=":material/skip_next:",
        key=P + "step",
        on_click=run.step,
        disabled=state not in ("ready", "paused"),
        help="One optimizer step (while paused)",
        width="stretch",
    )
    cols[2].button(
        "Reset",
        icon=":material/restart_alt:",
        key=P + "reset",
        on_click=run.reset,
        help="Throw the weights away and start over with this run's settings",
        width="stretch",
    )
    cols[3].button(
        "New run",
        icon=":material/add:",
        key=P + "new",
        on_click=_new_run,
        kwargs={"start": False},
        help="A fresh run with the sidebar's settings (this one is discarded)",
        width="stretch",
    )
    return snap


def _summary(config: TrainConfig, factory) -> None:
    try:
        model = factory() if factory is not None else _preset(config.model)
    except Exception:
        _log.exception("cannot build the model summary")
        return
    with st.expander(f"Architecture: `{model.name}`, {model.count_params():,} parameters"):
        st.code(model.summary(), language=None)


@st.cache_resource(show_spinner=False, max_entries=8)
def _preset(name: str):
    return build_model(name)  # read-only use: summary only


# ---------------------------------------------------------------------------- page
def _render() -> None:
    st.title("Train a CNN")
    st.caption(
        "A small convolutional network written in NumPy learns MNIST digits in the background; "
        "the views below follow it live. Refreshing the page keeps the run."
    )
    ss = st.session_state
    manager = _manager()
    run = _current_run(manager)
    if run is not None:
        _adopt_settings(run.snapshot())
    settings = _settings(run)
    if ss.get(P + "error"):
        st.error(ss.pop(P + "error"))
    snap = _controls(run, settings)
    _summary(settings[0], settings[2])
    if run is None or snap is None:
        st.info(
            "Pick an architecture and settings in the sidebar, then press **Start**. "
            "`tiny` trains at a few thousand images/s; `classic` is ~20x slower."
        )
        return
    if snap.config["model"] != settings[0].model or snap.init != settings[1]:
        st.caption("The sidebar's network differs from this run's: press **New run** to use it.")
    ss[P + "shown"] = (snap.state, run.busy)
    live = snap.state in ("running", "queued") or run.busy or bool(snap.phase)
    _live(manager, run, live)
    st.fragment(run_every=SLOW_REFRESH_S if live else None)(_live_slow)(run.id)


def _settled_state(run: Run, snap: Snapshot) -> str:
    """The run's state once the worker has applied every command ("" while it has not)."""
    return "" if run.busy or snap.phase else snap.state


def _live(manager: RunManager, run: Run, live: bool) -> None:
    """The views that change every second: one panel, fed between reruns while the run trains.

    While the run is live, a :class:`~convviz.ui.live_panel.Feeder` thread rebuilds the
    panel's blocks every REFRESH_S and the panel fetches them: no Streamlit rerun, which
    would cost the browser a re-render of the whole page (bench_train_ui.py). When the
    run changes state on its own (finished, left the queue), the panel asks for a rerun.
    """
    ss = st.session_state
    snap = run.snapshot()
    _status(snap)
    feed = None
    if live:
        token = ss.setdefault(P + "feed", secrets.token_urlsafe(12))
        run_id = run.id

        def version():
            r = manager.get(run_id)
            if r is None:
                return None
            s = r.snapshot()
            return (s.version, s.state, s.queue_position, _settled_state(r, s))

        def build():
            r = manager.get(run_id)
            s = r.snapshot()
            return _fast_blocks(s), {"state": _settled_state(r, s), "version": s.version}

        feed = live_panel_feeder(REFRESH_S).register(token, version, build)
    elif token := ss.get(P + "feed"):
        live_panel_feeder(REFRESH_S).discard(token)  # settled: nothing left to feed
    live_panel(
        _fast_blocks(snap),
        key=P + "live",
        feed=feed,
        poll_s=REFRESH_S / 3,  # a new update shows within a third of a refresh
        state=snap.state,
        version=snap.version,
    )


def _fast_blocks(snap: Snapshot) -> list[Block]:
    curves = curves_figure(snap.chunks, snap.history, total_steps=snap.total_steps, height=CURVES_H)
    return [
        Progress(snap.progress, _progress_text(snap)),
        Metrics(_metrics(snap)),
        Chart(curves, CURVES_H, plot_config("curves")),
        *_first_filters(snap),
    ]


def _live_slow(run_id: str) -> None:
    """The heavier views (a dozen images, feature maps, the confusion matrix), on a slower timer."""
    ss = st.session_state
    run = _manager().get(run_id)
    if run is None:
        st.warning("This run has ended.")
        return
    run.touch()
    if token := ss.get(P + "feed"):
        live_panel_feeder(REFRESH_S).touch(token)  # the page is still open
    snap = run.snapshot()
    shown = ss.get(P + "shown")
    if shown is not None and (snap.state, run.busy) != shown and not (run.busy or snap.phase):
        # The run changed state on its own (finished, left the queue) or the worker applied
        # a command: a full rerun updates the buttons and the refresh timer. (The live
        # panel usually asks first, within a second.)
        st.rerun(scope="app")
    _strip(snap)
    _activations(run, snap)
    _deeper_filters(snap)
    _validation(snap)
    _final(snap)


def _training(snap: Snapshot) -> bool:
    """While a run trains, the views draw pictures instead of plotly charts (but the curves).

    A plotly chart whose data change costs the browser a full redraw; with
    several of them at every refresh it took CPU from the training on this
    2-core machine (``benchmarks/bench_train_ui.py``). Hover values come back
    when the run pauses or finishes. The loss and accuracy curves stay plotly
    throughout (drawn with ``Plotly.react``, the user's zoom kept).
    """
    return snap.state in ("running", "queued")


def _status(snap: Snapshot) -> None:
    if snap.error:
        st.error(snap.error)
    elif snap.state == "queued":
        m = _manager()
        st.warning(
            f"Queued: position {snap.queue_position} in line. At most {m.max_active} runs train "
            "at once on this server; yours starts when one pauses or finishes.",
            icon=":material/hourglass_top:",
        )
    elif snap.phase == "testing":
        st.info(f"Measuring the accuracy on {snap.test_size:,} test images…")
    elif snap.state in _STATE_TEXT and snap.state != "running":
        st.caption(_STATE_TEXT[snap.state])


def _progress_text(snap: Snapshot) -> str:
    ips = snap.images_per_s
    eta = format_duration(snap.eta_s if snap.state == "running" else None)
    text = (
        f"Epoch {min(snap.epoch + 1, snap.epochs)}/{snap.epochs} · "
        f"step {snap.step:,}/{snap.total_steps:,}"
    )
    if np.isfinite(ips):
        text += f" · {ips:,.0f} images/s · ETA {eta}"
    return text


def _metrics(snap: Snapshot) -> list[Metric]:
    c = snap.chunks
    h = snap.history
    return [
        Metric("Train loss (last chunk)", f"{c['loss'][-1]:.4f}" if c.get("loss") else "–"),
        Metric("Train accuracy", f"{c['acc'][-1]:.1%}" if c.get("acc") else "–"),
        Metric(
            "Validation accuracy",
            f"{h['val_acc'][-1]:.1%}" if h.get("val_acc") else "–",
            help=f"On {snap.val_size:,} held-out training images",
        ),
        Metric("Learning rate", f"{snap.lr:.3g}"),
        Metric("Training time", format_duration(snap.train_seconds)),
    ]


def _first_filters(snap: Snapshot) -> list[Pictures | Chart]:
    """The first-layer filters: a picture while the run trains, a heatmap with hover values
    when it holds still (see :func:`_training`)."""
    if not snap.kernels:
        return [Pictures([], "First-layer filters", "This model has no convolution layer.")]
    name, k = snap.kernels[0]
    title = f"First-layer filters ({name}, {k.shape[3]} of {k.shape[0]}×{k.shape[1]})"
    note = "Blue < 0 < red. They start as noise and turn into edge and stroke detectors."
    if not _training(snap):
        fig = filters_figure(k, channel=0, ncols=min(8, k.shape[3]))
        return [Pictures([], title, note), Chart(fig, config=plot_config("filters"))]
    m = float(np.abs(k[:, :, 0, :]).max())
    zoom = max(4, 72 // max(k.shape[:2]))  # ~ the size of the paused heatmap
    pic = Pic(
        filters_image(k, channel=0, ncols=min(8, k.shape[3]), zoom=zoom),
        f"colour scale ±{m:.3g} (white = 0); pause to read each weight",
    )
    return [Pictures([pic], title, note, name="filters")]


def _strip(snap: Snapshot) -> None:
    title, note = "Predictions on test digits", "red frame: wrong"
    if snap.strip_probs is None or snap.strip_images is None or not len(snap.strip_images):
        live_panel([Pictures([], title, note)], key=P + "strip")
        return
    pred = snap.strip_probs.argmax(axis=1)
    conf = snap.strip_probs.max(axis=1)
    pics = [
        Pic(digit_tile(img, bool(p == y)), f"{p} ({c:.0%})" + ("" if p == y else " ✗"), 64)
        for img, p, c, y in zip(snap.strip_images, pred, conf, snap.strip_labels, strict=True)
    ]
    live_panel([Pictures(pics, title, note, name="strip")], key=P + "strip")


def _activations(run: Run, snap: Snapshot) -> None:
    st.subheader("Activations, layer by layer")
    ss = st.session_state
    c1, c2, c3 = st.columns([2, 1, 5], vertical_alignment="bottom")
    ss.setdefault(P + "probe", snap.probe_index)
    index = c1.number_input("Test digit #", 0, 9_999, step=1, key=P + "probe")

    def pick_random() -> None:
        ss[P + "probe"] = int(np.random.default_rng().integers(10_000))

    c2.button("Random", key=P + "random", on_click=pick_random, width="stretch")
    if int(index) != snap.probe_index:
        run.set_probe(int(index))
        try:  # the worker computes it between chunks: usually well under a second
            snap = run.wait(lambda s: s.probe_index == int(index), timeout=1.5)
        except TimeoutError:
            st.caption("Computing the activations of that digit…")
    if snap.probe_image is None:
        return
    c3.caption(
        f"Digit #{snap.probe_index}: label {snap.probe_label}. Conv and pooling outputs as "
        "feature-map grids (brighter = stronger), dense layers as bars."
    )
    maps: list[Pictures | Chart] = []
    last = len(snap.activations) - 1
    for i, (name, kind, out) in enumerate(snap.activations):
        if out.ndim == 3:
            image = feature_maps_image(out, ncols=min(16, out.shape[2]))
            caption = f"{name} ({kind}) {out.shape[0]}×{out.shape[1]}×{out.shape[2]}"
            maps.append(Pictures([Pic(image, caption)]))
            continue
        probs = i == last and snap.probs is not None
        values = snap.probs if probs else out
        if probs:
            pred = int(np.argmax(snap.probs))
            title = f"softmax: predicts {pred} ({snap.probs[pred]:.1%})"
        else:
            pred, title = None, f"{name} ({kind}), {out.size} units"
        if _training(snap):  # a picture while it changes (see _training)
            bars = bars_image(values, probability=probs, highlight=pred)
            maps.append(Pictures([Pic(bars, title)]))
        else:
            fig = dense_figure(values, title, probability=probs, highlight=pred)
            maps.append(Chart(fig, config=plot_config("softmax" if probs else name)))
    digit = Pictures([Pic(digit_tile(snap.probe_image, zoom=3), "input")])
    live_panel([Row([[digit], maps], weights=[1, 6])], key=P + "activations")


def _deeper_filters(snap: Snapshot) -> None:
    if len(snap.kernels) < 2:
        return
    if not st.toggle("Show deeper layers' filters", key=P + "deeper"):
        return
    names = [n for n, _ in snap.kernels]
    c1, c2 = st.columns(2)
    name = c1.selectbox("Layer", names[1:], key=P + "deeper_layer")
    k = dict(snap.kernels)[name]
    channels = ["all", *range(k.shape[2])]
    ch = c2.selectbox(
        "Input channel",
        channels,
        key=P + "deeper_channel",
        format_func=lambda v: "all (one row per filter)" if v == "all" else f"channel {v}",
    )
    channel = None if ch == "all" else int(ch)
    shown = k if channel is not None or k.shape[3] <= 64 else k[..., :64]
    st.image(
        filters_image(shown, channel=channel, zoom=4 if channel is not None else 3),
        caption=f"{name}: kernel {k.shape[0]}×{k.shape[1]}, {k.shape[2]} in × {k.shape[3]} out",
    )


def _validation(snap: Snapshot) -> None:
    st.subheader("Validation")
    if snap.confusion is None:
        st.caption("The confusion matrix appears after the first validation.")
        return
    title = f"Confusion matrix after step {snap.confusion_step:,}"
    note = "rows: true digit, columns: predicted"
    if _training(snap):  # a picture while it changes (see _training)
        confusion = [Pictures([Pic(confusion_image(snap.confusion), width=330)], title, note)]
    else:
        fig = confusion_figure(snap.confusion)
        confusion = [Pictures([], title, note), Chart(fig, config=plot_config("confusion"))]
    wrong = [
        Pic(digit_tile(img, False), f"{t} → {p} ({c:.0%})", 64)
        for img, t, p, c in snap.misclassified
    ]
    gallery = Pictures(
        wrong,
        f"Misclassified validation digits (first {len(wrong)})",
        "" if wrong else "None: every validation digit is right.",
        name="misclassified",
    )
    live_panel([Row([confusion, [gallery]], weights=[2, 3])], key=P + "validation")


def _final(snap: Snapshot) -> None:
    if snap.test_acc is not None:
        st.success(
            f"Test accuracy: **{snap.test_acc:.2%}** on {snap.test_size:,} test images.",
            icon=":material/check_circle:",
        )
    if snap.model_npz is not None and snap.state in ("paused", "finished", "ready"):
        st.download_button(
            "Download the model (.npz)",
            data=snap.model_npz,
            file_name=f"convviz-{snap.model_name}-step{snap.step}.npz",
            mime="application/octet-stream",
            key=P + "download",
            on_click="ignore",
            help="Upload it again later with 'Start from: Upload'.",
        )
