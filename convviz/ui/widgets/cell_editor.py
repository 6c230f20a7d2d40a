"""``cell_editor``: a grid of number cells that sends each edit at once.

Why not ``st.data_editor``: measured here in headless Chromium, it waits ~150 ms
after Enter before it sends an edit (a bare rerun costs about 80 ms), it draws
on a canvas that Gabor 13x13's values near 1e-17 filled with ``0000000000``,
and its cells cannot be reached by a test or a screen reader as text. This one
is a table of ``<input>`` cells (a Streamlit v1 custom component with no build
step, like :mod:`convviz.ui.live_panel`): Enter, Tab, the arrow keys and
leaving a cell commit it, and the edit goes to Python in the same moment.

Python owns every number: the component shows the strings it is given (each
cell to the grid's scale, :func:`shown_cells`; its full value while it is being
edited, :func:`exact_cells`) and sends back the text typed. :func:`parse_cell`
reads that text the locale's way (``0,5`` in Portuguese), and the grid widget
(:mod:`convviz.ui.widgets.grid`) validates it with the limits of
:mod:`convviz.shapes`; a bad cell keeps its previous value and is marked.

The component's value is every edit since it was mounted, in the shape of
``st.data_editor``'s state (``{"edited_rows": {row: {col: text}}}``), so
:func:`convviz.ui.params.merge_edits` reads both.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import streamlit
import streamlit.components.v1 as components

from convviz.i18n import Translator

__all__ = [
    "cell_editor",
    "exact_cells",
    "font_url",
    "grid_decimals",
    "grid_scale",
    "parse_cell",
    "shown_cells",
]

_DIR = Path(__file__).resolve().parent / "cell_editor"
SIGNIFICANT = 3  # digits the largest value of a grid keeps when shown to scale ...
WIDE = 7  # ... and 2 in a grid wider than this (Gabor 13x13 fits a column at 1280x720)
EXTRA_EXACT = 2  # a grid whose values are exact with this many more decimals shows them all
MAX_DECIMALS = 8


def grid_decimals(a: np.ndarray) -> int:
    """The decimals a grid is shown with: its largest value keeps 3 significant digits
    (2 in a grid more than 7 columns wide), unless a few more decimals write every
    value exactly (1/16 = 0.0625).

    >>> grid_decimals(np.array([[0, 1, 0], [1, -4, 1]]))
    0
    >>> grid_decimals(np.array([1, 2, 4]) / 16), grid_decimals(np.ones(3) / 9)
    (4, 3)
    >>> grid_decimals(np.array([0.0397887, 1e-17])), grid_decimals(np.full((2, 13), 0.0397887))
    (4, 3)
    """
    a = np.asarray(a, dtype=np.float64)
    finite = np.abs(a[np.isfinite(a)])
    top = float(finite.max()) if finite.size else 0.0
    if top == 0.0:
        return 0
    digits = SIGNIFICANT if a.ndim < 2 or a.shape[-1] <= WIDE else SIGNIFICANT - 1
    base = min(MAX_DECIMALS, max(0, digits - 1 - math.floor(math.log10(top))))
    for d in range(0, min(MAX_DECIMALS, base + EXTRA_EXACT) + 1):
        if np.allclose(np.round(finite, d), finite, rtol=0, atol=1e-12 * max(1.0, top)):
            return d
    return base


def _plain(v: float, decimals: int, sep: str) -> str:
    """``v`` with ``decimals`` decimals, trailing zeros dropped, no grouping, ``-0`` as 0."""
    s = f"{v:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s.replace(".", sep)


def _sep(t: Translator) -> str:
    return t.separators[0]


def grid_scale(a: np.ndarray) -> int:
    """The power of ten a wide grid of small numbers is shown in (0: none).

    A grid more than 7 columns wide whose values need 3 or more decimals is shown
    in thousandths (or smaller), under a "values x 0.001" line: Gabor 13x13 reads
    ``40, -24, 13`` instead of ``0.04, -0.024, 0.013``, and fits a column at 1280x720.

    >>> grid_scale(np.full((13, 13), 0.0397887)), grid_scale(np.full((3, 3), 0.0397887))
    (3, 0)
    >>> grid_scale(np.full((13, 13), 0.5)), grid_scale(np.zeros((13, 13)))
    (0, 0)
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] <= WIDE:
        return 0
    d = grid_decimals(a)
    return d if d >= 3 else 0


def shown_cells(a: np.ndarray, t: Translator) -> list[list[str]]:
    """Each cell of ``a`` ``(rows, cols)`` to the grid's scale (:func:`grid_decimals`,
    :func:`grid_scale`), the locale's decimal separator, no runs of zeros: a value
    too small for the grid's scale reads ``0``.

    >>> from convviz.i18n import translator
    >>> shown_cells(np.array([[0.0397887, -0.0012345, 6e-21]]), translator("pt"))
    [['0,0398', '-0,0012', '0']]
    >>> shown_cells(np.array([[181.0, -4.0]]), translator("en"))
    [['181', '-4']]
    >>> shown_cells(np.array([[0.0397887, -0.0012345, 6e-21, 0, 0, 0, 0, 0]]), translator("en"))
    [['40', '-1', '0', '0', '0', '0', '0', '0']]
    """
    a = np.asarray(a, dtype=np.float64)
    d, sep, k = grid_decimals(a), _sep(t), grid_scale(a)
    if k:
        a, d = a * 10.0**k, max(0, d - k)
    return [[_plain(float(v), d, sep) for v in row] for row in a]


