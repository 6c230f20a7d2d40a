"""The shared widgets (convviz.ui.widgets): grid editor, sliding-window stepper, labels.

Oracles: what ``st.data_editor`` itself returns, scipy's correlate, NumPy's
max/mean/min over hand-cut windows, the core's ConvStep patch, the catalogues.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from babel.messages.pofile import read_po
from babel.numbers import parse_decimal
from scipy import signal
from streamlit.testing.v1 import AppTest

from convviz.conv import conv2d_step
from convviz.i18n import LOCALE_DIR, translator
from convviz.kernels import KERNELS
from convviz.shapes import resolve_padding
from convviz.ui.params import parse_grid
from convviz.ui.widgets.labels import (
    act_label,
    kernel_description,
    kernel_label,
    pad_mode_label,
    pool_mode_label,
)
from convviz.ui.widgets.stepper import padded
from tests.support.cell_editor import editor_args
from tests.support.conv_apptest import edits

TIMEOUT = 60

# --------------------------------------------------------------------------- grid editor

GRID_SCRIPT = """
import numpy as np
import streamlit as st
from convviz.ui.i18n import tr
from convviz.ui.widgets.grid import GridState, grid_editor, grid_value

ss = st.session_state
if "g" not in ss:
    ss.g = GridState(np.arange({size}, dtype=float).reshape({shape}))
value, problems = grid_value("g", ss.g)
ss.read = value
if ss.get("draw", True):
    ss.returned = grid_editor("g", ss.g, tr(), problems, channel_names=["R", "G", "B"])
"""


def grid_app(shape: tuple[int, ...], lang: str = "en") -> AppTest:
    script = GRID_SCRIPT.format(size=int(np.prod(shape)), shape=shape)
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    return at.run()


def test_grid_value_is_what_the_editor_returns() -> None:
    """The value read before the editor draws equals the editor's own return value."""
    at = grid_app((3, 4))
    cells = {(0, 0): 9.5, (2, 3): -1, (1, 2): 1e6}
    at.session_state["g_0_0"] = edits(cells)
    at.run()
    assert not at.exception and not at.warning
    (returned,) = at.session_state["returned"]
    np.testing.assert_array_equal(at.session_state["read"], parse_grid(returned))
    expected = np.arange(12.0).reshape(3, 4)
    for (r, c), v in cells.items():
        expected[r, c] = v
    np.testing.assert_array_equal(at.session_state["read"], expected)
    assert at.session_state["g"].base[0, 0] == 0  # committed value untouched by edits


def test_grid_per_channel_editors_in_tabs() -> None:
    at = grid_app((3, 2, 2))
    assert [t.label for t in at.tabs] == ["R channel", "G channel", "B channel"]
    at.session_state["g_0_1"] = edits({(1, 1): 40})
    at.session_state["g_0_2"] = edits({(0, 0): None})
    at.run()
    returned = at.session_state["returned"]
    read = at.session_state["read"]
    assert read.shape == (3, 2, 2) and read[1, 1, 1] == 40
    np.testing.assert_array_equal(read[:2], [parse_grid(f) for f in returned[:2]])
    assert read[2, 0, 0] == 8  # the cleared cell keeps its value ...
    assert [w.value for w in at.warning] == [  # ... and says so, naming its channel
        "B channel: The cell at row 1, column 1 is empty: type a number. Until then it counts as 8."
    ]


def test_grid_problems_in_portuguese() -> None:
    at = grid_app((2, 2), lang="pt")
    at.session_state["g_0_0"] = edits({(0, 1): float("inf"), (1, 0): 0.25})
    at.run()
    assert [w.value for w in at.warning] == [
        "A célula na linha 1, coluna 2 deve ser um número finito. Enquanto isso, ela vale 1."
    ]
    assert at.session_state["read"].tolist() == [[0, 1], [0.25, 3]]


