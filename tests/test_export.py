"""Export (`convviz.export`, `python -m convviz export`) and the shipped models.

The oracle is convviz's own reference forward (`Sequential.forward`, itself tested
against PyTorch layer by layer in test_nn_torch.py): each generated file, NumPy or
PyTorch, must give the same logits from the same `.npz`. The shipped models must
score on the 10,000 test images what assets/models/README.md and their metadata say.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convviz.cli import main
from convviz.export import SUPPORTED, TARGETS, export_model, safe_identifier
from convviz.nn.blocks import Concat, Residual
from convviz.nn.data import DEFAULT_ROOT, FILES, load_mnist, to_batch
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
    Rescaling,
    Sigmoid,
    Tanh,
)
from convviz.nn.model import ModelFileError, Sequential, load_model
from convviz.nn.presets import PRESETS, build_model
from convviz.nn.registry import LAYER_CLASSES
from convviz.nn.train import evaluate
from tests.support.helpers import assert_matches

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "assets" / "models"
TEST_FILES = [str(DEFAULT_ROOT / FILES["test_images"]), str(DEFAULT_ROOT / FILES["test_labels"])]
HOSTILE = 'x"); import os; ("'
# Modules a generated file may import: none of them is convviz.
ALLOWED_IMPORTS = {"argparse", "gzip", "json", "numpy", "numpy.lib.stride_tricks", "torch"}


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def test_x(mnist):
    return to_batch(mnist.test_images)  # (10000, 28, 28, 1) float32 in [0, 1]


def _preset_path(name: str, tmp_path: Path) -> Path:
    """The shipped `.npz` of a preset, or one with random weights where none is shipped."""
    path = MODELS / f"{name}.npz"
    if path.is_file():
        return path
    path = tmp_path / f"{name}.npz"
    build_model(name, seed=1).save(path)
    return path


def _import(source: str, path: Path):
    """Import the generated `source` as a module (written to `path`)."""
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    return names


def _torch_logits(module, weights: Path, x_nhwc: np.ndarray) -> np.ndarray:
    import torch

    net = module.build_model(str(weights))
    assert isinstance(net, torch.nn.Module) and not net.training
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))  # NCHW
        return np.concatenate([net(x[i : i + 1000]).numpy() for i in range(0, len(x), 1000)])


_logits_cache: dict[str, np.ndarray] = {}


def _convviz_logits(name: str, path: Path, x: np.ndarray) -> np.ndarray:
    """convviz's reference forward on `x`, computed once per model file."""
    key = f"{path}:{len(x)}"
    if key not in _logits_cache:
        model = load_model(path)
        _logits_cache[key] = np.concatenate(
            [model.forward(x[i : i + 500]) for i in range(0, len(x), 500)]
        )
    return _logits_cache[key]


def _zoo() -> Sequential:
    """Every layer class, hostile names, random biases and BatchNorm statistics."""
    layers = [
        Rescaling(1 / 0.3081, offset=-0.1307 / 0.3081),
        # TF "same" with stride 2 on 28 pads 0 above and 1 below: PyTorch must pad explicitly.
        Conv2D(6, 3, strides=2, padding="same", use_bias=False, name="forward"),  # 14x14x6
        BatchNorm(name="eval"),
        LeakyReLU(0.1),
        Residual(
            [
                Conv2D(6, 3, padding="same", activation="relu", name="\n__import__('os')\n#"),
                Conv2D(6, 3, padding="same"),
            ]
        ),
        Residual([Conv2D(8, 2, padding="same")], projection=True),  # even kernel: pads (0, 1)
        Residual(
            [Concat([[Identity()], [Conv2D(3, (3, 2), padding="same"), Tanh()]]), Conv2D(8, 1)]
        ),
        Concat([[Conv2D(4, 1), Sigmoid()], [ReLU()]]),  # 14x14x12
        MaxPool2D(3, strides=2),  # 6x6x12
        Conv2D(8, (3, 2), strides=(2, 1), padding="same", activation="relu"),  # 3x6x8
        AvgPool2D((2, 1)),  # 1x6x8
        Dropout(0.3),
        Flatten(),
        BatchNorm(),
        Dense(16, activation="relu", name=HOSTILE),
        Dense(12, activation="softmax"),  # a softmax inside the net is applied
        Dense(10, activation="softmax", use_bias=False),  # the last one: logits
    ]
    model = Sequential(layers, input_shape=(28, 28, 1), seed=3, name=HOSTILE)
    rng = np.random.default_rng(4)
    for name, p, _ in model.parameters():
        if name.endswith(("/bias", "/beta")):
            p[...] = rng.normal(0, 0.2, p.shape)
        elif name.endswith("/gamma"):
            p[...] = rng.uniform(0.5, 1.5, p.shape)
    for name, b in model.buffers():
        b[...] = (
            rng.uniform(0.5, 2.0, b.shape) if "variance" in name else rng.normal(0, 0.5, b.shape)
        )
    model.metadata = {"command": HOSTILE, "note": '"""\nimport os\n'}
    return model


