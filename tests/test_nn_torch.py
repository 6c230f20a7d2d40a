"""`convviz.nn` layers against PyTorch (the oracle), forward and gradients, in float64.

PyTorch is NCHW and stores conv kernels as (F, C, kh, kw); we are NHWC with Keras
kernels (kh, kw, C, F): every comparison transposes explicitly.
"""

from __future__ import annotations

import numpy as np
import pytest

from convviz.nn.layers import AvgPool2D, BatchNorm, Conv2D, Dense, MaxPool2D
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.presets import build_model
from tests.support.helpers import assert_matches

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _build(layer, shape, seed=0):
    layer.build(shape, np.random.default_rng(seed))
    return layer.astype(np.float64)


def _nchw(x):
    return torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


def _run_ours(layer, x, dy, training=True):
    y = layer.forward(x, training=training)
    dx = layer.backward(dy)
    return y, dx


@pytest.mark.parametrize(
    ("strides", "padding", "hw", "k", "relu"),
    [
        (1, "valid", (7, 6), 3, False),
        (1, "same", (6, 7), 3, True),
        (2, "valid", (9, 8), 3, False),
        (2, "same", (8, 9), 3, True),  # TF "same" with stride 2 pads asymmetrically
        (1, "same", (6, 6), 2, False),  # even kernel: the extra pixel goes after
        ((2, 1), "valid", (7, 7), (2, 3), False),
    ],
)
def test_conv2d_matches_torch(strides, padding, hw, k, relu):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, *hw, 3))
    layer = _build(
        Conv2D(4, k, strides=strides, padding=padding, activation="relu" if relu else None),
        x.shape[1:],
    )
    layer.params["bias"][...] = rng.standard_normal(4)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)

    xt = _nchw(x)
    wt = torch.tensor(layer.params["kernel"].transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(layer.params["bias"].copy(), requires_grad=True)
    (t, b), (le, r) = layer.pads
    yt = F.conv2d(F.pad(xt, (le, r, t, b)), wt, bt, stride=layer.strides)
    if relu:
        yt = F.relu(yt)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))

    assert_matches(y, _nhwc(yt), rtol=1e-10, atol=1e-12, dtype=np.float64, what="conv forward")
    assert_matches(dx, _nhwc(xt.grad), rtol=1e-10, atol=1e-12, what="conv dx")
    assert_matches(
        layer.grads["kernel"],
        wt.grad.numpy().transpose(2, 3, 1, 0),
        rtol=1e-10,
        atol=1e-12,
        what="conv dW",
    )
    assert_matches(layer.grads["bias"], bt.grad.numpy(), rtol=1e-10, atol=1e-12, what="conv db")


@pytest.mark.parametrize(
    ("size", "strides", "hw"),
    [
        (2, None, (6, 6)),
        (2, None, (7, 5)),
        (3, None, (9, 7)),
        (3, 2, (7, 8)),
        (2, 1, (4, 5)),
        ((2, 3), None, (6, 9)),
        ((1, 2), None, (5, 6)),
        ((2, 1), None, (6, 5)),
    ],
)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_torch(kind, size, strides, hw):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, *hw, 3))
    if kind == "max":
        x[0, 0, 0, 0] = x[0, 0, 1, 0] = x[0, 1, 0, 0] = 5.0  # a tie: torch's winner is the first
        x = np.round(x, 1)  # many more ties
    cls = MaxPool2D if kind == "max" else AvgPool2D
    layer = _build(cls(size, strides), x.shape[1:])
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)

    xt = _nchw(x)
    fn = F.max_pool2d if kind == "max" else F.avg_pool2d
    yt = fn(xt, layer.pool_size, layer.strides)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    assert_matches(
        y, _nhwc(yt), rtol=1e-12, atol=1e-12, dtype=np.float64, what=f"{kind}pool forward"
    )
    assert_matches(dx, _nhwc(xt.grad), rtol=1e-12, atol=1e-12, what=f"{kind}pool dx")


