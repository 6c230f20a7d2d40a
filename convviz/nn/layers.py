"""Layers of the NumPy CNN: the reference forward and backward passes on NHWC batches.

This is the readable path: every layer computes what it says in a few lines of
NumPy, and nothing outside a layer changes how it computes. The fused,
multi-threaded training path lives apart in :mod:`convviz.nn.fast` and is
tested against these layers.

Every layer follows one small protocol (see :class:`Layer`): ``build`` creates
the parameters from the input shape (batch axis excluded) and a seeded
``np.random.Generator``; ``forward(x, training)`` caches what ``backward`` needs
(only when ``training``); ``backward(dy)`` OVERWRITES ``grads`` (no accumulation)
and returns ``dx``, or ``None`` when ``needs_input_grad`` is False (the first
layer of a model, whose input is the data, skips that work).

Shapes: images are ``(N, H, W, C)`` (batch, rows, columns, channels), vectors
``(N, D)``. Parameters are float32 by default; :meth:`Layer.astype` switches a
layer to float64 for finite-difference gradient checks.

Layers never modify their inputs in place, so one array can feed several
layers (as in the residual and concatenation blocks).
"""

from __future__ import annotations

import copy

import numpy as np

from convviz.activations import softmax
from convviz.nn import functional as F
from convviz.nn.init import get_initializer
from convviz.nn.registry import register
from convviz.shapes import as_pair, output_size

__all__ = [
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
    "walk_layers",
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
        When False, :meth:`backward` returns ``None`` and skips computing ``dx``
        (the model sets it: only layers above something that learns need ``dx``).
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
        self._cache = None

    # -- protocol ---------------------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator | None) -> Shape:
        """Create parameters for ``input_shape`` (no batch axis); return the output shape.

        With ``rng=None`` the weights start as zeros, which costs no memory until
        written (``load_model`` builds that way, then copies the saved weights).
        """
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = self._build(self.input_shape, rng)
        for k, p in self.params.items():
            self.grads[k] = np.zeros_like(p)
        return self.output_shape

    def _build(self, input_shape: Shape, rng: np.random.Generator | None) -> Shape:
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
        """A twin that SHARES this layer's params and buffers but has its own grads and cache.

        :mod:`convviz.nn.fast` runs the slices of a batch on twins in several
        threads and then sums their grads.
        """
        twin = copy.copy(self)
        twin.grads = {k: np.zeros_like(g) for k, g in self.grads.items()}
        twin._cache = None
        return twin

    def astype(self, dtype) -> Layer:
        """Cast parameters, gradients and buffers to ``dtype`` in place (returns ``self``)."""
        self.dtype = np.dtype(dtype)
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = d[k].astype(self.dtype)
        return self

    def _weight(self, rng, shape: Shape, fan_in: int, fan_out: int) -> np.ndarray:
        """A new float32 kernel from ``self.kernel_initializer``, or zeros without ``rng``."""
        if rng is None:
            return np.zeros(shape, np.float32)
        return get_initializer(self.kernel_initializer)(rng, shape, fan_in, fan_out)

    def _check_input(self, x: np.ndarray) -> None:
        if self.output_shape is None:
            raise ValueError(f"layer `{self.name}` must be built before it is called")
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"`x` must have shape (N, {', '.join(map(str, self.input_shape))}) "
                f"for layer `{self.name}`, got {x.shape}"
            )

    def _need_cache(self) -> object:
        if self._cache is None:
            raise ValueError("`backward` needs a preceding `forward(x, training=True)`")
        return self._cache

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------------------ conv


