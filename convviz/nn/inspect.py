"""Looking inside a trained :class:`~convviz.nn.model.Sequential`, one digit at a time.

What the "Inside the network" page shows, computed on the reference layers:

* :func:`predict_digit`, :func:`activations`: the ten probabilities and every layer's output;
* :func:`conv_cell`, :func:`filter_map`: the arithmetic of one output cell of a conv
  layer (window, kernel slice, per-input-channel partial sums, their total, bias,
  activation) and the whole map filled cell by cell, checked against the network's own;
* :func:`dense_contributions`: the class logit of the dense head as ``bias + sum(w * x)``;
* :func:`saliency`, :func:`occlusion`: what the class score depends on;
* :func:`surgery`, :func:`edited_kernel`, :func:`evaluate_slice` and
  :class:`SurgeryBench`: a copy of the model with one kernel changed, and its accuracy
  on a fixed slice of the test set.

Nothing here writes to the model it is given (weights, gradients, caches): every pass
runs on twins that share its weights (:meth:`Layer.replica`), and :func:`surgery`
returns a copy. Layer indices are positions in ``model.layers`` (the top level: a conv
inside a Residual or Concat block is not addressable). Errors a person can cause raise
:class:`~convviz.errors.CodedError` (``err.inspect.*``, domain ``inside_core``); their
parameters are numbers and shapes, never names read from a model file.

Layouts: a digit is ``(1, 28, 28, 1)`` (also accepted: ``(28, 28)``, ``(28, 28, 1)``,
``(1, 28, 28)``); a layer's maps are ``(H, W, C)`` (NHWC without the batch axis); the
cell arithmetic is channels-first ``(C, kh, kw)``, as :class:`convviz.conv.ConvStep`.
The nn :class:`~convviz.nn.layers.Conv2D` has strides and "valid"/"same" padding but no
dilation (its taps are adjacent).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from convviz.activations import softmax
from convviz.conv import ConvStep
from convviz.errors import CodedError
from convviz.nn import functional as F
from convviz.nn.blocks import _Block
from convviz.nn.data import load_mnist, to_batch
from convviz.nn.fast import FastPlan
from convviz.nn.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Identity,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Rescaling,
    Sigmoid,
    Tanh,
)
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.model import Sequential
from convviz.nn.registry import layer_from_config
from convviz.nn.train import NUM_CLASSES, Evaluation, evaluate_set
from convviz.shapes import check_integer, shown

__all__ = [
    "SLICE_SIZE",
    "ConvCell",
    "DenseContributions",
    "FilterMap",
    "LayerOutput",
    "Occlusion",
    "Prediction",
    "SurgeryBench",
    "activations",
    "as_digit",
    "conv_cell",
    "conv_layers",
    "copy_model",
    "dense_contributions",
    "edited_kernel",
    "evaluate_slice",
    "filter_map",
    "layer_input",
    "learned_kernel",
    "occlusion",
    "predict_digit",
    "saliency",
    "surgery",
    "test_slice",
]

#: Images in the fixed test slice that kernel surgery is scored on (the first of the test set).
SLICE_SIZE = 2000


# ------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LayerOutput:
    """One layer's output for one digit."""

    index: int  # position in model.layers
    name: str  # the layer's name (from the model: data, show with st.text/st.code)
    class_name: str  # Keras's class name: "Conv2D", "MaxPooling2D", "Dense", ...
    output: np.ndarray  # (H, W, C) maps or (D,) vector, the model's dtype, no batch axis


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one digit, and every layer's output on the way."""

    logits: np.ndarray  # (classes,) float64
    probs: np.ndarray  # (classes,) float64 softmax of logits, sums to 1
    label: int  # argmax
    layers: tuple[LayerOutput, ...]  # one per layer of model.layers, in order


@dataclass(frozen=True)
class ConvCell:
    """The arithmetic of one output cell of one filter of a conv layer, in float64.

    ``total = partial_sums.sum()``, ``pre_activation = total + bias`` and
    ``value = activation(pre_activation)``: the layer's output at ``index`` for
    channel ``filter`` (to float32 rounding). Coordinates ``position``, ``rows`` and
    ``cols`` are in the padded input; subtract ``pad[0][0]`` / ``pad[1][0]`` for
    input coordinates.
    """

    layer_index: int
    filter: int
    index: tuple[int, int]  # (row, col) output cell
    position: tuple[int, int]  # (y0, x0) top-left tap in the padded input
    pad: tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
    stride: tuple[int, int]
    rows: np.ndarray  # (kh,) padded-input row of each tap
    cols: np.ndarray  # (kw,) padded-input column of each tap
    window: np.ndarray  # (C, kh, kw) input values under the kernel (0 on padding)
    kernel: np.ndarray  # (C, kh, kw) the filter's kernel
    products: np.ndarray  # (C, kh, kw) window * kernel
    partial_sums: np.ndarray  # (C,) sum of the products of each input channel
    total: float  # partial_sums.sum()
    bias: float
    pre_activation: float  # total + bias
    activation: str  # "relu" or "none": the layer's own activation
    value: float  # activation(pre_activation): the cell of the layer's output
    inside: np.ndarray  # (kh, kw) bool: the tap lies on the input, not on padding
    out_shape: tuple[int, int]  # (Ho, Wo)

    def step(self) -> ConvStep:
        """The same numbers as a :class:`convviz.conv.ConvStep` (before the activation).

        Its ``value`` is ``pre_activation``; the stepper widget applies ``activation``.
        """
        return ConvStep(
            index=self.index,
            position=self.position,
            pad=self.pad,
            rows=self.rows,
            cols=self.cols,
            patch=self.window,
            kernel=self.kernel,
            products=self.products,
            partial_sums=self.partial_sums,
            bias=self.bias,
            value=self.pre_activation,
            inside=self.inside,
            out_shape=self.out_shape,
        )


