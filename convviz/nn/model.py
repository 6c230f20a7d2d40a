"""`Sequential`: a stack of layers with a Keras-style summary and ``.npz`` save/load.

Batches are NHWC ``(N, H, W, C)`` float32 in [0, 1]; the model returns LOGITS
(the final softmax lives in the loss and in :meth:`Sequential.predict_proba`).
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from convviz.nn.functional import blas_threads
from convviz.nn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Layer,
    MaxPool2D,
    assign_names,
    layer_from_config,
)
from convviz.nn.losses import softmax

__all__ = ["Sequential", "load_model"]

_FORMAT = "convviz.nn/1"

# Worker threads shared by every model (numpy and BLAS release the GIL, so two
# half-batches really run on two cores).
_POOL: list[tuple[int, ThreadPoolExecutor]] = []  # (max_workers, executor)
_POOL_LOCK = threading.Lock()
_MIN_ROWS_PER_SLICE = 16  # below this, thread hand-off costs more than it saves
_SLICES_PER_WORKER = 1  # 2 (dynamic balancing under load) measured no better here


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL or _POOL[0][0] < workers - 1:
            pool = ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="convviz-nn")
            _POOL[:] = [(workers - 1, pool)]
        return _POOL[0][1]


def _walk(layers):
    for layer in layers:
        yield layer
        if hasattr(layer, "children"):
            yield from _walk(layer.children())


def _blas_for(threads: int) -> None:
    """Give OpenBLAS ``threads`` threads, touching the setting only when it changes.

    Why not set 1 around each sliced pass and restore after: every raise of the
    count wakes OpenBLAS's worker thread, which then spin-waits for work that
    never comes. Measured on this 2-core machine (classic, batch 64): that
    spinning burnt 0.2-0.4 of a core and cost about 7% of the training
    throughput headless, more with a browser and a server on the same cores.
    So the count stays where the last pass needed it: 1 while models train in
    slices (the usual case), ``workers`` for a big unsliceable batch.
    """
    if blas_threads() not in (0, threads):
        blas_threads(threads)


def _run_slices(fn, k: int, workers: int) -> list:
    """``[fn(0), ..., fn(k-1)]`` computed by the calling thread and ``workers - 1`` pool threads.

    Slices are handed out one at a time, so a thread that gets less CPU (the
    machine is shared) simply takes fewer of them. BLAS is single-threaded
    meanwhile (and stays so afterwards, see :func:`_blas_for`).
    """
    results: list = [None] * k
    todo = iter(range(k))
    lock = threading.Lock()

    def drain() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            results[i] = fn(i)

    _blas_for(1)
    futures = [_pool(workers).submit(drain) for _ in range(min(workers, k) - 1)]
    drain()
    for f in futures:
        f.result()
    return results


def _forward_chain(layers: list[Layer], x: np.ndarray, training: bool) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x, training)
    return x


def _backward_chain(layers: list[Layer], d: np.ndarray):
    for layer in reversed(layers):
        d = layer.backward(d)
    return d


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
    workers : int or None
        Threads for training steps (default: 2 if the machine has 2+ cores).
        A training batch is split into slices (one per thread, 16+ rows
        each), each run by a twin of the model that shares its weights
        (:meth:`Layer.replica`); the twins' gradients are summed, so the result
        is the full-batch gradient (up to float rounding order). Evaluation
        batches are sliced the same way. BLAS runs single-threaded meanwhile.
        Models with BatchNorm train on one thread (their batch statistics need
        the whole batch) with multi-threaded BLAS instead.

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
        workers: int | None = None,
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
        rng = np.random.default_rng(self.seed)
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, rng)
        self.output_shape = shape
        for below, above in zip(self.layers, self.layers[1:], strict=False):
            fuse = (
                isinstance(below, Conv2D)
                and below.activation == "relu"
                and isinstance(above, MaxPool2D)
            )
            if fuse:
                below.defer_relu = above.relu_input = True
                used = above.used_input_shape[:2]
                if used != below.output_shape[:2]:
                    below.used_hw = used
                if above.pool_size == above.strides and above.pool_size != (1, 1):
                    below.pool_fused = (*above.pool_size, *above.output_shape[:2])
        last = self.layers[-1]
        if isinstance(last, Dense) and last.activation == "softmax":
            last.logits_output = True  # the softmax lives in the loss / predict_proba
        self.input_grad = input_grad
        if workers is None:
            workers = min(2, os.cpu_count() or 1)
        if int(workers) < 1:
            raise ValueError(f"`workers` must be >= 1, got {workers}")
        self.workers = int(workers)
        self._twins: list[list[Layer]] = []
        self._twins_key: tuple = ()
        self._split: list[int] | None = None

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
    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == len(self.input_shape) and self.input_shape[-1] == 1:
            x = x[..., None]  # (N, H, W) grayscale -> (N, H, W, 1)
        if tuple(x.shape[1:]) != self.input_shape:
            want = ", ".join(map(str, self.input_shape))
            raise ValueError(f"`x` must have shape (N, {want}), got {x.shape}")
        return x.astype(self.dtype, copy=False)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits ``(N, classes)`` for a batch ``x`` (N, H, W, C)."""
        h = self._prepare(x)
        self._split = None
        k = self._parallel_slices(len(h), training)
        if k == 1:
            if self.workers > 1 and len(h) >= 2 * _MIN_ROWS_PER_SLICE:
                _blas_for(self.workers)  # a big batch that cannot be sliced (BatchNorm)
            return _forward_chain(self.layers, h, training)
        twins = self._get_twins(k)
        sizes = [len(part) for part in np.array_split(np.empty(len(h)), k)]
        starts = np.cumsum([0, *sizes])
        outs = _run_slices(
            lambda i: _forward_chain(twins[i], h[starts[i] : starts[i + 1]], training),
            k,
            self.workers,
        )
        self._split = sizes
        return np.concatenate(outs)

    def _parallel_slices(self, n: int, training: bool) -> int:
        if self.workers < 2 or n < 2 * _MIN_ROWS_PER_SLICE:
            return 1
        if training and any(isinstance(layer, BatchNorm) for layer in _walk(self.layers)):
            return 1  # batch statistics need the whole batch (evaluation uses running ones)
        return min(_SLICES_PER_WORKER * self.workers, n // _MIN_ROWS_PER_SLICE)

    def _get_twins(self, k: int) -> list[list[Layer]]:
        # Rebuild the twins whenever parameters were replaced (astype, new arrays).
        key = (k, self.dtype, tuple(id(p) for _, p, _ in self.parameters()))
        if key != self._twins_key:
            self._twins = [self.layers] + [
                [layer.replica() for layer in self.layers] for _ in range(k - 1)
            ]
            self._twins_key = key
        return self._twins

    __call__ = forward

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        """Back-propagate ``dlogits`` (N, classes), overwriting every layer's ``grads``.

        Returns ``dx`` (N, H, W, C), or ``None`` unless ``input_grad`` is set.
        """
        d = np.asarray(dlogits, self.dtype)
        if self._split is None:
            return _backward_chain(self.layers, d)
        if len(d) != sum(self._split):
            raise ValueError(f"`dlogits` must have {sum(self._split)} rows, got {len(d)}")
        twins = self._twins
        starts = np.cumsum([0, *self._split])
        dxs = _run_slices(
            lambda i: _backward_chain(twins[i], d[starts[i] : starts[i + 1]]),
            len(twins),
            self.workers,
        )
        # The full-batch gradient is the sum of the slices' gradients.
        for twin in twins[1:]:
            for (_, _, g), (_, _, g_twin) in zip(
                self.parameters(),
                [t for layer in twin for t in layer.named_parameters()],
                strict=True,
            ):
                g += g_twin
        return None if dxs[0] is None else np.concatenate(dxs)

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
        h = self._prepare(x)
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

    def save(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        """Write architecture (JSON), parameters, buffers and ``metadata`` to an ``.npz``.

        ``metadata`` (default ``self.metadata``) must be JSON-able; it comes back
        as ``model.metadata`` from :func:`load_model`. Nothing is pickled.
        """
        meta = self.metadata if metadata is None else metadata
        arrays = {
            "architecture": np.array(json.dumps(self.get_config())),
            "metadata": np.array(json.dumps(meta)),
        }
        arrays.update({f"param:{n}": p for n, p, _ in self.parameters()})
        arrays.update({f"buffer:{n}": b for n, b in self.buffers()})
        with open(path, "wb") as fh:  # a file object: numpy does not append ".npz"
            np.savez(fh, **arrays)


def load_model(path: str | os.PathLike) -> Sequential:
    """Rebuild a :class:`Sequential` written by :meth:`Sequential.save`.

    The loaded model predicts bit-for-bit like the saved one.
    """
    with np.load(path, allow_pickle=False) as data:
        files = set(data.files)
        if "architecture" not in files:
            raise ValueError(f"`path` is not a convviz model file (no architecture): {path}")
        config = json.loads(str(data["architecture"]))
        if config.get("format") != _FORMAT:
            raise ValueError(f"`path` has an unknown model format {config.get('format')!r}")
        layers = [layer_from_config(spec) for spec in config["layers"]]
        model = Sequential(
            layers,
            input_shape=tuple(config["input_shape"]),
            seed=config["seed"],
            name=config["name"],
        )
        model.astype(config.get("dtype", "float32"))
        for kind, pairs in (("param", model.parameters()), ("buffer", model.buffers())):
            for item in pairs:
                name, arr = item[0], item[1]
                key = f"{kind}:{name}"
                if key not in files:
                    raise ValueError(f"`path` lacks the array {key!r}")
                stored = data[key]
                if stored.shape != arr.shape:
                    raise ValueError(
                        f"`path` array {key!r} has shape {stored.shape}, want {arr.shape}"
                    )
                arr[...] = stored
        model.metadata = json.loads(str(data["metadata"])) if "metadata" in files else {}
    return model
