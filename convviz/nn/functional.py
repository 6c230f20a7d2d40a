"""Array kernels behind the `convviz.nn` layers: im2col/col2im and pooling.

Everything here works on NHWC batches ``(N, H, W, C)`` and keeps the dtype it
is given (float32 for training, float64 for gradient checks). The functions are
written for speed on a CPU with a BLAS: a convolution is one strided window
view copied once into a ``(N*Ho*Wo, kh*kw*C)`` matrix and one GEMM; its adjoint
(col2im) is ``kh*kw`` adds of strided views, never a scatter loop.

Most functions take an optional ``out`` buffer: the reference layers leave it
out (fresh arrays), :mod:`convviz.nn.fast` passes scratch memory it reuses.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convviz.shapes import resolve_padding

__all__ = [
    "avgpool2d_backward",
    "avgpool2d_forward",
    "col2im",
    "conv_padding",
    "im2col",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "pad_nhwc",
    "windows",
]

Pads = tuple[tuple[int, int], tuple[int, int]]


def conv_padding(
    padding: str | int | tuple[int, int],
    in_hw: tuple[int, int],
    k: tuple[int, int],
    s: tuple[int, int],
) -> Pads:
    """Explicit ``((top, bottom), (left, right))`` padding, TensorFlow style for "same".

    >>> conv_padding("same", (28, 28), (3, 3), (1, 1))
    ((1, 1), (1, 1))
    >>> conv_padding("same", (28, 28), (3, 3), (2, 2))
    ((0, 1), (0, 1))
    >>> conv_padding("valid", (28, 28), (3, 3), (1, 1))
    ((0, 0), (0, 0))
    """
    return resolve_padding(padding, in_hw, k, s)


def pad_nhwc(x: np.ndarray, pads: Pads, out: np.ndarray | None = None) -> np.ndarray:
    """Zero-pad the H and W axes of ``x`` (N, H, W, C).

    With ``out`` (a buffer of the padded shape whose border is already zero, such
    as a :class:`~convviz.nn.fast.Workspace` array made with ``zero=True``) only the interior is
    written.
    """
    (t, b), (le, r) = pads
    if t == b == le == r == 0:
        return x
    n, h, w, c = x.shape
    if out is None:
        out = np.zeros((n, h + t + b, w + le + r, c), x.dtype)
    out[:, t : t + h, le : le + w, :] = x
    return out


def windows(xp: np.ndarray, kh: int, kw: int, sh: int = 1, sw: int = 1) -> np.ndarray:
    """Read-only strided view of every window: ``(N, Ho, Wo, kh, kw, C)``.

    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> windows(x, 2, 2, 2, 2)[0, 1, 0, :, :, 0]
    array([[ 8.,  9.],
           [12., 13.]])
    """
    n, h, w, c = xp.shape
    ho = (h - kh) // sh + 1
    wo = (w - kw) // sw + 1
    s0, s1, s2, s3 = xp.strides
    return as_strided(
        xp,
        shape=(n, ho, wo, kh, kw, c),
        strides=(s0, s1 * sh, s2 * sw, s1, s2, s3),
        writeable=False,
    )


def im2col(
    xp: np.ndarray, kh: int, kw: int, sh: int = 1, sw: int = 1, out: np.ndarray | None = None
) -> np.ndarray:
    """Copy every window of the padded input into one matrix.

    Parameters
    ----------
    xp : ndarray, shape (N, Hp, Wp, C)
        Padded input.
    kh, kw, sh, sw : int
        Kernel size and strides.
    out : ndarray, shape (N*Ho*Wo, kh*kw*C), optional
        Destination (a reused buffer).

    Returns
    -------
    ndarray, shape (N*Ho*Wo, kh*kw*C)
        Row ``(n, oy, ox)`` holds the window in ``(ky, kx, c)`` order, matching a
        Keras kernel ``(kh, kw, C, F)`` reshaped to ``(kh*kw*C, F)``.
    """
    win = windows(xp, kh, kw, sh, sw)  # (N, Ho, Wo, kh, kw, C)
    n, ho, wo, _, _, c = win.shape
    if out is None:
        out = np.empty((n * ho * wo, kh * kw * c), xp.dtype)
    out6 = out.reshape(win.shape)
    if c == 1:
        # One channel: per-tap copies have long contiguous runs; the 6-D copy
        # would move 3 floats at a time.
        for i in range(kh):
            for j in range(kw):
                out6[:, :, :, i, j, :] = win[:, :, :, i, j, :]
    else:
        np.copyto(out6, win)
    return out


def col2im(
    dcols: np.ndarray,
    padded_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int = 1,
    sw: int = 1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum every window's gradient back into place.

    Parameters
    ----------
    dcols : ndarray, shape (N*Ho*Wo, kh*kw*C)
    padded_shape : (N, Hp, Wp, C)
    out : ndarray, shape padded_shape, optional
        Destination; it is overwritten.

    Returns
    -------
    ndarray, shape (N, Hp, Wp, C)
    """
    n, hp, wp, c = padded_shape
    ho = (hp - kh) // sh + 1
    wo = (wp - kw) // sw + 1
    d6 = dcols.reshape(n, ho, wo, kh, kw, c)
    if out is None:
        out = np.empty(padded_shape, dcols.dtype)
    if sh >= kh and sw >= kw:
        # Windows do not overlap: plain assignments, zero only the uncovered cells.
        if sh > kh or sw > kw or ho * sh != hp or wo * sw != wp:
            out.fill(0)
        for i in range(kh):
            for j in range(kw):
                out[:, i : i + sh * ho : sh, j : j + sw * wo : sw, :] = d6[:, :, :, i, j, :]
        return out
    if sh == sw == 1:
        # The first tap assigns (no separate zeroing pass); zero only what it misses.
        out[:, :ho, :wo] = d6[:, :, :, 0, 0, :]
        out[:, ho:] = 0
        out[:, :ho, wo:] = 0
    else:
        out.fill(0)
    for i in range(kh):
        for j in range(kw):
            if sh == sw == 1 and i == j == 0:
                continue
            out[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :] += d6[
                :, :, :, i, j, :
            ]
    return out


