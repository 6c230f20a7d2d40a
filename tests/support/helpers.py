"""One comparison helper for every numeric test: shape, then dtype, then values."""

from __future__ import annotations

import numpy as np


def assert_matches(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    dtype: object | None = None,
    what: str = "result",
) -> None:
    """Fail with a readable message naming the first thing that differs."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{what}: shape {actual.shape} != expected {expected.shape}"
    )
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {dtype}"
    if actual.size == 0:
        return
    scale = max(float(np.max(np.abs(expected))), 1.0)
    err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bad = err > atol * scale + rtol * np.abs(expected)
    if bad.any():
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
        raise AssertionError(
            f"{what}: {int(bad.sum())}/{bad.size} values differ; worst at {idx}: "
            f"got {actual[idx]!r}, expected {expected[idx]!r} (abs err {err[idx]:.3g}, "
            f"rtol={rtol}, atol={atol}*{scale:.3g})"
        )
