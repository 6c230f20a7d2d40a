"""The sliding window as a lesson: where it starts, where a click puts it, how it moves.

Pure NumPy (the stepper widget in :mod:`convviz.ui.widgets.stepper` calls it), one rule
per function:

- :func:`busiest_window`: on an image the window starts where the input has the most
  structure (the largest variance under the window), not in a flat corner of sky.
- :func:`window_at`: the output cell whose window is centred nearest a clicked input cell.
- :func:`moved`: ◀ ▶ move one window in raster order, ▲ ▼ one row (both wrap around).
- :func:`advanced`: where Play goes next: one window, a whole output row, or a fast
  sweep, by as many ticks as the clock says have passed (so Play keeps the speed asked
  even when a repaint takes longer than a tick).

Coordinates of the input are in the *padded* input (as ``ConvStep.position``); output
cells are ``(oy, ox)`` with ``0 <= oy < Ho``, ``0 <= ox < Wo``; a raster index is
``oy * Wo + ox``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PLAY_MODES", "SWEEP_TICKS", "advanced", "busiest_window", "moved", "window_at"]

PLAY_MODES = ("cell", "row", "sweep")  # one window a tick, a whole output row, a fast sweep
SWEEP_TICKS = 100  # a sweep crosses the whole map in about this many ticks


def busiest_window(
    xp: np.ndarray,
    extent: tuple[int, int],
    stride: tuple[int, int],
    out_hw: tuple[int, int],
) -> tuple[int, int]:
    """The output cell whose window covers the most varied part of the input.

    ``xp`` is the padded input ``(Hp, Wp)`` or ``(C, Hp, Wp)`` (channels averaged);
    ``extent`` the window's extent ``(eh, ew)`` (a dilated kernel's whole span);
    ``stride`` ``(sy, sx)``; ``out_hw`` ``(Ho, Wo)``. The variance of each window is
    ``E[x^2] - E[x]^2`` from summed-area tables, O(Hp * Wp). Ties go to the first
    cell in raster order; a flat input gives ``(0, 0)``.

    >>> x = np.zeros((7, 7)); x[2:5, 2:5] = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    >>> busiest_window(x, (3, 3), (1, 1), (5, 5))
    (2, 2)
    """
    a = np.asarray(xp, dtype=np.float64)
    if a.ndim == 3:
        a = a.mean(axis=0)
    ho, wo = out_hw
    eh, ew = extent
    sy, sx = stride

    def box(v: np.ndarray) -> np.ndarray:  # (Ho, Wo): sum of v under each window
        s = np.zeros((v.shape[0] + 1, v.shape[1] + 1))
        s[1:, 1:] = v.cumsum(0).cumsum(1)
        r = np.arange(ho)[:, None] * sy
        c = np.arange(wo)[None, :] * sx
        return s[r + eh, c + ew] - s[r, c + ew] - s[r + eh, c] + s[r, c]

    m = a - a.mean()  # centred first: E[x^2] - E[x]^2 loses less to rounding
    n = eh * ew
    var = box(m * m) / n - (box(m) / n) ** 2
    var = np.where(np.isfinite(var), var, -np.inf)
    if var.size == 0 or not np.any(var > 1e-12 * max(1.0, float(np.max(np.abs(var))))):
        return (0, 0)
    oy, ox = divmod(int(np.argmax(var)), wo)
    return (oy, ox)


def window_at(
    row: float,
    col: float,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> tuple[int, int]:
    """The output cell whose window is centred nearest the padded-input cell ``(row, col)``.

    A window at ``(oy, ox)`` spans rows ``oy*sy .. oy*sy + d*(kh-1)``: its centre is
    ``oy*sy + d*(kh-1)/2``. A click beyond the last window's reach clamps to the edge.
    Halves round up (towards the later window).

    >>> window_at(2, 2, (3, 3), (1, 1), (1, 1), (3, 3))  # the middle of a 5x5 input
    (1, 1)
    >>> window_at(0, 4, (3, 3), (1, 1), (1, 1), (3, 3))  # a corner: the corner window
    (0, 2)
    """
    out = []
    for v, k, s, d, n in zip((row, col), kernel, stride, dilation, out_hw, strict=True):
        o = math.floor((float(v) - d * (k - 1) / 2) / s + 0.5)
        out.append(min(max(o, 0), n - 1))
    return (out[0], out[1])


def moved(index: int, direction: str, out_hw: tuple[int, int]) -> int:
    """The raster index one step in ``direction`` (``left``, ``right``, ``up``, ``down``).

    Left and right go one window back or on in raster order (to the previous or next
    row at an edge); up and down go one output row, in the same column. All wrap.

    >>> [moved(0, d, (3, 4)) for d in ("left", "right", "up", "down")]
    [11, 1, 8, 4]
    """
    ho, wo = out_hw
    n = ho * wo
    oy, ox = divmod(int(index) % n, wo)
    if direction == "left":
        return (int(index) - 1) % n
    if direction == "right":
        return (int(index) + 1) % n
    if direction == "up":
        return ((oy - 1) % ho) * wo + ox
    if direction == "down":
        return ((oy + 1) % ho) * wo + ox
    raise ValueError(f"direction must be left, right, up or down, not {direction!r}")


def advanced(index: int, mode: str, out_hw: tuple[int, int], ticks: int = 1) -> int:
    """Where Play puts the window after ``ticks`` ticks in ``mode`` (one of PLAY_MODES).

    ``cell``: one window a tick. ``row``: a whole output row a tick (the window ends
    each tick on the last cell of the next row, so the map fills a row at a time).
    ``sweep``: ``ceil(n / SWEEP_TICKS)`` windows a tick. All wrap around.

    >>> advanced(0, "cell", (3, 4), 2), advanced(0, "row", (3, 4)), advanced(3, "row", (3, 4))
    (2, 3, 7)
    >>> advanced(11, "row", (3, 4)), advanced(3, "row", (3, 4), ticks=2)
    (3, 11)
    >>> advanced(0, "sweep", (100, 100))
    100
    """
    ho, wo = out_hw
    n = ho * wo
    ticks = max(1, int(ticks))
    if mode == "cell":
        return (int(index) + ticks) % n
    if mode == "row":
        row = int(index) // wo + ticks
        if int(index) % wo != wo - 1:  # mid-row: the first tick finishes this row
            row -= 1
        return (row % ho) * wo + wo - 1
    if mode == "sweep":
        return (int(index) + ticks * math.ceil(n / SWEEP_TICKS)) % n
    raise ValueError(f"mode must be one of {PLAY_MODES}, not {mode!r}")
