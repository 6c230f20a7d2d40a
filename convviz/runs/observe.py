"""What a run reads off its model between chunks: layer outputs, kernels, predictions, a copy.

Only the run's worker thread calls these (one thread touches a model); each
returns read-only copies, ready for a :class:`~convviz.runs.snapshot.Snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convviz.nn import Trainer, to_batch
from convviz.nn.train import evaluate_set
from convviz.runs.snapshot import TimelineFrame, frozen, thin

__all__ = ["RecordingTrainer", "conv_kernels", "frozen_copy", "layer_outputs", "probabilities"]


def layer_outputs(model: Any, image: np.ndarray) -> tuple[tuple[str, str, np.ndarray], ...]:
    """``(layer name, Keras class name, output)`` of every layer for one ``image`` (28, 28)."""
    outs = model.activations(to_batch(image[None]))  # [(name, (1, ...))]
    return tuple(
        (name, layer.keras_name, frozen(out[0]))
        for layer, (name, out) in zip(model.layers, outs, strict=True)
    )


def probabilities(model: Any, images: np.ndarray) -> np.ndarray:
    """Class probabilities ``(N, 10)`` float64 of ``images`` (N, 28, 28) uint8."""
    if not len(images):
        return frozen(np.zeros((0, 10)))
    return frozen(model.predict_proba(to_batch(images)).astype(np.float64))


def conv_kernels(model: Any) -> tuple[tuple[str, np.ndarray], ...]:
    """``(layer name, kernel (kh, kw, C, F))`` of every 2-D convolution, in order."""
    return tuple(
        (name.rsplit("/", 1)[0], frozen(p))
        for name, p, _ in model.parameters()
        if name.endswith("/kernel") and p.ndim == 4
    )


def frozen_copy(model: Any, build: Callable[[], Any]) -> Any:
    """A copy of ``model`` with read-only arrays; ``build()`` makes one of the same architecture.

    The copy shares nothing with ``model``, so it can be saved from another thread
    while ``model`` trains on.
    """
    twin = build()
    for (name, dst, _), (_, src, _) in zip(twin.parameters(), model.parameters(), strict=True):
        if dst.shape != src.shape:
            raise ValueError(f"`build` makes another architecture: {name} {dst.shape}")
        dst[...] = src
        dst.setflags(write=False)
    for (_, dst), (_, src) in zip(twin.buffers(), model.buffers(), strict=True):
        dst[...] = src
        dst.setflags(write=False)
    twin.metadata = dict(getattr(model, "metadata", {}))
    return twin


def first_kernels(model: Any) -> tuple[str, np.ndarray] | None:
    """``(layer name, kernel)`` of the first 2-D convolution, or None without one."""
    kernels = conv_kernels(model)
    return kernels[0] if kernels else None


class RecordingTrainer(Trainer):
    """A :class:`Trainer` that lists the misclassified digits of its last validation and
    keeps the run's timeline.

    :meth:`Trainer.validate` keeps the per-image predictions (``val_pred``,
    ``val_conf``) it computed on the way, so the list costs no second pass.
    Every validation also records a :class:`TimelineFrame` (at the exact step it
    ran, inside a chunk); :meth:`record` adds the others (step 0, early steps).
    ``probe_image`` is the digit whose layer outputs the frames keep (the run sets it).
    """

    probe_index: int = 0
    probe_image: np.ndarray | None = None  # (28, 28) uint8
    _timeline: list[TimelineFrame]

    @property
    def timeline(self) -> tuple[TimelineFrame, ...]:
        return tuple(getattr(self, "_timeline", ()))

    def validate(self) -> float | None:
        acc = super().validate()
        if acc is not None:
            self.record(validated=True)
        return acc

    def record(self, *, validated: bool = False, evaluate: bool = False) -> TimelineFrame | None:
        """Add a frame for the current step (once per step; a validation's replaces an early one).

        ``evaluate``: score the validation split for this frame only (step 0: the
        untrained net's confusion), without adding a point to the history.
        """
        frames = self.__dict__.setdefault("_timeline", [])
        if frames and frames[-1].step == self.step:
            if not validated or frames[-1].val_acc is not None:
                return None
            frames.pop()
        if self.probe_image is None:
            return None
        h = self.history
        model = self.model
        val_loss = val_acc = confusion = None
        if validated:
            val_loss, val_acc, confusion = h.val_loss[-1], h.val_acc[-1], self.confusion
        elif evaluate and len(self.val_labels):
            e = evaluate_set(
                self.plan, self.val_images, self.val_labels, batch_size=self.config.val_batch_size
            )
            val_loss, val_acc, confusion = e.loss, e.acc, e.confusion
        acts = layer_outputs(model, self.probe_image)
        frame = TimelineFrame(
            step=self.step,
            epoch=self.step / self.steps_per_epoch,
            lr=float(h.lr[-1]) if h.lr else float(self.lr),
            loss=float(h.loss[-1]) if h.loss else None,
            val_loss=None if val_loss is None else float(val_loss),
            val_acc=None if val_acc is None else float(val_acc),
            confusion=None if confusion is None else frozen(confusion),
            kernels=first_kernels(model),
            probe_index=int(self.probe_index),
            probe_probs=probabilities(model, self.probe_image[None])[0],
            probe_activations=tuple(
                (name, keras, frozen(out.astype(np.float16))) for name, keras, out in acts
            ),
        )
        frames.append(frame)
        self._timeline = thin(frames)
        return frame

    def misclassified(self, limit: int) -> tuple[tuple[np.ndarray, int, int, float], ...]:
        """The first ``limit`` wrongly predicted validation digits of the last validation."""
        if self.val_pred is None:
            return ()
        wrong = np.flatnonzero(self.val_pred != self.val_labels)[:limit]
        return tuple(
            (
                frozen(self.val_images[i]),
                int(self.val_labels[i]),
                int(self.val_pred[i]),
                float(self.val_conf[i]),
            )
            for i in wrong
        )
