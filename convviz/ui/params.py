"""Pure state logic behind the pages (no streamlit here, so it is unit-tested directly).

- :func:`parse_grid` turns what ``st.data_editor`` returns into a validated
  float array with a message a person understands (``st.data_editor`` gives NaN
  for a cleared cell and does not enforce number limits on the server).
- :func:`keep_last_valid` keeps the previous kernel when an edit is invalid.
- :class:`ConvSettings` with :func:`encode_query` / :func:`decode_query`: the
  state worth sharing, written into the URL so a link reproduces the view.
- :func:`output_size_latex`: the output-size formula with the user's numbers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from convviz.shapes import PAD_MODES, output_size

__all__ = [
    "CLASSIC_INPUT",
    "CLASSIC_KERNEL",
    "KERNEL_MAX",
    "PADDING_CHOICES",
    "SOURCES",
    "ConvSettings",
    "decode_query",
    "encode_query",
    "fmt",
    "keep_last_valid",
    "normalise_sum",
    "output_size_latex",
    "parse_grid",
    "random_kernel",
]

# The classic worked example: 5x5 pixel values and the 4-neighbour kernel.
# Valid cross-correlation gives [[181, 303, 618], [115, 338, 605], [189, 351, 660]].
CLASSIC_INPUT = np.array(
    [
        [128, 97, 53, 201, 198],
        [35, 22, 25, 200, 195],
        [37, 24, 28, 197, 182],
        [33, 28, 92, 195, 179],
        [31, 40, 100, 192, 177],
    ],
    dtype=np.float64,
)
CLASSIC_KERNEL = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float64)
for _a in (CLASSIC_INPUT, CLASSIC_KERNEL):
    _a.setflags(write=False)

KERNEL_MAX = 15  # largest kernel side the editor offers
NUMBERS_MAX = 16  # largest numbers-mode input side (every cell stays readable)
PADDING_CHOICES = ("valid", "same", "full", "number")
SOURCES = ("sample", "upload", "numbers")
COLOURS = ("gray", "rgb")
_ACTIVATIONS = ("none", "relu", "leaky_relu", "sigmoid", "tanh")


def fmt(v: float, digits: int = 6) -> str:
    """Short human form of a number: ``181.0 -> '181'``, ``0.123456789 -> '0.123457'``.

    >>> fmt(181.0), fmt(-0.5), fmt(1e-20), fmt(2.0000000001)
    ('181', '-0.5', '1e-20', '2')
    """
    s = f"{float(v):.{digits}g}"
    return "0" if s == "-0" else s


def _cell(value: object, name: str, r: int, c: int) -> float:
    where = f"row {r + 1}, column {c + 1}"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"`{name}` cell at {where} is empty: type a number.")
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(
                f"`{name}` cell at {where} is not a number (got {value.strip()[:20]!r})."
            ) from None
    if not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` cell at {where} is not a number.")
    v = float(value)
    if math.isnan(v):
        raise ValueError(f"`{name}` cell at {where} is empty: type a number.")
    if math.isinf(v):
        raise ValueError(f"`{name}` cell at {where} must be a finite number.")
    return v


def parse_grid(values: object, name: str = "kernel", *, max_side: int = KERNEL_MAX) -> np.ndarray:
    """Validate an edited grid (DataFrame, array or nested lists) into float64 ``(rows, cols)``.

    One ``ValueError`` per rule, naming the grid and the cell, so the page can
    show it as is.

    >>> parse_grid([[0, "1"], [2.5, 3]]).tolist()
    [[0.0, 1.0], [2.5, 3.0]]
    >>> parse_grid([[0, None]])
    Traceback (most recent call last):
    ...
    ValueError: `kernel` cell at row 1, column 2 is empty: type a number.
    """
    if hasattr(values, "to_numpy"):
        grid = values.to_numpy(dtype=object)  # DataFrame from st.data_editor
    else:
        grid = np.asarray(values, dtype=object)
    if grid.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D grid of numbers, got {grid.ndim}-D")
    rows, cols = grid.shape
    if not (1 <= rows <= max_side and 1 <= cols <= max_side):
        raise ValueError(
            f"`{name}` must be between 1x1 and {max_side}x{max_side}, got {rows}x{cols}"
        )
    out = np.empty((rows, cols), dtype=np.float64)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = _cell(grid[r, c], name, r, c)
    return out


def keep_last_valid(
    candidate: object, last: np.ndarray, name: str = "kernel", *, max_side: int = KERNEL_MAX
) -> tuple[np.ndarray, str | None]:
    """``(parsed candidate, None)``, or ``(last, message)`` when the candidate is invalid.

    >>> keep_last_valid([[1, float("nan")]], np.ones((1, 2)))[1]
    '`kernel` cell at row 1, column 2 is empty: type a number. Using the last valid kernel.'
    """
    try:
        return parse_grid(candidate, name, max_side=max_side), None
    except ValueError as exc:
        return last, f"{exc} Using the last valid {name}."


def random_kernel(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random integer weights in [-2, 2] (easy to read and add up by hand).

    >>> random_kernel((2, 3), np.random.default_rng(0)).shape
    (2, 3)
    """
    return rng.integers(-2, 3, size=shape).astype(np.float64)


def normalise_sum(kernel: np.ndarray) -> np.ndarray:
    """Scale a kernel so its weights sum to 1 (a blur keeps brightness).

    >>> normalise_sum(np.array([[1.0, 3.0]])).tolist()
    [[0.25, 0.75]]
    """
    k = np.asarray(kernel, dtype=np.float64)
    total = k.sum()
    if abs(total) < 1e-12:
        raise ValueError(
            "The kernel's weights sum to 0 (an edge detector), so it cannot be scaled to sum 1."
        )
    return k / total


