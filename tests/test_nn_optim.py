"""Optimizers: hand-derived updates, the Keras formulas, and torch.optim step by step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convviz.nn.optim import SGD, Adam, RMSprop, make_optimizer, packed_span

# A separable quadratic f(p) = sum(0.5 * A * p**2 + B * p): grad = A * p + B, with
# curvatures spread over two decades so momentum and the adaptive rates matter.
A = np.array([0.5, 2.0, 8.0, 30.0, 1.0, 0.1], dtype=np.float32)
B = np.array([1.0, -1.0, 0.5, 2.0, -3.0, 0.2], dtype=np.float32)
P0 = np.array([2.0, -1.5, 0.7, 0.3, 1.0, -4.0], dtype=np.float32)


def quad_grad(p: np.ndarray) -> np.ndarray:
    return A * p + B


def run_ours(make, n_steps: int, lrs=None) -> list[np.ndarray]:
    """Run ``n_steps`` on the quadratic; ``lrs[i]`` (if given) is set before step i."""
    p = P0.copy()
    g = np.zeros_like(p)
    opt = make([("w", p, g)])
    out = []
    for i in range(n_steps):
        if lrs is not None:
            opt.lr = lrs[i]
        g[...] = quad_grad(p)
        opt.step()
        out.append(p.copy())
    return out


def run_torch(make, n_steps: int, lrs=None) -> list[np.ndarray]:
    torch = pytest.importorskip("torch")
    p = torch.tensor(P0.copy(), requires_grad=True)
    opt = make([p])
    a, b = torch.tensor(A), torch.tensor(B)
    out = []
    for i in range(n_steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[i]
        opt.zero_grad()
        loss = (0.5 * a * p**2 + b * p).sum()
        loss.backward()
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def assert_trajectories_close(ours, ref, rtol=2e-5, atol=2e-6) -> None:
    assert len(ours) == len(ref)
    for i, (x, y) in enumerate(zip(ours, ref, strict=True)):
        assert x.dtype == np.float32, f"step {i}: dtype {x.dtype}"
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"step {i}")


# A learning-rate sequence that changes mid-run, as the UI and the schedules do.
LRS = [0.01] * 5 + [0.003] * 5 + [0.02] * 5


# ---------------------------------------------------------------------------------------
# Hand-derived updates (numbers worked out on paper, or the published formula in float64)


def test_sgd_one_step_by_hand():
    p = np.array([1.0, -2.0], dtype=np.float32)
    g = np.array([0.5, 4.0], dtype=np.float32)
    SGD([("w", p, g)], lr=0.1).step()
    np.testing.assert_array_equal(p, np.array([0.95, -2.4], dtype=np.float32))


def test_sgd_momentum_two_steps_by_hand():
    p = np.array([1.0], dtype=np.float32)
    g = np.array([1.0], dtype=np.float32)
    opt = SGD([("w", p, g)], lr=0.1, momentum=0.9)
    opt.step()  # b = 1, p = 1 - 0.1
    np.testing.assert_allclose(p, [0.9], rtol=1e-6)
    g[...] = 2.0
    opt.step()  # b = 0.9 * 1 + 2 = 2.9, p = 0.9 - 0.29
    np.testing.assert_allclose(p, [0.61], rtol=1e-6)


def test_sgd_nesterov_two_steps_by_hand():
    p = np.array([1.0], dtype=np.float32)
    g = np.array([1.0], dtype=np.float32)
    opt = SGD([("w", p, g)], lr=0.1, momentum=0.5, nesterov=True)
    opt.step()  # b = 1, p -= 0.1 * (1 + 0.5 * 1)
    np.testing.assert_allclose(p, [0.85], rtol=1e-6)
    g[...] = 2.0
    opt.step()  # b = 0.5 + 2 = 2.5, p -= 0.1 * (2 + 0.5 * 2.5)
    np.testing.assert_allclose(p, [0.525], rtol=1e-6)


def test_sgd_decoupled_weight_decay_by_hand():
    p = np.array([2.0], dtype=np.float32)
    g = np.array([1.0], dtype=np.float32)
    opt = SGD([("w", p, g)], lr=0.1, momentum=0.9, weight_decay=0.5)
    opt.step()  # p = 2 - 0.1*0.5*2 = 1.9, then b = 1, p = 1.8
    np.testing.assert_allclose(p, [1.8], rtol=1e-6)
    opt.step()  # p = 1.8 * 0.95 = 1.71, b = 0.9 + 1 = 1.9, p = 1.71 - 0.19
    np.testing.assert_allclose(p, [1.52], rtol=1e-6)


def keras_rmsprop_ref(grad, p0, n, lr, rho, eps, momentum=0.0, centered=False):
    """Keras 3 ``RMSprop.update_step`` written out in float64 scalars."""
    p, v, m, a = p0, 0.0, 0.0, 0.0
    out = []
    for _ in range(n):
        g = grad(p)
        v = rho * v + (1 - rho) * g * g
        if centered:
            a = rho * a + (1 - rho) * g
            denom = v - a * a + eps
        else:
            denom = v + eps
        inc = lr * g / math.sqrt(denom)
        if momentum > 0:
            m = momentum * m + inc
            p = p - m
        else:
            p = p - inc
        out.append(p)
    return out


@pytest.mark.parametrize(
    "kw",
    [
        {"eps": 1e-7},
        {"eps": 0.05},  # a large eps makes its place (inside the sqrt) visible
        {"eps": 0.05, "momentum": 0.8},
        {"eps": 0.05, "centered": True},
    ],
)
def test_rmsprop_matches_keras_formula(kw):
    # 1-D quadratic f = 0.5 * 3 * p**2 + p, grad 3p + 1, 12 steps.
    ref = keras_rmsprop_ref(lambda p: 3.0 * p + 1.0, 1.5, 12, lr=0.05, rho=0.9, **kw)
    p = np.array([1.5], dtype=np.float32)
    g = np.zeros_like(p)
    opt = RMSprop([("w", p, g)], lr=0.05, **kw)
    for i in range(12):
        g[...] = 3.0 * p + 1.0
        opt.step()
        np.testing.assert_allclose(p[0], ref[i], rtol=2e-5, err_msg=f"step {i}")


def test_rmsprop_eps_is_inside_the_sqrt():
    # One step from v = 0: v = 0.1 * g**2, so p -= lr * g / sqrt(0.1 g**2 + eps).
    g0, eps, lr = 0.2, 0.01, 0.1
    p = np.array([0.0], dtype=np.float32)
    RMSprop([("w", p, np.array([g0], dtype=np.float32))], lr=lr, eps=eps).step()
    keras = -lr * g0 / math.sqrt(0.1 * g0**2 + eps)
    torch_style = -lr * g0 / (math.sqrt(0.1 * g0**2) + eps)
    assert p[0] == pytest.approx(keras, rel=1e-6)
    assert abs(keras - torch_style) > 1e-3  # the two placements really differ here


def test_adam_two_steps_by_hand_keras_eps():
    # Keras: p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 0.5
    p = np.array([1.0], dtype=np.float32)
    g = np.array([2.0], dtype=np.float32)
    opt = Adam([("w", p, g)], lr=lr, beta1=b1, beta2=b2, eps=eps)
    opt.step()
    m, v = (1 - b1) * 2.0, (1 - b2) * 4.0
    expect = 1.0 - lr * math.sqrt(1 - b2) / (1 - b1) * m / (math.sqrt(v) + eps)
    assert p[0] == pytest.approx(expect, rel=1e-6)
    g[...] = -1.0
    opt.step()
    m, v = b1 * m + (1 - b1) * -1.0, b2 * v + (1 - b2) * 1.0
    expect -= lr * math.sqrt(1 - b2**2) / (1 - b1**2) * m / (math.sqrt(v) + eps)
    assert p[0] == pytest.approx(expect, rel=1e-6)


def test_adam_first_step_is_lr_sized():
    g = np.array([1e3, -1e-3, 3.0], dtype=np.float32)
    p = np.zeros(3, dtype=np.float32)
    Adam([("w", p, g)], lr=0.01, eps=0.0).step()
    np.testing.assert_allclose(p, [-0.01, 0.01, -0.01], rtol=1e-5)


# ---------------------------------------------------------------------------------------
# torch.optim, step by step on the same quadratic (eps = 0 where the formulas place eps
# differently; see the module docstring)


@pytest.mark.parametrize(
    "kw",
    [
        {"momentum": 0.0},
        {"momentum": 0.9},
        {"momentum": 0.9, "nesterov": True},
    ],
)
def test_sgd_matches_torch(kw):
    torch = pytest.importorskip("torch")
    ours = run_ours(lambda ps: SGD(ps, lr=0.01, **kw), 15, LRS)
    ref = run_torch(lambda ps: torch.optim.SGD(ps, lr=0.01, **kw), 15, LRS)
    assert_trajectories_close(ours, ref)


def test_sgd_without_momentum_weight_decay_matches_torch_l2():
    # Without momentum, decoupled decay and L2 in the gradient are the same update.
    torch = pytest.importorskip("torch")
    ours = run_ours(lambda ps: SGD(ps, lr=0.01, weight_decay=0.3), 10)
    ref = run_torch(lambda ps: torch.optim.SGD(ps, lr=0.01, weight_decay=0.3), 10)
    assert_trajectories_close(ours, ref)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"momentum": 0.7},
        {"centered": True},
        {"momentum": 0.5, "centered": True},
    ],
)
def test_rmsprop_matches_torch_with_eps_zero(kw):
    torch = pytest.importorskip("torch")
    # Constant lr: with momentum, Keras accumulates lr*g/sqrt(v), torch g/sqrt(v) then *lr.
    ours = run_ours(lambda ps: RMSprop(ps, lr=0.01, rho=0.9, eps=0.0, **kw), 15)
    ref = run_torch(
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=0.0, **kw),
        15,
    )
    assert_trajectories_close(ours, ref)


def test_adam_matches_torch_with_eps_zero():
    torch = pytest.importorskip("torch")
    ours = run_ours(lambda ps: Adam(ps, lr=0.01, eps=0.0), 15, LRS)
    ref = run_torch(lambda ps: torch.optim.Adam(ps, lr=0.01, eps=0.0), 15, LRS)
    assert_trajectories_close(ours, ref)


def test_adam_weight_decay_matches_torch_adamw():
    torch = pytest.importorskip("torch")
    ours = run_ours(lambda ps: Adam(ps, lr=0.02, beta2=0.99, eps=0.0, weight_decay=0.1), 15)
    ref = run_torch(
        lambda ps: torch.optim.AdamW(ps, lr=0.02, betas=(0.9, 0.99), eps=0.0, weight_decay=0.1),
        15,
    )
    assert_trajectories_close(ours, ref)


def test_adam_keras_eps_equals_torch_with_rescaled_eps():
    # Keras's eps_k on sqrt(v) equals torch's eps on sqrt(v_hat) with eps = eps_k / sqrt(1 - b2^t);
    # with a single step that is a constant we can hand to torch.
    torch = pytest.importorskip("torch")
    eps_k, b2 = 0.3, 0.999
    ours = run_ours(lambda ps: Adam(ps, lr=0.05, eps=eps_k), 1)
    ref = run_torch(lambda ps: torch.optim.Adam(ps, lr=0.05, eps=eps_k / math.sqrt(1 - b2)), 1)
    assert_trajectories_close(ours, ref)


# ---------------------------------------------------------------------------------------
# Mechanics: in place, dtype, lr, state, model objects


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam"])
def test_step_updates_in_place_and_keeps_float32(name):
    p = P0.copy()
    g = quad_grad(p)
    before = p.copy()
    buf = p.__array_interface__["data"][0]
    opt = make_optimizer(name, [("w", p, g)], lr=0.1)
    opt.step()
    assert p.dtype == np.float32
    assert p.__array_interface__["data"][0] == buf
    assert not np.array_equal(p, before)
    # Every coordinate moves downhill on the first step.
    assert np.all(np.sign(before - p) == np.sign(g))


def test_lr_change_between_steps_takes_effect():
    p = np.array([0.0], dtype=np.float32)
    g = np.array([1.0], dtype=np.float32)
    opt = SGD([("w", p, g)], lr=0.1)
    opt.step()
    opt.lr = 0.5
    opt.step()
    np.testing.assert_allclose(p, [-0.6], rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "kw"),
    [("sgd", {"momentum": 0.9, "nesterov": True}), ("rmsprop", {"centered": True}), ("adam", {})],
)
def test_state_dict_round_trip_resumes_exactly(name, kw):
    p = P0.copy()
    g = np.zeros_like(p)
    opt = make_optimizer(name, [("w", p, g)], lr=0.01, **kw)
    for _ in range(3):
        g[...] = quad_grad(p)
        opt.step()
    state = opt.state_dict()
    p_saved = p.copy()
    for _ in range(4):
        g[...] = quad_grad(p)
        opt.step()
    # A fresh optimizer with the saved state follows the same trajectory.
    q = p_saved.copy()
    h = np.zeros_like(q)
    opt2 = make_optimizer(name, [("w", q, h)], lr=1.0)
    opt2.load_state_dict(state)
    assert opt2.lr == 0.01 and opt2.iterations == 3
    for _ in range(4):
        h[...] = quad_grad(q)
        opt2.step()
    np.testing.assert_array_equal(q, p)
    # The state is a copy: stepping did not change it.
    assert state["iterations"] == 3


def test_load_state_dict_rejects_other_optimizer_and_shapes():
    p = np.zeros(3, dtype=np.float32)
    adam = Adam([("w", p, p.copy())])
    adam.step()
    with pytest.raises(ValueError, match="optimizer 'adam', not 'rmsprop'"):
        RMSprop([("w", p, p.copy())]).load_state_dict(adam.state_dict())
    q = np.zeros(4, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        Adam([("w", q, q.copy())]).load_state_dict(adam.state_dict())


class _Model:
    """Stands in for Sequential: a layer that REBINDS its grad array on every backward."""

    def __init__(self) -> None:
        self.w = np.array([1.0, 2.0], dtype=np.float32)
        self.grad = np.zeros(2, dtype=np.float32)

    def backward(self) -> None:
        self.grad = 2 * self.w  # a new array, not written in place

    def parameters(self):
        return [("dense/kernel", self.w, self.grad)]


def test_model_object_is_asked_for_fresh_grads_each_step():
    model = _Model()
    opt = SGD(model, lr=0.25)
    model.backward()
    opt.step()
    np.testing.assert_allclose(model.w, [0.5, 1.0])


def test_make_optimizer_defaults_and_kwargs():
    p = np.zeros(2, dtype=np.float32)
    ps = [("w", p, p.copy())]
    assert isinstance(make_optimizer("adam", ps), Adam)
    assert make_optimizer("adam", ps).lr == 0.001
    assert make_optimizer("sgd", ps).lr == 0.01
    r = make_optimizer("RMSProp", ps, lr=0.01, rho=0.95)
    assert isinstance(r, RMSprop) and r.lr == 0.01 and r.rho == 0.95 and r.eps == 1e-7


# ---------------------------------------------------------------------------------------
# Validation: one ValueError per rule, naming the parameter


def _ps():
    p = np.zeros(2, dtype=np.float32)
    return [("w", p, p.copy())]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: SGD(_ps(), lr=0.0), "`lr` must be > 0"),
        (lambda: SGD(_ps(), lr=-1.0), "`lr` must be > 0"),
        (lambda: SGD(_ps(), lr=float("nan")), "`lr` must be finite"),
        (lambda: SGD(_ps(), lr="0.1"), "`lr` must be a real number"),
        (lambda: SGD(_ps(), momentum=1.0), r"`momentum` must be in \[0, 1\)"),
        (lambda: SGD(_ps(), momentum=-0.1), r"`momentum` must be in \[0, 1\)"),
        (lambda: SGD(_ps(), nesterov=True), "`nesterov` needs `momentum` > 0"),
        (lambda: SGD(_ps(), momentum=0.9, nesterov="yes"), "`nesterov` must be a bool"),
        (lambda: SGD(_ps(), weight_decay=-1e-4), "`weight_decay` must be >= 0"),
        (lambda: RMSprop(_ps(), rho=1.0), r"`rho` must be in \[0, 1\)"),
        (lambda: RMSprop(_ps(), eps=-1e-7), "`eps` must be >= 0"),
        (lambda: RMSprop(_ps(), momentum=2.0), r"`momentum` must be in \[0, 1\)"),
        (lambda: RMSprop(_ps(), centered=1), "`centered` must be a bool"),
        (lambda: Adam(_ps(), beta1=1.0), r"`beta1` must be in \[0, 1\)"),
        (lambda: Adam(_ps(), beta2=-0.5), r"`beta2` must be in \[0, 1\)"),
        (lambda: Adam(_ps(), eps=-1.0), "`eps` must be >= 0"),
        (lambda: Adam([]), "`params` must not be empty"),
        (lambda: Adam(_ps() + _ps()), "`params` names must be unique"),
        (
            lambda: Adam([("w", np.zeros(2, np.float32), np.zeros(3, np.float32))]),
            "grad shape",
        ),
        (
            lambda: Adam([("w", np.zeros(2, np.int64), np.zeros(2, np.int64))]),
            "floating-point",
        ),
        (lambda: make_optimizer("lbfgs", _ps()), "`name` must be one of"),
    ],
)
def test_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_lr_setter_validates():
    opt = Adam(_ps())
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        opt.lr = 0
    assert opt.lr == 0.001


# ------------------------------------------------------------------ packed parameters

_PACKED_CASES = [
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.02}),
    ("adam", {"lr": 0.01, "weight_decay": 0.004}),
]


def _twin_models():
    from convviz.nn.presets import build_model

    return build_model("tiny", seed=4), build_model("tiny", seed=4).pack_parameters()


def _set_grads(model, step: int) -> None:
    rng = np.random.default_rng(step)
    for _, p, g in model.parameters():
        g[...] = rng.normal(0, 1, p.shape) * (1 + 0.5 * p)  # depends on p: steps differ


@pytest.mark.parametrize(("name", "kw"), _PACKED_CASES, ids=[c[0] for c in _PACKED_CASES])
def test_a_packed_model_steps_to_the_bit_as_array_by_array(name, kw):
    """One pass over the packed buffers gives what one pass per array gives, bit for bit."""
    loose, packed = _twin_models()
    assert packed_span([p for _, p, _ in packed.parameters()]) is not None
    assert packed_span([p for _, p, _ in loose.parameters()]) is None
    opts = [make_optimizer(name, m, **kw) for m in (loose, packed)]
    assert opts[0]._packed(opts[0]._params()) is None  # the per-array path
    assert opts[1]._packed(opts[1]._params()) is not None  # the one-pass path
    for step in range(4):
        for m, opt in zip((loose, packed), opts, strict=True):
            _set_grads(m, step)
            opt.lr = kw["lr"] * (1 + step)  # a schedule: the rate changes between steps
            opt.step()
        for (n1, p1, _), (n2, p2, _) in zip(loose.parameters(), packed.parameters(), strict=True):
            assert n1 == n2 and np.array_equal(p1, p2), n1
    s1, s2 = (opt.state_dict() for opt in opts)
    assert s1["iterations"] == s2["iterations"] == 4
    for pname, slots in s1["slots"].items():
        for s, a in slots.items():
            assert np.array_equal(a, s2["slots"][pname][s]), (pname, s)


@pytest.mark.parametrize(("name", "kw"), _PACKED_CASES, ids=[c[0] for c in _PACKED_CASES])
def test_packed_and_per_array_states_resume_each_other(name, kw):
    loose, packed = _twin_models()
    a, b = make_optimizer(name, loose, **kw), make_optimizer(name, packed, **kw)
    for step in range(2):
        _set_grads(loose, step), _set_grads(packed, step)
        a.step(), b.step()
    # Swap the states: each optimizer continues from the other's slots.
    sa, sb = a.state_dict(), b.state_dict()
    a.load_state_dict(sb)
    b.load_state_dict(sa)
    for step in range(2, 4):
        _set_grads(loose, step), _set_grads(packed, step)
        a.step(), b.step()
    assert b._packed(b._params()) is not None  # still one pass after the load
    for (n, p1, _), (_, p2, _) in zip(loose.parameters(), packed.parameters(), strict=True):
        assert np.array_equal(p1, p2), n


def test_packing_keeps_values_order_and_outputs_and_astype_unpacks_safely():
    from convviz.nn.presets import build_model

    model = build_model("resnet", seed=1)  # blocks: children's arrays in parameters() order
    before = [(n, p.copy()) for n, p, _ in model.parameters()]
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    out = model.forward(x)
    assert model.pack_parameters() is model
    triples = model.parameters()
    flat = packed_span([p for _, p, _ in triples])
    assert (
        flat is not None and flat.size == model.count_params() - model.count_non_trainable_params()
    )
    assert packed_span([g for _, _, g in triples]) is not None
    assert [n for n, _, _ in triples] == [n for n, _ in before]
    for (n, p, _), (_, old) in zip(triples, before, strict=True):
        assert np.array_equal(p, old), n
    assert np.array_equal(model.forward(x), out)
    # astype rebinds every array: the optimizer notices and goes back to one pass per array.
    opt = make_optimizer("adam", model, lr=0.01)
    _set_grads(model, 0)
    opt.step()
    model.astype(np.float64)
    assert opt._packed(opt._params()) is None
    ref = build_model("resnet", seed=1)
    ref_opt = make_optimizer("adam", ref, lr=0.01)
    _set_grads(ref, 0)
    ref_opt.step()
    ref.astype(np.float64)
    for m, o in ((model, opt), (ref, ref_opt)):
        _set_grads(m, 1)
        o.step()
    for (n, p1, _), (_, p2, _) in zip(model.parameters(), ref.parameters(), strict=True):
        assert p1.dtype == np.float64 and np.array_equal(p1, p2), n


def test_packed_span_needs_consecutive_pieces_of_one_buffer_in_order():
    flat = np.arange(10, dtype=np.float32)
    a, b, c = flat[:3].reshape(3, 1), flat[3:7].reshape(2, 2), flat[7:]
    span = packed_span([a, b, c])
    assert span is not None and np.shares_memory(span, flat) and span.size == 10
    assert packed_span([b, c]).size == 7  # a tail of the buffer is fine
    assert packed_span([a, c]) is None  # a gap
    assert packed_span([b, a, c]) is None  # out of order
    assert packed_span([a, b, c.copy()]) is None  # another buffer
    assert packed_span([flat[::2][:2], flat[4:]]) is None  # not contiguous
    assert packed_span([np.zeros(3)]) is None  # owns its memory: nothing to span
    assert packed_span([]) is None
