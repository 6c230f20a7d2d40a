"""2-D pooling (max, average, min): vectorised, the loop version, and steps.

Padding follows PyTorch: padded cells never win a max or min (they hold
-inf / +inf), and average pooling counts them as zeros
(``count_include_pad=True``). Padding may be at most half the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from convviz.errors import CodedError
from convviz.shapes import (
    WINDOW_MAX,
    as_pair,
    check_at_most,
    check_choice,
    check_fits,
    check_index,
    check_input,
    check_result,
    flat_index,
)

__all__ = [
    "POOL_MODES",
    "PoolStep",
    "check_settings",
    "pool2d",
    "pool2d_naive",
    "pool2d_step",
    "pool2d_steps",
]

POOL_MODES = ("max", "avg", "min")


@dataclass(frozen=True)
class _Prepared:
    xp: np.ndarray  # (C, Hp, Wp) padded input
    size: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    mode: str
    out_shape: tuple[int, int]
    in_shape: tuple[int, int]
    squeeze: bool  # the input was 2-D


def _check_padding(pad: tuple[int, int], size: tuple[int, int]) -> None:
    """Pool-only rule: at most half the window of padding (PyTorch's), so no window is all pad."""
    if 2 * pad[0] > size[0] or 2 * pad[1] > size[1]:
        raise CodedError("err.pool_padding_half", padding=str(pad), size=str(size))


def check_settings(size: int, stride: int, padding: int) -> tuple[int, int, int]:
    """The Pooling page's documented ranges: window and stride 1..``WINDOW_MAX``,
    padding 0..half the window (:func:`pool2d` itself takes any window that fits).

    >>> check_settings(2, 2, 1)
    (2, 2, 1)
    """
    size = check_at_most(size, "size", 1, WINDOW_MAX)
    stride = check_at_most(stride, "stride", 1, WINDOW_MAX)
    padding = check_at_most(padding, "padding", 0, size // 2)
    return size, stride, padding


def _prepare(x, size, stride, padding, mode) -> _Prepared:
    x = check_input(x, "x")
    check_choice(mode, "mode", POOL_MODES)
    k = as_pair(size, "size")
    s = k if stride is None else as_pair(stride, "stride")
    pad = as_pair(padding, "padding", minimum=0)
    _check_padding(pad, k)
    x3 = x[None] if x.ndim == 2 else x
    h, w = x3.shape[1:]
    hp, wp = h + 2 * pad[0], w + 2 * pad[1]
    check_fits(k, (hp, wp), "size")
    dtype = np.result_type(x.dtype, np.float32)
    xf = x3.astype(dtype, copy=False)
    if any(pad):
        fill = {"max": -np.inf, "min": np.inf, "avg": 0.0}[mode]
        xf = np.pad(xf, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1])), constant_values=fill)
    out_shape = ((hp - k[0]) // s[0] + 1, (wp - k[1]) // s[1] + 1)
    return _Prepared(xf, k, s, pad, mode, out_shape, (h, w), x.ndim == 2)


@np.errstate(over="ignore", invalid="ignore")  # overflow is checked on the result
def pool2d(
    x: np.ndarray,
    size: int | tuple[int, int] = 2,
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    mode: str = "max",
) -> np.ndarray:
    """Max, average or min pooling.

    Parameters
    ----------
    x : ndarray, shape (H, W) or (C, H, W)
    size : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Defaults to ``size`` (non-overlapping windows).
    padding : int or (int, int)
        At most half the window on each side.
    mode : {"max", "avg", "min"}

    Returns
    -------
    ndarray, shape (Ho, Wo) or (C, Ho, Wo), float

    Notes
    -----
    ``Ho = floor((H + 2p - k) / s) + 1`` (:func:`convviz.shapes.output_size`
    with dilation 1).

    Examples
    --------
    >>> pool2d([[1, 2, 5, 6], [3, 4, 7, 8]], 2).tolist()
    [[4.0, 8.0]]
    >>> pool2d([[1, 2, 5, 6], [3, 4, 7, 8]], 2, mode="avg").tolist()
    [[2.5, 6.5]]
    """
    p = _prepare(x, size, stride, padding, mode)
    (kh, kw), (sy, sx) = p.size, p.stride
    ho, wo = p.out_shape

    def tap(i: int, j: int) -> np.ndarray:  # (C, Ho, Wo) cells under tap (i, j)
        return p.xp[:, i : i + (ho - 1) * sy + 1 : sy, j : j + (wo - 1) * sx + 1 : sx]

    # One elementwise pass per window cell over strided views: far faster
    # than reshaping into windows and reducing over them.
    out = tap(0, 0).copy()
    reduce = {"max": np.maximum, "min": np.minimum, "avg": np.add}[p.mode]
    for i in range(kh):
        for j in range(kw):
            if i or j:
                reduce(out, tap(i, j), out=out)
    if p.mode == "avg":
        out /= kh * kw
    check_result(out, "pool2d")  # an average of float32 values near 3e38 overflows
    return out[0] if p.squeeze else out


@dataclass(frozen=True)
class PoolStep:
    """One pooling window: its values and, for max/min, which cell wins."""

    index: tuple[int, int]  # (oy, ox) output cell
    position: tuple[int, int]  # (y0, x0) top-left of the window in the padded input
    pad: tuple[int, int]  # (ph, pw) padding on each side
    window: np.ndarray  # (kh, kw) values (padding shows as -inf/+inf or 0)
    winner: tuple[int, int] | None  # (i, j) in the window; first in raster order on ties
    value: float
    inside: np.ndarray  # (kh, kw) bool: cell lies on the real input
    out_shape: tuple[int, int]


def _window(p: _Prepared, c: int, oy: int, ox: int) -> PoolStep:
    (kh, kw), (sy, sx) = p.size, p.stride
    y0, x0 = oy * sy, ox * sx
    win = p.xp[c, y0 : y0 + kh, x0 : x0 + kw]
    winner: tuple[int, int] | None = None
    if p.mode == "avg":
        value = float(win.sum()) / (kh * kw)
    else:
        flat = int(np.argmax(win) if p.mode == "max" else np.argmin(win))
        winner = (flat // kw, flat % kw)
        value = float(win[winner])
    rows = np.arange(y0, y0 + kh) - p.pad[0]
    cols = np.arange(x0, x0 + kw) - p.pad[1]
    h, w = p.in_shape
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    return PoolStep((oy, ox), (y0, x0), p.pad, win, winner, value, inside, p.out_shape)


def pool2d_naive(
    x: np.ndarray,
    size: int | tuple[int, int] = 2,
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    mode: str = "max",
) -> np.ndarray:
    """:func:`pool2d` as a plain loop over output cells (the reference).

    >>> pool2d_naive([[1, 2, 5, 6], [3, 4, 7, 8]], 2, mode="min").tolist()
    [[1.0, 5.0]]
    """
    p = _prepare(x, size, stride, padding, mode)
    c = p.xp.shape[0]
    ho, wo = p.out_shape
    out = np.empty((c, ho, wo), p.xp.dtype)
    for ci in range(c):
        for oy in range(ho):
            for ox in range(wo):
                out[ci, oy, ox] = _window(p, ci, oy, ox).value
    return out[0] if p.squeeze else out


def pool2d_steps(
    x: np.ndarray,
    size: int | tuple[int, int] = 2,
    *,
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    mode: str = "max",
    channel: int = 0,
) -> Iterator[PoolStep]:
    """Yield one :class:`PoolStep` per output cell of one channel, in raster order.

    >>> [(s.index, s.winner, s.value) for s in pool2d_steps([[1, 2, 5, 6], [3, 4, 7, 8]])]
    [((0, 0), (1, 1), 4.0), ((0, 1), (1, 1), 8.0)]
    """
    p = _prepare(x, size, stride, padding, mode)
    c = p.xp.shape[0]
    channel = check_index(channel, "channel", c)

    def gen() -> Iterator[PoolStep]:
        ho, wo = p.out_shape
        for oy in range(ho):
            for ox in range(wo):
                yield _window(p, channel, oy, ox)

    return gen()


def pool2d_step(
    x: np.ndarray,
    size: int | tuple[int, int] = 2,
    *,
    index: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    mode: str = "max",
    channel: int = 0,
) -> PoolStep:
    """The :class:`PoolStep` of one output cell (``(oy, ox)`` or a flat index).

    >>> pool2d_step([[1, 2, 5, 6], [3, 4, 7, 8]], index=(0, 1), mode="min").winner
    (0, 0)
    """
    p = _prepare(x, size, stride, padding, mode)
    c = p.xp.shape[0]
    channel = check_index(channel, "channel", c)
    oy, ox = flat_index(index, p.out_shape)
    return _window(p, channel, oy, ox)
