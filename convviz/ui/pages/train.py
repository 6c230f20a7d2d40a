"""Train a CNN page: start a NumPy CNN on MNIST and watch it learn, live.

Read the widgets -> call :mod:`convviz.runs` -> render. The sidebar's choices
are one :class:`Settings` (each widget key owns its field); training runs in a
background worker owned by :mod:`convviz.runs` (a thread per run, state
outside the script run): this page only sends commands (start, pause, step,
reset, learning rate, probe digit) and draws the run's latest immutable
snapshot through :mod:`convviz.ui.train_views`, so the controls stay
responsive; a browser refresh reattaches to the run through ``?run=<id>``.

Ownership: a run belongs to the session that started it. Its commands carry
the session's owner token (a secret in ``st.session_state``, never in the URL);
anyone else opening its ``?run=`` link watches it read-only (a label says so,
the controls are replaced by "Copy this run", which makes a run of their own
with the same settings and current weights). While a run is idle a small
fragment polls its snapshot version, so the page follows changes made
elsewhere (another tab of the owner) instead of showing a stale state.

The live views are :func:`~convviz.ui.live_panel.live_panel` components, one
element per group of views, updated in place: on this 2-core machine the
browser shares the cores with the training, and every Streamlit element sent
at a refresh cost it CPU (``benchmarks/bench_train_ui.py``). While the run
trains, the fast panel (progress, metrics, curves, first-layer filters) is fed
about once a second by a :class:`~convviz.ui.live_panel.Feeder` thread, with
no Streamlit rerun; a fragment redraws the heavier views every few seconds.

Below them (issue 15): the run's **training timeline** (the frames the runs service
records, at most 64: a scrubber over them and a play button, in a fragment of its own),
and the session's **runs side by side** (the ids of the runs this session started or
copied, in session state; the runs themselves live in the manager, which keeps them
while the page touches them). "New run" pauses the previous run and keeps it there.
The sidebar's BatchNorm and Dropout toggles pick a variant of ``tiny`` or ``classic``
(:data:`convviz.nn.presets.VARIANTS`).
"""

from __future__ import annotations

import functools
import io
import logging
import re
import secrets
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import streamlit as st

from convviz.errors import CodedError
from convviz.i18n import Translator
from convviz.nn import OPTIMIZERS, PRESETS, TrainConfig, build_model, load_mnist, load_model
from convviz.nn.presets import VARIANT_BASES, variant_name, variant_of
from convviz.nn.recipes import RECIPE_NAMES, recipe
from convviz.nn.train import SCHEDULES
from convviz.runs import Run, RunManager, RunOptions, Snapshot, get_manager
from convviz.train_figures import filters_image
from convviz.ui import train_views as views
from convviz.ui.common import run_guarded
from convviz.ui.i18n import error_text, tr
from convviz.ui.live_panel import feeder as live_panel_feeder
from convviz.ui.live_panel import live_panel

__all__ = ["STATE_KEYS", "Settings", "render"]

_log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[3] / "assets" / "models"
MNIST_TRAIN, MNIST_TEST = 60_000, 10_000
# Finer where Adam's recipes peak (tiny 4e-3, classic 5e-3: convviz.nn.recipes).
LRS = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 1e-2, 3e-2, 0.1, 0.3)
BATCHES = (16, 32, 64, 128, 256)
TRAIN_SIZES = (1_000, 2_000, 5_000, 10_000, 20_000, 25_000, 30_000, 0)  # 0: all that is left
VAL_SIZES = (200, 500, 1_000, 2_000, 5_000)
TEST_SIZES = (500, 1_000, 2_000, 5_000, 10_000)
INITS = ("random", "pretrained", "upload")  # labels: train.init.*
# The test digits of the prediction strip: a fixed seeded sample, the same for every run.
SAMPLE = tuple(int(i) for i in np.sort(np.random.default_rng(1234).choice(MNIST_TEST, 12, False)))
# Two timers: progress, metrics, curves and first-layer filters redraw at
# ~1.2 Hz; the heavy views (prediction strip, activations, confusion matrix,
# gallery: two dozen pictures) every 4 s. The browser shares the 2 cores with
# the training: bench_train_ui.py, classic, training throughput with the page
# open over headless, heavy views every 1 s: 0.74-0.79; every 2 s: 0.79-0.87;
# every 4 s: 0.87-0.92 (target >= 0.80).
REFRESH_S = 0.85
SLOW_REFRESH_S = 4.0
IDLE_REFRESH_S = 2.0  # an idle run's page checks for changes made elsewhere this often
# The timeline plays one frame per PLAY_S: a bounded timeline (64 frames at most) replays in
# under 40 s, and each tick redraws one panel (pictures and the curves, updated in place).
PLAY_S = 0.6
MAX_RUNS = 6  # a session's runs kept for the comparison; a 7th frees the oldest
P = "train_"  # widget key prefix


_FIRST = recipe("tiny")  # the page's first run


