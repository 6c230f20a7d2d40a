"""Pure state logic behind the Convolution page (no streamlit here, so it is unit-tested directly).

- :func:`parse_grid` turns a grid of cells into a validated float array;
  :func:`merge_edits` applies a grid editor's pending edits to the array it was
  mounted with (``st.data_editor`` gives NaN or None for a cleared cell and does
  not enforce number limits on the server: every edited cell is checked here).
- :func:`resized`, :func:`resized_keeping`, :func:`random_kernel`, :func:`normalise_sum`:
  the new kernels the page's buttons make (a resize keeps the centred values, and
  the values of larger sizes it had: shrink to 1x1 and back gives the same kernel).
- :class:`ConvSettings` with :func:`encode_query` / :func:`decode_query`: the
  state worth sharing, written into the URL so a link reproduces the view.
- :func:`output_size_latex`: the output-size formula with the user's numbers;
  :func:`sig`: a number to a few significant digits, written the locale's way.

Errors a person may see are :class:`~convviz.errors.CodedError` with keys of the
``convolution`` catalogue (``conv.grid.*``, ``conv.url.*``, ``conv.kernel.*``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np

from convviz.errors import CodedError
from convviz.i18n import Translator
from convviz.shapes import DILATION_MAX, PAD_MODES, PADDING_MAX, STRIDE_MAX, VALUE_MAX, output_size

__all__ = [
    "ACTIVATION_NAMES",
    "CLASSIC_INPUT",
    "CLASSIC_KERNEL",
    "KERNEL_MAX",
    "NUMBERS_MAX",
    "PADDING_CHOICES",
    "QUERY_KEYS",
    "SOURCES",
    "CellProblem",
    "ConvSettings",
    "decode_query",
    "encode_query",
    "fmt",
    "merge_edits",
    "normalise_sum",
    "output_size_latex",
    "parse_grid",
    "random_kernel",
    "resized",
    "resized_keeping",
    "sig",
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
ACTIVATION_NAMES = ("none", "relu", "leaky_relu", "sigmoid", "tanh")
DEFAULT_SAMPLE = "Cameraman"  # i18n: not text (a SAMPLES key)


def fmt(v: float, digits: int = 6) -> str:
    """Short locale-independent form of a number, for URLs: ``181.0 -> '181'``.

    >>> fmt(181.0), fmt(-0.5), fmt(1e-20), fmt(2.0000000001)
    ('181', '-0.5', '1e-20', '2')
    """
    s = f"{float(v):.{digits}g}"
    return "0" if s == "-0" else s


def sig(t: Translator, v: float, digits: int = 6) -> str:
    """``v`` to ``digits`` significant digits (at most 12 decimals), the locale's way.

    What a person reads: ``-0`` reads as ``0``, big values keep their integer part.

    >>> from convviz.i18n import translator
    >>> en, pt = translator("en"), translator("pt")
    >>> sig(en, 181.0), sig(pt, 0.123456789), sig(en, -1e-13), sig(en, 1234567.0)
    ('181', '0,123457', '0', '1,234,567')
    """
    v = float(v)
    if not math.isfinite(v) or v == 0:
        return t.num(0.0 if v == 0 else v, 0)
    decimals = min(12, max(0, digits - 1 - math.floor(math.log10(abs(v)))))
    s = t.num(v, decimals, fixed=False)
    return s[1:] if s.startswith("-") and not s.strip("-0.,") else s


# --------------------------------------------------------------------------- grids


def _cell(value: object, r: int, c: int, limit: float | None = VALUE_MAX) -> float:
    """One cell of a grid as a finite float within ``±limit`` (None: any finite);
    ``r``, ``c`` count from 0."""
    where = {"row": r + 1, "col": c + 1}
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CodedError("conv.grid.empty", **where)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise CodedError("conv.grid.not_number", **where) from None
    if not isinstance(value, numbers.Real):
        raise CodedError("conv.grid.not_number", **where)
    v = float(value)
    if math.isnan(v):
        raise CodedError("conv.grid.empty", **where)
    if math.isinf(v):
        raise CodedError("conv.grid.not_finite", **where)
    if limit is not None and abs(v) > limit:  # documented range (convviz.shapes)
        raise CodedError("conv.grid.too_large", limit=limit, **where)
    return v


def parse_grid(values: object, *, max_side: int = KERNEL_MAX) -> np.ndarray:
    """Validate a grid (DataFrame, array or nested lists) into float64 ``(rows, cols)``.

    One coded ``ValueError`` per rule, naming the cell (never quoting its text,
    which may come from a link).

    >>> parse_grid([[0, "1"], [2.5, 3]]).tolist()
    [[0.0, 1.0], [2.5, 3.0]]
    >>> parse_grid([[0, None]])
    Traceback (most recent call last):
    ...
    convviz.errors.CodedError: The cell at row 1, column 2 is empty: type a number.
    """
    if hasattr(values, "to_numpy"):
        grid = values.to_numpy(dtype=object)  # DataFrame from st.data_editor
    else:
        grid = np.asarray(values, dtype=object)
    if grid.ndim != 2:
        raise CodedError("conv.grid.not_2d", ndim=grid.ndim)
    rows, cols = grid.shape
    if not (1 <= rows <= max_side and 1 <= cols <= max_side):
        raise CodedError("conv.grid.size", max=max_side, rows=rows, cols=cols)
    out = np.empty((rows, cols), dtype=np.float64)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = _cell(grid[r, c], r, c)
    return out


@dataclass(frozen=True)
class CellProblem:
    """An edited cell that does not parse: it keeps the value it had (``kept``)."""

    error: CodedError  # conv.grid.* with row and col (from 1)
    kept: float


def merge_edits(
    base: np.ndarray, edits: object, *, limit: float | None = VALUE_MAX
) -> tuple[np.ndarray, list[CellProblem]]:
    """``base`` ``(rows, cols)`` with a grid editor's pending edits applied.

    ``edits`` is ``st.data_editor``'s widget state, ``{"edited_rows": {row: {column:
    value}}}`` with columns named ``"0"``, ``"1"``, ...; None means no edits. Only the
    edited cells are parsed; one that does not parse keeps its ``base`` value and is
    reported, as is one beyond ``±limit`` (None: the caller applies its own bound,
    as the Inside page does with ±1000). Edits outside ``base`` (a stale state) are ignored.

    >>> a, problems = merge_edits(np.zeros((2, 2)), {"edited_rows": {1: {"0": 5}, 0: {"1": None}}})
    >>> a.tolist(), [(p.error.code, p.kept) for p in problems]
    ([[0.0, 0.0], [5.0, 0.0]], [('conv.grid.empty', 0.0)])
    """
    out = np.array(base, dtype=np.float64)
    problems: list[CellProblem] = []
    rows = edits.get("edited_rows", {}) if isinstance(edits, Mapping) else {}
    for r_key, cells in sorted(rows.items(), key=lambda kv: int(kv[0])):
        r = int(r_key)
        for c_key, v in sorted(cells.items(), key=lambda kv: int(kv[0])):
            c = int(c_key)
            if not (0 <= r < out.shape[0] and 0 <= c < out.shape[1]):
                continue
            try:
                out[r, c] = _cell(v, r, c, limit)
            except CodedError as exc:
                problems.append(CellProblem(exc, float(base[r, c])))
    return out, problems


def resized(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Centre crop / zero-pad the last two axes to ``(rows, cols)`` (keeps the middle).

    >>> resized(np.ones((3, 3)), 5, 1)[:, 0].tolist()
    [0.0, 1.0, 1.0, 1.0, 0.0]
    """
    out = np.zeros((*a.shape[:-2], rows, cols))
    h, w = min(rows, a.shape[-2]), min(cols, a.shape[-1])
    sy, sx = (a.shape[-2] - h) // 2, (a.shape[-1] - w) // 2
    dy, dx = (rows - h) // 2, (cols - w) // 2
    out[..., dy : dy + h, dx : dx + w] = a[..., sy : sy + h, sx : sx + w]
    return out


