"""`Sequential`: a stack of layers with a Keras-style summary and ``.npz`` save/load.

Batches are NHWC ``(N, H, W, C)`` float32 in [0, 1]; the model returns LOGITS
(the final softmax lives in the loss and in :meth:`Sequential.predict_proba`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from convviz.errors import CodedError
from convviz.nn import functional as F
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
    assign_names,
    walk_layers,
)
from convviz.nn.losses import softmax
from convviz.nn.registry import layer_from_config
from convviz.shapes import output_size

__all__ = [
    "MAX_LAYERS",
    "MAX_VALUES_PER_EXAMPLE",
    "ModelFileError",
    "Plan",
    "Sequential",
    "load_model",
    "plan",
]

_FORMAT = "convviz.nn/1"


class Sequential:
    """A linear stack of layers, built at construction from ``input_shape`` and ``seed``.

    Parameters
    ----------
    layers : list of Layer
        Unnamed layers get Keras-style names (``conv2d``, ``conv2d_1``...).
    input_shape : tuple of int
        One example's shape, ``(H, W, C)``.
    seed : int
        Seeds every initialiser and dropout mask: equal seeds give equal models.
    name : str
    input_grad : bool
        Whether :meth:`backward` returns ``dx``. Off by default: the input is
        the data, so the first layer skips that work (a large saving for a conv).
    initialize : bool
        False: every weight starts as zeros and nothing is drawn (cheap: the
        memory is untouched until written; :func:`load_model` copies the saved
        weights in).

    Notes
    -----
    :meth:`forward` and :meth:`backward` are the reference passes: each layer in
    turn, on one thread. Training goes faster through
    :class:`convviz.nn.fast.FastPlan` (fused conv + pool, batch slices on several
    threads), which the :class:`~convviz.nn.train.Trainer` uses and which is
    tested against these passes.

    Examples
    --------
    >>> from convviz.nn.layers import Conv2D, Flatten, Dense
    >>> m = Sequential([Conv2D(2, 3), Flatten(), Dense(10)], input_shape=(5, 5, 1))
    >>> m.forward(np.zeros((4, 5, 5, 1), np.float32)).shape
    (4, 10)
    >>> [name for name, _, _ in m.parameters()]
    ['conv2d/kernel', 'conv2d/bias', 'dense/kernel', 'dense/bias']
    """

    def __init__(
        self,
        layers: list[Layer],
        input_shape: tuple[int, ...] = (28, 28, 1),
        seed: int = 0,
        name: str = "sequential",
        input_grad: bool = False,
        initialize: bool = True,
    ) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("`layers` must hold at least one layer")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise ValueError(f"`layers` must hold Layer objects, got {type(layer).__name__}")
        self.input_shape = tuple(int(d) for d in input_shape)
        if not self.input_shape or min(self.input_shape) < 1:
            raise ValueError(f"`input_shape` must be positive sizes, got {input_shape!r}")
        self.seed = int(seed)
        self.name = str(name)
        self.metadata: dict = {}
        assign_names(self.layers)
        rng = np.random.default_rng(self.seed) if initialize else None
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, rng)
        self.output_shape = shape
        last = self.layers[-1]
        if isinstance(last, Dense) and last.activation == "softmax":
            last.logits_output = True  # the softmax lives in the loss / predict_proba
        self.input_grad = input_grad

    @property
    def input_grad(self) -> bool:
        return self._input_grad

    @input_grad.setter
    def input_grad(self, value: bool) -> None:
        # A layer needs dx only if something below it learns (or the caller wants dx):
        # a parameter-free prefix such as Rescaling spares the first conv its dx.
        self._input_grad = bool(value)
        needed = self._input_grad
        for layer in self.layers:
            layer.needs_input_grad = needed
            needed = needed or any(True for _ in layer.named_parameters())

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].dtype

    def astype(self, dtype) -> Sequential:
        """Cast every parameter and buffer to ``dtype`` in place (float64 for gradient checks)."""
        for layer in self.layers:
            layer.astype(dtype)
        return self

    # ------------------------------------------------------------------ running
    def prepare(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a batch for this model: checked shape (N, H, W, C), the model's dtype."""
        x = np.asarray(x)
        if x.ndim == len(self.input_shape) and self.input_shape[-1] == 1:
            x = x[..., None]  # (N, H, W) grayscale -> (N, H, W, 1)
        if tuple(x.shape[1:]) != self.input_shape:
            want = "(N, " + ", ".join(map(str, self.input_shape)) + ")"
            raise CodedError("err.nn.x_shape", want=want, got=_shape_text(x.shape))
        return x.astype(self.dtype, copy=False)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits ``(N, classes)`` for a batch ``x`` (N, H, W, C): each layer in turn."""
        h = self.prepare(x)
        for layer in self.layers:
            h = layer.forward(h, training)
        return h

    __call__ = forward

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        """Back-propagate ``dlogits`` (N, classes), overwriting every layer's ``grads``.

        Returns ``dx`` (N, H, W, C), or ``None`` unless ``input_grad`` is set.
        """
        d = np.asarray(dlogits, self.dtype)
        for layer in reversed(self.layers):
            d = layer.backward(d)
        return d

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, param, grad)`` triples, e.g. ``("conv2d/kernel", W, dW)``; update in place."""
        return [t for layer in self.layers for t in layer.named_parameters()]

    def pack_parameters(self) -> Sequential:
        """Move every parameter into one contiguous buffer, and every gradient into another.

        The arrays keep their shapes and values; they become views, in the order of
        :meth:`parameters`. An optimizer then updates all of them in one pass, and
        :class:`~convviz.nn.parallel.ProcessPlan` hands them over in one copy. Anything
        that rebinds an array later (``astype``) simply unpacks it; nothing else changes.
        Returns ``self``.
        """
        triples = self.parameters()
        if not triples:
            return self
        dtype = self.dtype
        sizes = [p.size for _, p, _ in triples]
        flat_p, flat_g = np.empty(sum(sizes), dtype), np.empty(sum(sizes), dtype)
        owners = [(layer, key) for layer in walk_layers(self.layers) for key in layer.params]
        start = 0
        for (layer, key), size in zip(owners, sizes, strict=True):
            shape = layer.params[key].shape
            p = flat_p[start : start + size].reshape(shape)
            g = flat_g[start : start + size].reshape(shape)
            np.copyto(p, layer.params[key])
            np.copyto(g, layer.grads[key])
            layer.params[key], layer.grads[key] = p, g
            start += size
        return self

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        return [t for layer in self.layers for t in layer.named_buffers()]

    def zero_grad(self) -> None:
        for _, _, g in self.parameters():
            g.fill(0)

    def predict_proba(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(N, classes)`` in evaluation mode, ``batch_size`` at a time."""
        if int(batch_size) < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
        x = np.asarray(x)
        outs = [softmax(self.forward(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        if not outs:
            return np.zeros((0, *self.output_shape), self.dtype)
        return np.concatenate(outs)

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Predicted class ``(N,)`` int."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def activations(self, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """``(layer name, output)`` for every layer, in evaluation mode (outputs are copies).

        The last entry holds the logits when the model ends in ``Dense(..., "softmax")``.
        """
        h = self.prepare(x)
        out = []
        for layer in self.layers:
            h = layer.forward(h, False)
            out.append((layer.name, np.array(h, copy=True)))
        return out

    def layer_weights(self) -> list[tuple[str, dict[str, np.ndarray]]]:
        """Copies of the weights of each layer that has any: ``("conv2d", {"kernel", "bias"})``.

        Blocks list their children's arrays under ``child/key`` names.
        """
        out = []
        for layer in self.layers:
            weights = {n.split("/", 1)[1]: p.copy() for n, p, _ in layer.named_parameters()}
            weights.update({n.split("/", 1)[1]: b.copy() for n, b in layer.named_buffers()})
            if weights:
                out.append((layer.name, weights))
        return out

    # ------------------------------------------------------------------ counting
    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def count_non_trainable_params(self) -> int:
        return sum(layer.count_non_trainable_params() for layer in self.layers)

    def summary(self) -> str:
        """Keras's table: one row per layer with output shape and parameter count.

        Shapes show the batch axis as ``None``. A final ``Dense(..., "softmax")``
        is listed as a Dense row although :meth:`forward` returns logits.
        """
        rows = [
            (
                f"{layer.name} ({layer.keras_name})",
                str((None, *layer.output_shape)),
                f"{layer.count_params():,}",
            )
            for layer in self.layers
        ]
        # Keras's column stops (29, 55, 65), widened if a name would not fit.
        c1 = max(29, *(len(r[0]) + 1 for r in rows))
        c2 = c1 + max(26, *(len(r[1]) + 1 for r in rows))
        width = c2 + 10

        def line(a: str, b: str, c: str) -> str:
            return (a.ljust(c1) + b.ljust(c2 - c1) + c).ljust(width)

        total = self.count_params()
        frozen = self.count_non_trainable_params()
        out = [
            f'Model: "{self.name}"',
            "_" * width,
            line("Layer (type)", "Output Shape", "Param #"),
        ]
        out.append("=" * width)
        for i, r in enumerate(rows):
            out.append(line(*r))
            if i < len(rows) - 1:
                out.append("_" * width)
        out += [
            "=" * width,
            f"Total params: {total:,}",
            f"Trainable params: {total - frozen:,}",
            f"Non-trainable params: {frozen:,}",
            "_" * width,
        ]
        return "\n".join(out)

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        return {
            "format": _FORMAT,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "seed": self.seed,
            "dtype": self.dtype.name,
            "layers": [layer.to_spec() for layer in self.layers],
        }

    def save(self, file: str | os.PathLike | BinaryIO, metadata: dict | None = None) -> None:
        """Write architecture (JSON), parameters, buffers and ``metadata`` as an ``.npz``.

        ``file`` is a path (written as given: no ``.npz`` is appended) or a binary
        file object such as ``io.BytesIO``. ``metadata`` (default ``self.metadata``)
        must be JSON-able; it comes back as ``model.metadata`` from
        :func:`load_model`. Nothing is pickled.

        >>> import io
        >>> from convviz.nn.layers import Dense
        >>> buf = io.BytesIO()
        >>> Sequential([Dense(2)], input_shape=(3,)).save(buf, metadata={"note": "hi"})
        >>> load_model(io.BytesIO(buf.getvalue())).metadata
        {'note': 'hi'}
        """
        meta = self.metadata if metadata is None else metadata
        arrays = {
            "architecture": np.array(json.dumps(self.get_config())),
            "metadata": np.array(json.dumps(meta)),
        }
        arrays.update({f"param:{n}": p for n, p, _ in self.parameters()})
        arrays.update({f"buffer:{n}": b for n, b in self.buffers()})
        if hasattr(file, "write"):
            np.savez(file, **arrays)
            return
        with open(file, "wb") as fh:  # a file object: numpy does not append ".npz"
            np.savez(fh, **arrays)


# ------------------------------------------------------------------ planning (no arrays)

#: Most layers (blocks' children included) a model file may declare: the presets have
#: 8-22; a 16 MiB architecture could otherwise declare ~700,000 ReLUs (~1 GB of objects).
MAX_LAYERS = 1000
#: Most values per example any layer may produce or any conv may unfold (im2col's
#: Ho*Wo*kh*kw*C): 3x the largest preset (classic's second conv unfolds 165,888). A
#: 28x28 conv with 10^6 1x1 filters has 2*10^6 parameters but 7.8*10^8 outputs: 3 GB
#: for ONE image, so the parameter count alone does not bound a model's memory.
MAX_VALUES_PER_EXAMPLE = 1 << 19

# Shape-preserving layers without parameters.
_ELEMENTWISE = (ReLU, LeakyReLU, Sigmoid, Tanh, Rescaling, Identity, Dropout)


@dataclass(frozen=True)
class Plan:
    """What a model will be, known from its layers' configuration alone (no array made)."""

    output_shape: tuple[int, ...]
    count: int  # weights, as Sequential.count_params (BatchNorm's moving statistics included)
    values: int  # the most values per example a layer produces or a conv unfolds
    where: tuple[int, str]  # (1-based top-level index, class name) of that layer


def _conv_plan(filters, kernel_size, strides, padding, use_bias, shape):
    if len(shape) != 3:
        raise ValueError(f"`input_shape` must be (H, W, C) for Conv2D, got {shape}")
    h, w, c = shape
    kh, kw = kernel_size
    pads = F.conv_padding(padding, (h, w), (kh, kw), tuple(strides))
    ho = output_size(h, kh, strides[0], pads[0])
    wo = output_size(w, kw, strides[1], pads[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"`kernel_size` {kernel_size} is larger than the input {h}x{w}")
    count = kh * kw * c * filters + (filters if use_bias else 0)
    unfolded = ho * wo * kh * kw * c
    return (ho, wo, filters), count, max(unfolded, ho * wo * filters)


def _plan_chain(chain, shape):
    """(shape, count, values) after ``chain``: Python integers, nothing allocated."""
    count = values = 0
    for layer in chain:
        shape, n, v = _plan_layer(layer, shape)
        count, values = count + n, max(values, v)
    return shape, count, values


def _plan_layer(layer, shape):
    """The rules of each layer's ``_build``, on shapes only (``test_nn_model`` checks them
    against real builds of every preset and of random architectures)."""
    shape = tuple(int(d) for d in shape)
    kind = type(layer)
    if kind is Conv2D:
        return _conv_plan(
            layer.filters, layer.kernel_size, layer.strides, layer.padding, layer.use_bias, shape
        )
    if kind in (MaxPool2D, AvgPool2D):
        if len(shape) != 3:
            raise ValueError(f"`input_shape` must be (H, W, C) for pooling, got {shape}")
        h, w, c = shape
        ho = output_size(h, layer.pool_size[0], layer.strides[0])
        wo = output_size(w, layer.pool_size[1], layer.strides[1])
        if ho < 1 or wo < 1:
            raise ValueError(f"`pool_size` {layer.pool_size} is larger than the input {h}x{w}")
        return (ho, wo, c), 0, ho * wo * c
    if kind is Flatten:
        d = math.prod(shape)
        return (d,), 0, d
    if kind is Dense:
        if len(shape) != 1:
            raise ValueError(f"`input_shape` must be (D,) for Dense, got {shape}")
        d, u = shape[0], layer.units
        return (u,), d * u + (u if layer.use_bias else 0), u
    if kind is BatchNorm:
        if len(shape) not in (1, 3):
            raise ValueError(f"`input_shape` must be (D,) or (H, W, C), got {shape}")
        return shape, 4 * shape[-1], math.prod(shape)
    if kind in _ELEMENTWISE:
        return shape, 0, math.prod(shape)
    if kind is Residual:
        out, count, values = _plan_chain(layer.layers, shape)
        if layer.projection is True or (layer.projection == "auto" and out != shape):
            if len(out) != 3 or len(shape) != 3:
                raise ValueError("`projection` needs (H, W, C) shapes at both ends of the block")
            strides = (math.ceil(shape[0] / out[0]), math.ceil(shape[1] / out[1]))
            proj, n, v = _conv_plan(out[2], (1, 1), strides, "valid", True, shape)
            if proj != out:
                raise ValueError(f"`layers` map {shape} to {out}, no 1x1 projection matches")
            count, values = count + n, max(values, v)
        elif out != shape:
            raise ValueError(f"`projection` is False but `layers` change {shape} -> {out}")
        return out, count, max(values, math.prod(out))
    if kind is Concat:
        outs, count, values = [], 0, 0
        for chain in layer.branches:
            out, n, v = _plan_chain(chain, shape)
            outs.append(out)
            count, values = count + n, max(values, v)
        if len({o[:-1] for o in outs}) != 1:
            raise ValueError(f"`branches` must agree on all but the channel axis, got {outs}")
        out = (*outs[0][:-1], sum(o[-1] for o in outs))
        return out, count, max(values, math.prod(out))
    # A layer class added without a rule here: refuse rather than guess its cost.
    raise ValueError(f"no planning rule for {kind.__name__}")


def plan(layers: list[Layer], input_shape: tuple[int, ...]) -> Plan:
    """Output shape, weight count and largest per-example size of ``layers``, unbuilt.

    Raises ``ValueError`` where :class:`Sequential` would fail to build (shapes that do
    not chain). Nothing is allocated, so a file declaring 10^9 weights costs nothing.

    >>> from convviz.nn.layers import Conv2D, Flatten, Dense
    >>> p = plan([Conv2D(32, 3), Flatten(), Dense(10)], (28, 28, 1))
    >>> p.output_shape, p.count, p.values
    ((10,), 216650, 21632)
    """
    shape = tuple(int(d) for d in input_shape)
    count = values = 0
    where = (0, "")
    for i, layer in enumerate(layers, 1):
        shape, n, v = _plan_layer(layer, shape)
        count += n
        if v > values:
            values, where = v, (i, type(layer).__name__)
    return Plan(shape, count, values, where)


def _count_specs(specs) -> int:
    """Layers declared in an architecture's ``layers`` list, nested blocks included
    (iterative: a deeply nested file cannot exhaust the stack)."""
    todo, count = [specs], 0
    while todo:
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, dict):
            count += 1
            if count > MAX_LAYERS:
                return count
            config = item.get("config")
            if isinstance(config, dict):
                todo.extend(config.get(k) for k in ("layers", "branches") if k in config)
    return count


class ModelFileError(CodedError):
    """A file that :func:`load_model` cannot turn into a model (a ``ValueError``).

    Its code says why (``err.nn.not_a_model``, ``err.nn.model_format``,
    ``err.nn.model_damaged``, ``err.nn.model_too_large``, ``err.nn.too_many_params``,
    ``err.nn.input_shape``, ``err.nn.output_shape``, ``err.model.activations_too_large``,
    ``err.model.too_many_layers``); its parameters are numbers, shapes and class
    names from convviz's registry, never text from the file. The underlying error, if
    any, is chained.
    """


_MAX_JSON_BYTES = 1 << 24  # architecture and metadata: 16 MiB is far more than any model needs


def _shape_text(shape) -> str:
    """A shape as Python writes it: ``(28, 28, 1)``, ``(10,)``."""
    return str(tuple(int(d) for d in shape))


def _member_size(data, key: str) -> int:
    """Uncompressed bytes of the ``.npz`` member ``key`` (from the zip directory, nothing read)."""
    return data.zip.getinfo(f"{key}.npy").file_size


def _json_member(data, key: str):
    if _member_size(data, key) > _MAX_JSON_BYTES:
        raise ValueError(f"`{key}` is larger than {_MAX_JSON_BYTES} bytes")
    arr = data[key]
    if arr.shape != () or arr.dtype.kind != "U":
        raise ValueError(f"`{key}` must be a JSON string")
    return json.loads(str(arr))


def load_model(
    file: str | os.PathLike | BinaryIO,
    *,
    input_shape: tuple[int, ...] | None = None,
    output_shape: tuple[int, ...] | None = None,
    max_params: int | None = None,
    max_values: int = MAX_VALUES_PER_EXAMPLE,
) -> Sequential:
    """Rebuild a :class:`Sequential` written by :meth:`Sequential.save`.

    Parameters
    ----------
    file : path or binary file object
        For example ``io.BytesIO(uploaded_bytes)``.
    input_shape, output_shape : tuple of int, optional
        Shapes the model must have (one example, no batch axis), e.g.
        ``(28, 28, 1)`` and ``(10,)`` for MNIST; checked before any weight is read.
    max_params : int, optional
        Refuse models with more weights (``count_params``) than this. The count
        comes from :func:`plan`, on the architecture's settings alone, before any
        layer is built (a file declaring 10^9 weights costs nothing to refuse).
    max_values : int, default :data:`MAX_VALUES_PER_EXAMPLE`
        Refuse models in which any layer produces (or a conv unfolds) more values
        per example than this: what bounds a forward pass's memory. Also from the
        plan, and so is ``output_shape``. At most :data:`MAX_LAYERS` layers.

    Returns
    -------
    Sequential
        Predicts bit-for-bit like the saved model.

    Raises
    ------
    ModelFileError
        For a file that is not a convviz model, is damaged, or fails the checks.
    OSError
        When a path cannot be opened (``FileNotFoundError``...).
    """
    if not hasattr(file, "read"):
        with open(file, "rb") as fh:
            return load_model(
                fh,
                input_shape=input_shape,
                output_shape=output_shape,
                max_params=max_params,
                max_values=max_values,
            )
    try:
        data = np.load(file, allow_pickle=False)
    except Exception as exc:  # zip, npy and pickle refusals alike; never their text
        raise ModelFileError("err.nn.not_a_model") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array
        raise ModelFileError("err.nn.not_a_model")
    with data:
        files = set(data.files)
        try:
            config = _json_member(data, "architecture") if "architecture" in files else None
        except Exception as exc:
            raise ModelFileError("err.nn.not_a_model") from exc
        if not isinstance(config, dict):
            raise ModelFileError("err.nn.not_a_model")
        if config.get("format") != _FORMAT:
            raise ModelFileError("err.nn.model_format")
        try:
            shape = tuple(int(d) for d in config["input_shape"])
            dtype = np.dtype(config.get("dtype", "float32"))
            if dtype not in (np.float32, np.float64):
                raise ValueError("`dtype` must be float32 or float64")
        except Exception as exc:
            raise ModelFileError("err.nn.model_damaged") from exc
        if input_shape is not None and shape != tuple(input_shape):
            raise ModelFileError(
                "err.nn.input_shape", want=_shape_text(input_shape), got=_shape_text(shape)
            )
        specs = config.get("layers")
        if not isinstance(specs, list):
            raise ModelFileError("err.nn.model_damaged")
        n_layers = _count_specs(specs)
        if n_layers > MAX_LAYERS:
            raise ModelFileError("err.model.too_many_layers", limit=MAX_LAYERS)
        try:
            # Layer objects hold only their settings until built: nothing is allocated yet.
            layers = [layer_from_config(spec) for spec in specs]
            planned = plan(layers, shape)
        except Exception as exc:  # unknown layers, bad arguments, shapes that do not chain
            raise ModelFileError("err.nn.model_damaged") from exc
        # Every budget from the plan, before any layer is built or any weight read.
        if max_params is not None and planned.count > max_params:
            raise ModelFileError(
                "err.nn.too_many_params", count=planned.count, limit=int(max_params)
            )
        if planned.values > max_values:
            index, kind = planned.where
            raise ModelFileError(
                "err.model.activations_too_large",
                index=index,
                layer=kind,  # the class name from the registry, never text from the file
                count=planned.values,
                limit=int(max_values),
            )
        if output_shape is not None and planned.output_shape != tuple(output_shape):
            raise ModelFileError(
                "err.nn.output_shape",
                want=_shape_text(output_shape),
                got=_shape_text(planned.output_shape),
            )
        try:
            model = Sequential(
                layers,
                input_shape=shape,
                seed=int(config["seed"]),
                name=str(config["name"]),
                initialize=False,  # zeros: no memory is touched until the weights are copied
            )
        except MemoryError as exc:
            raise ModelFileError(
                "err.nn.model_too_large", limit=int(max_params or planned.count)
            ) from exc
        except Exception as exc:
            raise ModelFileError("err.nn.model_damaged") from exc
        if model.count_params() != planned.count or model.output_shape != planned.output_shape:
            raise ModelFileError("err.nn.model_damaged")  # the plan's rules missed a layer
        model.astype(dtype)
        try:
            for kind, pairs in (("param", model.parameters()), ("buffer", model.buffers())):
                for item in pairs:
                    name, arr = item[0], item[1]
                    key = f"{kind}:{name}"
                    # The zip directory gives the size: a huge array is refused unread.
                    if key not in files or _member_size(data, key) > arr.nbytes + 4096:
                        raise ValueError(f"`file` lacks the array {key!r} or it is too big")
                    stored = data[key]
                    if stored.shape != arr.shape:
                        raise ValueError(
                            f"`file` array {key!r} has shape {stored.shape}, want {arr.shape}"
                        )
                    arr[...] = stored
            meta = _json_member(data, "metadata") if "metadata" in files else {}
            if not isinstance(meta, dict):
                raise ValueError("`metadata` must be a JSON object")
        except Exception as exc:
            raise ModelFileError("err.nn.model_damaged") from exc
        model.metadata = meta
    return model
