"""Training a `convviz.nn` model on MNIST in bounded chunks.

A :class:`Trainer` owns one model, one optimizer and its own seeded random
generators, and advances only when asked: ``train_steps(n)`` runs at most ``n``
optimizer steps and returns their metrics. That is what lets a UI drive it from
a timer (pause = stop calling, change the learning rate between chunks) and the
CLI drive it in a plain loop. Nothing here touches Streamlit or global state, so
two trainers never disturb each other and the same config and seed give the
same history. The steps run through a :class:`~convviz.nn.fast.FastPlan` of the
model (``Trainer(..., fast=False)``: the reference layers).

Schedules scale the base learning rate ``config.lr`` (which ``set_lr`` changes):

* ``"none"``: constant.
* ``"cosine"``: linear warm-up over the first ``warmup`` fraction of all steps
  (none by default), then half a cosine down to ``lr * final_lr_ratio``.
* ``"onecycle"``: PyTorch's ``OneCycleLR``: a cosine rise from ``lr / 25`` to
  ``lr`` over the first ``warmup`` fraction (default 0.3), then a cosine fall to
  ``lr * final_lr_ratio``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from convviz.nn.data import Mnist, load_mnist, to_batch, train_val_split
from convviz.nn.fast import FastPlan
from convviz.nn.losses import softmax, softmax_cross_entropy
from convviz.nn.model import Sequential
from convviz.nn.optim import OPTIMIZERS, Optimizer, make_optimizer
from convviz.nn.parallel import ProcessPlan

__all__ = [
    "NUM_CLASSES",
    "SCHEDULES",
    "Evaluation",
    "History",
    "TrainConfig",
    "Trainer",
    "evaluate",
    "evaluate_set",
    "lr_at",
]

SCHEDULES = ("none", "cosine", "onecycle")
NUM_CLASSES = 10


@dataclass
class TrainConfig:
    """Everything that defines a training run (with the seed, it fixes the result)."""

    model: str = "tiny"  # preset name, see convviz.nn.presets.PRESETS
    optimizer: str = "adam"  # "sgd" | "rmsprop" | "adam"
    lr: float = 1e-3  # base (peak) learning rate; the schedule scales it
    batch_size: int = 64  # images per optimizer step (Keras's default batch is 32)
    epochs: int = 1  # passes over the training images
    train_size: int | None = None  # None: all images left after the validation split
    val_size: int = 5000  # held out of the 60k training images; 0: no validation
    seed: int = 0  # weights, split, subset and shuffling all derive from it
    eval_every: int = 200  # validate every this many steps (0: only at epoch ends)
    schedule: str = "none"  # "none" | "cosine" | "onecycle"
    warmup: float | None = None  # fraction of steps warming up; None: 0 (cosine), 0.3 (onecycle)
    final_lr_ratio: float = 0.01  # lr at the last step / lr (cosine, onecycle)
    weight_decay: float = 0.0  # decoupled, see convviz.nn.optim
    momentum: float = 0.0  # for "sgd" and "rmsprop" only
    val_batch_size: int = 500  # evaluation batch; affects speed and memory, not results

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"`lr` must be a number > 0, got {self.lr!r}")
        for name in ("batch_size", "epochs", "val_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
        for name in ("val_size", "eval_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
        if self.train_size is not None and (
            isinstance(self.train_size, bool)
            or not isinstance(self.train_size, int)
            or self.train_size < 1
        ):
            raise ValueError(
                f"`train_size` must be None or an integer >= 1, got {self.train_size!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.warmup is not None and not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"`warmup` must be None or in [0, 1), got {self.warmup!r}")
        if self.schedule == "onecycle" and self.warmup == 0:
            raise ValueError("`warmup` must be > 0 (or None) for the 'onecycle' schedule")
        # > 0: an optimizer's lr must stay > 0 (a zero-lr step would be wasted work anyway).
        if not 0.0 < self.final_lr_ratio <= 1.0:
            raise ValueError(f"`final_lr_ratio` must be in (0, 1], got {self.final_lr_ratio!r}")
        if self.weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0, got {self.weight_decay!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1), got {self.momentum!r}")
        if self.momentum and self.optimizer.lower() == "adam":
            raise ValueError("`momentum` applies to 'sgd' and 'rmsprop', not 'adam'")


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for 0-based ``step`` of ``total_steps`` under ``config.schedule``.

    ``"cosine"`` is PyTorch's ``CosineAnnealingLR(T_max=total_steps - 1)`` after an
    optional linear warm-up; ``"onecycle"`` is ``OneCycleLR(max_lr=lr, pct_start=warmup,
    div_factor=25, final_div_factor=1 / (25 * final_lr_ratio))`` with cosine annealing.

    >>> cfg = TrainConfig(lr=0.1, schedule="cosine", final_lr_ratio=0.01)
    >>> [round(lr_at(cfg, s, 5), 4) for s in range(5)]
    [0.1, 0.0855, 0.0505, 0.0155, 0.001]
    >>> cfg = TrainConfig(lr=0.1, schedule="onecycle", warmup=0.6, final_lr_ratio=0.01)
    >>> [round(lr_at(cfg, s, 5), 4) for s in range(5)]
    [0.004, 0.052, 0.1, 0.0505, 0.001]
    """
    lr = config.lr
    if config.schedule == "none" or total_steps <= 1:
        return lr
    last = total_steps - 1
    low = lr * config.final_lr_ratio
    if config.schedule == "cosine":
        n_warm = round((config.warmup or 0.0) * total_steps)
        if step < n_warm:
            return lr * (step + 1) / n_warm
        frac = (step - n_warm) / max(1, last - n_warm)
        return _cos_anneal(lr, low, frac)
    # onecycle: a cosine rise from lr/25 to lr, then a cosine fall to lr * final_lr_ratio.
    up_end = (0.3 if config.warmup is None else config.warmup) * total_steps - 1
    if up_end > 0 and step <= up_end:  # (too few steps for a rise: start at the peak)
        return _cos_anneal(lr / 25.0, lr, step / up_end)
    return _cos_anneal(lr, low, (step - up_end) / (last - up_end))


