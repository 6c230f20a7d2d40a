"""`Sequential`, presets, the Keras summary, save/load, and one real epoch on MNIST."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.nn.blocks import Concat, Residual
from convviz.nn.data import load_mnist, to_batch
from convviz.nn.fast import FastPlan
from convviz.nn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
    MaxPool2D,
    ReLU,
)
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.model import ModelFileError, Sequential, load_model
from convviz.nn.presets import PRESETS, build_model

# Keras 2's summary of the MNIST convnet from "Deep Learning with Python" (the oracle).
KERAS_CLASSIC = [
    ("conv2d (Conv2D)", "(None, 26, 26, 32)", "320"),
    ("max_pooling2d (MaxPooling2D)", "(None, 13, 13, 32)", "0"),
    ("conv2d_1 (Conv2D)", "(None, 11, 11, 64)", "18,496"),
    ("max_pooling2d_1 (MaxPooling2D)", "(None, 5, 5, 64)", "0"),
    ("conv2d_2 (Conv2D)", "(None, 3, 3, 64)", "36,928"),
    ("flatten (Flatten)", "(None, 576)", "0"),
    ("dense (Dense)", "(None, 64)", "36,928"),
    ("dense_1 (Dense)", "(None, 10)", "650"),
]


def _rows(summary: str) -> list[tuple[str, str, str]]:
    """Parse the layer rows of a summary: text between the '=' rules, minus '_' rules."""
    lines = summary.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=")]
    body = [line for line in lines[rules[0] + 1 : rules[1]] if not line.startswith("_")]
    header = next(line for line in lines if line.startswith("Layer (type)"))
    c1, c2 = header.index("Output Shape"), header.index("Param #")
    return [(r[:c1].strip(), r[c1:c2].strip(), r[c2:].strip()) for r in body]


def test_classic_summary_matches_keras():
    text = build_model("classic").summary()
    assert _rows(text) == KERAS_CLASSIC
    tail = [line.strip() for line in text.splitlines()[-4:-1]]
    assert tail == ["Total params: 93,322", "Trainable params: 93,322", "Non-trainable params: 0"]
    assert text.splitlines()[0] == 'Model: "classic"'


def test_summary_counts_batchnorm_moving_stats_as_non_trainable():
    model = Sequential([Conv2D(4, 3), BatchNorm(), Flatten(), Dense(10)], input_shape=(5, 5, 1))
    rows = _rows(model.summary())
    assert rows[1] == ("batch_normalization (BatchNormalization)", "(None, 3, 3, 4)", "16")
    assert "Total params: 426" in model.summary()  # 40 + 16 + 370
    assert "Trainable params: 418" in model.summary()
    assert "Non-trainable params: 8" in model.summary()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_run_and_report_their_size(name):
    model = build_model(name, seed=1)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    logits = model.forward(x)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    n_arrays = sum(p.size for _, p, _ in model.parameters()) + sum(
        b.size for _, b in model.buffers()
    )
    assert model.count_params() == n_arrays
    assert f"Total params: {n_arrays:,}" in model.summary()
    assert 0 < n_arrays < 100_000
    assert PRESETS[name]
    probs = model.predict_proba(x)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert model.predict(x).shape == (3,)


def test_tiny_preset_size_by_hand():
    # conv 3x3x1x16+16, 3x3x16x32+32, 3x3x32x64+64, dense 576x64+64, 64x10+10
    assert build_model("tiny").count_params() == 160 + 4640 + 18496 + 36928 + 650


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="`name`"):
        build_model("lenet")


def test_seeded_models_are_reproducible():
    a, b, c = build_model("resnet", seed=7), build_model("resnet", seed=7), build_model("resnet", 8)
    for (na, pa, _), (nb, pb, _) in zip(a.parameters(), b.parameters(), strict=True):
        assert na == nb and np.array_equal(pa, pb)
    assert not all(
        np.array_equal(p, q)
        for (_, p, _), (_, q, _) in zip(a.parameters(), c.parameters(), strict=True)
    )
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    assert np.array_equal(a.forward(x), b.forward(x))


def test_nested_parameter_names():
    names = [n for n, _, _ in build_model("resnet").parameters()]
    assert "residual/conv2d/kernel" in names
    assert "residual_1/projection/kernel" in names
    assert len(names) == len(set(names))


def test_activations_one_entry_per_layer_with_shapes():
    model = build_model("classic")
    x = np.random.default_rng(2).random((2, 28, 28, 1), dtype=np.float32)
    acts = model.activations(x)
    assert [name for name, _ in acts] == [layer.name for layer in model.layers]
    for (_, a), layer in zip(acts, model.layers, strict=True):
        assert a.shape == (2, *layer.output_shape)
    assert np.array_equal(acts[-1][1], model.forward(x))
    assert (acts[0][1] >= 0).all()  # the first conv's ReLU is shown applied
    weights = dict(model.layer_weights())
    assert list(weights) == ["conv2d", "conv2d_1", "conv2d_2", "dense", "dense_1"]
    assert weights["conv2d"]["kernel"].shape == (3, 3, 1, 32)


def _model_with_everything(seed=0):
    layers = [
        Conv2D(4, 3, padding="same", activation="relu"),
        BatchNorm(),
        MaxPool2D(2),
        Residual([Conv2D(6, 3, strides=2, padding="same", activation="relu")]),
        Concat([[Identity()], [Conv2D(2, 1), ReLU()]]),
        Flatten(),
        Dropout(0.3),
        Dense(10, activation="softmax"),
    ]
    return Sequential(layers, input_shape=(12, 12, 1), seed=seed, name="everything")


@pytest.mark.parametrize("make", [lambda: build_model("classic"), _model_with_everything])
def test_save_load_round_trip_is_bitwise(tmp_path, make):
    model = make()
    rng = np.random.default_rng(3)
    shape = (6, *model.input_shape)
    x = rng.random(shape, dtype=np.float32)
    for _ in range(2):  # move BatchNorm's moving statistics away from their start
        _, d = softmax_cross_entropy(model.forward(x, training=True), rng.integers(0, 10, 6))
        model.backward(d)
        for _, p, g in model.parameters():
            p -= 0.1 * g
    path = tmp_path / "model.npz"
    model.save(path, metadata={"epochs": 2, "note": "hi"})
    loaded = load_model(path)
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.summary() == model.summary()
    assert loaded.metadata == {"epochs": 2, "note": "hi"}
    for (n1, b1), (n2, b2) in zip(model.buffers(), loaded.buffers(), strict=True):
        assert n1 == n2 and np.array_equal(b1, b2)
    with np.load(path, allow_pickle=False) as data:  # nothing pickled
        arch = json.loads(str(data["architecture"]))
    assert [s["class_name"] for s in arch["layers"]][:2] == [
        type(model.layers[0]).__name__,
        type(model.layers[1]).__name__,
    ]


def test_save_and_load_take_file_objects(tmp_path):
    model = _model_with_everything(seed=4)
    buf = io.BytesIO()
    model.save(buf, metadata={"via": "bytes"})
    path = tmp_path / "no_suffix"  # a path is written as given, no ".npz" appended
    model.save(path)
    assert path.read_bytes()[:2] == b"PK" and not (tmp_path / "no_suffix.npz").exists()
    x = np.random.default_rng(5).random((3, 12, 12, 1), dtype=np.float32)
    from_bytes = load_model(io.BytesIO(buf.getvalue()))
    with path.open("rb") as fh:
        from_file = load_model(fh)
    assert from_bytes.metadata == {"via": "bytes"}
    for loaded in (from_bytes, from_file, load_model(str(path))):
        assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))


# Predictions of the shipped models on the 10k test set, recorded before the reference and
# fast paths were split (sha256 of the int64 classes) and the logits of test image 0.
SHIPPED = {
    "tiny": ("d5685cd83fa507bd", 0.9893, [-2.759, -2.0808, 4.2217, 1.0177, -6.1318]),
    "classic": ("e8ccb6a1869a3460", 0.9934, [-2.9595, 0.0002, 1.7607, 4.8858, -0.3736]),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_models_load_and_predict_as_before(name):
    digest, acc, logits0 = SHIPPED[name]
    path = Path(__file__).resolve().parents[1] / "assets" / "models" / f"{name}.npz"
    with path.open("rb") as fh:
        model = load_model(io.BytesIO(fh.read()))
    data = load_mnist()
    pred = model.predict(to_batch(data.test_images)).astype(np.int64)
    assert hashlib.sha256(pred.tobytes()).hexdigest()[:16] == digest
    assert float(np.mean(pred == data.test_labels)) == acc == model.metadata["test_accuracy"]
    got = model.forward(to_batch(data.test_images[:1]))[0, :5]
    np.testing.assert_allclose(got, logits0, atol=1e-4)
    assert np.array_equal(
        load_model(path).forward(to_batch(data.test_images[:64])),
        model.forward(to_batch(data.test_images[:64])),
    )


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _saved(model=None, **replace) -> bytes:
    """A saved model's arrays, some replaced (None: removed), as .npz bytes."""
    model = model or Sequential([Flatten(), Dense(3)], input_shape=(2, 2, 1))
    buf = io.BytesIO()
    model.save(buf)
    with np.load(io.BytesIO(buf.getvalue())) as data:
        arrays = {k: data[k] for k in data.files}
    for k, v in replace.items():
        k = k.replace("__", ":").replace("_SLASH_", "/")
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return _npz(**arrays)


