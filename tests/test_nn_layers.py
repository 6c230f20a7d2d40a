"""`convviz.nn` reference layers and blocks: forward against oracles, gradients against
finite differences, the conv against its loop version.

Gradient checks run in float64 (``layer.astype(np.float64)``) with central
differences on a random projection ``L = sum(y * r)`` of the output. The fast
path (``convviz.nn.fast``) is checked against these layers in ``test_nn_fast.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal
from skimage.measure import block_reduce

from convviz.conv import conv2d
from convviz.nn import functional as F
from convviz.nn.blocks import Concat, Residual, dense_block
from convviz.nn.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.model import Sequential
from tests.support.helpers import assert_matches

EPS = 1e-6


def _numeric_grad(f, arr: np.ndarray, rng: np.random.Generator, max_entries: int = 40):
    """Central differences of scalar ``f()`` w.r.t. (a random subset of) ``arr``'s entries."""
    flat = arr.reshape(-1)
    idx = np.arange(flat.size)
    if flat.size > max_entries:
        idx = rng.choice(flat.size, max_entries, replace=False)
    grads = np.zeros(idx.size)
    for k, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        grads[k] = (up - down) / (2 * EPS)
    return idx, grads


def check_layer(layer, x, *, before_forward=None, rtol=1e-5, atol=1e-7, seed=0):
    """Build ``layer`` for ``x``, then check shape, dtype, dx and every param grad.

    ``before_forward`` runs before each forward (e.g. to re-seed a dropout mask).
    """
    rng = np.random.default_rng(seed)
    layer.build(x.shape[1:], np.random.default_rng(seed))
    layer.astype(np.float64)
    for p in layer.params.values():  # non-trivial biases, BatchNorm gamma/beta
        p += rng.normal(0, 0.1, p.shape)

    def run():
        if before_forward:
            before_forward(layer)
        return layer.forward(x, training=True)

    y = run()
    assert y.shape == (x.shape[0], *layer.output_shape), f"output shape {y.shape}"
    assert y.dtype == np.float64, f"output dtype {y.dtype}"
    r = rng.standard_normal(y.shape)
    dx = layer.backward(r)
    analytic = {"x": np.array(dx, copy=True)}
    if hasattr(layer, "named_parameters"):
        for name, _, g in layer.named_parameters():
            analytic[name] = g.copy()

    def loss():
        return float(np.sum(run() * r))

    arrays = {"x": x} | {name: p for name, p, _ in layer.named_parameters()}
    for name, arr in arrays.items():
        idx, num = _numeric_grad(loss, arr, rng)
        assert_matches(
            analytic[name].reshape(-1)[idx], num, rtol=rtol, atol=atol, what=f"{layer.name} d{name}"
        )
    return y


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize(
    ("strides", "padding", "relu"),
    [(1, "valid", False), (1, "same", True), (2, "valid", True), (2, "same", False)],
)
def test_conv2d_gradients(strides, padding, relu):
    layer = Conv2D(3, 3, strides=strides, padding=padding, activation="relu" if relu else None)
    layer.name = "conv2d"
    check_layer(layer, _x((2, 7, 6, 2)))


def test_conv2d_gradients_one_channel_and_no_bias():
    layer = Conv2D(2, (2, 3), use_bias=False, name="conv2d")
    check_layer(layer, _x((2, 5, 6, 1)))
    assert "bias" not in layer.params


@pytest.mark.parametrize(("size", "strides"), [(2, None), (3, None), (3, 2), (2, 1)])
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_pool_gradients(cls, size, strides):
    check_layer(cls(size, strides, name="pool"), _x((2, 7, 8, 2)))


@pytest.mark.parametrize(
    "layer",
    [
        ReLU(name="a"),
        LeakyReLU(0.2, name="a"),
        Sigmoid(name="a"),
        Tanh(name="a"),
        Identity(name="a"),
    ],
)
def test_activation_gradients(layer):
    check_layer(layer, _x((2, 3, 4, 2)))


def test_flatten_and_dense_gradients():
    check_layer(Flatten(name="flatten"), _x((2, 3, 2, 2)))
    check_layer(Dense(4, name="dense"), _x((3, 5)))
    check_layer(Dense(4, activation="relu", name="dense"), _x((3, 5)))
    check_layer(Dense(4, activation="softmax", name="dense"), _x((3, 5)))  # not a final layer


