"""The grid editor: a matrix of numbers the user types into (a kernel, the Numbers input).

One owner per value. A :class:`GridState` holds the committed array (what the
editors were mounted with) and a version that is part of the editors' keys; the
editors' widget state holds the edits made since. :func:`grid_value` reads the
grid's value once per run, from that widget state, *before* the editors are drawn:
a page can draw what depends on the grid first, so its delta leaves the server
before the editors' (the Convolution page's feature map; ``benchmarks/bench_ui.py``
times that edit). :func:`grid_editor` draws the editors
later, where they belong on the page. A new array (a preset, a resize) goes through
:meth:`GridState.replace`, which mounts fresh editors.

A ``(C, rows, cols)`` array gets one editor per channel (in tabs).

The editors are :func:`~convviz.ui.widgets.cell_editor.cell_editor` grids: each
committed cell reaches Python at once (``st.data_editor`` waited ~150 ms after
Enter), shown to the grid's scale in the reader's language; the text typed is
read the locale's way (:func:`~convviz.ui.widgets.cell_editor.parse_cell`) and
checked by :func:`convviz.ui.params.merge_edits`, the same function that read
``st.data_editor``'s state (the editors' state has its shape).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from convviz.i18n import Translator
from convviz.ui.i18n import error_text, tr
from convviz.ui.params import CellProblem, merge_edits, sig
from convviz.ui.widgets.cell_editor import cell_editor, parse_cell

__all__ = ["GridState", "grid_editor", "grid_value", "sent_back"]


def _as_float(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.float64)
    out.setflags(write=False)  # shared by the state and every reader: never edited in place
    return out


@dataclass
class GridState:
    """The committed array of one grid (and its editors' version)."""

    base: np.ndarray  # (rows, cols) or (C, rows, cols): what the editors were mounted with
    version: int = 0  # part of the editors' keys: a new base mounts fresh editors
    # base plus the edits read last: what the grid holds if Streamlit drops the
    # editors' state (a run that did not draw them, such as another page)
    value: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.base = _as_float(self.base)
        self.value = self.base if self.value is None else _as_float(self.value)

    def replace(self, a: np.ndarray) -> None:
        """Commit a new array: fresh editors show it."""
        self.base = _as_float(a)
        self.value = self.base
        self.version += 1

    def channels(self) -> int:
        return 1 if self.base.ndim == 2 else self.base.shape[0]


def editor_key(key: str, state: GridState, channel: int = 0) -> str:
    """The widget key of one channel's editor."""
    return f"{key}_{state.version}_{channel}"


@dataclass(frozen=True)
class GridProblems:
    """Cells that did not parse, per channel."""

    cells: tuple[tuple[int, CellProblem], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.cells)


def grid_value(
    key: str, state: GridState, *, limit: float | None = None
) -> tuple[np.ndarray, GridProblems]:
    """This run's value of the grid: its base plus the editors' pending edits.

    ``limit``: a typed cell beyond ``±limit`` is reported and keeps its value, like
    one that does not parse (None: any finite number; the caller checks its own range).

    Call before :func:`grid_editor` (and from callbacks: they run before the page).
    A cell that does not parse keeps its committed value and is reported.
    """
    ss = st.session_state
    n = state.channels()
    base3 = state.base.reshape(n, *state.base.shape[-2:])
    last3 = state.value.reshape(base3.shape)
    # Streamlit drops the state of editors a run did not draw (another page, the
    # channels hidden on a grey input): their edits live on in `value`, so mount
    # fresh editors on it rather than lose them.
    if any(
        editor_key(key, state, c) not in ss and not np.array_equal(last3[c], base3[c])
        for c in range(n)
    ):
        state.replace(state.value)
        base3 = state.base.reshape(base3.shape)
    merged, problems = [], []
    t = tr()
    for c in range(n):
        edits = _read(ss.get(editor_key(key, state, c)), t)
        a, cells = merge_edits(base3[c], edits, limit=limit)
        merged.append(a)
        problems += [(c, p) for p in cells]
    value = _as_float(np.stack(merged).reshape(state.base.shape))
    if not np.array_equal(value, state.value):
        state.value = value
    return state.value, GridProblems(tuple(problems))


def _read(edits: object, t: Translator) -> object:
    """The editors' state with each typed text read as a number the locale's way."""
    if not isinstance(edits, Mapping):
        return edits
    rows = edits.get("edited_rows", {})
    if not isinstance(rows, Mapping):
        return None
    # The browser sends this: keep only cells named by whole numbers (merge_edits
    # ignores those outside the grid), so a forged message cannot raise here.
    return {
        "edited_rows": {
            int(r): {int(c): parse_cell(v, t) for c, v in cells.items() if _index(c)}
            for r, cells in rows.items()
            if _index(r) and isinstance(cells, Mapping)
        }
    }


def _index(k: object) -> bool:
    return (isinstance(k, int) and not isinstance(k, bool)) or (
        isinstance(k, str) and k.isascii() and k.isdigit() and len(k) < 6
    )


def _editor(
    a: np.ndarray,
    key: str,
    t: Translator,
    bad: list[tuple[int, int, str]],
    sync: str | None = None,
    on_change: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    cell_editor(
        a,
        key=key,
        t=t,
        bad=bad,
        edits=st.session_state.get(key),
        sync=sync,
        on_change=None if on_change is None else functools.partial(on_change, key),
    )
    return pd.DataFrame(a, columns=[str(j) for j in range(a.shape[1])])


def sent_back(key: str, token: str | None) -> bool:
    """Whether the editor ``key``'s value is ``token`` sent back (``cell_editor(sync=...)``)."""
    value = st.session_state.get(key)
    return token is not None and isinstance(value, Mapping) and value.get("sync") == token


def grid_editor(
    key: str,
    state: GridState,
    t: Translator,
    problems: GridProblems = GridProblems(),
    *,
    channels: Sequence[int] | None = None,
    channel_names: Sequence[str] = (),
    sync: str | None = None,
    on_change: Callable[[str], None] | None = None,
) -> list[pd.DataFrame]:
    """Draw the editors (one per channel in ``channels``, tabs when several) and a
    warning per cell that did not parse.

    ``channel_names`` label the tabs and the warnings of a several-channel grid.
    Returns what the editors returned: :func:`grid_value` has read the same values
    from their state already (``tests/test_widgets.py`` checks that they agree).
    ``sync`` goes to the first editor shown (see :func:`cell_editor`); ``on_change``
    is called with the key of an editor whose value changed.
    """
    n = state.channels()
    shown = list(range(n)) if channels is None else list(channels)
    value3 = state.value.reshape(n, *state.value.shape[-2:])
    texts: dict[int, list[str]] = {}
    bad: dict[int, list[tuple[int, int, str]]] = {c: [] for c in range(n)}
    for c, p in problems.cells:
        if c not in shown:
            continue
        text = t("conv.grid.kept", reason=error_text(p.error, t), value=sig(t, p.kept))
        bad[c].append((int(p.error.params["row"]) - 1, int(p.error.params["col"]) - 1, text))
        if len(shown) > 1:
            text = t("conv.grid.in_channel", channel=channel_names[c], problem=text)
        texts.setdefault(c, []).append(text)
    if len(shown) > 1:
        tabs = st.tabs([t("conv.grid.channel_tab", channel=channel_names[c]) for c in shown])
        frames = []
        for i, (c, tab) in enumerate(zip(shown, tabs, strict=True)):
            with tab:
                k = editor_key(key, state, c)
                frames.append(_editor(value3[c], k, t, bad[c], sync if i == 0 else None, on_change))
    else:
        c = shown[0]
        frames = [_editor(value3[c], editor_key(key, state, c), t, bad[c], sync, on_change)]
    for c in shown:
        for text in texts.get(c, []):
            st.warning(text)
    return frames
