"""convviz.nn.walkthrough against an independent NumPy computation written here.

The oracle below has its own loops for the conv and the pool, its own softmax,
cross-entropy and backward pass by hand, and its own SGD / RMSprop / Adam
formulas; it shares nothing with convviz.nn but the initial weights and the batch.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from convviz.errors import CodedError
from convviz.nn import load_mnist
from convviz.nn.optim import make_optimizer
from convviz.nn.walkthrough import (
    OPTIMIZERS,
    SCHEMES,
    StepConfig,
    build_net,
    downsample,
    draw_batch,
    init_parameter,
    walkthrough,
)

LR = {"sgd": 0.1, "rmsprop": 0.01, "adam": 0.01}

# ------------------------------------------------------------------ the oracle


def conv_loop(x, k, b):
    """x (N, H, W, C), k (3, 3, C, F) valid stride 1 -> (N, H-2, W-2, F)."""
    n, h, w, c = x.shape
    kh, kw, _, f = k.shape
    y = np.zeros((n, h - kh + 1, w - kw + 1, f))
    for i in range(n):
        for r in range(h - kh + 1):
            for s in range(w - kw + 1):
                for q in range(f):
                    total = b[q]
                    for u in range(kh):
                        for v in range(kw):
                            for ch in range(c):
                                total += x[i, r + u, s + v, ch] * k[u, v, ch, q]
                    y[i, r, s, q] = total
    return y


def pool_loop(a):
    """2x2 max pool, returns the pooled map and the argmax position of each window."""
    n, h, w, c = a.shape
    out = np.zeros((n, h // 2, w // 2, c))
    where = {}
    for i in range(n):
        for r in range(h // 2):
            for s in range(w // 2):
                for ch in range(c):
                    win = a[i, 2 * r : 2 * r + 2, 2 * s : 2 * s + 2, ch]
                    j = int(np.argmax(win))  # the first maximum, as numpy's argmax
                    out[i, r, s, ch] = win.flat[j]
                    where[i, r, s, ch] = (2 * r + j // 2, 2 * s + j % 2)
    return out, where


def oracle(x, labels, k1, b1, k2, b2):
    """The hand-sized net's forward, loss and backward, written out."""
    n = len(x)
    z1 = conv_loop(x, k1, b1)  # (N, 8, 8, 2)
    a1 = np.where(z1 > 0, z1, 0.0)
    p1, where = pool_loop(a1)  # (N, 4, 4, 2)
    flat = p1.reshape(n, -1)  # C order: (row, col, channel)
    logits = flat @ k2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    losses = np.array([-math.log(probs[i, labels[i]]) for i in range(n)])
    onehot = np.zeros_like(probs)
    onehot[np.arange(n), labels] = 1
    dlogits = (probs - onehot) / n
    dk2 = flat.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dflat = dlogits @ k2.T
    dp1 = dflat.reshape(p1.shape)
    da1 = np.zeros_like(a1)
    for (i, r, s, ch), (y, xx) in where.items():
        da1[i, y, xx, ch] += dp1[i, r, s, ch]
    dz1 = da1 * (z1 > 0)
    dk1 = np.zeros_like(k1)
    for u in range(3):
        for v in range(3):
            for ch in range(k1.shape[2]):
                for q in range(k1.shape[3]):
                    dk1[u, v, ch, q] = np.sum(dz1[..., q] * x[:, u : u + 8, v : v + 8, ch])
    db1 = dz1.sum(axis=(0, 1, 2))
    return {
        "z1": z1, "a1": a1, "p1": p1, "flat": flat, "logits": logits, "probs": probs,
        "losses": losses, "loss": losses.mean(), "dlogits": dlogits, "dflat": dflat,
        "dp1": dp1, "da1": da1, "dz1": dz1, "dk1": dk1, "db1": db1, "dk2": dk2, "db2": db2,
    }  # fmt: skip


def oracle_loss(x, labels, k1, b1, k2, b2):
    return oracle(x, labels, k1, b1, k2, b2)["loss"]


def optimizer_formula(name, w, g, lr):
    """One first step of each optimizer, from its published formula (Keras's eps placement)."""
    if name == "sgd":
        return w - lr * g, {}
    if name == "rmsprop":
        rho, eps = 0.9, 1e-7
        v = (1 - rho) * g * g
        return w - lr * g / np.sqrt(v + eps), {"velocity": v}
    b1, b2, eps = 0.9, 0.999, 1e-7
    m, v = (1 - b1) * g, (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1), v / (1 - b2)
    # Keras folds the correction into the step: lr*sqrt(1-b2)/(1-b1) * m / (sqrt(v)+eps)
    return w - lr * math.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps), {
        "m": m,
        "v": v,
        "m_hat": m_hat,
        "v_hat": v_hat,
    }