def _arch(**changes) -> np.ndarray:
    config = Sequential([Flatten(), Dense(3)], input_shape=(2, 2, 1)).get_config()
    return np.array(json.dumps({**config, **changes}))


BAD_FILES = {
    "random bytes": (b"\x00\x01 not a zip", "err.nn.not_a_model"),
    "an empty file": (b"", "err.nn.not_a_model"),
    "a bare .npy": (b"", "err.nn.not_a_model"),  # filled in below
    "an npz of something else": (_npz(a=np.zeros(3)), "err.nn.not_a_model"),
    "a pickled object": (
        _npz(architecture=np.array([{"a": 1}], dtype=object)),
        "err.nn.not_a_model",
    ),
    "architecture not JSON": (_saved(architecture=np.array("{not json")), "err.nn.not_a_model"),
    "architecture not a string": (_saved(architecture=np.zeros(2)), "err.nn.not_a_model"),
    "another format": (_saved(architecture=_arch(format="convviz.nn/9")), "err.nn.model_format"),
    "an unknown layer": (
        _saved(architecture=_arch(layers=[{"class_name": "Evil", "config": {}}])),
        "err.nn.model_damaged",
    ),
    "a bad layer argument": (
        _saved(architecture=_arch(layers=[{"class_name": "Dense", "config": {"units": -1}}])),
        "err.nn.model_damaged",
    ),
    "an odd dtype": (_saved(architecture=_arch(dtype="int8")), "err.nn.model_damaged"),
    "a missing array": (_saved(param__dense_SLASH_kernel=None), "err.nn.model_damaged"),
    "a wrong shape": (_saved(param__dense_SLASH_kernel=np.zeros((3, 4))), "err.nn.model_damaged"),
    "a huge array": (
        _saved(param__dense_SLASH_kernel=np.zeros((4, 30000), np.float32)),
        "err.nn.model_damaged",
    ),
    "metadata not JSON": (_saved(metadata=np.array("[1,")), "err.nn.model_damaged"),
}
_npy = io.BytesIO()
np.save(_npy, np.zeros(3))
BAD_FILES["a bare .npy"] = (_npy.getvalue(), "err.nn.not_a_model")