@pytest.fixture(scope="module")
def zoo_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "zoo.npz"
    _zoo().save(path)
    return path


# ------------------------------------------------------------------------------- tests


def test_every_layer_class_can_be_exported_and_the_zoo_has_them_all():
    assert {cls.__name__ for cls in SUPPORTED} == set(LAYER_CLASSES)
    seen = set()
    stack = list(_zoo().layers)
    while stack:
        layer = stack.pop()
        seen.add(type(layer).__name__)
        if isinstance(layer, Residual | Concat):
            stack += layer.children()
    assert seen == set(LAYER_CLASSES)


@pytest.mark.parametrize("name", list(PRESETS))
def test_numpy_export_gives_convviz_logits(name, tmp_path, test_x):
    path = _preset_path(name, tmp_path)
    source = export_model(path, to="numpy")
    assert _imports(source) <= ALLOWED_IMPORTS - {"torch"}
    module = _import(source, tmp_path / "model_np.py")
    x = test_x[:200]
    got = module.build_model(str(path))(x)
    want = _convviz_logits(name, path, x)
    assert np.abs(got - want).max() <= 1e-4
    assert_matches(got, want, rtol=0, atol=1e-4, dtype=np.float32, what=f"{name} numpy logits")
    assert (got.argmax(1) == want.argmax(1)).all()


def test_numpy_export_of_every_layer(zoo_path, tmp_path, test_x):
    module = _import(export_model(zoo_path, to="numpy"), tmp_path / "zoo_np.py")
    x = test_x[:64]
    want = load_model(zoo_path).forward(x)
    assert_matches(module.build_model(str(zoo_path))(x), want, rtol=0, atol=1e-4, what="zoo")


@pytest.mark.parametrize("to", TARGETS)
def test_a_model_on_vectors_exports_too(to, test_x, tmp_path):
    if to == "pytorch":
        pytest.importorskip("torch")
    model = Sequential(
        [Dense(32, activation="relu"), BatchNorm(), Dense(10, activation="softmax")],
        input_shape=(784,),
        seed=5,
    )
    path = tmp_path / "mlp.npz"
    model.save(path)
    module = _import(export_model(path, to=to), tmp_path / f"mlp_{to}.py")
    x = test_x[:100].reshape(100, 784)
    if to == "pytorch":
        import torch

        with torch.no_grad():
            got = module.build_model(str(path))(torch.from_numpy(x)).numpy()
    else:
        got = module.build_model(str(path))(x)
    assert_matches(got, model.forward(x), rtol=0, atol=1e-4, what=f"mlp {to}")


def test_hostile_names_never_become_code(zoo_path):
    for to in TARGETS:
        source = export_model(zoo_path, to=to)
        ast.parse(source)  # still Python
        for text in (HOSTILE, "__import__", "import os"):
            assert text not in source, (to, text)
        # Names that are identifiers but not convviz's own do not become attributes either
        # (a module attribute `forward` or `eval` would break the nn.Module).
        assert "self.forward =" not in source and "self.eval =" not in source
        assert re.search(r'"layer_\d+"', source)  # they got positional names instead
    assert safe_identifier("conv2d_12") == "conv2d_12"
    for bad in (HOSTILE, "forward", "conv2d_", "conv2d-1", "Conv2D", "dense\n", None, 3):
        assert safe_identifier(bad) is None


def test_export_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="`to` must be one of"):
        export_model(build_model("tiny"), to="onnx")
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError):
        export_model(bogus)
    with pytest.raises(ValueError, match="must be a Sequential"):
        export_model(3.0)
    # bytes (an upload) work like the path
    path = MODELS / "tiny.npz"
    assert export_model(path.read_bytes(), "numpy") == export_model(path, "numpy")


# -------------------------------------------------------------------------------- torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_pytorch_export_classic_on_the_whole_test_set(torch, test_x, tmp_path):
    path = MODELS / "classic.npz"
    source = export_model(path, to="pytorch")
    assert _imports(source) <= ALLOWED_IMPORTS | {"torch.nn.functional"}
    got = _torch_logits(_import(source, tmp_path / "classic_torch.py"), path, test_x)
    want = _convviz_logits("classic", path, test_x)
    same = float(np.mean(got.argmax(1) == want.argmax(1)))
    # Measured: 10000/10000 same class, max |difference| 7.6e-6 (|logits| up to 30).
    assert same >= 0.999
    assert_matches(got, want, rtol=0, atol=1e-4, what="classic torch logits")
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "classic"])
def test_pytorch_export_other_presets_on_a_sample(torch, name, test_x, tmp_path):
    path = _preset_path(name, tmp_path)
    module = _import(export_model(path, to="pytorch"), tmp_path / f"{name}_torch.py")
    x = test_x[:1000]
    got = _torch_logits(module, path, x)
    want = _convviz_logits(name, path, x)
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.999
    assert np.abs(got - want).max() <= 1e-4