def close(a, b, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol, atol)


# ------------------------------------------------------------------ the hand-sized step

CASES = [
    StepConfig(batch_size=3, batch_seed=0, scheme="glorot_uniform", optimizer="sgd", lr=0.1),
    StepConfig(batch_size=2, batch_seed=5, scheme="he_normal", optimizer="rmsprop", lr=0.01,
               weight=(1, 0, 2, 0)),
    StepConfig(batch_size=4, batch_seed=9, scheme="gaussian", optimizer="adam", lr=0.01,
               weight=(0, 0, 0, 2), seed=3),
    StepConfig(batch_size=3, batch_seed=2, scheme="uniform", optimizer="adam", lr=0.05,
               weight=(1, 0, 1, 2), seed=1),
]  # fmt: skip


@pytest.fixture(scope="module", params=range(len(CASES)), ids=lambda i: CASES[i].optimizer)
def case(request):
    cfg = CASES[request.param]
    w = walkthrough(cfg)
    first = w.inits[0]
    dense = w.inits[1]
    ref = oracle(w.x.astype(np.float64), w.labels, first.kernel, first.bias, dense.kernel,
                 dense.bias)  # fmt: skip
    return cfg, w, ref


def test_the_batch_is_the_mnist_digits_cropped_and_averaged(case):
    cfg, w, _ = case
    data = load_mnist()
    assert len(set(w.indices.tolist())) == cfg.batch_size
    for i, j in enumerate(w.indices):
        img = data.train_images[j].astype(np.float64) / 255
        mine = np.array(
            [[img[4 + 2 * r : 6 + 2 * r, 4 + 2 * s : 6 + 2 * s].mean() for s in range(10)]
             for r in range(10)]
        )  # fmt: skip
        close(w.x[i, :, :, 0], mine)
        assert w.labels[i] == data.train_labels[j]
    assert w.x.dtype == np.float64


def test_forward_every_layer(case):
    _, w, ref = case
    names = [s.keras_name for s in w.layers]
    assert names == ["Conv2D", "ReLU", "MaxPooling2D", "Flatten", "Dense"]
    for step, key in zip(w.layers, ("z1", "a1", "p1", "flat", "logits"), strict=True):
        close(step.output, ref[key])
    close(w.logits, ref["logits"])


def test_loss_softmax_and_per_sample_cross_entropy(case):
    _, w, ref = case
    close(w.probs, ref["probs"])
    close(w.losses, ref["losses"])
    close(w.loss, ref["loss"])
    close(w.dlogits, ref["dlogits"])
    close(w.probs.sum(axis=1), np.ones(len(w.labels)))


def test_backward_upstream_and_parameter_gradients(case):
    _, w, ref = case
    conv, relu, pool, flat, dense = w.layers
    close(dense.upstream, ref["dlogits"])
    close(flat.upstream, ref["dflat"])
    close(pool.upstream, ref["dp1"])
    # Where the ReLU passed a value, the pool's gradient reached it as in the oracle; in a
    # window of ReLU zeros (a tie) which zero gets it is a convention, and the ReLU's gate
    # blocks it anyway. Each window's gradient is conserved either way.
    live = ref["a1"] > 0
    close(relu.upstream[live], ref["da1"][live])
    n = len(w.labels)
    close(relu.upstream.reshape(n, 4, 2, 4, 2, 2).sum(axis=(2, 4)), ref["dp1"])
    close(conv.upstream, ref["dz1"])  # through the ReLU's gate: dL/d(the conv's output)
    close(conv.grads["kernel"], ref["dk1"])
    close(conv.grads["bias"], ref["db1"])
    close(dense.grads["kernel"], ref["dk2"])
    close(dense.grads["bias"], ref["db2"])
    assert relu.grads == {} and pool.grads == {}


def test_chosen_weight_gradient_is_the_written_out_sum(case):
    cfg, w, ref = case
    f, c, u, v = cfg.weight
    ch = w.weight
    terms = [
        (ref["dz1"][n, i, j, f], w.x[n, i + u, j + v, c])
        for n in range(cfg.batch_size)
        for i in range(8)
        for j in range(8)
    ]
    close(ch.upstream.ravel(), [g for g, _ in terms])
    close(ch.inputs.ravel(), [xv for _, xv in terms])
    close(ch.products.ravel(), [g * xv for g, xv in terms])
    close(ch.total, sum(g * xv for g, xv in terms))
    close(ch.total, ch.gradient)
    close(ch.gradient, ref["dk1"][u, v, c, f])