@dataclass(frozen=True)
class FilterMap:
    """One filter's map filled cell by cell (:func:`conv_cell`) beside the network's own."""

    stepped: np.ndarray  # (Ho, Wo) float64: conv_cell(...).value for every cell
    network: np.ndarray  # (Ho, Wo) the layer's output channel, the model's dtype
    max_abs_diff: float  # max |stepped - network|
    agrees: bool  # equal to the model's float rounding (rtol 1e-5 of the map's scale)


@dataclass(frozen=True)
class DenseContributions:
    """A class logit of the dense head written as ``bias + sum(w * x)``, largest terms first."""

    layer_index: int  # the head: the model's last layer
    cls: int
    x: np.ndarray  # (D,) float64 the head's input for this digit
    w: np.ndarray  # (D,) float64 the weights into class `cls`
    bias: float
    contributions: np.ndarray  # (D,) w * x
    top: np.ndarray  # (k,) int64 input indices of the k largest |w * x|, largest first
    top_x: np.ndarray  # (k,) x[top]
    top_w: np.ndarray  # (k,) w[top]
    top_wx: np.ndarray  # (k,) contributions[top]
    rest: float  # sum of the other D - k contributions
    logit: float  # bias + top_wx.sum() + rest == bias + contributions.sum()
    logits: np.ndarray  # (classes,) float64 every class's logit from the same x
    probs: np.ndarray  # (classes,) softmax(logits)


@dataclass(frozen=True)
class Occlusion:
    """How much a class's probability drops when a patch hides part of the digit.

    Patch positions form a regular grid: top rows ``rows = 0, stride, ...`` while the
    patch fits (``ny = (H - patch) // stride + 1``), the same for columns. ``heat`` is
    the mean ``drop`` of the patches covering each pixel (0 where none does: the last
    rows or columns when ``(H - patch) % stride != 0``).
    """

    cls: int
    patch: int
    stride: int
    fill: float
    rows: np.ndarray  # (ny,) top row of each patch position
    cols: np.ndarray  # (nx,) left column of each patch position
    base: float  # probability of `cls` for the intact digit
    probs: np.ndarray  # (ny, nx) probability of `cls` with the patch at each position
    drop: np.ndarray  # (ny, nx) base - probs (positive: the hidden part mattered)
    heat: np.ndarray  # (H, W) float64 drop spread back over the pixels


# -------------------------------------------------------------------- checks and twins


def _int(value: object, name: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise CodedError("err.not_an_integer", name=name, value=shown(value))
    return int(value)


def _layer(model: Sequential, layer_index: object) -> Layer:
    i = _int(layer_index, "layer_index")
    n = len(model.layers)
    if not 0 <= i < n:
        raise CodedError("err.inspect.layer_range", value=i, count=n, last=n - 1)
    return model.layers[i]


def _conv(model: Sequential, layer_index: object) -> Conv2D:
    layer = _layer(model, layer_index)
    if not isinstance(layer, Conv2D):
        raise CodedError("err.inspect.not_conv", index=int(layer_index), kind=layer.keras_name)
    return layer


def _filter(layer: Conv2D, layer_index: int, filter: object) -> int:
    f = _int(filter, "filter")
    if not 0 <= f < layer.filters:
        raise CodedError(
            "err.inspect.filter_range",
            value=f,
            index=int(layer_index),
            count=layer.filters,
            last=layer.filters - 1,
        )
    return f


def _class(model: Sequential, cls: object) -> int:
    c = _int(cls, "cls")
    n = int(model.output_shape[-1])
    if not 0 <= c < n:
        raise CodedError("err.inspect.class_range", value=c, count=n, last=n - 1)
    return c


def _shape_text(shape) -> str:
    return str(tuple(int(d) for d in shape))


def as_digit(model: Sequential, x: np.ndarray) -> np.ndarray:
    """One digit as a batch of one for ``model``: ``(1, H, W, C)`` in the model's dtype.

    Accepts ``(1, H, W, C)``, ``(H, W, C)``, and for one-channel models ``(H, W)`` and
    ``(1, H, W)``; uint8 pixels are scaled by 1/255, floats taken as they are.

    >>> from convviz.nn.presets import build_model
    >>> as_digit(build_model("tiny"), np.zeros((28, 28), np.uint8)).shape
    (1, 28, 28, 1)
    """
    a = np.asarray(x)
    want = tuple(model.input_shape)
    if a.shape == want[:-1] and want[-1] == 1:
        a = a[None, ..., None]
    elif a.shape == (1, *want[:-1]) and want[-1] == 1:
        a = a[..., None]
    elif a.shape == want:
        a = a[None]
    if a.shape != (1, *want):
        raise CodedError(
            "err.inspect.digit_shape", want=_shape_text((1, *want)), got=_shape_text(a.shape)
        )
    if a.dtype == np.uint8:
        a = a.astype(np.float64) / 255.0
    elif not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
        raise CodedError("err.inspect.digit_values")
    return a.astype(model.dtype)


class _EvalOnly(Layer):
    """A twin that runs ``layer`` in evaluation mode even in a training pass.

    Dropout passes everything through; BatchNorm uses its moving statistics, so it is an
    affine map whose gradient is ``gamma / sqrt(moving_variance + epsilon)``.
    """

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer.name)
        self.inner = layer.replica()
        self.input_shape, self.output_shape = layer.input_shape, layer.output_shape
        self.dtype = layer.dtype

    def replica(self) -> Layer:
        return _EvalOnly(self.inner)  # its own inner twin: threads do not share a cache

    def forward(self, x, training=False):
        return self.inner.forward(x, False)

    def backward(self, dy):
        if isinstance(self.inner, BatchNorm):
            bn = self.inner
            scale = bn.params["gamma"] / np.sqrt(
                bn.buffers["moving_variance"] + bn.dtype.type(bn.epsilon)
            )
            return dy * scale
        return dy  # Dropout in evaluation is the identity