@dataclass(frozen=True)
class Settings:
    """The sidebar's choices, one field per widget (its key: ``train_<field>``).

    The defaults are the page's first run: ``tiny`` with its best recipe's optimizer,
    schedule and peak rate (:func:`convviz.nn.recipes.recipe`, the CLI's default) on a
    budget a class can watch: 5 epochs of 5,000 images, 395 steps, to about 98% test
    accuracy (the old constant Adam 1e-3: 97.00%); through the CLI on 2026-12-03, 3 s at
    9,200-9,400 images/s and 97.91% (``classic``: 5 s, 5,800-7,300 images/s, 97.87-97.95%;
    the page's intro says so in round figures). The *Best recipe* button
    sets the whole recipe (all 55,000 images: 98.80% after one epoch).
    """

    model: str = "tiny"  # a preset of convviz.nn
    batchnorm: bool = False  # BatchNorm after each conv (tiny and classic)
    dropout: bool = False  # Dropout before the dense head (tiny and classic)
    init: str = "random"  # what the run starts from: one of INITS
    optimizer: str = _FIRST.optimizer
    lr: float = _FIRST.lr
    schedule: str = _FIRST.schedule  # one of convviz.nn.train.SCHEDULES
    batch: int = 64
    epochs: int = 5  # ~400 steps of tiny: long enough to watch it learn
    train_size: int = 5_000  # 0: all the images left after the validation split
    val_size: int = 1_000
    seed: int = 0
    eval_every: int = 50  # validate every this many steps; 0: at epoch ends only
    test_size: int = 10_000  # test images for the final accuracy

    @classmethod
    def from_widgets(cls) -> Settings:
        """The settings as the widgets hold them now (callbacks run before the widgets redraw)."""
        ss = st.session_state
        return cls(**{f.name: ss.get(P + f.name, f.default) for f in fields(cls)})

    @property
    def arch(self) -> str:
        """The architecture trained: the preset, or its BatchNorm/Dropout variant."""
        if self.model not in VARIANT_BASES:
            return self.model
        return variant_name(self.model, batchnorm=self.batchnorm, dropout=self.dropout)

    def config(self) -> TrainConfig:
        return TrainConfig(
            model=self.arch,
            optimizer=self.optimizer,
            lr=float(self.lr),
            schedule=self.schedule,
            batch_size=int(self.batch),
            epochs=int(self.epochs),
            train_size=int(self.train_size) or None,
            val_size=int(self.val_size),
            seed=int(self.seed),
            eval_every=int(self.eval_every),
        )

    def options(self) -> RunOptions:
        return RunOptions(sample=SAMPLE, test_size=int(self.test_size))


STATE_KEYS = tuple(P + f.name for f in fields(Settings))
DEFAULTS = Settings()


@dataclass(frozen=True)
class Start:
    """What a new run starts from, once the choice is checked (it falls back to random weights)."""

    init: str  # "random", "pretrained" or "upload"
    source: bytes | None = None  # the starting model's .npz (None: the preset, random weights)
    notice: str | None = None  # catalogue key of why the choice fell back
    error: CodedError | None = None  # what was wrong with an uploaded file


@st.cache_resource(show_spinner=False)
def _manager() -> RunManager:
    # One manager per server process is fine to share: every run inside is private to its id.
    return get_manager()


def render() -> None:
    """The page: settings in the sidebar, controls on top, live views below."""
    run_guarded(_render)


# ---------------------------------------------------------------------------- run lookup
OWNER_COOKIE = "convviz_owner"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)


def _token() -> str:
    """This session's owner token: a secret kept in the session, never in the URL.

    A browser reload is a new Streamlit session; so that the owner's reload (or
    another tab of the same browser) still controls the run, the token is also kept
    in a SameSite=Strict session cookie of this browser (set by :func:`_keep_token`),
    which a new session adopts. Another browser has no such cookie: it watches.
    """
    ss = st.session_state
    token = ss.get(P + "owner")
    if token is None:
        try:
            cookie = st.context.cookies.get(OWNER_COOKIE)
        except Exception:  # no request context (bare mode)
            cookie = None
        token = cookie if isinstance(cookie, str) and _TOKEN.fullmatch(cookie) else None
        token = token or secrets.token_urlsafe(16)
        ss[P + "owner"] = token
    return token


def _keep_token() -> None:
    """Once per session: store the owner token in this browser's session cookie."""
    ss = st.session_state
    token = _token()
    if ss.get(P + "cookie") == token:
        return
    ss[P + "cookie"] = token
    try:
        if st.context.cookies.get(OWNER_COOKIE) == token:
            return
    except Exception:
        pass
    # The token matches _TOKEN (URL-safe base64): nothing to escape.
    cookie = f"{OWNER_COOKIE}={token}; path=/; SameSite=Strict"  # i18n: not text
    script = f"<script>document.cookie = '{cookie}';</script>"  # i18n: not text
    st.html(script, unsafe_allow_javascript=True)


def _owns(run: Run | None) -> bool:
    return run is not None and run.owned_by(_token())


