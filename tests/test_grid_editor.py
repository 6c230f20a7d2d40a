"""The number grid's editor, Python side (convviz.ui.widgets.cell_editor and grid):
reading typed text the locale's way, the limits, numbers shown to their scale in en
and pt, and the Convolution page fed by typed text (checked against scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import correlate2d
from streamlit.testing.v1 import AppTest

from convviz.i18n import translator
from convviz.kernels import KERNELS
from convviz.shapes import VALUE_MAX
from convviz.ui.params import CLASSIC_INPUT, CLASSIC_KERNEL
from convviz.ui.widgets.cell_editor import (
    exact_cells,
    grid_decimals,
    grid_scale,
    parse_cell,
    shown_cells,
)
from tests.support.cell_editor import editor_args
from tests.support.conv_apptest import edit_grid, edits

EN, PT = translator("en"), translator("pt")
TIMEOUT = 60


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "en", "pt"),
    [
        ("2", 2.0, 2.0),
        (" -0.5 ", -0.5, -0.5),  # a dot is a decimal point in Portuguese too
        ("0,5", "0,5", 0.5),
        ("\u22121,25", "\u22121,25", -1.25),  # the typographic minus
        ("1,000", 1000.0, 1.0),  # en: grouping; pt: one
        ("1.234,5", "1.234,5", 1234.5),
        ("1,234.5", 1234.5, "1,234.5"),
        ("1e-3", 0.001, 0.001),
        ("1/9", 1 / 9, 1 / 9),
        ("-1/4", -0.25, -0.25),
        ("1/0", "1/0", "1/0"),  # no number: reported by merge_edits
        ("abc", "abc", "abc"),
        ("1_000", "1_000", "1_000"),
        ("", "", ""),
    ],
)
def test_parse_cell_reads_the_locale(text: str, en: object, pt: object) -> None:
    for t, want in ((EN, en), (PT, pt)):
        got = parse_cell(text, t)
        if isinstance(want, float):
            assert isinstance(got, float) and got == pytest.approx(want, rel=1e-12), (t, text)
        else:
            assert got == want, (t, text)


def test_parse_cell_passes_numbers_and_none_through() -> None:
    assert parse_cell(3, EN) == 3 and parse_cell(None, EN) is None and parse_cell(2.5, PT) == 2.5


# --------------------------------------------------------------------------- formatting


def _value(text: str, t) -> float:
    v = parse_cell(text, t)
    assert isinstance(v, float), text
    return v


@pytest.mark.parametrize("t", [EN, PT], ids=["en", "pt"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_preset_is_shown_to_its_scale(name: str, t) -> None:
    """Each shown cell is within half a unit of its last digit of the weight; no runs of
    zeros; the locale's separator; the exact text reads back the weight."""
    w = np.array(KERNELS[name].weights, dtype=np.float64)
    shown, exact = shown_cells(w, t), exact_cells(w, t)
    d, k = grid_decimals(w), grid_scale(w)
    unit = 10.0 ** -(d - k) if d > k else 1.0
    for r in range(w.shape[0]):
        for c in range(w.shape[1]):
            s = shown[r][c]
            assert "000" not in s.lstrip("-").split(t.separators[0])[-1], (name, s)
            assert len(s) <= 7, (name, s)
            assert (t.separators[1] not in s) and ("." not in s if t is PT else "," not in s)
            assert abs(_value(s, t) - w[r, c] * 10.0**k) <= unit / 2 + 1e-12, (name, s)
            assert _value(exact[r][c], t) == pytest.approx(w[r, c], rel=1e-9, abs=1e-300)


def test_gabor_reads_in_thousandths_and_its_tiny_weights_as_zero() -> None:
    w = np.array(KERNELS["gabor"].weights)
    assert np.abs(w).min() < 1e-15
    assert grid_scale(w) == 3
    shown = np.array(shown_cells(w, PT))
    assert shown[np.abs(w) < 5e-4].tolist() == ["0"] * int((np.abs(w) < 5e-4).sum())
    assert shown[6, 6] == "40" and max(len(s) for s in shown.ravel()) <= 3
    # the exact text keeps every digit a person needs to retype it
    assert exact_cells(w, PT)[6][6] == f"{w[6, 6]:.10g}".replace(".", ",")


@pytest.mark.parametrize(
    ("grid", "en", "pt"),
    [
        ([[0, 1, 0], [1, -4, 1]], ["0", "1", "0", "1", "-4", "1"], None),
        ([[1 / 16, 2 / 16, 4 / 16]], ["0.0625", "0.125", "0.25"], ["0,0625", "0,125", "0,25"]),
        ([[1 / 9, 1 / 9]], ["0.111", "0.111"], ["0,111", "0,111"]),
        ([[128.0, 97.5, -1e-13]], ["128", "97.5", "0"], ["128", "97,5", "0"]),
        ([[1e6, -3.5]], ["1000000", "-3.5"], ["1000000", "-3,5"]),
        ([[0.0, -0.0]], ["0", "0"], None),
    ],
)
def test_shown_cells_examples(grid, en, pt) -> None:
    a = np.array(grid, dtype=float)
    assert [s for row in shown_cells(a, EN) for s in row] == en
    assert [s for row in shown_cells(a, PT) for s in row] == (pt or en)


# --------------------------------------------------------------------------- the widget