def _twin(layer: Layer) -> Layer:
    """A twin of ``layer`` sharing its weights, with its own grads and caches, eval-mode safe."""
    if isinstance(layer, BatchNorm | Dropout):
        return _EvalOnly(layer)
    if isinstance(layer, _Block):
        return layer.map_children(_twin)
    return layer.replica()


def _twins(model: Sequential, input_grad: bool = False) -> list[Layer]:
    chain = [_twin(layer) for layer in model.layers]
    if input_grad:
        for layer in chain:
            layer.needs_input_grad = True
    return chain


def _run(chain: Sequence[Layer], h: np.ndarray, training: bool = False) -> np.ndarray:
    for layer in chain:
        h = layer.forward(h, training)
    return h


# ------------------------------------------------------------------------- a digit


def activations(model: Sequential, x: np.ndarray) -> list[LayerOutput]:
    """Every layer's output for one digit ``x`` (see :func:`as_digit`), in evaluation mode.

    The last entry holds the logits when the model ends in ``Dense(..., "softmax")``.

    >>> from convviz.nn.presets import build_model
    >>> outs = activations(build_model("classic"), np.zeros((28, 28), np.float32))
    >>> [(o.class_name, o.output.shape) for o in outs][:2]
    [('Conv2D', (26, 26, 32)), ('MaxPooling2D', (13, 13, 32))]
    """
    h = as_digit(model, x)  # (1, H, W, C)
    out = []
    for i, (layer, twin) in enumerate(zip(model.layers, _twins(model), strict=True)):
        h = twin.forward(h, False)
        out.append(LayerOutput(i, layer.name, layer.keras_name, np.array(h[0], copy=True)))
    return out


def predict_digit(model: Sequential, x: np.ndarray) -> Prediction:
    """The ten probabilities for one digit and every layer's output, in one forward pass."""
    layers = activations(model, x)
    logits = layers[-1].output.astype(np.float64)  # (classes,)
    probs = softmax(logits)
    return Prediction(logits, probs, int(np.argmax(logits)), tuple(layers))


def layer_input(model: Sequential, layer_index: int, x: np.ndarray) -> np.ndarray:
    """What layer ``layer_index`` receives for digit ``x``: ``(H, W, C)`` (or ``(D,)``).

    For layer 0 that is the digit itself; otherwise the previous layer's output.
    """
    _layer(model, layer_index)
    h = as_digit(model, x)
    return np.array(_run(_twins(model)[: int(layer_index)], h)[0], copy=True)


def conv_layers(model: Sequential) -> list[int]:
    """Indices (in ``model.layers``) of the top-level :class:`Conv2D` layers, in order."""
    return [i for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)]


# ------------------------------------------------------------------------ one cell


def learned_kernel(model: Sequential, layer_index: int, filter: int) -> tuple[np.ndarray, float]:
    """The kernel ``(kh, kw, C)`` float64 and bias of one filter of a conv layer (copies).

    For the Convolution page's stepper, a first-layer kernel is ``kernel[..., 0]`` (kh, kw);
    a deeper one is ``kernel.transpose(2, 0, 1)`` (C, kh, kw).
    """
    layer = _conv(model, layer_index)
    f = _filter(layer, int(layer_index), filter)
    kernel = layer.params["kernel"][:, :, :, f].astype(np.float64)  # (kh, kw, C)
    bias = float(layer.params["bias"][f]) if layer.use_bias else 0.0
    return kernel, bias


