"""Export a `convviz.nn` model as a Python file that runs without convviz: PyTorch or NumPy.

>>> from convviz.nn.presets import build_model
>>> source = export_model(build_model("classic"), to="pytorch")
>>> "def build_model(weights_path)" in source and "nn.Conv2d(1, 32" in source
True

The file written for a model defines the network layer by layer (a
``torch.nn.Module``, or a plain NumPy ``forward``), ``build_model(weights_path)``
that reads the weights from the model's ``.npz`` (architecture JSON and float32
arrays; ``allow_pickle=False``), and a ``__main__`` that prints the accuracy on
the MNIST test files::

    python model.py MODEL.npz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz

Rules the generator keeps:

* Nothing read from a model file is written into the code. Numbers (channels,
  kernel sizes, strides, paddings, epsilons, rates) are formatted from the
  built layers as ints and finite floats. Layer names are used only as
  attribute names, and only when they are convviz's own automatic names
  (``conv2d``, ``dense_1``...: checked against a whitelist); any other name
  becomes ``layer_<n>``. At run time the file finds each array's key by walking
  the architecture JSON of the ``.npz`` (data, never code).
* Layout: convviz is channels-last ``(N, H, W, C)`` with Keras kernels
  ``(kh, kw, C, F)``; the PyTorch module is channels-first ``(N, C, H, W)`` with
  kernels ``(F, C, kh, kw)``. The loader transposes the kernels, and the
  module's Flatten goes back to ``(H, W, C)`` order first, so the Dense weights
  line up unchanged.
* "same" padding is TensorFlow's (the odd pixel after, e.g. stride 2 on 28
  pads 0 above and 1 below): the PyTorch module pads explicitly (``F.pad``)
  whenever the two sides differ.
* BatchNorm uses the moving statistics and convviz's epsilon (evaluation mode).
"""

from __future__ import annotations

import io
import keyword
import math
import os
import re
from typing import BinaryIO

from convviz.nn.blocks import Concat, Residual
from convviz.nn.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Rescaling,
    Sigmoid,
    Tanh,
)
from convviz.nn.model import Sequential, load_model

__all__ = ["TARGETS", "export_model", "safe_identifier"]

#: ``to=`` values of :func:`export_model`.
TARGETS = ("pytorch", "numpy")

#: Classes the generators know: a test checks this covers the whole layer registry.
SUPPORTED = (
    AvgPool2D,
    BatchNorm,
    Concat,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Rescaling,
    Residual,
    Sigmoid,
    Tanh,
)

# The names convviz gives layers itself (``default_name``, then ``_1``, ``_2``...), and the
# residual projection's: the only layer names that may appear in generated code.
_AUTO_NAME = re.compile(
    "(?:"
    + "|".join(sorted({cls.default_name for cls in SUPPORTED} | {"projection"}))
    + ")(?:_[0-9]{1,6})?"
)


def safe_identifier(name: object) -> str | None:
    """``name`` if it is one of convviz's automatic layer names, else ``None``.

    >>> safe_identifier("conv2d_1"), safe_identifier('x"); import os; ("'), safe_identifier("eval")
    ('conv2d_1', None, None)
    """
    if isinstance(name, str) and _AUTO_NAME.fullmatch(name) and not keyword.iskeyword(name):
        return name
    return None


def _int(v: object) -> str:
    return str(int(v))  # int() of a numpy or Python int: digits only


def _float(v: object) -> str:
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"a layer holds a non-finite number {f!r}; it cannot be exported")
    return repr(f)  # shortest text that reads back as the same float


def _pair(p) -> str:
    return f"({_int(p[0])}, {_int(p[1])})"


def _shape(shape, channels_first: bool) -> str:
    dims = [int(d) for d in shape]
    if channels_first and len(dims) == 3:
        dims = [dims[2], dims[0], dims[1]]
    return "(N, " + ", ".join(map(str, dims)) + ")"