def _cos_anneal(start: float, end: float, frac: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(1.0, max(0.0, frac)))) / 2


@dataclass
class History:
    """What happened so far, one entry per optimizer step or per validation."""

    step: list[int] = field(default_factory=list)  # 1-based step number
    epoch: list[float] = field(default_factory=list)  # epochs done after the step (0.5 = halfway)
    loss: list[float] = field(default_factory=list)  # mean batch loss
    acc: list[float] = field(default_factory=list)  # batch accuracy
    lr: list[float] = field(default_factory=list)  # learning rate used by the step
    images_per_s: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)  # step after which validation ran
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


class Trainer:
    """Train a model on MNIST, a bounded number of steps at a time.

    Parameters
    ----------
    config : TrainConfig, optional
    model : Sequential, optional
        Default ``build_model(config.model, seed=config.seed)``.
    data : Mnist, optional
        Default ``load_mnist()``. Anything with ``train_images`` (N, 28, 28) uint8,
        ``train_labels``, ``test_images`` and ``test_labels`` works.
    fast : bool, default True
        Train and evaluate a :class:`~convviz.nn.model.Sequential` through
        :class:`convviz.nn.fast.FastPlan` (fused layers, batch slices on threads).
        False runs the reference layers (``model.forward`` / ``model.backward``):
        slower, the same numbers up to float rounding. Any other model (an object
        with ``forward``, ``backward`` and ``parameters``) runs as it is.
    processes : bool, default False
        With ``fast``: split each training batch over two processes
        (:class:`convviz.nn.parallel.ProcessPlan`, the CLI's choice) instead of two
        threads; the same numbers up to float rounding. The helper process ends when
        training finishes or :meth:`close` is called.

    Examples
    --------
    >>> t = Trainer(TrainConfig(train_size=256, val_size=100, batch_size=64))
    >>> m = t.train_steps(3)
    >>> m["steps"], t.step, t.total_steps, t.finished
    (3, 3, 4, False)
    >>> m = t.train_steps(10)   # only one step was left
    >>> m["steps"], t.finished, len(t.history.loss), t.history.val_step
    (1, True, 4, [4])
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        model: Any = None,
        data: Mnist | None = None,
        fast: bool = True,
        processes: bool = False,
    ) -> None:
        # A copy: set_lr changes it, and the caller's object should not change under them.
        self.config = config = TrainConfig() if config is None else replace(config)
        config.validate()
        if model is None:
            from convviz.nn.presets import build_model  # the presets sit above the layers

            model = build_model(config.model, seed=config.seed)
        self.model = model
        #: What runs the passes: the plan shares the model's weights and fills its grads.
        self.plan: Any = model
        if fast and isinstance(model, Sequential):
            model.pack_parameters()  # one optimizer pass and one hand-off for all arrays
            self.plan = ProcessPlan(model) if processes else FastPlan(model)
            if processes:
                self.plan.start()  # its start-up (~0.5 s) overlaps loading the data
        self.data = data = load_mnist() if data is None else data

        # Independent streams from one seed: the split, the subset and the shuffling.
        split_seq, subset_seq, shuffle_seq = np.random.SeedSequence(config.seed).spawn(3)
        tr_x, tr_y, va_x, va_y = train_val_split(
            data.train_images,
            data.train_labels,
            val_size=config.val_size,
            seed=int(split_seq.generate_state(1)[0]),
        )
        if config.train_size is not None:
            if config.train_size > len(tr_x):
                raise ValueError(
                    f"`train_size` must be <= {len(tr_x)} (training images left after "
                    f"holding out {config.val_size} for validation), got {config.train_size}"
                )
            keep = np.sort(
                np.random.default_rng(subset_seq).permutation(len(tr_x))[: config.train_size]
            )
            tr_x, tr_y = tr_x[keep], tr_y[keep]
        self.train_images, self.train_labels = tr_x, tr_y  # (N, 28, 28) uint8, (N,)
        self.val_images, self.val_labels = va_x, va_y
        self._shuffle_rng = np.random.default_rng(shuffle_seq)

        # The model itself, not a parameter list: the optimizer re-reads the grads each step.
        kw: dict[str, Any] = {"weight_decay": config.weight_decay}
        if config.momentum:
            kw["momentum"] = config.momentum
        self.optimizer: Optimizer = make_optimizer(config.optimizer, model, lr=config.lr, **kw)

        self.steps_per_epoch = math.ceil(len(tr_x) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.history = History()
        self.confusion: np.ndarray | None = None  # (10, 10) of the last validation
        self.val_pred: np.ndarray | None = None  # (V,) predicted class, last validation
        self.val_conf: np.ndarray | None = None  # (V,) softmax probability of that class
        self.epoch_log: list[dict[str, float]] = []  # one summary per finished epoch
        self._step = 0
        self._order = np.arange(0)
        self._epoch_stats = _Stats()

    # -- progress ---------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """Optimizer steps done so far."""
        return self._step

    @property
    def epoch(self) -> int:
        """Epochs finished so far."""
        return self._step // self.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self._step >= self.total_steps

    @property
    def progress(self) -> float:
        """Fraction of all steps done, in [0, 1]."""
        return self._step / self.total_steps

    @property
    def lr(self) -> float:
        """Learning rate of the next step (the base lr under the schedule)."""
        return lr_at(self.config, min(self._step, self.total_steps - 1), self.total_steps)

    @property
    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot of the progress, for a UI."""
        return {
            "step": self._step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "epochs": self.config.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "progress": self.progress,
            "finished": self.finished,
            "lr": self.lr,
            "val_acc": self.history.val_acc[-1] if self.history.val_acc else None,
        }

    def set_lr(self, lr: float) -> None:
        """Change the base learning rate; the next step uses it (scaled by the schedule)."""
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr):
            raise ValueError(f"`lr` must be a finite number, got {lr!r}")
        if lr <= 0:
            raise ValueError(f"`lr` must be > 0, got {lr!r}")
        self.config.lr = float(lr)

    # -- training ---------------------------------------------------------------------------
    def train_steps(self, n: int) -> dict[str, Any]:
        """Run at most ``n`` optimizer steps (fewer when training ends first).

        Returns
        -------
        dict
            ``steps`` done in this call, the ``images`` they saw and the ``seconds``
            they took, their mean ``loss`` and ``acc`` (per image), ``images_per_s``,
            the progress after them (``step``, ``epoch``, ``finished``, ``lr``) and
            ``val_acc`` of the latest validation (None if none ran yet).
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"`n` must be an integer >= 0, got {n!r}")
        cfg = self.config
        chunk = _Stats()
        for _ in range(min(int(n), self.total_steps - self._step)):
            pos = self._step % self.steps_per_epoch
            if pos == 0:  # a new epoch: a new order
                self._order = self._shuffle_rng.permutation(len(self.train_images))
                self._epoch_stats = _Stats()
            idx = self._order[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
            lr = lr_at(cfg, self._step, self.total_steps)

            t0 = time.perf_counter()
            x = to_batch(self.train_images[idx])  # (B, 28, 28, 1) float32
            y = self.train_labels[idx]
            self.optimizer.lr = lr
            if isinstance(self.plan, FastPlan | ProcessPlan):  # the three in one call
                loss, logits = self.plan.train_step(x, y)
            else:
                logits = self.plan.forward(x, training=True)  # (B, 10)
                loss, dlogits = softmax_cross_entropy(logits, y)
                self.plan.backward(dlogits)
            self.optimizer.step()
            seconds = time.perf_counter() - t0

            correct = int((logits.argmax(axis=1) == y).sum())
            self._step += 1
            h = self.history
            h.step.append(self._step)
            h.epoch.append(self._step / self.steps_per_epoch)
            h.loss.append(loss)
            h.acc.append(correct / len(idx))
            h.lr.append(lr)
            h.images_per_s.append(len(idx) / seconds if seconds > 0 else float("inf"))
            for stats in (chunk, self._epoch_stats):
                stats.add(loss, correct, len(idx), seconds)

            epoch_end = self._step % self.steps_per_epoch == 0
            if epoch_end or (cfg.eval_every and self._step % cfg.eval_every == 0):
                self.validate()
            if epoch_end:
                e = self._epoch_stats
                self.epoch_log.append(
                    {
                        "epoch": self.epoch,
                        "loss": e.mean_loss,
                        "acc": e.acc,
                        "val_loss": self.history.val_loss[-1] if len(self.val_labels) else None,
                        "val_acc": self.history.val_acc[-1] if len(self.val_labels) else None,
                        "seconds": e.seconds,
                        "images_per_s": e.images_per_s,
                    }
                )
        if self.finished:
            self.close()
        state = self.state
        return {
            "steps": chunk.steps,
            "images": chunk.images,
            "seconds": chunk.seconds,
            "loss": chunk.mean_loss,
            "acc": chunk.acc,
            "images_per_s": chunk.images_per_s,
            **{k: state[k] for k in ("step", "epoch", "finished", "lr", "val_acc")},
        }

    def close(self) -> None:
        """End the plan's helper process, if it has one (evaluation goes on, on threads)."""
        if isinstance(self.plan, ProcessPlan):
            self.plan.close()

    # -- evaluation -------------------------------------------------------------------------
    def validate(self) -> float | None:
        """Evaluate on the held-out split, record it in the history; returns the accuracy."""
        if len(self.val_labels) == 0:
            return None
        e = evaluate_set(
            self.plan, self.val_images, self.val_labels, batch_size=self.config.val_batch_size
        )
        self.history.val_step.append(self._step)
        self.history.val_loss.append(e.loss)
        self.history.val_acc.append(e.acc)
        self.confusion, self.val_pred, self.val_conf = e.confusion, e.pred, e.conf
        return e.acc

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
        """Mean loss, accuracy and confusion matrix of the model on a set; see :func:`evaluate`.

        :meth:`validate` calls :func:`evaluate_set` itself (it keeps ``val_pred``
        and ``val_conf``), not this method.
        """
        return evaluate(self.plan, images, labels, batch_size=self.config.val_batch_size)

    def test_accuracy(self, n: int | None = None) -> float:
        """Accuracy on the first ``n`` (default all 10,000) test images."""
        n = len(self.data.test_labels) if n is None else n
        return self.evaluate(self.data.test_images[:n], self.data.test_labels[:n])[1]


