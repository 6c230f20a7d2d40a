"""Layers of the NumPy CNN: forward and backward passes on NHWC batches.

Every layer follows one small protocol (see :class:`Layer`): ``build`` creates
the parameters from the input shape (batch axis excluded) and a seeded
``np.random.Generator``; ``forward(x, training)`` caches what ``backward`` needs;
``backward(dy)`` OVERWRITES ``grads`` (no accumulation) and returns ``dx``, or
``None`` when ``needs_input_grad`` is False (the first layer of a model, whose
input is the data, skips that work).

Parameters are float32 by default; :meth:`Layer.astype` switches a layer to
float64 for finite-difference gradient checks.

Layers never modify their inputs in place, so one array can feed several
layers (as in the residual and concatenation blocks).

Speed notes (see ``benchmarks/bench_train.py``): in TRAINING mode ``Conv2D``
and ``MaxPool2D`` return arrays that live in the layer's scratch memory
(:class:`~convviz.nn.functional.Workspace`) and are overwritten by the layer's
next training call (copy them to keep them); evaluation always returns fresh
arrays. When a ``Sequential`` holds ``Conv2D(..., activation="relu")`` followed
by ``MaxPool2D``, the pair is fused in training: the pool applies the ReLU to its
4x smaller output (``max`` and ``relu`` commute) and the conv computes only the
outputs some pooling window reads.
"""

from __future__ import annotations

import copy

import numpy as np

from convviz.nn import functional as F
from convviz.nn.init import get_initializer
from convviz.nn.losses import softmax
from convviz.shapes import as_pair, output_size

__all__ = [
    "LAYER_CLASSES",
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Rescaling",
    "Sigmoid",
    "Tanh",
    "assign_names",
    "layer_from_config",
]

Shape = tuple[int, ...]


