"""`convviz.nn.fast.FastPlan` against the reference layers: outputs and gradients.

The reference (``Sequential.forward`` / ``backward``, one layer at a time on one
thread) is itself checked against finite differences, loops, scipy and torch in
``test_nn_layers.py`` and ``test_nn_torch.py``; here the fused and threaded path
must give the same numbers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convviz.nn import fast
from convviz.nn import functional as F
from convviz.nn.fast import FastPlan, blas_threads
from convviz.nn.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.model import Sequential
from convviz.nn.presets import PRESETS, build_model
from convviz.nn.train import TrainConfig, Trainer
from tests.support.helpers import assert_matches
from tests.test_nn_layers import small_model


def _step(net, model, x, labels):
    """One forward + backward through ``net``; (logits, dx, {name: grad}) as copies."""
    logits = np.array(net.forward(x, training=True), copy=True)
    _, d = softmax_cross_entropy(logits, labels)
    dx = net.backward(d)
    grads = {n: g.copy() for n, _, g in model.parameters()}
    return logits, None if dx is None else np.array(dx, copy=True), grads


def _compare(ref, got, rtol, atol):
    (l1, dx1, g1), (l2, dx2, g2) = ref, got
    assert_matches(l2, l1, rtol=rtol, atol=atol, what="logits")
    assert (dx1 is None) == (dx2 is None)
    if dx1 is not None:
        assert_matches(dx2, dx1, rtol=rtol, atol=atol, what="dx")
    assert list(g2) == list(g1)
    for name in g1:
        assert_matches(g2[name], g1[name], rtol=rtol, atol=atol, what=f"d{name}")


@pytest.mark.parametrize("input_grad", [False, True])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_plan_matches_the_reference_on_every_preset_in_float64(name, input_grad):
    """40 rows: two slices of 20 on two threads, fused conv + pool, twins inside blocks."""
    rng = np.random.default_rng(1)
    x = rng.random((40, 28, 28, 1))
    labels = rng.integers(0, 10, 40)
    results = []
    for use_plan in (False, True):
        model = build_model(name, seed=2).astype(np.float64)
        model.input_grad = input_grad
        for _, p, _ in model.parameters():  # non-zero biases: the bias paths count
            p += np.random.default_rng(3).normal(0, 0.02, p.shape)
        net = FastPlan(model, workers=2) if use_plan else model
        results.append(_step(net, model, x, labels))
    _compare(*results, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["tiny", "classic"])
def test_plan_matches_the_reference_in_float32_as_trained(name):
    rng = np.random.default_rng(4)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, 64)
    results = []
    for use_plan in (False, True):
        model = build_model(name, seed=0)
        results.append(_step(FastPlan(model) if use_plan else model, model, x, labels))
    _compare(*results, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("conv", "pool", "hw"),
    [
        (dict(kernel_size=3), dict(pool_size=2), (9, 9)),  # pool drops a row and a column
        (dict(kernel_size=3, strides=2, padding="same"), dict(pool_size=3, strides=2), (12, 12)),
        (dict(kernel_size=2), dict(pool_size=(2, 3)), (7, 9)),
    ],
)
@pytest.mark.parametrize("input_grad", [True, False])
def test_fused_conv_relu_pool_equals_separate_reference_layers(conv, pool, hw, input_grad):
    """Conv2D(relu) + MaxPool2D fused by the plan vs Conv2D + ReLU() + MaxPool2D, reference.

    Without input_grad and with a non-overlapping pool the conv pools itself
    (one GEMM per pooling phase).
    """
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, *hw, 2))
    x[:, : hw[0] // 2] = 0.0  # flat background (as in MNIST): conv outputs tie at the bias
    labels = rng.integers(0, 3, 5)
    bias = rng.normal(0, 0.3, 4)
    results = []
    for fused in (True, False):
        if fused:
            head = [Conv2D(4, activation="relu", **conv), MaxPool2D(**pool)]
        else:
            head = [Conv2D(4, **conv), ReLU(), MaxPool2D(**pool)]
        model = Sequential([*head, Flatten(), Dense(3)], input_shape=(*hw, 2), seed=1)
        model.astype(np.float64)
        model.input_grad = input_grad
        model.layers[0].params["bias"][...] = bias
        plan = FastPlan(model, workers=1)
        out = _step(plan if fused else model, model, x, labels)
        results.append(({k.replace("conv2d", "c"): v for k, v in out[2].items()}, out))
        if fused:
            first = plan._last[0][0][0]
            phases = not input_grad and pool.get("strides") is None
            assert isinstance(first, fast._FastConvPool if phases else fast._FastConv)
            if not phases:
                assert first.used_hw is not None and not first.relu  # cropped, ReLU above
    (g1, (l1, dx1, _)), (g2, (l2, dx2, _)) = results
    _compare((l2, dx2, g2), (l1, dx1, g1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 20])  # one tap at a time / all stacked
@pytest.mark.parametrize(("kernel", "used"), [((3, 3), (3, 12, 12, 5)), ((2, 3), (2, 6, 9, 3))])
def test_input_grad_by_taps_is_col2im_of_the_input_gradient_columns(
    kernel, used, cache_bytes, monkeypatch
):
    """The per-tap stride-1 input gradient vs the reference's GEMM + col2im, float64."""
    monkeypatch.setattr(fast, "_CACHE_BYTES", cache_bytes)
    rng = np.random.default_rng(11)
    (kh, kw), (n, hu, wu, c), f = kernel, used, 4
    k = rng.standard_normal((kh, kw, c, f))
    dz = rng.standard_normal((n * (hu - kh + 1) * (wu - kw + 1), f))
    want = F.col2im(dz @ k.reshape(-1, f).T, used, kh, kw)
    out = np.full(used, np.nan)  # every cell must be written (zeros included)
    got = fast._input_grad_by_taps(dz, k, used, out, fast.Workspace())
    assert got is out
    assert_matches(got, want, rtol=1e-12, atol=1e-12, what="dx")