def _current_run(manager: RunManager, t: Translator) -> Run | None:
    ss = st.session_state
    rid = st.query_params.get("run") or ss.get(P + "run_id")
    run = manager.get(rid)
    if rid and run is None:
        problem = manager.problem(rid)  # a checkpoint that could not be restored says why
        if problem is not None:
            st.error(error_text(problem))
        else:
            st.info(t("train.run_gone"))
        ss.pop(P + "run_id", None)
        if "run" in st.query_params:
            del st.query_params["run"]
        return None
    if run is not None:
        ss[P + "run_id"] = run.id
        if st.query_params.get("run") != run.id:
            st.query_params["run"] = run.id  # a reload reattaches
        # Only the owner's session keeps its run alive past the janitor's check.
        run.touch(_alive_check() if _owns(run) else None)
        if _owns(run):
            _remember(manager, run)
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
    """Once per run (after a reload): show the reattached run's settings in the widgets."""
    ss = st.session_state
    if ss.get(P + "adopted") == snap.run_id:
        return
    ss[P + "adopted"] = snap.run_id
    c, now = snap.config, Settings.from_widgets()
    base, bn, drop = variant_of(c["model"])
    known = snap.init != "upload" and base in PRESETS
    adopted = replace(
        now,
        model=base if known else now.model,
        batchnorm=bn if known else now.batchnorm,
        dropout=drop if known else now.dropout,
        init=snap.init if snap.init in INITS else now.init,
        optimizer=c["optimizer"],
        lr=_nearest_lr(c["lr"]),
        schedule=c["schedule"] if c.get("schedule") in SCHEDULES else now.schedule,
        batch=c["batch_size"] if c["batch_size"] in BATCHES else DEFAULTS.batch,
        epochs=int(c["epochs"]),
        train_size=c["train_size"] if c["train_size"] in TRAIN_SIZES else 0,
        val_size=c["val_size"] if c["val_size"] in VAL_SIZES else DEFAULTS.val_size,
        seed=int(c["seed"]),
        eval_every=int(c["eval_every"]),
        test_size=snap.test_size if snap.test_size in TEST_SIZES else DEFAULTS.test_size,
    )
    for f in fields(Settings):
        ss[P + f.name] = getattr(adopted, f.name)


# ---------------------------------------------------------------------------- settings
def _sidebar(t: Translator) -> tuple[Settings, Start]:
    """The sidebar's widgets; returns what they hold and what a new run would start from."""
    ss = st.session_state
    for f in fields(Settings):
        ss.setdefault(P + f.name, f.default)
    sb = st.sidebar
    sb.header(t("train.sidebar.network"))
    name = sb.selectbox(t("train.model"), list(PRESETS), key=P + "model")
    if t.has(f"train.preset.{name}"):
        sb.caption(t(f"train.preset.{name}"))
    sb.radio(t("train.init"), INITS, format_func=lambda k: t(f"train.init.{k}"), key=P + "init")
    fixed = name not in VARIANT_BASES or ss[P + "init"] == "upload"  # no options to add
    sb.toggle(t("train.bn"), key=P + "batchnorm", disabled=fixed, help=t("train.bn.help"))
    sb.toggle(t("train.dropout"), key=P + "dropout", disabled=fixed, help=t("train.dropout.help"))
    if ss[P + "init"] == "upload":
        sb.file_uploader(t("train.upload"), type=["npz"], key=P + "upload")
    start = _start_from(Settings.from_widgets())
    if start.error is not None:
        sb.error(t("train.upload.bad", reason=error_text(start.error, t)))
    elif start.notice == "train.init.no_pretrained":
        sb.warning(t(start.notice, name=Settings.from_widgets().arch))
    elif start.notice is not None:
        sb.info(t(start.notice))

    sb.header(t("train.sidebar.training"))
    for name in RECIPE_NAMES:  # one per row: side by side, "Keras book's recipe" was cut off
        sb.button(
            t(f"train.recipe.{name}"), key=P + f"recipe_{name}", on_click=_use_recipe,
            args=(name,), help=t(f"train.recipe.{name}.help"), width="stretch",
        )  # fmt: skip
    sb.selectbox(t("train.optimizer"), sorted(OPTIMIZERS), key=P + "optimizer")
    sb.select_slider(
        t("train.lr"),
        LRS,
        key=P + "lr",
        format_func=lambda v: views.sig(t, v),
        on_change=_lr_changed,
        help=t("train.lr.help"),
    )
    sb.selectbox(
        t("train.schedule"), SCHEDULES, key=P + "schedule",
        format_func=lambda k: t(f"train.schedule.{k}"), help=t("train.schedule.help"),
    )  # fmt: skip
    sb.select_slider(t("train.batch"), BATCHES, key=P + "batch", help=t("train.batch.help"))
    sb.number_input(t("train.epochs"), 1, 20, step=1, key=P + "epochs", help=t("train.epochs.help"))
    val_size = sb.select_slider(
        t("train.val_size"), VAL_SIZES, key=P + "val_size", format_func=t.int
    )
    sb.select_slider(
        t("train.train_size"),
        TRAIN_SIZES,
        key=P + "train_size",
        format_func=lambda v: (
            t.int(v) if v else t("train.train_size.all", n=MNIST_TRAIN - val_size)
        ),
    )
    sb.number_input(
        t("train.seed"), 0, 2**31 - 1, step=1, key=P + "seed", help=t("train.seed.help")
    )
    with sb.expander(t("train.more")):
        st.number_input(t("train.eval_every"), 0, 10_000, step=10, key=P + "eval_every")
        st.select_slider(t("train.test_size"), TEST_SIZES, key=P + "test_size", format_func=t.int)
    return Settings.from_widgets(), start


