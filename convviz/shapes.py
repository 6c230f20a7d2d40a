"""Output-size arithmetic and every argument check shared by the ops.

One rule per function, each raising one :class:`~convviz.errors.CodedError`
(a ``ValueError``) that names the parameter it is about, in the manner of
``skimage.util.view_as_windows``; :mod:`convviz.conv` and :mod:`convviz.pool`
call them in order:

- :func:`check_integer`, :func:`as_pair`: whole numbers, at least a minimum;
- :func:`check_input`: a 2-D/3-D (:func:`check_image_ndim`), real
  (:func:`check_real`), non-empty (:func:`check_not_empty`), finite
  (:func:`check_finite`) array;
- :func:`check_choice`, :func:`check_bool`: one of a few names, True or False;
- :func:`check_fits`: the (dilated) window fits in the padded input;
- :func:`check_index`, :func:`flat_index`: a channel, a stepper position;
- :func:`check_magnitude`: a value a person or a link sets lies within ``VALUE_MAX``;
- :func:`check_result`: a computed map is finite (``err.overflow`` otherwise).

Documented ranges of what a person or a link can set on the Convolution and
Pooling pages (the pages' widgets and URL decoding use these constants):

- kernel cells, input cells, bias: ``|v| <= VALUE_MAX`` (1e6): a 15x15x3 kernel
  of such values on such inputs sums to under 1e15, far inside float32;
- stride 1..``STRIDE_MAX`` (16), padding 0..``PADDING_MAX`` (64), dilation
  1..``DILATION_MAX`` (8), kernel side 1..15, numbers-mode input side 1..16,
  pooling window and stride 1..``WINDOW_MAX`` (8), padding 0..half the window,
  leaky-ReLU slope 0..``SLOPE_MAX`` (0.5).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Sequence

import numpy as np

from convviz.errors import CodedError

__all__ = [
    "DILATION_MAX",
    "PADDING_MAX",
    "PAD_MODES",
    "SLOPE_MAX",
    "STRIDE_MAX",
    "VALUE_MAX",
    "WINDOW_MAX",
    "as_pair",
    "check_at_most",
    "check_bool",
    "check_choice",
    "check_finite",
    "check_fits",
    "check_image_ndim",
    "check_index",
    "check_input",
    "check_integer",
    "check_magnitude",
    "check_not_empty",
    "check_real",
    "check_result",
    "first_nonfinite",
    "flat_index",
    "output_size",
    "resolve_padding",
    "shown",
]

VALUE_MAX = 1e6  # largest |kernel cell|, |input cell| and |bias| a person or a link may set
STRIDE_MAX = 16
PADDING_MAX = 64
DILATION_MAX = 8
WINDOW_MAX = 8  # pooling window side
SLOPE_MAX = 0.5  # leaky-ReLU slope on the Pooling page

# Our pad-mode names -> numpy.pad modes (and the scipy.ndimage names in comments).
PAD_MODES: dict[str, str] = {
    "zeros": "constant",  # scipy: constant, cval=0
    "reflect": "reflect",  # scipy: mirror   (d c b | a b c d | c b a)
    "replicate": "edge",  # scipy: nearest  (a a a | a b c d | d d d)
    "circular": "wrap",  # scipy: wrap     (b c d | a b c d | a b c)
}

Pair = tuple[int, int]
Padding = int | Sequence[int] | str


def shown(value: object) -> object:
    """``value`` as an error parameter: a number stays a number, anything else its repr.

    Numbers are written the reader's way by the catalogue (``0,5`` in pt-BR),
    up to 3 decimals, so a number that needs more is handed over as text.

    >>> shown(2), shown(0.5), shown(1e-05), shown("x"), shown(True)
    (2, 0.5, '1e-05', "'x'", 'True')
    """
    if isinstance(value, bool | np.bool_):
        return repr(bool(value))
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v) or (abs(v) < 1e15 and round(v, 3) == v):
            return v
        return f"{v:.6g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _choices(choices: Collection[object]) -> str:
    return ", ".join(repr(c) for c in choices)


# --------------------------------------------------------------------------- numbers


def check_integer(value: object, name: str, minimum: int) -> int:
    """``value`` as an int (an integral float is accepted), at least ``minimum``.

    >>> check_integer(3.0, "stride", 1)
    3
    """
    if isinstance(value, bool | np.bool_):
        raise CodedError("err.not_an_integer", name=name, value=shown(value))
    if not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise CodedError("err.not_an_integer", name=name, value=shown(value))
    value = int(value)
    if value < minimum:
        if minimum == 1:
            raise CodedError("err.must_be_positive", name=name, value=value)
        raise CodedError("err.must_be_at_least", name=name, minimum=minimum, value=value)
    return value


def as_pair(value: int | Sequence[int], name: str, minimum: int = 1) -> Pair:
    """Return ``value`` as a validated ``(rows, cols)`` pair of ints.

    >>> as_pair(2, "stride")
    (2, 2)
    >>> as_pair((1, 3), "dilation")
    (1, 3)
    """
    if isinstance(value, str):
        raise CodedError("err.int_or_pair", name=name, value=shown(value))
    if isinstance(value, Sequence | np.ndarray):
        items = list(value)
        if len(items) != 2:
            raise CodedError("err.int_or_pair", name=name, value=shown(value))
        return (check_integer(items[0], name, minimum), check_integer(items[1], name, minimum))
    v = check_integer(value, name, minimum)
    return (v, v)


def check_choice(value: object, name: str, choices: Collection[str]) -> str:
    """``value`` is one of ``choices`` (names, compared exactly).

    >>> check_choice("max", "mode", ("max", "avg"))
    'max'
    """
    if not isinstance(value, str) or value not in choices:
        raise CodedError("err.one_of", name=name, choices=_choices(choices), value=shown(value))
    return value


def check_bool(value: object, name: str) -> bool:
    """``value`` is True or False (a NumPy bool too), not merely truthy."""
    if not isinstance(value, bool | np.bool_):
        raise CodedError("err.not_bool", name=name, value=shown(value))
    return bool(value)


# --------------------------------------------------------------------------- arrays


def check_image_ndim(a: np.ndarray, name: str = "x") -> None:
    """``a`` is ``(H, W)`` or ``(C, H, W)``."""
    if a.ndim not in (2, 3):
        raise CodedError("err.input_ndim", name=name, shape=str(a.shape))


def check_real(a: np.ndarray, name: str) -> None:
    """``a`` holds real numbers (bool, integers or floats; not complex, text or objects)."""
    if a.dtype.kind not in "biuf":
        raise CodedError("err.not_real", name=name, dtype=str(a.dtype))


def check_not_empty(a: np.ndarray, name: str) -> None:
    """``a`` has at least one element."""
    if a.size == 0:
        raise CodedError("err.empty", name=name, shape=str(a.shape))


def check_finite(a: np.ndarray, name: str) -> None:
    """``a`` holds no NaN or inf; the error names the first bad cell."""
    idx = first_nonfinite(a)
    if idx is not None:
        raise CodedError("err.not_finite", name=name, value=shown(a[idx]), index=str(idx))


def check_magnitude(value: float, name: str, limit: float = VALUE_MAX) -> float:
    """``value`` is a finite number with ``|value| <= limit`` (a set value's documented range).

    >>> check_magnitude(-2.5, "bias")
    -2.5
    >>> check_magnitude(1e308, "bias")
    Traceback (most recent call last):
    ...
    convviz.errors.CodedError: `bias` must lie between -1,000,000 and 1,000,000
    """
    v = float(value)
    if not math.isfinite(v) or abs(v) > limit:
        raise CodedError("err.magnitude", name=name, limit=limit)
    return v


def check_at_most(value: object, name: str, minimum: int, maximum: int) -> int:
    """A whole number from ``minimum`` to ``maximum`` (a set value's documented range).

    >>> check_at_most(9, "size", 1, 8)
    Traceback (most recent call last):
    ...
    convviz.errors.CodedError: `size` must be at most 8, got 9
    """
    v = check_integer(value, name, minimum)
    if v > maximum:
        raise CodedError("err.at_most", name=name, maximum=maximum, value=v)
    return v


def check_result(a: np.ndarray, name: str) -> np.ndarray:
    """A computed map holds no NaN or inf: finite inputs that overflowed are an error.

    One pass of ``np.isfinite(a).all()``: 0.3 ms on a 1-MP float32 map here (0.6 ms
    float64), against 8.3 ms for a 3x3 direct conv2d of that size (about 3.5%).
    """
    if not np.isfinite(a).all():
        raise CodedError("err.overflow", name=name)
    return a


def check_input(x: object, name: str = "x") -> np.ndarray:
    """The input rules of every op, in order: 2-D or 3-D, real, not empty, finite.

    >>> check_input([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    a = np.asarray(x)
    check_image_ndim(a, name)
    check_real(a, name)
    check_not_empty(a, name)
    check_finite(a, name)
    return a


def check_fits(extent: Pair, padded: Pair, name: str, code: str = "err.window_too_large") -> None:
    """The window (``extent`` rows x cols, dilation included) fits in the padded input.

    ``code`` words the refusal for the op: ``err.kernel_too_large`` (a
    convolution kernel, with dilation) or ``err.window_too_large`` (a pooling window).

    >>> check_fits((3, 3), (5, 5), "w")
    """
    (eh, ew), (hp, wp) = extent, padded
    if eh > hp or ew > wp:
        shown_extent = f"{eh}x{ew}" if code == "err.kernel_too_large" else str((eh, ew))
        raise CodedError(code, name=name, extent=shown_extent, padded=f"{hp}x{wp}")


def check_index(value: object, name: str, stop: int) -> int:
    """``value`` is an integer in ``[0, stop)`` (a channel number).

    >>> check_index(1, "channel", 2)
    1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CodedError("err.not_an_integer", name=name, value=shown(value))
    if not 0 <= int(value) < stop:
        raise CodedError("err.index_range", name=name, stop=stop, value=int(value))
    return int(value)


def output_size(
    n: int,
    k: int,
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int = 1,
) -> int:
    """Length of a convolution or pooling output along one axis.

    Parameters
    ----------
    n : int
        Input length.
    k : int
        Kernel (or pooling window) length.
    stride, dilation : int
        Step between windows; spacing between kernel taps.
    padding : int or (int, int)
        Padding on each side, or ``(before, after)`` for asymmetric padding.

    Returns
    -------
    int
        The output length, which may be 0 or negative when the (dilated)
        kernel does not fit; callers that need a map check ``>= 1``.

    Notes
    -----
    ``out = floor((n + 2p - d(k-1) - 1) / s) + 1``

    Examples
    --------
    >>> output_size(5, 3)
    3
    >>> output_size(28, 3, stride=2, padding=1)
    14
    >>> output_size(7, 3, dilation=2)
    3
    """
    n = check_integer(n, "n", 0)
    k = check_integer(k, "k", 1)
    s = check_integer(stride, "stride", 1)
    d = check_integer(dilation, "dilation", 1)
    if isinstance(padding, Sequence):
        if len(padding) != 2:
            raise CodedError("err.padding_pair", value=shown(padding))
        total = check_integer(padding[0], "padding", 0) + check_integer(padding[1], "padding", 0)
    else:
        total = 2 * check_integer(padding, "padding", 0)
    return (n + total - d * (k - 1) - 1) // s + 1


def _resolve_axis(n: int, k: int, s: int, d: int, how: str) -> Pair:
    span = d * (k - 1) + 1  # extent of the dilated kernel
    if how == "valid":
        return (0, 0)
    if how == "full":
        return (span - 1, span - 1)
    # "same": output = ceil(n / s); TensorFlow puts the odd pixel after.
    out = math.ceil(n / s)
    total = max((out - 1) * s + span - n, 0)
    return (total // 2, total - total // 2)


def resolve_padding(
    padding: Padding,
    in_shape: Pair,
    k_shape: Pair,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
) -> tuple[Pair, Pair]:
    """Turn a padding spec into explicit ``((top, bottom), (left, right))``.

    ``padding`` is an int, a ``(ph, pw)`` pair, or one of ``"valid"``,
    ``"same"`` (output = ceil(input / stride), the odd pixel going after, as
    TensorFlow does) and ``"full"`` (every partial overlap).

    >>> resolve_padding("same", (5, 5), (3, 3))
    ((1, 1), (1, 1))
    >>> resolve_padding("same", (6, 6), (2, 2))
    ((0, 1), (0, 1))
    >>> resolve_padding((1, 2), (5, 5), (3, 3))
    ((1, 1), (2, 2))
    """
    if isinstance(padding, str):
        how = padding.lower()
        if how not in ("valid", "same", "full"):
            raise CodedError("err.padding_spec", value=shown(padding))
        return (
            _resolve_axis(in_shape[0], k_shape[0], stride[0], dilation[0], how),
            _resolve_axis(in_shape[1], k_shape[1], stride[1], dilation[1], how),
        )
    ph, pw = as_pair(padding, "padding", minimum=0)
    return ((ph, ph), (pw, pw))


def first_nonfinite(a: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/inf in ``a`` (raster order), or ``None``.

    >>> first_nonfinite(np.array([[1.0, np.nan], [0.0, 2.0]]))
    (0, 1)
    >>> first_nonfinite(np.ones(3)) is None
    True
    """
    if a.dtype.kind not in "fc" or a.size == 0:
        return None
    # min/max propagate NaN and expose inf: two fast reductions instead of a
    # full boolean mask on the common, clean path.
    if np.isfinite(a.min()) and np.isfinite(a.max()):
        return None
    bad = ~np.isfinite(a)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape))


def flat_index(index: object, out_shape: tuple[int, int]) -> tuple[int, int]:
    """Validate a stepper position: ``(row, col)`` or a flat raster index.

    >>> flat_index(4, (2, 3)), flat_index((1, 0), (2, 3))
    ((1, 1), (1, 0))
    """
    ho, wo = out_shape
    if isinstance(index, numbers.Integral) and not isinstance(index, bool):
        if not 0 <= int(index) < ho * wo:
            raise CodedError("err.index_range", name="index", stop=ho * wo, value=int(index))
        oy, ox = divmod(int(index), wo)
        return (oy, ox)
    try:
        oy, ox = (int(v) for v in index)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise CodedError("err.index_spec", value=shown(index)) from None
    if not (0 <= oy < ho and 0 <= ox < wo):
        raise CodedError("err.index_outside", index=str((oy, ox)), shape=str((ho, wo)))
    return (oy, ox)