@pytest.mark.parametrize("what", sorted(BAD_FILES))
def test_load_model_refuses_bad_files_with_a_coded_error(what):
    data, code = BAD_FILES[what]
    with pytest.raises(ModelFileError) as e:
        load_model(io.BytesIO(data))
    assert e.value.code == code and e.value.params == {}  # nothing from the file in the text
    assert isinstance(e.value, CodedError) and isinstance(e.value, ValueError)
    assert translator("pt")(code) != str(e.value)


def test_load_model_checks_shapes_and_size_before_reading_weights(tmp_path):
    model = build_model("tiny")
    path = tmp_path / "tiny.npz"
    model.save(path)
    ok = load_model(path, input_shape=(28, 28, 1), output_shape=(10,), max_params=100_000)
    assert ok.count_params() == model.count_params()
    cases = [
        (dict(input_shape=(32, 32, 3)), "err.nn.input_shape", {"want": "(32, 32, 3)"}),
        (dict(output_shape=(2,)), "err.nn.output_shape", {"want": "(2,)", "got": "(10,)"}),
        (dict(max_params=1000), "err.nn.too_many_params", {"count": 60874, "limit": 1000}),
    ]
    for kw, code, params in cases:
        with pytest.raises(ModelFileError) as e:
            load_model(path, **kw)
        assert e.value.code == code
        assert {k: e.value.params[k] for k in params} == params
        assert all(str(tmp_path) not in str(v) for v in e.value.params.values())
    with pytest.raises(ModelFileError, match=r"takes inputs of shape \(28, 28, 1\), but \(32"):
        load_model(path, input_shape=(32, 32, 1))


