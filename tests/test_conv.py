"""conv2d against oracles: the seed example, scipy.ndimage, the loop version."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import convviz
from convviz.conv import conv2d, conv2d_naive, conv2d_step, conv2d_steps
from convviz.shapes import output_size
from tests.support.helpers import assert_matches

SEED_X = [
    [128, 97, 53, 201, 198],
    [35, 22, 25, 200, 195],
    [37, 24, 28, 197, 182],
    [33, 28, 92, 195, 179],
    [31, 40, 100, 192, 177],
]
SEED_W = [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
SEED_Y = [[181, 303, 618], [115, 338, 605], [189, 351, 660]]

SCIPY_MODE = {"zeros": "constant", "reflect": "mirror", "replicate": "nearest", "circular": "wrap"}
METHODS = ["direct", "fft"]


# ----------------------------------------------------------------- the seed example


@pytest.mark.parametrize("method", METHODS)
def test_seed_example_vectorised(method):
    y = conv2d(SEED_X, SEED_W, method=method)
    assert_matches(y, SEED_Y, rtol=0, atol=1e-6)


def test_seed_example_loop_and_steps():
    assert_matches(conv2d_naive(SEED_X, SEED_W), SEED_Y, rtol=0, atol=0)
    steps = list(conv2d_steps(SEED_X, SEED_W))
    assert [s.index for s in steps] == [(r, c) for r in range(3) for c in range(3)]
    assert [s.value for s in steps] == [v for row in SEED_Y for v in row]
    first = steps[0]
    assert first.position == (0, 0)
    assert_matches(first.patch[0], [[128, 97, 53], [35, 22, 25], [37, 24, 28]], rtol=0, atol=0)
    assert_matches(first.kernel[0], SEED_W, rtol=0, atol=0)
    assert_matches(first.products[0], [[0, 97, 0], [35, 0, 25], [0, 24, 0]], rtol=0, atol=0)
    assert first.partial_sums.tolist() == [181.0]
    assert first.bias == 0.0
    assert first.value == 97 + 35 + 25 + 24
    assert first.inside.all()
    assert first.out_shape == (3, 3)


def test_seed_example_exported_from_package():
    assert convviz.conv2d(SEED_X, SEED_W).tolist() == SEED_Y


# ----------------------------------------------------------------- scipy.ndimage oracle


@pytest.mark.parametrize("pad_mode", list(SCIPY_MODE))
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("method", METHODS)
def test_same_padding_matches_scipy_correlate(pad_mode, k, method):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(11, 13))
    w = rng.normal(size=(k, k))
    # TF "same" puts the odd padding pixel after; scipy centres even kernels at k//2.
    origin = -1 if k % 2 == 0 else 0
    expected = ndimage.correlate(x, w, mode=SCIPY_MODE[pad_mode], origin=origin)
    got = conv2d(x, w, padding="same", pad_mode=pad_mode, method=method)
    assert_matches(got, expected, dtype=np.float64, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("pad_mode", list(SCIPY_MODE))
@pytest.mark.parametrize("kshape", [(3, 3), (3, 5), (4, 2)])
def test_flip_is_true_convolution(pad_mode, kshape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 10))
    w = rng.normal(size=kshape)
    if all(k % 2 for k in kshape):
        expected = ndimage.convolve(x, w, mode=SCIPY_MODE[pad_mode])
        got = conv2d(x, w, padding="same", pad_mode=pad_mode, flip=True)
    else:  # even kernels: compare with correlation by the explicitly flipped kernel
        expected = conv2d_naive(x, w[::-1, ::-1], padding=1, pad_mode=pad_mode)
        got = conv2d(x, w, padding=1, pad_mode=pad_mode, flip=True)
    assert_matches(got, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "dtype, tol", [(np.uint8, 1e-6), (np.int32, 1e-6), (np.float32, 2e-6), (np.float64, 1e-12)]
)
@pytest.mark.parametrize("method", METHODS)
def test_dtypes_against_scipy(dtype, tol, method):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 255, size=(16, 15)).astype(dtype)
    w = rng.normal(size=(3, 3)).astype(np.float32 if dtype == np.float32 else np.float64)
    expected = ndimage.correlate(x.astype(np.float64), w.astype(np.float64), mode="constant")
    got = conv2d(x, w, padding="same", method=method)
    assert got.dtype == np.result_type(x.dtype, w.dtype, np.float32)
    # FFT rounding scales with the largest value; the direct path is near exact.
    assert_matches(got, expected, rtol=tol, atol=tol * (10 if method == "fft" else 1))


def test_valid_and_full_padding_against_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 9))
    w = rng.normal(size=(3, 5))
    same = ndimage.correlate(x, w, mode="constant")
    # valid = the part of the centred result whose window fits entirely.
    assert_matches(conv2d(x, w), same[1:-1, 2:-2], rtol=1e-9, atol=1e-10)
    # full = correlation over every partial overlap: pad by k-1 then valid.
    xp = np.pad(x, ((2, 2), (4, 4)))
    full = ndimage.correlate(xp, w, mode="constant")[1:-1, 2:-2]
    assert_matches(conv2d(x, w, padding="full"), full, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("stride", [1, 2, 3, (2, 1), (1, 3)])
@pytest.mark.parametrize("method", METHODS)
def test_stride_is_subsampled_dense_output(stride, method):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(17, 14))
    w = rng.normal(size=(3, 3))
    dense = ndimage.correlate(x, w, mode="constant")[1:-1, 1:-1]  # valid, stride 1
    sy, sx = (stride, stride) if isinstance(stride, int) else stride
    got = conv2d(x, w, stride=stride, method=method)
    assert_matches(got, dense[::sy, ::sx], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dilation", [1, 2, 3, (2, 1)])
@pytest.mark.parametrize("method", METHODS)
def test_dilation_equals_zero_dilated_kernel(dilation, method):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16, 18))
    w = rng.normal(size=(3, 3))
    dy, dx = (dilation, dilation) if isinstance(dilation, int) else dilation
    big = np.zeros((2 * dy + 1, 2 * dx + 1))
    big[::dy, ::dx] = w  # taps spread apart with zeros between
    expected = ndimage.correlate(x, big, mode="constant")[dy:-dy, dx:-dx]
    got = conv2d(x, w, dilation=dilation, method=method)
    assert got.shape == (output_size(16, 3, dilation=dy), output_size(18, 3, dilation=dx))
    assert_matches(got, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_multichannel_filters_and_bias(method):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 10, 11))
    w = rng.normal(size=(4, 3, 3, 3))
    b = rng.normal(size=4)
    got = conv2d(x, w, b, padding="same", method=method)
    expected = np.stack(
        [
            sum(ndimage.correlate(x[c], w[f, c], mode="constant") for c in range(3)) + b[f]
            for f in range(4)
        ]
    )
    assert_matches(got, expected, rtol=1e-9, atol=1e-10)


def test_2d_kernel_on_rgb_is_same_kernel_on_every_channel_summed():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 8, 8))
    w = rng.normal(size=(3, 3))
    expected = sum(ndimage.correlate(x[c], w, mode="nearest") for c in range(3))
    got = conv2d(x, w, padding="same", pad_mode="replicate")
    assert_matches(got, expected, rtol=1e-9, atol=1e-10)


def test_large_kernel_auto_takes_fft_and_matches_scipy():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(200, 180)).astype(np.float32)
    w = rng.normal(size=(21, 21)).astype(np.float32)
    got = conv2d(x, w, padding="same", pad_mode="replicate")
    expected = ndimage.correlate(x.astype(np.float64), w.astype(np.float64), mode="nearest")
    assert_matches(got, expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- loop vs vectorised


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    c=st.integers(1, 3),
    f=st.integers(1, 2),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.one_of(
        st.sampled_from(["valid", "same", "full"]),
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
    ),
    pad_mode=st.sampled_from(list(SCIPY_MODE)),
    flip=st.booleans(),
    method=st.sampled_from(METHODS),
    seed=st.integers(0, 2**16),
)
def test_vectorised_matches_loop(
    h, w, c, f, kh, kw, stride, dilation, padding, pad_mode, flip, method, seed
):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(c, h, w))
    k = rng.normal(size=(f, c, kh, kw))
    b = rng.normal(size=f)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, pad_mode=pad_mode, flip=flip)
    try:
        expected = conv2d_naive(x, k, b, **kwargs)
    except ValueError as exc:  # kernel too big: both paths must refuse alike
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv2d(x, k, b, method=method, **kwargs)
        assert "larger than" in str(exc)
        return
    got = conv2d(x, k, b, method=method, **kwargs)
    assert_matches(got, expected, rtol=1e-9, atol=1e-9)
    # Shapes always follow the output-size formula.
    if isinstance(padding, tuple):
        assert got.shape[1:] == (
            output_size(h, kh, stride[0], padding[0], dilation[0]),
            output_size(w, kw, stride[1], padding[1], dilation[1]),
        )


def test_steps_agree_with_vectorised_and_random_access():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 7, 6))
    w = rng.normal(size=(2, 3, 2))
    kwargs = dict(stride=(2, 1), padding=1, pad_mode="reflect", dilation=(1, 2))
    full = conv2d(x, w, 0.5, **kwargs)
    steps = list(conv2d_steps(x, w, 0.5, **kwargs))
    assert len(steps) == full.size
    for k, s in enumerate(steps):
        assert s.value == pytest.approx(full[s.index], abs=1e-12)
        assert s.partial_sums.sum() + s.bias == pytest.approx(s.value, abs=1e-12)
        assert_matches(s.products, s.patch * s.kernel, rtol=0, atol=0)
        one = conv2d_step(x, w, 0.5, index=k, **kwargs)
        assert one.index == s.index and one.value == s.value


def test_step_marks_padding_taps():
    s = conv2d_step(np.ones((3, 3)), np.ones((3, 3)), index=(0, 0), padding=1)
    assert s.position == (0, 0)
    assert s.pad == ((1, 1), (1, 1))
    assert s.inside.tolist() == [[False, False, False], [False, True, True], [False, True, True]]
    assert s.value == 4.0


# ----------------------------------------------------------------- validation, one rule each


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stride=0), "`stride` must be >= 1"),
        (dict(stride=-2), "`stride` must be >= 1"),
        (dict(stride=1.5), "`stride` must be an integer"),
        (dict(stride=(1, 2, 3)), "`stride` must be an integer or a pair"),
        (dict(dilation=0), "`dilation` must be >= 1"),
        (dict(padding=-1), "`padding` must be >= 0"),
        (dict(padding="middle"), "`padding` must be an int, a pair"),
        (dict(pad_mode="mirror"), "`pad_mode` must be one of"),
        (dict(flip="yes"), "`flip` must be True or False"),
        (dict(method="magic"), "`method` must be"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv2d(np.ones((5, 5)), np.ones((3, 3)), **kwargs)


def test_nan_kernel_cell_is_named_with_its_index():
    w = np.ones((3, 3))
    w[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"`w` has a non-finite value \(nan\) at index \(1, 2\)"):
        conv2d(np.ones((5, 5)), w)


def test_inf_input_is_named_with_its_index():
    x = np.ones((5, 5))
    x[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"`x` has a non-finite value \(inf\) at index \(3, 0\)"):
        conv2d(x, np.ones((3, 3)))


def test_kernel_larger_than_padded_input_names_both_shapes():
    with pytest.raises(ValueError, match=r"extent 7x7.*padded input \(5x5\)"):
        conv2d(np.ones((5, 5)), np.ones((7, 7)))
    # ...but enough padding makes it fit.
    assert conv2d(np.ones((5, 5)), np.ones((7, 7)), padding=1).shape == (1, 1)
    with pytest.raises(ValueError, match=r"extent 5x5 with dilation"):
        conv2d(np.ones((4, 4)), np.ones((3, 3)), dilation=2)


@pytest.mark.parametrize(
    "w, match",
    [
        (np.ones((0, 3)), "`w` must not be empty"),
        (np.ones(3), "`w` must be 2-D"),
        (np.ones((3, 3, 3)), r"`w` has 3 channel\(s\) but `x` has 1"),
        (np.ones((2, 2, 3, 3)), r"`w` has 2 input channel\(s\) but `x` has 1"),
        (np.array([["a"]]), "`w` must be a real numeric array"),
    ],
)
def test_bad_kernels(w, match):
    with pytest.raises(ValueError, match=match):
        conv2d(np.ones((5, 5)), w)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.ones(5), "`x` must be 2-D"),
        (np.ones((0, 5)), "`x` must not be empty"),
        (np.ones((5, 5), dtype=complex), "`x` must be a real numeric array"),
    ],
)
def test_bad_inputs(x, match):
    with pytest.raises(ValueError, match=match):
        conv2d(x, np.ones((1, 1)))


def test_bad_bias():
    with pytest.raises(ValueError, match=r"`b` must be a scalar or have shape \(2,\)"):
        conv2d(np.ones((5, 5)), np.ones((2, 1, 3, 3)), b=[1, 2, 3])
    with pytest.raises(ValueError, match="`b` has a non-finite value"):
        conv2d(np.ones((5, 5)), np.ones((3, 3)), b=np.nan)


def test_steps_need_one_output_map_and_valid_index():
    with pytest.raises(ValueError, match="one output map"):
        conv2d_steps(np.ones((5, 5)), np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"`index` must be in \[0, 9\)"):
        conv2d_step(np.ones((5, 5)), np.ones((3, 3)), index=9)
    with pytest.raises(ValueError, match="outside the output shape"):
        conv2d_step(np.ones((5, 5)), np.ones((3, 3)), index=(0, 3))
    with pytest.raises(ValueError, match="`index` must be an int or"):
        conv2d_step(np.ones((5, 5)), np.ones((3, 3)), index="corner")


def test_inputs_are_not_modified():
    x = np.arange(25.0).reshape(5, 5)
    w = np.arange(9.0).reshape(3, 3)
    x0, w0 = x.copy(), w.copy()
    conv2d(x, w, padding="same", pad_mode="reflect", flip=True)
    assert (x == x0).all() and (w == w0).all()


# ----------------------------------------------------------------- the FFT path in tiles


def _forced_tiles(n: int):
    """A plan maker that cuts every FFT into tiles of ``n`` (or 2e) cells: many tiles."""
    from convviz import conv as cv

    def plan(full, e, c, f):
        ns = tuple(cv._next_fast_len(max(n, 2 * ei)) for ei in e)
        outs = tuple(ni - ei + 1 for ni, ei in zip(ns, e, strict=True))
        tiles = tuple(-(-fu // o) for fu, o in zip(full, outs, strict=True))
        return cv._FftPlan(ns, outs, tiles)

    return plan


@pytest.fixture
def small_tiles(monkeypatch):
    from convviz import conv as cv

    monkeypatch.setattr(cv, "_fft_plan", _forced_tiles(16))
    return cv


@pytest.mark.parametrize("pad_mode", list(SCIPY_MODE))
@pytest.mark.parametrize("k", [3, 7, 12])
@pytest.mark.parametrize("channels", [1, 3])
def test_fft_tiles_match_scipy_correlate(small_tiles, pad_mode, k, channels):
    rng = np.random.default_rng(100 + k)
    x = rng.normal(size=(channels, 41, 53))
    w = rng.normal(size=(channels, k, k))
    origin = -1 if k % 2 == 0 else 0
    expected = sum(
        ndimage.correlate(x[c], w[c], mode=SCIPY_MODE[pad_mode], origin=origin)
        for c in range(channels)
    )
    xs, ws = (x[0], w[0]) if channels == 1 else (x, w)
    got = conv2d(xs, ws, 0.25, padding="same", pad_mode=pad_mode, method="fft")
    assert_matches(got, expected + 0.25, dtype=np.float64, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2),
        dict(stride=(3, 2), padding="same"),
        dict(dilation=2, padding="full"),
        dict(dilation=(1, 3), stride=2, padding=(2, 1), pad_mode="reflect"),
        dict(flip=True, padding="same", pad_mode="circular"),
        dict(padding=(4, 0), pad_mode="replicate", stride=(1, 4)),
    ],
    ids=str,
)
def test_fft_tiles_match_the_loop_version(small_tiles, kwargs):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 29, 37))
    w = rng.normal(size=(3, 2, 5, 4))  # three output maps from two channels
    b = rng.normal(size=3)
    expected = conv2d_naive(x, w, b, **kwargs)
    assert_matches(conv2d(x, w, b, method="fft", **kwargs), expected, rtol=1e-9, atol=1e-9)


def test_fft_float32_big_kernel_against_signal_correlate():
    from scipy import signal

    rng = np.random.default_rng(11)
    x = rng.random((260, 300), dtype=np.float32)
    w = rng.standard_normal((31, 31)).astype(np.float32)
    got = conv2d(x, w, padding="same", method="fft")
    assert got.dtype == np.float32
    xp = np.pad(x.astype(np.float64), 15)
    expected = signal.correlate(xp, w.astype(np.float64), mode="valid", method="direct")
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-5 * scale


def test_fft_plan_tiles_cover_the_output():
    from convviz.conv import _fft_plan, _next_fast_len

    for full, e, c in [
        ((1000, 1000), (15, 15), 1),
        ((3000, 4000), (31, 31), 3),
        ((20, 9), (5, 5), 1),
    ]:
        plan = _fft_plan(full, e, c, 1)
        for axis in range(2):
            n, out, tiles = plan.n[axis], plan.out[axis], plan.tiles[axis]
            assert n == _next_fast_len(n) and out == n - e[axis] + 1
            assert tiles * out >= full[axis] > (tiles - 1) * out  # whole, and no spare tile
    assert _fft_plan((1000, 1000), (15, 15), 1, 1).count > 1  # a big image is tiled
    assert _fft_plan((20, 9), (5, 5), 1, 1).count == 1  # a small one is one transform


@pytest.mark.parametrize(
    ("channels", "k", "fft"),
    [(1, 3, False), (1, 5, False), (1, 15, True), (1, 31, True), (3, 3, False), (3, 31, True)],
)
def test_auto_method_for_the_benchmark_cases(channels, k, fft):
    """The measured crossover (comment at _NS_PER_TAP): small kernels direct, big ones FFT."""
    from convviz.conv import _prepare, _use_fft

    x = np.zeros((channels, 1000, 1000), np.float32)
    w = np.ones((channels, k, k), np.float32)
    xs, ws = (x[0], w[0]) if channels == 1 else (x, w)
    assert _use_fft(_prepare(xs, ws, None, 1, "same", 1, "zeros", False)) is fft
