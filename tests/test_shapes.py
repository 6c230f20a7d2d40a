"""output_size and padding resolution against real output shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convviz.conv import conv2d
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
