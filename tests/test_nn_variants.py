"""The BatchNorm and Dropout variants of ``tiny`` and ``classic`` (``convviz.nn.presets``).

Their layers are the reference layers (checked against torch and finite differences in
``test_nn_layers.py`` / ``test_nn_torch.py``); here: the architecture is the one named,
the fused fast path gives the reference numbers, and a float64 finite difference agrees
with the reference gradient of a BatchNorm model with its dropout mask held fixed.
"""

from __future__ import annotations

import numpy as np
import pytest

from convviz.nn import PRESETS
from convviz.nn.fast import FastPlan
from convviz.nn.layers import BatchNorm, Conv2D, Dropout, Flatten, ReLU
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.presets import (
    VARIANT_BASES,
    VARIANTS,
    build_model,
    variant_name,
    variant_of,
)
from tests.support.helpers import assert_matches


def _step(net, model, x, labels):
    logits = np.array(net.forward(x, training=True), copy=True)
    _, d = softmax_cross_entropy(logits, labels)
    dx = net.backward(d)
    grads = {n: g.copy() for n, _, g in model.parameters()}
    return logits, None if dx is None else np.array(dx, copy=True), grads


def test_variant_names_round_trip_and_are_not_base_presets():
    assert sorted(VARIANTS) == sorted(
        f"{b}{s}" for b in VARIANT_BASES for s in ("_bn", "_dropout", "_bn_dropout")
    )
    assert not set(VARIANTS) & set(PRESETS)
    for name in [*PRESETS, *VARIANTS]:
        base, bn, drop = variant_of(name)
        assert variant_name(base, batchnorm=bn, dropout=drop) == name
    assert variant_of("resnet") == ("resnet", False, False)
    assert variant_of("resnet_bn") == ("resnet_bn", False, False)  # not a variant base
    with pytest.raises(ValueError, match="`name` must be one of"):
        build_model("resnet_bn")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_put_batchnorm_after_each_conv_and_dropout_before_the_head(name):
    base, bn, drop = variant_of(name)
    plain = build_model(base, seed=0).layers
    layers = build_model(name, seed=0).layers
    kinds = [type(layer).__name__ for layer in layers]
    expected: list[str] = []
    for layer in plain:
        if bn and isinstance(layer, Conv2D):
            expected += ["Conv2D", "BatchNorm", "ReLU"]
        else:
            expected.append(type(layer).__name__)
        if drop and isinstance(layer, Flatten):
            expected.append("Dropout")
    assert kinds == expected
    convs = [layer for layer in layers if isinstance(layer, Conv2D)]
    if bn:  # BN's beta replaces the conv's bias; the ReLU moves behind the BN
        assert all(c.activation is None and not c.use_bias for c in convs)
        for i, layer in enumerate(layers):
            if isinstance(layer, BatchNorm):
                assert isinstance(layers[i - 1], Conv2D) and isinstance(layers[i + 1], ReLU)
    if drop:
        (dropout,) = [layer for layer in layers if isinstance(layer, Dropout)]
        assert dropout.rate == 0.5
    # Parameter count by hand: each conv loses its bias (F) and gains gamma, beta and the
    # two moving statistics (4 F); dropout has none.
    n_plain = build_model(base).count_params()
    filters = sum(c.filters for c in convs)
    assert build_model(name).count_params() == n_plain + (3 * filters if bn else 0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fast_path_training_step_equals_the_reference_in_float64(name):
    """One thread (BatchNorm models never slice a training batch; a single chain uses the
    model's own Dropout layer, so both paths draw the same mask)."""
    rng = np.random.default_rng(1)
    x = rng.random((24, 28, 28, 1))
    labels = rng.integers(0, 10, 24)
    results = []
    for use_plan in (False, True):
        model = build_model(name, seed=2).astype(np.float64)
        for _, p, _ in model.parameters():  # non-trivial gamma and beta too
            p += np.random.default_rng(3).normal(0, 0.02, p.shape)
        net = FastPlan(model, workers=1) if use_plan else model
        results.append(_step(net, model, x, labels))
        if use_plan:
            moving = {n: b.copy() for n, b in model.buffers()}
        else:
            moving_ref = {n: b.copy() for n, b in model.buffers()}
    (l1, _, g1), (l2, _, g2) = results
    assert_matches(l2, l1, rtol=1e-10, atol=1e-12, what="logits")
    assert list(g1) == list(g2)
    for key in g1:
        assert_matches(g2[key], g1[key], rtol=1e-10, atol=1e-12, what=f"d{key}")
    for key in moving_ref:
        assert_matches(moving[key], moving_ref[key], rtol=1e-12, atol=1e-14, what=key)


@pytest.mark.parametrize("name", ["classic_bn_dropout", "tiny_bn"])
def test_sliced_evaluation_equals_the_reference(name):
    rng = np.random.default_rng(4)
    x = rng.random((40, 28, 28, 1))
    model = build_model(name, seed=1).astype(np.float64)
    for _, b in model.buffers():  # moving statistics away from their (0, 1) start
        b += rng.uniform(0.1, 0.5, b.shape)
    plan = FastPlan(model, workers=2)
    got = plan.forward(x)
    assert len(plan._get_chains(False, 2)) == 2  # two slices on two threads
    assert_matches(got, model.forward(x), rtol=1e-12, atol=1e-12, what="logits")


def test_batchnorm_dropout_gradient_equals_a_finite_difference():
    """classic_bn_dropout, reference path, float64, 4 images; the dropout mask is redrawn
    from the same seed at every forward, so the loss is a smooth function of the weights."""
    rng = np.random.default_rng(6)
    x = rng.random((4, 28, 28, 1))
    labels = np.array([1, 3, 5, 7])
    model = build_model("classic_bn_dropout", seed=3).astype(np.float64)
    (dropout,) = [layer for layer in model.layers if isinstance(layer, Dropout)]

    def loss() -> float:
        dropout.rng = np.random.default_rng(11)
        value, _ = softmax_cross_entropy(model.forward(x, training=True), labels)
        return float(value)

    dropout.rng = np.random.default_rng(11)
    _, d = softmax_cross_entropy(model.forward(x, training=True), labels)
    model.backward(d)
    params = {n: (p, g.copy()) for n, p, g in model.parameters()}
    checks = [
        ("conv2d/kernel", (1, 2, 0, 5)),
        ("batch_normalization/gamma", (3,)),
        ("batch_normalization_1/beta", (7,)),
        ("dense/kernel", (10, 4)),
    ]
    eps = 1e-6
    for name, idx in checks:
        p, g = params[name]
        old = p[idx]
        p[idx] = old + eps
        up = loss()
        p[idx] = old - eps
        down = loss()
        p[idx] = old
        fd = (up - down) / (2 * eps)
        assert fd == pytest.approx(g[idx], rel=1e-5, abs=1e-9), name
