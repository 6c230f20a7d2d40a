"""Blocks: layers made of layers (ResNet skip, Inception concat, DenseNet growth).

A block is a :class:`~convviz.nn.layers.Layer`: it builds, runs forward and
backward, and exposes its children's parameters under nested names such as
``residual/conv2d/kernel``. Child names are unique within their block.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from convviz.nn.layers import Conv2D, Identity, Layer, assign_names
from convviz.nn.registry import layer_from_config, register

__all__ = ["Concat", "Residual", "dense_block"]


def _as_chain(branch: Layer | list[Layer] | tuple[Layer, ...]) -> list[Layer]:
    if isinstance(branch, Layer):
        return [branch]
    chain = list(branch)
    for layer in chain:
        if not isinstance(layer, Layer):
            raise ValueError(f"`layers` must hold Layer objects, got {type(layer).__name__}")
    return chain


def _run(chain: list[Layer], x: np.ndarray, training: bool) -> np.ndarray:
    for layer in chain:
        x = layer.forward(x, training)
    return x


def _run_back(chain: list[Layer], dy: np.ndarray) -> np.ndarray:
    for layer in reversed(chain):
        dy = layer.backward(dy)
    return dy


class _Block(Layer):
    """Shared bookkeeping: children, nested names, counts, dtype."""

    def children(self) -> list[Layer]:
        raise NotImplementedError

    def named_parameters(self, prefix: str = ""):
        for child in self.children():
            yield from child.named_parameters(f"{prefix}{self.name}/")

    def named_buffers(self, prefix: str = ""):
        for child in self.children():
            yield from child.named_buffers(f"{prefix}{self.name}/")

    def count_params(self) -> int:
        return sum(child.count_params() for child in self.children())

    def count_non_trainable_params(self) -> int:
        return sum(child.count_non_trainable_params() for child in self.children())

    def map_children(self, fn) -> _Block:
        """A shallow copy of this block whose children are ``fn(child)``, in the same places.

        :meth:`replica` uses it with ``Layer.replica``; :mod:`convviz.nn.fast` with
        its own training twins of the children.
        """
        raise NotImplementedError

    def replica(self) -> Layer:
        return self.map_children(lambda child: child.replica())

    def astype(self, dtype) -> Layer:
        self.dtype = np.dtype(dtype)
        for child in self.children():
            child.astype(dtype)
        return self


@register
class Residual(_Block):
    """``y = x + f(x)`` with ``f`` a chain of layers (a ResNet basic block without the final ReLU).

    Parameters
    ----------
    layers : list of Layer
        The residual branch ``f``.
    projection : {"auto", True, False}
        "auto" adds a 1x1 :class:`Conv2D` (named ``projection``, with the stride
        that matches ``f``'s downsampling) only when ``f`` changes the shape;
        True always adds it; False requires ``f`` to keep the shape.

    Examples
    --------
    >>> block = Residual([Conv2D(8, 3, strides=2, padding="same")], name="residual")
    >>> block.build((6, 6, 4), np.random.default_rng(0))
    (3, 3, 8)
    >>> [name for name, _, _ in block.named_parameters()][-1]
    'residual/projection/bias'
    """

    default_name = "residual"
    keras_name = "Residual"

    def __init__(self, layers, projection: str | bool = "auto", name: str | None = None) -> None:
        super().__init__(name)
        self.layers = _as_chain(layers)
        if not self.layers:
            raise ValueError("`layers` must hold at least one layer")
        if projection not in ("auto", True, False):
            raise ValueError(f"`projection` must be 'auto', True or False, got {projection!r}")
        self.projection = projection
        self.proj: Conv2D | None = None
        assign_names(self.layers)

    def children(self):
        return self.layers + ([self.proj] if self.proj is not None else [])

    def map_children(self, fn) -> Residual:
        twin = copy.copy(self)
        twin.layers = [fn(layer) for layer in self.layers]
        twin.proj = fn(self.proj) if self.proj is not None else None
        return twin

    def get_config(self):
        return {
            "layers": [layer.to_spec() for layer in self.layers],
            "projection": self.projection,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = [layer_from_config(spec) for spec in config["layers"]]
        return cls(**config)

    def _build(self, input_shape, rng):
        shape = input_shape
        for layer in self.layers:
            shape = layer.build(shape, rng)
        self.proj = None
        if self.projection is True or (self.projection == "auto" and shape != input_shape):
            if len(shape) != 3 or len(input_shape) != 3:
                raise ValueError("`projection` needs (H, W, C) shapes at both ends of the block")
            strides = (math.ceil(input_shape[0] / shape[0]), math.ceil(input_shape[1] / shape[1]))
            self.proj = Conv2D(shape[2], 1, strides=strides, name="projection")
            if self.proj.build(input_shape, rng) != shape:
                raise ValueError(
                    f"`layers` map {input_shape} to {shape}, no 1x1 projection matches"
                )
        elif shape != input_shape:
            raise ValueError(
                f"`projection` is False but `layers` change the shape {input_shape} -> {shape}"
            )
        return shape

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        h = _run(self.layers, x, training)
        return h + (self.proj.forward(x, training) if self.proj is not None else x)

    def backward(self, dy):
        dx = _run_back(self.layers, dy)
        skip = self.proj.backward(dy) if self.proj is not None else dy
        return None if not self.needs_input_grad else dx + skip


@register
class Concat(_Block):
    """Parallel branches on the same input, concatenated on the channel axis (Inception).

    Parameters
    ----------
    branches : list of (Layer or list of Layer)
        Each branch is a chain; an empty list (or :class:`Identity`) passes the input through.
        Every branch must produce the same leading dimensions.

    Examples
    --------
    >>> block = Concat([[Identity()], [Conv2D(3, 3, padding="same")]])
    >>> block.build((5, 5, 2), np.random.default_rng(0))
    (5, 5, 5)
    """

    default_name = "concat"
    keras_name = "Concat"

    def __init__(self, branches, name: str | None = None) -> None:
        super().__init__(name)
        self.branches = [_as_chain(b) for b in branches]
        if not self.branches:
            raise ValueError("`branches` must hold at least one branch")
        assign_names([layer for chain in self.branches for layer in chain])
        self._splits: list[int] = []

    def children(self):
        return [layer for chain in self.branches for layer in chain]

    def map_children(self, fn) -> Concat:
        twin = copy.copy(self)
        twin.branches = [[fn(layer) for layer in chain] for chain in self.branches]
        return twin

    def get_config(self):
        return {
            "branches": [[layer.to_spec() for layer in chain] for chain in self.branches],
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["branches"] = [[layer_from_config(s) for s in chain] for chain in config["branches"]]
        return cls(**config)

    def _build(self, input_shape, rng):
        shapes = []
        for chain in self.branches:
            shape = input_shape
            for layer in chain:
                shape = layer.build(shape, rng)
            shapes.append(shape)
        lead = {s[:-1] for s in shapes}
        if len(lead) != 1:
            raise ValueError(f"`branches` must agree on all but the channel axis, got {shapes}")
        self._splits = list(np.cumsum([s[-1] for s in shapes])[:-1])
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))

    def forward(self, x, training=False):
        self._check_input(x)
        x = np.asarray(x, self.dtype)
        return np.concatenate([_run(chain, x, training) for chain in self.branches], axis=-1)

    def backward(self, dy):
        parts = np.split(dy, self._splits, axis=-1)
        dxs = [
            _run_back(chain, np.ascontiguousarray(p))
            for chain, p in zip(self.branches, parts, strict=True)
        ]
        if not self.needs_input_grad:
            return None
        dx = dxs[0].copy()
        for d in dxs[1:]:
            dx += d
        return dx


def dense_block(growth: int, n: int, kernel_size: int = 3) -> list[Layer]:
    """DenseNet block: ``n`` times ``x <- concat(x, relu(conv(x)))``, each adding ``growth``.

    Returns a list of :class:`Concat` layers to splice into a model.

    >>> layers = dense_block(4, 2)
    >>> shape = (6, 6, 3)
    >>> for layer in layers:
    ...     shape = layer.build(shape, np.random.default_rng(0))
    >>> shape
    (6, 6, 11)
    """
    if int(growth) < 1:
        raise ValueError(f"`growth` must be >= 1, got {growth}")
    if int(n) < 1:
        raise ValueError(f"`n` must be >= 1, got {n}")
    return [
        Concat([[Identity()], [Conv2D(growth, kernel_size, padding="same", activation="relu")]])
        for _ in range(int(n))
    ]