def _open(model_or_path) -> Sequential:
    if isinstance(model_or_path, Sequential):
        return model_or_path
    if isinstance(model_or_path, bytes | bytearray | memoryview):
        return load_model(io.BytesIO(bytes(model_or_path)))
    if isinstance(model_or_path, str | os.PathLike) or hasattr(model_or_path, "read"):
        return load_model(model_or_path)  # ModelFileError for anything but a convviz model
    raise ValueError(
        "`model_or_path` must be a Sequential, a path or a file, "
        f"got {type(model_or_path).__name__}"
    )


class _Writer:
    """Walks a model once and collects the lines of the generated file.

    ``init``: module constructors (PyTorch); ``body``: the forward, one statement per layer;
    ``weights``: ``(identifier, convviz class)`` of each layer with weights, in the order
    :meth:`Sequential.parameters` lists them (the order the generated loader walks the JSON).
    """

    def __init__(self, target: str) -> None:
        self.torch = target == "pytorch"
        self.init: list[str] = []
        self.body: list[str] = []
        self.weights: list[tuple[str, str]] = []
        self.helpers: set[str] = set()
        self._names: set[str] = set()
        self._temps = 0

    # -- names -------------------------------------------------------------------------------
    def ident(self, path: list[str | None]) -> str:
        """An attribute/key name for a layer: its joined automatic names, or ``layer_<n>``."""
        name = "_".join(path) if all(path) else None  # type: ignore[arg-type]
        if name is None or name in self._names or len(name) > 80:
            name = f"layer_{len(self.weights)}"
            while name in self._names:
                name += "_"
        self._names.add(name)
        return name

    def temp(self) -> str:
        self._temps += 1
        return f"h{self._temps}"

    # -- emitting ----------------------------------------------------------------------------
    def emit(self, indent: str, line: str, shape=None, note: str = "") -> None:
        """One statement of the forward, with the output shape (and ``note``) as a comment."""
        if shape is not None:
            comment = f"# {_shape(shape, self.torch)}" + (f": {note}" if note else "")
            if len(indent) + len(line) + len(comment) + 2 > 100:
                self.body.append(indent + comment)  # above the line: it would not fit beside
            else:
                line = f"{line}  {comment}"
        self.body.append(indent + line)

    def chain(self, layers: list[Layer], v: str, path: list[str | None], indent: str) -> None:
        for layer in layers:
            self.layer(layer, v, path, indent)

    def layer(self, layer: Layer, v: str, path: list[str | None], indent: str) -> None:
        here = [*path, safe_identifier(layer.name)]
        out = layer.output_shape
        if isinstance(layer, Residual):
            h = self.temp()
            self.emit(indent, f"# Residual block: {v} + f({v})")
            self.emit(indent, f"{h} = {v}")
            self.chain(layer.layers, h, here, indent)
            if layer.proj is not None:
                skip = self.conv(layer.proj, v, [*here, "projection"])
                self.emit(indent, f"{v} = {h} + {skip}", out, "the skip through a 1x1 conv")
            else:
                self.emit(indent, f"{v} = {h} + {v}", out)
        elif isinstance(layer, Concat):
            self.emit(
                indent, f"# Concat block: {len(layer.branches)} branches on {v}, side by side"
            )
            outs = []
            for chain in layer.branches:
                if all(isinstance(child, Identity) for child in chain):
                    outs.append(v)  # a skip branch: the input itself
                    continue
                h = self.temp()
                self.emit(indent, f"{h} = {v}")
                self.chain(chain, h, here, indent)
                outs.append(h)
            axis = "dim=1" if self.torch else "axis=-1"
            cat = "torch.cat" if self.torch else "np.concatenate"
            self.emit(indent, f"{v} = {cat}([{', '.join(outs)}], {axis})", out, "on the channels")
        elif isinstance(layer, Conv2D):
            y = self.conv(layer, v, here)
            self.emit(indent, f"{v} = {y}", out)
        elif isinstance(layer, Dense):
            ident = self.ident(here)
            self.weights.append((ident, "Dense"))
            if self.torch:
                bias = "" if layer.use_bias else ", bias=False"
                self.init.append(
                    f"self.{ident} = nn.Linear({_int(layer.input_shape[0])}, "
                    f"{_int(layer.units)}{bias})"
                )
                y = f"self.{ident}({v})"
            else:
                self.helpers.add("dense")
                y = f'dense({v}, w["{ident}"])'
            if layer.activation == "relu":
                y = self.relu(y)
            elif layer.activation == "softmax" and not layer.logits_output:
                y = f"torch.softmax({y}, dim=1)" if self.torch else self.helper("softmax", y)
            # convviz keeps the final softmax in the loss: the model returns logits.
            self.emit(indent, f"{v} = {y}", out, "the logits" if layer.logits_output else "")
        elif isinstance(layer, BatchNorm):
            ident = self.ident(here)
            self.weights.append((ident, "BatchNorm"))
            eps = _float(layer.epsilon)
            if self.torch:
                kind = "BatchNorm2d" if len(layer.input_shape) == 3 else "BatchNorm1d"
                # PyTorch's momentum is 1 - convviz's (only training uses it).
                self.init.append(
                    f"self.{ident} = nn.{kind}({_int(layer.input_shape[-1])}, eps={eps}, "
                    f"momentum={_float(round(1.0 - layer.momentum, 12))})"
                )
                self.emit(indent, f"{v} = self.{ident}({v})", out)
            else:
                self.helpers.add("batch_norm")
                self.emit(indent, f'{v} = batch_norm({v}, w["{ident}"], eps={eps})', out)
        elif isinstance(layer, MaxPool2D | AvgPool2D):
            size, strides = _pair(layer.pool_size), _pair(layer.strides)
            if self.torch:
                fn = "F.max_pool2d" if isinstance(layer, MaxPool2D) else "F.avg_pool2d"
                self.emit(indent, f"{v} = {fn}({v}, {size}, {strides})", out)
            else:
                fn = "max_pool" if isinstance(layer, MaxPool2D) else "avg_pool"
                self.helpers.add(fn)
                self.emit(indent, f"{v} = {fn}({v}, {size}, {strides})", out)
        elif isinstance(layer, Flatten):
            if self.torch and len(layer.input_shape) == 3:
                self.emit(indent, "# convviz flattens (H, W, C): back to channels-last first,")
                self.emit(indent, "# so the Dense weights from the file line up unchanged.")
                self.emit(indent, f"{v} = {v}.permute(0, 2, 3, 1).flatten(1)", out)
            elif self.torch:
                self.emit(indent, f"{v} = {v}.flatten(1)", out)
            else:
                self.emit(indent, f"{v} = {v}.reshape(len({v}), -1)", out)
        elif isinstance(layer, Rescaling):
            scale, offset = float(layer.scale), float(layer.offset)
            if self.torch:
                y = f"{v} * {_float(scale)}"
                if offset:
                    y += f" - {_float(-offset)}" if offset < 0 else f" + {_float(offset)}"
            else:  # float32 constants, as convviz computes
                y = f"{v} * np.float32({_float(scale)}) + np.float32({_float(offset)})"
            self.emit(indent, f"{v} = {y}", out)
        elif isinstance(layer, ReLU):
            self.emit(indent, f"{v} = {self.relu(v)}", out)
        elif isinstance(layer, LeakyReLU):
            alpha = _float(layer.alpha)
            y = f"F.leaky_relu({v}, {alpha})" if self.torch else self.helper("leaky_relu", v, alpha)
            self.emit(indent, f"{v} = {y}", out)
        elif isinstance(layer, Sigmoid):
            y = f"torch.sigmoid({v})" if self.torch else self.helper("sigmoid", v)
            self.emit(indent, f"{v} = {y}", out)
        elif isinstance(layer, Tanh):
            y = f"torch.tanh({v})" if self.torch else f"np.tanh({v})"
            self.emit(indent, f"{v} = {y}", out)
        elif isinstance(layer, Dropout):
            if self.torch:
                rate = _float(layer.rate)
                self.emit(indent, f"{v} = F.dropout({v}, {rate}, self.training)", out)
            else:
                self.emit(indent, f"# Dropout({_float(layer.rate)}): nothing at test time")
        elif isinstance(layer, Identity):
            pass  # the skip branch of a dense block: the input as it is
        else:
            raise ValueError(f"`{type(layer).__name__}` layers cannot be exported yet")

    def relu(self, y: str) -> str:
        return f"F.relu({y})" if self.torch else self.helper("relu", y)

    def helper(self, name: str, *args: str) -> str:
        self.helpers.add(name)
        return f"{name}({', '.join(args)})"

    def conv(self, layer: Conv2D, v: str, path: list[str | None]) -> str:
        """The expression for ``layer`` applied to ``v`` (registers its weights)."""
        ident = self.ident(path)
        self.weights.append((ident, "Conv2D"))
        (t, b), (le, r) = layer.pads
        if self.torch:
            kh, kw = layer.kernel_size
            c = layer.input_shape[-1]
            args = f"{_int(c)}, {_int(layer.filters)}, kernel_size={_pair((kh, kw))}"
            if tuple(layer.strides) != (1, 1):
                args += f", stride={_pair(layer.strides)}"
            symmetric = t == b and le == r
            if symmetric and (t or le):
                args += f", padding={_pair((t, le))}"
            if not layer.use_bias:
                args += ", bias=False"
            self.init.append(f"self.{ident} = nn.Conv2d({args})")
            x = v if symmetric else f"F.pad({v}, ({_int(le)}, {_int(r)}, {_int(t)}, {_int(b)}))"
            y = f"self.{ident}({x})"
        else:
            self.helpers.add("conv2d")
            pads = f"(({_int(t)}, {_int(b)}), ({_int(le)}, {_int(r)}))"
            y = f'conv2d({v}, w["{ident}"], {_pair(layer.strides)}, {pads})'
        return self.relu(y) if layer.activation == "relu" else y


