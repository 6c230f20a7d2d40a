"""pool2d against skimage.measure.block_reduce, explicit padding, and the loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.measure import block_reduce

from convviz.pool import pool2d, pool2d_naive, pool2d_step, pool2d_steps
from convviz.shapes import output_size
from tests.support.helpers import assert_matches

REDUCERS = {"max": np.max, "avg": np.mean, "min": np.min}


@pytest.mark.parametrize("mode", list(REDUCERS))
@pytest.mark.parametrize("size", [2, 3, (2, 4)])
def test_non_overlapping_matches_block_reduce(mode, size):
    rng = np.random.default_rng(0)
    kh, kw = (size, size) if isinstance(size, int) else size
    x = rng.normal(size=(kh * 5, kw * 4))
    expected = block_reduce(x, (kh, kw), REDUCERS[mode])
    assert_matches(pool2d(x, size, mode=mode), expected, rtol=1e-12, atol=1e-12)
    assert_matches(pool2d_naive(x, size, mode=mode), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", list(REDUCERS))
def test_multichannel_matches_block_reduce_per_channel(mode):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, size=(3, 8, 6)).astype(np.uint8)
    expected = block_reduce(x.astype(np.float64), (1, 2, 2), REDUCERS[mode])
    got = pool2d(x, 2, mode=mode)
    assert got.dtype == np.float32
    assert_matches(got, expected, rtol=1e-6, atol=1e-6)


def test_floor_drops_the_ragged_edge_like_cropping_then_block_reduce():
    x = np.arange(7 * 5, dtype=float).reshape(7, 5)
    expected = block_reduce(x[:6, :4], (2, 2), np.max)
    assert_matches(pool2d(x, 2), expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode, fill", [("max", -np.inf), ("min", np.inf), ("avg", 0.0)])
def test_padding_matches_block_reduce_on_explicitly_padded_input(mode, fill):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 8))
    xp = np.pad(x, 1, constant_values=fill)  # 8 x 10: windows of 2 tile it exactly
    expected = block_reduce(xp, (2, 2), REDUCERS[mode])
    assert_matches(pool2d(x, 2, padding=1, mode=mode), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    mode=st.sampled_from(list(REDUCERS)),
    seed=st.integers(0, 2**16),
)
def test_vectorised_matches_loop(h, w, size, stride, padding, mode, seed):
    x = np.random.default_rng(seed).normal(size=(2, h, w))
    kwargs = dict(stride=stride, padding=padding, mode=mode)
    try:
        expected = pool2d_naive(x, size, **kwargs)
    except ValueError:
        with pytest.raises(ValueError):
            pool2d(x, size, **kwargs)
        return
    got = pool2d(x, size, **kwargs)
    assert_matches(got, expected, rtol=1e-12, atol=1e-12)
    s = size if stride is None else stride
    assert got.shape[1:] == (
        output_size(h, size[0], s[0], padding[0]),
        output_size(w, size[1], s[1], padding[1]),
    )


def test_steps_show_the_winner():
    x = np.array([[1, 9, 2, 3], [4, 5, 8, 7], [0, 0, 6, 6], [0, 1, 6, 6]])
    steps = list(pool2d_steps(x, 2))
    assert [s.index for s in steps] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [s.winner for s in steps] == [(0, 1), (1, 0), (1, 1), (0, 0)]  # ties: first
    assert [s.value for s in steps] == [9, 8, 1, 6]
    assert_matches(steps[1].window, [[2, 3], [8, 7]], rtol=0, atol=0)
    mins = list(pool2d_steps(x, 2, mode="min"))
    assert [s.winner for s in mins] == [(0, 0), (0, 0), (0, 0), (0, 0)]
    avg = pool2d_step(x, 2, index=3, mode="avg")
    assert avg.winner is None and avg.value == 6.0


def test_padding_never_wins_and_is_marked():
    s = pool2d_step(-np.ones((3, 3)), 2, index=(0, 0), padding=1, mode="max")
    assert s.value == -1.0
    assert s.inside.tolist() == [[False, False], [False, True]]
    assert s.winner == (1, 1)


def test_steps_walk_one_channel():
    x = np.stack([np.zeros((2, 2)), np.arange(4.0).reshape(2, 2)])
    assert [s.value for s in pool2d_steps(x, 2, channel=1)] == [3.0]
    with pytest.raises(ValueError, match=r"`channel` must be in \[0, 2\)"):
        pool2d_steps(x, 2, channel=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), "`size` must be >= 1"),
        (dict(size=2, stride=0), "`stride` must be >= 1"),
        (dict(size=2, padding=-1), "`padding` must be >= 0"),
        (dict(size=2, padding=2), "`padding` .* must be at most half of `size`"),
        (dict(size=9), r"`size` \(9, 9\) is larger than the padded input"),
        (dict(size=2, mode="median"), "`mode` must be one of"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pool2d(np.ones((4, 4)), **kwargs)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.ones(4), "`x` must be 2-D"),
        (np.ones((0, 4)), "`x` must not be empty"),
        (np.full((2, 2), np.nan), r"`x` has a non-finite value \(nan\) at index \(0, 0\)"),
    ],
)
def test_bad_inputs(x, match):
    with pytest.raises(ValueError, match=match):
        pool2d(x)