class Layer:
    """Base class: a named transformation with parameters, gradients and buffers.

    Attributes
    ----------
    name : str or None
        Unique within a model (Keras style: ``conv2d``, ``conv2d_1``...); a
        :class:`~convviz.nn.model.Sequential` fills it in when left ``None``.
    params, grads : dict of str -> ndarray
        Trainable arrays and their gradients (same keys and shapes).
    buffers : dict of str -> ndarray
        Non-trainable state saved with the model (BatchNorm running statistics).
    output_shape : tuple of int
        Output shape without the batch axis, known after :meth:`build`.
    needs_input_grad : bool
        When False, :meth:`backward` returns ``None`` and skips computing ``dx``.
    """

    #: Base of the automatic name (``conv2d`` -> ``conv2d``, ``conv2d_1``, ...).
    default_name = "layer"
    #: Class name shown by ``Sequential.summary`` (Keras's name for the layer).
    keras_name = "Layer"

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.needs_input_grad = True
        self.dtype = np.dtype(np.float32)

    # -- protocol ---------------------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        """Create parameters for ``input_shape`` (no batch axis); return the output shape."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = self._build(self.input_shape, rng)
        for k, p in self.params.items():
            self.grads[k] = np.zeros_like(p)
        return self.output_shape

    def _build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    # -- bookkeeping ------------------------------------------------------------------------
    def count_params(self) -> int:
        """Number of weights, trainable and not (Keras counts BatchNorm moving stats)."""
        return int(sum(p.size for p in self.params.values()))

    def count_non_trainable_params(self) -> int:
        return int(sum(b.size for b in self.buffers.values()))

    def get_config(self) -> dict:
        """JSON-able constructor arguments (enough to rebuild the layer)."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**config)

    def to_spec(self) -> dict:
        """``{"class_name", "config"}``: what ``Sequential.save`` writes for this layer."""
        return {"class_name": type(self).__name__, "config": self.get_config()}

    def named_parameters(self, prefix: str = ""):
        """Yield ``("prefix<name>/<key>", param, grad)`` for every trainable array."""
        for key, p in self.params.items():
            yield f"{prefix}{self.name}/{key}", p, self.grads[key]

    def named_buffers(self, prefix: str = ""):
        for key, b in self.buffers.items():
            yield f"{prefix}{self.name}/{key}", b

    def replica(self) -> Layer:
        """A twin that SHARES this layer's params and buffers but has its own grads and caches.

        Used by :class:`~convviz.nn.model.Sequential` to run the halves of a batch
        in two threads; the model then sums the twins' grads.
        """
        twin = copy.copy(self)
        twin.grads = {k: np.zeros_like(g) for k, g in self.grads.items()}
        if hasattr(self, "_ws"):
            twin._ws = F.Workspace()
        if hasattr(self, "_cache"):
            twin._cache = None
        return twin

    def astype(self, dtype) -> Layer:
        """Cast parameters, gradients and buffers to ``dtype`` in place (returns ``self``)."""
        self.dtype = np.dtype(dtype)
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = d[k].astype(self.dtype)
        return self

    def _check_input(self, x: np.ndarray) -> None:
        if self.output_shape is None:
            raise ValueError(f"layer `{self.name}` must be built before it is called")
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"`x` must have shape (N, {', '.join(map(str, self.input_shape))}) "
                f"for layer `{self.name}`, got {x.shape}"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------------------ conv


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as every DL framework) on NHWC input.

    Parameters
    ----------
    filters : int
        Output channels ``F``.
    kernel_size : int or (int, int)
    strides : int or (int, int)
    padding : {"valid", "same"}
        "same" pads like TensorFlow (output ``ceil(n / s)``, odd pixel after).
    use_bias : bool
    activation : {None, "relu"}
        Fused ReLU, so the summary has one row per Keras layer.
    kernel_initializer : str
        One of :data:`convviz.nn.init.INITIALIZERS`.

    Notes
    -----
    Params: ``kernel`` (kh, kw, C, F) as Keras, ``bias`` (F,).
    ``Ho = floor((H + pt + pb - kh) / sh) + 1``.
    """

    default_name = "conv2d"
    keras_name = "Conv2D"

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] = 1,
        padding: str = "valid",
        use_bias: bool = True,
        activation: str | None = None,
        kernel_initializer: str = "glorot_uniform",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.filters = as_pair(filters, "filters")[0]
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        if padding not in ("valid", "same"):
            raise ValueError(f"`padding` must be 'valid' or 'same', got {padding!r}")
        self.padding = padding
        self.use_bias = bool(use_bias)
        if activation not in (None, "linear", "relu"):
            raise ValueError(f"`activation` must be None or 'relu', got {activation!r}")
        self.activation = None if activation == "linear" else activation
        get_initializer(kernel_initializer)
        self.kernel_initializer = kernel_initializer
        self._ws = F.Workspace()
        self._cache = None
        # Set by Sequential when a MaxPool2D follows: in training the pool applies
        # the ReLU on its 4x smaller output (max and ReLU commute) and masks the
        # gradient there, sparing two passes over this layer's output.
        self.defer_relu = False
        # Also set by Sequential: the (rows, cols) of the output that the MaxPool2D
        # above reads; a valid pool drops trailing ones, so training skips them.
        self.used_hw: tuple[int, int] | None = None
        # Also set by Sequential for a non-overlapping pool: (ph, pw, Hpool, Wpool). When
        # this layer needs no dx (first layer: its input is the data), training runs one
        # im2col + GEMM per pooling phase and takes the max of those, so the full-size
        # map is never built; the pool above then passes its input through.
        self.pool_fused: tuple[int, int, int, int] | None = None

    def get_config(self) -> dict:
        return {
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "use_bias": self.use_bias,
            "activation": self.activation,
            "kernel_initializer": self.kernel_initializer,
            "name": self.name,
        }

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"`input_shape` must be (H, W, C) for Conv2D, got {input_shape}")
        h, w, c = input_shape
        kh, kw = self.kernel_size
        sh, sw = self.strides
        self.pads = F.conv_padding(self.padding, (h, w), (kh, kw), (sh, sw))
        ho = output_size(h, kh, sh, self.pads[0])
        wo = output_size(w, kw, sw, self.pads[1])
        if ho < 1 or wo < 1:
            raise ValueError(f"`kernel_size` {self.kernel_size} is larger than the input {h}x{w}")
        init = get_initializer(self.kernel_initializer)
        self.params["kernel"] = init(
            rng, (kh, kw, c, self.filters), kh * kw * c, kh * kw * self.filters
        )
        if self.use_bias:
            self.params["bias"] = np.zeros(self.filters, np.float32)
        return (ho, wo, self.filters)

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        n = x.shape[0]
        kh, kw = self.kernel_size
        sh, sw = self.strides
        ho, wo, f = self.output_shape
        (t, b), (le, r) = self.pads
        if t or b or le or r:
            hp, wp = x.shape[1] + t + b, x.shape[2] + le + r
            # Training reuses scratch memory (the batch size is fixed); evaluation
            # allocates, so it can never clobber what a pending backward needs.
            shape = (n, hp, wp, x.shape[3])
            buf = self._ws.get("xp", shape, self.dtype, zero=True) if training else None
            xp = F.pad_nhwc(x, self.pads, out=buf)
        else:
            xp = x
        if training and self.pool_fused is not None and not self.needs_input_grad:
            return self._forward_pooled(xp, n, x.shape[3])
        if training and self.used_hw is not None:
            # Only the windows whose outputs the pool reads: (N, ho', wo', F).
            ho, wo = self.used_hw
            xp = xp[:, : (ho - 1) * sh + kh, : (wo - 1) * sw + kw]
        m, k = n * ho * wo, kh * kw * x.shape[3]
        buf = self._ws.get("cols", (m, k), self.dtype) if training else None
        cols = F.im2col(xp, kh, kw, sh, sw, out=buf)
        # In training the output is scratch too: the layers above consume it within the step.
        out = self._ws.get("y", (m, f), self.dtype) if training else None
        y = np.matmul(cols, self.params["kernel"].reshape(k, f), out=out)  # (N*Ho*Wo, F)
        if self.use_bias:
            y += self.params["bias"]
        relu_here = self.activation == "relu" and not (training and self.defer_relu)
        if relu_here:
            np.maximum(y, 0, out=y)
        if training:
            full = (n, x.shape[1] + t + b, x.shape[2] + le + r, x.shape[3])
            self._cache = (full, xp.shape, cols, y if relu_here else None)
        else:
            self._cache = None
        return y.reshape(n, ho, wo, f)

    def _forward_pooled(self, xp: np.ndarray, n: int, c: int) -> np.ndarray:
        """Training forward fused with max pooling and ReLU: (N, Hpool, Wpool, F)."""
        ph, pw, hpo, wpo = self.pool_fused
        kh, kw = self.kernel_size
        sh, sw = self.strides
        f = self.filters
        m, k = n * hpo * wpo, kh * kw * c
        w2 = self.params["kernel"].reshape(k, f)
        best = self._ws.get("y", (m, f), self.dtype)
        z = self._ws.get("z", (m, f), self.dtype)
        won = self._ws.get("won", (m, f), np.bool_)
        idx = self._ws.get("idx", (m, f), np.uint8)
        tag = self._ws.get("tag", (m, f), np.uint8)
        idx.fill(0)
        cols_list = []
        # Phase (a, b) holds the conv outputs at (ph*i + a, pw*j + b): a strided im2col.
        for a in range(ph):
            for b in range(pw):
                p = a * pw + b
                xs = xp[:, sh * a :, sw * b :]
                xs = xs[:, : (hpo - 1) * sh * ph + kh, : (wpo - 1) * sw * pw + kw]
                cols = F.im2col(
                    xs, kh, kw, sh * ph, sw * pw, out=self._ws.get(f"cols{p}", (m, k), self.dtype)
                )
                cols_list.append(cols)
                if p == 0:
                    np.matmul(cols, w2, out=best)
                    continue
                np.matmul(cols, w2, out=z)
                np.greater(z, best, out=won)  # strict: ties keep the first (raster) phase
                # idx = p where won: p exceeds every earlier index, so a max does it
                # without the branchy masked copy (np.copyto(where=) is 30x slower here).
                np.multiply(won, np.uint8(p), out=tag)
                np.maximum(idx, tag, out=idx)
                np.maximum(best, z, out=best)
        if self.use_bias:
            best += self.params["bias"]  # max(z + b) == max(z) + b per channel
        np.maximum(best, 0, out=best)
        self._cache = ("pooled", cols_list, idx, best)
        return best.reshape(n, hpo, wpo, f)

    def _backward_pooled(self, dy: np.ndarray) -> None:
        _, cols_list, idx, best = self._cache
        f = self.filters
        g = np.multiply(dy.reshape(-1, f), best > 0)  # ReLU mask on the pooled map
        dz = self._ws.get("z", g.shape, g.dtype)
        dk = self.grads["kernel"].reshape(-1, f)
        for p, cols in enumerate(cols_list):
            np.multiply(g, idx == p, out=dz)  # the gradient of the phase that won
            if p == 0:
                np.matmul(cols.T, dz, out=dk)
            else:
                dk += cols.T @ dz
        if self.use_bias:
            ones = self._ws.get("ones", (g.shape[0],), g.dtype)
            ones.fill(1)
            np.matmul(ones, g, out=self.grads["bias"])  # one winner per window
        return None

    def backward(self, dy):
        if self._cache is None:
            raise ValueError("`backward` needs a preceding `forward(x, training=True)`")
        if self._cache[0] == "pooled":
            return self._backward_pooled(dy)
        xp_shape, used_shape, cols, y = self._cache
        kh, kw = self.kernel_size
        f = self.filters
        dz = dy.reshape(-1, f)
        if y is not None:  # ReLU applied here (not deferred to the next MaxPool2D)
            dz = np.multiply(dz, y > 0)
        kernel = self.params["kernel"]
        np.matmul(cols.T, dz, out=self.grads["kernel"].reshape(-1, f))
        if self.use_bias:
            # A GEMV with a ones vector sums the rows faster than dz.sum(axis=0).
            ones = self._ws.get("ones", (dz.shape[0],), dz.dtype)
            ones.fill(1)
            np.matmul(ones, dz, out=self.grads["bias"])
        if not self.needs_input_grad:
            return None
        k = cols.shape[1]
        dcols = np.matmul(
            dz, kernel.reshape(k, f).T, out=self._ws.get("dcols", cols.shape, dz.dtype)
        )
        (t, b), (le, r) = self.pads
        # dx lives in scratch memory: it is consumed at once by the layer below.
        dxp = self._ws.get("dxp", xp_shape, dz.dtype)
        hu, wu = used_shape[1:3]
        F.col2im(dcols, used_shape, kh, kw, *self.strides, out=dxp[:, :hu, :wu])
        if (hu, wu) != tuple(xp_shape[1:3]):  # input the used windows never touch
            dxp[:, hu:] = 0
            dxp[:, :hu, wu:] = 0
        if t or b or le or r:
            return dxp[:, t : xp_shape[1] - b, le : xp_shape[2] - r, :]
        return dxp