def _walk(model: Sequential, target: str) -> _Writer:
    writer = _Writer(target)
    writer.chain(model.layers, "x", [], " " * (8 if target == "pytorch" else 4))
    expected = [name.rsplit("/", 1)[0] for name, _, _ in model.parameters()]
    if len(dict.fromkeys(expected)) != len(writer.weights):  # a bug here, not in the file
        raise AssertionError("the generated loader would not find every weight")
    return writer


# ----------------------------------------------------------------------------- templates
# Pieces of the generated files. They hold no text from a model; `{...}` marks what the
# generator fills in (numbers and whitelisted identifiers only).

_HEADER = '''\
"""A convviz.nn model as {what}, written by `python -m convviz export`.

It needs {needs}, not convviz. Run it on the MNIST test set:

    python model.py MODEL.npz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz

or use it from Python:

    model = build_model("MODEL.npz"){eval_note}
    logits = model(images)  # images: {layout} float32 in [0, 1]; logits: (N, {classes})

build_model reads the weights from the .npz that convviz saved (the
architecture as JSON and float32 arrays; nothing is pickled). The model has
{params:,} parameters.
"""

import argparse
import gzip
import json

import numpy as np
'''

_TORCH_NOTE = """\
# convviz works channels-last, (N, H, W, C), with Keras kernels (kh, kw, C, F);
# PyTorch channels-first, (N, C, H, W), with kernels (F, C, kh, kw). The loader
# below transposes the kernels; forward() takes channels-first images.
"""

