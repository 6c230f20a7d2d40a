"""`Sequential`: a stack of layers with a Keras-style summary and ``.npz`` save/load.

Batches are NHWC ``(N, H, W, C)`` float32 in [0, 1]; the model returns LOGITS
(the final softmax lives in the loss and in :meth:`Sequential.predict_proba`).
"""

from __future__ import annotations

import json
import os
from typing import BinaryIO

import numpy as np

from convviz.errors import CodedError
from convviz.nn.layers import Dense, Layer, assign_names
from convviz.nn.losses import softmax
from convviz.nn.registry import layer_from_config

__all__ = ["ModelFileError", "Sequential", "load_model"]

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


class ModelFileError(CodedError):
    """A file that :func:`load_model` cannot turn into a model (a ``ValueError``).

    Its code says why (``err.nn.not_a_model``, ``err.nn.model_format``,
    ``err.nn.model_damaged``, ``err.nn.model_too_large``, ``err.nn.too_many_params``,
    ``err.nn.input_shape``, ``err.nn.output_shape``); its parameters are numbers and
    shapes, never text from the file. The underlying error, if any, is chained.
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
        Refuse models with more weights (``count_params``) than this, before
        copying any; the model is first built with zero weights, which costs no
        memory until written.

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
                fh, input_shape=input_shape, output_shape=output_shape, max_params=max_params
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
        try:
            layers = [layer_from_config(spec) for spec in config["layers"]]
            model = Sequential(
                layers,
                input_shape=shape,
                seed=int(config["seed"]),
                name=str(config["name"]),
                initialize=False,  # zeros: no memory is touched until the weights are copied
            )
        except MemoryError as exc:
            if max_params is None:
                raise
            raise ModelFileError("err.nn.model_too_large", limit=int(max_params)) from exc
        except Exception as exc:  # unknown layers, bad arguments, shapes that do not chain
            raise ModelFileError("err.nn.model_damaged") from exc
        count = model.count_params()
        if max_params is not None and count > max_params:
            raise ModelFileError("err.nn.too_many_params", count=count, limit=int(max_params))
        if output_shape is not None and tuple(model.output_shape) != tuple(output_shape):
            raise ModelFileError(
                "err.nn.output_shape",
                want=_shape_text(output_shape),
                got=_shape_text(model.output_shape),
            )
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