@dataclass(frozen=True)
class Evaluation:
    """A model's scores on a labelled set, and what it predicted for each image."""

    loss: float  # mean cross-entropy
    acc: float  # fraction predicted right
    confusion: np.ndarray  # (10, 10) int64: confusion[true, predicted] counts
    pred: np.ndarray  # (N,) int64 predicted class
    conf: np.ndarray  # (N,) float64 softmax probability of the predicted class


def evaluate_set(
    model: Any, images: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> Evaluation:
    """Score ``model`` (evaluation mode) on ``images`` and keep its per-image predictions.

    Parameters
    ----------
    model : Sequential or FastPlan
        Anything whose ``forward(x, training=False)`` returns logits (N, 10).
    images : ndarray, (N, 28, 28) uint8 or (N, 28, 28, 1) float in [0, 1]
    labels : ndarray, (N,) ints in 0..9
    batch_size : int, default 500
        Images per forward pass (memory, not results).
    """
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"`labels` must have {len(images)} entries, got {len(labels)}")
    if len(labels) == 0:
        raise ValueError("`images` must not be empty")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}")
    total_loss = 0.0
    pred = np.empty(len(labels), dtype=np.int64)
    conf = np.empty(len(labels), dtype=np.float64)
    for i in range(0, len(labels), batch_size):
        logits = model.forward(to_batch(images[i : i + batch_size]), training=False)  # (B, 10)
        loss, _ = softmax_cross_entropy(logits, labels[i : i + batch_size])
        total_loss += loss * len(logits)
        pred[i : i + batch_size] = logits.argmax(axis=1)
        conf[i : i + batch_size] = softmax(logits.astype(np.float64)).max(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), pred), 1)
    acc = float(np.trace(confusion) / len(labels))
    return Evaluation(total_loss / len(labels), acc, confusion, pred, conf)


def evaluate(
    model: Any, images: np.ndarray, labels: np.ndarray, batch_size: int = 500
) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and confusion matrix of ``model`` (eval mode) on a labelled set.

    The same numbers as :func:`evaluate_set` (which also keeps the predictions).

    Parameters
    ----------
    model : Sequential or FastPlan
    images : ndarray, (N, 28, 28) uint8 or (N, 28, 28, 1) float in [0, 1]
    labels : ndarray, (N,) ints in 0..9
    batch_size : int, default 500
        Images per forward pass (memory, not results).

    Returns
    -------
    loss : float
    acc : float
    confusion : ndarray, shape (10, 10), int64
        ``confusion[true, predicted]`` counts.
    """
    e = evaluate_set(model, images, labels, batch_size)
    return e.loss, e.acc, e.confusion


class _Stats:
    """Running sums for the metrics of a chunk or an epoch."""

    def __init__(self) -> None:
        self.steps = self.images = self.correct = 0
        self.loss_sum = self.seconds = 0.0

    def add(self, loss: float, correct: int, images: int, seconds: float) -> None:
        self.steps += 1
        self.images += images
        self.correct += correct
        self.loss_sum += loss * images
        self.seconds += seconds

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.images if self.images else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.images if self.images else float("nan")

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")