_NUMPY_HELPERS = {
    "conv2d": '''
def conv2d(x, p, strides, pads):
    """Cross-correlation of x (N, H, W, C) with p["kernel"] (kh, kw, C, F), plus p["bias"].

    pads = ((top, bottom), (left, right)) zero rows and columns; returns (N, Ho, Wo, F).
    Every window becomes one row of a matrix, and one matrix product does all the sums.
    """
    kernel = p["kernel"]
    kh, kw, c, f = kernel.shape
    x = np.pad(x, ((0, 0), *pads, (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, Hp-kh+1, Wp-kw+1, C, kh, kw)
    windows = windows[:, :: strides[0], :: strides[1]]  # (N, Ho, Wo, C, kh, kw)
    n, ho, wo = windows.shape[:3]
    rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * ho * wo, kh * kw * c)
    y = (rows @ kernel.reshape(kh * kw * c, f)).reshape(n, ho, wo, f)
    return y + p["bias"] if "bias" in p else y
''',
    "max_pool": '''
def max_pool(x, size, strides):
    """Largest value of each size[0] x size[1] window of x (N, H, W, C), no padding."""
    windows = sliding_window_view(x, size, axis=(1, 2))[:, :: strides[0], :: strides[1]]
    return windows.max(axis=(-2, -1))
''',
    "avg_pool": '''
def avg_pool(x, size, strides):
    """Mean of each size[0] x size[1] window of x (N, H, W, C), no padding."""
    windows = sliding_window_view(x, size, axis=(1, 2))[:, :: strides[0], :: strides[1]]
    return windows.sum(axis=(-2, -1)) * np.float32(1.0 / (size[0] * size[1]))
''',
    "dense": '''
def dense(x, p):
    """x (N, D) @ p["kernel"] (D, units) + p["bias"]."""
    y = x @ p["kernel"]
    return y + p["bias"] if "bias" in p else y
''',
    "batch_norm": '''
def batch_norm(x, p, eps):
    """Normalise the last axis with the moving statistics learned in training."""
    inv_std = np.float32(1.0) / np.sqrt(p["moving_variance"] + np.float32(eps))
    return (x - p["moving_mean"]) * inv_std * p["gamma"] + p["beta"]
''',
    "relu": """
def relu(x):
    return np.maximum(x, np.float32(0))
""",
    "leaky_relu": """
def leaky_relu(x, alpha):
    return np.where(x > 0, x, x * np.float32(alpha))
""",
    "sigmoid": """
def sigmoid(x):
    e = np.exp(-np.abs(x))  # exp of a non-positive number only: no overflow
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
""",
    "softmax": """
def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
""",
}