def test_pytorch_export_of_every_layer(torch, zoo_path, test_x, tmp_path):
    module = _import(export_model(zoo_path, to="pytorch"), tmp_path / "zoo_torch.py")
    x = test_x[:64]
    want = load_model(zoo_path).forward(x)
    assert_matches(_torch_logits(module, zoo_path, x), want, rtol=0, atol=1e-4, what="zoo")


# ------------------------------------------------------------------- the files on their own


@pytest.mark.parametrize("to", TARGETS)
def test_generated_file_runs_on_its_own_and_prints_convviz_accuracy(to, mnist, tmp_path):
    if to == "pytorch":
        pytest.importorskip("torch")
    path = MODELS / "classic.npz"
    script = tmp_path / "model.py"
    script.write_text(export_model(path, to=to), encoding="utf-8")
    # -I: no PYTHONPATH, no user site; cwd is a bare folder, so convviz cannot be imported.
    proc = subprocess.run(
        [sys.executable, "-I", str(script), str(path), *TEST_FILES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    m = re.fullmatch(r"test accuracy (\d\.\d{4}) \((\d+)/10000\)\n", proc.stdout)
    assert m, proc.stdout
    _, acc, _ = evaluate(load_model(path), mnist.test_images, mnist.test_labels)
    assert int(m.group(2)) == round(acc * 10000)


# ---------------------------------------------------------------------------------- CLI


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    return main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_cli_export_writes_the_file_and_says_how_to_run_it(tmp_path):
    model = str(MODELS / "tiny.npz")
    target = tmp_path / "model.py"
    code, out, err = _run(["export", model, "--to", "numpy", "--out", str(target)])
    assert code == 0 and err == ""
    assert target.read_text(encoding="utf-8") == export_model(model, to="numpy")
    lines = out.splitlines()
    assert lines[0] == f"wrote {target} (numpy); its test accuracy:"
    assert lines[1].startswith(f"  python {target} {model} ")
    assert lines[1].endswith("t10k-labels-idx1-ubyte.gz")
    # Without --out the source goes to stdout; pytorch is the default.
    code, out, err = _run(["export", model])
    assert code == 0 and out == export_model(model, to="pytorch") and err == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "/nonexistent/m.npz"], "convviz: error: no such file: /nonexistent/m.npz"),
        (["export", "MODEL", "--to", "onnx"], "argument --to: invalid choice: 'onnx'"),
        (["export", "MODEL", "--out", "/nonexistent/m.py"], "--out: no such directory"),
        (["export", "MODEL", "--out", "MODEL"], "--out: would overwrite the model itself"),
        (["export", "BOGUS"], str(ModelFileError("err.nn.not_a_model"))),
    ],
)
def test_cli_export_errors_are_one_line(argv, message, tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"PK not really")
    model = str(MODELS / "tiny.npz")
    argv = [{"MODEL": model, "BOGUS": str(bogus)}.get(a, a) for a in argv]
    code, out, err = _run(argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err


# ------------------------------------------------------------------------ shipped models


def _readme_rows() -> dict[str, tuple[int, str]]:
    """`file -> (correct test images, command)` from the table in assets/models/README.md."""
    rows = {}
    for line in (MODELS / "README.md").read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(
            r"\| `(\w+\.npz)` \| [\d,]+ \| \d+\.\d\d% \((\d+)/10000\)[^|]* \| `([^`]+)` \|", line
        )
        if m:
            rows[m.group(1)] = (int(m.group(2)), m.group(3))
    return rows


def test_every_preset_is_shipped_small_and_documented():
    rows = _readme_rows()
    shipped = sorted(p.name for p in MODELS.glob("*.npz"))
    assert shipped == sorted(rows) == sorted(f"{name}.npz" for name in PRESETS)
    total = sum(p.stat().st_size for p in MODELS.glob("*.npz"))
    assert total < 1_500_000, f"assets/models holds {total:,} bytes"  # the repository carries it


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_shipped_model_can_be_evaluated_without_training_it(name, mnist):
    """Its accuracy on the 10,000 test images is what the README and its metadata say."""
    correct, command = _readme_rows()[f"{name}.npz"]
    model = load_model(MODELS / f"{name}.npz", input_shape=(28, 28, 1), output_shape=(10,))
    meta = model.metadata
    assert meta["model"] == name
    # The README's command is the metadata's, but for where --out wrote the file (tiny: /tmp).
    out = re.compile(r" --out \S+")
    assert out.sub("", meta["command"]) == out.sub("", command)
    assert f" --out assets/models/{name}.npz " in command
    _, acc, confusion = evaluate(model, mnist.test_images, mnist.test_labels)
    assert confusion.sum() == 10000
    assert acc == pytest.approx(correct / 10000, abs=1e-4)  # the README, +-0.01%
    assert acc == pytest.approx(meta["test_accuracy"], abs=1e-4)  # the metadata
    assert acc > 0.985