# --------------------------------------------------------------------------- pooling


def maxpool2d_forward(
    x: np.ndarray, ph: int, pw: int, sh: int, sw: int, training: bool = True
) -> tuple[np.ndarray, object]:
    """Max pooling over ``(ph, pw)`` windows with strides ``(sh, sw)``, no padding.

    Ties go to the first element of the window in raster order (as PyTorch and
    TensorFlow do), so exactly one input per window receives the gradient.

    Returns
    -------
    out : ndarray, shape (N, Ho, Wo, C)
    cache : object
        What :func:`maxpool2d_backward` needs (``None`` when not training).

    Examples
    --------
    >>> x = np.array([[1.0, 2, 0], [4, 3, 0], [9, 9, 9]]).reshape(1, 3, 3, 1)
    >>> maxpool2d_forward(x, 2, 2, 2, 2)[0][0, :, :, 0]
    array([[4.]])
    """
    n, h, w, c = x.shape
    ho = (h - ph) // sh + 1
    wo = (w - pw) // sw + 1
    if ph == sh and pw == sw:
        # Non-overlapping windows: reduce across columns, then across rows, each
        # with np.maximum over strided views; remember which offset won.
        rows = x[:, : ho * ph]  # (N, ho*ph, W, C)
        best_c, idx_c = _running_max(
            [rows[:, :, j : j + pw * wo : pw] for j in range(pw)], training
        )
        best_r, idx_r = _running_max([best_c[:, i::ph] for i in range(ph)], training)
        if not training:
            return best_r, None
        return best_r, ("fast", x.shape, (idx_c, idx_r), (ph, pw))
    # Overlapping windows: gather, argmax (first max in raster order), take.
    win = windows(x, ph, pw, sh, sw).reshape(n, ho, wo, ph * pw, c)  # copies
    arg = win.argmax(axis=3)[:, :, :, None, :]
    out = np.take_along_axis(win, arg, axis=3)[:, :, :, 0, :]
    if not training:
        return out, None
    return out, ("general", x.shape, arg, (ph, pw, sh, sw))