_LOADER = '''
# The layers with weights, in the order of the .npz: (name in this file, convviz class).
WEIGHTS = [
{weights}
]

_ARRAYS = {{
    "Conv2D": ("kernel", "bias"),
    "Dense": ("kernel", "bias"),
    "BatchNorm": ("gamma", "beta", "moving_mean", "moving_variance"),
}}


def _layers_with_weights(specs, prefix, files):
    """(convviz class, key prefix) of each layer with weights in an architecture, in order.

    The keys come from the file's own layer names: "param:conv2d/kernel",
    "param:residual/conv2d_1/bias", "buffer:batch_normalization/moving_mean"...
    """
    for spec in specs:
        kind, config = spec["class_name"], spec["config"]
        prefix_here = prefix + config["name"] + "/"
        if kind == "Residual":
            yield from _layers_with_weights(config["layers"], prefix_here, files)
            if "param:" + prefix_here + "projection/kernel" in files:
                yield "Conv2D", prefix_here + "projection/"
        elif kind == "Concat":
            for branch in config["branches"]:
                yield from _layers_with_weights(branch, prefix_here, files)
        elif kind in _ARRAYS:
            yield kind, prefix_here


def read_weights(weights_path):
    """{{name in this file: {{"kernel": array, "bias": array, ...}}}} from a convviz .npz."""
    with np.load(weights_path, allow_pickle=False) as data:
        files = set(data.files)
        arch = json.loads(str(data["architecture"]))
        if arch.get("format") != "convviz.nn/1" or tuple(arch["input_shape"]) != INPUT_SHAPE:
            raise ValueError("the file is not a convviz model of this architecture")
        found = list(_layers_with_weights(arch["layers"], "", files))
        if [kind for kind, _ in found] != [kind for _, kind in WEIGHTS]:
            raise ValueError("the file's layers do not match the layers of this model")
        weights = {{}}
        for (name, kind), (_, prefix) in zip(WEIGHTS, found, strict=True):
            arrays = {{}}
            for key in _ARRAYS[kind]:
                for group in ("param:", "buffer:"):
                    if group + prefix + key in files:
                        arrays[key] = np.asarray(data[group + prefix + key], np.float32)
            weights[name] = arrays
    return weights
'''