def test_dropout_gradients_with_a_fixed_mask():
    def reseed(layer):
        layer.rng = np.random.default_rng(7)  # the same mask at every forward

    y = check_layer(Dropout(0.4, name="dropout"), _x((4, 5, 5, 2)), before_forward=reseed)
    zeros = np.mean(y == 0)
    assert 0.2 < zeros < 0.6


@pytest.mark.parametrize("shape", [(6, 3), (3, 4, 4, 2)])
def test_batchnorm_gradients_in_training_mode(shape):
    check_layer(BatchNorm(name="bn"), 2.0 + _x(shape), rtol=1e-4, atol=1e-6)


def test_residual_block_gradients_with_projection():
    block = Residual(
        [Conv2D(3, 3, strides=2, padding="same", activation="relu"), Conv2D(3, 3, padding="same")],
        name="residual",
    )
    check_layer(block, _x((2, 6, 5, 2)))
    assert block.proj is not None and block.proj.strides == (2, 2)


def test_residual_block_gradients_identity_skip():
    block = Residual([Conv2D(2, 3, padding="same"), Tanh()], name="residual")
    check_layer(block, _x((2, 5, 5, 2)))
    assert block.proj is None


def test_concat_block_gradients():
    block = Concat(
        [
            [Identity()],
            [Conv2D(2, 1, activation="relu")],
            [Conv2D(1, 1), Conv2D(3, 3, padding="same")],
        ],
        name="concat",
    )
    y = check_layer(block, _x((2, 5, 4, 2)))
    assert y.shape == (2, 5, 4, 7)


def test_dense_block_gradients_and_growth():
    model = Sequential(dense_block(2, 2), input_shape=(5, 5, 3), input_grad=True)
    assert model.output_shape == (5, 5, 7)
    check_layer(model.layers[1], _x((2, 5, 5, 5)))


def small_model(**kw) -> Sequential:
    """A float64 conv net; its 9x9 -> 7x7 conv feeds a pool that drops a row and a column."""
    layers = [
        Conv2D(3, 3, activation="relu"),
        MaxPool2D(2),
        Conv2D(4, 3, padding="same", activation="relu"),
        Flatten(),
        Dense(5, activation="relu"),
        Dense(3, activation="softmax"),
    ]
    return Sequential(layers, input_shape=(9, 9, 2), seed=3, **kw).astype(np.float64)


def test_whole_model_gradients_through_the_loss():
    """Every parameter's gradient of the mean cross-entropy, and dx, by finite differences."""
    rng = np.random.default_rng(4)
    model = small_model(input_grad=True)
    for _, p, _ in model.parameters():
        p += rng.normal(0, 0.05, p.shape)
    x = rng.random((6, 9, 9, 2))
    labels = rng.integers(0, 3, 6)
    _, d = softmax_cross_entropy(model.forward(x, training=True), labels)
    dx = model.backward(d)
    analytic = {n: g.copy() for n, _, g in model.parameters()} | {"x": dx.copy()}

    def loss():
        return softmax_cross_entropy(model.forward(x, training=True), labels)[0]

    for name, arr in [("x", x)] + [(n, p) for n, p, _ in model.parameters()]:
        idx, num = _numeric_grad(loss, arr, rng, max_entries=12)
        assert_matches(analytic[name].reshape(-1)[idx], num, rtol=1e-5, atol=1e-8, what=f"d{name}")


# ------------------------------------------------------------------ the loop version


CONV_CASES = [
    dict(kernel_size=3),
    dict(kernel_size=3, padding="same", activation="relu"),
    dict(kernel_size=(2, 3), strides=2),
    dict(kernel_size=3, strides=(2, 1), padding="same", use_bias=False),
    dict(kernel_size=1, activation="relu"),
]