GRID_SCRIPT = """
import numpy as np
import streamlit as st
from convviz.ui.i18n import tr
from convviz.ui.widgets.grid import GridState, grid_editor, grid_value

ss = st.session_state
if "g" not in ss:
    ss.g = GridState(np.array({base}, dtype=float))
value, problems = grid_value("g", ss.g, limit={limit})
ss.read = value
grid_editor("g", ss.g, tr(), problems)
"""


def grid_app(base, lang: str = "en", limit: float | None = None) -> AppTest:
    at = AppTest.from_string(GRID_SCRIPT.format(base=base, limit=limit), default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    return at.run()


def test_typed_text_is_read_in_portuguese_and_shown_back() -> None:
    at = grid_app([[1.0, 2.0], [3.0, 4.0]], lang="pt")
    at.session_state["g_0_0"] = edits({(0, 0): "0,5", (1, 1): "1/4"})
    at.run()
    assert not at.exception and not at.warning
    assert at.session_state["read"].tolist() == [[0.5, 2.0], [3.0, 0.25]]
    (args,) = editor_args(at)
    assert args["shown"] == [["0,5", "2"], ["3", "0,25"]]
    assert args["bad"] == [] and args["edits"] == {"0": {"0": "0,5"}, "1": {"1": "1/4"}}
    assert args["lang"] == "pt" and args["hint"] == PT("editor.hint")
    assert args["label"] == PT("editor.label", rows=2, cols=2)
    assert args["cell_labels"][1][0] == PT("editor.cell", row=2, col=1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", ("conv.grid.not_number", {})),
        ("0,5", ("conv.grid.not_number", {})),  # a comma is no decimal point in English
        ("", ("conv.grid.empty", {})),
        ("1e400", ("conv.grid.not_finite", {})),
        ("2e6", ("conv.grid.too_large", {"limit": VALUE_MAX})),
    ],
)
def test_a_bad_cell_keeps_its_value_with_a_message(text: str, reason) -> None:
    at = grid_app([[1.0, 2.0], [3.0, 4.0]], limit=VALUE_MAX)
    at.session_state["g_0_0"] = edits({(0, 1): text, (1, 0): "7"})
    at.run()
    assert not at.exception
    assert at.session_state["read"].tolist() == [[1.0, 2.0], [7.0, 4.0]]  # 2 kept, 7 taken
    code, params = reason
    msg = EN("conv.grid.kept", reason=EN(code, row=1, col=2, **params), value="2")
    assert [w.value for w in at.warning] == [msg]
    (args,) = editor_args(at)
    assert args["bad"] == [[0, 1, msg]]
    assert args["edits"]["0"]["1"] == text  # the typed text stays in the cell, marked


def test_a_bad_cell_in_portuguese() -> None:
    at = grid_app([[1.0, 2.0]], lang="pt", limit=VALUE_MAX)
    at.session_state["g_0_0"] = edits({(0, 0): "1.5.5"})
    at.run()
    msg = PT("conv.grid.kept", reason=PT("conv.grid.not_number", row=1, col=1), value="1")
    assert [w.value for w in at.warning] == [msg]
    assert at.session_state["read"].tolist() == [[1.0, 2.0]]


def test_no_limit_lets_the_caller_check_its_own_range() -> None:
    at = grid_app([[1.0]], limit=None)
    at.session_state["g_0_0"] = edits({(0, 0): "5e7"})
    at.run()
    assert not at.warning and at.session_state["read"].tolist() == [[5e7]]


# --------------------------------------------------------------------------- the page


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_the_convolution_page_follows_typed_text(lang: str) -> None:
    """Text typed into the kernel and the numbers grids -> the page's feature map
    equals scipy's cross-correlation of the same numbers."""
    t = translator(lang)
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    at.run()
    assert not at.exception
    half = "0,5" if lang == "pt" else "0.5"
    edit_grid(at, "kernel", {(1, 1): half, (0, 0): "-1/4"})
    edit_grid(at, "numbers", {(4, 4): "-3"})
    at.run()
    assert not at.exception and not at.warning
    kernel, x = CLASSIC_KERNEL.copy(), CLASSIC_INPUT.copy()
    kernel[1, 1], kernel[0, 0], x[4, 4] = 0.5, -0.25, -3
    np.testing.assert_allclose(
        at.session_state["conv_feature_map"].values, correlate2d(x, kernel, "valid")
    )
    kernel_args, numbers_args = editor_args(at)
    assert kernel_args["shown"][1][1] == half and kernel_args["shown"][0][0] == t.num(-0.25, 2)
    assert numbers_args["shown"][4][4] == "-3" and numbers_args["shown"][0][0] == "128"
    assert math.isclose(float(kernel_args["exact"][1][1].replace(",", ".")), 0.5)


def test_a_forged_editor_state_cannot_break_the_page() -> None:
    """The editor's state comes from the browser: odd keys and values are ignored or
    reported, never raised."""
    at = grid_app([[1.0, 2.0]], limit=VALUE_MAX)
    at.session_state["g_0_0"] = {
        "edited_rows": {"x": {"0": 5}, "0": {"y": 5, "1": [1, 2], "0": "3"}, "7": {"0": 9}}
    }
    at.run()
    assert not at.exception
    assert at.session_state["read"].tolist() == [[3.0, 2.0]]
    assert len(at.warning) == 1  # the list in cell (1, 2): not a number, 2 kept