def test_conv_pool_phases_without_bias_and_with_channels_equal_the_reference():
    """The stacked-phase conv + pool without the ones column, on a 3-channel input."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 11, 12, 3))
    x[:2] = 0.0  # whole images of ties
    labels = rng.integers(0, 3, 6)
    results = []
    for use_plan in (False, True):
        layers = [Conv2D(5, 3, activation="relu", use_bias=False), MaxPool2D((3, 2))]
        model = Sequential([*layers, Flatten(), Dense(3)], input_shape=(11, 12, 3), seed=4)
        model.astype(np.float64)
        plan = FastPlan(model, workers=1)
        results.append(_step(plan if use_plan else model, model, x, labels))
        if use_plan:
            assert isinstance(plan._last[0][0][0], fast._FastConvPool)
    _compare(*results, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("hw", "conv", "pool", "input_grad"),
    [
        ((8, 10), dict(activation="relu"), None, False),  # 6x8 outputs, ReLU in the conv
        ((8, 10), dict(activation="relu"), None, True),
        ((6, 6), dict(padding="same", use_bias=False), None, True),
        # 11x11 cropped to the 10x10 the pool reads (classic's conv2)
        ((13, 13), dict(activation="relu"), dict(pool_size=2), True),
    ],
)
@pytest.mark.parametrize("chunk_tiles", [10**9, 1])  # one chunk; one chunk per image
def test_winograd_conv_equals_the_reference(hw, conv, pool, input_grad, chunk_tiles, monkeypatch):
    """3x3 stride-1 convs with even outputs go through Winograd F(2x2, 3x3), float64."""
    monkeypatch.setattr(fast, "_WINOGRAD_MIN_ROWS", 0)  # small test batches too
    monkeypatch.setattr(fast, "_WINO_CHUNK_TILES", chunk_tiles)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, *hw, 3))
    x[1] = 0.0  # a whole image of ties: each pooling window's first output must win
    labels = rng.integers(0, 3, 3)
    results = []
    for use_plan in (False, True):
        head = [Conv2D(4, 3, **conv)] + ([MaxPool2D(**pool)] if pool else [])
        # A conv in front needs dx from the Winograd conv (the data's conv does not).
        layers = [Conv2D(3, 1), *head] if input_grad else head
        model = Sequential([*layers, Flatten(), Dense(3)], input_shape=(*hw, 3), seed=5)
        model.astype(np.float64)
        for _, p, _ in model.parameters():
            p += np.random.default_rng(3).normal(0, 0.05, p.shape)
        plan = FastPlan(model, workers=1)
        results.append(_step(plan if use_plan else model, model, x, labels))
        if use_plan:
            wino = plan._last[0][0][1 if input_grad else 0]
            assert isinstance(wino, fast._FastConv) and isinstance(wino._cache[2], tuple)
            assert (wino._cache[4] is not None) == (pool is not None)  # the pool on the tiles
            tiles = (wino._cache[1][1] - 2) * (wino._cache[1][2] - 2) // 4
            chunks = fast._wino_chunks(len(x), tiles)
            assert len(chunks) == (1 if chunk_tiles > 1 else len(x)), chunks
    _compare(*results, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk_tiles", [10**9, 1])
def test_the_pool_on_winograd_tiles_gives_ties_to_the_first_output_as_the_reference(
    chunk_tiles, monkeypatch
):
    """Small integers: Winograd is exact, so a flat image makes exact ties in every window.
    The gradient must go to each window's first output in raster order, as the reference
    pool sends it (a rule that let the later output win would move dx)."""
    monkeypatch.setattr(fast, "_WINOGRAD_MIN_ROWS", 0)
    monkeypatch.setattr(fast, "_WINO_CHUNK_TILES", chunk_tiles)
    rng = np.random.default_rng(21)
    x = rng.integers(-3, 4, (4, 10, 10, 2)).astype(np.float64)
    x[1] = 1.0  # flat: every conv output of this image is the same number
    x[2, :5] = 2.0  # half flat
    labels = rng.integers(0, 3, 4)
    results = []
    for use_plan in (False, True):
        layers = [Conv2D(2, 1), Conv2D(3, 3, activation="relu"), MaxPool2D(2)]
        model = Sequential([*layers, Flatten(), Dense(3)], input_shape=(10, 10, 2), seed=5)
        model.astype(np.float64)
        for name, p, _ in model.parameters():  # the convs' positive: the ReLU keeps the ties
            low = -2 if name.startswith("dense") else 0
            p[...] = np.random.default_rng(p.size).integers(low, 3, p.shape)
        plan = FastPlan(model, workers=1)
        results.append(_step(plan if use_plan else model, model, x, labels))
        if use_plan:
            best, idx = plan._last[0][0][1]._cache[4]  # the pooled Winograd path
            per = len(best) // len(x)
            flat = slice(per, 2 * per)  # image 1's windows: exact ties, kept by the ReLU
            assert (best[flat] > 0).all() and (idx[flat] == 0).all()
    _compare(*results, rtol=0, atol=1e-12)


def test_winograd_chunks_cover_the_batch_in_near_equal_runs():
    for n, tiles in [(32, 25), (64, 25), (33, 25), (1, 25), (5, 10**4), (200, 1)]:
        chunks = fast._wino_chunks(n, tiles)
        assert chunks[0][0] == 0 and chunks[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
        sizes = [j - i for i, j in chunks]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
        assert len(chunks) == min(n, max(1, round(n * tiles / fast._WINO_CHUNK_TILES)))
    assert fast._wino_chunks(32, 25) == [(0, 16), (16, 32)]  # classic's conv2, 32 rows


@pytest.mark.parametrize(
    "seed, rows, slices",
    [
        (5, 40, 2),  # two threads give the one-thread gradients
        (14, 130, 3),  # big training batches: more slices than workers (44 + 43 + 43 rows)
    ],
)
def test_sliced_training_gives_the_one_thread_gradients(seed, rows, slices):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 9, 9, 2))
    labels = rng.integers(0, 3, rows)
    results = []
    for workers in (1, 2):
        model = small_model()
        plan = FastPlan(model, workers=workers)
        results.append(_step(plan, model, x, labels))
        assert len(plan._last[0]) == (1 if workers == 1 else slices)  # slices actually ran
    _compare(*results, rtol=1e-10, atol=1e-13)


def test_sliced_evaluation_equals_the_reference_with_batchnorm_running_statistics():
    rng = np.random.default_rng(7)
    x = rng.random((45, 9, 9, 2))
    layers = [Conv2D(3, 3), BatchNorm(), ReLU(), Flatten(), Dense(4)]
    model = Sequential(layers, input_shape=(9, 9, 2), seed=3).astype(np.float64)
    bn = model.layers[1]
    bn.buffers["moving_mean"][...] = rng.normal(0, 0.3, 3)
    bn.buffers["moving_variance"][...] = rng.uniform(0.5, 2, 3)
    plan = FastPlan(model, workers=2)
    got = plan.forward(x)
    assert len(plan._get_chains(False, 2)) == 2
    assert_matches(got, model.forward(x), rtol=1e-12, atol=1e-13, what="logits")


def test_batchnorm_models_train_on_one_thread_with_the_reference_numbers():
    """Batch statistics need the whole batch: the plan does not slice such a model."""
    rng = np.random.default_rng(8)
    x = rng.random((40, 9, 9, 2))
    labels = rng.integers(0, 4, 40)
    results = []
    for use_plan in (False, True):
        layers = [Conv2D(3, 3, activation="relu"), BatchNorm(), MaxPool2D(2), Flatten(), Dense(4)]
        model = Sequential(layers, input_shape=(9, 9, 2), seed=3).astype(np.float64)
        plan = FastPlan(model, workers=2)
        results.append(_step(plan if use_plan else model, model, x, labels))
        if use_plan:
            assert len(plan._last[0]) == 1
            moving = model.layers[1].buffers["moving_mean"].copy()
        else:
            moving_ref = model.layers[1].buffers["moving_mean"].copy()
    _compare(*results, rtol=1e-10, atol=1e-12)
    assert_matches(moving, moving_ref, rtol=1e-12, atol=1e-14, what="moving mean")


def test_sliced_training_leaves_blas_single_threaded():
    """Raising the BLAS thread count after each step woke a spinning OpenBLAS worker."""
    if blas_threads() == 0:
        pytest.skip("numpy's BLAS is not an OpenBLAS found at run time")
    old = blas_threads(2)
    try:
        model = small_model()
        plan = FastPlan(model, workers=2)
        x = np.random.default_rng(8).random((32, 9, 9, 2))
        for _ in range(2):
            _, d = softmax_cross_entropy(plan.forward(x, training=True), np.zeros(32, int))
            plan.backward(d)
            assert blas_threads() == 1
    finally:
        blas_threads(old)


def test_the_model_is_left_as_it_was_and_the_plan_follows_its_changes():
    """No flags set on the layers; new arrays (astype) and input_grad rebuild the twins."""
    model = build_model("tiny", seed=0)
    before = [sorted(vars(layer)) for layer in model.layers]
    plan = FastPlan(model, workers=2)
    rng = np.random.default_rng(6)
    x = rng.random((40, 28, 28, 1))
    labels = rng.integers(0, 10, 40)
    _step(plan, model, x.astype(np.float32), labels)
    assert [sorted(vars(layer)) for layer in model.layers] == before
    model.astype(np.float64)
    model.input_grad = True
    got = _step(plan, model, x, labels)
    assert got[0].dtype == np.float64 and got[1].shape == x.shape
    _compare(_step(model, model, x, labels), got, rtol=1e-10, atol=1e-12)


def test_trainer_histories_agree_with_and_without_the_plan():
    data = _tiny_data()
    cfg = TrainConfig(train_size=256, val_size=64, batch_size=64, epochs=1, seed=3)
    a, b = Trainer(cfg, data=data), Trainer(cfg, data=data, fast=False)
    assert isinstance(a.plan, FastPlan) and b.plan is b.model
    a.train_steps(4)
    b.train_steps(4)
    assert_matches(np.array(a.history.loss), np.array(b.history.loss), rtol=1e-4, atol=1e-5)
    assert a.history.val_acc == pytest.approx(b.history.val_acc, abs=1 / 64)
    for (n1, p1, _), (n2, p2, _) in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert n1 == n2
        assert_matches(p1, p2, rtol=1e-3, atol=1e-5, what=n1)


def _tiny_data():
    from convviz.nn.data import Mnist

    rng = np.random.default_rng(0)
    img = lambda n: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)  # noqa: E731
    lab = lambda n: rng.integers(0, 10, n).astype(np.uint8)  # noqa: E731
    return Mnist(img(320), lab(320), img(50), lab(50))


def test_plan_validation():
    model = small_model()
    with pytest.raises(ValueError, match="`workers`"):
        FastPlan(model, workers=0)
    plan = FastPlan(model)
    with pytest.raises(ValueError, match="`backward` needs"):
        plan.backward(np.zeros((2, 3)))
    plan.forward(np.zeros((4, 9, 9, 2)), training=True)
    with pytest.raises(ValueError, match="`dlogits`"):
        plan.backward(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`x`"):
        plan.forward(np.zeros((4, 8, 9, 2)))


def test_slices_run_on_the_calling_thread_once_the_pools_are_shut_down(monkeypatch):
    """At interpreter exit the thread pools refuse work; a training step in flight then
    finishes on its own thread instead of failing the run (the restored-after-restart
    run came back "failed" when the server stopped mid-chunk)."""
    import convviz.nn.fast as fast

    class Closed:
        def submit(self, fn):
            raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(fast, "_pool", lambda workers: Closed())
    assert fast._run_slices(lambda i: i * i, 5, 2) == [0, 1, 4, 9, 16]