@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_forward_and_backward_match_the_loop_version(kw):
    """The im2col forward/backward against ``forward_naive``/``_backward_naive`` (float64)."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 7, 6, 3))
    layer = Conv2D(4, name="c", **kw)
    layer.build(x.shape[1:], rng)
    layer.astype(np.float64)
    if layer.use_bias:
        layer.params["bias"][...] = rng.normal(0, 0.5, 4)
    y = layer.forward(x, training=True)
    assert_matches(y, layer.forward_naive(x), rtol=1e-12, atol=1e-12, what="forward")
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    dx_loop, grads_loop = layer._backward_naive(x, dy)
    assert_matches(dx, dx_loop, rtol=1e-12, atol=1e-12, dtype=np.float64, what="dx")
    assert sorted(grads_loop) == sorted(layer.grads)
    for key, g in grads_loop.items():
        assert_matches(layer.grads[key], g, rtol=1e-12, atol=1e-12, what=f"d{key}")


def test_conv2d_loop_backward_matches_finite_differences():
    """The loop version is an oracle too: its gradients against central differences."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 5, 6, 2))
    layer = Conv2D(3, 3, strides=2, padding="same", activation="relu", name="c")
    layer.build(x.shape[1:], rng)
    layer.astype(np.float64)
    layer.params["bias"][...] = rng.normal(0, 0.3, 3)
    r = rng.standard_normal((2, *layer.output_shape))
    dx, grads = layer._backward_naive(x, r)

    def loss():
        return float(np.sum(layer.forward_naive(x) * r))

    for name, arr, g in [("x", x, dx)] + [(k, layer.params[k], grads[k]) for k in grads]:
        idx, num = _numeric_grad(loss, arr, rng, max_entries=20)
        assert_matches(g.reshape(-1)[idx], num, rtol=1e-5, atol=1e-7, what=f"d{name}")


def test_backward_needs_a_training_forward():
    layer = Conv2D(2, 3, name="c")
    layer.build((5, 5, 1), np.random.default_rng(0))
    layer.forward(np.zeros((1, 5, 5, 1), np.float32))  # evaluation caches nothing
    with pytest.raises(ValueError, match="`backward` needs"):
        layer.backward(np.zeros((1, 3, 3, 2), np.float32))


# ------------------------------------------------------------------ forward oracles


@pytest.mark.parametrize(
    ("strides", "padding", "k"), [(1, "valid", 3), (1, "same", 3), (2, "same", 3), (2, "valid", 2)]
)
def test_conv2d_forward_matches_core_conv(strides, padding, k):
    rng = np.random.default_rng(6)
    x = rng.random((3, 9, 8, 2)).astype(np.float32)
    layer = Conv2D(4, k, strides=strides, padding=padding, name="c")
    layer.build(x.shape[1:], rng)
    layer.params["bias"][...] = rng.standard_normal(4)
    y = layer.forward(x)
    w = layer.params["kernel"].transpose(3, 2, 0, 1)  # (kh, kw, C, F) -> (F, C, kh, kw)
    for n in range(3):
        want = conv2d(
            x[n].transpose(2, 0, 1), w, layer.params["bias"], stride=strides, padding=padding
        )  # (F, Ho, Wo)
        assert_matches(y[n], want.transpose(1, 2, 0), rtol=1e-5, atol=1e-6, what=f"image {n}")