def test_a_huge_declared_model_is_refused_without_allocating_it():
    """Zero-initialised building touches no memory: a 4e10-weight Dense is counted, not made."""
    arch = _arch(input_shape=[200_000], layers=[Dense(200_000).to_spec()])
    with pytest.raises(ModelFileError) as e:
        load_model(io.BytesIO(_saved(architecture=arch)), max_params=1_000_000)
    assert e.value.code in ("err.nn.too_many_params", "err.nn.model_too_large")


def test_load_model_of_a_missing_path_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


def test_wrong_batch_shape_is_a_coded_error():
    with pytest.raises(CodedError) as e:
        build_model("tiny").forward(np.zeros((2, 27, 28, 1), np.float32))
    assert e.value.code == "err.nn.x_shape"
    assert e.value.params == {"want": "(N, 28, 28, 1)", "got": "(2, 27, 28, 1)"}
    assert str(e.value) == "`x` must have shape (N, 28, 28, 1), got (2, 27, 28, 1)"


def test_sequential_validation():
    with pytest.raises(ValueError, match="`layers`"):
        Sequential([])
    with pytest.raises(ValueError, match="`layers`"):
        Sequential([Conv2D(2, 3), "relu"])
    with pytest.raises(ValueError, match="`input_shape`"):
        Sequential([Flatten()], input_shape=(0, 3, 1))
    with pytest.raises(ValueError, match="`name`"):
        Sequential([Flatten(name="a"), Flatten(name="a")])
    model = build_model("tiny")
    with pytest.raises(ValueError, match="`x`"):
        model.forward(np.zeros((2, 27, 28, 1), np.float32))


def test_grayscale_batches_without_channel_axis_are_accepted():
    model = build_model("tiny")
    x = np.random.default_rng(4).random((2, 28, 28), dtype=np.float32)
    assert np.array_equal(model.forward(x), model.forward(x[..., None]))


def test_import_pulls_in_no_framework():
    code = "import sys, convviz.nn; print(sorted({'torch', 'streamlit'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ one real epoch

_ROOTS = [Path(__file__).resolve().parents[1] / "assets" / "mnist", Path("/work/shared/data/mnist")]