@pytest.mark.parametrize("activation", [None, "relu"])
def test_dense_matches_torch(activation):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 7))
    layer = _build(Dense(4, activation=activation), (7,))
    layer.params["bias"][...] = rng.standard_normal(4)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(layer.params["kernel"].T.copy(), requires_grad=True)
    bt = torch.tensor(layer.params["bias"].copy(), requires_grad=True)
    yt = F.linear(xt, wt, bt)
    if activation == "relu":
        yt = F.relu(yt)
    yt.backward(torch.tensor(dy))
    assert_matches(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12, what="dense forward")
    assert_matches(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12, what="dense dx")
    assert_matches(
        layer.grads["kernel"], wt.grad.numpy().T, rtol=1e-12, atol=1e-12, what="dense dW"
    )
    assert_matches(layer.grads["bias"], bt.grad.numpy(), rtol=1e-12, atol=1e-12, what="dense db")


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 2)])
def test_batchnorm_matches_torch(shape):
    rng = np.random.default_rng(4)
    x = 3.0 + 2.0 * rng.standard_normal(shape)
    c = shape[-1]
    layer = _build(BatchNorm(momentum=0.9, epsilon=1e-3), shape[1:])
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, c)
    layer.params["beta"][...] = rng.standard_normal(c)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(shape)
    dx = layer.backward(dy)

    # torch normalises axis 1: move our channel axis there.
    to_t = (lambda a: a) if len(shape) == 2 else (lambda a: a.transpose(0, 3, 1, 2))
    from_t = (lambda a: a) if len(shape) == 2 else (lambda a: a.transpose(0, 2, 3, 1))
    xt = torch.tensor(np.ascontiguousarray(to_t(x)), requires_grad=True)
    bn = (
        torch.nn.BatchNorm1d(c, eps=1e-3, momentum=0.1)
        if len(shape) == 2
        else torch.nn.BatchNorm2d(c, eps=1e-3, momentum=0.1)
    )
    bn = bn.double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(layer.params["gamma"]))
        bn.bias.copy_(torch.tensor(layer.params["beta"]))
    yt = bn.train()(xt)
    yt.backward(torch.tensor(np.ascontiguousarray(to_t(dy))))
    assert_matches(y, from_t(yt.detach().numpy()), rtol=1e-10, atol=1e-10, what="bn train forward")
    assert_matches(dx, from_t(xt.grad.numpy()), rtol=1e-9, atol=1e-10, what="bn dx")
    assert_matches(
        layer.grads["gamma"], bn.weight.grad.numpy(), rtol=1e-10, atol=1e-10, what="bn dgamma"
    )
    assert_matches(
        layer.grads["beta"], bn.bias.grad.numpy(), rtol=1e-10, atol=1e-10, what="bn dbeta"
    )
    # Running mean follows the same update (torch's running variance is unbiased, Keras's is not).
    assert_matches(
        layer.buffers["moving_mean"],
        bn.running_mean.numpy(),
        rtol=1e-12,
        atol=1e-12,
        what="moving mean",
    )
    m = x.reshape(-1, c).shape[0]
    expected_var = 0.9 * 1.0 + 0.1 * (bn.running_var.numpy() - 0.9) / 0.1 * (m - 1) / m
    assert_matches(
        layer.buffers["moving_variance"], expected_var, rtol=1e-10, atol=1e-12, what="moving var"
    )

    # Eval mode: both use the running statistics; give torch ours.
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor(layer.buffers["moving_mean"]))
        bn.running_var.copy_(torch.tensor(layer.buffers["moving_variance"]))
    y_eval = layer.forward(x, training=False)
    yt_eval = bn.eval()(torch.tensor(np.ascontiguousarray(to_t(x))))
    assert_matches(
        y_eval, from_t(yt_eval.detach().numpy()), rtol=1e-10, atol=1e-10, what="bn eval forward"
    )


def test_classic_model_gradients_match_torch_in_float32():
    """The whole classic net, float32 as trained: loss and every gradient vs torch."""
    model = build_model("classic", seed=0)
    rng = np.random.default_rng(5)
    for _, p, _ in model.parameters():  # non-zero biases exercise the bias path
        p[...] += rng.normal(0, 0.01, p.shape).astype(np.float32)
    x = rng.random((40, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, 40)
    logits = model.forward(x, training=True)
    # The reference layers; convviz.nn.fast is checked against them in test_nn_fast.py.
    loss, dlogits = softmax_cross_entropy(logits, labels)
    model.backward(dlogits)

    nn = torch.nn
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
    )
    head = nn.Sequential(nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))
    params = dict((n, p) for n, p, _ in model.parameters())
    with torch.no_grad():
        for i, name in ((0, "conv2d"), (3, "conv2d_1"), (6, "conv2d_2")):
            net[i].weight.copy_(torch.tensor(params[f"{name}/kernel"].transpose(3, 2, 0, 1)))
            net[i].bias.copy_(torch.tensor(params[f"{name}/bias"]))
        for i, name in ((0, "dense"), (2, "dense_1")):
            head[i].weight.copy_(torch.tensor(params[f"{name}/kernel"].T))
            head[i].bias.copy_(torch.tensor(params[f"{name}/bias"]))
    feats = net(torch.tensor(x.transpose(0, 3, 1, 2).copy()))
    logits_t = head(feats.permute(0, 2, 3, 1).reshape(40, -1))  # flatten in NHWC order, as Keras
    loss_t = F.cross_entropy(logits_t, torch.tensor(labels))
    loss_t.backward()

    assert_matches(
        logits, logits_t.detach().numpy(), rtol=1e-4, atol=1e-5, dtype=np.float32, what="logits"
    )
    assert abs(loss - loss_t.item()) < 1e-5
    grads = dict((n, g) for n, _, g in model.parameters())
    for i, name in ((0, "conv2d"), (3, "conv2d_1"), (6, "conv2d_2")):
        assert_matches(
            grads[f"{name}/kernel"],
            net[i].weight.grad.numpy().transpose(2, 3, 1, 0),
            rtol=1e-3,
            atol=1e-4,
            what=f"{name} dW",
        )
        assert_matches(
            grads[f"{name}/bias"], net[i].bias.grad.numpy(), rtol=1e-3, atol=1e-4, what=f"{name} db"
        )
    for i, name in ((0, "dense"), (2, "dense_1")):
        assert_matches(
            grads[f"{name}/kernel"],
            head[i].weight.grad.numpy().T,
            rtol=1e-3,
            atol=1e-4,
            what=f"{name} dW",
        )