def _start_from(s: Settings) -> Start:
    """What a run with settings ``s`` starts from: the choice, or random weights and why."""
    if s.init == "pretrained":
        source = _pretrained(s.arch)
        if source is None:
            return Start("random", notice="train.init.no_pretrained")
        return Start("pretrained", source)
    if s.init == "upload":
        up = st.session_state.get(P + "upload")
        if up is None:
            return Start("random", notice="train.init.upload_missing")
        data = up.getvalue()
        problem = _model_problem(data)
        if problem is not None:
            return Start("random", error=problem)
        return Start("upload", data)
    return Start("random")


@functools.cache
def _pretrained(name: str) -> bytes | None:
    path = MODELS_DIR / f"{name}.npz"
    return path.read_bytes() if path.is_file() else None


#: Largest uploaded model the page accepts (the presets have 14k-93k parameters).
MAX_UPLOAD_PARAMS = 2_000_000


@functools.lru_cache(maxsize=4)  # the same upload is checked at every rerun
def _model_problem(data: bytes) -> CodedError | None:
    """Why ``data`` cannot start a run (a coded error), or None."""
    try:  # shapes and size are checked from the file's header, before any layer is built
        load_model(
            io.BytesIO(data),
            input_shape=(28, 28, 1),
            output_shape=(10,),
            max_params=MAX_UPLOAD_PARAMS,
        )
    except CodedError as exc:  # err.nn.*: what is wrong with the file, in the page's language
        return exc
    except Exception:  # zip, npy and JSON errors: say it plainly, never str(exc)
        return CodedError("train.err.not_a_model")
    return None


def _loader(data: bytes):
    def factory():  # a fresh model object per run (and per reset): nothing is shared
        return load_model(io.BytesIO(data))

    return factory


def _nearest_lr(lr: float) -> float:
    """The slider's rate closest to ``lr`` (on a log scale)."""
    return min(LRS, key=lambda v: abs(np.log(v / lr)))


def _use_recipe(name: str) -> None:
    """A recipe button: the model's best recipe, or the Keras book's, into the widgets."""
    ss = st.session_state
    r = recipe(ss.get(P + "model", DEFAULTS.model), name)
    ss[P + "optimizer"], ss[P + "schedule"] = r.optimizer, r.schedule
    ss[P + "lr"] = _nearest_lr(r.lr)
    ss[P + "batch"], ss[P + "epochs"] = r.batch_size, r.epochs
    ss[P + "train_size"] = r.train_size or 0  # 0: all the training images


def _lr_changed() -> None:
    run = _manager().get(st.session_state.get(P + "run_id"))
    if _owns(run):
        run.set_lr(float(st.session_state[P + "lr"]), token=_token())


# ---------------------------------------------------------------------------- controls
def _new_run(*, start: bool, steps: int = 0) -> None:
    """A run with the sidebar's settings; the previous one pauses and stays for the comparison."""
    ss = st.session_state
    settings = Settings.from_widgets()
    begin = _start_from(settings)
    manager = _manager()
    _set_aside(manager.get(ss.get(P + "run_id")))
    factory = None if begin.source is None else _loader(begin.source)
    try:
        run = manager.create(
            settings.config(),
            model_factory=factory,
            init=begin.init,
            options=settings.options(),
            start=start,
            owner=_token(),
        )
    except ValueError as exc:
        _log.info("cannot start a run: %s", exc)
        ss[P + "error"] = error_text(exc)
        return
    if steps:
        run.step(steps, token=_token())
    ss[P + "run_id"] = run.id
    ss[P + "adopted"] = run.id
    st.query_params["run"] = run.id
    _remember(manager, run)


def _copy_run(run_id: str) -> None:
    """A run of this session's with the watched run's settings and current weights."""
    ss = st.session_state
    manager = _manager()
    try:
        run = manager.copy(run_id, owner=_token())
    except ValueError as exc:
        _log.info("cannot copy run: %s", exc)
        ss[P + "error"] = error_text(exc)
        return
    _set_aside(manager.get(ss.get(P + "run_id")))
    ss[P + "run_id"] = run.id
    st.query_params["run"] = run.id  # _adopt_settings shows the copy's settings
    _remember(manager, run)


