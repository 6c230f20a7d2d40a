"""What a run reports: its options and the immutable :class:`Snapshot` it publishes.

Snapshots carry data only (numbers, arrays, probabilities, labels, a model
copy); what the page draws from them is the page's business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["STATES", "TIMELINE_MAX_FRAMES", "RunOptions", "Snapshot", "TimelineFrame", "frozen"]

#: ready: built, never trained (or reset); queued: waiting for a training slot;
#: failed: the worker hit a bug (logged; ``Snapshot.fault`` says which kind) and stopped.
STATES = ("ready", "queued", "running", "paused", "finished", "failed", "discarded")


@dataclass(frozen=True)
class RunOptions:
    """How a run trains and what it reports (everything but the model and the optimisation)."""

    target_chunk_s: float = 0.3  # wall time one chunk of steps aims at
    max_chunk_steps: int = 256  # never more steps per chunk than this
    # Recompute activations and predictions, and copy the model for ``Snapshot.live_model``,
    # at most this often while training.
    view_interval_s: float = 0.5
    probe_index: int = 0  # test digit whose layer outputs are reported
    sample: tuple[int, ...] = ()  # test digits whose class probabilities are reported
    max_misclassified: int = 24  # wrongly predicted validation digits kept
    test_size: int | None = None  # test images for the final accuracy (None: all 10,000)

    def validate(self) -> None:
        if not (math.isfinite(self.target_chunk_s) and self.target_chunk_s > 0):
            raise ValueError(f"`target_chunk_s` must be > 0, got {self.target_chunk_s!r}")
        if self.max_chunk_steps < 1:
            raise ValueError(f"`max_chunk_steps` must be >= 1, got {self.max_chunk_steps!r}")
        if self.view_interval_s < 0:
            raise ValueError(f"`view_interval_s` must be >= 0, got {self.view_interval_s!r}")
        if self.max_misclassified < 0:
            raise ValueError(f"`max_misclassified` must be >= 0, got {self.max_misclassified!r}")
        if self.test_size is not None and self.test_size < 1:
            raise ValueError(f"`test_size` must be None or >= 1, got {self.test_size!r}")

    def check_indices(self, n_test: int) -> None:
        """``probe_index`` and ``sample`` must name test images (there are ``n_test``)."""
        if not 0 <= self.probe_index < n_test:
            raise ValueError(f"`probe_index` must be in [0, {n_test}), got {self.probe_index}")
        bad = [i for i in self.sample if not 0 <= i < n_test]
        if bad:
            raise ValueError(f"`sample` must hold indices in [0, {n_test}), got {bad[:3]}")


#: At most this many frames in a run's timeline. Past it, the frame whose removal leaves
#: the smallest gap in steps goes (an early frame before a validation's), so the kept
#: frames spread evenly over the whole run however long it trains.
#: A classic frame is about 80 KB (its probe digit's layer outputs in float16 are
#: most of it), so a timeline stays under ~5 MB; tiny's under 1.5 MB.
TIMELINE_MAX_FRAMES = 64


@dataclass(frozen=True)
class TimelineFrame:
    """What a run looked like at one step: a point of its training timeline.

    Recorded at step 0, at every validation and at a few early steps where the
    filters change fastest (:data:`convviz.runs.run.EARLY_STEPS`); arrays are read-only.
    """

    step: int
    epoch: float  # steps / steps per epoch
    lr: float  # learning rate of the last step (the first step's at step 0)
    loss: float | None  # training loss of the last step (None at step 0)
    val_loss: float | None  # None: no validation at this step (an early frame)
    val_acc: float | None
    confusion: np.ndarray | None  # (10, 10) int64 of this validation, else None
    kernels: tuple[str, np.ndarray] | None  # the first conv layer (name, (kh, kw, C, F) float32)
    probe_index: int
    probe_probs: np.ndarray  # (10,) float64 class probabilities of the probe digit
    # Every layer's output for the probe digit: (name, Keras class name, float16 array).
    probe_activations: tuple[tuple[str, str, np.ndarray], ...]

    @property
    def nbytes(self) -> int:
        arrays = [self.probe_probs, *(a for _, _, a in self.probe_activations)]
        if self.confusion is not None:
            arrays.append(self.confusion)
        if self.kernels is not None:
            arrays.append(self.kernels[1])
        return sum(a.nbytes for a in arrays)


def thin(frames: list[TimelineFrame], limit: int = TIMELINE_MAX_FRAMES) -> list[TimelineFrame]:
    """``frames`` with at most ``limit`` kept, the first and the last always among them.

    While too many, drop the inner frame whose neighbours are closest in steps
    (on a tie, an early frame before a validation's, then the older one).
    """
    frames = list(frames)
    while len(frames) > max(limit, 2):
        i = min(
            range(1, len(frames) - 1),
            key=lambda k: (
                frames[k + 1].step - frames[k - 1].step,
                frames[k].val_acc is not None,
                k,
            ),
        )
        del frames[i]
    return frames


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of a run's state after a chunk of steps.

    Arrays are read-only copies; sequences are tuples. ``state`` and
    ``queue_position`` are current as of :meth:`Run.snapshot` (they change
    with commands, between chunks).
    """

    run_id: str
    version: int  # increases with every publication
    state: str  # one of STATES
    queue_position: int | None  # 1 = next to train; None when not queued
    config: dict[str, Any]  # the TrainConfig as a dict (lr is the current base lr)
    model_name: str
    init: str  # how the starting model was chosen: the caller's label ("random", ...)
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
    phase: str = ""  # "testing" while the final test accuracy is measured, else ""
    # Running train values per chunk: step, epoch, loss, acc, lr, images_per_s.
    chunks: dict[str, tuple] = field(default_factory=dict)
    # Per optimizer step (the trainer's history): step, loss, acc, lr, and validation points.
    history: dict[str, tuple] = field(default_factory=dict)
    kernels: tuple[tuple[str, np.ndarray], ...] = ()  # conv kernels (kh, kw, C, F), in order
    probe_index: int = 0
    probe_image: np.ndarray | None = None  # (28, 28) uint8
    probe_label: int | None = None
    # Every layer: (layer name, Keras class name, output without batch axis: (H, W, C) or (N,)).
    activations: tuple[tuple[str, str, np.ndarray], ...] = ()
    probs: np.ndarray | None = None  # (10,) class probabilities of the probe digit
    sample_indices: tuple[int, ...] = ()  # RunOptions.sample
    sample_images: np.ndarray | None = None  # (S, 28, 28) uint8
    sample_labels: np.ndarray | None = None  # (S,)
    sample_probs: np.ndarray | None = None  # (S, 10)
    confusion: np.ndarray | None = None  # (10, 10) int of the last validation
    confusion_step: int | None = None
    # Wrongly predicted validation digits, in order: (image (28, 28) uint8, true, predicted,
    # probability of the predicted class).
    misclassified: tuple[tuple[np.ndarray, int, int, float], ...] = ()
    val_size: int = 0
    test_acc: float | None = None
    test_size: int = 0
    # A private copy of the model while the run holds still (paused, finished, or ready
    # after single steps), its arrays read-only: save it, never train it. None otherwise.
    model: Any = None
    # The run's current weights for readers that look inside the model while it trains (the
    # Inside the network page): a private read-only copy like ``model``, made with the views
    # (at most every ``view_interval_s`` while training, and whenever the run settles; the same
    # object as ``model`` then). Never None once published; ``live_step`` is its step.
    live_model: Any = None
    live_step: int = 0
    # The run's training timeline, oldest first (at most TIMELINE_MAX_FRAMES frames).
    timeline: tuple[TimelineFrame, ...] = ()
    # Faults, as catalogue codes (never exception text or paths; the details are in the
    # server's log). ``fault``: why a "failed" run stopped (runs.fail.*).
    # ``checkpoint_error``: why the latest checkpoint could not be written (runs.err.*; the
    # run trains on); None once one succeeds again.
    fault: str | None = None
    checkpoint_error: str | None = None
    checkpoint_step: int | None = None  # step of the latest checkpoint on disk (None: none)
    restored: bool = False  # brought back from a checkpoint after a server restart

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    @property
    def failed(self) -> bool:
        return self.state == "failed"


def frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``."""
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a