def _idx(path: Path) -> np.ndarray:
    """Parse an IDX file: magic (2 zero bytes, dtype 0x08, ndim), big-endian dims, uint8 data."""
    data = gzip.decompress(path.read_bytes())
    assert data[:3] == b"\x00\x00\x08", f"{path} is not a uint8 IDX file"
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.mark.slow
def test_tiny_reaches_98_percent_after_one_epoch():
    """`tiny`: one epoch of 60k, batch 64, Adam(1e-3) -> >= 98% test accuracy."""
    optim = pytest.importorskip("convviz.nn.optim")
    root = next((r for r in _ROOTS if (r / "train-images-idx3-ubyte.gz").exists()), None)
    if root is None:
        pytest.skip("MNIST files not found")
    x_train = _idx(root / "train-images-idx3-ubyte.gz")[..., None].astype(np.float32) / 255
    y_train = _idx(root / "train-labels-idx1-ubyte.gz")
    x_test = _idx(root / "t10k-images-idx3-ubyte.gz")[..., None].astype(np.float32) / 255
    y_test = _idx(root / "t10k-labels-idx1-ubyte.gz")
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)

    model = build_model("tiny", seed=0)
    plan = FastPlan(model)  # what trains in the app; test_nn_fast checks it against the layers
    opt = optim.Adam(model.parameters(), lr=1e-3)
    order = np.random.default_rng(0).permutation(60000)
    for i in range(0, 60000, 64):
        batch = order[i : i + 64]
        _, d = softmax_cross_entropy(plan.forward(x_train[batch], training=True), y_train[batch])
        plan.backward(d)
        opt.step()
    accuracy = float(np.mean(model.predict(x_test) == y_test))
    assert accuracy >= 0.98, f"test accuracy {accuracy:.4f} after one epoch"


# ------------------------------------------------------------------ budgets before building
from convviz.nn import model as model_module  # noqa: E402
from convviz.nn.layers import AvgPool2D, LeakyReLU, Rescaling, Sigmoid, Tanh, walk_layers  # noqa: E402
from convviz.nn.registry import LAYER_CLASSES  # noqa: E402


def _check_plan_against_build(layers_factory, input_shape):
    """The plan (no arrays) against the real build: both fail, or agree on everything."""
    try:
        built = Sequential(layers_factory(), input_shape=input_shape, initialize=False)
    except ValueError:
        built = None
    try:
        planned = model_module.plan(layers_factory(), input_shape)
    except ValueError:
        planned = None
    assert (built is None) == (planned is None), (built, planned)
    if built is None:
        return None
    assert planned.count == built.count_params()
    assert planned.output_shape == built.output_shape
    # The largest value count: every layer's output, and every conv's im2col unfolding
    # (computed here from the built layers' own shapes, the oracle).
    sizes = [int(np.prod(layer.output_shape)) for layer in walk_layers(built.layers)]
    for layer in walk_layers(built.layers):
        if isinstance(layer, Conv2D):
            ho, wo, _ = layer.output_shape
            kh, kw = layer.kernel_size
            sizes.append(ho * wo * kh * kw * layer.input_shape[-1])
    assert planned.values == max(sizes)
    return planned


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_plan_matches_the_built_presets(name):
    built = build_model(name)
    planned = _check_plan_against_build(lambda: build_model(name).layers, built.input_shape)
    assert planned.values < model_module.MAX_VALUES_PER_EXAMPLE / 3


