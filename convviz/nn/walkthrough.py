"""One training step, recorded: initialise, forward, loss, backpropagation, update.

:func:`walkthrough` runs ONE optimizer step of a ``convviz.nn`` model on one MNIST
batch with the model's own layers, loss and optimizer (the reference path of
:mod:`convviz.nn.layers`, not the fused :mod:`convviz.nn.fast`), and keeps every
number a learner may want to see: the initial weights and the formula that drew
them, each layer's output and the gradient reaching it, the softmax and the
per-sample cross-entropy, one first-conv weight's gradient written out as a sum
of (upstream gradient x input value) terms beside a float64 finite difference,
the optimizer's update of that weight with its running state, and the loss on the
same batch after the step. So what the page shows is what is trained and tested.

Networks (:data:`NETS`):

* ``"hand"``: ``Conv2D(2, 3) -> ReLU -> MaxPool2D(2) -> Flatten -> Dense(10)`` on
  10x10 digits, in float64. Why this size: an MNIST digit is drawn in a 20x20 box
  centred in its 28x28 image, so cropping that box and averaging 2x2 blocks gives
  a 10x10 digit exactly (no interpolation) that still reads as the digit; a 3x3
  conv makes two 8x8 maps (64 cells each: every number fits on a screen), the
  pool 4x4x2 = 32 features, and the dense layer 32x10 weights: 20 + 330 = 350
  parameters in all, every one of which can be shown. float64 so the finite
  difference of the loss agrees with backpropagation to 1e-6 relative.
* ``"tiny"`` and ``"classic"``: the presets of :mod:`convviz.nn.presets` on 28x28
  digits, in float32 as the Train page trains them (the finite difference runs on
  a float64 copy, so it agrees with the float32 gradient to about 1e-3 relative).

>>> w = walkthrough(StepConfig())
>>> w.layers[0].output.shape, w.logits.shape, bool(abs(w.loss - w.losses.mean()) < 1e-12)
((3, 8, 8, 2), (3, 10), True)
>>> abs(w.weight.gradient - w.weight.finite_difference) < 1e-8
True
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from convviz.errors import CodedError
from convviz.nn.data import load_mnist
from convviz.nn.init import INITIALIZERS
from convviz.nn.inspect import conv_cell
from convviz.nn.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU
from convviz.nn.losses import log_softmax, softmax, softmax_cross_entropy
from convviz.nn.model import Sequential
from convviz.nn.optim import make_optimizer
from convviz.nn.presets import build_model

__all__ = [
    "HAND_SIDE",
    "NETS",
    "OPTIMIZERS",
    "SCHEMES",
    "Chosen",
    "LayerInit",
    "LayerStep",
    "StepConfig",
    "Update",
    "Walkthrough",
    "build_net",
    "downsample",
    "draw_batch",
    "init_parameter",
    "walkthrough",
]

NETS = ("hand", "tiny", "classic")
#: Initialisers offered, in the order the page lists them (keys of convviz.nn.init).
SCHEMES = ("gaussian", "uniform", "he_normal", "glorot_uniform")
OPTIMIZERS = ("sgd", "rmsprop", "adam")
HAND_SIDE = 10  # the hand-sized net's digits: 10x10 (see the module docstring)
BATCH_SIZES = {"hand": (2, 3, 4), "tiny": (4, 8, 16), "classic": (4, 8, 16)}
FD_STEP = 1e-5  # central difference step in float64: error ~1e-10 against a gradient ~1e-2


@dataclass(frozen=True)
class StepConfig:
    """What one recorded step is made of (the page's choices)."""

    net: str = "hand"  # one of NETS
    batch_size: int = 3  # one of BATCH_SIZES[net]
    batch_seed: int = 0  # which MNIST training digits (seeded draw without replacement)
    scheme: str = "glorot_uniform"  # one of SCHEMES
    optimizer: str = "sgd"  # one of OPTIMIZERS
    lr: float = 0.1
    weight: tuple[int, int, int, int] = (0, 0, 1, 1)  # (filter f, channel c, row u, col v)
    seed: int = 0  # seeds the initial weights


@dataclass(frozen=True)
class LayerInit:
    """How one layer's kernel was drawn: ``parameter`` is the scheme's limit or std."""

    name: str
    keras_name: str
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    scheme: str
    parameter_name: str  # "limit" (uniform in [-limit, limit]) or "std"
    parameter: float
    kernel: np.ndarray  # the drawn kernel (a copy)
    bias: np.ndarray | None  # zeros


@dataclass(frozen=True)
class LayerStep:
    """One layer in the forward and backward pass of the recorded step."""

    name: str
    keras_name: str
    output: np.ndarray  # (N, ...) the layer's output for the batch
    upstream: np.ndarray  # (N, ...) dL/d output: the gradient reaching the layer
    grads: dict[str, np.ndarray]  # dL/d params (copies), {} for a layer without any


@dataclass(frozen=True)
class Chosen:
    """The chosen first-conv weight's gradient as a sum over the batch and positions.

    ``gradient = sum over n, i, j of upstream[n, i, j] * inputs[n, i, j]`` where
    ``upstream`` is dL/d(the conv's sum) at output cell (i, j) of filter f
    (after the ReLU's gate when the conv has a fused ReLU) and ``inputs`` the
    input value that the weight (u, v) of channel c multiplies there:
    ``x[n, i*sh + u, j*sw + v, c]`` of the padded input.
    """

    index: tuple[int, int, int, int]  # (f, c, u, v)
    layer_index: int  # the first conv in model.layers
    upstream: np.ndarray  # (N, Ho, Wo) float64
    inputs: np.ndarray  # (N, Ho, Wo) float64
    products: np.ndarray  # (N, Ho, Wo) upstream * inputs
    total: float  # products.sum()
    gradient: float  # what backpropagation wrote in grads["kernel"][u, v, c, f]
    finite_difference: float  # (L(w + h) - L(w - h)) / 2h on a float64 copy
    h: float

    @property
    def relative_error(self) -> float:
        """``|gradient - finite difference| / max(|gradient|, |fd|)`` (0 when both are 0)."""
        scale = max(abs(self.gradient), abs(self.finite_difference))
        return 0.0 if scale == 0 else abs(self.gradient - self.finite_difference) / scale


@dataclass(frozen=True)
class Update:
    """The optimizer's step for the chosen weight and its kernel slice ``[:, :, c, f]``."""

    optimizer: str
    lr: float
    hyper: dict[str, float]  # the optimizer's other hyperparameters (rho, beta1, eps...)
    t: int  # the step number (1: the first step)
    g: float
    before: float
    after: float
    state: dict[str, float]  # running state after the step: v (RMSprop); m, v (Adam)
    derived: dict[str, float]  # numbers of the formula: denominators, corrections, the step
    kernel_before: np.ndarray  # (kh, kw)
    kernel_after: np.ndarray  # (kh, kw)


@dataclass(frozen=True)
class Walkthrough:
    """Everything one recorded step shows (treat the arrays as read-only)."""

    config: StepConfig
    indices: np.ndarray  # (N,) the digits' indices in the MNIST training set
    x: np.ndarray  # (N, H, W, 1) the batch as the model reads it
    labels: np.ndarray  # (N,) int
    inits: list[LayerInit]
    layers: list[LayerStep]
    logits: np.ndarray  # (N, 10)
    probs: np.ndarray  # (N, 10) softmax(logits)
    losses: np.ndarray  # (N,) -log p(true class)
    loss: float  # the mean: the batch's loss
    dlogits: np.ndarray  # (N, 10) (probs - onehot) / N
    weight: Chosen
    update: Update
    next_losses: np.ndarray  # (N,) after the update, same batch
    next_loss: float
    initial: Sequential = field(repr=False)  # the model before the step (for cell arithmetic)

    @property
    def first_conv(self) -> int:
        return self.weight.layer_index

    def conv_input(self, sample: int) -> np.ndarray:
        """``(H, W, C)``: what the first conv reads for ``sample`` (the batch, rescaled)."""
        i = self.first_conv
        return self.x[sample] if i == 0 else self.layers[i - 1].output[sample]

    def conv_cell(self, sample: int, row: int, col: int, filter: int):
        """:func:`convviz.nn.inspect.conv_cell` of the first conv, initial weights."""
        i = self.first_conv
        return conv_cell(self.initial, i, self.conv_input(sample), row, col, filter)


# ------------------------------------------------------------------------------ data


def downsample(images: np.ndarray) -> np.ndarray:
    """``(N, 28, 28)`` uint8 -> ``(N, 10, 10)`` float64 in [0, 1]: the 20x20 box, 2x2 means.

    >>> downsample(np.full((1, 28, 28), 255, np.uint8)).shape
    (1, 10, 10)
    """
    a = np.asarray(images, np.float64)[:, 4:24, 4:24] / 255.0  # (N, 20, 20)
    n = a.shape[0]
    return a.reshape(n, HAND_SIDE, 2, HAND_SIDE, 2).mean(axis=(2, 4))


def draw_batch(net: str, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indices, x, labels)``: ``size`` training digits drawn without replacement by ``seed``.

    ``x`` is ``(N, 10, 10, 1)`` float64 for ``"hand"``, ``(N, 28, 28, 1)`` float32 otherwise.
    """
    _check_choice(net, NETS, "net")
    if size not in BATCH_SIZES[net]:
        raise CodedError(
            "err.step.batch_size", size=size, sizes=", ".join(map(str, BATCH_SIZES[net]))
        )
    data = load_mnist()
    rng = np.random.default_rng(int(seed))
    idx = np.sort(rng.choice(len(data.train_labels), size=size, replace=False))
    images = data.train_images[idx]
    labels = data.train_labels[idx].astype(np.int64)
    if net == "hand":
        x = downsample(images)[..., None]
    else:
        x = (images.astype(np.float32) / np.float32(255.0))[..., None]
    return idx, x, labels


# ------------------------------------------------------------------------------ model


def _hand_layers(scheme: str) -> list[Layer]:
    return [
        Conv2D(2, 3, kernel_initializer=scheme),  # (N, 8, 8, 2)
        ReLU(),
        MaxPool2D(2),  # (N, 4, 4, 2)
        Flatten(),  # (N, 32)
        Dense(10, activation="softmax", kernel_initializer=scheme),  # logits (N, 10)
    ]


def build_net(net: str, scheme: str, seed: int = 0) -> Sequential:
    """The network ``net`` with every kernel drawn by initialiser ``scheme`` from ``seed``.

    The presets are built by :func:`convviz.nn.presets.build_model` and rebuilt with
    their layers' ``kernel_initializer`` set to ``scheme``; ``"hand"`` is float64.
    """
    _check_choice(net, NETS, "net")
    _check_choice(scheme, SCHEMES, "scheme")
    if net == "hand":
        return Sequential(
            _hand_layers(scheme), input_shape=(HAND_SIDE, HAND_SIDE, 1), seed=seed, name="hand"
        ).astype(np.float64)
    layers = build_model(net, seed).layers
    for layer in layers:
        if hasattr(layer, "kernel_initializer"):
            layer.kernel_initializer = scheme
    return Sequential(layers, input_shape=(28, 28, 1), seed=seed, name=net)


def init_parameter(scheme: str, fan_in: int, fan_out: int) -> tuple[str, float]:
    """The parameter the scheme's formula gives for a layer: ``("limit" | "std", value)``.

    ``he_normal``'s std is that of the weights (``sqrt(2 / fan_in)``: Keras draws a normal
    truncated at 2 std, scaled so that the truncated draw has this std).

    >>> init_parameter("glorot_uniform", 9, 18)
    ('limit', 0.4714045207910317)
    """
    if scheme == "glorot_uniform":
        return "limit", math.sqrt(6.0 / (fan_in + fan_out))
    if scheme == "he_normal":
        return "std", math.sqrt(2.0 / fan_in)
    if scheme == "gaussian":
        return "std", 0.05
    if scheme == "uniform":
        return "limit", 0.05
    raise ValueError(f"`scheme` must be one of {sorted(INITIALIZERS)}, got {scheme!r}")


def _fans(layer: Layer) -> tuple[int, int]:
    k = layer.params["kernel"]
    if k.ndim == 4:  # conv (kh, kw, C, F), as convviz.nn.init computes them
        kh, kw, c, f = k.shape
        return kh * kw * c, kh * kw * f
    return int(k.shape[0]), int(k.shape[1])


def _inits(model: Sequential, scheme: str) -> list[LayerInit]:
    out = []
    for layer in model.layers:
        if "kernel" not in layer.params:
            continue
        fan_in, fan_out = _fans(layer)
        pname, value = init_parameter(scheme, fan_in, fan_out)
        bias = layer.params.get("bias")
        out.append(
            LayerInit(
                name=layer.name,
                keras_name=layer.keras_name,
                shape=tuple(layer.params["kernel"].shape),
                fan_in=fan_in,
                fan_out=fan_out,
                scheme=scheme,
                parameter_name=pname,
                parameter=value,
                kernel=layer.params["kernel"].copy(),
                bias=None if bias is None else bias.copy(),
            )
        )
    return out


# ------------------------------------------------------------------------------ the step


def _check_choice(value, choices, name: str) -> None:
    if value not in choices:
        raise CodedError("err.step.choice", name=name, choices=", ".join(map(str, choices)))


def _first_conv(model: Sequential) -> int:
    return next(i for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D))


def _check_weight(model: Sequential, weight) -> tuple[int, int, int, int]:
    conv = model.layers[_first_conv(model)]
    kh, kw, c, f = conv.params["kernel"].shape
    fi, ci, u, v = (int(a) for a in weight)
    if not (0 <= fi < f and 0 <= ci < c and 0 <= u < kh and 0 <= v < kw):
        raise CodedError("err.step.weight", f=f, c=c, kh=kh, kw=kw)
    return fi, ci, u, v


def _loss64(model: Sequential, x: np.ndarray, labels: np.ndarray) -> float:
    return softmax_cross_entropy(model.forward(x.astype(np.float64)), labels)[0]


def _finite_difference(model, x, labels, layer_index, at, h=FD_STEP) -> float:
    """Central difference of the loss in one kernel entry, on a float64 copy of ``model``."""
    twin = copy.deepcopy(model).astype(np.float64)
    k = twin.layers[layer_index].params["kernel"]
    w0 = float(k[at])
    k[at] = w0 + h
    up = _loss64(twin, x, labels)
    k[at] = w0 - h
    down = _loss64(twin, x, labels)
    k[at] = w0
    return (up - down) / (2 * h)


def _chosen(model, x_conv, y_conv, layer_index, upstream, index, x, labels) -> Chosen:
    conv: Conv2D = model.layers[layer_index]
    f, c, u, v = index
    ho, wo = conv.output_shape[:2]
    sh, sw = conv.strides
    dz = upstream[..., f].astype(np.float64)  # (N, Ho, Wo)
    if conv.activation == "relu":  # the fused ReLU's gate: the output was > 0
        dz = dz * (y_conv[..., f] > 0)
    (t, b), (le, r) = conv.pads
    xp = np.pad(np.asarray(x_conv, np.float64), ((0, 0), (t, b), (le, r), (0, 0)))
    inputs = xp[:, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw, c]
    products = dz * inputs
    at = (u, v, c, f)
    return Chosen(
        index=index,
        layer_index=layer_index,
        upstream=dz,
        inputs=np.ascontiguousarray(inputs),
        products=products,
        total=float(products.sum()),
        gradient=float(conv.grads["kernel"][at]),
        finite_difference=_finite_difference(model, x, labels, layer_index, at),
        h=FD_STEP,
    )


def _update(opt, model, layer_index, index, g) -> Update:
    conv = model.layers[layer_index]
    f, c, u, v = index
    at = (u, v, c, f)
    kernel = conv.params["kernel"]
    before, k_before = float(kernel[at]), kernel[:, :, c, f].astype(np.float64)
    opt.step()
    after, k_after = float(kernel[at]), kernel[:, :, c, f].astype(np.float64)
    state_all = opt.state_dict()
    hyper = {k: float(val) for k, val in state_all["hyperparameters"].items() if k != "lr"}
    slots = state_all["slots"].get(f"{conv.name}/kernel", {})
    state = {k: float(a[at]) for k, a in slots.items()}
    t = int(state_all["iterations"])
    lr = float(opt.lr)
    derived: dict[str, float] = {}
    if opt.name == "sgd":
        derived["step"] = lr * g
    elif opt.name == "rmsprop":
        derived["denominator"] = math.sqrt(state["velocity"] + hyper["eps"])
        derived["step"] = lr * g / derived["denominator"]
    elif opt.name == "adam":
        b1, b2 = hyper["beta1"], hyper["beta2"]
        derived["correction1"] = 1.0 - b1**t
        derived["correction2"] = 1.0 - b2**t
        derived["m_hat"] = state["m"] / derived["correction1"]
        derived["v_hat"] = state["v"] / derived["correction2"]
        derived["alpha"] = lr * math.sqrt(derived["correction2"]) / derived["correction1"]
        derived["step"] = derived["alpha"] * state["m"] / (math.sqrt(state["v"]) + hyper["eps"])
    return Update(
        optimizer=opt.name,
        lr=lr,
        hyper=hyper,
        t=t,
        g=g,
        before=before,
        after=after,
        state=state,
        derived=derived,
        kernel_before=k_before,
        kernel_after=k_after,
    )


def _per_sample(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # log_softmax, not log(softmax): after a too-large step p(true) can underflow to 0
    logp = log_softmax(np.asarray(logits, np.float64))
    return -logp[np.arange(len(labels)), labels]


def walkthrough(config: StepConfig) -> Walkthrough:
    """Record one training step for ``config`` (see the module docstring)."""
    _check_choice(config.optimizer, OPTIMIZERS, "optimizer")
    if not (isinstance(config.lr, int | float) and math.isfinite(config.lr) and config.lr > 0):
        raise CodedError("err.step.lr", lr=str(config.lr))
    idx, x, labels = draw_batch(config.net, config.batch_size, config.batch_seed)
    model = build_net(config.net, config.scheme, config.seed)
    index = _check_weight(model, config.weight)
    inits = _inits(model, config.scheme)
    initial = copy.deepcopy(model)
    x = model.prepare(x)

    # 2. forward, layer by layer (training=True: each layer keeps what backward needs)
    outputs = []
    h = x
    for layer in model.layers:
        h = layer.forward(h, True)
        outputs.append(np.array(h, copy=True))
    logits = outputs[-1]
    # 3. loss
    loss, dlogits = softmax_cross_entropy(logits, labels)
    probs = softmax(np.asarray(logits, np.float64))
    losses = _per_sample(logits, labels)
    # 4. backward: the gradient reaching each layer, then its own parameter gradients
    # (input_grad: the layers below the first conv get their upstream gradient too)
    model.input_grad = True
    upstreams = []
    d = np.asarray(dlogits, model.dtype)
    for layer in reversed(model.layers):
        upstreams.append(np.array(d, copy=True))
        d = layer.backward(d)
    upstreams.reverse()
    steps = [
        LayerStep(
            name=layer.name,
            keras_name=layer.keras_name,
            output=out,
            upstream=up,
            grads={k: g.copy() for k, g in layer.grads.items()},
        )
        for layer, out, up in zip(model.layers, outputs, upstreams, strict=True)
    ]
    li = _first_conv(model)
    x_conv = x if li == 0 else outputs[li - 1]
    chosen = _chosen(model, x_conv, outputs[li], li, upstreams[li], index, x, labels)
    # 5. update with the model's own optimizer, then the same batch again
    opt = make_optimizer(config.optimizer, model, lr=config.lr)
    update = _update(opt, model, li, index, chosen.gradient)
    next_logits = model.forward(x)
    next_losses = _per_sample(next_logits, labels)
    return Walkthrough(
        config=config,
        indices=idx,
        x=x,
        labels=labels,
        inits=inits,
        layers=steps,
        logits=np.asarray(logits),
        probs=probs,
        losses=losses,
        loss=float(loss),
        dlogits=np.asarray(dlogits),
        weight=chosen,
        update=update,
        next_losses=next_losses,
        next_loss=float(softmax_cross_entropy(next_logits, labels)[0]),
        initial=initial,
    )