def _set_aside(old: Run | None) -> None:
    """The session's previous run, when a new one takes its place: it stops training (one
    run at a time on these cores) and stays in the comparison."""
    if _owns(old):
        old.pause(token=_token())


# ---------------------------------------------------------------------------- session's runs
def _session_runs(manager: RunManager) -> list[tuple[str, int]]:
    """This session's runs still alive, oldest first: ``(run id, number)`` (ids and numbers
    only: the runs live in the manager, which frees them when their session is gone).

    A new session (a reload) starts from the runs this browser's owner token owns.
    """
    ss = st.session_state
    if P + "runs" not in ss:
        token = _token()
        mine = [r for r in map(manager.get, manager.run_ids) if r is not None and r.owned_by(token)]
        mine.sort(key=lambda r: r.created)
        ss[P + "runs"] = [(r.id, i + 1) for i, r in enumerate(mine)]
    alive = [(rid, n) for rid, n in ss[P + "runs"] if manager.get(rid) is not None]
    ss[P + "runs"] = alive
    return alive


def _remember(manager: RunManager, run: Run) -> None:
    """Add ``run`` to the session's runs; past MAX_RUNS the oldest other owned one is freed."""
    ss = st.session_state
    runs = _session_runs(manager)
    if any(rid == run.id for rid, _ in runs):
        return
    n = max((k for _, k in runs), default=0) + 1
    runs = [*runs, (run.id, n)]
    while len(runs) > MAX_RUNS:
        rid, _ = runs.pop(0)
        old = manager.get(rid)
        if _owns(old) and old is not run:
            old.discard(token=_token())
    ss[P + "runs"] = runs


def _watcher_controls(run: Run, t: Translator) -> Snapshot:
    """Someone else's run: a read-only label and "Copy this run", nothing that acts on it."""
    st.info(t("train.watching"), icon=":material/visibility:")
    cols = st.columns(5)
    cols[0].button(
        t("train.copy"),
        type="primary",
        icon=":material/content_copy:",
        key=P + "copy",
        on_click=_copy_run,
        args=(run.id,),
        help=t("train.copy.help"),
        width="stretch",
    )
    return run.snapshot()


def _controls(run: Run | None, t: Translator) -> Snapshot | None:
    if run is not None and not _owns(run):
        return _watcher_controls(run, t)
    token = {"token": _token()}
    cols = st.columns(5)
    if run is None:
        cols[0].button(
            t("train.start"),
            type="primary",
            icon=":material/play_arrow:",
            key=P + "start",
            on_click=_new_run,
            kwargs={"start": True},
            width="stretch",
        )
        cols[1].button(
            t("train.step"),
            icon=":material/skip_next:",
            key=P + "step",
            on_click=_new_run,
            kwargs={"start": False, "steps": 1},
            help=t("train.step.help_new"),
            width="stretch",
        )
        return None
    snap = run.snapshot()
    state = snap.state
    if state in ("running", "queued"):
        cols[0].button(
            t("train.pause"),
            icon=":material/pause:",
            key=P + "pause",
            on_click=run.pause,
            kwargs=token,
            width="stretch",
        )
    else:
        label = "train.resume" if state == "paused" else "train.start"
        cols[0].button(
            t(label),
            type="primary",
            icon=":material/play_arrow:",
            key=P + "start",
            on_click=run.start,
            kwargs=token,
            disabled=state not in ("ready", "paused"),
            width="stretch",
        )
    cols[1].button(
        t("train.step"),
        icon=":material/skip_next:",
        key=P + "step",
        on_click=run.step,
        kwargs=token,
        disabled=state not in ("ready", "paused"),
        help=t("train.step.help"),
        width="stretch",
    )
    cols[2].button(
        t("train.reset"),
        icon=":material/restart_alt:",
        key=P + "reset",
        on_click=run.reset,
        kwargs=token,
        help=t("train.reset.help"),
        width="stretch",
    )
    cols[3].button(
        t("train.new"),
        icon=":material/add:",
        key=P + "new",
        on_click=_new_run,
        kwargs={"start": False},
        help=t("train.new.help"),
        width="stretch",
    )
    return snap


def _summary(settings: Settings, start: Start, t: Translator) -> None:
    """The network a new run would train: its parameter count and Keras-style summary."""
    try:
        n, table = _described(start.source) if start.source else _described_preset(settings.arch)
    except Exception:
        _log.exception("cannot build the model summary")
        return
    # Not the model's name in the title: an uploaded model's name is data, shown as code below.
    with st.expander(t("train.summary", n=n)):
        st.code(table, language=None)


@functools.lru_cache(maxsize=8)
def _described_preset(name: str) -> tuple[int, str]:
    model = build_model(name)
    return model.count_params(), model.summary()


@functools.lru_cache(maxsize=4)
def _described(data: bytes) -> tuple[int, str]:
    model = load_model(io.BytesIO(data))
    return model.count_params(), model.summary()