# ---------------------------------------------------------------------------- pooling


class _Pool2D(Layer):
    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.pool_size = as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides")
        if padding != "valid":
            raise ValueError(f"`padding` must be 'valid' for pooling, got {padding!r}")
        self.padding = padding
        self._cache = None

    def get_config(self):
        return {
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "name": self.name,
        }

    def _build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ValueError(f"`input_shape` must be (H, W, C) for pooling, got {input_shape}")
        h, w, c = input_shape
        ho = output_size(h, self.pool_size[0], self.strides[0])
        wo = output_size(w, self.pool_size[1], self.strides[1])
        if ho < 1 or wo < 1:
            raise ValueError(f"`pool_size` {self.pool_size} is larger than the input {h}x{w}")
        return (ho, wo, c)


class MaxPool2D(_Pool2D):
    """Max pooling (valid padding; ``strides`` defaults to ``pool_size``, as Keras).

    Ties go to the first element of a window in raster order, as in PyTorch.
    """

    default_name = "max_pooling2d"
    keras_name = "MaxPooling2D"

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None) -> None:
        super().__init__(pool_size, strides, padding, name)
        self._ws = F.Workspace()

    #: Set by Sequential when the layer below is a Conv2D whose ReLU it takes over in training.
    relu_input = False

    @property
    def used_input_shape(self) -> tuple[int, int, int]:
        """The input rows/cols that some window reads (valid pooling drops the rest)."""
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        ho, wo, c = self.output_shape
        return ((ho - 1) * sh + ph, (wo - 1) * sw + pw, c)

    def forward(self, x, training=False):
        relu = training and self.relu_input
        if relu and x.shape[1:] == self.output_shape:
            self._cache = "passed"  # the conv below already pooled (Conv2D.pool_fused)
            return x
        if not relu or x.shape[1:] != self.used_input_shape:
            self._check_input(x)  # a fused conv may hand over just the rows/cols used
        x = np.asarray(x, self.dtype)
        y, cache = F.maxpool2d_forward(x, *self.pool_size, *self.strides, training=training)
        if relu:
            y = np.maximum(y, 0)  # relu(max(z)) == max(relu(z))
        self._cache = (cache, y if relu else None) if training else None
        return y

    def backward(self, dy):
        if self._cache is None:
            raise ValueError("`backward` needs a preceding `forward(x, training=True)`")
        if not self.needs_input_grad:
            return None
        if isinstance(self._cache, str):
            return dy
        cache, y = self._cache
        if y is not None:
            dy = dy * (y > 0)  # the ReLU of the conv below, on the pooled map
        out = self._ws.get("dx", cache[1], dy.dtype)  # scratch: consumed at once below
        n, _, _, c = cache[1]
        work = None
        if cache[0] == "fast":
            work = self._ws.get(
                "rows", (n, dy.shape[1] * self.pool_size[0], dy.shape[2], c), dy.dtype
            )
        return F.maxpool2d_backward(dy, cache, out=out, work=work)