def test_chosen_weight_gradient_equals_a_float64_finite_difference(case):
    cfg, w, _ = case
    f, c, u, v = cfg.weight
    k1 = w.inits[0].kernel
    h = 1e-5
    kp, km = k1.copy(), k1.copy()
    kp[u, v, c, f] += h
    km[u, v, c, f] -= h
    args = (w.inits[0].bias, w.inits[1].kernel, w.inits[1].bias)
    x = w.x.astype(np.float64)
    fd = (oracle_loss(x, w.labels, kp, *args) - oracle_loss(x, w.labels, km, *args)) / (2 * h)
    assert abs(fd) > 1e-6  # the chosen weight has a gradient worth checking
    assert abs(w.weight.gradient - fd) <= 1e-6 * abs(fd)
    assert abs(w.weight.finite_difference - fd) <= 1e-9 * abs(fd) + 1e-12
    assert w.weight.relative_error < 1e-6


def test_update_equals_the_formula_and_the_optimizers_own_step(case):
    cfg, w, ref = case
    f, c, u, v = cfg.weight
    up = w.update
    k1 = w.inits[0].kernel
    g = ref["dk1"]
    after, state = optimizer_formula(cfg.optimizer, k1, g, cfg.lr)
    close(up.kernel_before, k1[:, :, c, f])
    close(up.kernel_after, after[:, :, c, f], rtol=1e-10)
    close(up.before, k1[u, v, c, f])
    close(up.after, after[u, v, c, f], rtol=1e-10)
    close(up.g, g[u, v, c, f])
    for key in ("velocity", "m", "v"):
        if key in state:
            close(up.state[key], state[key][u, v, c, f], rtol=1e-10)
    for key in ("m_hat", "v_hat"):
        if key in state:
            close(up.derived[key], state[key][u, v, c, f], rtol=1e-10)
    close(up.before - up.derived["step"], up.after, rtol=1e-10)
    assert up.t == 1 and up.lr == cfg.lr and up.optimizer == cfg.optimizer
    # ... and the optimizer's own step on a fresh copy of the net, with the same gradients
    net = build_net("hand", cfg.scheme, cfg.seed)
    net.forward(w.x, True)
    net.backward(w.dlogits)
    opt = make_optimizer(cfg.optimizer, net, lr=cfg.lr)
    opt.step()
    close(net.layers[0].params["kernel"][:, :, c, f], up.kernel_after)


def test_next_loss_is_the_same_batch_after_the_update(case):
    cfg, w, ref = case
    k1 = w.inits[0].kernel
    k2 = w.inits[1].kernel
    a1, _ = optimizer_formula(cfg.optimizer, k1, ref["dk1"], cfg.lr)
    b1, _ = optimizer_formula(cfg.optimizer, w.inits[0].bias, ref["db1"], cfg.lr)
    a2, _ = optimizer_formula(cfg.optimizer, k2, ref["dk2"], cfg.lr)
    b2, _ = optimizer_formula(cfg.optimizer, w.inits[1].bias, ref["db2"], cfg.lr)
    nxt = oracle(w.x.astype(np.float64), w.labels, a1, b1, a2, b2)
    close(w.next_losses, nxt["losses"], rtol=1e-9)
    close(w.next_loss, nxt["loss"], rtol=1e-9)


def test_init_parameters_follow_the_formulas(case):
    cfg, w, _ = case
    conv, dense = w.inits
    assert (conv.fan_in, conv.fan_out) == (9, 18)
    assert (dense.fan_in, dense.fan_out) == (32, 10)
    for layer in (conv, dense):
        name, value = layer.parameter_name, layer.parameter
        want = {
            "glorot_uniform": ("limit", math.sqrt(6 / (layer.fan_in + layer.fan_out))),
            "he_normal": ("std", math.sqrt(2 / layer.fan_in)),
            "gaussian": ("std", 0.05),
            "uniform": ("limit", 0.05),
        }[cfg.scheme]
        assert name == want[0]
        close(value, want[1])
        if name == "limit":
            assert np.abs(layer.kernel).max() <= value
        elif cfg.scheme == "he_normal":  # truncated at 2 std: no weight beyond 2 * std/0.8796
            assert np.abs(layer.kernel).max() <= 2 * value / 0.87962566103423978 + 1e-12
        else:  # a plain normal: beyond 5 std has probability 6e-7 per weight
            assert np.abs(layer.kernel).max() <= 5 * value
        np.testing.assert_array_equal(layer.bias, 0)


def test_conv_cell_is_the_forward_output(case):
    _, w, ref = case
    for sample, r, s, f in ((0, 3, 4, 0), (1, 7, 0, 1), (0, 0, 0, 1)):
        cell = w.conv_cell(sample, r, s, f)
        close(cell.value, ref["z1"][sample, r, s, f], rtol=1e-12)
        close(cell.products.sum() + cell.bias, ref["z1"][sample, r, s, f], rtol=1e-12)