# ---------------------------------------------------------------------------- page
def _render() -> None:
    t = tr()
    st.title(t("train.title"))
    st.caption(t("train.intro"))
    ss = st.session_state
    manager = _manager()
    _keep_token()
    run = _current_run(manager, t)
    if run is not None:
        _adopt_settings(run.snapshot())
    settings, start = _sidebar(t)
    if ss.get(P + "error"):
        st.error(ss.pop(P + "error"))
    snap = _controls(run, t)
    _summary(settings, start, t)
    if run is None or snap is None:
        st.info(t("train.hint"))
        return
    if _owns(run) and (
        snap.config["model"] != settings.arch or snap.init not in (start.init, "copy")
    ):
        st.caption(t("train.differs"))
    ss[P + "shown"] = (snap.state, run.busy)
    live = snap.state in ("running", "queued") or run.busy or bool(snap.phase)
    _live(manager, run, live, t)
    st.fragment(run_every=SLOW_REFRESH_S if live else None)(_live_slow)(run.id)
    playing = bool(ss.get(P + "tl_play"))
    timer = PLAY_S if playing else SLOW_REFRESH_S if live else None
    st.fragment(run_every=timer)(_timeline_guarded)(run.id, playing)
    runs = _session_runs(manager)
    any_live = any(
        (r := manager.get(rid)) is not None and r.state in ("running", "queued") for rid, _ in runs
    )
    st.fragment(run_every=SLOW_REFRESH_S if any_live else None)(_compare_guarded)()
    if not live:
        st.fragment(run_every=IDLE_REFRESH_S)(_idle_watch)(run.id, snap.version, snap.state)


def _idle_watch(run_id: str, version: int, state: str) -> None:
    """An idle page's check: rerun the page when the run changed elsewhere (or is gone).

    No elements: a tick costs one snapshot read. Another tab of the owner (or the
    janitor) may pause, reset, step or discard the run; without this the page kept
    showing the state it drew last.
    """
    run = _manager().get(run_id)
    if run is None:
        st.rerun(scope="app")
        return
    snap = run.snapshot()
    if (snap.version, snap.state) != (version, state) or run.busy:
        st.rerun(scope="app")


def _settled_state(run: Run, snap: Snapshot) -> str:
    """The run's state once the worker has applied every command ("" while it has not)."""
    return "" if run.busy or snap.phase else snap.state


def _live(manager: RunManager, run: Run, live: bool, t: Translator) -> None:
    """The views that change every second: one panel, fed between reruns while the run trains.

    While the run is live, a :class:`~convviz.ui.live_panel.Feeder` thread rebuilds the
    panel's blocks every REFRESH_S and the panel fetches them: no Streamlit rerun, which
    would cost the browser a re-render of the whole page (bench_train_ui.py). When the
    run changes state on its own (finished, left the queue), the panel asks for a rerun.
    """
    ss = st.session_state
    snap = run.snapshot()
    _status(snap, t)
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

        def build():  # the feeder's thread: no st.* here (t is this session's translator)
            r = manager.get(run_id)
            s = r.snapshot()
            return views.fast_blocks(s, t), {"state": _settled_state(r, s), "version": s.version}

        feed = live_panel_feeder(REFRESH_S).register(token, version, build)
    elif token := ss.get(P + "feed"):
        live_panel_feeder(REFRESH_S).discard(token)  # settled: nothing left to feed
    live_panel(
        views.fast_blocks(snap, t),
        key=P + "live",
        feed=feed,
        poll_s=REFRESH_S / 3,  # a new update shows within a third of a refresh
        state=snap.state,
        version=snap.version,
        lang=t.lang,
    )


def _live_slow(run_id: str) -> None:
    """The heavier views (a dozen images, feature maps, the confusion matrix), on a slower timer.

    A fragment: its own reruns do not pass through :func:`render`'s guard, so it has one.
    """
    run_guarded(lambda: _slow_views(run_id))


def _slow_views(run_id: str) -> None:
    t = tr()
    ss = st.session_state
    run = _manager().get(run_id)
    if run is None:
        st.warning(t("train.run_ended"))
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
    live_panel(views.sample_blocks(snap, t), key=P + "strip", lang=t.lang)
    _activations(run, snap, t, owner=_owns(run))
    _deeper_filters(snap, t)
    _validation(snap, t)
    _final(snap, t)


# ---------------------------------------------------------------------------- the timeline
TL = P + "tl_step"  # the scrubber's key: the step of the frame shown


def _timeline_guarded(run_id: str, playing: bool) -> None:
    run_guarded(lambda: _timeline(run_id, playing))


def _nearest(steps: list[int], step: int) -> int:
    return min(steps, key=lambda s: (abs(s - step), s))


def _toggle_play(steps: list[int]) -> None:
    """Play from here (from step 0 when at the end), or stop playing."""
    ss = st.session_state
    if ss.get(P + "tl_play"):
        ss[P + "tl_play"] = False
        return
    ss[P + "tl_play"] = True
    ss[P + "tl_hold"] = True  # the first tick shows where playing starts
    ss[P + "tl_follow"] = False
    if ss.get(P + "tl_pos", steps[-1]) >= steps[-1]:
        ss[P + "tl_pos"] = steps[0]