def resized_keeping(
    a: np.ndarray, rows: int, cols: int, canvas: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``a`` to ``(rows, cols)`` keeping every value it had at a larger size.

    The rule: ``canvas`` remembers the grid at the largest size it has had since it
    was last set (a preset, Random, a link). Resizing pastes ``a`` centred onto the
    canvas (what the user typed wins), grows the canvas if the new size is larger, and
    returns the canvas's centred ``(rows, cols)`` crop, with that canvas. So shrinking
    to 1x1 and growing back gives the original kernel, and only cells no size has had
    are 0. Centring is :func:`resized`'s (offset ``(big - small) // 2``) at every step;
    a ``canvas`` of another shape on the leading axes (a per-channel switch) is dropped.

    >>> k = np.arange(25.0).reshape(5, 5)
    >>> one, canvas = resized_keeping(k, 1, 1)
    >>> one.tolist(), np.array_equal(resized_keeping(one, 5, 5, canvas)[0], k)
    ([[12.0]], True)
    """
    a = np.asarray(a, dtype=np.float64)
    if (
        canvas is None
        or canvas.shape[:-2] != a.shape[:-2]
        or any(c < s for c, s in zip(canvas.shape[-2:], a.shape[-2:], strict=True))
    ):
        canvas = a
    canvas = np.array(canvas, dtype=np.float64)
    h, w = a.shape[-2:]
    dy, dx = (canvas.shape[-2] - h) // 2, (canvas.shape[-1] - w) // 2
    canvas[..., dy : dy + h, dx : dx + w] = a
    big = (max(rows, canvas.shape[-2]), max(cols, canvas.shape[-1]))
    canvas = resized(canvas, *big)
    canvas.setflags(write=False)
    return resized(canvas, rows, cols), canvas


def random_kernel(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random integer weights in [-2, 2] (easy to read and add up by hand).

    >>> random_kernel((2, 3), np.random.default_rng(0)).shape
    (2, 3)
    """
    return rng.integers(-2, 3, size=shape).astype(np.float64)


def normalise_sum(kernel: np.ndarray) -> np.ndarray:
    """Scale a kernel so its weights sum to 1 (a blur keeps brightness); per channel
    for a ``(C, kh, kw)`` kernel.

    >>> normalise_sum(np.array([[1.0, 3.0]])).tolist()
    [[0.25, 0.75]]
    """
    k = np.asarray(kernel, dtype=np.float64)
    total = k.sum(axis=(-2, -1), keepdims=True)
    if np.any(np.abs(total) < 1e-12):
        raise CodedError("conv.kernel.sum_zero")
    return k / total


# --------------------------------------------------------------------------- URL state


@dataclass(frozen=True)
class ConvSettings:
    """What the Convolution page shares through its URL (and hands to the core)."""

    kernel: np.ndarray = field(default_factory=lambda: CLASSIC_KERNEL.copy())  # (kh, kw) or (3, ..)
    bias: float = 0.0
    stride: int = 1
    padding: str | int = "valid"  # "valid", "same", "full" or an int >= 0
    pad_mode: str = "zeros"
    dilation: int = 1
    flip: bool = False
    source: str = "numbers"  # one of SOURCES: the classic worked example opens first
    sample: str = DEFAULT_SAMPLE
    colour: str = "gray"
    activation: str = "none"

    def conv_kwargs(self) -> dict:
        """The keyword arguments of :func:`convviz.conv.conv2d` these settings fix."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "pad_mode": self.pad_mode,
            "dilation": self.dilation,
            "flip": self.flip,
        }

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
    rows = [[row.split(",") for row in ch.split(";")] for ch in text.split("|")]
    if any(len({len(r) for r in ch}) != 1 for ch in rows):
        raise CodedError("conv.url.ragged")
    channels = [parse_grid(ch) for ch in rows]
    if len(channels) not in (1, 3):
        raise CodedError("conv.url.channels", n=len(channels))
    if len({c.shape for c in channels}) != 1:
        raise CodedError("conv.url.channel_sizes")
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


QUERY_KEYS = tuple(f.name for f in fields(ConvSettings))  # the URL parameters this page owns


def encode_query(s: ConvSettings) -> dict[str, str]:
    """Settings -> ``st.query_params`` strings (defaults left out, so links stay short).

    >>> encode_query(ConvSettings(stride=2, padding=1))
    {'stride': '2', 'padding': '1'}
    """
    default = _strings(ConvSettings())
    return {k: v for k, v in _strings(s).items() if v != default[k]}


def _int_in(text: str, lo: int, hi: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise CodedError("conv.url.not_int", lo=lo, hi=hi) from None
    if not lo <= v <= hi:
        raise CodedError("conv.url.range", lo=lo, hi=hi, value=v)
    return v


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise CodedError("conv.url.not_number") from None
    if not math.isfinite(v):
        raise CodedError("conv.url.not_number")
    if abs(v) > VALUE_MAX:
        raise CodedError("conv.url.too_large", limit=VALUE_MAX)
    return v


def _choice(text: str, options: tuple[str, ...]) -> str:
    if text not in options:
        raise CodedError("conv.url.choice", options=", ".join(options))
    return text


def decode_query(
    query: Mapping[str, str | list[str]], samples: Mapping[str, object] | None = None
) -> tuple[ConvSettings, list[tuple[str, CodedError]]]:
    """``st.query_params`` -> settings, and ``(parameter, error)`` for each value ignored.

    A hand-edited or truncated link must never crash the page: a bad value falls
    back to its default. The errors never quote the link's text (a page shows them
    as Markdown warnings; the link is data).

    >>> s, problems = decode_query({"stride": "3", "dilation": "zero"})
    >>> s.stride, s.dilation, [(name, str(err)) for name, err in problems]
    (3, 1, [('dilation', 'it must be a whole number from 1 to 8.')])
    """
    s = ConvSettings()
    problems: list[tuple[str, CodedError]] = []

    def get(key: str) -> str | None:
        v = query.get(key)
        if isinstance(v, list):
            v = v[-1] if v else None
        return None if v is None else str(v)

    parsers = {
        "kernel": _decode_kernel,
        "bias": _number,
        "stride": lambda t: _int_in(t, 1, STRIDE_MAX),
        "padding": lambda t: t if t in ("valid", "same", "full") else _int_in(t, 0, PADDING_MAX),
        "pad_mode": lambda t: _choice(t, tuple(PAD_MODES)),
        "dilation": lambda t: _int_in(t, 1, DILATION_MAX),
        "flip": lambda t: _choice(t, ("0", "1")) == "1",
        "source": lambda t: _choice(t, SOURCES),
        "sample": lambda t: _choice(t, tuple(samples)) if samples else t,
        "colour": lambda t: _choice(t, COLOURS),
        "activation": lambda t: _choice(t, ACTIVATION_NAMES),
    }
    for key, parse in parsers.items():
        text = get(key)
        if text is None:
            continue
        try:
            s = replace(s, **{key: parse(text)})
        except CodedError as exc:
            problems.append((key, exc))
    return s, problems


def output_size_latex(
    n: int,
    k: int,
    stride: int,
    pad: tuple[int, int],
    dilation: int,
    axis: str = "H",
    *,
    t: Translator | None = None,
    out: str = "out",
) -> str:
    """The output-size formula for one axis, filled in with the user's numbers (LaTeX).

    ``t`` writes the numbers the locale's way; ``out`` is the subscript's word.

    >>> print(output_size_latex(5, 3, 1, (0, 0), 1))
    H_{\\text{out}} = \\left\\lfloor \\frac{5 + 0 + 0 - 1\\cdot(3-1) - 1}{1} \\right\\rfloor + 1 = 3
    """
    size = output_size(n, k, stride, pad, dilation)

    def i(v: int) -> str:  # a comma in TeX math is punctuation: brace it
        return (t.int(v) if t is not None else str(v)).replace(",", "{,}")

    word = out.replace("\\", "").replace("{", "").replace("}", "")
    top = (
        f"{i(n)} + {i(pad[0])} + {i(pad[1])} - {i(dilation)}\\cdot({i(k)}-1) - 1"  # i18n: not text
    )
    frac = f"\\left\\lfloor \\frac{{{top}}}{{{i(stride)}}} \\right\\rfloor"  # i18n: not text
    return f"{axis}_{{\\text{{{word}}}}} = {frac} + 1 = {i(size)}"  # i18n: not text