@dataclass(frozen=True)
class ConvSettings:
    """What the Convolution page shares through its URL."""

    kernel: np.ndarray = field(default_factory=lambda: CLASSIC_KERNEL.copy())  # (kh, kw) or (3, ..)
    bias: float = 0.0
    stride: int = 1
    padding: str | int = "valid"  # "valid", "same", "full" or an int >= 0
    pad_mode: str = "zeros"
    dilation: int = 1
    flip: bool = False
    source: str = "numbers"  # one of SOURCES: the classic worked example opens first
    sample: str = "Cameraman"
    colour: str = "gray"
    activation: str = "none"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConvSettings):
            return NotImplemented
        return _strings(self) == _strings(other)

    __hash__ = None  # type: ignore[assignment]  # mutable array inside


def _encode_kernel(k: np.ndarray) -> str:
    # rows with ",", rows joined by ";", channels by "|": "0,1,0;1,0,1;0,1,0"
    k3 = k[None] if k.ndim == 2 else k
    return "|".join(";".join(",".join(fmt(v, 8) for v in row) for row in ch) for ch in k3)


def _decode_kernel(text: str) -> np.ndarray:
    channels = [
        parse_grid([row.split(",") for row in ch.split(";")], "kernel") for ch in text.split("|")
    ]
    if len(channels) not in (1, 3):
        raise ValueError("`kernel` must have 1 or 3 channels")
    if len({c.shape for c in channels}) != 1:
        raise ValueError("`kernel` channels must all have the same size")
    return channels[0] if len(channels) == 1 else np.stack(channels)


def _strings(s: ConvSettings) -> dict[str, str]:
    return {
        "kernel": _encode_kernel(s.kernel),
        "bias": fmt(s.bias, 8),
        "stride": str(s.stride),
        "padding": str(s.padding),
        "pad_mode": s.pad_mode,
        "dilation": str(s.dilation),
        "flip": "1" if s.flip else "0",
        "source": s.source,
        "sample": s.sample,
        "colour": s.colour,
        "activation": s.activation,
    }


def encode_query(s: ConvSettings) -> dict[str, str]:
    """Settings -> ``st.query_params`` strings (defaults left out, so links stay short).

    >>> encode_query(ConvSettings(stride=2, padding=1))
    {'stride': '2', 'padding': '1'}
    """
    default = _strings(ConvSettings())
    return {k: v for k, v in _strings(s).items() if v != default[k]}


def _int_in(text: str, name: str, lo: int, hi: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"`{name}` must be an integer, got {text[:20]!r}") from None
    if not lo <= v <= hi:
        raise ValueError(f"`{name}` must be between {lo} and {hi}, got {v}")
    return v


def decode_query(
    query: Mapping[str, str | list[str]], samples: Mapping[str, str] | None = None
) -> tuple[ConvSettings, list[str]]:
    """``st.query_params`` -> settings; a bad value falls back to its default with a message.

    A hand-edited or truncated link must never crash the page.

    >>> s, problems = decode_query({"stride": "3", "dilation": "zero"})
    >>> s.stride, s.dilation, problems
    (3, 1, ["Ignored the link's `dilation`: `dilation` must be an integer, got 'zero'"])
    """
    s = ConvSettings()
    problems: list[str] = []

    def get(key: str) -> str | None:
        v = query.get(key)
        if isinstance(v, list):
            v = v[-1] if v else None
        return None if v is None else str(v)

    def choice(text: str, name: str, options) -> str:
        if text not in options:
            raise ValueError(f"`{name}` must be one of {', '.join(options)}, got {text[:30]!r}")
        return text

    parsers = {
        "kernel": _decode_kernel,
        "bias": lambda t: _cell(t, "bias", 0, 0),
        "stride": lambda t: _int_in(t, "stride", 1, 16),
        "padding": lambda t: t if t in ("valid", "same", "full") else _int_in(t, "padding", 0, 64),
        "pad_mode": lambda t: choice(t, "pad_mode", tuple(PAD_MODES)),
        "dilation": lambda t: _int_in(t, "dilation", 1, 8),
        "flip": lambda t: choice(t, "flip", ("0", "1")) == "1",
        "source": lambda t: choice(t, "source", SOURCES),
        "sample": lambda t: choice(t, "sample", tuple(samples)) if samples else t,
        "colour": lambda t: choice(t, "colour", COLOURS),
        "activation": lambda t: choice(t, "activation", _ACTIVATIONS),
    }
    for key, parse in parsers.items():
        text = get(key)
        if text is None:
            continue
        try:
            s = replace(s, **{key: parse(text)})
        except ValueError as exc:
            problems.append(f"Ignored the link's `{key}`: {exc}")
    return s, problems


def output_size_latex(
    n: int, k: int, stride: int, pad: tuple[int, int], dilation: int, axis: str = "H"
) -> str:
    """The output-size formula for one axis, filled in with the user's numbers (LaTeX).

    >>> print(output_size_latex(5, 3, 1, (0, 0), 1))
    H_{out} = \\left\\lfloor \\frac{5 + 0 + 0 - 1\\cdot(3-1) - 1}{1} \\right\\rfloor + 1 = 3
    """
    out = output_size(n, k, stride, pad, dilation)
    return (
        f"{axis}_{{out}} = \\left\\lfloor \\frac{{{n} + {pad[0]} + {pad[1]} - "
        f"{dilation}\\cdot({k}-1) - 1}}{{{stride}}} \\right\\rfloor + 1 = {out}"
    )