def test_plan_matches_builds_of_random_architectures():
    """300 random stacks of every layer kind (many of them invalid: shapes that do not
    chain, kernels larger than the input): the plan fails exactly when the build does."""
    rng = np.random.default_rng(17)

    def spatial():
        k = int(rng.integers(1, 5))
        pick = int(rng.integers(0, 9))
        if pick == 0:
            return Conv2D(int(rng.integers(1, 6)), k, strides=int(rng.integers(1, 3)),
                          padding=str(rng.choice(["valid", "same"])),
                          use_bias=bool(rng.integers(0, 2)))  # fmt: skip
        if pick == 1:
            return MaxPool2D(k, strides=int(rng.integers(1, 3)))
        if pick == 2:
            return AvgPool2D(k)
        if pick == 3:
            return BatchNorm()
        if pick == 4:
            return Residual([Conv2D(int(rng.integers(1, 5)), k, padding="same",
                                    strides=int(rng.integers(1, 3)))],
                            projection=[True, False, "auto"][int(rng.integers(0, 3))])  # fmt: skip
        if pick == 5:
            return Concat(
                [
                    [Identity()],
                    [
                        Conv2D(
                            int(rng.integers(1, 4)), k, padding=str(rng.choice(["valid", "same"]))
                        )
                    ],
                ]
            )
        return [ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh(), Rescaling(2.0), Dropout(0.2)][
            int(rng.integers(0, 6))
        ]

    ok = 0
    for _ in range(300):
        seed = int(rng.integers(2**31))

        def factory(seed=seed):
            r = np.random.default_rng(seed)
            nonlocal rng
            saved, rng = rng, r
            try:
                layers = [spatial() for _ in range(int(r.integers(1, 6)))]
                if r.random() < 0.7:
                    layers += [Flatten(), Dense(int(r.integers(1, 12)))]
                if r.random() < 0.2:
                    layers.insert(int(r.integers(0, len(layers))), Dense(3))  # often invalid
                return layers
            finally:
                rng = saved

        side = int(rng.integers(3, 12))
        shape = (side, int(rng.integers(3, 12)), int(rng.integers(1, 4)))
        ok += _check_plan_against_build(factory, shape) is not None
    assert 100 < ok < 300  # both outcomes were exercised


def test_every_registered_layer_has_a_planning_rule():
    examples = {
        "Conv2D": Conv2D(2, 3), "MaxPool2D": MaxPool2D(2), "AvgPool2D": AvgPool2D(2),
        "ReLU": ReLU(), "LeakyReLU": LeakyReLU(), "Sigmoid": Sigmoid(), "Tanh": Tanh(),
        "Rescaling": Rescaling(2.0), "Identity": Identity(), "Flatten": Flatten(),
        "Dense": Dense(2), "Dropout": Dropout(0.1), "BatchNorm": BatchNorm(),
        "Residual": Residual([Conv2D(2, 3, padding="same")]),
        "Concat": Concat([[Identity()], [Conv2D(2, 1)]]),
    }  # fmt: skip
    assert set(examples) == set(LAYER_CLASSES), "a new layer needs a rule in model.plan"
    for name, layer in examples.items():
        shape = (4,) if name == "Dense" else (6, 6, 2)
        assert model_module.plan([layer], shape).output_shape, name


def _declared(layers, input_shape=(28, 28, 1), name="m") -> bytes:
    """A model file that only DECLARES ``layers`` (no weights): tiny, whatever it claims."""
    config = {
        "format": "convviz.nn/1", "name": name, "input_shape": list(input_shape), "seed": 0,
        "dtype": "float32", "layers": [layer.to_spec() for layer in layers],
    }  # fmt: skip
    buf = io.BytesIO()  # compressed, as an attacker would: the JSON is UTF-32 in a .npy
    np.savez_compressed(buf, architecture=np.array(json.dumps(config)), metadata=np.array("{}"))
    return buf.getvalue()


def _never_built(monkeypatch):
    def refuse(self, *a, **k):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(model_module.Sequential, "__init__", refuse)


@pytest.mark.parametrize("count", [5 * 10**7, 10**9])
def test_issue_17_a_tiny_file_claiming_many_weights_is_refused_unbuilt(monkeypatch, count):
    """Issue 17: a 1.5 KB file claiming 5*10^7 weights cost 570 MB before its refusal."""
    units = count // 784
    data = _declared([Flatten(), Dense(units), Dense(10)])
    assert len(data) < 1500
    _never_built(monkeypatch)
    with pytest.raises(ModelFileError) as e:
        load_model(io.BytesIO(data), max_params=2_000_000)
    assert e.value.code == "err.nn.too_many_params"
    assert e.value.params["count"] == 784 * units + units + units * 10 + 10


