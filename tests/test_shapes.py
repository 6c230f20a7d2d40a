"""output_size and padding resolution against real output shapes; the shared checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convviz import shapes
from convviz.conv import conv2d, conv2d_step
from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.pool import pool2d, pool2d_step
from convviz.shapes import as_pair, output_size, resolve_padding


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(1, 30),
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    p=st.integers(0, 3),
    d=st.integers(1, 3),
)
def test_output_size_equals_conv_output_shape(n, k, s, p, d):
    size = output_size(n, k, s, p, d)
    x = np.zeros((n, 2))
    w = np.ones((k, 1))
    if size < 1:
        with pytest.raises(ValueError, match="larger than the padded input"):
            conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1))
    else:
        assert conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1)).shape[0] == size


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3))
def test_same_padding_gives_ceil_n_over_s(n, k, s, d):
    (top, bottom), _ = resolve_padding("same", (n, 1), (k, 1), (s, 1), (d, 1))
    assert bottom - top in (0, 1)  # the odd pixel goes after, as TensorFlow does
    assert output_size(n, k, s, (top, bottom), d) == math.ceil(n / s)


def test_full_padding_gives_every_overlap():
    assert resolve_padding("full", (5, 5), (3, 2), (1, 1), (2, 1)) == ((4, 4), (1, 1))
    assert output_size(5, 3, 1, 4, 2) == 5 + 2 * 2


def test_output_size_examples():
    assert output_size(5, 3) == 3  # the seed example
    assert output_size(28, 3) == 26  # Keras classic, first conv
    assert output_size(26, 2, 2) == 13  # ...and its pooling
    assert output_size(224, 7, 2, 3) == 112  # ResNet stem


@pytest.mark.parametrize(
    "args, match",
    [
        ((5, 0), "`k` must be >= 1"),
        ((5, 3, 0), "`stride` must be >= 1"),
        ((5, 3, 1, -1), "`padding` must be >= 0"),
        ((5, 3, 1, 0, 0), "`dilation` must be >= 1"),
        ((5.5, 3), "`n` must be an integer"),
        ((5, 3, 1, (1, 2, 3)), "`padding` must be an int or"),
    ],
)
def test_output_size_validation(args, match):
    with pytest.raises(ValueError, match=match):
        output_size(*args)


def test_as_pair_accepts_integral_floats_and_rejects_strings():
    assert as_pair(2.0, "stride") == (2, 2)
    with pytest.raises(ValueError, match="`stride` must be an integer or a pair"):
        as_pair("2", "stride")
    with pytest.raises(ValueError, match="`stride` must be an integer"):
        as_pair(True, "stride")


# ------------------------------------------------------------ the shared checks, one rule each
X = np.ones((4, 4))


def _code(fn, *args, **kwargs) -> CodedError:
    with pytest.raises(CodedError) as ei:
        fn(*args, **kwargs)
    return ei.value


@pytest.mark.parametrize(
    ("check", "args", "code", "words"),
    [
        (
            shapes.check_integer,
            (1.5, "stride", 1),
            "err.not_an_integer",
            "`stride` must be an integer",
        ),
        (shapes.check_integer, (True, "stride", 1), "err.not_an_integer", "got True"),
        (shapes.check_integer, (0, "stride", 1), "err.must_be_positive", "`stride` must be >= 1"),
        (
            shapes.check_integer,
            (-1, "padding", 0),
            "err.must_be_at_least",
            "`padding` must be >= 0",
        ),
        (
            shapes.as_pair,
            ((1, 2, 3), "dilation"),
            "err.int_or_pair",
            "`dilation` must be an integer or a pair",
        ),
        (
            shapes.check_choice,
            ("median", "mode", ("max", "avg")),
            "err.one_of",
            "`mode` must be one of 'max', 'avg', got 'median'",
        ),
        (
            shapes.check_bool,
            ("yes", "flip"),
            "err.not_bool",
            "`flip` must be True or False, got 'yes'",
        ),
        (
            shapes.check_image_ndim,
            (np.ones(3),),
            "err.input_ndim",
            "`x` must be 2-D (H, W) or 3-D (C, H, W), got shape (3,)",
        ),
        (
            shapes.check_real,
            (np.ones(2, complex), "x"),
            "err.not_real",
            "`x` must be a real numeric array, got dtype complex128",
        ),
        (
            shapes.check_not_empty,
            (np.ones((0, 2)), "x"),
            "err.empty",
            "`x` must not be empty, got shape (0, 2)",
        ),
        (
            shapes.check_finite,
            (np.array([1.0, np.inf]), "x"),
            "err.not_finite",
            "`x` has a non-finite value (inf) at index (1,)",
        ),
        (
            shapes.check_fits,
            ((5, 3), (4, 4), "size"),
            "err.window_too_large",
            "`size` (5, 3) is larger than the padded input (4x4)",
        ),
        (
            shapes.check_fits,
            ((5, 3), (4, 4), "w", "err.kernel_too_large"),
            "err.kernel_too_large",
            "kernel `w` (extent 5x3 with dilation) is larger than the padded input (4x4)",
        ),
        (
            shapes.check_index,
            (2, "channel", 2),
            "err.index_range",
            "`channel` must be in [0, 2), got 2",
        ),
        (
            shapes.check_index,
            (1.0, "channel", 2),
            "err.not_an_integer",
            "`channel` must be an integer",
        ),
        (
            shapes.flat_index,
            ("corner", (2, 2)),
            "err.index_spec",
            "`index` must be an int or (row, col)",
        ),
        (
            shapes.flat_index,
            ((2, 0), (2, 2)),
            "err.index_outside",
            "`index` (2, 0) is outside the output shape (2, 2)",
        ),
    ],
)
def test_each_rule_raises_one_coded_error_naming_the_parameter(check, args, code, words):
    err = _code(check, *args)
    assert isinstance(err, ValueError) and err.code == code
    assert words in str(err)
    assert translator("pt")(err.code, **err.params) != str(err)  # it has a Portuguese text


@pytest.mark.parametrize(
    ("conv_kwargs", "pool_kwargs", "code"),
    [
        (dict(x=np.ones(4)), dict(x=np.ones(4)), "err.input_ndim"),
        (dict(x=np.ones((0, 4))), dict(x=np.ones((0, 4))), "err.empty"),
        (dict(x=np.full((4, 4), np.nan)), dict(x=np.full((4, 4), np.nan)), "err.not_finite"),
        (dict(x=np.ones((4, 4), complex)), dict(x=np.ones((4, 4), complex)), "err.not_real"),
        (dict(x=X, stride=0), dict(x=X, stride=0), "err.must_be_positive"),
        (dict(x=X, stride=(1, 2, 3)), dict(x=X, stride=(1, 2, 3)), "err.int_or_pair"),
        (
            dict(x=X, w=np.ones((5, 5))),
            dict(x=X, size=5),
            ("err.kernel_too_large", "err.window_too_large"),
        ),
        (dict(x=X, pad_mode="mirror"), dict(x=X, mode="median"), "err.one_of"),
    ],
)
def test_conv_and_pool_share_their_checks(conv_kwargs, pool_kwargs, code):
    conv_kwargs = {"w": np.ones((3, 3)), **conv_kwargs}
    pool_kwargs = {"size": 2, **pool_kwargs}
    conv_code, pool_code = (code, code) if isinstance(code, str) else code
    assert _code(conv2d, **conv_kwargs).code == conv_code
    assert _code(pool2d, **pool_kwargs).code == pool_code


def test_steppers_share_the_index_rule():
    for fn, kw in ((conv2d_step, {"w": np.ones((3, 3))}), (pool2d_step, {"size": 2})):
        assert _code(fn, X, index=4, **kw).code == "err.index_range"
        assert _code(fn, X, index="corner", **kw).code == "err.index_spec"


def test_error_values_keep_their_precision():
    """A value that needs more than 3 decimals is shown in full, not rounded to 0."""
    assert str(_code(shapes.check_integer, 1e-5, "stride", 1)).endswith("got 1e-05")
    assert str(_code(shapes.check_integer, 0.5, "stride", 1)).endswith("got 0.5")
    pt = _code(shapes.check_integer, 2.5, "stride", 1)
    assert translator("pt")(pt.code, **pt.params).endswith("recebido 2,5")