def _running_max(views: list[np.ndarray], track: bool) -> tuple[np.ndarray, object]:
    """Elementwise max of ``views`` and, if ``track``, which view won (first on ties)."""
    if len(views) == 1:
        return np.ascontiguousarray(views[0]), None
    if len(views) == 2:
        best = np.maximum(views[0], views[1])
        return best, (np.greater(views[1], views[0]) if track else None)
    best = np.array(views[0])
    idx = np.zeros(best.shape, np.uint8) if track else None
    for k, v in enumerate(views[1:], start=1):
        if track:
            # k exceeds every earlier index: a max sets idx = k where v wins, without
            # the branchy (and, on random masks, much slower) np.copyto(where=).
            np.maximum(idx, np.multiply(v > best, np.uint8(k)), out=idx)
        np.maximum(best, v, out=best)
    return best, idx


def _route(dy: np.ndarray, idx: object, n_views: int, out_views: list[np.ndarray]) -> None:
    """Send ``dy`` to the view that won (inverse of :func:`_running_max`)."""
    if n_views == 1:
        out_views[0][...] = dy
    elif n_views == 2:
        np.multiply(dy, idx, out=out_views[1])
        np.subtract(dy, out_views[1], out=out_views[0])  # exact: dy - dy == 0
    else:
        for k in range(n_views):
            np.multiply(dy, idx == k, out=out_views[k])


def maxpool2d_backward(
    dy: np.ndarray, cache: object, out: np.ndarray | None = None, work: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of :func:`maxpool2d_forward`: ``dy`` (N, Ho, Wo, C) -> ``dx`` (N, H, W, C).

    ``out`` and ``work`` (shape (N, Ho*ph, Wo, C)) are optional scratch buffers.
    """
    kind, x_shape, a, b = cache
    if out is None:
        out = np.empty(x_shape, dy.dtype)
    n, h, w, c = x_shape
    ho, wo = dy.shape[1:3]
    if kind == "fast":
        (idx_c, idx_r), (ph, pw) = a, b
        if ho * ph != h or wo * pw != w:
            out.fill(0)  # rows/columns that no window covers
        rows = out[:, : ho * ph]
        if ph == 1:
            g_rows = rows[:, :, : pw * wo]
            _route(dy, idx_c, pw, [g_rows[:, :, j::pw] for j in range(pw)])
            return out
        g_c = np.empty((n, ho * ph, wo, c), dy.dtype) if work is None else work
        _route(dy, idx_r, ph, [g_c[:, i::ph] for i in range(ph)])
        _route(g_c, idx_c, pw, [rows[:, :, j : j + pw * wo : pw] for j in range(pw)])
        return out
    arg, (ph, pw, sh, sw) = a, b
    dwin = np.zeros((n, ho, wo, ph * pw, c), dy.dtype)
    np.put_along_axis(dwin, arg, dy[:, :, :, None, :], axis=3)
    return col2im(dwin.reshape(n * ho * wo, -1), x_shape, ph, pw, sh, sw, out=out)


def avgpool2d_forward(x: np.ndarray, ph: int, pw: int, sh: int, sw: int) -> np.ndarray:
    """Average pooling over ``(ph, pw)`` windows with strides ``(sh, sw)``, no padding.

    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> avgpool2d_forward(x, 2, 2, 2, 2)[0, :, :, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    n, h, w, c = x.shape
    ho = (h - ph) // sh + 1
    wo = (w - pw) // sw + 1
    out = np.zeros((n, ho, wo, c), x.dtype)
    for i in range(ph):
        for j in range(pw):
            out += x[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
    out *= x.dtype.type(1.0 / (ph * pw))
    return out


def avgpool2d_backward(
    dy: np.ndarray, x_shape: tuple[int, int, int, int], ph: int, pw: int, sh: int, sw: int
) -> np.ndarray:
    """Gradient of :func:`avgpool2d_forward`: ``dy`` (N, Ho, Wo, C) -> (N, H, W, C)."""
    g = dy * dy.dtype.type(1.0 / (ph * pw))
    n, ho, wo, c = dy.shape
    d6 = np.broadcast_to(g[:, :, :, None, None, :], (n, ho, wo, ph, pw, c))
    return col2im(np.ascontiguousarray(d6).reshape(n * ho * wo, -1), x_shape, ph, pw, sh, sw)