def _timeline_position(run_id: str, steps: list[int], playing: bool) -> int:
    """The step to show, and what the scrubber's value says about the reader.

    The page owns the position (``tl_pos``) and writes it into the scrubber; the scrubber
    only tells it when the reader moved. A value the page wrote and the browser has not
    confirmed yet can come back once from a rerun that started before it arrived (a
    fragment's timer fires while a full rerun runs): seen in Chromium, the timeline froze
    on such a stale step. So a value the page sent since the last confirmed one is not a
    move of the reader's (``tl_sent``).
    """
    ss = st.session_state
    if ss.get(P + "tl_run") != run_id:  # another run: start at its end, following it
        for k in ("tl_pos", "tl_sent", "tl_hold"):
            ss.pop(P + k, None)
        ss[P + "tl_follow"], ss[P + "tl_play"], ss[P + "tl_run"] = True, False, run_id
    value = ss.get(TL)
    sent = ss.get(P + "tl_sent", [])
    if sent and value == sent[-1]:
        sent = [value]  # the browser shows what was sent last
    if value is not None and value not in sent:  # the reader moved the scrubber
        ss[P + "tl_pos"] = value
        ss[P + "tl_follow"] = value >= steps[-1]
        sent = [value]  # taken: from now on the browser and the page agree on it
        if playing:
            ss[P + "tl_play"] = False
            ss[P + "tl_sent"] = sent
            st.rerun(scope="app")  # stop the play timer
    pos = ss.get(P + "tl_pos", steps[-1])
    if ss.get(P + "tl_follow", True) and not playing:
        pos = steps[-1]  # at the end: follow the run as it adds frames
    pos = _nearest(steps, int(pos))
    if playing and not ss.pop(P + "tl_hold", False):
        if pos >= steps[-1]:
            ss[P + "tl_play"], ss[P + "tl_follow"] = False, True
            st.rerun(scope="app")  # at the end: stop the play timer
        pos = steps[steps.index(pos) + 1]
    ss[P + "tl_pos"] = pos
    if value != pos:
        ss[TL] = pos
        sent = [*sent, pos][-8:]
    ss[P + "tl_sent"] = sent
    return pos


def _timeline(run_id: str, playing: bool) -> None:
    """The run's timeline: a scrubber over its frames, a play button, and the frame's views.

    A fragment: scrubbing reruns only this. While playing, its timer (PLAY_S) moves the
    scrubber one frame per tick; at the last frame playing stops (a full rerun drops the
    timer). While the run trains, it follows the newest frame unless the reader moved away.
    """
    t = tr()
    ss = st.session_state
    if bool(ss.get(P + "tl_play")) != playing:
        st.rerun(scope="app")  # the play button changed the timer
    run = _manager().get(run_id)
    if run is None:
        return
    snap = run.snapshot()
    frames = snap.timeline
    st.subheader(t("train.tl.header"))
    if not frames:
        st.caption(t("train.tl.none"))
        return
    steps = [f.step for f in frames]
    cur = _timeline_position(run_id, steps, playing)
    by_step = {f.step: f for f in frames}
    c1, c2 = st.columns([1, 7], vertical_alignment="bottom")
    c1.button(
        t("train.tl.stop") if playing else t("train.tl.play"),
        key=P + "tl_play_button",
        icon=":material/stop:" if playing else ":material/play_arrow:",
        on_click=_toggle_play,
        args=(steps,),
        help=t("train.tl.play.help"),
        width="stretch",
    )
    c2.select_slider(
        t("train.tl.scrub", n=len(frames)),
        steps,
        key=TL,
        format_func=lambda s: views.frame_label(by_step[s], t),
        help=t("train.tl.scrub.help"),
    )
    index = steps.index(cur)
    probe = by_step[cur].probe_index
    digit = load_mnist().test_images[probe] if 0 <= probe < MNIST_TEST else None
    live_panel(views.timeline_blocks(snap, index, t, digit), key=P + "timeline", lang=t.lang)


# ---------------------------------------------------------------------------- side by side
CMP = P + "cmp_pick"  # the comparison's multiselect: the run ids shown


def _compare_guarded() -> None:
    run_guarded(_compare)