# ------------------------------------------------------------------ every scheme, every optimizer


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_draws_within_its_formula(scheme):
    w = walkthrough(StepConfig(scheme=scheme))
    assert w.inits[0].scheme == scheme
    assert w.weight.relative_error < 1e-6


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_reports_its_state(name):
    w = walkthrough(StepConfig(optimizer=name, lr=LR[name]))
    keys = {"sgd": set(), "rmsprop": {"velocity"}, "adam": {"m", "v"}}[name]
    assert set(w.update.state) == keys
    assert w.update.derived["step"] != 0


# ------------------------------------------------------------------ the real presets


@pytest.mark.parametrize("net", ["tiny", "classic"])
def test_presets_gradient_check_on_a_few_first_conv_weights(net):
    """float32 backprop (what the Train page trains) against a float64 finite difference.

    Tolerance 2e-3 relative plus 1e-6 absolute: the float32 gradient sums ~5,000
    products (8 digits x 26 x 26 positions), each rounded at ~6e-8 relative, and some
    weights' gradients nearly cancel; the float64 twin then checks 1e-6 as for the hand net.
    """
    for weight in ((0, 0, 0, 0), (3, 0, 1, 2), (7, 0, 2, 1)):
        w = walkthrough(StepConfig(net=net, batch_size=8, weight=weight, optimizer="adam",
                                   lr=0.001))  # fmt: skip
        ch = w.weight
        assert w.x.dtype == np.float32
        assert abs(ch.gradient - ch.finite_difference) <= 2e-3 * abs(ch.finite_difference) + 1e-6
        close(ch.total, ch.gradient, rtol=1e-4, atol=1e-7)
    # float64 twin: backprop in float64 matches the finite difference to 1e-6
    model = copy.deepcopy(w.initial).astype(np.float64)
    x = w.x.astype(np.float64)
    from convviz.nn.losses import softmax_cross_entropy

    _, d = softmax_cross_entropy(model.forward(x, True), w.labels)
    model.backward(d)
    f, c, u, v = weight
    g64 = model.layers[w.first_conv].grads["kernel"][u, v, c, f]
    assert abs(g64 - ch.finite_difference) <= 1e-6 * abs(ch.finite_difference)


@pytest.mark.parametrize("net", ["tiny", "classic"])
def test_presets_record_each_layer(net):
    w = walkthrough(StepConfig(net=net, batch_size=4))
    assert w.logits.shape == (4, 10)
    assert w.x.shape == (4, 28, 28, 1)
    assert [s.name for s in w.layers] == [layer.name for layer in w.initial.layers]
    for step, layer in zip(w.layers, w.initial.layers, strict=True):
        assert step.output.shape[1:] == layer.output_shape
        assert step.upstream.shape == step.output.shape
    close(w.losses.mean(), w.loss, rtol=1e-5)
    assert np.isfinite(w.next_loss)


def test_preset_init_scheme_reaches_every_layer():
    w = walkthrough(StepConfig(net="classic", batch_size=4, scheme="uniform"))
    assert len(w.inits) == 5
    for layer in w.inits:
        assert np.abs(layer.kernel).max() <= 0.05
    name, value = init_parameter("he_normal", 288, 576)
    assert name == "std" and value == pytest.approx(math.sqrt(2 / 288))


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "cfg",
    [
        StepConfig(net="resnet"),
        StepConfig(batch_size=5),
        StepConfig(scheme="zeros"),
        StepConfig(optimizer="lbfgs"),
        StepConfig(lr=0.0),
        StepConfig(lr=float("nan")),
        StepConfig(weight=(2, 0, 0, 0)),
        StepConfig(weight=(0, 1, 0, 0)),
        StepConfig(weight=(0, 0, 3, 0)),
    ],
)
def test_bad_choices_raise_a_coded_error(cfg):
    with pytest.raises(CodedError) as info:
        walkthrough(cfg)
    assert info.value.code.startswith("err.step.")


def test_draw_batch_is_seeded():
    a = draw_batch("hand", 3, 7)
    b = draw_batch("hand", 3, 7)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], draw_batch("hand", 3, 8)[0])
    assert downsample(np.zeros((2, 28, 28), np.uint8)).shape == (2, 10, 10)


def test_a_step_too_large_still_reports_a_finite_next_loss():
    """RMSprop at lr 1 throws the weights far: p(true) underflows, the loss stays finite."""
    w = walkthrough(StepConfig(net="tiny", batch_size=8, optimizer="rmsprop", lr=1.0))
    assert np.isfinite(w.next_losses).all() and w.next_loss > w.loss
