"""The fast training path: the reference layers' numbers, computed faster (opt-in).

A :class:`FastPlan` runs a :class:`~convviz.nn.model.Sequential`'s training steps
and evaluation passes with the tricks that the readable layers in
:mod:`convviz.nn.layers` leave out. It owns all of them; the model and its
layers know nothing about it:

* **Scratch memory.** Training twins of ``Conv2D`` and ``MaxPool2D`` keep their
  im2col matrices, outputs and gradients in a :class:`Workspace` reused every
  step (a fixed batch size allocates nothing large after the first step).
  Their outputs are overwritten by the twin's next training call.
* **Conv + ReLU + max-pool fusion.** For ``Conv2D(..., activation="relu")``
  followed by ``MaxPool2D`` the pool applies the ReLU on its 4x smaller output
  (``max`` and ``relu`` commute), and the conv computes only the outputs some
  pooling window reads. When the conv needs no ``dx`` (the first layer: its
  input is the data) and the pool does not overlap, the conv runs one im2col +
  GEMM per pooling phase and keeps their maximum: the full-size map is never built.
* **Winograd F(2x2, 3x3)** for 3x3 stride-1 convs with an even (used) output,
  such as classic's conv2: its three GEMMs do 16/36 of im2col's multiply-adds,
  for a few add passes that transform the tiles (see :func:`_wino_input`).
  Rounding differs from the reference's by float32 round-off only. The tiles go
  through transforms and GEMMs in chunks of ~400 (each chunk's M is read back while
  still in the cache), and a 2x2 max-pool above takes each tile's four outputs as
  they are made: the tiles ARE its windows (classic's step: 8-10% faster each).
* **Batch slices on threads.** A batch is split into slices (16+ rows each), one
  per worker thread, each run by twins that share the model's weights
  (``Layer.replica``); the twins' gradients are summed into the model's, so the
  result is the full-batch gradient (up to float rounding order). NumPy and BLAS
  release the GIL, so two slices really run on two cores. Models with
  ``BatchNorm`` train on one thread (batch statistics need the whole batch)
  with multi-threaded BLAS instead; their evaluation (running statistics) is sliced.
* **BLAS thread control**: one OpenBLAS thread while slices run (see
  :func:`_blas_for` for why it then stays at one).

The gradients land in the model's own ``grads``, so an optimizer built on the
model steps it as usual. ``tests/test_nn_fast.py`` checks outputs and gradients
against the reference passes for every preset.

>>> from convviz.nn.presets import build_model
>>> model = build_model("tiny")
>>> plan = FastPlan(model)
>>> x = np.random.default_rng(0).random((40, 28, 28, 1), dtype=np.float32)
>>> bool(np.allclose(plan.forward(x), model.forward(x), atol=1e-5))
True
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convviz.nn import functional as F
from convviz.nn.layers import BatchNorm, Conv2D, Layer, MaxPool2D, walk_layers
from convviz.nn.losses import softmax_cross_entropy

__all__ = ["FastPlan", "Workspace", "blas_threads"]

_MIN_ROWS_PER_SLICE = 16  # below this, thread hand-off costs more than it saves
_SLICES_PER_WORKER = 1  # 2 (dynamic balancing under load) measured no better here
# Training slices of more rows than this are split further (more slices than workers,
# handed out one at a time), so a slice's scratch arrays stay nearer the core: classic
# at batch 256 on 2 workers trained 7-15% faster with slices of 32-64 rows than of 128
# (interleaved A/B; 16 rows lost 11% at batch 64 to per-slice overhead).
_MAX_TRAIN_ROWS_PER_SLICE = 64
_CACHE_BYTES = 1 << 20  # a core's L2 here: scratch blocks up to this size stay in cache


class Workspace:
    """Reusable scratch arrays, one per ``(tag, shape, dtype)``.

    The arrays are uninitialised on first use and keep whatever was last
    written to them, so callers either overwrite them fully or rely on parts
    they never write (the zero border of a padded input).
    """

    def __init__(self) -> None:
        self._arrays: dict[tuple, np.ndarray] = {}

    def get(self, tag: str, shape: tuple[int, ...], dtype: np.dtype, zero: bool = False):
        key = (tag, tuple(shape), np.dtype(dtype).str)
        arr = self._arrays.get(key)
        if arr is None:
            # Keep one size per tag: a new batch size replaces the old arrays.
            for old in [k for k in self._arrays if k[0] == tag]:
                del self._arrays[old]
            arr = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
            self._arrays[key] = arr
        return arr

    def clear(self) -> None:
        self._arrays.clear()

    @staticmethod
    def scratch(slot: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A transient array in this thread's scratch ``slot``, uninitialised.

        Every twin that runs on a thread shares that thread's slots, so the big arrays
        that live only during one op call (a GEMM's output before its transform, a
        gradient before its GEMM, one Winograd chunk's) take the same memory in every
        layer and chunk instead of each their own: classic's step at 32 rows kept 25 MB
        of scratch with one array per tag, 12 MB with slots and chunks. The array is valid
        until the next op asks for the same slot: arrays alive at the same time use
        different slots, and none outlives its call.
        """
        return _SCRATCH.get(slot, shape, dtype)