_MNIST = '''

def read_idx(path, magic):
    """A gzipped MNIST IDX file as uint8 (images (N, 28, 28), labels (N,))."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    found = int(np.frombuffer(data, ">i4", count=1)[0])
    if found != magic:
        raise ValueError(f"{{path}} is not an MNIST file (magic {{found}}, not {{magic}})")
    ndim = magic - 2048  # 2051: images (N, rows, cols); 2049: labels (N,)
    dims = [int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Test accuracy of the model on MNIST.")
    parser.add_argument("weights", help="the convviz .npz")
    parser.add_argument("images", help="t10k-images-idx3-ubyte.gz")
    parser.add_argument("labels", help="t10k-labels-idx1-ubyte.gz")
    args = parser.parse_args(argv)
    model = build_model(args.weights)
    images = read_idx(args.images, 2051)
    labels = read_idx(args.labels, 2049)
    correct = 0
    for i in range(0, len(images), 500):
        # Pixels in [0, 1], float32, as convviz scales them.
        x = images[i : i + 500].astype(np.float32) / np.float32(255.0)
        x = x.reshape((len(x),) + INPUT_SHAPE){to_layout}
        correct += int((predict(model, x) == labels[i : i + 500]).sum())
    n = len(labels)
    print(f"test accuracy {{correct / n:.4f}} ({{correct}}/{{n}})")


if __name__ == "__main__":
    main()
'''


def _source_torch(model: Sequential, w: _Writer) -> str:
    in_shape = model.input_shape
    layout = _shape(in_shape, True)
    parts = [
        _HEADER.format(
            what="a PyTorch module",
            needs="numpy and torch",
            eval_note="  # a torch.nn.Module, in eval mode",
            layout=layout,
            classes=_int(model.output_shape[0]),
            params=model.count_params(),
        ),
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n",
        _TORCH_NOTE,
        f"INPUT_SHAPE = {tuple(int(d) for d in in_shape)!r}  # one example as convviz sees it\n",
        "\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n",
        "".join(_wrap("        ", line) for line in w.init) or "        pass\n",
        "\n    def forward(self, x):\n",
        f'        """x: {layout} float32 -> logits (N, {_int(model.output_shape[0])})."""\n',
        "\n".join(w.body) + "\n        return x\n",
        _loader(w),
        '''

def build_model(weights_path):
    """The network with the weights of a convviz .npz, in eval mode."""
    net = Net()
    weights = read_weights(weights_path)
    with torch.no_grad():
        for name, kind in WEIGHTS:
            module, arrays = getattr(net, name), weights[name]
            if kind == "Conv2D":  # (kh, kw, C, F) -> (F, C, kh, kw)
                arrays["kernel"] = arrays["kernel"].transpose(3, 2, 0, 1)
            elif kind == "Dense":  # (D, units) -> (units, D)
                arrays["kernel"] = arrays["kernel"].T
            targets = {
                "kernel": "weight",
                "bias": "bias",
                "gamma": "weight",
                "beta": "bias",
                "moving_mean": "running_mean",
                "moving_variance": "running_var",
            }
            for key, array in arrays.items():
                target = getattr(module, targets[key])
                if tuple(target.shape) != array.shape:
                    raise ValueError(f"{key} has shape {array.shape}, want {tuple(target.shape)}")
                target.copy_(torch.from_numpy(np.ascontiguousarray(array)))
    return net.eval()


def predict(model, x):
    """Predicted class of each image in x."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x))).argmax(dim=1).numpy()
''',
        _MNIST.format(
            to_layout=".transpose(0, 3, 1, 2)  # channels-first" if len(in_shape) == 3 else ""
        ),
    ]
    return "".join(parts)