def test_grid_edits_survive_a_run_without_the_editor() -> None:
    """Streamlit drops an editor's state when a run does not draw it; the edits live on."""
    at = grid_app((2, 3))
    at.session_state["g_0_0"] = edits({(1, 1): 7})
    at.run()
    at.session_state["draw"] = False
    at.run()  # the editor is not drawn: its state goes at the end of this run
    at.session_state["draw"] = True
    at.run()
    state = at.session_state["g"]
    assert state.version == 1  # fresh editors, mounted on the edited value
    assert state.base.tolist() == [[0, 1, 2], [3, 7, 5]]
    np.testing.assert_array_equal(at.session_state["read"], state.base)
    (args,) = editor_args(at)
    assert args["exact"] == [[str(int(v)) for v in row] for row in state.base]


def test_grid_replace_mounts_fresh_editors() -> None:
    from convviz.ui.widgets.grid import GridState

    g = GridState(np.ones((2, 2)))
    g.replace(np.zeros((3, 1)))
    assert (g.version, g.base.shape) == (1, (3, 1))
    assert g.value is g.base and not g.base.flags.writeable


# --------------------------------------------------------------------------- stepper

CONV_SCRIPT = """
import numpy as np
import streamlit as st
from convviz.conv import conv2d
from convviz.shapes import resolve_padding
from convviz.ui.i18n import tr
from convviz.ui.params import ConvSettings
from convviz.ui.widgets.stepper import conv_stepper

x = np.arange(30.0).reshape(5, 6) % 7
s = ConvSettings(kernel=np.array([[1.0, -2.0], [0.5, 3.0]]), bias=0.25, stride=2,
                 padding="same", pad_mode="{pad_mode}", dilation=2, activation="relu")
pad = resolve_padding(s.padding, x.shape, (2, 2), (2, 2), (2, 2))
out = conv2d(x, s.kernel, s.bias, **s.conv_kwargs())
conv_stepper(tr(), x, s, out, pad, numbers=True)
"""


def _z(at: AppTest, key: str) -> np.ndarray:
    for c in at.get("plotly_chart"):
        if c.proto.id.endswith(f"-{key}"):
            z = json.loads(c.proto.spec)["data"][0]["z"]
            if isinstance(z, dict):
                return np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).reshape(
                    [int(n) for n in str(z["shape"]).split(",")]
                )
            return np.array(z, dtype=float)
    raise AssertionError(key)