def test_issue_17_refusal_costs_no_memory(tmp_path):
    """Peak RSS of refusing a file declaring 10^9 weights, in a fresh process: a few MB."""
    path = tmp_path / "huge.npz"
    path.write_bytes(_declared([Flatten(), Dense(10**9 // 784), Dense(10)]))
    script = (
        "import sys\n"
        "from convviz.nn.model import load_model, ModelFileError\n"
        "def mb(k):\n"
        "    return next(int(x.split()[1]) / 1024 for x in open('/proc/self/status')"
        " if x.startswith(k))\n"
        "base = mb('VmRSS')\n"
        "try:\n"
        "    load_model(sys.argv[1], max_params=2_000_000)\n"
        "except ModelFileError as e:\n"
        "    print(e.code, mb('VmHWM') - base)\n"
    )
    root = Path(model_module.__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, check=True, cwd=root, timeout=120).stdout.split()  # fmt: skip
    assert out[0] == "err.nn.too_many_params"
    assert float(out[1]) < 20, f"refusing grew the peak RSS by {out[1]} MB"


def test_few_weights_but_huge_activations_are_refused_unbuilt(monkeypatch):
    # 2*10^6 weights pass the page's cap, but one image's output is 7.8*10^8 values (3 GB).
    layers = [Conv2D(10**6, 1), MaxPool2D(28), Flatten(), Dense(10)]
    planned = model_module.plan(layers, (28, 28, 1))
    assert planned.count < 2 * 10**7 and planned.values == 28 * 28 * 10**6
    data = _declared(layers, name="[x](http://evil) <img src=x onerror=alert(1)>")
    _never_built(monkeypatch)
    with pytest.raises(ModelFileError) as e:
        load_model(io.BytesIO(data), max_params=10**8)
    err = e.value
    assert err.code == "err.model.activations_too_large"
    assert err.params == {"index": 1, "layer": "Conv2D", "count": 28 * 28 * 10**6,
                          "limit": model_module.MAX_VALUES_PER_EXAMPLE}  # fmt: skip
    assert translator("pt")(err.code, **err.params).startswith("Este modelo é grande demais")
    # A conv whose im2col unfolding is the problem, not its output (a 27x27 kernel).
    with pytest.raises(ModelFileError, match=r"layer 1 \(Conv2D\)"):
        load_model(io.BytesIO(_declared([Conv2D(1, 27, padding="same"), Flatten(), Dense(10)])))


def test_too_many_layers_and_deep_nesting_are_refused(monkeypatch):
    data = _declared([ReLU() for _ in range(model_module.MAX_LAYERS)] + [Flatten(), Dense(10)])
    _never_built(monkeypatch)
    with pytest.raises(ModelFileError) as e:
        load_model(io.BytesIO(data))
    assert e.value.code == "err.model.too_many_layers"
    monkeypatch.undo()
    # Blocks nested 3,000 deep: refused with a coded error, never a RecursionError.
    deep = '{"class_name": "Residual", "config": {"layers": [' * 3000
    deep += '{"class_name": "ReLU", "config": {}}' + "]}}" * 3000
    text = '{"format": "convviz.nn/1", "name": "m", "input_shape": [4, 4, 1], "seed": 0, '
    text += '"layers": [' + deep + "]}"
    data = _npz(architecture=np.array(text), metadata=np.array("{}"))
    with pytest.raises(ModelFileError) as e:
        load_model(io.BytesIO(data))
    assert e.value.code in ("err.model.too_many_layers", "err.nn.not_a_model")


def test_output_shape_is_checked_from_the_plan(monkeypatch):
    data = _declared([Flatten(), Dense(7)])
    _never_built(monkeypatch)
    with pytest.raises(ModelFileError) as e:
        load_model(io.BytesIO(data), output_shape=(10,))
    assert e.value.code == "err.nn.output_shape" and e.value.params["got"] == "(7,)"