def _check_maps(layer: Conv2D, layer_index: int, x_in: np.ndarray) -> np.ndarray:
    a = np.asarray(x_in)
    if a.shape != layer.input_shape:
        raise CodedError(
            "err.inspect.input_shape",
            index=int(layer_index),
            want=_shape_text(layer.input_shape),
            got=_shape_text(a.shape),
        )
    if a.dtype.kind not in "biuf" or not np.isfinite(a).all():
        raise CodedError("err.inspect.input_values", index=int(layer_index))
    return a.astype(np.float64)


def _cell(
    layer: Conv2D,
    layer_index: int,
    xp: np.ndarray,
    kernel: np.ndarray,
    bias: float,
    f: int,
    oy: int,
    ox: int,
) -> ConvCell:
    """One cell's arithmetic: ``xp`` (C, Hp, Wp) padded float64 maps, ``kernel`` (C, kh, kw)."""
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    rows = oy * sh + np.arange(kh)  # (kh,)
    cols = ox * sw + np.arange(kw)  # (kw,)
    window = xp[:, rows[:, None], cols[None, :]]  # (C, kh, kw)
    products = window * kernel  # (C, kh, kw)
    partial = products.sum(axis=(1, 2))  # (C,)
    total = float(partial.sum())
    pre = total + bias
    act = layer.activation or "none"
    value = max(pre, 0.0) if act == "relu" else pre
    (top, _), (left, _) = layer.pads
    h, w = layer.input_shape[:2]
    ry = (rows - top >= 0) & (rows - top < h)
    rx = (cols - left >= 0) & (cols - left < w)
    return ConvCell(
        layer_index=int(layer_index),
        filter=f,
        index=(oy, ox),
        position=(int(rows[0]), int(cols[0])),
        pad=layer.pads,
        stride=(sh, sw),
        rows=rows,
        cols=cols,
        window=window,
        kernel=kernel,
        products=products,
        partial_sums=partial,
        total=total,
        bias=bias,
        pre_activation=pre,
        activation=act,
        value=value,
        inside=ry[:, None] & rx[None, :],
        out_shape=tuple(layer.output_shape[:2]),
    )


def _padded_chw(layer: Conv2D, maps: np.ndarray) -> np.ndarray:
    (t, b), (le, r) = layer.pads
    xp = np.pad(maps, ((t, b), (le, r), (0, 0)))  # (Hp, Wp, C) zeros around
    return np.ascontiguousarray(xp.transpose(2, 0, 1))  # (C, Hp, Wp)


def conv_cell(
    model: Sequential, layer_index: int, x_in: np.ndarray, row: int, col: int, filter: int
) -> ConvCell:
    """The arithmetic of output cell ``(row, col)`` of ``filter`` in conv layer ``layer_index``.

    Parameters
    ----------
    model : Sequential
    layer_index : int
        A :class:`Conv2D` in ``model.layers`` (see :func:`conv_layers`).
    x_in : ndarray, shape (H, W, C)
        The layer's input maps (:func:`layer_input`); C = 1 for a first layer.
    row, col : int
        The output cell, ``0 <= row < Ho``, ``0 <= col < Wo``.
    filter : int
        The output channel, ``0 <= filter < layer.filters``.

    Returns
    -------
    ConvCell
        Each input channel's window, kernel slice and partial sum, their total, the
        bias, the pre-activation and the activated value, all float64.

    Notes
    -----
    The window of cell ``(row, col)`` starts at ``(row * sh, col * sw)`` in the input
    padded by ``layer.pads`` (zeros; "same" pads as TensorFlow, the odd pixel after), and
    ``Ho = floor((H + pt + pb - kh) / sh) + 1``.
    """
    layer = _conv(model, layer_index)
    f = _filter(layer, int(layer_index), filter)
    maps = _check_maps(layer, int(layer_index), x_in)  # (H, W, C)
    ho, wo = layer.output_shape[:2]
    r, c = _int(row, "row"), _int(col, "col")
    if not (0 <= r < ho and 0 <= c < wo):
        raise CodedError("err.inspect.cell_range", row=r, col=c, h=ho, w=wo)
    kernel, bias = learned_kernel(model, layer_index, f)
    return _cell(
        layer, int(layer_index), _padded_chw(layer, maps), kernel.transpose(2, 0, 1), bias, f, r, c
    )