def _metric(at: AppTest, i: int = 0) -> float:
    lang = at.session_state["lang"]
    return float(parse_decimal(at.metric[i].value, locale={"en": "en", "pt": "pt_BR"}[lang]))


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_conv_stepper_matches_scipy_at_every_position(lang: str) -> None:
    at = AppTest.from_string(CONV_SCRIPT.format(pad_mode="replicate"), default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    at.run()
    assert not at.exception
    t = translator(lang)
    x = np.arange(30.0).reshape(5, 6) % 7
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    wd = np.zeros((3, 3))
    wd[::2, ::2] = w  # dilation 2
    pad = resolve_padding("same", (5, 6), (2, 2), (2, 2), (2, 2))
    ref = signal.correlate2d(np.pad(x, pad, mode="edge"), wd, mode="valid")[::2, ::2] + 0.25
    for idx in range(ref.size):
        at.slider(key="conv_step").set_value(idx).run()
        oy, ox = divmod(idx, ref.shape[1])
        assert at.metric[0].label == t("conv.step.value_at", row=oy, col=ox)
        assert _metric(at, 0) == pytest.approx(ref[oy, ox], abs=1e-3)
        assert at.metric[1].label == t("conv.step.after", activation="ReLU")
        assert _metric(at, 1) == pytest.approx(max(ref[oy, ox], 0), abs=1e-3)
        # the progress map holds the computed cells and nothing after them
        z = _z(at, "conv_step_output").ravel()
        np.testing.assert_allclose(z[: idx + 1], ref.ravel()[: idx + 1])
        assert np.isnan(z[idx + 1 :]).all()
    code = at.code[0].value.splitlines()[-1]
    assert code.startswith(t("conv.step.sum", row=oy, col=ox, sums="", bias="", value="")[:6])


@pytest.mark.parametrize("pad_mode", ["zeros", "reflect", "replicate", "circular"])
def test_stepper_neighbourhood_view_matches_the_core_patch(pad_mode: str) -> None:
    # The stepper pads the input itself to draw the zoomed neighbourhood; the core's
    # ConvStep.patch is the oracle for what lies under the window.
    x = np.random.default_rng(0).random((2, 6, 7))
    w = np.ones((2, 3, 3))
    pad = resolve_padding("full", (6, 7), (3, 3), (1, 1), (2, 2))
    xp = padded(x, pad, pad_mode)
    for idx in (0, 5, 17, 40):
        step = conv2d_step(x, w, index=idx, padding="full", dilation=2, pad_mode=pad_mode)
        np.testing.assert_array_equal(xp[:, step.rows][:, :, step.cols], step.patch)


POOL_SCRIPT = """
import numpy as np
from convviz.pool import pool2d
from convviz.ui.i18n import tr
from convviz.ui.widgets.stepper import pool_stepper

x = (np.arange(49.0).reshape(7, 7) * 37) % 11 - 5
out = pool2d(x, 3, stride=2, padding=1, mode="{mode}")
pool_stepper(tr(), x, out, size=3, stride=2, padding=1, mode="{mode}", small={small})
"""


@pytest.mark.parametrize(
    ("mode", "small", "lang"),
    [("max", True, "en"), ("avg", False, "pt"), ("min", True, "pt")],
)
def test_pool_stepper_matches_numpy_windows(mode: str, small: bool, lang: str) -> None:
    script = POOL_SCRIPT.format(mode=mode, small=small)
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    at.run()
    assert not at.exception
    t = translator(lang)
    x = (np.arange(49.0).reshape(7, 7) * 37) % 11 - 5
    fill = {"max": -np.inf, "min": np.inf, "avg": 0.0}[mode]
    xp = np.pad(x, 1, constant_values=fill)
    reduce = {"max": np.max, "min": np.min, "avg": np.mean}[mode]
    for idx in (0, 4, 15):
        at.slider(key="pool_step").set_value(idx).run()
        oy, ox = divmod(idx, 4)
        expected = reduce(xp[2 * oy : 2 * oy + 3, 2 * ox : 2 * ox + 3])
        assert at.metric[0].label == t("pool.step.value_at", row=oy, col=ox)
        assert _metric(at) == pytest.approx(expected, abs=1e-3)
        assert at.caption[-1].value == t("pool.step.position", i=idx + 1, n=16, row=oy, col=ox)
    assert at.code[0].value.startswith({"max": "max(", "min": "mín(", "avg": "("}[mode])


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_labels_are_the_core_catalogue_entries(lang: str) -> None:
    """One name per thing: the widgets' labels are the core catalogue's act.*, pad.mode.*,
    pool.mode.* and kernels entries (read here straight from the .po files)."""
    locale = {"en": "en", "pt": "pt_BR"}[lang]
    entries = {}
    for domain in ("core", "kernels"):
        path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{domain}.po"
        with path.open("rb") as f:
            entries.update({m.id: m.string for m in read_po(f) if m.id})
    t = translator(lang)
    assert act_label(t, "none") == entries["act.none.raw"]
    for name in ("relu", "leaky_relu", "sigmoid", "tanh"):
        assert act_label(t, name) == entries[f"act.{name}"]
    for mode in ("zeros", "reflect", "replicate", "circular"):
        assert pad_mode_label(t, mode) == entries[f"pad.mode.{mode}"]
    for mode in ("max", "avg", "min"):
        assert pool_mode_label(t, mode) == entries[f"pool.mode.{mode}"]
    assert kernel_label(t, "sobel_x") == entries["kernel.sobel_x.label"]
    assert kernel_description(t, "sobel_x") == entries["kernel.sobel_x.description"]
    if lang == "en":  # the English catalogue is what Python users read on the Kernel
        assert kernel_label(t, "sobel_x") == KERNELS["sobel_x"].label
