"""One private training run: a trainer, its worker thread and the latest :class:`Snapshot`.

Rules that keep it safe:

* **One thread touches a model.** Only a run's worker thread calls its
  :class:`~convviz.nn.train.Trainer` (training, validation, layer outputs of the
  probe digit, predictions, the model copy). Commands (start, pause, step,
  reset, lr, probe digit) only set flags under the lock; the worker applies
  them between chunks.
* **Owned commands.** A run made with an ``owner`` token (the page's, a secret
  of the session that started it) obeys only callers passing that token:
  ``start``, ``pause``, ``step``, ``reset``, ``set_lr``, ``set_probe`` and
  ``discard`` from another token or none raise ``CodedError("train.err.not_owner")``.
  Reading (``snapshot``, ``touch``) is open to whoever has the id: watchers.
  A run made without an owner (scripts, tests) is controlled by whoever holds it.
* **Checkpoints.** With a :class:`~convviz.runs.store.RunStore`, the worker writes
  the run's checkpoint at every validation (chunks end on validation steps) and
  whenever the run settles (paused, finished, ready after a reset); a failed
  write (a full disk) is logged, recorded as ``Snapshot.checkpoint_error`` and
  training goes on. A run restored from a checkpoint comes back paused (or
  finished, or failed) at the checkpoint's step, and resumes exactly.
* **Faults are codes.** A bug inside a chunk marks the run "failed" with
  ``Snapshot.fault`` a catalogue code (``runs.fail.internal``,
  ``runs.fail.memory``); the exception goes to the server's log only.
* **Immutable snapshots.** After each chunk the worker publishes a frozen
  :class:`Snapshot` (copies of the history, kernels, layer outputs, confusion
  matrix...; arrays read-only) and swaps it in under the lock. Readers never
  see a half-updated model.

Chunks are sized so one takes about ``target_chunk_s`` (0.3 s): short enough
for pause and lr changes to act promptly, long enough that the per-chunk
bookkeeping costs a few percent. The heavier readings (layer outputs, sample
predictions, the read-only model copy ``Snapshot.live_model``) are recomputed at
most every ``view_interval_s``.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, ClassVar, Protocol

import numpy as np

from convviz.errors import CodedError
from convviz.nn import Mnist, TrainConfig, Trainer, build_model
from convviz.runs.observe import (
    RecordingTrainer,
    conv_kernels,
    frozen_copy,
    layer_outputs,
    probabilities,
)
from convviz.runs.resume import (
    pack_model,
    pack_timeline,
    pack_trainer,
    unpack_timeline,
    unpack_trainer,
)
from convviz.runs.snapshot import RunOptions, Snapshot, frozen
from convviz.runs.store import Checkpoint, RunStore, owner_hash

__all__ = ["EARLY_STEPS", "Run", "Slots"]

#: Besides step 0 and every validation, the timeline keeps these early steps, where the
#: filters and the probe digit's prediction change the most (chunks end on them).
EARLY_STEPS = (1, 2, 5, 10, 20, 50, 100)

_log = logging.getLogger(__name__)

#: The nice value of a run's worker thread (and of the pool threads it starts; Linux
#: threads inherit it): the pages of the same server come first when CPU is short.
TRAIN_NICE = 10


def _lower_priority(nice: int = TRAIN_NICE) -> None:
    """Give the calling thread the nice value ``nice`` (Linux: per thread; else nothing).

    Why: a run's threads keep both cores busy, and a student stepping a window on
    the same server waited behind them (the load test: explorer steps of seconds
    while two runs trained). Nice 10 leaves training all the CPU nobody else asks
    for. Raising one's own nice value needs no privilege.
    """
    try:
        now = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        if now < nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: train at full priority
        pass


class Slots(Protocol):
    """What a run needs of its manager: the shared lock and the training slots.

    :class:`~convviz.runs.manager.RunManager` is the one implementation; this
    module does not import it (imports run one way: manager -> run).
    """

    _lock: Any  # a threading.RLock shared with every run of the manager

    def _admit(self, run: Run) -> None: ...

    def _release(self, run: Run, state: str) -> None: ...

    def _position(self, run: Run) -> int | None: ...


class Run:
    """One private training run: a trainer, a worker thread and its latest snapshot.

    Create runs with :meth:`RunManager.create`. Methods are safe to call from any
    thread; they return at once (the worker acts between chunks).
    """

    def __init__(
        self,
        manager: Slots,
        run_id: str,
        config: TrainConfig,
        *,
        model_factory: Callable[[], Any] | None,
        init: str,
        options: RunOptions,
        data: Mnist,
        owner: str | None = None,
        owner_sha256: str | None = None,
        store: RunStore | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.manager = manager
        # Only the token's hash is kept (and checkpointed): the owner's cookie proves
        # ownership after a restart, the checkpoint file alone does not.
        self._owner_hash = owner_hash(owner) if owner is not None else owner_sha256
        self._store = store
        self._saved: tuple | None = None  # (step, state, probe, lr) of the last checkpoint
        self._init_bytes: np.ndarray | None = None  # the factory's model, packed once
        self._forget = False  # discarded for good: delete the checkpoint on the way out
        self.fault: str | None = None  # why the run failed: a catalogue code
        self.checkpoint_error: str | None = None  # why the last checkpoint failed: a code
        self.checkpoint_step: int | None = None  # step of the last checkpoint written
        self.restored = checkpoint is not None
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
        # The test digits whose predictions are reported (fixed for the run).
        self._sample = np.asarray(options.sample, dtype=np.int64)
        self._sample_images = frozen(data.test_images[self._sample])  # (S, 28, 28) uint8
        self._sample_labels = frozen(data.test_labels[self._sample])
        self._trainer = self._new_trainer()  # before the thread exists: no race
        self._fresh_logs()
        if checkpoint is not None:
            self._apply(checkpoint)
        self._snapshot = self._build_snapshot(views=True)
        self._thread = threading.Thread(
            target=self._loop, name=f"convviz-run-{run_id}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ ownership
    def owned_by(self, token: str | None) -> bool:
        """Whether ``token`` is this run's owner token (False for an unowned run)."""
        return (
            self._owner_hash is not None
            and isinstance(token, str)
            and secrets.compare_digest(owner_hash(token), self._owner_hash)
        )

    def _check(self, token: str | None) -> None:
        if self._owner_hash is not None and not self.owned_by(token):
            raise CodedError("train.err.not_owner")

    # ------------------------------------------------------------------ commands
    def touch(self, alive: Callable[[], bool] | None = None) -> None:
        """Heartbeat from the page; ``alive`` replaces the session-liveness check."""
        with self._lock:
            self.last_seen = time.monotonic()
            if alive is not None:
                self.alive = alive

    def start(self, *, token: str | None = None) -> str:
        """Start (or resume) training; returns the new state ("running" or "queued")."""
        self._check(token)
        with self._lock:
            if self.state in ("ready", "paused"):
                self.manager._admit(self)
            return self.state

    resume = start

    def pause(self, *, token: str | None = None) -> str:
        """Stop after the current chunk and free the training slot; returns the new state."""
        self._check(token)
        with self._lock:
            if self.state in ("running", "queued"):
                self.manager._release(self, "paused")
                self._views_due = True  # publish the settled state (and the model copy)
                self._seq += 1
                self._cond.notify_all()
            return self.state

    def step(self, n: int = 1, *, token: str | None = None) -> None:
        """Run ``n`` optimizer steps while ready or paused (ignored while training)."""
        self._check(token)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"`n` must be an integer >= 1, got {n!r}")
        with self._lock:
            if self.state in ("ready", "paused"):
                self._pending_steps += n
                self._seq += 1
                self._cond.notify_all()

    def reset(self, *, token: str | None = None) -> None:
        """Discard the trainer and start over (state "ready") with the same config."""
        self._check(token)
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

    def set_lr(self, lr: float, *, token: str | None = None) -> None:
        """Change the base learning rate; the next chunk uses it."""
        self._check(token)
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr):
            raise ValueError(f"`lr` must be a finite number, got {lr!r}")
        if lr <= 0:
            raise ValueError(f"`lr` must be > 0, got {lr!r}")
        with self._lock:
            self._pending_lr = float(lr)
            self._seq += 1
            self._cond.notify_all()

    def set_probe(self, index: int, *, token: str | None = None) -> None:
        """Report the layer outputs of test digit ``index`` from now on."""
        self._check(token)
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
            return replace(
                snap,
                state=self.state,
                queue_position=self.manager._position(self),
                fault=self.fault,
                checkpoint_error=self.checkpoint_error,
                checkpoint_step=self.checkpoint_step,
                restored=self.restored,
            )

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

    def discard(self, *, token: str | None = None) -> bool:
        """Stop this run and have the manager forget it (the owner's command)."""
        self._check(token)
        return self.manager.discard(self.id)

    def _discard(self, forget: bool = True) -> None:  # called by the manager, lock held
        self.state = "discarded"
        self._forget = forget
        self._stop = True
        self._cond.notify_all()

    # ------------------------------------------------------------------ checkpoints
    #: A checkpoint's recorded state -> the state the restored run comes back in.
    _RESTORED_STATE: ClassVar[dict[str, str]] = {
        "ready": "ready",
        "queued": "paused",
        "running": "paused",
        "paused": "paused",
        "finished": "finished",
        "failed": "failed",
    }

    def _apply(self, ckpt: Checkpoint) -> None:
        """Put a checkpoint's trainer, timeline, logs and state into this new run.

        Before the worker exists. Raises ``ValueError``, ``KeyError`` or ``TypeError``
        for a checkpoint that does not fit (the manager refuses it with a code).
        """
        m, a = ckpt.meta, ckpt.arrays
        state = self._RESTORED_STATE[m["state"]]
        trainer = self._trainer
        unpack_trainer(trainer, m["trainer"], a)
        trainer._timeline = unpack_timeline(list(m["timeline"]), a)
        self._probe = int(m["probe"])
        if not 0 <= self._probe < len(self._data.test_labels):
            raise ValueError("the checkpoint's probe digit is out of range")
        self._aim_probe(trainer, self._probe)
        for key in self._chunks:
            values = a[f"chunks/{key}"].tolist()
            self._chunks[key] = [int(v) for v in values] if key == "step" else values
        self._train_s = float(m["train_s"])
        self._test_acc = None if m["test_acc"] is None else float(m["test_acc"])
        if state == "ready" and trainer.step:
            state = "paused"
        if state == "finished" and (not trainer.finished or self._test_acc is None):
            state = "paused"  # killed while testing: resuming measures the test accuracy
        self.state = state
        self.fault = m.get("fault") if state == "failed" else None
        if self.fault is not None and not str(self.fault).startswith("runs.fail."):
            self.fault = "runs.fail.internal"
        self.created = float(m["created"])
        self._views["misclassified"] = trainer.misclassified(self.options.max_misclassified)
        self._saved = (trainer.step, m["state"], self._probe, trainer.config.lr)
        self.checkpoint_step = trainer.step

    def _capture(self, trainer: RecordingTrainer, state: str) -> tuple[dict, dict]:
        meta_t, arrays = pack_trainer(trainer)
        timeline, tl_arrays = pack_timeline(trainer.timeline)
        arrays.update(tl_arrays)
        for key, values in self._chunks.items():
            arrays[f"chunks/{key}"] = np.asarray(values, dtype=np.float64)
        if self._model_factory is not None:
            if self._init_bytes is None:
                self._init_bytes = pack_model(self._build_model())
            arrays["init_model"] = self._init_bytes
        options = asdict(self.options)
        options["sample"] = list(options["sample"])
        meta = {
            "owner_sha256": self._owner_hash,
            "state": state,
            "fault": self.fault,
            "init": self.init,
            "created": self.created,
            "saved_at": time.time(),
            "initial_config": asdict(self._initial),
            "options": options,
            "probe": self._probe,
            "test_acc": self._test_acc,
            "train_s": self._train_s,
            "factory": self._model_factory is not None,
            "trainer": meta_t,
            "timeline": timeline,
        }
        return meta, arrays

    def _save_checkpoint(self, trainer: RecordingTrainer, state: str) -> None:
        """Write this run's checkpoint (the worker's thread); a failure is recorded, not raised."""
        if self._store is None or state == "discarded":
            return
        key = (trainer.step, state, self._probe, trainer.config.lr)
        if key == self._saved:
            return
        try:
            meta, arrays = self._capture(trainer, state)
            self._store.save(self.id, meta, arrays)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
            code = "runs.err.disk_full" if full else "runs.err.checkpoint_write"
            _log.warning(
                "checkpoint of run %s at step %d failed", self.id, trainer.step, exc_info=True
            )
            with self._lock:
                self.checkpoint_error = code
            return
        except Exception:  # a model that cannot be saved, a bug: training goes on
            _log.exception("checkpoint of run %s at step %d failed", self.id, trainer.step)
            with self._lock:
                self.checkpoint_error = "runs.err.checkpoint_write"
            return
        with self._lock:
            self._saved = key
            self.checkpoint_error = None
            self.checkpoint_step = trainer.step

    def _mark_failed(self, code: str) -> None:
        """Record "failed" in the last good checkpoint (its weights are from before the fault)."""
        store = self._store
        if store is None:
            return
        try:
            ckpt = store.load(self.id)
            if ckpt is not None:
                store.save(self.id, {**ckpt.meta, "state": "failed", "fault": code}, ckpt.arrays)
        except Exception:
            _log.warning("could not mark the checkpoint of run %s failed", self.id, exc_info=True)

    # ------------------------------------------------------------------ worker
    def _build_model(self) -> Any:
        """A new starting model: the factory's, else the preset with its seeded random weights."""
        if self._model_factory is not None:
            return self._model_factory()
        return build_model(self._initial.model, seed=self._initial.seed)

    def _new_trainer(self) -> RecordingTrainer:
        self.config = replace(self._initial)
        trainer = RecordingTrainer(self.config, model=self._build_model(), data=self._data)
        self._aim_probe(trainer, self._probe)
        return trainer

    def _aim_probe(self, trainer: RecordingTrainer, probe: int) -> None:
        """The digit whose layer outputs the timeline frames keep from now on."""
        trainer.probe_index = probe
        trainer.probe_image = self._data.test_images[probe]

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
        self._model_copy: Any = None
        self._live_model: Any = None  # a frozen copy at step self._live_step, made with the views
        self._live_step = -1
        self._phase = ""

    def _loop(self) -> None:
        _lower_priority()
        try:
            self._work()
        except Exception as exc:  # a bug must not kill the server: record it, free the slot
            # The details (and any path or value in them) go to the server's log only.
            _log.exception("training run %s failed", self.id)
            code = "runs.fail.memory" if isinstance(exc, MemoryError) else "runs.fail.internal"
            with self._lock:
                failed = self.state != "discarded"
                if failed:
                    self.fault = code
                    self.manager._release(self, "failed")
            if failed:
                self._mark_failed(code)
        finally:
            with self._lock:
                self._trainer = None  # free the model as soon as the run is gone
                forget = self._forget
            if forget and self._store is not None:
                # The worker is the only writer: deleting here, as it ends, cannot race a save.
                self._store.delete(self.id)

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
                    steps = self._early_cut(self._pending_steps)
                    self._pending_steps -= steps
                probe = self._probe
                # Steps left over (cut at an early timeline step) keep the command unfinished.
                taken = self._done if self._pending_steps else self._seq
                asked, self._views_due = self._views_due, False
            if reset:
                self._trainer = self._new_trainer()
                self._fresh_logs()
            trainer = self._trainer
            if probe != trainer.probe_index:
                self._aim_probe(trainer, probe)
            if lr is not None:
                trainer.set_lr(lr)
            n_val = len(trainer.history.val_step)
            if steps and not trainer.finished:
                self._train(trainer, steps)
            validated = len(trainer.history.val_step) != n_val
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
            if settled and self._model_copy is None:
                if self._live_step == trainer.step:  # copied with these views: the same weights
                    self._model_copy = self._live_model
                else:
                    self._model_copy = frozen_copy(trainer.model, self._build_model)
            snap = self._build_snapshot(views=views)
            with self._lock:
                if self._stop:
                    return
                self._snapshot = snap
                self._done = taken
                if finishing and self.state in ("running", "ready", "paused"):
                    # With the final snapshot in place, so "finished" comes with its test accuracy.
                    self.manager._release(self, "finished")
                state = self.state
            if validated or settled:
                self._save_checkpoint(trainer, state)

    def _chunk_steps(self) -> int:
        if self._step_s is None:
            return 1  # the first chunk measures the step time
        k = round(self.options.target_chunk_s / max(self._step_s, 1e-6))
        return self._early_cut(int(min(max(k, 1), self.options.max_chunk_steps)))

    def _early_cut(self, k: int) -> int:
        """``k`` steps, or fewer so the chunk ends on the next early timeline step or validation.

        Ending on a validation lets the checkpoint written after it hold that very step.
        """
        t = self._trainer
        step = t.step
        stops = [s for s in EARLY_STEPS if s > step]
        stops.append((step // t.steps_per_epoch + 1) * t.steps_per_epoch)  # epoch end
        if t.config.eval_every:
            stops.append((step // t.config.eval_every + 1) * t.config.eval_every)
        return min(k, min(stops) - step) if k else k

    def _train(self, trainer: RecordingTrainer, steps: int) -> None:
        if trainer.step == 0 and not trainer.timeline:
            trainer.record(evaluate=True)  # step 0: the untrained net, scored once
        n_val = len(trainer.history.val_step)
        t0 = time.perf_counter()
        m = trainer.train_steps(steps)
        wall = time.perf_counter() - t0
        self._model_copy = None  # stale now
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
        if trainer.step in EARLY_STEPS:
            trainer.record()
        if len(trainer.history.val_step) != n_val:
            self._views["misclassified"] = trainer.misclassified(self.options.max_misclassified)

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

    def _compute_views(self, trainer: RecordingTrainer, probe: int) -> None:
        model = trainer.model
        image = self._data.test_images[probe]  # (28, 28) uint8
        self._views.update(
            probe_index=probe,
            probe_image=image,
            probe_label=int(self._data.test_labels[probe]),
            activations=layer_outputs(model, image),
            probs=probabilities(model, image[None])[0],
            sample_probs=probabilities(model, self._sample_images),
            kernels=conv_kernels(model),
        )
        if self._live_step != trainer.step:
            # classic's 93k parameters: 1.4 ms idle, 1.5-4.4 ms while training (a preset
            # rebuilt, then the arrays copied; an uploaded model's factory reads its .npz
            # again: 3-6 ms). At most every view_interval_s, so 14-15 copies in 8 s of
            # training took 22-62 ms of the worker's time: 0.3-0.8% (measured headless; the
            # A/B throughput on this shared 2-core machine varied more than that, +-30%).
            self._live_model = frozen_copy(model, self._build_model)
            self._live_step = trainer.step
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
            state, phase = self.state, self._phase
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
            sample_indices=tuple(int(i) for i in self._sample),
            sample_images=self._sample_images,
            sample_labels=self._sample_labels,
            sample_probs=v.get("sample_probs"),
            confusion=None if t.confusion is None else frozen(t.confusion),
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
            model=self._model_copy,
            live_model=self._live_model,
            live_step=max(self._live_step, 0),
            timeline=t.timeline,
        )
