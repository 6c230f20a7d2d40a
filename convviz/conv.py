"""2-D convolution: a fast vectorised path, the loop version beside it, and steps.

``conv2d`` is what the app computes feature maps with; ``conv2d_naive`` is the
plain loop over output cells that it is tested against; ``conv2d_steps`` and
``conv2d_step`` expose that same loop one window at a time, so what the
stepper shows is exactly the arithmetic the fast path is checked against.

Layouts: an input ``x`` is ``(H, W)`` or ``(C, H, W)``; a kernel ``w`` is
``(kh, kw)`` (the same kernel on every channel), ``(C, kh, kw)`` (one output
map) or ``(F, C, kh, kw)`` (``F`` output maps).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from convviz.errors import CodedError
from convviz.shapes import (
    PAD_MODES,
    Padding,
    as_pair,
    check_bool,
    check_choice,
    check_finite,
    check_fits,
    check_input,
    check_not_empty,
    check_real,
    check_result,
    flat_index,
    resolve_padding,
)

__all__ = [
    "ConvStep",
    "conv2d",
    "conv2d_naive",
    "conv2d_step",
    "conv2d_steps",
]

# Cost model of the two paths (nanoseconds). A tap costs one multiply and one add
# per output cell; an FFT this much per stored spectrum cell (half the tile, real
# FFTs) per log2(tile size). Only the ratio matters: 1 MP grey and RGB, k = 3..15,
# interleaved, measured 0.25-0.7 (median 0.4) on this 2-core machine under load
# (2026-12, load 10-25; absolute times were 5-15x the quiet ones). The crossover
# is then between 5x5 and 7x7 for grey, 3x3 and 5x5 for RGB with one kernel per
# channel, as measured. Re-fit on a quiet machine with benchmarks/bench_conv.py.
_NS_PER_TAP = 0.32
_NS_PER_FFT_UNIT = 0.8
# Outputs at least this big are computed in row blocks of about _BLOCK_CELLS
# cells, in parallel.
_PARALLEL_CELLS = 1 << 17
_BLOCK_CELLS = 1 << 17
_THREADS = max(1, min(4, os.cpu_count() or 1))


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    # NumPy ufuncs release the GIL, so row blocks run truly in parallel.
    return ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="convviz-conv")


METHODS = ("auto", "direct", "fft")


def _check_kernel(w: np.ndarray, c: int) -> np.ndarray:
    """The kernel rules: 2-D, 3-D or 4-D, real, not empty, finite, ``c`` input channels.

    Returns the kernel as ``(F, C, kh, kw)`` (a 2-D kernel broadcast over the channels).
    """
    if w.ndim not in (2, 3, 4):
        raise CodedError("err.kernel_ndim", shape=str(w.shape))
    check_real(w, "w")
    check_not_empty(w, "w")
    check_finite(w, "w")
    if w.ndim == 2:
        return np.broadcast_to(w, (1, c, *w.shape))  # same kernel on every channel
    if w.ndim == 3:
        if w.shape[0] != c:
            raise CodedError("err.kernel_channels", kernel=w.shape[0], input=c)
        return w[None]
    if w.shape[1] != c:
        raise CodedError("err.kernel_in_channels", kernel=w.shape[1], input=c)
    return w


def _check_bias(b: object, f: int) -> np.ndarray:
    """The bias rules: None, a real scalar or ``(F,)``, finite. Returns ``(F,)``."""
    if b is None:
        return np.zeros(f)
    bias = np.asarray(b)
    if bias.dtype.kind not in "biuf":
        raise CodedError("err.bias_dtype", dtype=str(bias.dtype))
    if bias.ndim == 0:
        bias = np.full(f, bias)
    elif bias.shape != (f,):
        raise CodedError("err.bias_shape", filters=f, shape=str(bias.shape))
    check_finite(bias, "b")
    return bias


@dataclass(frozen=True)
class _Prepared:
    xp: np.ndarray  # (C, Hp, Wp) padded input, float
    w: np.ndarray  # (F, C, kh, kw) kernel as applied (flipped if flip=True)
    b: np.ndarray  # (F,)
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[tuple[int, int], tuple[int, int]]
    out_shape: tuple[int, int]
    single: bool  # w had no F axis: return (Ho, Wo)
    in_shape: tuple[int, int]


def _prepare(x, w, b, stride, padding, dilation, pad_mode, flip) -> _Prepared:
    x = check_input(x, "x")
    w = np.asarray(w)
    x3 = x[None] if x.ndim == 2 else x  # (C, H, W)
    w4 = _check_kernel(w, x3.shape[0])  # (F, C, kh, kw)
    f = w4.shape[0]
    single = w.ndim < 4
    bias = _check_bias(b, f)
    s = as_pair(stride, "stride")
    d = as_pair(dilation, "dilation")
    check_choice(pad_mode, "pad_mode", PAD_MODES)
    check_bool(flip, "flip")

    kh, kw = w4.shape[2:]
    h, wd = x3.shape[1:]
    pad = resolve_padding(padding, (h, wd), (kh, kw), s, d)
    hp, wp = h + sum(pad[0]), wd + sum(pad[1])
    eh, ew = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1  # dilated kernel extent
    check_fits((eh, ew), (hp, wp), "w", "err.kernel_too_large")
    out_shape = ((hp - eh) // s[0] + 1, (wp - ew) // s[1] + 1)

    dtype = np.result_type(x.dtype, w.dtype, np.float32)
    xf = x3.astype(dtype, copy=False)
    if any(pad[0]) or any(pad[1]):
        kwargs = {"constant_values": 0} if pad_mode == "zeros" else {}
        xf = np.pad(xf, ((0, 0), *pad), mode=PAD_MODES[pad_mode], **kwargs)
    wf = w4.astype(dtype, copy=False)
    if flip:
        wf = wf[..., ::-1, ::-1]
    return _Prepared(
        xp=xf,
        w=np.ascontiguousarray(wf),
        b=bias.astype(dtype),
        stride=s,
        dilation=d,
        pad=pad,
        out_shape=out_shape,
        single=single,
        in_shape=(h, wd),
    )


# --------------------------------------------------------------------------- fast path


def _tap_view(xp_c: np.ndarray, i: int, j: int, p: _Prepared, r0: int, r1: int) -> np.ndarray:
    """Input cells that tap (i, j) multiplies, for output rows r0:r1. (r1-r0, Wo)"""
    (sy, sx), (dy, dx) = p.stride, p.dilation
    wo = p.out_shape[1]
    y0 = i * dy + r0 * sy
    x0 = j * dx
    return xp_c[y0 : y0 + (r1 - r0 - 1) * sy + 1 : sy, x0 : x0 + (wo - 1) * sx + 1 : sx]


@np.errstate(over="ignore", invalid="ignore")  # overflow is checked on the result
def _shift_add_rows(p: _Prepared, out: np.ndarray, r0: int, r1: int) -> None:
    """out[:, r0:r1] = correlation of the padded input with every kernel."""
    f, c, kh, kw = p.w.shape
    block = out[:, r0:r1]
    tmp = np.empty(block.shape[1:], out.dtype)
    for fi in range(f):
        dst = block[fi]
        started = False
        for ci in range(c):
            xc = p.xp[ci]
            wk = p.w[fi, ci]
            for i in range(kh):
                for j in range(kw):
                    wv = wk[i, j]
                    if wv == 0:  # many presets are sparse (Laplacian, Sobel, the seed kernel)
                        continue
                    view = _tap_view(xc, i, j, p, r0, r1)
                    if not started:
                        np.multiply(view, wv, out=dst)
                        started = True
                    else:
                        np.multiply(view, wv, out=tmp)
                        dst += tmp
        if not started:
            dst.fill(0)
        if p.b[fi] != 0:
            dst += p.b[fi]


def _conv_shift_add(p: _Prepared) -> np.ndarray:
    f = p.w.shape[0]
    ho, wo = p.out_shape
    out = np.empty((f, ho, wo), p.xp.dtype)
    # Row blocks small enough to stay in cache while every tap is added into
    # them (a 12-MP image otherwise streams through memory once per tap), and
    # spread over threads: NumPy ufuncs release the GIL.
    rows = max(1, _BLOCK_CELLS // max(wo, 1))
    blocks = [(r, min(r + rows, ho)) for r in range(0, ho, rows)]
    if ho * wo < _PARALLEL_CELLS or _THREADS == 1 or len(blocks) == 1:
        for r0, r1 in blocks:
            _shift_add_rows(p, out, r0, r1)
    else:
        # Each block writes a disjoint slice of `out`.
        list(_pool().map(lambda rb: _shift_add_rows(p, out, *rb), blocks))
    return out


def _next_fast_len(n: int) -> int:
    """Smallest 2-3-5-7-smooth integer >= n (sizes pocketfft handles fastest).

    What ``scipy.fft.next_fast_len`` gives for complex transforms (it also allows
    11); kept so the cost model needs no scipy import.

    >>> _next_fast_len(1001), _next_fast_len(4000), _next_fast_len(97)
    (1008, 4000, 98)
    """
    best = 1 << max(0, (n - 1).bit_length())
    p7 = 1
    while p7 < best:
        p5 = p7
        while p5 < best:
            p3 = p5
            while p3 < best:
                m = p3
                while m < n:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


# FFT tile sizes tried by the overlap-save path (each rounded up to a fast length):
# a tile of N cells gives N - e + 1 outputs for a kernel extent e, so bigger tiles
# waste less on the overlap and smaller ones stay in cache. One tile covering the
# whole padded input is always a candidate (small images, huge kernels).
_TILE_SIZES = (64, 128, 256, 512)


@dataclass(frozen=True)
class _FftPlan:
    """How the FFT path cuts one correlation: tile FFT size and tile counts per axis."""

    n: tuple[int, int]  # FFT size of a tile (rows, cols)
    out: tuple[int, int]  # stride-1 outputs a tile gives: n - e + 1
    tiles: tuple[int, int]  # tiles along each axis

    @property
    def count(self) -> int:
        return self.tiles[0] * self.tiles[1]


def _axis_plans(full: int, e: int) -> list[tuple[int, int, int]]:
    """``(fft size, outputs per tile, tiles)`` candidates along one axis of ``full`` outputs."""
    whole = _next_fast_len(full + e - 1)
    plans = [(whole, whole - e + 1, 1)]
    for size in _TILE_SIZES:
        n = _next_fast_len(max(size, 2 * e))
        t = n - e + 1
        if n < whole:
            plans.append((n, t, -(-full // t)))
    return plans


def _fft_cost(n: tuple[int, int], count: int, transforms: int) -> float:
    cells = n[0] * (n[1] // 2 + 1)  # a real FFT stores half the spectrum
    return count * transforms * cells * math.log2(max(n[0] * n[1], 2))


@lru_cache(maxsize=256)
def _fft_plan(full: tuple[int, int], e: tuple[int, int], c: int, f: int) -> _FftPlan:
    """The cheapest tiling for ``full`` stride-1 outputs of a kernel of extent ``e``.

    Cost per tile: ``C`` forward transforms and ``F`` inverse ones of ``n`` cells
    times ``log2 n``; the kernel's ``F * C`` transforms are paid once.
    """
    best = None
    for ny, ty, my in _axis_plans(full[0], e[0]):
        for nx, tx, mx in _axis_plans(full[1], e[1]):
            cost = _fft_cost((ny, nx), my * mx, c + f) + _fft_cost((ny, nx), 1, f * c)
            if best is None or cost < best[0]:
                best = (cost, _FftPlan((ny, nx), (ty, tx), (my, mx)))
    return best[1]


def _fft_workers() -> int:
    return _THREADS


@np.errstate(over="ignore", invalid="ignore")  # overflow is checked on the result
def _conv_fft(p: _Prepared, plan: _FftPlan | None = None) -> np.ndarray:
    """Correlation through real FFTs, overlap-save in tiles; exact up to rounding.

    The padded input is cut into tiles of ``plan.n`` cells that overlap by the
    kernel's extent minus one; a circular correlation of a tile with the kernel
    leaves its last ``plan.out`` rows and columns untouched by wrap-around, and
    those are the outputs. The kernel's spectrum is computed once at the tile
    size; rows of tiles go to threads (scipy.fft releases the GIL), and the
    transforms run in the input's precision (float32 in, complex64 spectra).
    """
    import scipy.fft as sfft  # on first use: `import convviz` stays scipy-free

    f, c, kh, kw = p.w.shape
    (dy, dx), (sy, sx) = p.dilation, p.stride
    eh, ew = dy * (kh - 1) + 1, dx * (kw - 1) + 1
    hp, wp = p.xp.shape[1:]
    full = (hp - eh + 1, wp - ew + 1)  # stride-1 outputs
    if plan is None:
        plan = _fft_plan(full, (eh, ew), c, f)
    (ny, nx), (ty, tx), (my, mx) = plan.n, plan.out, plan.tiles
    kern = np.zeros((f, c, eh, ew), p.w.dtype)
    kern[:, :, ::dy, ::dx] = p.w
    kern = kern[:, :, ::-1, ::-1]  # correlation = convolution with the flipped kernel
    kf = sfft.rfft2(kern, s=(ny, nx), workers=1)  # (F, C, ny, nx//2+1)
    # Zeros after the input so every tile is whole (they only reach discarded outputs).
    need = ((my - 1) * ty + ny, (mx - 1) * tx + nx)
    xp = p.xp
    if need[0] > hp or need[1] > wp:
        xp = np.zeros((c, max(need[0], hp), max(need[1], wp)), p.xp.dtype)
        xp[:, :hp, :wp] = p.xp
    # The stride-1 outputs, written tile row by row (as wide as the tiles: one copy a row)
    y = np.empty((f, full[0], mx * tx), p.xp.dtype)
    win = np.lib.stride_tricks.sliding_window_view(xp, (ny, nx), axis=(1, 2))

    def tile_row(r: int) -> None:
        tiles = win[:, r * ty, : (mx - 1) * tx + 1 : tx]  # (C, mx, ny, nx)
        xf = sfft.rfft2(tiles, axes=(-2, -1), workers=1)  # (C, mx, ny, nx//2+1)
        if c == 1 and f == 1:
            xf *= kf[0, 0]  # in place: one spectrum fewer in memory
            yf = xf
        elif c == 1:
            yf = kf[:, 0, None] * xf[0]  # (F, mx, ., .)
        else:
            yf = np.einsum("fcij,ctij->ftij", kf, xf, optimize=True)
        yt = sfft.irfft2(yf, s=(ny, nx), axes=(-2, -1), workers=1)  # (F, mx, ny, nx)
        part = yt[:, :, eh - 1 :, ew - 1 :]  # (F, mx, ty, tx): untouched by wrap-around
        rows = min(ty, full[0] - r * ty)
        dst = y[:, r * ty : r * ty + rows].reshape(f, rows, mx, tx)  # a view: rows are whole
        np.copyto(dst, part[:, :, :rows].transpose(0, 2, 1, 3))

    if my == 1 and mx == 1:  # one transform of the whole input: pocketfft's threads
        xf = sfft.rfft2(xp[:, :ny, :nx], workers=_fft_workers())
        yf = kf[:, 0] * xf[0] if c == 1 else np.einsum("fcij,cij->fij", kf, xf)
        y = sfft.irfft2(yf, s=(ny, nx), workers=_fft_workers())[:, eh - 1 :, ew - 1 :]
        y = y[:, : full[0], : full[1]]
    elif my == 1 or _THREADS == 1:
        for r in range(my):
            tile_row(r)
    else:  # rows of tiles on threads; each writes its own rows of `y`
        list(_pool().map(tile_row, range(my)))
    ho, wo = p.out_shape
    out = y[:, : (ho - 1) * sy + 1 : sy, : (wo - 1) * sx + 1 : sx]
    out = np.ascontiguousarray(out, dtype=p.xp.dtype)
    if np.any(p.b):
        out += p.b[:, None, None].astype(out.dtype)
    return out


def _use_fft(p: _Prepared) -> bool:
    """Pick the cheaper path from a cost model fitted with benchmarks/bench_conv.py."""
    f, c, kh, kw = p.w.shape
    taps = int(np.count_nonzero(p.w))  # zero taps are skipped by the direct path
    ho, wo = p.out_shape
    direct = _NS_PER_TAP * taps * ho * wo
    dy, dx = p.dilation
    eh, ew = dy * (kh - 1) + 1, dx * (kw - 1) + 1
    hp, wp = p.xp.shape[1:]
    plan = _fft_plan((hp - eh + 1, wp - ew + 1), (eh, ew), c, f)
    fft = _NS_PER_FFT_UNIT * (_fft_cost(plan.n, plan.count, c + f) + _fft_cost(plan.n, 1, f * c))
    return fft < direct


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: float | np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: Padding = "valid",
    dilation: int | tuple[int, int] = 1,
    pad_mode: str = "zeros",
    flip: bool = False,
    method: str = "auto",
) -> np.ndarray:
    """2-D cross-correlation (``flip=False``, what CNNs call convolution) or convolution.

    Parameters
    ----------
    x : ndarray, shape (H, W) or (C, H, W)
        Input image or stack of channels.
    w : ndarray, shape (kh, kw), (C, kh, kw) or (F, C, kh, kw)
        Kernel. A 2-D kernel is applied to every channel and the channels are
        summed, as a ``(C, kh, kw)`` kernel with equal slices would be.
    b : float or ndarray, shape (F,), optional
        Bias added to each output map.
    stride, dilation : int or (int, int)
        Step between windows; spacing between kernel taps.
    padding : int, (int, int), "valid", "same" or "full"
        ``"same"`` gives ``ceil(n / stride)`` outputs, with the odd padding
        pixel after (TensorFlow's rule); ``"full"`` every partial overlap.
    pad_mode : {"zeros", "reflect", "replicate", "circular"}
    flip : bool
        Flip the kernel in both axes first (true convolution).
    method : {"auto", "direct", "fft"}
        ``"direct"`` adds the shifted input once per kernel tap; ``"fft"``
        multiplies spectra. ``"auto"`` picks by cost.

    Returns
    -------
    ndarray, shape (Ho, Wo) or (F, Ho, Wo)
        Float (float32 unless an input is float64 or a wide integer).

    Notes
    -----
    ``Ho = floor((H + 2p - d(kh-1) - 1) / s) + 1``, the same as
    :func:`convviz.shapes.output_size`.

    Examples
    --------
    >>> x = [[128, 97, 53, 201, 198], [35, 22, 25, 200, 195], [37, 24, 28, 197, 182],
    ...      [33, 28, 92, 195, 179], [31, 40, 100, 192, 177]]
    >>> conv2d(x, [[0, 1, 0], [1, 0, 1], [0, 1, 0]]).astype(int).tolist()
    [[181, 303, 618], [115, 338, 605], [189, 351, 660]]
    """
    check_choice(method, "method", METHODS)
    xa, wa = np.asarray(x), np.asarray(w)
    if wa.ndim == 2 and xa.ndim == 3 and xa.shape[0] > 1 and wa.dtype.kind in "biuf":
        # The same kernel on every channel: correlation and every pad mode are
        # linear, so summing the channels first gives the same map at 1/C the cost.
        xa = check_input(xa, "x")
        x = xa.sum(axis=0, dtype=np.result_type(xa.dtype, wa.dtype, np.float32))
    p = _prepare(x, w, b, stride, padding, dilation, pad_mode, flip)
    use_fft = method == "fft" or (method == "auto" and _use_fft(p))
    out = _conv_fft(p) if use_fft else _conv_shift_add(p)
    if use_fft and not np.isfinite(out).all():
        # Spectra sum every pixel times every tap, so the FFT overflows (to NaN) long
        # before the direct sums do: 1e300-valued taps on a 512x512 image give NaN
        # there and finite numbers here. Recompute directly; report a true overflow.
        out = _conv_shift_add(p)
    check_result(out, "conv2d")  # finite inputs, huge values: overflow is reported, not drawn
    return out[0] if p.single else out


# --------------------------------------------------------------------------- loop version


@dataclass(frozen=True)
class ConvStep:
    """One window of a convolution: everything the stepper shows.

    Coordinates ``position``, ``rows`` and ``cols`` are in the *padded* input;
    subtract ``pad[0][0]`` / ``pad[1][0]`` to get image coordinates.
    """

    index: tuple[int, int]  # (oy, ox) output cell being written
    position: tuple[int, int]  # (y0, x0) top-left tap in the padded input
    pad: tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
    rows: np.ndarray  # (kh,) padded-input row of each tap
    cols: np.ndarray  # (kw,) padded-input column of each tap
    patch: np.ndarray  # (C, kh, kw) input values under the kernel
    kernel: np.ndarray  # (C, kh, kw) kernel as applied (flipped when flip=True)
    products: np.ndarray  # (C, kh, kw) patch * kernel
    partial_sums: np.ndarray  # (C,) sum of products per channel
    bias: float
    value: float  # partial_sums.sum() + bias, the output cell
    inside: np.ndarray  # (kh, kw) bool: tap lies on the real input, not on padding
    out_shape: tuple[int, int]  # (Ho, Wo)


@np.errstate(over="ignore", invalid="ignore")  # overflow is checked on the result
def _window(p: _Prepared, fi: int, oy: int, ox: int) -> ConvStep:
    """The arithmetic of one output cell, spelled out."""
    (sy, sx), (dy, dx) = p.stride, p.dilation
    kh, kw = p.w.shape[2:]
    rows = oy * sy + dy * np.arange(kh)
    cols = ox * sx + dx * np.arange(kw)
    patch = p.xp[:, rows[:, None], cols[None, :]]  # (C, kh, kw)
    kernel = p.w[fi]
    products = patch * kernel
    partial = products.sum(axis=(1, 2))
    bias = float(p.b[fi])
    value = float(partial.sum()) + bias
    (top, _), (left, _) = p.pad
    h, w = p.in_shape
    ry = (rows - top >= 0) & (rows - top < h)
    rx = (cols - left >= 0) & (cols - left < w)
    return ConvStep(
        index=(oy, ox),
        position=(int(rows[0]), int(cols[0])),
        pad=p.pad,
        rows=rows,
        cols=cols,
        patch=patch,
        kernel=kernel,
        products=products,
        partial_sums=partial,
        bias=bias,
        value=value,
        inside=ry[:, None] & rx[None, :],
        out_shape=p.out_shape,
    )


def conv2d_naive(
    x: np.ndarray,
    w: np.ndarray,
    b: float | np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: Padding = "valid",
    dilation: int | tuple[int, int] = 1,
    pad_mode: str = "zeros",
    flip: bool = False,
) -> np.ndarray:
    """:func:`conv2d` as a plain loop over output cells (the reference).

    Same arguments and result as :func:`conv2d`; slow, for tests and the stepper.

    >>> conv2d_naive([[1, 2], [3, 4]], [[1, 1], [1, 1]], 0.5).tolist()
    [[10.5]]
    """
    p = _prepare(x, w, b, stride, padding, dilation, pad_mode, flip)
    f = p.w.shape[0]
    ho, wo = p.out_shape
    out = np.empty((f, ho, wo), p.xp.dtype)
    for fi in range(f):
        for oy in range(ho):
            for ox in range(wo):
                out[fi, oy, ox] = _window(p, fi, oy, ox).value
    check_result(out, "conv2d_naive")
    return out[0] if p.single else out


def _single_output(p: _Prepared, name: str) -> None:
    if p.w.shape[0] != 1:
        raise CodedError("err.one_output_map", function=name, filters=p.w.shape[0])


def conv2d_steps(
    x: np.ndarray,
    w: np.ndarray,
    b: float | np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: Padding = "valid",
    dilation: int | tuple[int, int] = 1,
    pad_mode: str = "zeros",
    flip: bool = False,
) -> Iterator[ConvStep]:
    """Yield one :class:`ConvStep` per output cell, in raster order.

    Same arguments as :func:`conv2d`, for a single output map. Arguments are
    validated when this is called, not when the first step is taken.

    >>> steps = conv2d_steps([[1, 2, 3], [4, 5, 6]], [[1, 0], [0, 1]])
    >>> [(s.index, s.value) for s in steps]
    [((0, 0), 6.0), ((0, 1), 8.0)]
    """
    p = _prepare(x, w, b, stride, padding, dilation, pad_mode, flip)
    _single_output(p, "conv2d_steps")

    def gen() -> Iterator[ConvStep]:
        ho, wo = p.out_shape
        for oy in range(ho):
            for ox in range(wo):
                yield _window(p, 0, oy, ox)

    return gen()


def conv2d_step(
    x: np.ndarray,
    w: np.ndarray,
    b: float | np.ndarray | None = None,
    *,
    index: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: Padding = "valid",
    dilation: int | tuple[int, int] = 1,
    pad_mode: str = "zeros",
    flip: bool = False,
) -> ConvStep:
    """The :class:`ConvStep` for one output cell, without walking the others.

    ``index`` is ``(oy, ox)`` or a flat raster position.

    >>> conv2d_step([[1, 2, 3], [4, 5, 6]], [[1, 0], [0, 1]], index=1).value
    8.0
    """
    p = _prepare(x, w, b, stride, padding, dilation, pad_mode, flip)
    _single_output(p, "conv2d_step")
    oy, ox = flat_index(index, p.out_shape)
    step = _window(p, 0, oy, ox)
    check_result(np.asarray(step.value), "conv2d_step")
    return step
