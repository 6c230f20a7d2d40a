"""Output-size arithmetic and argument validation shared by every op.

One ``ValueError`` per rule, each naming the parameter it is about, in the
manner of ``skimage.util.view_as_windows``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "PAD_MODES",
    "as_pair",
    "first_nonfinite",
    "output_size",
    "resolve_padding",
]

# Our pad-mode names -> numpy.pad modes (and the scipy.ndimage names in comments).
PAD_MODES: dict[str, str] = {
    "zeros": "constant",  # scipy: constant, cval=0
    "reflect": "reflect",  # scipy: mirror   (d c b | a b c d | c b a)
    "replicate": "edge",  # scipy: nearest  (a a a | a b c d | d d d)
    "circular": "wrap",  # scipy: wrap     (b c d | a b c d | a b c)
}

Pair = tuple[int, int]
Padding = int | Sequence[int] | str


def _as_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"`{name}` must be an integer, got {value!r}")
    if not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"`{name}` must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return value


def as_pair(value: int | Sequence[int], name: str, minimum: int = 1) -> Pair:
    """Return ``value`` as a validated ``(rows, cols)`` pair of ints.

    >>> as_pair(2, "stride")
    (2, 2)
    >>> as_pair((1, 3), "dilation")
    (1, 3)
    """
    if isinstance(value, str):
        raise ValueError(f"`{name}` must be an integer or a pair of integers, got {value!r}")
    if isinstance(value, Sequence | np.ndarray):
        items = list(value)
        if len(items) != 2:
            raise ValueError(f"`{name}` must be an integer or a pair of integers, got {value!r}")
        return (_as_int(items[0], name, minimum), _as_int(items[1], name, minimum))
    v = _as_int(value, name, minimum)
    return (v, v)


def output_size(
    n: int,
    k: int,
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int = 1,
) -> int:
    """Length of a convolution or pooling output along one axis.

    Parameters
    ----------
    n : int
        Input length.
    k : int
        Kernel (or pooling window) length.
    stride, dilation : int
        Step between windows; spacing between kernel taps.
    padding : int or (int, int)
        Padding on each side, or ``(before, after)`` for asymmetric padding.

    Returns
    -------
    int
        The output length, which may be 0 or negative when the (dilated)
        kernel does not fit; callers that need a map check ``>= 1``.

    Notes
    -----
    ``out = floor((n + 2p - d(k-1) - 1) / s) + 1``

    Examples
    --------
    >>> output_size(5, 3)
    3
    >>> output_size(28, 3, stride=2, padding=1)
    14
    >>> output_size(7, 3, dilation=2)
    3
    """
    n = _as_int(n, "n", 0)
    k = _as_int(k, "k", 1)
    s = _as_int(stride, "stride", 1)
    d = _as_int(dilation, "dilation", 1)
    if isinstance(padding, Sequence):
        if len(padding) != 2:
            raise ValueError(f"`padding` must be an int or (before, after), got {padding!r}")
        total = _as_int(padding[0], "padding", 0) + _as_int(padding[1], "padding", 0)
    else:
        total = 2 * _as_int(padding, "padding", 0)
    return (n + total - d * (k - 1) - 1) // s + 1


def _resolve_axis(n: int, k: int, s: int, d: int, how: str) -> Pair:
    span = d * (k - 1) + 1  # extent of the dilated kernel
    if how == "valid":
        return (0, 0)
    if how == "full":
        return (span - 1, span - 1)
    # "same": output = ceil(n / s); TensorFlow puts the odd pixel after.
    out = math.ceil(n / s)
    total = max((out - 1) * s + span - n, 0)
    return (total // 2, total - total // 2)


def resolve_padding(
    padding: Padding,
    in_shape: Pair,
    k_shape: Pair,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
) -> tuple[Pair, Pair]:
    """Turn a padding spec into explicit ``((top, bottom), (left, right))``.

    ``padding`` is an int, a ``(ph, pw)`` pair, or one of ``"valid"``,
    ``"same"`` (output = ceil(input / stride), the odd pixel going after, as
    TensorFlow does) and ``"full"`` (every partial overlap).

    >>> resolve_padding("same", (5, 5), (3, 3))
    ((1, 1), (1, 1))
    >>> resolve_padding("same", (6, 6), (2, 2))
    ((0, 1), (0, 1))
    >>> resolve_padding((1, 2), (5, 5), (3, 3))
    ((1, 1), (2, 2))
    """
    if isinstance(padding, str):
        how = padding.lower()
        if how not in ("valid", "same", "full"):
            raise ValueError(
                f"`padding` must be an int, a pair, 'valid', 'same' or 'full', got {padding!r}"
            )
        return (
            _resolve_axis(in_shape[0], k_shape[0], stride[0], dilation[0], how),
            _resolve_axis(in_shape[1], k_shape[1], stride[1], dilation[1], how),
        )
    ph, pw = as_pair(padding, "padding", minimum=0)
    return ((ph, ph), (pw, pw))


def first_nonfinite(a: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/inf in ``a`` (raster order), or ``None``.

    >>> first_nonfinite(np.array([[1.0, np.nan], [0.0, 2.0]]))
    (0, 1)
    >>> first_nonfinite(np.ones(3)) is None
    True
    """
    if a.dtype.kind not in "fc" or a.size == 0:
        return None
    # min/max propagate NaN and expose inf: two fast reductions instead of a
    # full boolean mask on the common, clean path.
    if np.isfinite(a.min()) and np.isfinite(a.max()):
        return None
    bad = ~np.isfinite(a)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape))


def flat_index(index: object, out_shape: tuple[int, int]) -> tuple[int, int]:
    """Validate a stepper position: ``(row, col)`` or a flat raster index.

    >>> flat_index(4, (2, 3)), flat_index((1, 0), (2, 3))
    ((1, 1), (1, 0))
    """
    ho, wo = out_shape
    if isinstance(index, numbers.Integral) and not isinstance(index, bool):
        if not 0 <= int(index) < ho * wo:
            raise ValueError(f"`index` must be in [0, {ho * wo}), got {index}")
        oy, ox = divmod(int(index), wo)
        return (oy, ox)
    try:
        oy, ox = (int(v) for v in index)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"`index` must be an int or (row, col), got {index!r}") from None
    if not (0 <= oy < ho and 0 <= ox < wo):
        raise ValueError(f"`index` {(oy, ox)} is outside the output shape {(ho, wo)}")
    return (oy, ox)
