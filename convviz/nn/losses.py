"""Losses. Models output logits; the softmax lives here (numerically stable).

There is one softmax in convviz, :func:`convviz.activations.softmax` (max
subtracted first; float32 stays float32): the loss, ``Dense(activation="softmax")``
and ``Sequential.predict_proba`` all use it, and it is re-exported here.
"""

from __future__ import annotations

import numpy as np

from convviz.activations import softmax

__all__ = ["log_softmax", "softmax", "softmax_cross_entropy"]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log(softmax(logits))`` without forming tiny probabilities."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, mean_over: int | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer ``labels`` under ``softmax(logits)``.

    Parameters
    ----------
    logits : ndarray, shape (N, K)
    labels : ndarray of int, shape (N,)
    mean_over : int, optional
        The size of the whole batch when these rows are a part of it (the default: N):
        the loss and the gradient are then this part's share of the whole batch's mean,
        and the gradient's rows are the same, bit for bit, as the whole batch's.

    Returns
    -------
    loss : float
        ``mean(-log softmax(logits)[i, labels[i]])``.
    dlogits : ndarray, shape (N, K)
        Gradient of the loss: ``(softmax(logits) - onehot(labels)) / N``, same dtype as logits.

    Examples
    --------
    >>> loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6) == round(float(np.log(4)), 6), d[0].tolist()
    (True, [-0.375, 0.125, 0.125, 0.125])
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"`logits` must have shape (N, K), got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"`labels` must have shape ({logits.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"`labels` must lie in [0, {logits.shape[1]}), got {labels.min()}..{labels.max()}"
        )
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = np.arange(n)
    if mean_over is None:
        loss = float(-logp[rows, labels].mean())
    else:
        loss = float(-logp[rows, labels].sum()) / mean_over
    d = np.exp(logp)
    d[rows, labels] -= 1.0
    d /= n if mean_over is None else mean_over
    return loss, d.astype(logits.dtype, copy=False)
