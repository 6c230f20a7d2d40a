"""Looking inside a trained model (convviz.nn.inspect), checked against independent oracles.

Oracles: :func:`convviz.conv.conv2d_step` (the Convolution page's arithmetic) and
``scipy.signal.correlate2d`` for the conv cells, the model's own layer outputs for the
filled maps, central finite differences in float64 for the saliency, a hand-built
Dense model whose occlusion map is known in closed form, and weights edited by hand
and scored with ``convviz.nn.train.evaluate`` (the reference layers) for the surgery.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate2d

from convviz.activations import softmax
from convviz.conv import ConvStep, conv2d_step
from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.nn import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    Sequential,
    load_mnist,
    load_model,
)
from convviz.nn import inspect as ins
from convviz.nn.train import evaluate
from convviz.runs.observe import layer_outputs

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


@pytest.fixture(scope="module")
def classic() -> Sequential:
    return load_model(MODELS / "classic.npz")


@pytest.fixture(scope="module")
def tiny() -> Sequential:
    return load_model(MODELS / "tiny.npz")


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return ins.test_slice()


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    return load_mnist().test_images[0]  # a 7, (28, 28) uint8


def _state(model: Sequential) -> list[tuple[str, bytes]]:
    """Every weight, gradient and buffer of ``model`` as bytes (a bit-for-bit fingerprint)."""
    out = [(n, p.tobytes()) for n, p, _ in model.parameters()]
    out += [(n + "/grad", g.tobytes()) for n, _, g in model.parameters()]
    out += [(n, b.tobytes()) for n, b in model.buffers()]
    return out


def _code(exc: pytest.ExceptionInfo) -> str:
    for lang in ("en", "pt"):
        assert translator(lang).has(exc.value.code), exc.value.code
    return exc.value.code


# --------------------------------------------------------------------------- a digit


def test_activations_are_the_models_own_layer_outputs(classic, digit) -> None:
    before = _state(classic)
    outs = ins.activations(classic, digit)
    theirs = layer_outputs(classic, digit)  # what the runs read off a model
    assert [(o.index, o.name, o.class_name) for o in outs] == [
        (i, name, kind) for i, (name, kind, _) in enumerate(theirs)
    ]
    for o, (_, _, arr) in zip(outs, theirs, strict=True):
        assert o.output.shape == arr.shape and o.output.dtype == np.float32
        assert np.array_equal(o.output, arr)
    # all digit layouts are the same digit
    f = digit / np.float32(255)
    for x in (f, f[..., None], f[None], f[None, ..., None]):
        assert np.array_equal(ins.activations(classic, x)[-1].output, outs[-1].output)
    assert _state(classic) == before


def test_predict_digit(classic, digit) -> None:
    p = ins.predict_digit(classic, digit)
    proba = classic.predict_proba(digit[None, ..., None] / np.float32(255))[0]
    assert np.allclose(p.probs, proba, atol=1e-6) and np.isclose(p.probs.sum(), 1)
    assert p.label == 7 == int(np.argmax(proba))
    assert len(p.layers) == len(classic.layers)


def test_the_model_is_not_touched_not_even_its_caches(classic, digit) -> None:
    """A model being trained keeps its caches between forward and backward: leave them."""
    sentinels = [object() for _ in classic.layers]
    for layer, s in zip(classic.layers, sentinels, strict=True):
        layer._cache = s
    before = _state(classic)
    try:
        ins.predict_digit(classic, digit)
        ins.filter_map(classic, 2, digit, 1)
        ins.dense_contributions(classic, digit, 7)
        ins.saliency(classic, digit, 7)
        ins.occlusion(classic, digit, 7)
        ins.layer_input(classic, 2, digit)
        ins.surgery(classic, 0, 0, zero=True)
        ins.evaluate_slice(classic, *ins.test_slice(50))
        ins.SurgeryBench(classic, 0, *ins.test_slice(50)).evaluate({0: np.zeros((3, 3))})
        assert all(layer._cache is s for layer, s in zip(classic.layers, sentinels, strict=True))
        assert _state(classic) == before
    finally:
        for layer in classic.layers:
            layer._cache = None


def test_layer_input_and_conv_layers(tiny, digit) -> None:
    assert ins.conv_layers(tiny) == [1, 3, 5]  # tiny starts with a Rescaling
    x = ins.layer_input(tiny, 1, digit)
    rescale = tiny.layers[0]
    expect = (digit / np.float32(255))[..., None] * np.float32(rescale.scale) + np.float32(
        rescale.offset
    )
    assert x.shape == (28, 28, 1) and np.allclose(x, expect, atol=1e-6)
    assert np.array_equal(ins.layer_input(tiny, 0, digit), ins.as_digit(tiny, digit)[0])


# ----------------------------------------------------------------------- conv cells


def test_first_layer_cells_are_the_convolution_pages_arithmetic(classic, digit) -> None:
    x = ins.layer_input(classic, 0, digit)  # (28, 28, 1)
    for f in (0, 7, 31):
        kernel, bias = ins.learned_kernel(classic, 0, f)
        for r, c in [(0, 0), (12, 9), (25, 25), (4, 20)]:
            cell = ins.conv_cell(classic, 0, x, r, c, f)
            step = conv2d_step(x[..., 0].astype(np.float64), kernel[..., 0], bias, index=(r, c))
            assert cell.index == step.index and cell.position == step.position
            assert cell.pad == step.pad and cell.out_shape == step.out_shape
            for mine, theirs in [
                (cell.window, step.patch),
                (cell.kernel, step.kernel),
                (cell.products, step.products),
                (cell.partial_sums, step.partial_sums),
                (cell.inside, step.inside),
                (cell.rows, step.rows),
                (cell.cols, step.cols),
            ]:
                assert np.array_equal(mine, theirs)
            assert cell.pre_activation == step.value and cell.bias == step.bias
            assert cell.activation == "relu" and cell.value == max(step.value, 0.0)
            as_step = cell.step()
            assert isinstance(as_step, ConvStep) and as_step.value == step.value


def _every_cell(model, i, x, f) -> np.ndarray:
    ho, wo = model.layers[i].output_shape[:2]
    return np.array(
        [[ins.conv_cell(model, i, x, r, c, f).value for c in range(wo)] for r in range(ho)]
    )


@pytest.mark.parametrize("layer_index", [0, 2], ids=["layer 1", "layer 3 (64 channels in)"])
def test_filling_every_cell_gives_the_layers_own_output(classic, digit, layer_index) -> None:
    i = layer_index
    x_in = ins.layer_input(classic, i, digit)  # (H, W, C)
    network = classic.activations(digit[None, ..., None] / np.float32(255))[i][1][0]
    for f in range(classic.layers[i].filters):
        stepped = _every_cell(classic, i, x_in, f)
        scale = max(1.0, float(np.abs(network[..., f]).max()))
        assert np.abs(stepped - network[..., f]).max() <= 1e-5 * scale, f  # float32 rounding
    fm = ins.filter_map(classic, i, digit, 5)
    assert np.array_equal(fm.stepped, _every_cell(classic, i, x_in, 5))
    assert np.array_equal(fm.network, network[..., 5])
    assert fm.agrees and fm.max_abs_diff <= 1e-5 * max(1.0, float(np.abs(fm.network).max()))


def test_deeper_partial_sums_are_per_channel_correlations(classic, digit) -> None:
    """Each input channel's partial sum against scipy's correlate2d of that channel."""
    i, f = 2, 11
    x_in = ins.layer_input(classic, i, digit).astype(np.float64)  # (13, 13, 32)
    kernel, bias = ins.learned_kernel(classic, i, f)  # (3, 3, 32)
    per_channel = np.stack(
        [correlate2d(x_in[..., c], kernel[..., c], mode="valid") for c in range(32)]
    )  # (32, 11, 11)
    for r, c in [(0, 0), (5, 6), (10, 10)]:
        cell = ins.conv_cell(classic, i, x_in, r, c, f)
        assert cell.window.shape == (32, 3, 3) and cell.partial_sums.shape == (32,)
        assert np.allclose(cell.partial_sums, per_channel[:, r, c], rtol=1e-12, atol=1e-12)
        assert np.isclose(cell.total, per_channel[:, r, c].sum(), rtol=1e-12)
        assert cell.pre_activation == cell.total + bias
        assert cell.value == max(cell.pre_activation, 0.0)


def test_strided_same_padded_layers() -> None:
    """A layer with stride 2 and "same" padding (TensorFlow's: the odd pixel after)."""
    model = Sequential(
        [
            Conv2D(4, 3, strides=2, padding="same", activation="relu"),  # 14x14x4
            Conv2D(3, 2, strides=2, padding="same"),  # 7x7x3, no activation
            Flatten(),
            Dense(10, activation="softmax"),
        ],
        seed=3,
    )
    x = np.random.default_rng(0).random((28, 28), dtype=np.float32)
    acts = model.activations(x[None, ..., None])
    x0 = ins.layer_input(model, 0, x)
    assert model.layers[0].pads == ((0, 1), (0, 1))
    for f in range(4):
        k, b = ins.learned_kernel(model, 0, f)
        for r, c in [(0, 0), (13, 13), (6, 2)]:
            cell = ins.conv_cell(model, 0, x0, r, c, f)
            step = conv2d_step(
                x0[..., 0].astype(np.float64), k[..., 0], b, index=(r, c), stride=2, padding="same"
            )
            assert np.array_equal(cell.window, step.patch)
            assert np.array_equal(cell.inside, step.inside)
            assert cell.pre_activation == step.value
        assert np.allclose(_every_cell(model, 0, x0, f), acts[0][1][0, ..., f], atol=1e-5)
    x1 = ins.layer_input(model, 1, x)
    for f in range(3):
        stepped = _every_cell(model, 1, x1, f)
        assert np.allclose(stepped, acts[1][1][0, ..., f], atol=1e-5)
        assert ins.conv_cell(model, 1, x1, 0, 0, f).activation == "none"
    assert (stepped < 0).any()  # no ReLU on that layer: negative cells stay


def test_learned_kernel_is_a_float64_copy(classic) -> None:
    k, b = ins.learned_kernel(classic, 2, 3)
    assert k.shape == (3, 3, 32) and k.dtype == np.float64
    assert np.array_equal(k, classic.layers[2].params["kernel"][..., 3])
    assert b == float(classic.layers[2].params["bias"][3])
    k[...] = 0
    assert classic.layers[2].params["kernel"][..., 3].any()


def test_conv_errors(classic, digit) -> None:
    x = ins.layer_input(classic, 0, digit)
    cases = [
        (lambda: ins.conv_cell(classic, 1, x, 0, 0, 0), "err.inspect.not_conv"),
        (lambda: ins.conv_cell(classic, 8, x, 0, 0, 0), "err.inspect.layer_range"),
        (lambda: ins.conv_cell(classic, -1, x, 0, 0, 0), "err.inspect.layer_range"),
        (lambda: ins.conv_cell(classic, 0, x, 0, 0, 32), "err.inspect.filter_range"),
        (lambda: ins.conv_cell(classic, 0, x, 26, 0, 0), "err.inspect.cell_range"),
        (lambda: ins.conv_cell(classic, 0, x, 0, -1, 0), "err.inspect.cell_range"),
        (lambda: ins.conv_cell(classic, 0, x[..., 0], 0, 0, 0), "err.inspect.input_shape"),
        (lambda: ins.conv_cell(classic, 2, x, 0, 0, 0), "err.inspect.input_shape"),
        (lambda: ins.conv_cell(classic, 0, x * np.nan, 0, 0, 0), "err.inspect.input_values"),
        (lambda: ins.conv_cell(classic, 0, x, 0.5, 0, 0), "err.not_an_integer"),
        (lambda: ins.learned_kernel(classic, 7, 0), "err.inspect.not_conv"),
        (lambda: ins.filter_map(classic, 0, digit, 40), "err.inspect.filter_range"),
        (lambda: ins.activations(classic, np.zeros((27, 28))), "err.inspect.digit_shape"),
        (lambda: ins.activations(classic, np.zeros((2, 28, 28, 1))), "err.inspect.digit_shape"),
        (lambda: ins.activations(classic, np.full((28, 28), np.inf)), "err.inspect.digit_values"),
        (lambda: ins.activations(classic, np.zeros((28, 28), int)), "err.inspect.digit_values"),
    ]
    for fn, code in cases:
        with pytest.raises(CodedError) as exc:
            fn()
        assert _code(exc) == code
    with pytest.raises(CodedError) as exc:
        ins.conv_cell(classic, 0, x, 0, 0, 32)
    assert str(exc.value) == "Filter 32 does not exist: layer 0 has 32 filters (0 to 31)"


# ------------------------------------------------------------------------ the head


def test_dense_contributions_sum_to_the_models_logit(classic, digit) -> None:
    logits = classic.forward(digit[None, ..., None] / np.float32(255))[0]  # float32
    for cls in (7, 2):
        d = ins.dense_contributions(classic, digit, cls, top=10)
        assert np.isclose(d.logit, logits[cls], rtol=1e-5, atol=1e-5)
        assert np.isclose(d.bias + d.top_wx.sum() + d.rest, d.logit, rtol=1e-12, atol=1e-12)
        assert np.allclose(d.logits, logits, rtol=1e-5, atol=1e-5)
        assert np.allclose(d.probs, softmax(logits.astype(np.float64)), atol=1e-6)
        # the head's input is the previous layer's output, its weights the column of `cls`
        x = classic.activations(digit[None, ..., None] / np.float32(255))[-2][1][0]
        head = classic.layers[-1]
        assert np.array_equal(d.x, x.astype(np.float64))
        assert np.array_equal(d.w, head.params["kernel"][:, cls].astype(np.float64))
        assert d.bias == float(head.params["bias"][cls])
        # the top ten are the ten largest |w x|, largest first
        mags = np.abs(d.x * d.w)
        assert len(d.top) == 10 and np.all(np.diff(np.abs(d.top_wx)) <= 0)
        assert np.abs(d.top_wx).min() >= np.sort(mags)[-10]
        assert np.array_equal(d.top_wx, d.top_x * d.top_w)
    assert len(ins.dense_contributions(classic, digit, 0, top=1000).top) == 64
    assert ins.dense_contributions(classic, digit, 0, top=64).rest == 0.0


def test_dense_errors(classic, digit) -> None:
    no_head = Sequential([Conv2D(2, 3), Flatten(), Dense(4, activation="relu")], seed=0)
    for fn, code in [
        (lambda: ins.dense_contributions(classic, digit, 10), "err.inspect.class_range"),
        (lambda: ins.dense_contributions(classic, digit, -1), "err.inspect.class_range"),
        (lambda: ins.dense_contributions(classic, digit, 1, top=0), "err.must_be_positive"),
        (lambda: ins.dense_contributions(no_head, digit, 1), "err.inspect.no_dense_head"),
        (lambda: ins.saliency(classic, digit, 10), "err.inspect.class_range"),
    ]:
        with pytest.raises(CodedError) as exc:
            fn()
        assert _code(exc) == code


# -------------------------------------------------------------------------- saliency


def _finite_difference(model, x, cls, pixels, eps=1e-5) -> np.ndarray:
    out = []
    for r, c in pixels:
        xp, xm = x.copy(), x.copy()
        xp[r, c] += eps
        xm[r, c] -= eps
        lp = model.forward(xp[None, ..., None])[0, cls]
        lm = model.forward(xm[None, ..., None])[0, cls]
        out.append((lp - lm) / (2 * eps))
    return np.array(out)


def test_saliency_against_finite_differences(classic, digit) -> None:
    model = ins.copy_model(classic).astype(np.float64)
    rng = np.random.default_rng(0)
    # a little noise: no ties in the max-pool windows, no pre-activation exactly at a kink
    x = digit / 255.0 * 0.9 + 0.1 * rng.random((28, 28))
    g = ins.saliency(model, x, 7)
    assert g.shape == (28, 28) and g.dtype == np.float64
    strongest = np.unravel_index(np.argsort(-np.abs(g).ravel())[:4], g.shape)
    pixels = [*zip(*strongest, strict=True), (14, 14), (5, 20), (22, 9), (0, 0)]
    fd = _finite_difference(model, x, 7, pixels)
    ours = np.array([g[r, c] for r, c in pixels])
    scale = np.abs(g).max()
    assert np.allclose(ours, fd, rtol=1e-5, atol=1e-7 * scale), (ours, fd)
    # the float32 model gives the same map to float32 rounding
    g32 = ins.saliency(classic, x.astype(np.float32), 7)
    assert np.allclose(g32, g, atol=1e-4 * scale)


def test_saliency_keeps_dropout_and_batchnorm_in_evaluation_mode() -> None:
    model = Sequential(
        [
            Conv2D(3, 3, activation="relu"),
            BatchNorm(),
            MaxPool2D(2),
            Dropout(0.5),
            Flatten(),
            Dense(10, activation="softmax"),
        ],
        seed=1,
    ).astype(np.float64)
    bn = model.layers[1]
    bn.buffers["moving_mean"][...] = [0.1, 0.2, 0.3]
    bn.buffers["moving_variance"][...] = [0.5, 2.0, 1.5]
    bn.params["gamma"][...] = [1.5, -0.5, 2.0]
    before = _state(model)
    x = np.random.default_rng(2).random((28, 28))
    g = ins.saliency(model, x, 3)
    pixels = [(3, 4), (14, 14), (20, 7), (27, 27)]
    fd = _finite_difference(model, x, 3, pixels)
    assert np.allclose([g[p] for p in pixels], fd, rtol=1e-5, atol=1e-9)
    assert _state(model) == before  # moving statistics untouched


# ------------------------------------------------------------------------- occlusion


def _region_model(a: float) -> Sequential:
    """Logit 0 = a * (sum of the pixels of rows 0-7, columns 0-7); every other logit 0."""
    model = Sequential([Flatten(), Dense(10, activation="softmax")], seed=0).astype(np.float64)
    w = np.zeros((28, 28, 10))
    w[:8, :8, 0] = a
    model.layers[1].params["kernel"][...] = w.reshape(784, 10)
    model.layers[1].params["bias"][...] = 0
    return model


def test_occlusion_on_a_model_whose_answer_is_known() -> None:
    a = 0.1
    model = _region_model(a)
    x = np.ones((28, 28))

    def p0(hidden: int) -> float:  # P(class 0) when `hidden` pixels of the region are 0
        logit = a * (64 - hidden)
        return np.exp(logit) / (np.exp(logit) + 9)

    occ = ins.occlusion(model, x, 0, patch=4, stride=2)
    assert occ.rows.tolist() == list(range(0, 25, 2)) == occ.cols.tolist()
    assert occ.probs.shape == occ.drop.shape == (13, 13) and occ.heat.shape == (28, 28)
    assert np.isclose(occ.base, p0(0))
    for iy, r in enumerate(occ.rows):
        for ix, c in enumerate(occ.cols):
            overlap = max(0, min(r + 4, 8) - r) * max(0, min(c + 4, 8) - c)
            assert np.isclose(occ.probs[iy, ix], p0(overlap), rtol=1e-12)
            assert np.isclose(occ.drop[iy, ix], p0(0) - p0(overlap), rtol=1e-9, atol=1e-15)
    assert occ.drop[0, 0] > 0 and np.all(occ.drop[5:, :] == 0) and np.all(occ.drop[:, 5:] == 0)
    # heat: the mean drop of the patches over each pixel
    assert np.isclose(occ.heat[0, 0], occ.drop[0, 0])  # only the first patch covers (0, 0)
    assert np.isclose(occ.heat[2, 2], occ.drop[:2, :2].mean())
    assert np.all(occ.heat[12:, :] == 0)
    # the patch's fill matters: hiding with ones changes nothing here
    assert np.allclose(ins.occlusion(model, x, 0, fill=1.0).drop, 0)


def test_occlusion_grid_when_the_stride_does_not_divide() -> None:
    occ = ins.occlusion(_region_model(0.1), np.ones((28, 28)), 0, patch=5, stride=2)
    assert occ.rows.tolist() == list(range(0, 24, 2)) and occ.drop.shape == (12, 12)
    assert occ.rows[-1] + 5 == 27  # the last row and column are not covered
    assert np.all(occ.heat[27, :] == 0) and np.all(occ.heat[:, 27] == 0)


def test_occlusion_on_classic_batches_every_position(classic, digit) -> None:
    occ = ins.occlusion(classic, digit, 7)
    p = ins.predict_digit(classic, digit)
    assert np.isclose(occ.base, p.probs[7], atol=1e-6)
    # spot-check two positions against single forward passes
    for iy, ix in [(6, 6), (0, 12)]:
        x = digit / np.float32(255)
        r, c = occ.rows[iy], occ.cols[ix]
        x[r : r + 4, c : c + 4] = 0
        single = ins.predict_digit(classic, x).probs[7]
        assert np.isclose(occ.probs[iy, ix], single, atol=1e-6)
    assert occ.drop.max() > 0.01  # hiding part of the 7 costs some confidence somewhere


def test_occlusion_errors(classic, digit) -> None:
    for kwargs, code in [
        ({"patch": 0}, "err.must_be_positive"),
        ({"patch": 29}, "err.inspect.patch_size"),
        ({"stride": 0}, "err.must_be_positive"),
        ({"fill": float("nan")}, "err.must_be_finite"),
        ({"cls": 10}, "err.inspect.class_range"),
    ]:
        kw = {"cls": 7, **kwargs}
        with pytest.raises(CodedError) as exc:
            ins.occlusion(classic, digit, **kw)
        assert _code(exc) == code


# --------------------------------------------------------------------------- surgery


def test_surgery_returns_a_copy_and_leaves_the_model_bit_for_bit(classic) -> None:
    before = _state(classic)
    learned = classic.layers[0].params["kernel"].copy()
    zeroed = ins.surgery(classic, 0, 4, zero=True)
    negated = ins.surgery(classic, 0, 4, negate=True)
    sobel = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    replaced = ins.surgery(classic, 0, 4, sobel)
    assert _state(classic) == before
    for copy, want in [(zeroed, 0 * learned[..., 4]), (negated, -learned[..., 4])]:
        assert np.array_equal(copy.layers[0].params["kernel"][..., 4], want)
    assert np.array_equal(replaced.layers[0].params["kernel"][:, :, 0, 4], sobel.astype(np.float32))
    for copy in (zeroed, negated, replaced):
        k = copy.layers[0].params["kernel"]
        others = [f for f in range(32) if f != 4]
        assert np.array_equal(k[..., others], learned[..., others])
        assert copy.layers[0].params["kernel"] is not classic.layers[0].params["kernel"]
        # everything else is equal and independent
        for (n, p, _), (_, q, _) in zip(copy.parameters(), classic.parameters(), strict=True):
            assert not np.shares_memory(p, q)
            if n != "conv2d/kernel":
                assert np.array_equal(p, q)
        assert copy.get_config() == classic.get_config()
    # a deeper layer's kernel is (3, 3, 32)
    k = np.random.default_rng(0).random((3, 3, 32))
    deep = ins.surgery(classic, 2, 0, k)
    assert np.allclose(deep.layers[2].params["kernel"][..., 0], k)


def test_surgery_errors(classic) -> None:
    for fn, code in [
        (lambda: ins.surgery(classic, 0, 0), "err.inspect.surgery_choice"),
        (lambda: ins.surgery(classic, 0, 0, zero=True, negate=True), "err.inspect.surgery_choice"),
        (
            lambda: ins.surgery(classic, 0, 0, np.ones((3, 3)), zero=True),
            "err.inspect.surgery_choice",
        ),
        (lambda: ins.surgery(classic, 0, 0, np.ones((5, 5))), "err.inspect.kernel_shape"),
        (lambda: ins.surgery(classic, 2, 0, np.ones((3, 3))), "err.inspect.kernel_shape"),
        (lambda: ins.surgery(classic, 0, 0, np.full((3, 3), np.nan)), "err.inspect.kernel_values"),
        (lambda: ins.surgery(classic, 1, 0, zero=True), "err.inspect.not_conv"),
        (lambda: ins.surgery(classic, 0, 32, zero=True), "err.inspect.filter_range"),
    ]:
        with pytest.raises(CodedError) as exc:
            fn()
        assert _code(exc) == code


def test_a_zeroed_kernels_accuracy_equals_an_independent_computation(classic, test_set) -> None:
    images, labels = test_set
    assert images.shape == (2000, 28, 28) and np.array_equal(
        labels, load_mnist().test_labels[:2000]
    )
    f = 0  # zeroing filter 0 costs 0.2% on this slice (measured)
    by_hand = load_model(MODELS / "classic.npz")
    by_hand.layers[0].params["kernel"][:, :, :, f] = 0
    loss, acc, confusion = evaluate(by_hand, images, labels)  # the reference layers
    e = ins.evaluate_slice(ins.surgery(classic, 0, f, zero=True), images, labels)
    assert e.acc == acc and np.array_equal(e.confusion, confusion)
    assert np.isclose(e.loss, loss, rtol=1e-5)
    base = ins.evaluate_slice(classic, images, labels)
    assert e.acc != base.acc  # the edit made a difference
    # undo is the original model: the exact same numbers again
    again = ins.evaluate_slice(classic, images, labels)
    assert again.acc == base.acc and np.array_equal(again.confusion, base.confusion)
    assert np.array_equal(again.pred, base.pred) and np.array_equal(again.conf, base.conf)


def test_fastplan_evaluation_agrees_with_the_reference_layers(classic, test_set) -> None:
    images, labels = test_set
    loss, acc, confusion = evaluate(classic, images, labels)  # Sequential.forward
    e = ins.evaluate_slice(classic, images, labels)
    assert e.acc == acc and np.array_equal(e.confusion, confusion)
    assert np.isclose(e.loss, loss, rtol=1e-5)


# ---------------------------------------------------------------------- the bench


def test_the_bench_agrees_with_full_evaluations(classic, test_set) -> None:
    images, labels = test_set
    bench = ins.SurgeryBench(classic, 0, images, labels)
    full = ins.evaluate_slice(classic, images, labels)
    assert bench.baseline.acc == full.acc
    assert np.array_equal(bench.baseline.confusion, full.confusion)
    assert np.allclose(bench.baseline.conf, full.conf, atol=1e-6)
    learned = classic.layers[0].params["kernel"]
    edits = [
        ({0: np.zeros((3, 3))}, ins.surgery(classic, 0, 0, zero=True)),
        ({12: -learned[..., 12]}, ins.surgery(classic, 0, 12, negate=True)),
    ]
    two = ins.surgery(ins.surgery(classic, 0, 0, zero=True), 0, 24, negate=True)
    edits.append(({0: np.zeros((3, 3, 1)), 24: -learned[..., 24]}, two))
    for kernels, model in edits:
        fast = bench.evaluate(kernels)
        slow = ins.evaluate_slice(model, images, labels)
        assert fast.acc == slow.acc and np.array_equal(fast.confusion, slow.confusion)
        assert np.array_equal(fast.pred, slow.pred)
        assert np.allclose(fast.conf, slow.conf, atol=1e-5)
        assert fast.acc != bench.baseline.acc
    # undo: the learned kernels give the baseline bit for bit
    for undo in ({}, {0: learned[..., 0]}, {0: learned[..., 0].astype(np.float64)}):
        u = bench.evaluate(undo)
        assert u.acc == bench.baseline.acc and np.array_equal(u.conf, bench.baseline.conf)


def test_the_bench_on_other_layouts(tiny, test_set) -> None:
    images, labels = test_set[0][:300], test_set[1][:300]
    # tiny: a Rescaling first, the conv at index 1, then a pool and a conv (the fast path)
    bench = ins.SurgeryBench(tiny, 1, images, labels)
    sobel = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    fast = bench.evaluate({3: sobel})
    slow = ins.evaluate_slice(ins.surgery(tiny, 1, 3, sobel), images, labels)
    assert np.array_equal(fast.pred, slow.pred) and np.allclose(fast.conf, slow.conf, atol=1e-5)
    # the last conv of tiny is followed by Flatten: the bench runs the rest in full
    bench5 = ins.SurgeryBench(tiny, 5, images, labels)
    k = np.random.default_rng(0).normal(0, 0.1, (3, 3, 32))
    fast = bench5.evaluate({10: k})
    slow = ins.evaluate_slice(ins.surgery(tiny, 5, 10, k), images, labels)
    assert np.array_equal(fast.pred, slow.pred) and np.allclose(fast.conf, slow.conf, atol=1e-5)
    assert bench5.evaluate({}).acc == bench5.baseline.acc


def test_the_bench_keeps_its_own_copy(test_set) -> None:
    images, labels = test_set[0][:200], test_set[1][:200]
    model = load_model(MODELS / "classic.npz")
    bench = ins.SurgeryBench(model, 0, images, labels)
    base = bench.baseline
    model.layers[-1].params["bias"][...] += 5.0  # "training" goes on
    assert np.array_equal(bench.evaluate({}).conf, base.conf)
    with pytest.raises(CodedError) as exc:
        bench.evaluate({32: np.zeros((3, 3))})
    assert _code(exc) == "err.inspect.filter_range"
    with pytest.raises(CodedError) as exc:
        ins.SurgeryBench(model, 1, images, labels)
    assert _code(exc) == "err.inspect.not_conv"


@pytest.mark.parametrize("preset", ["resnet", "inception", "densenet"])
def test_models_with_blocks(preset: str, digit) -> None:
    """Residual and Concat blocks: saliency by finite differences, activations, the bench."""
    from convviz.nn import build_model

    model = build_model(preset, seed=0).astype(np.float64)
    x = digit / 255.0 * 0.9 + 0.1 * np.random.default_rng(1).random((28, 28))
    before = _state(model)
    g = ins.saliency(model, x, 4)
    pixels = [(14, 14), (8, 17), (20, 11)]
    fd = _finite_difference(model, x, 4, pixels)
    assert np.allclose([g[p] for p in pixels], fd, rtol=1e-5, atol=1e-7 * np.abs(g).max())
    outs = ins.activations(model, x)
    assert np.array_equal(outs[-1].output, model.forward(x[None, ..., None])[0])
    images, labels = ins.test_slice(60)
    bench = ins.SurgeryBench(model, 0, images, labels)  # a block follows: the full path
    fast = bench.evaluate({2: np.zeros((3, 3))})
    slow = ins.evaluate_slice(ins.surgery(model, 0, 2, zero=True), images, labels)
    assert np.array_equal(fast.pred, slow.pred) and np.allclose(fast.conf, slow.conf, atol=1e-9)
    assert _state(model) == before