def _compare() -> None:
    """The session's runs on the same loss and accuracy axes; a multiselect picks which."""
    t = tr()
    ss = st.session_state
    manager = _manager()
    runs = _session_runs(manager)
    if not runs:
        return
    alive = _alive_check()
    snaps = {}
    for rid, _ in runs:
        if (r := manager.get(rid)) is not None:
            if _owns(r):
                r.touch(alive)  # this page keeps its runs alive, as it does its current one
            snaps[rid] = r.snapshot()
    labels = {rid: views.run_label(snaps[rid], n, t) for rid, n in runs if rid in snaps}
    ids = list(labels)
    known = ss.get(P + "cmp_known", [])
    picked = [i for i in ss.get(CMP, ids) if i in labels]
    picked += [i for i in ids if i not in known and i not in picked]  # new runs show
    ss[CMP] = picked
    ss[P + "cmp_known"] = ids
    st.subheader(t("train.cmp.header"))
    st.caption(t("train.cmp.intro") if len(ids) > 1 else t("train.cmp.one"))
    chosen = st.multiselect(
        t("train.cmp.pick"), ids, key=CMP, format_func=labels.get, help=t("train.cmp.pick.help"),
        placeholder=t("train.cmp.placeholder"),  # Streamlit's own is English ("Choose options")
    )  # fmt: skip
    if not chosen:
        st.caption(t("train.cmp.nothing"))
        return
    shown = [(labels[i], snaps[i]) for i in ids if i in chosen]
    live_panel(views.compare_blocks(shown, t), key=P + "compare", lang=t.lang)


def _status(snap: Snapshot, t: Translator) -> None:
    if snap.checkpoint_error:  # training goes on; the server's log has the details
        st.warning(t(snap.checkpoint_error), icon=":material/save:")
    if snap.restored and snap.state == "paused":
        st.info(t("runs.restored", step=snap.checkpoint_step or snap.step))
    if snap.failed:
        st.error(t(snap.fault or "train.state.failed"))
    elif snap.state == "queued":
        st.warning(
            t("train.state.queued", position=snap.queue_position or 1, cap=_manager().max_active),
            icon=":material/hourglass_top:",
        )
    elif snap.phase == "testing":
        st.info(t("train.state.testing", n=snap.test_size))
    elif snap.state in ("ready", "paused", "finished"):
        st.caption(t(f"train.state.{snap.state}"))


def _activations(run: Run, snap: Snapshot, t: Translator, *, owner: bool) -> None:
    st.subheader(t("train.act.header"))
    ss = st.session_state
    c1, c2, c3 = st.columns([2, 1, 5], vertical_alignment="bottom")
    ss.setdefault(P + "probe", snap.probe_index)
    if not owner:  # the probe digit is the run's: a watcher sees the owner's choice
        ss[P + "probe"] = snap.probe_index
    index = c1.number_input(
        t("train.probe"), 0, MNIST_TEST - 1, step=1, key=P + "probe", disabled=not owner
    )

    def pick_random() -> None:
        ss[P + "probe"] = int(np.random.default_rng().integers(MNIST_TEST))

    c2.button(
        t("train.probe.random"),
        key=P + "random",
        on_click=pick_random,
        disabled=not owner,
        width="stretch",
    )
    if owner and int(index) != snap.probe_index:
        run.set_probe(int(index), token=_token())
        try:  # the worker computes it between chunks: usually well under a second
            snap = run.wait(lambda s: s.probe_index == int(index), timeout=1.5)
        except TimeoutError:
            st.caption(t("train.probe.computing"))
    if snap.probe_image is None:
        return
    c3.caption(t("train.probe.caption", index=snap.probe_index, label=snap.probe_label))
    live_panel(views.activation_blocks(snap, t), key=P + "activations", lang=t.lang)


def _deeper_filters(snap: Snapshot, t: Translator) -> None:
    if len(snap.kernels) < 2:
        return
    if not st.toggle(t("train.deeper"), key=P + "deeper"):
        return
    kernels = dict(snap.kernels)
    c1, c2 = st.columns(2)
    # Layer names are data (an uploaded model's): options are shown as plain text.
    name = c1.selectbox(t("train.deeper.layer"), list(kernels)[1:], key=P + "deeper_layer")
    k = kernels[name]
    ch = c2.selectbox(
        t("train.deeper.channel"),
        [-1, *range(k.shape[2])],
        key=P + "deeper_channel",
        format_func=lambda v: t("train.deeper.all") if v < 0 else t("train.deeper.one", c=v),
    )
    channel = None if ch < 0 else int(ch)
    shown = k if channel is not None or k.shape[3] <= 64 else k[..., :64]
    st.image(
        filters_image(shown, channel=channel, zoom=4 if channel is not None else 3),
        caption=t("train.deeper.caption", kh=k.shape[0], kw=k.shape[1], c=k.shape[2], f=k.shape[3]),
    )


def _validation(snap: Snapshot, t: Translator) -> None:
    st.subheader(t("train.validation"))
    if snap.confusion is None:
        st.caption(t("train.validation.none"))
        return
    live_panel(views.validation_blocks(snap, t), key=P + "validation", lang=t.lang)


def _final(snap: Snapshot, t: Translator) -> None:
    if snap.test_acc is not None:
        st.success(
            t("train.test_acc", acc=t.pct(snap.test_acc, 2), n=snap.test_size),
            icon=":material/check_circle:",
        )
    if snap.model is not None and snap.state in ("paused", "finished", "ready"):
        st.download_button(
            t("train.download"),
            data=functools.partial(views.model_file, snap),  # written only when clicked
            file_name=views.model_file_name(snap),
            mime="application/octet-stream",
            key=P + "download",
            on_click="ignore",
            help=t("train.download.help"),
        )