def exact_cells(a: np.ndarray, t: Translator) -> list[list[str]]:
    """Each cell's full value (10 significant digits), as a person would type it again.

    >>> from convviz.i18n import translator
    >>> exact_cells(np.array([[1 / 9, 1e-17, 2.0]]), translator("pt"))
    [['0,1111111111', '1e-17', '2']]
    """
    sep = _sep(t)

    def one(v: float) -> str:
        s = f"{v:.10g}"
        return "0" if s == "-0" else s.replace(".", sep)

    return [[one(float(v)) for v in row] for row in np.asarray(a, dtype=np.float64)]


_GROUPED = {
    ".": re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d*)?$"),
    ",": re.compile(r"^-?\d{1,3}(\.\d{3})+(,\d*)?$"),
}


def _number(s: str, sep: str) -> float:
    s = s.replace("\u2212", "-").replace(" ", "").replace("\u00a0", "")
    if sep == ",":
        if "," in s:
            if "." in s and not _GROUPED[","].match(s):
                raise ValueError(s)
            s = s.replace(".", "").replace(",", ".")
        # else a dot is the decimal point too: people type 0.5 in any language
    elif "," in s:
        if not _GROUPED["."].match(s):
            raise ValueError(s)
        s = s.replace(",", "")
    if "_" in s:  # float() takes 1_000; a person's number does not
        raise ValueError(s)
    return float(s)


def parse_cell(text: object, t: Translator) -> object:
    """The number typed in a cell, read the locale's way; anything else as it came.

    What does not parse goes on unchanged, for :func:`convviz.ui.params.merge_edits`
    to report (``empty``, ``not a number``) and keep the cell's previous value.
    ``a/b`` is a fraction (a box blur's ``1/9``).

    >>> from convviz.i18n import translator
    >>> en, pt = translator("en"), translator("pt")
    >>> parse_cell("0,5", pt), parse_cell("0.5", pt), parse_cell("1.234,5", pt)
    (0.5, 0.5, 1234.5)
    >>> parse_cell("1,5", en), parse_cell("1,000", en), parse_cell(" -1/4 ", en), parse_cell(3, en)
    ('1,5', 1000.0, -0.25, 3)
    """
    if not isinstance(text, str):
        return text
    s = text.strip()
    if not s:
        return s
    sep = _sep(t)
    try:
        if s.count("/") == 1:
            num, den = s.split("/")
            value = _number(num, sep) / _number(den, sep)
        else:
            value = _number(s, sep)
    except (ValueError, ZeroDivisionError):
        return text
    return value


@functools.cache
def font_url() -> str | None:
    """Streamlit's Source Sans as the app serves it, relative to the component's page
    (``<base>/component/<name>/index.html`` -> ``<base>/static/media/...``)."""
    media = Path(streamlit.__file__).resolve().parent / "static" / "static" / "media"
    fonts = sorted(media.glob("SourceSansVF-Upright*.woff2"))  # i18n: not text
    return f"../../static/media/{fonts[0].name}" if fonts else None


def cell_editor(
    a: np.ndarray,
    *,
    key: str,
    t: Translator,
    bad: Iterable[tuple[int, int, str]] = (),
    edits: Mapping | None = None,
    sync: str | None = None,
    on_change: Callable[[], None] | None = None,
) -> dict | None:
    """Draw the grid ``a`` ``(rows, cols)``; return its edits since it was mounted (or None).

    ``bad``: cells ``(row, col, message)`` whose typed text did not make a number:
    they show that text, marked, with the message as their tooltip. ``edits``: the
    edits Python holds (the widget's state), shown again after the frame reloads.
    Its words (the grid's and the cells' names for screen readers, the keys'
    hint under it) come from the ``editor`` catalogue.

    ``sync``: a token the editor sends back once, in its value (``{"sync": token}``
    beside the edits), after the run that drew it is on screen: a page that repainted
    only part of itself asks for the rest that way (the Convolution page's map first,
    its lesson after). ``on_change`` is called when the value changes (an edit or a
    token sent back).
    """
    a = np.asarray(a, dtype=np.float64)
    k = grid_scale(a)
    edited = {}
    if isinstance(edits, Mapping):
        for r, cells in dict(edits.get("edited_rows", {})).items():
            edited[str(r)] = {str(c): ("" if v is None else str(v)) for c, v in cells.items()}
    args = {
        "shown": shown_cells(a, t),
        "exact": exact_cells(a, t),
        "bad": [[int(r), int(c), str(m)] for r, c, m in bad],
        "edits": edited,
        "label": t("editor.label", rows=a.shape[0], cols=a.shape[1]),
        "cell_labels": [
            [t("editor.cell", row=r + 1, col=c + 1) for c in range(a.shape[1])]
            for r in range(a.shape[0])
        ],
        "hint": t("editor.hint"),
        "scale": t("editor.scale", factor=_plain(10.0**-k, k, _sep(t))) if k else "",
        "lang": t.lang,
        "font": font_url(),
        "sync": sync,
    }
    # Declared on every call: cheap, and right for each Streamlit runtime (tests make several).
    component = components.declare_component("cell_editor", path=str(_DIR))
    value = component(**args, key=key, default=None, on_change=on_change)
    return value if isinstance(value, dict) else None