class AvgPool2D(_Pool2D):
    """Average pooling (valid padding; ``strides`` defaults to ``pool_size``)."""

    default_name = "average_pooling2d"
    keras_name = "AveragePooling2D"

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        self._cache = x.shape
        return F.avgpool2d_forward(x, *self.pool_size, *self.strides)

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return F.avgpool2d_backward(dy, self._cache, *self.pool_size, *self.strides)


# ------------------------------------------------------------------------ activations


class ReLU(Layer):
    """``max(x, 0)``; the gradient at exactly 0 is 0 (as PyTorch)."""

    default_name = "re_lu"
    keras_name = "ReLU"

    def forward(self, x, training=False):
        self._check_input(x)
        y = np.maximum(np.asarray(x, self.dtype), 0)
        self._cache = y
        return y

    def backward(self, dy):
        return None if not self.needs_input_grad else dy * (self._cache > 0)


class LeakyReLU(Layer):
    """``x if x > 0 else alpha * x`` (``alpha`` defaults to 0.3, as Keras)."""

    default_name = "leaky_re_lu"
    keras_name = "LeakyReLU"

    def __init__(self, alpha: float = 0.3, name: str | None = None) -> None:
        super().__init__(name)
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"`alpha` must be a finite number >= 0, got {alpha!r}")
        self.alpha = float(alpha)

    def get_config(self):
        return {"alpha": self.alpha, "name": self.name}

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        self._cache = x > 0
        return np.where(self._cache, x, x * self.dtype.type(self.alpha))

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return np.where(self._cache, dy, dy * dy.dtype.type(self.alpha))