class _Scratch(threading.local):
    """Per-thread byte buffers behind :meth:`Workspace.scratch`; each grows to its largest use."""

    def __init__(self) -> None:
        self.buffers: dict[int, np.ndarray] = {}

    def get(self, slot: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        buf = self.buffers.get(slot)
        if buf is None or buf.nbytes < nbytes + 64:
            buf = self.buffers[slot] = np.empty(nbytes + 64, np.uint8)
        start = -buf.ctypes.data % 64  # cache-line aligned, as NumPy's own arrays
        return buf[start : start + nbytes].view(dtype).reshape(shape)


_SCRATCH = _Scratch()


# ------------------------------------------------------------------ training twins


class _Twin:
    """What a block needs from a child: the layer's name, params with our grads, no buffers."""

    def __init__(self, layer: Layer, grads: dict[str, np.ndarray]) -> None:
        self.layer = layer
        self.name = layer.name
        self.grads = grads
        self._ws = Workspace()
        self._cache = None

    @property
    def needs_input_grad(self) -> bool:
        return self.layer.needs_input_grad

    def named_parameters(self, prefix: str = ""):
        for key, p in self.layer.params.items():
            yield f"{prefix}{self.name}/{key}", p, self.grads[key]

    def named_buffers(self, prefix: str = ""):
        yield from self.layer.named_buffers(prefix)


class _FastConv(_Twin):
    """A Conv2D's training pass in scratch memory, optionally cropped and without its ReLU.

    ``relu=False`` leaves the ReLU to the max-pool above; ``used_hw`` (rows, cols)
    computes only the outputs that pool reads (valid pooling drops trailing ones).
    """

    def __init__(
        self, layer: Conv2D, grads, relu: bool = True, used_hw=None, pool: MaxPool2D | None = None
    ) -> None:
        super().__init__(layer, grads)
        self.relu = relu and layer.activation == "relu"
        self.used_hw = used_hw
        # A 2x2 stride-2 max-pool (with the ReLU) above: Winograd's 2x2 output tiles are
        # its windows, so the pool is taken on the tiles' four outputs as they are made.
        # The im2col path runs the pool's own twin after the conv instead.
        self.pool = None if pool is None else _FastMaxPool(pool, relu=True)

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        layer = self.layer
        if not training:
            return layer.forward(x, False)
        layer._check_input(x)
        x = np.asarray(x, layer.dtype)  # (N, H, W, C)
        n, h, w, c = x.shape
        kh, kw = layer.kernel_size
        sh, sw = layer.strides
        ho, wo, f = layer.output_shape
        (t, b), (le, r) = layer.pads
        xp = x
        if t or b or le or r:
            buf = self._ws.get("xp", (n, h + t + b, w + le + r, c), x.dtype, zero=True)
            xp = F.pad_nhwc(x, layer.pads, out=buf)  # (N, Hp, Wp, C)
        full_shape = xp.shape
        if self.used_hw is not None:
            ho, wo = self.used_hw  # only the windows whose outputs the pool reads
            xp = xp[:, : (ho - 1) * sh + kh, : (wo - 1) * sw + kw]
        m, k = n * ho * wo, kh * kw * c
        bias = layer.params["bias"] if layer.use_bias else None
        if _winograd_fits(layer, ho, wo) and m >= _WINOGRAD_MIN_ROWS:
            u = _wino_kernel(layer.params["kernel"], self._ws)
            th, tw = ho // 2, wo // 2
            v = self._ws.get("v", (4, 4, n, th, tw, c), x.dtype)  # kept for dU
            if self.pool is None:
                y = self._ws.get("y", (m, f), x.dtype)  # (N*Ho*Wo, F)
                y6 = _tiles(y.reshape(n, ho, wo, f), writeable=True)
            else:  # the pooled map and, per window, which of its four outputs won
                best = self._ws.get("best", (n * th * tw, f), x.dtype)
                idx = self._ws.get("idx", (n * th * tw, f), np.uint8)
            for i, j in _wino_chunks(n, th * tw):  # transforms, GEMMs, transforms
                vc = _wino_input(xp[i:j], out=v[:, :, i:j])  # (16, tiles, C)
                mm = np.matmul(vc, u, out=self._ws.scratch(0, (16, vc.shape[1], f), x.dtype))
                if self.pool is None:
                    _wino_output(mm, bias, y6[:, :, i:j])
                else:
                    rows = slice(i * th * tw, j * th * tw)
                    outs = Workspace.scratch(3, (2, 2, j - i, th, tw, f), x.dtype)
                    _wino_output(mm, bias, outs)  # the four outputs [r, s] of each tile
                    _max_over_phases(outs.reshape(4, -1, f), best[rows], idx[rows])
            cols = (v, u)
            if self.pool is not None:
                np.maximum(best, 0, out=best)  # relu(max(z)) == max(relu(z))
                self._cache = (full_shape, xp.shape, cols, None, (best, idx))
                return best.reshape(n, th, tw, f)
        else:
            y = self._ws.get("y", (m, f), x.dtype)  # (N*Ho*Wo, F)
            cols = F.im2col(xp, kh, kw, sh, sw, out=self._ws.get("cols", (m, k), x.dtype))
            np.matmul(cols, layer.params["kernel"].reshape(k, f), out=y)
            if bias is not None:
                y += bias
        if self.relu:
            np.maximum(y, 0, out=y)
        self._cache = (full_shape, xp.shape, cols, y if self.relu else None, None)
        if self.pool is not None:  # (im2col) the pool's own twin, on the conv's output
            return self.pool.forward(y.reshape(n, ho, wo, f))
        return y.reshape(n, ho, wo, f)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        layer = self.layer
        full_shape, used_shape, cols, y, pooled = self._cache
        kh, kw = layer.kernel_size
        f = layer.filters
        if self.pool is not None and pooled is None:
            dy = self.pool.backward(dy)  # (im2col) back through the pool's own twin
        dz = dy.reshape(-1, f)  # (N*Ho*Wo, F), or pooled (N*Th*Tw, F)
        if y is not None:
            dz = np.multiply(dz, y > 0)
        kernel = layer.params["kernel"]
        # dx lives in scratch memory: it is consumed at once by the layer below.
        dxp = self._ws.get("dxp", full_shape, dz.dtype) if layer.needs_input_grad else None
        hu, wu = used_shape[1:3]
        if isinstance(cols, tuple):  # Winograd: the GEMMs in the transformed domain
            self._wino_backward(dz, (hu - 2, wu - 2), cols, dxp, pooled)
        else:
            np.matmul(cols.T, dz, out=self.grads["kernel"].reshape(-1, f))
            if layer.use_bias:
                _sum_rows(dz, self.grads["bias"], self._ws)
        if not layer.needs_input_grad:
            return None
        (t, b), (le, r) = layer.pads
        if isinstance(cols, tuple):  # Winograd's dx is in dxp already
            pass
        elif tuple(layer.strides) == (1, 1):
            _input_grad_by_taps(dz, kernel, used_shape, dxp[:, :hu, :wu], self._ws)
        else:
            dcols = np.matmul(
                dz, kernel.reshape(-1, f).T, out=self._ws.scratch(0, cols.shape, dz.dtype)
            )
            F.col2im(dcols, used_shape, kh, kw, *layer.strides, out=dxp[:, :hu, :wu])
        if (hu, wu) != tuple(full_shape[1:3]):  # input the used windows never touch
            dxp[:, hu:] = 0
            dxp[:, :hu, wu:] = 0
        if t or b or le or r:
            return dxp[:, t : full_shape[1] - b, le : full_shape[2] - r, :]
        return dxp

    def _wino_backward(self, dz, hw, cols: tuple, dxp, pooled) -> None:
        """Kernel and bias grads, and ``dx`` into ``dxp`` (if given), chunk by chunk.

        ``dz`` is (N*Ho*Wo, F), the gradient of the outputs ``hw`` = (Ho, Wo); or, with
        ``pooled`` = (pooled map, winners), (N*Th*Tw, F) of the pooled map. Each chunk's
        ``dM`` feeds its three uses while it is still in the cache.
        """
        v, u = cols  # (4, 4, N, Th, Tw, C), (16, C, F)
        n, th, tw, c = v.shape[2:]
        ho, wo = hw
        f = dz.shape[1]
        if pooled is None:
            g6 = _tiles(dz.reshape(n, ho, wo, f))
        else:
            best, idx = pooled
            dz = np.multiply(dz, best > 0)  # the ReLU, on the pooled map
            order = np.arange(4, dtype=np.uint8)[:, None, None]
        du = self._ws.get("du", u.shape, dz.dtype)
        part = self._ws.get("du_part", u.shape, dz.dtype)
        bias = self.grads.get("bias") if self.layer.use_bias else None
        for i, j in _wino_chunks(n, th * tw):
            if pooled is None:
                dm = _wino_output_adjoint(g6[:, :, i:j])  # (16, tiles, F)
            else:  # each window's gradient goes to the output that won it
                rows = slice(i * th * tw, j * th * tw)
                won = Workspace.scratch(2, (4, (j - i) * th * tw, f), np.bool_)
                np.equal(idx[rows], order, out=won)
                gy = Workspace.scratch(1, (2, 2, j - i, th, tw, f), dz.dtype)
                np.multiply(dz[rows], won, out=gy.reshape(4, -1, f))
                dm = _wino_output_adjoint(gy)
            vc = v[:, :, i:j].reshape(16, -1, c)
            np.matmul(vc.transpose(0, 2, 1), dm, out=du if i == 0 else part)
            if bias is not None:  # frequency (1, 1) sums each tile's four outputs
                _sum_rows(dm[5], bias, self._ws, add=i > 0)
            if i > 0:
                du += part
            if dxp is not None:
                dv = np.matmul(
                    dm, u.transpose(0, 2, 1), out=self._ws.scratch(1, vc.shape, dz.dtype)
                )  # (16, tiles, C)
                _wino_input_adjoint(dv, (j - i, ho + 2, wo + 2, c), dxp[i:j, : ho + 2, : wo + 2])
        _wino_kernel_adjoint(du, self.grads["kernel"])


def _sum_rows(rows: np.ndarray, out: np.ndarray, ws: Workspace, add: bool = False) -> None:
    """``out = rows.sum(axis=0)`` (``+=`` if ``add``): a GEMV with ones, faster than ``sum``."""
    ones = ws.get("ones", (rows.shape[0],), rows.dtype)
    ones.fill(1)
    if add:
        out += ones @ rows
    else:
        np.matmul(ones, rows, out=out)


# ------------------------------------------------------------ Winograd F(2x2, 3x3)
#
# A 3x3 stride-1 convolution computed on 2x2 output tiles (Lavin & Gray, "Fast
# Algorithms for Convolutional Neural Networks", 2015): each tile's 4x4 input patch d
# and the kernel g are transformed, V = B^T d B and U = G g G^T (4x4 per channel),
# the 16 "frequencies" are 16 independent GEMMs M = V @ U over the channels, and
# y = A^T M A gives the tile's 2x2 outputs. The GEMMs do 16/36 of the multiply-adds
# of im2col's; the transforms are a few adds. The backward passes are the adjoints:
# dM = A dY A^T, dU = V^T dM (then dg = G^T dU G), dV = dM U^T (then B dV B^T summed
# back into the overlapping patches).

_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
# Fewer output positions than this take the im2col path: its 16 GEMMs get small, and an
# unsliced batch (classic at batch 16: 1,600 positions) runs them with 2 BLAS threads,
# where im2col measured 1.05x base and Winograd 0.92x (interleaved, one process).
_WINOGRAD_MIN_ROWS = 2048
# A layer's tiles go through the transforms and GEMMs in chunks of about this many, so
# each chunk's M and dM (16 x tiles x F floats: 1.6 MB on classic's conv2) are still in
# the cache when the next stage reads them.
_WINO_CHUNK_TILES = 400


def _winograd_fits(layer: Conv2D, ho: int, wo: int) -> bool:
    """Whether :func:`_wino_input` & co compute this conv: 3x3, stride 1, even output."""
    return (
        tuple(layer.kernel_size) == (3, 3)
        and tuple(layer.strides) == (1, 1)
        and ho % 2 == 0
        and wo % 2 == 0
    )


def _wino_kernel(kernel: np.ndarray, ws: Workspace) -> np.ndarray:
    """``U = G g G^T`` for every (C, F) pair: ``(16, C, F)`` from ``kernel`` (3, 3, C, F)."""
    _, _, c, f = kernel.shape
    g = np.asarray(_G, kernel.dtype)
    gg = np.matmul(g, kernel.reshape(3, 3 * c * f)).reshape(4, 3, c * f)  # G g
    u = ws.get("u", (16, c, f), kernel.dtype)
    np.matmul(g, gg, out=u.reshape(4, 4, c * f))  # (G g) G^T
    return u


def _wino_kernel_adjoint(du: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``dg = G^T dU G``: ``out`` (3, 3, C, F) from ``du`` (16, C, F)."""
    _, c, f = du.shape
    g = np.asarray(_G, du.dtype)
    t = np.matmul(g.T, du.reshape(4, 4, c * f))  # (4, 3, C*F): dU G
    np.matmul(g.T, t.reshape(4, 3 * c * f), out=out.reshape(3, 3 * c * f))  # G^T (dU G)
    return out


def _wino_chunks(n: int, tiles: int) -> list[tuple[int, int]]:
    """Near-equal image ranges ``(i, j)`` over ``n`` images of ``tiles`` tiles each, about
    :data:`_WINO_CHUNK_TILES` tiles in each range."""
    k = max(1, round(n * tiles / _WINO_CHUNK_TILES))
    edges = np.linspace(0, n, min(k, n) + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _wino_input(xu: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``V = B^T d B`` of every 4x4 patch at stride 2: ``(16, N*Th*Tw, C)`` from ``xu``.

    ``xu`` (N, 2*Th + 2, 2*Tw + 2, C) is the input the outputs read; frequency
    ``(i, j)`` is row ``4*i + j``; ``out`` (4, 4, N, Th, Tw, C) receives V (a view of
    a bigger array is fine). The rows' stage runs on whole input rows (patches
    overlap by two columns: 12 columns instead of 5 patches x 4 on classic's conv2).
    """
    n, hu, wu, c = xu.shape
    th, tw = (hu - 2) // 2, (wu - 2) // 2
    r = [xu[:, k : k + 2 * th : 2] for k in range(4)]  # patch row k of each tile row
    t = Workspace.scratch(1, (4, n, th, wu, c), xu.dtype)  # B^T d: rows transformed
    np.subtract(r[0], r[2], out=t[0])
    np.add(r[1], r[2], out=t[1])
    np.subtract(r[2], r[1], out=t[2])
    np.subtract(r[1], r[3], out=t[3])
    cl = [t[:, :, :, k : k + 2 * tw : 2] for k in range(4)]  # (4, N, Th, Tw, C) each
    v = out  # (B^T d) B: columns too
    np.subtract(cl[0], cl[2], out=v[:, 0])
    np.add(cl[1], cl[2], out=v[:, 1])
    np.subtract(cl[2], cl[1], out=v[:, 2])
    np.subtract(cl[1], cl[3], out=v[:, 3])
    return v.reshape(16, n * th * tw, c)


def _tiles(a: np.ndarray, writeable: bool = False) -> np.ndarray:
    """``a`` (N, 2*Th, 2*Tw, F) as ``(2, 2, N, Th, Tw, F)``: [r, s] = a[:, r::2, s::2]."""
    n, h, w, f = a.shape
    s0, s1, s2, s3 = a.strides
    return as_strided(
        a, (2, 2, n, h // 2, w // 2, f), (s1, s2, s0, 2 * s1, 2 * s2, s3), writeable=writeable
    )


def _wino_output(m: np.ndarray, bias: np.ndarray | None, y: np.ndarray) -> np.ndarray:
    """``A^T M A`` (+ bias) into ``y`` (2, 2, N, Th, Tw, F) from ``m`` (16, tiles, F).

    ``y[r, s]`` is output ``(r, s)`` of every 2x2 tile: a :func:`_tiles` view of the
    output map, or separate planes for the max-pool above.
    """
    n, th, tw, f = y.shape[2:]
    m6 = m.reshape(4, 4, n, th, tw, f)
    if bias is not None:
        m6[1, 1] += bias  # A^T e11 A is all ones: the bias reaches all four outputs
    r = Workspace.scratch(2, (2, 4, n, th, tw, f), m.dtype)  # A^T M: rows
    np.add(m6[0], m6[1], out=r[0])
    r[0] += m6[2]
    np.subtract(m6[1], m6[2], out=r[1])
    r[1] -= m6[3]
    np.add(r[:, 0], r[:, 1], out=y[:, 0])  # (A^T M) A: columns
    y[:, 0] += r[:, 2]
    np.subtract(r[:, 1], r[:, 2], out=y[:, 1])
    y[:, 1] -= r[:, 3]
    return y


def _wino_output_adjoint(g: np.ndarray) -> np.ndarray:
    """``dM = A dY A^T``: ``(16, tiles, F)`` from ``g`` (2, 2, N, Th, Tw, F), dY per tile."""
    n, th, tw, f = g.shape[2:]
    dm = Workspace.scratch(0, (4, 4, n, th, tw, f), g.dtype)
    r = dm[0::3]  # dY A^T lands in frequencies 0 and 3, the rows' stage reads it there
    np.copyto(r[:, 0], g[:, 0])
    np.add(g[:, 0], g[:, 1], out=r[:, 1])
    np.subtract(g[:, 0], g[:, 1], out=r[:, 2])
    np.negative(g[:, 1], out=r[:, 3])
    np.add(dm[0], dm[3], out=dm[1])
    np.subtract(dm[0], dm[3], out=dm[2])
    np.negative(dm[3], out=dm[3])
    return dm.reshape(16, -1, f)


def _wino_input_adjoint(dv: np.ndarray, used_shape: tuple, out: np.ndarray) -> np.ndarray:
    """``dx`` into ``out`` (N, Hu, Wu, C): ``B dV B^T`` of each patch, summed where they overlap.

    Columns first: each patch's 4 columns go to its tile's 2 and the next tile's 2
    (one assignment, then adds); then the rows the same way, into ``out``.
    """
    n, hu, wu, c = used_shape
    th, tw = (hu - 2) // 2, (wu - 2) // 2
    v = dv.reshape(4, 4, n, th, tw, c)
    q = Workspace.scratch(2, (4, n, th, wu, c), dv.dtype)  # per row frequency, columns summed
    tmp = Workspace.scratch(3, (4, n, th, tw, c), dv.dtype)
    e, o = q[:, :, :, 0 : 2 * tw : 2], q[:, :, :, 1 : 2 * tw : 2]  # this tile's columns
    np.copyto(e, v[:, 0])  # B's column 0: (1, 0, 0, 0)
    np.subtract(v[:, 1], v[:, 2], out=o)  # column 1: (0, 1, -1, 1)
    o += v[:, 3]
    q[:, :, :, 2 * tw :] = 0
    np.add(v[:, 1], v[:, 2], out=tmp)  # column 2: (-1, 1, 1, 0), to the next tile
    tmp -= v[:, 0]
    q[:, :, :, 2::2] += tmp
    q[:, :, :, 3::2] -= v[:, 3]  # column 3: (0, 0, 0, -1)
    rtmp = Workspace.scratch(4, (n, th, wu, c), dv.dtype)
    np.copyto(out[:, 0 : 2 * th : 2], q[0])
    np.subtract(q[1], q[2], out=out[:, 1 : 2 * th : 2])
    out[:, 1 : 2 * th : 2] += q[3]
    out[:, 2 * th :] = 0
    np.add(q[1], q[2], out=rtmp)
    rtmp -= q[0]
    out[:, 2::2] += rtmp
    out[:, 3::2] -= q[3]
    return out


def _input_grad_by_taps(
    dz: np.ndarray, kernel: np.ndarray, used_shape: tuple, out: np.ndarray, ws: Workspace
) -> np.ndarray:
    """``dx`` of a stride-1 convolution, one GEMM per kernel tap, into ``out`` (N, Hu, Wu, C).

    The same sum as ``col2im(dz @ kernel.reshape(-1, F).T)``, laid out so the scatter is
    cheap: tap ``(i, j)``'s GEMM gives a contiguous ``(N, Ho, Wo, C)`` block added at
    offset ``(i, j)``. col2im instead gathers C-float runs a window apart: on classic's
    conv2 (batch 64, one thread) its GEMM + col2im took 11.5 ms, this 6.5 ms
    (``benchmarks/profile_train.py``). Blocks that all fit in a core's cache come from one
    stacked GEMM call; bigger ones go one tap at a time through one buffer, added right
    after its GEMM wrote it, so the add reads it from the cache (classic's conv2, 32
    rows: the same time on a quiet machine, 1.85 instead of 2.7 ms under load, when
    other processes evict the 3.7 MB stack). ``dz`` is ``(N*Ho*Wo, F)``, ``kernel``
    ``(kh, kw, C, F)``.
    """
    n, hu, wu, c = used_shape
    kh, kw, _, f = kernel.shape
    ho, wo = hu - kh + 1, wu - kw + 1
    taps = kh * kw
    wt = ws.get("wtaps", (taps, f, c), dz.dtype)
    np.copyto(wt, kernel.reshape(taps, c, f).transpose(0, 2, 1))
    small = taps * dz.shape[0] * c * dz.itemsize <= _CACHE_BYTES
    if small:  # all blocks from one GEMM call: fewer NumPy calls (less GIL hand-off)
        blocks = ws.scratch(0, (taps, dz.shape[0], c), dz.dtype)
        np.matmul(dz, wt, out=blocks)
        blocks = blocks.reshape(taps, n, ho, wo, c)
    else:
        tap = ws.scratch(0, (dz.shape[0], c), dz.dtype)
        block = tap.reshape(n, ho, wo, c)
    for p in range(taps):
        i, j = divmod(p, kw)
        if small:
            block = blocks[p]
        else:
            np.matmul(dz, wt[p], out=tap)
        if p == 0:
            out[:, :ho, :wo] = block  # the first tap assigns: zero only what it misses
            out[:, ho:] = 0
            out[:, :ho, wo:] = 0
        else:
            out[:, i : i + ho, j : j + wo] += block
    return out


class _FastMaxPool(_Twin):
    """A MaxPool2D's training pass with its ``dx`` in scratch memory.

    ``relu=True``: it also applies the ReLU of the conv below (which skipped it)
    and takes the rows/cols that conv computed (only those its windows read).
    """

    def __init__(self, layer: MaxPool2D, relu: bool = False) -> None:
        super().__init__(layer, {})
        self.relu = relu

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        layer = self.layer
        if not training:
            return layer.forward(x, False)
        if not self.relu:
            layer._check_input(x)
        x = np.asarray(x, layer.dtype)
        y, cache = F.maxpool2d_forward(x, *layer.pool_size, *layer.strides, training=True)
        if self.relu:
            y = np.maximum(y, 0)  # relu(max(z)) == max(relu(z))
        self._cache = (cache, y if self.relu else None)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        cache, y = self._cache
        if not self.layer.needs_input_grad:
            return None
        if y is not None:
            dy = dy * (y > 0)  # the ReLU of the conv below, on the pooled map
        x_shape = cache[1]
        out = self._ws.get("dx", x_shape, dy.dtype)  # scratch: consumed at once below
        work = None
        if cache[0] == "fast":
            n, _, _, c = x_shape
            rows = (n, dy.shape[1] * self.layer.pool_size[0], dy.shape[2], c)
            work = self._ws.scratch(0, rows, dy.dtype)
        return F.maxpool2d_backward(dy, cache, out=out, work=work)


class _FastConvPool(_Twin):
    """``Conv2D(relu)`` + non-overlapping ``MaxPool2D`` in one training op, without ``dx``.

    Phase ``p = a*pw + b`` of the pooling holds the conv outputs at ``(ph*i + a, pw*j + b)``.
    The im2col rows of all phases are stacked in one ``(phases, M, K [+1])`` matrix (a
    column of ones carries the bias), so the forward is one GEMM and a running max over
    the phases, and the backward one mask pass and one GEMM that gives the kernel and
    bias gradients together. Output ``(N, Hpool, Wpool, F)``. Only for a conv that needs
    no ``dx``. On classic's first conv (32 rows, one thread) it takes the time one GEMM
    per phase took (1.1 ms forward + backward) in ~20 NumPy calls instead of ~70: less
    GIL hand-off between the slices' threads.
    """

    def __init__(self, conv: Conv2D, pool: MaxPool2D, grads) -> None:
        super().__init__(conv, grads)
        self.pool = pool

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        conv = self.layer
        conv._check_input(x)
        x = np.asarray(x, conv.dtype)  # (N, H, W, C)
        n, h, w, c = x.shape
        (t, b), (le, r) = conv.pads
        xp = x
        if t or b or le or r:
            buf = self._ws.get("xp", (n, h + t + b, w + le + r, c), x.dtype, zero=True)
            xp = F.pad_nhwc(x, conv.pads, out=buf)
        ph, pw = self.pool.pool_size
        hpo, wpo, f = self.pool.output_shape
        kh, kw = conv.kernel_size
        sh, sw = conv.strides
        phases, m, k = ph * pw, n * hpo * wpo, kh * kw * c
        bias = int(conv.use_bias)
        # cols[p, row, :k] = window of phase p's output `row`; cols[..., k] = 1 (the bias).
        cols = self._ws.get("cols", (phases, m, k + bias), x.dtype)
        if bias:
            cols[..., k] = 1
        s0, s1, s2, s3 = xp.strides
        win = as_strided(
            xp,
            shape=(ph, pw, n, hpo, wpo, kh, kw, c),
            strides=(s1 * sh, s2 * sw, s0, s1 * sh * ph, s2 * sw * pw, s1, s2, s3),
            writeable=False,
        )
        dst = cols[..., :k].reshape(win.shape)  # a view: only split axes
        assert np.may_share_memory(dst, cols)
        if c == 1:  # per-tap copies move long runs; the 8-D copy would move kw floats
            for i in range(kh):
                for j in range(kw):
                    dst[..., i, j, :] = win[..., i, j, :]
        else:
            np.copyto(dst, win)
        wk = self._ws.get("w", (k + bias, f), x.dtype)
        wk[:k] = conv.params["kernel"].reshape(k, f)
        if bias:
            wk[k] = conv.params["bias"]
        z = self._ws.scratch(0, (phases, m, f), x.dtype)
        np.matmul(cols.reshape(phases * m, k + bias), wk, out=z.reshape(phases * m, f))
        best = self._ws.get("y", (m, f), x.dtype)
        idx = self._ws.get("idx", (m, f), np.uint8)
        _max_over_phases(z, best, idx)
        np.maximum(best, 0, out=best)  # relu(max(z)) == max(relu(z))
        self._cache = (cols, idx, best)
        return best.reshape(n, hpo, wpo, f)

    def backward(self, dy: np.ndarray) -> None:
        cols, idx, best = self._cache
        phases, m, kb = cols.shape
        f = self.layer.filters
        g = self._ws.scratch(2, (m, f), best.dtype)
        np.multiply(dy.reshape(m, f), best > 0, out=g)  # ReLU mask on the pooled map
        won = self._ws.scratch(1, (phases, m, f), np.bool_)
        np.equal(idx, np.arange(phases, dtype=np.uint8)[:, None, None], out=won)
        dz = self._ws.scratch(0, (phases, m, f), g.dtype)
        np.multiply(g, won, out=dz)  # each window's gradient to the phase that won
        gk = self._ws.get("gw", (kb, f), g.dtype)
        np.matmul(cols.reshape(phases * m, kb).T, dz.reshape(phases * m, f), out=gk)
        k = self.grads["kernel"].size // f
        self.grads["kernel"].reshape(k, f)[...] = gk[:k]
        if self.layer.use_bias:
            self.grads["bias"][...] = gk[k]  # the ones column: one winner per window
        return None


def _max_over_phases(z: np.ndarray, best: np.ndarray, idx: np.ndarray) -> None:
    """``best`` = the max of ``z`` (phases, M, F) over its phases; ``idx`` the first that
    has it (ties keep the first in raster order, as the reference pool). Scratch slots 1
    and 2 (``z`` must not be in them)."""
    phases = z.shape[0]
    if phases == 1:
        np.copyto(best, z[0])
        idx.fill(0)
        return
    np.greater(z[1], z[0], out=idx.view(np.bool_))  # strict: ties keep phase 0
    np.maximum(z[0], z[1], out=best)
    won = Workspace.scratch(1, best.shape, np.bool_)
    tag = Workspace.scratch(2, best.shape, np.uint8)
    for p in range(2, phases):
        np.greater(z[p], best, out=won)  # strict: ties keep the first (raster) phase
        # idx = p where won: p exceeds every earlier index, so a max does it
        # without the branchy masked copy (np.copyto(where=) is 30x slower here).
        np.multiply(won, np.uint8(p), out=tag)
        np.maximum(idx, tag, out=idx)
        np.maximum(best, z[p], out=best)


def _pool_reads(pool: MaxPool2D) -> tuple[int, int]:
    """The input (rows, cols) that some window of a valid ``pool`` reads."""
    (ph, pw), (sh, sw) = pool.pool_size, pool.strides
    ho, wo, _ = pool.output_shape
    return ((ho - 1) * sh + ph, (wo - 1) * sw + pw)


def _grads(layer: Layer, own: bool) -> dict[str, np.ndarray]:
    return {k: np.zeros_like(g) for k, g in layer.grads.items()} if own else layer.grads


def _twin(layer: Layer, own: bool):
    """The training twin of one layer (``own``: its own grads, for a slice other than the first)."""
    if isinstance(layer, Conv2D):
        return _FastConv(layer, _grads(layer, own))
    if isinstance(layer, MaxPool2D):
        return _FastMaxPool(layer)
    if hasattr(layer, "map_children"):  # a block: the same block around twins of its children
        return layer.map_children(lambda child: _twin(child, own))
    return layer.replica() if own else layer


def _training_chain(layers: list[Layer], own: bool) -> list:
    """Twins for one slice of a training batch; a conv(relu) + max-pool pair is fused."""
    chain: list = []
    i = 0
    while i < len(layers):
        conv, pool = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        fuse = (
            isinstance(conv, Conv2D) and conv.activation == "relu" and isinstance(pool, MaxPool2D)
        )
        if not fuse:
            chain.append(_twin(conv, own))
            i += 1
            continue
        if not conv.needs_input_grad and pool.pool_size == pool.strides != (1, 1):
            chain.append(_FastConvPool(conv, pool, _grads(conv, own)))
        elif tuple(pool.pool_size) == tuple(pool.strides) == (2, 2):  # one op, see _FastConv
            used = _pool_reads(pool)
            crop = used if used != conv.output_shape[:2] else None
            chain.append(_FastConv(conv, _grads(conv, own), relu=False, used_hw=crop, pool=pool))
        else:
            used = _pool_reads(pool)
            crop = used if used != conv.output_shape[:2] else None
            chain.append(_FastConv(conv, _grads(conv, own), relu=False, used_hw=crop))
            chain.append(_FastMaxPool(pool, relu=True))
        i += 2
    return chain


def _forward_chain(chain, x: np.ndarray, training: bool) -> np.ndarray:
    for op in chain:
        x = op.forward(x, training)
    return x


def _backward_chain(chain, d: np.ndarray):
    for op in reversed(chain):
        d = op.backward(d)
    return d


def _chain_parameters(chain) -> list:
    return [t for op in chain for t in op.named_parameters()]


# ------------------------------------------------------------------------- the plan


class FastPlan:
    """Training and evaluation passes of ``model``, fused and threaded; same results.

    Parameters
    ----------
    model : Sequential
        Its weights are shared (not copied) and its ``grads`` receive the gradients.
    workers : int or None
        Threads per pass (default: 2 if the machine has 2+ cores; 1: no threads).

    ``forward(x, training)`` returns the logits ``(N, classes)`` and
    ``backward(dlogits)`` fills the model's grads, as ``Sequential`` does. The
    plan rebuilds its twins by itself when the model's parameters are replaced
    (``astype``) or ``input_grad`` changes.
    """

    def __init__(self, model, workers: int | None = None) -> None:
        if workers is None:
            workers = min(2, os.cpu_count() or 1)
        if isinstance(workers, bool) or int(workers) < 1:
            raise ValueError(f"`workers` must be >= 1, got {workers}")
        self.model = model
        self.workers = int(workers)
        self._batchnorm = any(isinstance(layer, BatchNorm) for layer in walk_layers(model.layers))
        self._chains: dict[tuple[bool, int], list[list]] = {}
        self._key: tuple = ()
        self._last: tuple[list[list], list[int]] | None = None

    def _get_chains(self, training: bool, k: int) -> list[list]:
        m = self.model
        key = (m.dtype, m.input_grad, tuple(id(p) for _, p, _ in m.parameters()))
        if key != self._key:  # new arrays (astype) or new dx needs: start over
            self._chains.clear()
            self._key = key
        chains = self._chains.get((training, k))
        if chains is None:
            if training:
                chains = [_training_chain(m.layers, own=i > 0) for i in range(k)]
            else:
                chains = [m.layers] + [
                    [layer.replica() for layer in m.layers] for _ in range(k - 1)
                ]
            self._chains[(training, k)] = chains
        return chains

    def _slices(self, n: int, training: bool, workers: int | None = None) -> int:
        workers = self.workers if workers is None else workers
        if workers < 2 or n < 2 * _MIN_ROWS_PER_SLICE:
            return 1
        if training and self._batchnorm:
            return 1  # batch statistics need the whole batch (evaluation uses running ones)
        k = min(_SLICES_PER_WORKER * workers, n // _MIN_ROWS_PER_SLICE)
        if training:
            k = max(k, -(-n // _MAX_TRAIN_ROWS_PER_SLICE))
        return k

    def forward(
        self, x: np.ndarray, training: bool = False, workers: int | None = None
    ) -> np.ndarray:
        """Logits ``(N, classes)`` for ``x`` (N, H, W, C), as ``model.forward`` computes them.

        ``workers`` overrides the plan's thread count for this pass (and its backward):
        :class:`convviz.nn.parallel.ProcessPlan` runs each process's half on one.
        """
        workers = self.workers if workers is None else int(workers)
        h = self.model.prepare(x)
        k = self._slices(len(h), training, workers)
        chains = self._get_chains(training, k)
        self._last = None
        if k == 1:
            if workers > 1 and len(h) >= 2 * _MIN_ROWS_PER_SLICE:
                _blas_for(workers)  # a big batch that cannot be sliced (BatchNorm)
            out = _forward_chain(chains[0], h, training)
            sizes = [len(h)]
        else:
            sizes = [len(part) for part in np.array_split(np.empty(len(h)), k)]
            starts = np.cumsum([0, *sizes])
            outs = _run_slices(
                lambda i: _forward_chain(chains[i], h[starts[i] : starts[i + 1]], training),
                k,
                workers,
            )
            out = np.concatenate(outs)
        if training:
            self._last = (chains, sizes, workers)
        return out

    __call__ = forward

    def train_step(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """``forward(x, True)``, softmax cross-entropy on ``labels``, ``backward``: the
        trainer's step before its update. Returns ``(mean loss, logits)``."""
        logits = self.forward(x, training=True)
        loss, d = softmax_cross_entropy(logits, labels)
        self.backward(d)
        return loss, logits

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        """Fill the model's ``grads`` from ``dlogits`` (N, classes); ``dx`` if ``input_grad``."""
        if self._last is None:
            raise ValueError("`backward` needs a preceding `forward(x, training=True)`")
        chains, sizes, workers = self._last
        d = np.asarray(dlogits, self.model.dtype)
        if len(d) != sum(sizes):
            raise ValueError(f"`dlogits` must have {sum(sizes)} rows, got {len(d)}")
        if len(chains) == 1:
            dx = _backward_chain(chains[0], d)
            return None if dx is None else np.array(dx, copy=True)  # not our scratch memory
        starts = np.cumsum([0, *sizes])
        dxs = _run_slices(
            lambda i: _backward_chain(chains[i], d[starts[i] : starts[i + 1]]),
            len(chains),
            workers,
        )
        # The full-batch gradient is the sum of the slices' gradients.
        mine = self.model.parameters()
        for chain in chains[1:]:
            for (_, _, g), (_, _, g_twin) in zip(mine, _chain_parameters(chain), strict=True):
                g += g_twin
        return None if dxs[0] is None else np.concatenate(dxs)


# ------------------------------------------------------------------ threads and BLAS

# Worker threads shared by every plan (numpy and BLAS release the GIL, so two
# half-batches really run on two cores).
_POOL: list[tuple[int, ThreadPoolExecutor]] = []  # (max_workers, executor)
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL or _POOL[0][0] < workers - 1:
            pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="convviz-nn")
            _POOL[:] = [(workers - 1, pool)]
        return _POOL[0][1]


def _blas_for(threads: int) -> None:
    """Give OpenBLAS ``threads`` threads, touching the setting only when it changes.

    Why not set 1 around each sliced pass and restore after: every raise of the
    count wakes OpenBLAS's worker thread, which then spin-waits for work that
    never comes. Measured on this 2-core machine (classic, batch 64): that
    spinning burnt 0.2-0.4 of a core and cost about 7% of the training
    throughput headless, more with a browser and a server on the same cores.
    So the count stays where the last pass needed it: 1 while models train in
    slices (the usual case), ``workers`` for a big unsliceable batch.
    """
    if blas_threads() not in (0, threads):
        blas_threads(threads)


def _run_slices(fn, k: int, workers: int) -> list:
    """``[fn(0), ..., fn(k-1)]`` computed by the calling thread and ``workers - 1`` pool threads.

    Slices are handed out one at a time, so a thread that gets less CPU (the
    machine is shared) simply takes fewer of them. BLAS is single-threaded
    meanwhile (and stays so afterwards, see :func:`_blas_for`).
    """
    results: list = [None] * k
    todo = iter(range(k))
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            results[i] = fn(i)

    _blas_for(1)
    futures = []
    for _ in range(min(workers, k) - 1):
        try:
            futures.append(_pool(workers).submit(drain))
        except RuntimeError:  # the interpreter is exiting (pools shut down): go on alone
            break
    drain()
    for f in futures:
        f.result()
    return results


def _find_openblas():
    """ctypes handles to the running OpenBLAS's get/set-threads functions, or ``None``."""
    import ctypes

    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:  # not Linux: leave BLAS alone
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return None


_BLAS: list = []


def blas_threads(n: int | None = None) -> int:
    """Get (and with ``n``, set) numpy's OpenBLAS thread count; returns the previous count.

    The setting is process-wide. Passes that split the batch over threads set 1
    BLAS thread and leave it so (restoring it wakes OpenBLAS's spin-waiting
    worker, see :func:`_blas_for`). Returns 0 and does nothing when numpy's BLAS
    is not an OpenBLAS found at run time.
    """
    if not _BLAS:
        _BLAS.append(_find_openblas())
    handles = _BLAS[0]
    if handles is None:
        return 0
    get, put = handles
    old = int(get())
    if n is not None:
        if int(n) < 1:
            raise ValueError(f"`n` must be >= 1, got {n}")
        put(int(n))
    return old