def test_conv2d_forward_matches_scipy_correlate():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 7, 3))
    layer = Conv2D(2, 3, activation="relu", name="c").astype(np.float64)
    layer.build(x.shape[1:], rng)
    layer.astype(np.float64)
    y = layer.forward(x)
    k = layer.params["kernel"]
    for n in range(2):
        for f in range(2):
            z = sum(signal.correlate(x[n, :, :, c], k[:, :, c, f], mode="valid") for c in range(3))
            assert_matches(y[n, :, :, f], np.maximum(z, 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hw", [(6, 8), (7, 9)])
@pytest.mark.parametrize(("cls", "func"), [(MaxPool2D, np.max), (AvgPool2D, np.mean)])
def test_pooling_forward_matches_block_reduce(cls, func, hw):
    x = _x((2, *hw, 3))
    layer = cls(2, name="p")
    layer.build(x.shape[1:], np.random.default_rng(0))
    layer.astype(np.float64)
    h, w = (hw[0] // 2) * 2, (hw[1] // 2) * 2  # valid pooling drops the odd row/column
    want = block_reduce(x[:, :h, :w], (1, 2, 2, 1), func)
    assert_matches(layer.forward(x), want, rtol=1e-12, atol=1e-12)


def test_maxpool_routes_ties_to_the_first_element_only():
    x = np.ones((1, 2, 2, 1))
    layer = MaxPool2D(2, name="p")
    layer.build((2, 2, 1), np.random.default_rng(0))
    layer.astype(np.float64)
    layer.forward(x, training=True)
    dx = layer.backward(np.full((1, 1, 1, 1), 3.0))
    assert dx[0, :, :, 0].tolist() == [[3.0, 0.0], [0.0, 0.0]]


def test_batchnorm_eval_uses_moving_statistics():
    layer = BatchNorm(momentum=0.5, epsilon=1e-3, name="bn")
    layer.build((3,), np.random.default_rng(0))
    layer.astype(np.float64)
    x = _x((8, 3)) * 2 + 1
    layer.forward(x, training=True)
    assert_matches(layer.buffers["moving_mean"], 0.5 * x.mean(0), rtol=1e-12, atol=1e-12)
    assert_matches(layer.buffers["moving_variance"], 0.5 + 0.5 * x.var(0), rtol=1e-12, atol=1e-12)
    want = (x - 0.5 * x.mean(0)) / np.sqrt(0.5 + 0.5 * x.var(0) + 1e-3)
    assert_matches(layer.forward(x, training=False), want, rtol=1e-12, atol=1e-12)


def test_dropout_is_identity_in_eval_and_scales_in_training():
    layer = Dropout(0.5, name="d")
    layer.build((1000,), np.random.default_rng(0))
    x = np.ones((4, 1000), np.float32)
    assert layer.forward(x) is not None and np.array_equal(layer.forward(x), x)
    y = layer.forward(x, training=True)
    assert set(np.unique(y).tolist()) <= {0.0, 2.0}
    assert abs(y.mean() - 1.0) < 0.1


def test_im2col_col2im_are_adjoint():
    # <im2col(x), c> == <x, col2im(c)> for any x, c: the backward is the true transpose.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 7, 6, 3))
    for s in (1, 2, 3):
        cols = F.im2col(x, 3, 2, s, s)
        c = rng.standard_normal(cols.shape)
        back = F.col2im(c, x.shape, 3, 2, s, s)
        assert np.isclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("make", "param"),
    [
        (lambda: Conv2D(0, 3), "filters"),
        (lambda: Conv2D(4, 0), "kernel_size"),
        (lambda: Conv2D(4, 3, strides=0), "strides"),
        (lambda: Conv2D(4, 3, padding="full"), "padding"),
        (lambda: Conv2D(4, 3, activation="elu"), "activation"),
        (lambda: Conv2D(4, 3, kernel_initializer="ones"), "kernel_initializer"),
        (lambda: MaxPool2D(0), "pool_size"),
        (lambda: AvgPool2D(2, strides=0), "strides"),
        (lambda: MaxPool2D(2, padding="same"), "padding"),
        (lambda: Dense(0), "units"),
        (lambda: Dense(3, activation="gelu"), "activation"),
        (lambda: Dropout(1.0), "rate"),
        (lambda: LeakyReLU(-1), "alpha"),
        (lambda: BatchNorm(momentum=2), "momentum"),
        (lambda: BatchNorm(epsilon=0), "epsilon"),
        (lambda: Residual([]), "layers"),
        (lambda: Residual([ReLU()], projection="yes"), "projection"),
        (lambda: Concat([]), "branches"),
        (lambda: dense_block(0, 2), "growth"),
        (lambda: dense_block(2, 0), "n"),
    ],
)
def test_constructor_validation_names_the_parameter(make, param):
    with pytest.raises(ValueError, match=f"`{param}`"):
        make()


def test_build_and_call_validation():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="`kernel_size`"):
        Conv2D(2, 5).build((3, 3, 1), rng)
    with pytest.raises(ValueError, match="`input_shape`"):
        Dense(2).build((3, 3, 1), rng)
    with pytest.raises(ValueError, match="`projection`"):
        Residual([Conv2D(2, 3)], projection=False).build((5, 5, 1), rng)
    layer = Conv2D(2, 3, name="c")
    layer.build((5, 5, 1), rng)
    with pytest.raises(ValueError, match="`x`"):
        layer.forward(np.zeros((1, 6, 5, 1), np.float32))