def _source_numpy(model: Sequential, w: _Writer) -> str:
    in_shape = model.input_shape
    layout = _shape(in_shape, False)
    helpers = "".join("\n" + _NUMPY_HELPERS[name] for name in _NUMPY_HELPERS if name in w.helpers)
    parts = [
        _HEADER.format(
            what="a plain NumPy forward pass",
            needs="only numpy",
            eval_note="",
            layout=layout,
            classes=_int(model.output_shape[0]),
            params=model.count_params(),
        ),
        "from numpy.lib.stride_tricks import sliding_window_view\n\n",
        "# convviz's layout: channels-last, (N, H, W, C); kernels (kh, kw, C, F).\n",
        f"INPUT_SHAPE = {tuple(int(d) for d in in_shape)!r}  # one example\n\n",
        helpers,
        "\n\ndef forward(w, x):\n",
        f'    """x: {layout} float32 -> logits (N, {_int(model.output_shape[0])}).\n\n',
        '    w: the weights from read_weights(), one dict of arrays per layer.\n    """\n',
        "\n".join(w.body) + "\n    return x\n",
        _loader(w),
        '''

class Model:
    """The network with its weights: model(x) returns the logits."""

    def __init__(self, weights):
        self.weights = weights

    def __call__(self, x):
        return forward(self.weights, np.asarray(x, np.float32))


def build_model(weights_path):
    """The network with the weights of a convviz .npz."""
    return Model(read_weights(weights_path))


def predict(model, x):
    """Predicted class of each image in x."""
    return model(x).argmax(axis=1)
''',
        _MNIST.format(to_layout=""),
    ]
    return "".join(parts)


def _wrap(indent: str, line: str) -> str:
    """``indent + line``, its call's arguments on a line of their own when it is long."""
    if len(indent) + len(line) <= 100 or not line.endswith(")"):
        return f"{indent}{line}\n"
    head, args = line.split("(", 1)
    return f"{indent}{head}(\n{indent}    {args[:-1]}\n{indent})\n"


def _loader(w: _Writer) -> str:
    rows = "\n".join(f'    ("{ident}", "{kind}"),' for ident, kind in w.weights)
    return "\n" + _LOADER.format(weights=rows)


def export_model(
    model_or_path: Sequential | str | os.PathLike | bytes | BinaryIO, to: str = "pytorch"
) -> str:
    """The source text of a standalone Python file that rebuilds ``model_or_path``.

    Parameters
    ----------
    model_or_path : Sequential, path, bytes or binary file
        A model, or a convviz ``.npz`` (read with :func:`~convviz.nn.model.load_model`,
        whose checks apply: a file that is not a convviz model raises ``ModelFileError``).
    to : {"pytorch", "numpy"}
        ``"pytorch"``: a ``torch.nn.Module`` taking ``(N, C, H, W)`` images;
        ``"numpy"``: a plain NumPy forward on ``(N, H, W, C)`` images, as convviz.

    Returns
    -------
    str
        Python source: ``build_model(weights_path)``, ``predict(model, x)`` and a
        ``__main__`` that prints the MNIST test accuracy. Save it as ``model.py``.
    """
    if to not in TARGETS:
        raise ValueError(f"`to` must be one of {list(TARGETS)}, got {to!r}")
    model = _open(model_or_path)
    writer = _walk(model, to)
    source = _source_torch(model, writer) if to == "pytorch" else _source_numpy(model, writer)
    compile(source, "<export>", "exec")  # a generator bug fails here, not in the user's hands
    return source