def filter_map(model: Sequential, layer_index: int, x: np.ndarray, filter: int) -> FilterMap:
    """Fill filter ``filter``'s whole map of layer ``layer_index`` for digit ``x`` cell by cell.

    Every cell is :func:`conv_cell`'s ``value`` (what the stepper shows); ``network`` is
    the layer's own output channel for the same digit, so the page can say they agree.
    """
    layer = _conv(model, layer_index)
    f = _filter(layer, int(layer_index), filter)
    i = int(layer_index)
    chain = _twins(model)
    h = _run(chain[:i], as_digit(model, x))  # (1, H, W, C)
    network = chain[i].forward(h, False)[0, :, :, f]  # (Ho, Wo)
    xp = _padded_chw(layer, h[0].astype(np.float64))  # (C, Hp, Wp)
    kernel, bias = learned_kernel(model, i, f)
    k = kernel.transpose(2, 0, 1)  # (C, kh, kw)
    ho, wo = layer.output_shape[:2]
    stepped = np.empty((ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            stepped[oy, ox] = _cell(layer, i, xp, k, bias, f, oy, ox).value
    diff = float(np.max(np.abs(stepped - network))) if stepped.size else 0.0
    scale = max(float(np.max(np.abs(stepped))), 1.0)
    return FilterMap(stepped, np.array(network, copy=True), diff, diff <= 1e-5 * scale)


# ------------------------------------------------------------------------ the head


def dense_contributions(
    model: Sequential, x: np.ndarray, cls: int, top: int = 10
) -> DenseContributions:
    """The logit of class ``cls`` at the model's dense head as its largest terms ``w * x``.

    Parameters
    ----------
    model : Sequential
        Must end in a :class:`Dense` layer without ReLU (its output: the logits).
    x : ndarray
        One digit (see :func:`as_digit`).
    cls : int
        The class, ``0 <= cls < classes``.
    top : int, default 10
        How many of the largest-magnitude contributions to list (at most D).

    Returns
    -------
    DenseContributions
        ``bias + top_wx.sum() + rest`` is the logit (float64), and ``probs`` the
        softmax over every class's logit from the same input.
    """
    head = model.layers[-1]
    if not isinstance(head, Dense) or head.activation == "relu":
        raise CodedError("err.inspect.no_dense_head")
    c = _class(model, cls)
    k = check_integer(top, "top", 1)
    h = _run(_twins(model)[:-1], as_digit(model, x))  # (1, D)
    xs = h[0].astype(np.float64)  # (D,)
    kernel = head.params["kernel"].astype(np.float64)  # (D, classes)
    biases = head.params["bias"].astype(np.float64) if head.use_bias else np.zeros(head.units)
    w = kernel[:, c].copy()  # (D,)
    contributions = w * xs  # (D,)
    k = min(k, len(xs))
    # stable sort of -|w x|: the largest first, ties by input index
    order = np.argsort(-np.abs(contributions), kind="stable")
    chosen, others = order[:k], order[k:]
    logits = xs @ kernel + biases  # (classes,)
    return DenseContributions(
        layer_index=len(model.layers) - 1,
        cls=c,
        x=xs,
        w=w,
        bias=float(biases[c]),
        contributions=contributions,
        top=chosen.astype(np.int64),
        top_x=xs[chosen],
        top_w=w[chosen],
        top_wx=contributions[chosen],
        rest=float(contributions[others].sum()),
        logit=float(biases[c] + contributions.sum()),
        logits=logits,
        probs=softmax(logits),
    )


# ---------------------------------------------------------------- what it looks at


def saliency(model: Sequential, x: np.ndarray, cls: int) -> np.ndarray:
    """Gradient of the class score (the logit of ``cls``) with respect to the digit's pixels.

    One forward pass in training mode on twins of the layers (their own caches and
    grads; Dropout and BatchNorm kept in evaluation mode), then the model's backward from
    the one-hot output gradient. The model's weights, grads and caches are not touched.

    Returns
    -------
    ndarray, shape (H, W) float64 for a one-channel input (else (H, W, C))
        ``d logit[cls] / d x[i, j]``, in units of the [0, 1] pixel scale.
    """
    c = _class(model, cls)
    chain = _twins(model, input_grad=True)
    out = _run(chain, as_digit(model, x), training=True)  # (1, classes)
    d = np.zeros_like(out)
    d[0, c] = 1.0
    for layer in reversed(chain):
        d = layer.backward(d)
    g = np.asarray(d[0], np.float64)  # (H, W, C)
    return g[..., 0] if g.shape[-1] == 1 else g


def occlusion(
    model: Sequential,
    x: np.ndarray,
    cls: int,
    patch: int = 4,
    stride: int = 2,
    fill: float = 0.0,
) -> Occlusion:
    """Slide a ``patch`` x ``patch`` square of value ``fill`` over the digit; the drop in P(cls).

    All occluded digits go through the model in one batch (169 for the defaults).

    Parameters
    ----------
    model : Sequential
    x : ndarray
        One digit (see :func:`as_digit`).
    cls : int
    patch : int, default 4
        Side of the square, 1 to the digit's shorter side.
    stride : int, default 2
        Step between patch positions (>= 1).
    fill : float, default 0.0
        The value under the patch (0: black, MNIST's background).
    """
    c = _class(model, cls)
    digit = as_digit(model, x)  # (1, H, W, C)
    h, w = digit.shape[1:3]
    p = check_integer(patch, "patch", 1)
    if p > min(h, w):
        raise CodedError("err.inspect.patch_size", value=p, limit=min(h, w))
    s = check_integer(stride, "stride", 1)
    if isinstance(fill, bool) or not isinstance(fill, numbers.Real) or not np.isfinite(fill):
        raise CodedError("err.must_be_finite", name="fill", value=shown(fill))
    rows = np.arange(0, h - p + 1, s)  # (ny,)
    cols = np.arange(0, w - p + 1, s)  # (nx,)
    batch = np.repeat(digit, len(rows) * len(cols) + 1, axis=0)  # (1 + ny*nx, H, W, C)
    for k, (r0, c0) in enumerate((r, q) for r in rows for q in cols):
        batch[k + 1, r0 : r0 + p, c0 : c0 + p, :] = fill  # batch[0] stays intact
    chain = _twins(model)
    logits = np.concatenate(
        [_run(chain, batch[i : i + 512]) for i in range(0, len(batch), 512)]
    ).astype(np.float64)  # (1 + ny*nx, classes)
    probs_all = softmax(logits)[:, c]
    base = float(probs_all[0])
    probs = probs_all[1:].reshape(len(rows), len(cols))  # (ny, nx)
    drop = base - probs
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    for iy, r0 in enumerate(rows):
        for ix, c0 in enumerate(cols):
            total[r0 : r0 + p, c0 : c0 + p] += drop[iy, ix]
            count[r0 : r0 + p, c0 : c0 + p] += 1
    heat = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return Occlusion(c, p, s, float(fill), rows, cols, base, probs, drop, heat)


# ------------------------------------------------------------------------- surgery


def copy_model(model: Sequential) -> Sequential:
    """An independent copy of ``model`` (architecture, dtype, weights, buffers, metadata).

    Rebuilt from its config, so no cache or gradient comes along.
    """
    config = model.get_config()
    twin = Sequential(
        [layer_from_config(spec) for spec in config["layers"]],
        input_shape=model.input_shape,
        seed=model.seed,
        name=model.name,
        initialize=False,
    )
    twin.astype(model.dtype)
    for (_, dst, _), (_, src, _) in zip(twin.parameters(), model.parameters(), strict=True):
        dst[...] = src
    for (_, dst), (_, src) in zip(twin.buffers(), model.buffers(), strict=True):
        dst[...] = src
    twin.metadata = dict(getattr(model, "metadata", {}))
    twin.input_grad = model.input_grad
    return twin


def edited_kernel(
    model: Sequential,
    layer_index: int,
    filter: int,
    kernel: np.ndarray | None = None,
    *,
    zero: bool = False,
    negate: bool = False,
) -> np.ndarray:
    """The kernel ``(kh, kw, C)`` float64 that :func:`surgery` would put in place.

    Exactly one of: ``kernel`` (shape ``(kh, kw, C)``, or ``(kh, kw)`` when C = 1,
    finite), ``zero=True`` or ``negate=True`` (of the learned kernel).
    """
    learned, _ = learned_kernel(model, layer_index, filter)  # (kh, kw, C)
    if sum((kernel is not None, bool(zero), bool(negate))) != 1:
        raise CodedError("err.inspect.surgery_choice")
    if zero:
        return np.zeros_like(learned)
    if negate:
        return -learned
    k = np.asarray(kernel)
    if k.ndim == 2 and learned.shape[2] == 1:
        k = k[..., None]
    if k.shape != learned.shape:
        raise CodedError(
            "err.inspect.kernel_shape", want=_shape_text(learned.shape), got=_shape_text(k.shape)
        )
    if k.dtype.kind not in "biuf" or not np.isfinite(k).all():
        raise CodedError("err.inspect.kernel_values")
    return k.astype(np.float64)


def surgery(
    model: Sequential,
    layer_index: int,
    filter: int,
    kernel: np.ndarray | None = None,
    *,
    zero: bool = False,
    negate: bool = False,
) -> Sequential:
    """A COPY of ``model`` with one conv filter's kernel replaced, zeroed or negated.

    The bias is kept (a zeroed kernel's map is then ``activation(bias)`` everywhere).
    ``model`` itself is never modified: undo is using ``model`` again.

    Parameters
    ----------
    model : Sequential
    layer_index : int
        A :class:`Conv2D` in ``model.layers`` (the page uses the first one).
    filter : int
    kernel : ndarray, shape (kh, kw, C) or (kh, kw) when C = 1, optional
    zero, negate : bool
        Exactly one of ``kernel``, ``zero`` and ``negate`` (see :func:`edited_kernel`).
    """
    new = edited_kernel(model, layer_index, filter, kernel, zero=zero, negate=negate)
    twin = copy_model(model)
    twin.layers[int(layer_index)].params["kernel"][:, :, :, int(filter)] = new
    return twin


def test_slice(n: int = SLICE_SIZE, data=None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed slice surgery is scored on: the first ``n`` MNIST test images and labels.

    ``data`` defaults to :func:`convviz.nn.data.load_mnist`; returns ``(n, 28, 28)``
    uint8 images and ``(n,)`` labels (read-only views).
    """
    data = load_mnist() if data is None else data
    n = check_integer(n, "n", 1)
    return data.test_images[:n], data.test_labels[:n]


test_slice.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _twin_model(model: Sequential) -> Sequential:
    """A shallow twin of ``model`` whose layers are twins: FastPlan on it leaves ``model`` be."""
    twin = object.__new__(Sequential)
    twin.__dict__.update(model.__dict__)
    twin.layers = _twins(model)
    return twin


def evaluate_slice(model: Sequential, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Accuracy, confusion matrix (and loss, per-image predictions) of ``model`` on a set.

    :func:`convviz.nn.train.evaluate_set` through :class:`~convviz.nn.fast.FastPlan`
    (batch slices on threads; the same numbers as the reference layers to float
    rounding), on twins of the layers, so a model being trained is not disturbed.
    """
    return evaluate_set(FastPlan(_twin_model(model)), images, labels, batch_size=500)


# -------------------------------------------------------------- fast re-evaluation

# Layers that act on each channel alone, the same way on every channel, with no
# weights: a change in one channel stays in that channel through them.
_PER_CHANNEL = (ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2D, AvgPool2D, Identity, Rescaling)


def _one_channel(layer: Layer) -> Layer:
    """A twin of a :data:`_PER_CHANNEL` layer that takes one channel: ``(N, H, W, 1)``."""
    twin = layer.replica()
    twin.input_shape = (*layer.input_shape[:-1], 1)
    twin.output_shape = (*layer.output_shape[:-1], 1)
    return twin


_BENCH_BLOCK = 500  # images per block of the bench's fast path


class SurgeryBench:
    """Accuracy of ``model`` with edited kernels of one conv layer, fast, on a fixed set.

    Built once per model (one full pass over ``images``), it keeps a copy of the model
    and what the layers compute before and around the edited layer ``i``:

    * the input of layer ``i``;
    * when layer ``i`` is followed by weight-free per-channel layers (ReLU, pooling)
      and then a conv layer ``j`` (as in ``classic`` and ``tiny``): the
      pre-activation of ``j``. An edit of filter ``f`` changes only channel ``f`` up to
      ``j``, and ``j`` is linear before its activation, so the edited pre-activation is
      the kept one plus the conv of the CHANGE in channel ``f`` with ``j``'s kernel slice
      ``f``: a one-channel conv instead of a full one. The layers after ``j`` run in full.
    * otherwise layer ``i`` and everything after it run in full on the kept input.

    Kernels equal to the learned ones are no edit: undoing gives :attr:`baseline` (its
    kept logits) bit for bit. The edited numbers equal :func:`evaluate_slice` of
    :func:`surgery`'s copy to float32 rounding (the tests check predictions and
    confusion matrices are the same). Memory: the kept arrays are about 70 MB for
    ``classic`` on 2,000 images (float32). Measured on this 2-core machine, shared:
    building it about 1.5 s (once per model), an edit of ``classic``'s first layer
    130-300 ms, against 500-650 ms for :func:`surgery` + :func:`evaluate_slice`.

    Parameters
    ----------
    model : Sequential
        Copied: later changes to it (training) do not reach the bench.
    layer_index : int
        The conv layer whose filters are edited.
    images : ndarray, (N, 28, 28) uint8 or (N, 28, 28, 1) float
    labels : ndarray, (N,)

    Attributes
    ----------
    baseline : Evaluation
        The unedited model's scores.
    """

    def __init__(
        self, model: Sequential, layer_index: int, images: np.ndarray, labels: np.ndarray
    ) -> None:
        _conv(model, layer_index)
        self.model = copy_model(model)
        self.layer_index = i = int(layer_index)
        self.labels = np.asarray(labels)
        if len(images) != len(self.labels) or len(self.labels) == 0:
            raise ValueError(f"`labels` must have {len(images)} entries, got {len(labels)}")
        layers = self.model.layers
        self._chain = _twins(self.model)
        x = self.model.prepare(to_batch(images))  # (N, 28, 28, 1) in the model dtype
        self._x_in = _run(self._chain[:i], x)  # (N, H, W, C) the input of layer i
        self._xp = F.pad_nhwc(self._x_in, layers[i].pads)  # (N, Hp, Wp, C)
        self._old: dict[int, np.ndarray] = {}
        # Find the next conv j past per-channel layers.
        j = i + 1
        while j < len(layers) and isinstance(layers[j], _PER_CHANNEL):
            j += 1
        if j < len(layers) and isinstance(layers[j], Conv2D):
            self._j: int | None = j
            self._between = [_one_channel(layer) for layer in layers[i + 1 : j]]
            h = _run(self._chain[i:j], self._x_in)  # (N, Hj, Wj, Cj) input of j
            self._pre = self._pre_activation(layers[j], h)  # (N, Ho, Wo, Fj)
            del h
        else:
            self._j = None
        self._base_logits: np.ndarray | None = None
        self._base_logits = self._from_edits({})  # (N, classes)
        self.baseline = self._evaluation(self._base_logits)

    # -- the pieces -------------------------------------------------------------------
    @staticmethod
    def _pre_activation(conv: Conv2D, h: np.ndarray) -> np.ndarray:
        """``conv``'s output before its activation, the same operations as its forward."""
        kh, kw = conv.kernel_size
        ho, wo, f = conv.output_shape
        cols = F.im2col(F.pad_nhwc(h, conv.pads), kh, kw, *conv.strides)  # (N*Ho*Wo, kh*kw*C)
        y = cols @ conv.params["kernel"].reshape(-1, f)  # (N*Ho*Wo, F)
        if conv.use_bias:
            y += conv.params["bias"]
        return y.reshape(len(h), ho, wo, f)

    def _channel(self, kernel: np.ndarray, bias: float, rows: slice) -> np.ndarray:
        """One filter of layer i on images ``rows`` of the kept input, then the per-channel
        layers: ``(n, Hj, Wj, 1)``.

        One multiply-add of the shifted input per tap (9 for a 3x3 first layer): about 4x
        faster here than im2col and a matrix-vector product, which copies the input 9 times.
        """
        conv = self.model.layers[self.layer_index]
        (sh, sw), (ho, wo) = conv.strides, conv.output_shape[:2]
        xp = self._xp[rows]  # (n, Hp, Wp, C)
        y = np.full((len(xp), ho, wo), bias, dtype=xp.dtype)  # (n, Ho, Wo)
        tmp = np.empty_like(y)
        for (a, b, c), k in np.ndenumerate(kernel):  # kernel (kh, kw, C)
            if k != 0:
                window = xp[:, a : a + (ho - 1) * sh + 1 : sh, b : b + (wo - 1) * sw + 1 : sw, c]
                np.multiply(window, k, out=tmp)
                y += tmp
        if conv.activation == "relu":
            np.maximum(y, 0, out=y)
        return _run(self._between, y[..., None])

    def _old_channel(self, f: int, rows: slice) -> np.ndarray:
        """:meth:`_channel` of the learned filter ``f`` (kept: re-edits of ``f`` reuse it)."""
        if f not in self._old:
            conv = self.model.layers[self.layer_index]
            bias = float(conv.params["bias"][f]) if conv.use_bias else 0.0
            self._old[f] = self._channel(conv.params["kernel"][..., f], bias, slice(None))
        return self._old[f][rows]

    def _after_j(self, edits: Mapping[int, np.ndarray], rows: slice) -> np.ndarray:
        """Logits of images ``rows`` through the fast path (see the class notes)."""
        conv, nxt = self.model.layers[self.layer_index], self.model.layers[self._j]
        kh, kw = nxt.kernel_size
        h = self._pre[rows]  # (n, Ho, Wo, Fj), plus the conv of each changed channel's change:
        for f, kern in edits.items():
            bias = float(conv.params["bias"][f]) if conv.use_bias else 0.0
            delta = self._channel(kern, bias, rows) - self._old_channel(f, rows)  # (n, Hj, Wj, 1)
            cols = F.im2col(F.pad_nhwc(delta, nxt.pads), kh, kw, *nxt.strides)  # (M, kh*kw)
            d = cols @ nxt.params["kernel"][:, :, f, :].reshape(kh * kw, -1)  # (M, Fj), new
            d = d.reshape(h.shape)
            d += h
            h = d
        if nxt.activation == "relu":  # in place unless h is still the kept array
            h = np.maximum(h, 0) if not edits else np.maximum(h, 0, out=h)
        return _run(self._chain[self._j + 1 :], h)

    def _from_edits(self, edits: Mapping[int, np.ndarray]) -> np.ndarray:
        """Logits (N, classes) with ``edits`` {filter: kernel (kh, kw, C)} in layer i."""
        i = self.layer_index
        conv = self.model.layers[i]
        learned = conv.params["kernel"]  # (kh, kw, C, F) of the copy: never written
        edits = {f: k for f, k in edits.items() if not np.array_equal(k, learned[..., f])}
        if not edits and self._base_logits is not None:
            return self._base_logits  # the learned kernels: the baseline, bit for bit
        if self._j is None:
            twin = conv.replica()
            twin.params = dict(conv.params)
            k = learned.copy()
            for f, kern in edits.items():
                k[:, :, :, f] = kern
            twin.params["kernel"] = k
            return _run([twin, *self._chain[i + 1 :]], self._x_in)
        # In blocks of images: the temporaries of an edit are 15 MB, not 60 (classic, 2,000
        # images); the time was the same within this shared machine's noise (blocks of
        # 250 to 2,000 measured 130-300 ms).
        n = len(self._x_in)
        blocks = [slice(s, s + _BENCH_BLOCK) for s in range(0, n, _BENCH_BLOCK)]
        return np.concatenate([self._after_j(edits, rows) for rows in blocks])

    def _evaluation(self, logits: np.ndarray) -> Evaluation:
        """:func:`convviz.nn.train.evaluate_set`'s numbers from logits already computed."""
        labels = self.labels
        loss, _ = softmax_cross_entropy(logits, labels)
        pred = logits.argmax(axis=1).astype(np.int64)
        conf = softmax(logits.astype(np.float64)).max(axis=1)
        confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        np.add.at(confusion, (labels.astype(np.int64), pred), 1)
        acc = float(np.trace(confusion) / len(labels))
        return Evaluation(float(loss), acc, confusion, pred, conf)

    # -- the API ----------------------------------------------------------------------
    def evaluate(self, kernels: Mapping[int, np.ndarray]) -> Evaluation:
        """Scores with the kernels of some filters of layer ``layer_index`` replaced.

        ``kernels`` maps a filter to its kernel ``(kh, kw, C)`` (or ``(kh, kw)`` when C = 1;
        see :func:`edited_kernel`); the other filters keep their learned kernels, the
        biases stay. ``{}`` (or the learned kernels) gives :attr:`baseline` exactly.
        """
        edits = {}
        for f, kern in kernels.items():
            new = edited_kernel(self.model, self.layer_index, f, kern)
            edits[int(f)] = new.astype(self.model.dtype)
        return self._evaluation(self._from_edits(edits))