@register
class Conv2D(Layer):
    """2-D convolution (cross-correlation, as every DL framework) on NHWC input.

    Parameters
    ----------
    filters : int
        Output channels ``F``.
    kernel_size : int or (int, int)
        ``(kh, kw)``.
    strides : int or (int, int)
        ``(sh, sw)``.
    padding : {"valid", "same"}
        "same" pads like TensorFlow (output ``ceil(n / s)``, odd pixel after).
    use_bias : bool
    activation : {None, "relu"}
        Fused ReLU, so the summary has one row per Keras layer.
    kernel_initializer : str
        One of :data:`convviz.nn.init.INITIALIZERS`.

    Notes
    -----
    Params: ``kernel`` (kh, kw, C, F) as Keras, ``bias`` (F,). Input
    ``(N, H, W, C)``, output ``(N, Ho, Wo, F)`` with
    ``Ho = floor((H + pt + pb - kh) / sh) + 1`` (``pt``, ``pb``: padding rows
    above and below), and the same for ``Wo``.

    The forward is one im2col (every window of the padded input as a row) and
    one matrix product with the kernel; the backward is the same two steps
    transposed. :meth:`forward_naive` and :meth:`_backward_naive` compute the
    same numbers with loops, one window at a time.

    Examples
    --------
    >>> conv = Conv2D(2, 3, name="c")
    >>> conv.build((5, 5, 1), np.random.default_rng(0))
    (3, 3, 2)
    >>> x = np.random.default_rng(1).random((4, 5, 5, 1), dtype=np.float32)
    >>> bool(np.allclose(conv.forward(x), conv.forward_naive(x), atol=1e-6))
    True
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
        #: ((top, bottom), (left, right)) zero rows/columns added around the input.
        self.pads = F.conv_padding(self.padding, (h, w), (kh, kw), (sh, sw))
        ho = output_size(h, kh, sh, self.pads[0])
        wo = output_size(w, kw, sw, self.pads[1])
        if ho < 1 or wo < 1:
            raise ValueError(f"`kernel_size` {self.kernel_size} is larger than the input {h}x{w}")
        fan_in, fan_out = kh * kw * c, kh * kw * self.filters
        self.params["kernel"] = self._weight(rng, (kh, kw, c, self.filters), fan_in, fan_out)
        if self.use_bias:
            self.params["bias"] = np.zeros(self.filters, np.float32)
        return (ho, wo, self.filters)

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)  # (N, H, W, C)
        kh, kw = self.kernel_size
        ho, wo, f = self.output_shape
        xp = F.pad_nhwc(x, self.pads)  # (N, Hp, Wp, C)
        cols = F.im2col(xp, kh, kw, *self.strides)  # (N*Ho*Wo, kh*kw*C)
        y = cols @ self.params["kernel"].reshape(-1, f)  # (N*Ho*Wo, F)
        if self.use_bias:
            y += self.params["bias"]
        if self.activation == "relu":
            np.maximum(y, 0, out=y)  # in place: one pass less over the largest array
        self._cache = (xp.shape, cols, y) if training else None
        return y.reshape(x.shape[0], ho, wo, f)  # (N, Ho, Wo, F)

    def backward(self, dy):
        xp_shape, cols, y = self._need_cache()
        kernel = self.params["kernel"]  # (kh, kw, C, F)
        f = self.filters
        dz = dy.reshape(-1, f)  # (N*Ho*Wo, F)
        if self.activation == "relu":
            dz = dz * (y > 0)
        self.grads["kernel"][...] = (cols.T @ dz).reshape(kernel.shape)  # (kh, kw, C, F)
        if self.use_bias:
            self.grads["bias"][...] = dz.sum(axis=0)  # (F,)
        if not self.needs_input_grad:
            return None
        dcols = dz @ kernel.reshape(-1, f).T  # (N*Ho*Wo, kh*kw*C)
        dxp = F.col2im(dcols, xp_shape, *self.kernel_size, *self.strides)  # (N, Hp, Wp, C)
        (t, _), (le, _) = self.pads
        h, w = self.input_shape[:2]
        return dxp[:, t : t + h, le : le + w, :]  # (N, H, W, C): the padding has no gradient

    # -- the same, with loops ---------------------------------------------------------------
    def forward_naive(self, x: np.ndarray) -> np.ndarray:
        """What :meth:`forward` returns, one output value at a time (slow; for reading)."""
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        kh, kw = self.kernel_size
        sh, sw = self.strides
        kernel = self.params["kernel"]  # (kh, kw, C, F)
        bias = self.params.get("bias", np.zeros(self.filters, self.dtype))
        xp = F.pad_nhwc(x, self.pads)  # (N, Hp, Wp, C)
        n, (ho, wo, f) = len(x), self.output_shape
        y = np.zeros((n, ho, wo, f), self.dtype)
        for i in range(n):
            for oy in range(ho):
                for ox in range(wo):
                    window = xp[i, oy * sh : oy * sh + kh, ox * sw : ox * sw + kw, :]  # (kh,kw,C)
                    for k in range(f):
                        y[i, oy, ox, k] = np.sum(window * kernel[:, :, :, k]) + bias[k]
        return np.maximum(y, 0) if self.activation == "relu" else y

    def _backward_naive(self, x: np.ndarray, dy: np.ndarray):
        """Gradients by loops: ``(dx, {"kernel": dkernel, "bias": dbias})`` for input ``x``.

        Each output value was ``sum(window * kernel[..., k]) + bias[k]``, so its
        gradient ``g`` flows back as ``g * window`` into the kernel, ``g * kernel``
        into the window of the input, and ``g`` into the bias. Leaves ``grads`` alone.
        """
        x = np.asarray(x, self.dtype)
        kh, kw = self.kernel_size
        sh, sw = self.strides
        kernel = self.params["kernel"]  # (kh, kw, C, F)
        dz = np.array(dy, self.dtype)  # (N, Ho, Wo, F)
        if self.activation == "relu":
            dz *= self.forward_naive(x) > 0
        xp = F.pad_nhwc(x, self.pads)  # (N, Hp, Wp, C)
        dxp = np.zeros_like(xp)
        dkernel = np.zeros_like(kernel)
        n, (ho, wo, f) = len(x), self.output_shape
        for i in range(n):
            for oy in range(ho):
                for ox in range(wo):
                    ys = slice(oy * sh, oy * sh + kh)  # the window's rows ...
                    xs = slice(ox * sw, ox * sw + kw)  # ... and columns in xp
                    for k in range(f):
                        g = dz[i, oy, ox, k]
                        dkernel[:, :, :, k] += g * xp[i, ys, xs, :]
                        dxp[i, ys, xs, :] += g * kernel[:, :, :, k]
        (t, _), (le, _) = self.pads
        h, w = self.input_shape[:2]
        grads = {"kernel": dkernel}
        if self.use_bias:
            grads["bias"] = dz.sum(axis=(0, 1, 2))
        return dxp[:, t : t + h, le : le + w, :], grads


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


@register
class MaxPool2D(_Pool2D):
    """Max pooling (valid padding; ``strides`` defaults to ``pool_size``, as Keras).

    ``(N, H, W, C) -> (N, Ho, Wo, C)`` with ``Ho = floor((H - ph) / sh) + 1``.
    Ties go to the first element of a window in raster order, as in PyTorch, so
    exactly one input per window receives the gradient.
    """

    default_name = "max_pooling2d"
    keras_name = "MaxPooling2D"

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)  # (N, H, W, C)
        y, self._cache = F.maxpool2d_forward(x, *self.pool_size, *self.strides, training=training)
        return y  # (N, Ho, Wo, C)

    def backward(self, dy):
        cache = self._need_cache()
        if not self.needs_input_grad:
            return None
        return F.maxpool2d_backward(dy, cache)  # (N, H, W, C)


@register
class AvgPool2D(_Pool2D):
    """Average pooling (valid padding; ``strides`` defaults to ``pool_size``).

    ``(N, H, W, C) -> (N, Ho, Wo, C)``; each input gets ``1 / (ph * pw)`` of the
    gradient of every window that holds it.
    """

    default_name = "average_pooling2d"
    keras_name = "AveragePooling2D"

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        self._cache = x.shape if training else None
        return F.avgpool2d_forward(x, *self.pool_size, *self.strides)

    def backward(self, dy):
        x_shape = self._need_cache()
        if not self.needs_input_grad:
            return None
        return F.avgpool2d_backward(dy, x_shape, *self.pool_size, *self.strides)


# ------------------------------------------------------------------------ activations


@register
class ReLU(Layer):
    """``max(x, 0)``; the gradient at exactly 0 is 0 (as PyTorch)."""

    default_name = "re_lu"
    keras_name = "ReLU"

    def forward(self, x, training=False):
        self._check_input(x)
        y = np.maximum(np.asarray(x, self.dtype), 0)
        self._cache = y if training else None
        return y

    def backward(self, dy):
        return None if not self.needs_input_grad else dy * (self._need_cache() > 0)


@register
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
        positive = x > 0
        self._cache = positive if training else None
        return np.where(positive, x, x * self.dtype.type(self.alpha))

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return np.where(self._need_cache(), dy, dy * dy.dtype.type(self.alpha))


@register
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
        self._cache = y if training else None
        return y

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        y = self._need_cache()
        return dy * y * (1 - y)


@register
class Tanh(Layer):
    """Hyperbolic tangent (Keras shows it as an ``Activation`` row)."""

    default_name = "activation"
    keras_name = "Activation"

    def forward(self, x, training=False):
        self._check_input(x)
        y = np.tanh(np.asarray(x, self.dtype))
        self._cache = y if training else None
        return y

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        y = self._need_cache()
        return dy * (1 - y * y)


@register
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


@register
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


@register
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


@register
class Dense(Layer):
    """Fully connected layer ``y = x @ kernel + bias``: ``(N, D) -> (N, units)``.

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
        self.params["kernel"] = self._weight(rng, (d, self.units), d, self.units)
        if self.use_bias:
            self.params["bias"] = np.zeros(self.units, np.float32)
        return (self.units,)

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)  # (N, D)
        y = x @ self.params["kernel"]  # (N, units)
        if self.use_bias:
            y += self.params["bias"]
        if self.activation == "relu":
            np.maximum(y, 0, out=y)
        elif self.activation == "softmax" and not self.logits_output:
            y = softmax(y)
        self._cache = (x, y) if training else None
        return y

    def backward(self, dy):
        x, y = self._need_cache()
        if self.activation == "relu":
            dy = dy * (y > 0)
        elif self.activation == "softmax" and not self.logits_output:
            dy = y * (dy - (dy * y).sum(axis=1, keepdims=True))
        np.matmul(x.T, dy, out=self.grads["kernel"])  # (D, units), written in place
        if self.use_bias:
            self.grads["bias"][...] = dy.sum(axis=0)
        if not self.needs_input_grad:
            return None
        return dy @ self.params["kernel"].T  # (N, D)


@register
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

    def get_config(self):
        return {"rate": self.rate, "name": self.name}

    def replica(self) -> Layer:
        twin = super().replica()
        twin.rng = np.random.default_rng(self.rng.integers(2**63))  # own stream per thread
        return twin

    def _build(self, input_shape, rng):
        if rng is not None:
            self.rng = np.random.default_rng(rng.integers(2**63))
        return input_shape

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        if not training or self.rate == 0.0:
            self._cache = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        self._cache = keep * self.dtype.type(1.0 / (1.0 - self.rate))  # the mask
        return x * self._cache

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return dy if self._cache is None else dy * self._cache


@register
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
        x2 = x.reshape(-1, c)  # (M, C): every pixel of every image is one sample
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
        xhat, inv_std = self._need_cache()
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


def walk_layers(layers):
    """Every layer of ``layers``, blocks' children right after their block (depth first).

    Parameters come in this order in ``Sequential.parameters()``.
    """
    for layer in layers:
        yield layer
        if hasattr(layer, "children"):
            yield from walk_layers(layer.children())


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
        if not isinstance(n, str) or not n or "/" in n:
            raise ValueError(f"layer `name` must be non-empty without '/', got {n!r}")
