"""Weight initialisers (Keras names and formulas), all driven by a seeded Generator.

Each initialiser is ``f(rng, shape, fan_in, fan_out, dtype) -> ndarray``.
For a conv kernel ``(kh, kw, C, F)``: ``fan_in = kh*kw*C`` and ``fan_out = kh*kw*F``
(as Keras computes them); for a dense kernel ``(D, U)``: ``fan_in = D``, ``fan_out = U``.

>>> rng = np.random.default_rng(0)
>>> w = glorot_uniform(rng, (100, 50), 100, 50)
>>> w.dtype, bool(np.abs(w).max() <= np.sqrt(6 / 150))
(dtype('float32'), True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["INITIALIZERS", "gaussian", "get_initializer", "glorot_uniform", "he_normal", "uniform"]

Initializer = Callable[..., np.ndarray]


def glorot_uniform(rng: np.random.Generator, shape, fan_in: int, fan_out: int, dtype=np.float32):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))`` (Keras default)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(rng: np.random.Generator, shape, fan_in: int, fan_out: int, dtype=np.float32):
    """Truncated normal (cut at 2 std), ``std = sqrt(2 / fan_in)`` after truncation (Keras)."""
    # 0.8796... is the std of a unit normal truncated to [-2, 2]; Keras divides by it.
    std = np.sqrt(2.0 / fan_in) / 0.87962566103423978
    w = rng.standard_normal(size=shape)
    bad = np.abs(w) > 2.0
    while bad.any():  # redraw the tails, like a truncated normal sampler
        w[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(w) > 2.0
    return (w * std).astype(dtype)


def gaussian(rng: np.random.Generator, shape, fan_in: int = 0, fan_out: int = 0, dtype=np.float32):
    """Normal with mean 0 and std 0.05 (Keras ``RandomNormal``)."""
    return rng.normal(0.0, 0.05, size=shape).astype(dtype)


def uniform(rng: np.random.Generator, shape, fan_in: int = 0, fan_out: int = 0, dtype=np.float32):
    """Uniform in ``[-0.05, 0.05]`` (Keras ``RandomUniform``)."""
    return rng.uniform(-0.05, 0.05, size=shape).astype(dtype)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "he_normal": he_normal,
    "gaussian": gaussian,
    "uniform": uniform,
}


def get_initializer(name: str) -> Initializer:
    """Look an initialiser up by name; ``ValueError`` naming the choices otherwise."""
    if name not in INITIALIZERS:
        raise ValueError(
            f"`kernel_initializer` must be one of {sorted(INITIALIZERS)}, got {name!r}"
        )
    return INITIALIZERS[name]
