"""Element-wise activations applied to feature maps, and their display names.

Each takes any real array and returns a float array of the same shape. The
names people read are catalogue entries ``act.<name>`` (``core`` domain), so
every page shows the same words in either language: :func:`activation_label`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from convviz.errors import CodedError
from convviz.i18n import Translator, translator
from convviz.shapes import check_real, check_result, shown

__all__ = [
    "ACTIVATIONS",
    "LEAKY_SLOPE",
    "activation_label",
    "identity",
    "leaky_relu",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]

#: Default slope of :func:`leaky_relu` (the one ``ACTIVATIONS["leaky_relu"]`` uses).
LEAKY_SLOPE = 0.01


def _float(x: np.ndarray | float) -> np.ndarray:
    a = np.asarray(x)
    check_real(a, "x")
    return a.astype(np.result_type(a.dtype, np.float32), copy=False)


def identity(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as floats, unchanged.

    >>> identity([1, -2]).tolist()
    [1.0, -2.0]
    """
    return _float(x).copy()


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)``.

    >>> relu([-2.0, 0.0, 3.0]).tolist()
    [0.0, 0.0, 3.0]
    """
    return np.maximum(_float(x), 0)


@np.errstate(over="ignore", invalid="ignore")  # overflow is checked on the result
def leaky_relu(x: np.ndarray, alpha: float = LEAKY_SLOPE) -> np.ndarray:
    """``x`` where positive, ``alpha * x`` elsewhere.

    >>> leaky_relu([-2.0, 3.0], alpha=0.1).tolist()
    [-0.2, 3.0]
    """
    if not np.isfinite(alpha) or alpha < 0:
        raise CodedError("err.finite_non_negative", name="alpha", value=shown(alpha))
    a = _float(x)
    # A slope above 1 can overflow: -3e38 * 2 is -inf in float32. The other
    # activations cannot (finite in, |out| <= |in| or bounded).
    return check_result(np.where(a > 0, a, a * a.dtype.type(alpha)), "leaky_relu")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic ``1 / (1 + exp(-x))``, computed without overflow.

    >>> sigmoid([0.0]).tolist()
    [0.5]
    >>> float(sigmoid(np.array([-1000.0]))[0])
    0.0
    """
    a = _float(x)
    # exp of a non-positive number never overflows.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent.

    >>> tanh([0.0]).tolist()
    [0.0]
    """
    return np.tanh(_float(x))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` (max subtracted first, so large inputs are safe).

    >>> softmax([1000.0, 1000.0]).tolist()
    [0.5, 0.5]
    """
    a = _float(x)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": identity,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
}


def activation_label(
    name: str, t: Translator | None = None, *, slope: float | None = None, raw: bool = False
) -> str:
    """The display name of an activation: the catalogue entry ``act.<name>``.

    Parameters
    ----------
    name : str
        A key of :data:`ACTIVATIONS`, or ``"softmax"``.
    t : Translator, optional
        The reader's language; English when None.
    slope : float, optional
        For ``"leaky_relu"``: write the slope in the name (``act.leaky_relu.slope``).
    raw : bool
        For ``"none"``: say that the map is the raw one (``act.none.raw``).

    >>> activation_label("relu"), activation_label("leaky_relu", slope=0.01)
    ('ReLU', 'Leaky ReLU (0.01)')
    >>> activation_label("leaky_relu", translator("pt"), slope=0.2)
    'Leaky ReLU (0,2)'
    >>> activation_label("none", translator("pt"), raw=True)
    'Nenhuma (mapa de características bruto)'
    """
    t = t or translator("en")
    if name == "leaky_relu" and slope is not None:
        return t("act.leaky_relu.slope", slope=shown(slope))
    if name == "none" and raw:
        return t("act.none.raw")
    return t(f"act.{name}")
