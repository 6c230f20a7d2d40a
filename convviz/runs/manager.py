"""Background training runs for the app: a server-wide :class:`RunManager` of private :class:`Run`s.

Why a worker thread per run (and not chunks driven from ``st.fragment`` ticks):

* A fragment tick trains only while the page is open and its script thread is
  free; any widget change or slow figure would stall training, and a browser
  refresh would cut a chunk in half. A worker thread keeps training at full
  speed whatever the page does, and the page only READS the latest snapshot.
* The state lives outside the script run (in this process-wide manager), so a
  reload reattaches to a run by its id (``?run=<id>`` in the URL) with its whole
  history.

Rules that keep it safe:

* **One thread touches a model.** Only a run's worker thread calls its
  :class:`~convviz.nn.train.Trainer` (training, validation, activations of the
  probe digit, predictions, saving to ``.npz``). Commands from the page
  (start, pause, step, reset, lr, probe digit) only set flags under the lock;
  the worker applies them between chunks.
* **Immutable snapshots.** After each chunk the worker publishes a frozen
  :class:`Snapshot` (copies of the history, kernels, activations, confusion
  matrix...; arrays read-only) and swaps it in under the lock. Readers never
  see a half-updated model.
* **Private runs.** The manager is shared by every session (the page gets it
  via ``st.cache_resource``), but each :class:`Run` owns its own trainer and
  model; its id (``secrets.token_urlsafe``) is the only handle to it.
* **A cap on concurrent training.** At most ``max_active`` runs train at once
  (default ``os.cpu_count()``; env ``CONVVIZ_MAX_TRAINING_RUNS``); the others
  wait in a FIFO queue in state ``"queued"``. Pausing, finishing, resetting or
  discarding a run frees its slot for the next in line. A single step while
  paused runs outside the cap: it is one optimizer step.
* **Abandoned runs are freed.** The page calls :meth:`Run.touch` on every
  rerun and may register an ``alive`` check (is the browser session still
  connected?). A janitor thread discards runs not seen for ``abandon_after``
  seconds whose session is gone (env ``CONVVIZ_ABANDON_AFTER_S``).

Chunks are sized so one takes about ``target_chunk_s`` (0.3 s): short enough
for pause and lr changes to act promptly, long enough that the per-chunk
bookkeeping costs a few percent. The heavier views (activations, prediction
strip) are recomputed at most every ``view_interval_s``.

Nothing here imports streamlit.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from convviz.nn.data import Mnist, load_mnist, to_batch
from convviz.nn.losses import softmax, softmax_cross_entropy
from convviz.nn.train import NUM_CLASSES, TrainConfig, Trainer

__all__ = [
    "STATES",
    "Run",
    "RunManager",
    "RunOptions",
    "Snapshot",
    "get_manager",
]

_log = logging.getLogger(__name__)

#: ready: built, never trained (or reset); queued: waiting for a training slot.
STATES = ("ready", "queued", "running", "paused", "finished", "failed", "discarded")
_TRAINING = ("running",)


@dataclass(frozen=True)
class RunOptions:
    """How a run trains and what it shows (everything but the model and the optimisation)."""

    target_chunk_s: float = 0.3  # wall time one chunk of steps aims at
    max_chunk_steps: int = 256  # never more steps per chunk than this
    view_interval_s: float = 0.5  # recompute activations/predictions at most this often
    probe_index: int = 0  # test digit whose activations are shown
    strip_size: int = 12  # test digits in the prediction strip
    gallery_size: int = 24  # misclassified validation digits kept
    test_size: int | None = None  # test images for the final accuracy (None: all 10,000)

    def validate(self) -> None:
        if not (math.isfinite(self.target_chunk_s) and self.target_chunk_s > 0):
            raise ValueError(f"`target_chunk_s` must be > 0, got {self.target_chunk_s!r}")
        if self.max_chunk_steps < 1:
            raise ValueError(f"`max_chunk_steps` must be >= 1, got {self.max_chunk_steps!r}")
        if self.view_interval_s < 0:
            raise ValueError(f"`view_interval_s` must be >= 0, got {self.view_interval_s!r}")
        if self.strip_size < 0:
            raise ValueError(f"`strip_size` must be >= 0, got {self.strip_size!r}")
        if self.gallery_size < 0:
            raise ValueError(f"`gallery_size` must be >= 0, got {self.gallery_size!r}")
        if self.test_size is not None and self.test_size < 1:
            raise ValueError(f"`test_size` must be None or >= 1, got {self.test_size!r}")


@dataclass(frozen=True)
class Snapshot:
    """What the page draws: an immutable copy of a run's state after a chunk.

    Arrays are read-only copies; sequences are tuples. ``state`` and
    ``queue_position`` are current as of :meth:`Run.snapshot` (they change
    with commands, between chunks).
    """

    run_id: str
    version: int  # increases with every publication
    state: str
    queue_position: int | None  # 1 = next to train; None when not queued
    config: dict[str, Any]  # the TrainConfig as a dict (lr is the current base lr)
    model_name: str
    init: str  # "random", "pretrained" or "uploaded"
    step: int = 0
    total_steps: int = 1
    epoch: int = 0
    epochs: int = 1
    steps_per_epoch: int = 1
    progress: float = 0.0
    lr: float = 0.0  # learning rate of the next step
    images_per_s: float = float("nan")  # recent wall-clock throughput (EMA over chunks)
    eta_s: float | None = None
    train_seconds: float = 0.0  # wall time spent training (chunks only)
    phase: str = ""  # a short note: "validating", "testing"...
    # Running train values per chunk: step, epoch, loss, acc, lr, images_per_s.
    chunks: dict[str, tuple] = field(default_factory=dict)
    # Per optimizer step (the trainer's history): step, loss, acc, lr, and validation points.
    history: dict[str, tuple] = field(default_factory=dict)
    kernels: tuple[tuple[str, np.ndarray], ...] = ()  # conv kernels (kh, kw, C, F), in order
    probe_index: int = 0
    probe_image: np.ndarray | None = None  # (28, 28) uint8
    probe_label: int | None = None
    # (layer name, Keras class name, output without batch axis: (H, W, C) or (N,)).
    activations: tuple[tuple[str, str, np.ndarray], ...] = ()
    probs: np.ndarray | None = None  # (10,) softmax of the probe digit
    strip_indices: tuple[int, ...] = ()
    strip_images: np.ndarray | None = None  # (S, 28, 28) uint8
    strip_labels: np.ndarray | None = None  # (S,)
    strip_probs: np.ndarray | None = None  # (S, 10)
    confusion: np.ndarray | None = None  # (10, 10) int of the last validation
    confusion_step: int | None = None
    # Misclassified validation digits: (image (28, 28) uint8, true, predicted, confidence).
    misclassified: tuple[tuple[np.ndarray, int, int, float], ...] = ()
    val_size: int = 0
    test_acc: float | None = None
    test_size: int = 0
    model_npz: bytes | None = None  # the model as .npz, when paused or finished
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state == "finished"


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


class _ViewTrainer(Trainer):
    """A :class:`Trainer` that also keeps the per-image predictions of its last validation.

    The misclassified gallery needs them; computing them here saves a second
    pass over the validation set. Numbers match :func:`convviz.nn.train.evaluate`.
    """

    val_pred: np.ndarray | None = None  # (V,) predicted class
    val_conf: np.ndarray | None = None  # (V,) softmax probability of that class

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
        labels = np.asarray(labels)
        if len(images) != len(labels):
            raise ValueError(f"`labels` must have {len(images)} entries, got {len(labels)}")
        if len(labels) == 0:
            raise ValueError("`images` must not be empty")
        bs = self.config.val_batch_size
        total = 0.0
        pred = np.empty(len(labels), dtype=np.int64)
        conf = np.empty(len(labels), dtype=np.float64)
        for i in range(0, len(labels), bs):
            logits = self.model.forward(to_batch(images[i : i + bs]), training=False)  # (B, 10)
            loss, _ = softmax_cross_entropy(logits, labels[i : i + bs])
            total += loss * len(logits)
            p = softmax(logits.astype(np.float64))
            pred[i : i + bs] = p.argmax(axis=1)
            conf[i : i + bs] = p.max(axis=1)
        confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        np.add.at(confusion, (labels.astype(np.int64), pred), 1)
        if images is self.val_images:
            self.val_pred, self.val_conf = pred, conf
        return total / len(labels), float(np.trace(confusion) / len(labels)), confusion


class Run:
    """One private training run: a trainer, a worker thread and its latest snapshot.

    Create runs with :meth:`RunManager.create`. Methods are safe to call from any
    thread; they return at once (the worker acts between chunks).
    """

    def __init__(
        self,
        manager: RunManager,
        run_id: str,
        config: TrainConfig,
        *,
        model_factory: Callable[[], Any] | None,
        init: str,
        options: RunOptions,
        data: Mnist,
    ) -> None:
        self.manager = manager
        self.id = run_id
        self.config = replace(config)  # our own copy: set_lr changes it
        self._initial = replace(config)  # what reset starts over from
        self.init = init
        self.options = options
        self._model_factory = model_factory
        self._data = data
        self._lock = manager._lock
        self._cond = threading.Condition(self._lock)
        self.state = "ready"
        self.created = time.time()
        self.last_seen = time.monotonic()
        self.alive: Callable[[], bool] | None = None  # "is the owner's session still there?"
        # Commands, applied by the worker between chunks.
        self._pending_steps = 0
        self._pending_lr: float | None = None
        self._probe = int(options.probe_index)
        self._reset = False
        self._stop = False
        self._views_due = True
        self._seq = 1  # commands issued ...
        self._done = 0  # ... and those whose effect is published
        self._version = 0
        self._error: str | None = None
        # Test digits of the prediction strip: a fixed seeded sample.
        n_test = len(data.test_labels)
        rng = np.random.default_rng(1234)
        self._strip = np.sort(rng.choice(n_test, min(options.strip_size, n_test), replace=False))
        self._strip_images = _frozen(data.test_images[self._strip])  # (S, 28, 28) uint8
        self._strip_labels = _frozen(data.test_labels[self._strip])
        self._trainer = self._new_trainer()  # before the thread exists: no race
        self._fresh_logs()
        self._snapshot = self._build_snapshot(views=True)
        self._thread = threading.Thread(
            target=self._loop, name=f"convviz-run-{run_id}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ commands
    def touch(self, alive: Callable[[], bool] | None = None) -> None:
        """Heartbeat from the page; ``alive`` replaces the session-liveness check."""
        with self._lock:
            self.last_seen = time.monotonic()
            if alive is not None:
                self.alive = alive

    def start(self) -> str:
        """Start (or resume) training; returns the new state ("running" or "queued")."""
        with self._lock:
            if self.state in ("ready", "paused"):
                self.manager._admit(self)
            return self.state

    resume = start

    def pause(self) -> str:
        """Stop after the current chunk and free the training slot; returns the new state."""
        with self._lock:
            if self.state in ("running", "queued"):
                self.manager._release(self, "paused")
                self._views_due = True  # publish the settled state (and the model file)
                self._seq += 1
                self._cond.notify_all()
            return self.state

    def step(self, n: int = 1) -> None:
        """Run ``n`` optimizer steps while ready or paused (ignored while training)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"`n` must be an integer >= 1, got {n!r}")
        with self._lock:
            if self.state in ("ready", "paused"):
                self._pending_steps += n
                self._seq += 1
                self._cond.notify_all()

    def reset(self) -> None:
        """Discard the trainer and start over (state "ready") with the same config."""
        with self._lock:
            if self.state == "discarded":
                return
            if self.state in ("running", "queued"):
                self.manager._release(self, "ready")
            self.state = "ready"
            self._pending_steps = 0
            self._pending_lr = None  # the original config's learning rate comes back
            self._reset = True
            self._seq += 1
            self._cond.notify_all()

    def set_lr(self, lr: float) -> None:
        """Change the base learning rate; the next chunk uses it."""
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr):
            raise ValueError(f"`lr` must be a finite number, got {lr!r}")
        if lr <= 0:
            raise ValueError(f"`lr` must be > 0, got {lr!r}")
        with self._lock:
            self._pending_lr = float(lr)
            self._seq += 1
            self._cond.notify_all()

    def set_probe(self, index: int) -> None:
        """Show the activations of test digit ``index``."""
        n = len(self._data.test_labels)
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ValueError(f"`index` must be an integer, got {index!r}")
        if not 0 <= index < n:
            raise ValueError(f"`index` must be in [0, {n}), got {index}")
        with self._lock:
            if self._probe != int(index):
                self._probe = int(index)
                self._views_due = True
                self._seq += 1
                self._cond.notify_all()

    def snapshot(self) -> Snapshot:
        """The latest published snapshot, with the current state and queue position."""
        with self._lock:
            snap = self._snapshot
            return replace(snap, state=self.state, queue_position=self.manager._position(self))

    def wait(
        self, predicate: Callable[[Snapshot], bool], timeout: float = 30.0, poll: float = 0.02
    ) -> Snapshot:
        """Block until ``predicate(snapshot())`` holds (for tests and scripts); raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {self.id} did not reach the condition (state {snap.state})"
                )
            time.sleep(poll)

    @property
    def busy(self) -> bool:
        """True until the effect of every command so far is in the published snapshot."""
        with self._lock:
            return self._done != self._seq

    def _discard(self) -> None:  # called by the manager, lock held
        self.state = "discarded"
        self._stop = True
        self._cond.notify_all()

    # ------------------------------------------------------------------ worker
    def _new_trainer(self) -> _ViewTrainer:
        model = None if self._model_factory is None else self._model_factory()
        self.config = replace(self._initial)
        return _ViewTrainer(self.config, model=model, data=self._data)

    def _fresh_logs(self) -> None:
        self._chunks: dict[str, list] = {
            k: [] for k in ("step", "epoch", "loss", "acc", "lr", "images_per_s")
        }
        self._rate: float | None = None  # EMA of steps per wall second
        self._ips: float | None = None  # EMA of images per wall second
        self._step_s: float | None = None  # EMA of seconds per step (sizes the chunks)
        self._train_s = 0.0
        self._views_at = -math.inf
        self._views: dict[str, Any] = {}
        self._test_acc: float | None = None
        self._model_npz: bytes | None = None
        self._phase = ""

    def _loop(self) -> None:
        try:
            self._work()
        except Exception:  # a bug must not kill the server: record it, free the slot
            _log.exception("training run %s failed", self.id)
            with self._lock:
                self._error = "Training stopped because of an internal error."
                if self.state != "discarded":
                    self.manager._release(self, "failed")
                self._snapshot = replace(self._snapshot, error=self._error)
        finally:
            with self._lock:
                self._trainer = None  # free the model as soon as the run is gone

    def _work(self) -> None:
        while True:
            with self._lock:
                while not (
                    self._stop
                    or self._reset
                    or self._pending_lr is not None
                    or self.state == "running"
                    or self._pending_steps
                    or self._views_due
                ):
                    self._cond.wait()
                if self._stop:
                    return
                reset, self._reset = self._reset, False
                lr, self._pending_lr = self._pending_lr, None
                if reset:
                    steps = 0
                elif self.state == "running":
                    steps = self._chunk_steps()
                else:
                    steps, self._pending_steps = self._pending_steps, 0
                probe = self._probe
                taken = self._seq
                asked, self._views_due = self._views_due, False
            if reset:
                self._trainer = self._new_trainer()
                self._fresh_logs()
            trainer = self._trainer
            if lr is not None:
                trainer.set_lr(lr)
            if steps and not trainer.finished:
                self._train(trainer, steps)
            with self._lock:
                done = trainer.finished and self.state in ("running", "ready", "paused")
                settled = self.state != "running"
            finishing = done and self._test_acc is None
            if finishing:
                self._finish(trainer)
                settled = True
            now = time.monotonic()
            views = (
                asked or settled or reset or now - self._views_at >= self.options.view_interval_s
            )
            if views:
                self._compute_views(trainer, probe)
            if settled and self._model_npz is None:
                self._model_npz = _model_bytes(
                    trainer.model,
                    {
                        "trained_steps": trainer.step,
                        "train_config": {**trainer.config.__dict__},
                        "test_acc": self._test_acc,
                    },
                )
            snap = self._build_snapshot(views=views)
            with self._lock:
                if self._stop:
                    return
                self._snapshot = snap
                self._done = taken
                if finishing and self.state in ("running", "ready", "paused"):
                    # With the final snapshot in place, so "finished" comes with its test accuracy.
                    self.manager._release(self, "finished")

    def _chunk_steps(self) -> int:
        if self._step_s is None:
            return 1  # the first chunk measures the step time
        k = round(self.options.target_chunk_s / max(self._step_s, 1e-6))
        return int(min(max(k, 1), self.options.max_chunk_steps))

    def _train(self, trainer: Trainer, steps: int) -> None:
        n_val = len(trainer.history.val_step)
        t0 = time.perf_counter()
        m = trainer.train_steps(steps)
        wall = time.perf_counter() - t0
        self._model_npz = None  # stale now
        if m["steps"] == 0:
            return
        # The step time without validation sizes the chunks; the wall rate gives the ETA.
        per_step = m["seconds"] / m["steps"]
        self._step_s = per_step if self._step_s is None else 0.7 * self._step_s + 0.3 * per_step
        rate, ips = m["steps"] / wall, m["images"] / wall
        self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate
        self._ips = ips if self._ips is None else 0.7 * self._ips + 0.3 * ips
        self._train_s += wall
        c = self._chunks
        c["step"].append(m["step"])
        c["epoch"].append(m["step"] / trainer.steps_per_epoch)
        c["loss"].append(m["loss"])
        c["acc"].append(m["acc"])
        c["lr"].append(trainer.history.lr[-1])
        c["images_per_s"].append(m["images"] / wall)
        if len(trainer.history.val_step) != n_val:
            self._collect_gallery(trainer)

    def _finish(self, trainer: Trainer) -> None:
        with self._lock:
            self._phase = "testing"
        snap = self._build_snapshot(views=False)  # show "testing" while it runs
        with self._lock:
            self._snapshot = snap
        n = self.options.test_size
        self._test_acc = trainer.test_accuracy(
            None if n is None else min(n, len(self._data.test_labels))
        )
        with self._lock:
            self._phase = ""

    def _collect_gallery(self, trainer: _ViewTrainer) -> None:
        if trainer.val_pred is None:
            return
        wrong = np.flatnonzero(trainer.val_pred != trainer.val_labels)[: self.options.gallery_size]
        self._views["misclassified"] = tuple(
            (
                _frozen(trainer.val_images[i]),
                int(trainer.val_labels[i]),
                int(trainer.val_pred[i]),
                float(trainer.val_conf[i]),
            )
            for i in wrong
        )

    def _compute_views(self, trainer: Trainer, probe: int) -> None:
        model = trainer.model
        data = self._data
        image = to_batch(data.test_images[probe : probe + 1])  # (1, 28, 28, 1) in [0, 1]
        acts = []
        for layer, (name, out) in zip(model.layers, model.activations(image), strict=True):
            if layer.keras_name == "Flatten":
                continue  # a reshape of the layer before: nothing new to see
            acts.append((name, layer.keras_name, _frozen(out[0])))
        logits = acts[-1][2] if acts else np.zeros(NUM_CLASSES)
        probs = softmax(np.asarray(logits, np.float64)[None])[0]
        strip_probs = (
            model.predict_proba(to_batch(data.test_images[self._strip])).astype(np.float64)
            if len(self._strip)
            else np.zeros((0, NUM_CLASSES))
        )
        kernels = tuple(
            (name.rsplit("/", 1)[0], _frozen(p))
            for name, p, _ in model.parameters()
            if name.endswith("/kernel") and p.ndim == 4
        )
        self._views.update(
            probe_index=probe,
            probe_image=data.test_images[probe],
            probe_label=int(data.test_labels[probe]),
            activations=tuple(acts),
            probs=_frozen(probs),
            strip_probs=_frozen(strip_probs),
            kernels=kernels,
        )
        self._views_at = time.monotonic()

    def _build_snapshot(self, views: bool) -> Snapshot:
        t = self._trainer
        if views and not self._views:
            self._compute_views(t, self._probe)
        h = t.history
        remaining = t.total_steps - t.step
        eta = remaining / self._rate if self._rate and remaining else None
        with self._lock:
            self._version += 1
            version = self._version
            state, phase, error = self.state, self._phase, self._error
        v = self._views
        return Snapshot(
            run_id=self.id,
            version=version,
            state=state,
            queue_position=None,
            config={**t.config.__dict__},
            model_name=getattr(t.model, "name", self.config.model),
            init=self.init,
            step=t.step,
            total_steps=t.total_steps,
            epoch=t.epoch,
            epochs=t.config.epochs,
            steps_per_epoch=t.steps_per_epoch,
            progress=t.progress,
            lr=t.lr,
            images_per_s=self._ips if self._ips else float("nan"),
            eta_s=eta,
            train_seconds=self._train_s,
            phase=phase,
            chunks={k: tuple(vals) for k, vals in self._chunks.items()},
            history={
                "step": tuple(h.step),
                "loss": tuple(h.loss),
                "acc": tuple(h.acc),
                "lr": tuple(h.lr),
                "val_step": tuple(h.val_step),
                "val_loss": tuple(h.val_loss),
                "val_acc": tuple(h.val_acc),
            },
            kernels=v.get("kernels", ()),
            probe_index=v.get("probe_index", self._probe),
            probe_image=v.get("probe_image"),
            probe_label=v.get("probe_label"),
            activations=v.get("activations", ()),
            probs=v.get("probs"),
            strip_indices=tuple(int(i) for i in self._strip),
            strip_images=self._strip_images,
            strip_labels=self._strip_labels,
            strip_probs=v.get("strip_probs"),
            confusion=None if t.confusion is None else _frozen(t.confusion),
            confusion_step=h.val_step[-1] if h.val_step else None,
            misclassified=v.get("misclassified", ()),
            val_size=len(t.val_labels),
            test_acc=self._test_acc,
            test_size=(
                min(
                    self.options.test_size or len(self._data.test_labels),
                    len(self._data.test_labels),
                )
            ),
            model_npz=self._model_npz,
            error=error,
        )


def _model_bytes(model: Any, metadata: dict[str, Any]) -> bytes | None:
    """The model as ``.npz`` bytes (``Sequential.save`` writes to a path, so via a temp dir)."""
    if not hasattr(model, "save"):
        return None
    meta = {**getattr(model, "metadata", {}), **metadata}
    with tempfile.TemporaryDirectory(prefix="convviz-") as tmp:
        path = os.path.join(tmp, "model.npz")
        model.save(path, metadata=meta)
        with open(path, "rb") as fh:
            return fh.read()


class RunManager:
    """All training runs of this server process, a cap on concurrent training, a janitor.

    Parameters
    ----------
    max_active : int, optional
        Runs training at once; the rest queue. Default ``os.cpu_count()``.
    abandon_after : float
        Seconds without a :meth:`Run.touch` after which a run whose ``alive``
        check fails (or that has none) is discarded. ``math.inf``: never.
    janitor_interval : float, optional
        How often the janitor looks; default ``min(5, abandon_after / 4)``.
    data : Mnist, optional
        Default ``load_mnist()`` (shared, read-only).
    """

    def __init__(
        self,
        max_active: int | None = None,
        abandon_after: float = 900.0,
        janitor_interval: float | None = None,
        data: Mnist | None = None,
    ) -> None:
        if max_active is None:
            max_active = os.cpu_count() or 1
        if isinstance(max_active, bool) or not isinstance(max_active, int) or max_active < 1:
            raise ValueError(f"`max_active` must be an integer >= 1, got {max_active!r}")
        if not abandon_after > 0:
            raise ValueError(f"`abandon_after` must be > 0, got {abandon_after!r}")
        self.max_active = max_active
        self.abandon_after = float(abandon_after)
        self._data = data
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._active: set[str] = set()
        self._queue: deque[str] = deque()
        self._closed = threading.Event()
        self._janitor: threading.Thread | None = None
        if math.isfinite(self.abandon_after):
            interval = (
                min(5.0, self.abandon_after / 4) if janitor_interval is None else janitor_interval
            )
            self._janitor = threading.Thread(
                target=self._janitor_loop, args=(interval,), name="convviz-janitor", daemon=True
            )
            self._janitor.start()

    # ------------------------------------------------------------------ runs
    def create(
        self,
        config: TrainConfig,
        *,
        model_factory: Callable[[], Any] | None = None,
        init: str = "random",
        options: RunOptions | None = None,
        start: bool = False,
    ) -> Run:
        """A new private run (state "ready"; "running"/"queued" with ``start=True``).

        ``model_factory`` builds the starting model (default: the preset
        ``config.model`` with random weights from ``config.seed``); it is
        called again on reset. Raises ``ValueError`` for a bad config.
        """
        options = RunOptions() if options is None else options
        options.validate()
        config.validate()
        data = self._data if self._data is not None else load_mnist()
        if not 0 <= options.probe_index < len(data.test_labels):
            raise ValueError(
                f"`probe_index` must be in [0, {len(data.test_labels)}), got {options.probe_index}"
            )
        run_id = secrets.token_urlsafe(12)
        run = Run(
            self,
            run_id,
            config,
            model_factory=model_factory,
            init=init,
            options=options,
            data=data,
        )
        with self._lock:
            self._runs[run_id] = run
        if start:
            run.start()
        return run

    def get(self, run_id: str | None) -> Run | None:
        """The run with this id, or None (unknown, expired or discarded)."""
        if not run_id:
            return None
        with self._lock:
            return self._runs.get(run_id)

    def discard(self, run_id: str) -> bool:
        """Stop a run and forget it; returns whether it existed."""
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is None:
                return False
            self._release(run, "discarded")
            run._discard()
            return True

    def reap(self) -> list[str]:
        """Discard the runs abandoned by their sessions; returns their ids."""
        now = time.monotonic()
        with self._lock:
            stale = [r for r in self._runs.values() if now - r.last_seen > self.abandon_after]
        freed = []
        for run in stale:
            alive = run.alive
            try:
                still_there = bool(alive()) if alive is not None else False
            except Exception:  # a broken check must not keep a run forever
                still_there = False
            if not still_there and self.discard(run.id):
                freed.append(run.id)
        return freed

    @property
    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    @property
    def active_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._active)

    @property
    def queued_ids(self) -> list[str]:
        with self._lock:
            return list(self._queue)

    def shutdown(self) -> None:
        """Discard every run and stop the janitor (tests, server exit)."""
        self._closed.set()
        for run_id in self.run_ids:
            self.discard(run_id)

    # ------------------------------------------------------------------ slots (lock held)
    def _admit(self, run: Run) -> None:
        if len(self._active) < self.max_active:
            self._active.add(run.id)
            run.state = "running"
            run._cond.notify_all()
        elif run.id not in self._queue:
            self._queue.append(run.id)
            run.state = "queued"

    def _release(self, run: Run, state: str) -> None:
        self._active.discard(run.id)
        if run.id in self._queue:
            self._queue.remove(run.id)
        run.state = state
        while self._queue and len(self._active) < self.max_active:
            nxt = self._runs.get(self._queue.popleft())
            if nxt is not None and nxt.state == "queued":
                self._active.add(nxt.id)
                nxt.state = "running"
                nxt._cond.notify_all()

    def _position(self, run: Run) -> int | None:
        try:
            return self._queue.index(run.id) + 1
        except ValueError:
            return None

    def _janitor_loop(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.reap()
            except Exception:
                _log.exception("janitor failed")


_manager: RunManager | None = None
_manager_lock = threading.Lock()


#: GIL switch interval (s) of a process that trains next to a web server (default 0.005).
SERVER_SWITCH_INTERVAL_S = 0.0005


def get_manager() -> RunManager:
    """The process-wide :class:`RunManager`, configured from the environment on first use.

    ``CONVVIZ_MAX_TRAINING_RUNS`` (default: number of CPU cores) and
    ``CONVVIZ_ABANDON_AFTER_S`` (default 900).

    It also shortens the interpreter's GIL switch interval to
    :data:`SERVER_SWITCH_INTERVAL_S`: the training threads drop the GIL
    around every NumPy call and need it back at once, but when the server's
    threads (the page's script runs, the event loop) held it, Python made them
    wait up to 5 ms. Measured on this 2-core machine with the Train page open
    in Chromium (classic): 3,430-3,540 -> 3,670-3,850 images/s (+5-8%);
    a plain trainer on its own gains 1-3%, within noise.
    """
    global _manager
    with _manager_lock:
        if _manager is None:
            sys.setswitchinterval(min(sys.getswitchinterval(), SERVER_SWITCH_INTERVAL_S))
            cap = os.environ.get("CONVVIZ_MAX_TRAINING_RUNS")
            after = os.environ.get("CONVVIZ_ABANDON_AFTER_S")
            _manager = RunManager(
                max_active=int(cap) if cap else None,
                abandon_after=float(after) if after else 900.0,
            )
        return _manager
