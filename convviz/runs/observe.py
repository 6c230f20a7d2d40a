"""What a run reads off its model between chunks: layer outputs, kernels, predictions, a copy.

Only the run's worker thread calls these (one thread touches a model); each
returns read-only copies, ready for a :class:`~convviz.runs.snapshot.Snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convviz.nn import Trainer, to_batch
from convviz.runs.snapshot import frozen

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


class RecordingTrainer(Trainer):
    """A :class:`Trainer` that also lists the misclassified digits of its last validation.

    :meth:`Trainer.validate` keeps the per-image predictions (``val_pred``,
    ``val_conf``) it computed on the way, so the list costs no second pass.
    """

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