class Sigmoid(Layer):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` (Keras shows it as an ``Activation`` row)."""

    default_name = "activation"
    keras_name = "Activation"

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        # exp of a non-positive number only: no overflow for large |x|.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self._cache = y
        return y

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        y = self._cache
        return dy * y * (1 - y)


class Tanh(Layer):
    """Hyperbolic tangent (Keras shows it as an ``Activation`` row)."""

    default_name = "activation"
    keras_name = "Activation"

    def forward(self, x, training=False):
        self._check_input(x)
        y = np.tanh(np.asarray(x, self.dtype))
        self._cache = y
        return y

    def backward(self, dy):
        return None if not self.needs_input_grad else dy * (1 - self._cache * self._cache)


class Rescaling(Layer):
    """``y = x * scale + offset`` (Keras ``Rescaling``), e.g. to standardise [0, 1] pixels.

    >>> layer = Rescaling(2.0, offset=-1.0)
    >>> layer.build((2,), np.random.default_rng(0))
    (2,)
    >>> layer.forward(np.array([[0.0, 1.0]], np.float32))
    array([[-1.,  1.]], dtype=float32)
    """

    default_name = "rescaling"
    keras_name = "Rescaling"

    def __init__(self, scale: float, offset: float = 0.0, name: str | None = None) -> None:
        super().__init__(name)
        if not np.isfinite(scale) or scale == 0:
            raise ValueError(f"`scale` must be a finite non-zero number, got {scale!r}")
        if not np.isfinite(offset):
            raise ValueError(f"`offset` must be finite, got {offset!r}")
        self.scale = float(scale)
        self.offset = float(offset)

    def get_config(self):
        return {"scale": self.scale, "offset": self.offset, "name": self.name}

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        return x * self.dtype.type(self.scale) + self.dtype.type(self.offset)

    def backward(self, dy):
        return None if not self.needs_input_grad else dy * dy.dtype.type(self.scale)


class Identity(Layer):
    """Returns its input (the skip branch of a DenseNet concatenation)."""

    default_name = "identity"
    keras_name = "Identity"

    def forward(self, x, training=False):
        self._check_input(x)
        return np.asarray(x, self.dtype)

    def backward(self, dy):
        return None if not self.needs_input_grad else dy


# ----------------------------------------------------------------------------- dense


class Flatten(Layer):
    """``(N, H, W, C) -> (N, H*W*C)`` in C order (the order Keras uses for NHWC)."""

    default_name = "flatten"
    keras_name = "Flatten"

    def _build(self, input_shape, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._check_input(x)
        return np.asarray(x, self.dtype).reshape(x.shape[0], -1)

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return dy.reshape((dy.shape[0], *self.input_shape))


class Dense(Layer):
    """Fully connected layer ``y = x @ kernel + bias`` on ``(N, D)`` input.

    ``activation="softmax"`` is recorded for the summary (the Keras MNIST
    convnet ends in ``Dense(10, activation="softmax")``). When the layer is the
    last one of a :class:`~convviz.nn.model.Sequential`, the model sets
    ``logits_output`` and the forward returns LOGITS: the softmax then lives in
    the loss and in ``predict_proba``. Anywhere else a softmax is applied.

    Params: ``kernel`` (D, units), ``bias`` (units,).
    """

    default_name = "dense"
    keras_name = "Dense"

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.units = as_pair(units, "units")[0]
        if activation not in (None, "linear", "relu", "softmax"):
            raise ValueError(f"`activation` must be None, 'relu' or 'softmax', got {activation!r}")
        self.activation = None if activation == "linear" else activation
        self.use_bias = bool(use_bias)
        get_initializer(kernel_initializer)
        self.kernel_initializer = kernel_initializer
        self.logits_output = False
        self._cache = None

    def get_config(self):
        return {
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "name": self.name,
        }

    def _build(self, input_shape, rng):
        if len(input_shape) != 1:
            raise ValueError(
                f"`input_shape` must be (D,) for Dense (add a Flatten), got {input_shape}"
            )
        d = input_shape[0]
        init = get_initializer(self.kernel_initializer)
        self.params["kernel"] = init(rng, (d, self.units), d, self.units)
        if self.use_bias:
            self.params["bias"] = np.zeros(self.units, np.float32)
        return (self.units,)

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        y = x @ self.params["kernel"]
        if self.use_bias:
            y += self.params["bias"]
        if self.activation == "relu":
            np.maximum(y, 0, out=y)
        elif self.activation == "softmax" and not self.logits_output:
            y = softmax(y)
        self._cache = (x, y) if training else None
        return y

    def backward(self, dy):
        if self._cache is None:
            raise ValueError("`backward` needs a preceding `forward(x, training=True)`")
        x, y = self._cache
        if self.activation == "relu":
            dy = dy * (y > 0)
        elif self.activation == "softmax" and not self.logits_output:
            dy = y * (dy - (dy * y).sum(axis=1, keepdims=True))
        np.matmul(x.T, dy, out=self.grads["kernel"])
        if self.use_bias:
            self.grads["bias"][...] = dy.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return dy @ self.params["kernel"].T


class Dropout(Layer):
    """Inverted dropout: in training zero a fraction ``rate`` and scale the rest by ``1/(1-rate)``.

    Identity in evaluation. The mask comes from the layer's own Generator
    (``self.rng``, seeded from the model's seed at build time), so runs repeat.
    """

    default_name = "dropout"
    keras_name = "Dropout"

    def __init__(self, rate: float = 0.5, name: str | None = None) -> None:
        super().__init__(name)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"`rate` must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.rng = np.random.default_rng(0)
        self._mask = None

    def get_config(self):
        return {"rate": self.rate, "name": self.name}

    def replica(self) -> Layer:
        twin = super().replica()
        twin.rng = np.random.default_rng(self.rng.integers(2**63))  # own stream per thread
        twin._mask = None
        return twin

    def _build(self, input_shape, rng):
        self.rng = np.random.default_rng(rng.integers(2**63))
        return input_shape

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        self._mask = keep * self.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return dy if self._mask is None else dy * self._mask


class BatchNorm(Layer):
    """Batch normalisation over the last (channel) axis of ``(N, D)`` or ``(N, H, W, C)``.

    Training normalises with the batch mean and (biased) variance and updates
    ``moving = momentum * moving + (1 - momentum) * batch`` in ``buffers``;
    evaluation uses the moving statistics. Defaults as Keras (momentum 0.99,
    epsilon 1e-3); PyTorch's ``momentum`` is ``1 - momentum`` here.

    Params ``gamma``, ``beta`` (C,); buffers ``moving_mean``, ``moving_variance`` (C,),
    counted as non-trainable params in the summary.
    """

    default_name = "batch_normalization"
    keras_name = "BatchNormalization"

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, name: str | None = None):
        super().__init__(name)
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1], got {momentum!r}")
        if not float(epsilon) > 0.0:
            raise ValueError(f"`epsilon` must be > 0, got {epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self._cache = None

    def get_config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon, "name": self.name}

    def _build(self, input_shape, rng):
        if len(input_shape) not in (1, 3):
            raise ValueError(f"`input_shape` must be (D,) or (H, W, C), got {input_shape}")
        c = input_shape[-1]
        self.params["gamma"] = np.ones(c, np.float32)
        self.params["beta"] = np.zeros(c, np.float32)
        self.buffers["moving_mean"] = np.zeros(c, np.float32)
        self.buffers["moving_variance"] = np.ones(c, np.float32)
        return input_shape

    def count_params(self) -> int:
        return super().count_params() + self.count_non_trainable_params()

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        c = x.shape[-1]
        x2 = x.reshape(-1, c)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if training:
            mean = x2.mean(axis=0)
            xc = x2 - mean
            var = (xc * xc).mean(axis=0)
            inv_std = 1.0 / np.sqrt(var + self.dtype.type(self.epsilon))
            xhat = xc * inv_std
            m = self.dtype.type(self.momentum)
            for key, stat in (("moving_mean", mean), ("moving_variance", var)):
                buf = self.buffers[key]
                buf *= m
                buf += (1 - m) * stat
            self._cache = (xhat, inv_std)
        else:
            inv_std = 1.0 / np.sqrt(self.buffers["moving_variance"] + self.dtype.type(self.epsilon))
            xhat = (x2 - self.buffers["moving_mean"]) * inv_std
            self._cache = None
        return (xhat * gamma + beta).reshape(x.shape)

    def backward(self, dy):
        if self._cache is None:
            raise ValueError("`backward` needs a preceding `forward(x, training=True)`")
        xhat, inv_std = self._cache
        c = dy.shape[-1]
        dy2 = dy.reshape(-1, c)
        self.grads["beta"][...] = dy2.sum(axis=0)
        self.grads["gamma"][...] = (dy2 * xhat).sum(axis=0)
        if not self.needs_input_grad:
            return None
        m = dy2.shape[0]
        dxhat = dy2 * self.params["gamma"]
        dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).sum(axis=0) / m) * inv_std
        return dx.reshape(dy.shape)


LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        Conv2D,
        MaxPool2D,
        AvgPool2D,
        ReLU,
        LeakyReLU,
        Rescaling,
        Sigmoid,
        Tanh,
        Identity,
        Flatten,
        Dense,
        Dropout,
        BatchNorm,
    )
}


def layer_from_config(spec: dict) -> Layer:
    """Rebuild a layer from ``{"class_name": ..., "config": {...}}`` (see ``Sequential.save``)."""
    from convviz.nn import blocks  # blocks import layers: import here to stay acyclic

    classes = {**LAYER_CLASSES, **blocks.BLOCK_CLASSES}
    name = spec.get("class_name")
    if name not in classes:
        raise ValueError(f"`class_name` must be one of {sorted(classes)}, got {name!r}")
    return classes[name].from_config(spec.get("config", {}))


def assign_names(layers: list[Layer]) -> None:
    """Give unnamed layers Keras-style unique names: ``conv2d``, ``conv2d_1``, ...

    >>> ls = [Conv2D(4), MaxPool2D(), Conv2D(4), Dense(2, name="head")]
    >>> assign_names(ls)
    >>> [layer.name for layer in ls]
    ['conv2d', 'max_pooling2d', 'conv2d_1', 'head']
    """
    used = {layer.name for layer in layers if layer.name is not None}
    counts: dict[str, int] = {}
    for layer in layers:
        if layer.name is None:
            base = layer.default_name
            i = counts.get(base, 0)
            while (candidate := base if i == 0 else f"{base}_{i}") in used:
                i += 1
            layer.name = candidate
            used.add(candidate)
            counts[base] = i + 1
    names = [layer.name for layer in layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"layer `name`s must be unique, got duplicates {dupes}")
    for n in names:
        if not n or "/" in n:
            raise ValueError(f"layer `name` must be non-empty without '/', got {n!r}")
