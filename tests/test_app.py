"""App tests with ``streamlit.testing.v1.AppTest``: every page runs, and the numbers it shows
match independent oracles (scipy, hand arithmetic), not the app's own output.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from babel.numbers import parse_decimal
from PIL import Image
from scipy import ndimage, signal
from streamlit.testing.v1 import AppTest

from convviz.i18n import LANGUAGES, translator
from convviz.images import sample_image
from convviz.kernels import KERNELS
from convviz.shapes import resolve_padding
from convviz.ui.params import CLASSIC_INPUT, CLASSIC_KERNEL
from convviz.ui.widgets.labels import kernel_description
from tests.support.apptest import value_map_z
from tests.support.cell_editor import editor_args
from tests.support.conv_apptest import edit_grid, english_left, kernel_key, numbers_key

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60  # generous: CI machines are slow; a normal run takes well under a second


# --------------------------------------------------------------------------- helpers


def _page_script(module: str) -> str:
    return f"from convviz.ui.pages import {module}\n{module}.render()\n"


def page(module: str) -> AppTest:
    """One page on its own (pages are st.Page callables, so switch_page cannot reach them)."""
    return AppTest.from_string(_page_script(module), default_timeout=TIMEOUT)


def _decode(v):
    """Plotly JSON arrays, including its base64 typed-array form ``{"bdata", "dtype"}``."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        if "shape" in v:
            a = a.reshape([int(s) for s in str(v["shape"]).split(",")])
        return a
    return np.array(v, dtype=np.float64) if v is not None else None


def chart(at: AppTest, key: str) -> dict:
    for c in at.get("plotly_chart"):
        if c.proto.id.endswith(f"-{key}"):
            return json.loads(c.proto.spec)
    raise AssertionError(f"no chart with key {key!r}")


def heatmap_z(at: AppTest, key: str) -> np.ndarray:
    trace = chart(at, key)["data"][0]
    assert trace["type"] == "heatmap"
    return np.asarray(_decode(trace["z"]), dtype=np.float64)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric_value(at: AppTest, label_start: str) -> float:
    """A metric's number, written in English (1,234.5) or Portuguese (1.234,5)."""
    lang = at.session_state["lang"] if "lang" in at.session_state else "en"
    for m in at.metric:
        if m.label.startswith(label_start):
            return float(parse_decimal(m.value, locale=LANGUAGES[lang], strict=False))
    raise AssertionError(f"no metric starting with {label_start!r}: {[m.label for m in at.metric]}")


def oracle_conv(
    x, w, b=0.0, *, stride=1, padding="valid", dilation=1, pad_mode="zeros", flip=False
):
    """scipy.signal.correlate2d on an np.pad'ed input with a zero-stuffed (dilated) kernel."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if flip:
        w = w[::-1, ::-1]
    kh, kw = w.shape
    pad = resolve_padding(padding, x.shape, (kh, kw), (stride, stride), (dilation, dilation))
    np_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    xp = np.pad(x, pad, mode=np_mode[pad_mode])
    wd = np.zeros((dilation * (kh - 1) + 1, dilation * (kw - 1) + 1))
    wd[::dilation, ::dilation] = w
    return signal.correlate2d(xp, wd, mode="valid")[::stride, ::stride] + b


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


# --------------------------------------------------------------------------- shell


def test_core_import_leaves_streamlit_out() -> None:
    code = (
        "import sys, convviz, convviz.figures, convviz.ui.params; "
        "assert 'streamlit' not in sys.modules, 'streamlit imported by the core'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_default_run_opens_the_classic_example(app: AppTest) -> None:
    assert_clean(app)
    assert not app.warning
    # The seeds' worked example, by hand, and scipy's correlate on it (valid part).
    expected = ndimage.correlate(CLASSIC_INPUT, CLASSIC_KERNEL, mode="constant")[1:-1, 1:-1]
    assert expected.tolist() == [[181, 303, 618], [115, 338, 605], [189, 351, 660]]
    state = app.session_state["conv"]
    np.testing.assert_array_equal(state.numbers.value, CLASSIC_INPUT)
    np.testing.assert_array_equal(state.kernel.value, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    np.testing.assert_allclose(value_map_z(app, "conv_output_map"), expected)
    assert metric_value(app, "Output value at (0, 0)") == 181
    shown = app.code[0].value
    assert "0×128 + 1×97 + 0×53 + 1×35" in shown and shown.endswith("= 181")


def test_numbers_mode_steps_match_scipy(app: AppTest) -> None:
    expected = ndimage.correlate(CLASSIC_INPUT, CLASSIC_KERNEL, mode="constant")[1:-1, 1:-1]
    for i in range(1, 4):
        app.button(key="conv_next").click().run()
        assert_clean(app)
        oy, ox = divmod(i, 3)
        assert metric_value(app, f"Output value at ({oy}, {ox})") == expected[oy, ox]
    app.button(key="conv_prev").click().run()
    assert metric_value(app, "Output value at (0, 2)") == 618
    app.slider(key="conv_step").set_value(8).run()
    assert metric_value(app, "Output value at (2, 2)") == expected[2, 2]
    # cells not computed yet are blank in the progress map; computed ones match
    app.slider(key="conv_step").set_value(4).run()
    z = value_map_z(app, "conv_step_output").ravel()
    np.testing.assert_allclose(z[:5], expected.ravel()[:5])
    assert np.isnan(z[5:]).all()


def test_numbers_matrix_cells_are_editable(app: AppTest) -> None:
    edit_grid(app, "numbers", {(0, 1): 1000}).run()
    assert_clean(app)
    x = CLASSIC_INPUT.copy()
    x[0, 1] = 1000
    expected = ndimage.correlate(x, CLASSIC_KERNEL, mode="constant")[1:-1, 1:-1]
    np.testing.assert_allclose(value_map_z(app, "conv_output_map"), expected)
    # resizing keeps the edit (the middle of the grid is kept, new cells are 0)
    app.number_input(key=numbers_key(app, "num_cols")).set_value(7).run()
    assert_clean(app)
    grown = app.session_state["conv"].numbers.value
    assert grown.shape == (5, 7) and grown[0, 2] == 1000 and not grown[:, [0, 6]].any()
    np.testing.assert_allclose(
        value_map_z(app, "conv_output_map"), oracle_conv(grown, CLASSIC_KERNEL)
    )


@pytest.mark.parametrize(
    ("param", "widget", "value"),
    [
        ("stride", "number_input", 2),
        ("padding", "selectbox", "same"),
        ("padding", "selectbox", "full"),
        ("dilation", "number_input", 2),
        ("flip", "toggle", True),
        ("pad_mode", "selectbox", "reflect"),
    ],
)
def test_parameters_change_the_output_like_scipy(app, param, widget, value) -> None:
    kernel = np.array([[1, 2, 0], [0, -1, 3], [2, 0, 1]], dtype=np.float64)  # asymmetric
    edit_grid(app, "kernel", {(r, c): kernel[r, c] for r in range(3) for c in range(3)})
    if param == "pad_mode":  # only visible effect with padding
        app.selectbox(key="conv_padding").set_value("same")
    getattr(app, widget)(key=f"conv_{param}").set_value(value)
    app.run()
    assert_clean(app)
    kwargs = {param: value}
    if param == "pad_mode":
        kwargs["padding"] = "same"
    expected = oracle_conv(CLASSIC_INPUT, kernel, **kwargs)
    np.testing.assert_allclose(value_map_z(app, "conv_output_map"), expected)
    # the stepper's first window agrees with the map
    assert metric_value(app, "Output value at (0, 0)") == pytest.approx(expected[0, 0])


def test_kernel_size_change(app: AppTest) -> None:
    app.number_input(key=kernel_key(app, "kh")).set_value(5).run()
    assert_clean(app)
    k = app.session_state["conv"].kernel.value
    assert k.shape == (5, 3)
    np.testing.assert_array_equal(k[1:4], CLASSIC_KERNEL)  # centred, zero rows added
    np.testing.assert_allclose(value_map_z(app, "conv_output_map"), oracle_conv(CLASSIC_INPUT, k))
    app.number_input(key=kernel_key(app, "kw")).set_value(1).run()
    assert app.session_state["conv"].kernel.value.shape == (5, 1)
    assert app.number_input(key=kernel_key(app, "kh")).value == 5  # fresh widgets show it
    assert_clean(app)


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_a_kernel_larger_than_the_input_shows_a_clear_error(lang: str) -> None:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state["lang"] = lang
    app.run()
    app.number_input(key=kernel_key(app, "kh")).set_value(7).run()
    assert not app.exception
    t = translator(lang)
    assert [e.value for e in app.error] == [t("conv.error.too_big", eh=7, ew=3, hp=5, wp=5)]
    assert "kernel" in app.error[0].value
    app.selectbox(key="conv_padding").set_value("same").run()  # padding makes it fit
    assert_clean(app)


def test_cleared_or_invalid_kernel_cell_keeps_the_last_valid_kernel(app: AppTest) -> None:
    edit_grid(app, "kernel", {(1, 1): None}).run()
    assert not app.exception
    assert [w.value for w in app.warning] == [
        "The cell at row 2, column 2 is empty: type a number. Until then it counts as 0."
    ]
    np.testing.assert_array_equal(app.session_state["conv"].kernel.value, CLASSIC_KERNEL)
    assert metric_value(app, "Output value at (0, 0)") == 181
    # a valid edit then takes effect
    edit_grid(app, "kernel", {(1, 1): 2}).run()
    assert not app.warning
    assert metric_value(app, "Output value at (0, 0)") == 181 + 2 * 22


def test_preset_random_and_normalise_on_a_sample(app: AppTest) -> None:
    app.radio(key="conv_source").set_value("sample").run()
    app.select_slider(key="conv_max_side").set_value(128).run()
    app.selectbox(key=kernel_key(app, "preset")).set_value("sobel_x").run()
    assert_clean(app)
    img = sample_image("Cameraman", max_side=128).astype(np.float64)
    state = app.session_state["conv"]
    np.testing.assert_array_equal(state.kernel.value, KERNELS["sobel_x"].weights)
    assert state.preset == "sobel_x" and KERNELS["sobel_x"].description in [
        c.value for c in app.caption
    ]
    np.testing.assert_allclose(
        app.session_state["conv_feature_map"].values,
        oracle_conv(img, KERNELS["sobel_x"].weights),
        atol=1e-5,
    )
    app.button(key="conv_normalise").click().run()  # sobel sums to 0: explained, kept
    assert [w.value for w in app.warning] == [translator("en")("conv.kernel.sum_zero")]
    np.testing.assert_array_equal(state.kernel.value, KERNELS["sobel_x"].weights)
    app.selectbox(key=kernel_key(app, "preset")).set_value("gaussian_3x3").run()
    app.button(key="conv_random").click().run()
    assert_clean(app)
    k = state.kernel.value
    assert k.shape == (3, 3) and set(np.unique(k)) <= {-2, -1, 0, 1, 2}
    assert state.preset is None  # a random kernel is no preset
    if abs(k.sum()) > 1e-9:
        app.button(key="conv_normalise").click().run()
        assert state.kernel.value.sum() == pytest.approx(1.0)


def test_rgb_per_channel_partial_sums_add_up(app: AppTest) -> None:
    app.radio(key="conv_source").set_value("sample").run()
    app.selectbox(key="conv_sample").set_value("Astronaut").run()
    app.select_slider(key="conv_max_side").set_value(128).run()
    app.radio(key="conv_colour").set_value("rgb").run()
    app.toggle(key=kernel_key(app, "per_channel")).set_value(True).run()
    assert_clean(app)
    edit_grid(app, "kernel", {(0, 0): -3}, channel=2).run()  # the B channel differs
    k = app.session_state["conv"].kernel.value
    assert k.shape == (3, 3, 3) and k[2, 0, 0] == -3 and k[0, 0, 0] == 0
    app.slider(key="conv_step").set_value(130).run()  # row 1, col 4 of a 126-wide map
    img = sample_image("Astronaut", mode="rgb", max_side=128).astype(np.float64)
    expected = sum(oracle_conv(img[..., c], k[c]) for c in range(3))
    oy, ox = divmod(130, expected.shape[1])
    assert metric_value(app, f"Output value at ({oy}, {ox})") == pytest.approx(
        expected[oy, ox], rel=1e-5
    )
    lines = app.code[0].value.splitlines()
    assert [ln[:2] for ln in lines[:3]] == ["R:", "G:", "B:"]
    # a grey input uses the first channel; the per-channel kernel is still there after
    app.radio(key="conv_colour").set_value("gray").run()
    assert_clean(app)
    grey = sample_image("Astronaut", max_side=128).astype(np.float64)
    np.testing.assert_allclose(
        app.session_state["conv_feature_map"].values, oracle_conv(grey, k[0]), atol=1e-4
    )
    app.radio(key="conv_colour").set_value("rgb").run()
    np.testing.assert_array_equal(app.session_state["conv"].kernel.value, k)


def test_kernel_edits_survive_another_page() -> None:
    """Streamlit drops the editors' state while another page runs; the kernel stays."""
    script = (
        "import streamlit as st\n"
        "from convviz.ui.pages import convolution, pooling\n"
        "(pooling if st.session_state.get('show_pool') else convolution).render()\n"
    )
    at = AppTest.from_string(script, default_timeout=TIMEOUT).run()
    edit_grid(at, "kernel", {(0, 0): 5}).run()
    at.session_state["show_pool"] = True
    at.run()
    at.session_state["show_pool"] = False
    at.run()
    assert_clean(at)
    k = CLASSIC_KERNEL.copy()
    k[0, 0] = 5
    np.testing.assert_array_equal(at.session_state["conv"].kernel.value, k)
    np.testing.assert_allclose(value_map_z(at, "conv_output_map"), oracle_conv(CLASSIC_INPUT, k))
    # and the fresh editor shows it
    assert editor_args(at)[0]["exact"] == [[f"{v:.10g}" for v in row] for row in k]


# --------------------------------------------------------------------------- uploads


def _huge_ihdr_png() -> bytes:
    data = bytearray(png_bytes(np.zeros((2, 2), np.uint8)))
    # IHDR data starts at byte 16: width, height; then the CRC over type + data.
    data[16:24] = struct.pack(">II", 20000, 20000)
    crc = zlib.crc32(bytes(data[12:29]))
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


def _truncated_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    data = png_bytes(noise)
    return data[: len(data) // 2]


def _ppm() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4, 4), 7).save(buf, format="PPM")
    return buf.getvalue()


BAD_FILES = {
    "truncated": lambda: _truncated_png(),
    "empty": lambda: b"",
    "text named .png": lambda: b"hello, I am not an image\n" * 4,
    "huge IHDR": _huge_ihdr_png,
    "PPM (format not allowed)": _ppm,
}


@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_bad_upload_shows_an_error_and_keeps_the_previous_image(app: AppTest, bad) -> None:
    app.radio(key="conv_source").set_value("upload").run()
    assert not app.exception
    good = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) % 256).astype(np.uint8)
    app.sidebar.file_uploader[0].set_value(("good.png", png_bytes(good), "image/png")).run()
    assert_clean(app)
    before = app.session_state["conv_feature_map"].values.copy()
    np.testing.assert_allclose(before, oracle_conv(good / 255.0, CLASSIC_KERNEL), atol=1e-5)

    app.sidebar.file_uploader[0].set_value(("bad.png", BAD_FILES[bad](), "image/png")).run()
    assert not app.exception
    assert len(app.error) == 1
    msg = app.error[0].value
    assert "Traceback" not in msg and "PIL" not in msg and "bad.png" not in msg
    assert "bad.png" in [x.value for x in app.text]  # the file name: plain text, not Markdown
    np.testing.assert_array_equal(app.session_state["conv_feature_map"].values, before)


# --------------------------------------------------------------------------- URL state


def test_url_reproduces_the_view() -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"kernel": "1,2;3,4", "stride": "2", "bias": "0.5", "flip": "1"})
    at.run()
    assert_clean(at)
    expected = oracle_conv(CLASSIC_INPUT, [[1, 2], [3, 4]], 0.5, stride=2, flip=True)
    np.testing.assert_allclose(value_map_z(at, "conv_output_map"), expected)
    # and the app writes its state back into the URL
    at.number_input(key="conv_dilation").set_value(2).run()
    assert at.query_params["dilation"] in ("2", ["2"])
    assert at.query_params["kernel"] in ("1,2;3,4", ["1,2;3,4"])


def test_url_state_keeps_the_language() -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"lang": "pt", "stride": "2"})
    at.run()
    assert_clean(at)
    assert at.title[0].value == "Convolução"
    at.number_input(key="conv_dilation").set_value(2).run()
    assert at.query_params["lang"] in ("pt", ["pt"])
    assert at.query_params["stride"] in ("2", ["2"])
    assert at.query_params["dilation"] in ("2", ["2"])


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_a_broken_url_falls_back_with_a_warning(lang: str) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    at.query_params.update({"kernel": "1,**x**;3,4", "stride": "-3"})
    at.run()
    assert not at.exception and not at.error
    t = translator(lang)
    assert [w.value for w in at.warning] == [
        t("conv.url.ignored", name="kernel", reason=t("conv.grid.not_number", row=1, col=2)),
        t("conv.url.ignored", name="stride", reason=t("conv.url.range", lo=1, hi=16, value=-3)),
    ]
    assert metric_value(at, t("conv.step.value_at", row=0, col=0)) == 181  # the defaults
    at.run()
    assert not at.warning  # shown once


# --------------------------------------------------------------------------- every widget


def _clean_run(at: AppTest, lang: str, english: list[str]) -> AppTest:
    at.run()
    assert_clean(at)
    if lang == "pt":
        english += english_left(at)
    return at


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_every_convolution_widget_in_both_languages(lang: str) -> None:
    """Every widget of the page (and its grid editor and stepper) changed or pressed
    once; the Portuguese run shows no English from the page's catalogue."""
    t = translator(lang)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    english: list[str] = []
    run = functools.partial(_clean_run, at, lang, english)
    run()
    assert at.title[0].value == t("conv.title")
    assert at.subheader[0].value == t("conv.kernel")

    # Numbers input: its size and a cell
    at.number_input(key=numbers_key(at, "num_rows")).set_value(6)
    run()
    at.number_input(key=numbers_key(at, "num_cols")).set_value(4)
    run()
    edit_grid(at, "numbers", {(5, 3): 50})
    run()
    x = at.session_state["conv"].numbers.value
    assert x.shape == (6, 4) and x[5, 3] == 50
    # the kernel: size, a cell, preset, its placeholder, random, normalise, bias
    at.number_input(key=kernel_key(at, "kh")).set_value(2)
    run()
    at.number_input(key=kernel_key(at, "kw")).set_value(2)
    run()
    edit_grid(at, "kernel", {(0, 0): 3, (1, 1): 1})
    run()
    at.selectbox(key=kernel_key(at, "preset")).set_value("sharpen")
    run()
    assert kernel_description(t, "sharpen") in [c.value for c in at.caption]
    at.selectbox(key=kernel_key(at, "preset")).set_value("")
    run()
    at.button(key="conv_random").click()
    run()
    at.selectbox(key=kernel_key(at, "preset")).set_value("box_blur_3x3")
    run()
    at.button(key="conv_normalise").click()
    run()
    at.number_input(key="conv_bias").set_value(1.5)
    run()
    k = at.session_state["conv"].kernel.value
    np.testing.assert_allclose(k, np.full((3, 3), 1 / 9))
    np.testing.assert_allclose(value_map_z(at, "conv_output_map"), oracle_conv(x, k, 1.5))
    # the sidebar's parameters
    at.number_input(key="conv_stride").set_value(2)
    run()
    for how in ("same", "full", "number"):
        at.selectbox(key="conv_padding").set_value(how)
        run()
    at.number_input(key="conv_padding_n").set_value(2)
    run()
    for mode in ("reflect", "replicate", "circular", "zeros"):
        at.selectbox(key="conv_pad_mode").set_value(mode)
        run()
    at.number_input(key="conv_dilation").set_value(2)
    run()
    at.toggle(key="conv_flip").set_value(True)
    run()
    expected = oracle_conv(x, k, 1.5, stride=2, padding=2, dilation=2, flip=True)
    np.testing.assert_allclose(value_map_z(at, "conv_output_map"), expected)
    for name in ("relu", "leaky_relu", "sigmoid", "tanh"):
        at.selectbox(key="conv_activation").set_value(name)
        run()
    np.testing.assert_allclose(value_map_z(at, "conv_output_map"), np.tanh(expected), atol=1e-6)
    at.toggle(key="conv_robust").set_value(True)
    run()
    # the stepper
    at.button(key="conv_next").click()
    run()
    at.button(key="conv_prev").click()
    run()
    at.slider(key="conv_step").set_value(3)
    run()
    oy, ox = divmod(3, expected.shape[1])
    assert metric_value(at, t("conv.step.value_at", row=oy, col=ox)) == pytest.approx(
        expected[oy, ox]
    )
    at.select_slider(key="conv_speed").set_value("fast")
    run()
    at.toggle(key="conv_playing").set_value(True)
    run()
    at.toggle(key="conv_playing").set_value(False)
    run()
    # a colour sample: its widgets and the per-channel kernel
    at.radio(key="conv_source").set_value("sample")
    run()
    at.select_slider(key="conv_max_side").set_value(128)
    run()
    at.selectbox(key="conv_sample").set_value("Coins")
    run()
    at.radio(key="conv_colour").set_value("rgb")
    run()
    at.toggle(key=kernel_key(at, "per_channel")).set_value(True)
    run()
    edit_grid(at, "kernel", {(0, 0): 2}, channel=1)
    run()
    assert at.session_state["conv"].kernel.value.shape == (3, 3, 3)
    at.toggle(key=kernel_key(at, "per_channel")).set_value(False)
    run()
    assert at.session_state["conv"].kernel.value.shape == (3, 3)
    # an upload
    at.radio(key="conv_source").set_value("upload")
    run()
    img = (np.arange(20 * 30).reshape(20, 30) % 256).astype(np.uint8)
    at.sidebar.file_uploader[0].set_value(("mine.png", png_bytes(img), "image/png"))
    run()
    assert at.session_state["conv_feature_map"].values.shape[0] > 0
    assert english == []
    assert lang == "pt" or english_left(at)  # the check finds English where there is some


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_every_pooling_widget_in_both_languages(lang: str) -> None:
    from convviz.ui.pages.pooling import EXAMPLE

    t = translator(lang)
    script = (
        "import streamlit as st\n"
        "from convviz.ui.pages import convolution, pooling\n"
        "(convolution if st.session_state.get('show_conv') else pooling).render()\n"
    )
    at = AppTest.from_string(script, default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    english: list[str] = []
    run = functools.partial(_clean_run, at, lang, english)
    run()
    assert at.title[0].value == t("pool.title")
    for mode in ("avg", "min", "max"):
        at.radio(key="pool_mode").set_value(mode)
        run()
    at.number_input(key="pool_size").set_value(3)
    run()
    at.number_input(key="pool_padding").set_value(1)
    run()
    at.toggle(key="pool_stride_same").set_value(False)
    run()
    at.number_input(key="pool_stride").set_value(2)
    run()
    padded = np.pad(EXAMPLE, 1, constant_values=-np.inf)
    assert metric_value(at, t("pool.step.value_at", row=0, col=0)) == padded[:3, :3].max()
    at.number_input(key="pool_size").set_value(1)  # the padding follows: at most half
    run()
    assert at.number_input(key="pool_padding").value == 0
    at.number_input(key="pool_size").set_value(8)  # larger than the 6x6 example
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [t("pool.error.too_big", size=8, h=6, w=6)]
    at.number_input(key="pool_size").set_value(2)
    run()
    # the stepper
    at.button(key="pool_next").click()
    run()
    at.button(key="pool_prev").click()
    run()
    at.slider(key="pool_step").set_value(2)
    run()
    at.select_slider(key="pool_speed").set_value("slow")
    run()
    at.toggle(key="pool_playing").set_value(True)
    run()
    at.toggle(key="pool_playing").set_value(False)
    run()
    # activations
    for name in ("leaky_relu", "sigmoid", "tanh", "relu"):
        at.radio(key="pool_activation").set_value(name)
        run()
    at.radio(key="pool_activation").set_value("leaky_relu")
    run()
    at.slider(key="pool_alpha").set_value(0.3)
    run()
    after = chart(at, "pool_act_after")["data"][0]
    np.testing.assert_allclose(_decode(after["z"]), np.where(EXAMPLE > 0, EXAMPLE, 0.3 * EXAMPLE))
    # other inputs: a sample, an upload, the Convolution page's feature map
    at.radio(key="pool_source").set_value("sample")
    run()
    at.select_slider(key="pool_max_side").set_value(128)
    run()
    at.selectbox(key="pool_sample").set_value("Coins")
    run()
    at.radio(key="pool_source").set_value("upload")
    run()
    img = (np.arange(20 * 30).reshape(20, 30) % 256).astype(np.uint8)
    at.sidebar.file_uploader[0].set_value(("mine.png", png_bytes(img), "image/png"))
    run()
    at.session_state["show_conv"] = True
    run()
    at.session_state["show_conv"] = False
    run()
    at.radio(key="pool_source").set_value("feature_map")
    run()
    named = t("pool.input.feature_map", kh=3, kw=3)  # the Convolution page's map
    assert named in [c.value for c in at.caption]
    assert english == []
    assert lang == "pt" or english_left(at)  # the check finds English where there is some


# --------------------------------------------------------------------------- other pages


def test_pooling_page_steps_like_numpy() -> None:
    from convviz.ui.pages.pooling import EXAMPLE

    at = page("pooling").run()
    assert_clean(at)
    for mode, reduce in (("max", np.max), ("avg", np.mean), ("min", np.min)):
        at.radio(key="pool_mode").set_value(mode).run()
        at.slider(key="pool_step").set_value(4).run()  # row 1, col 1 of the 3x3 output
        assert_clean(at)
        assert metric_value(at, "Pooled value at (1, 1)") == pytest.approx(
            reduce(EXAMPLE[2:4, 2:4])
        )
    at.number_input(key="pool_size").set_value(3).run()
    at.toggle(key="pool_stride_same").set_value(False).run()
    at.number_input(key="pool_padding").set_value(1).run()
    assert_clean(at)
    at.radio(key="pool_source").set_value("sample").run()
    assert_clean(at)
    for name in ("leaky_relu", "sigmoid", "tanh"):
        at.radio(key="pool_activation").set_value(name).run()
        assert_clean(at)


def test_pooling_uses_the_convolution_feature_map() -> None:
    script = (
        "import streamlit as st\n"
        "from convviz.ui.pages import convolution, pooling\n"
        "(pooling if st.session_state.get('show_pool') else convolution).render()\n"
    )
    at = AppTest.from_string(script, default_timeout=TIMEOUT).run()
    at.session_state["show_pool"] = True
    at.run()
    assert_clean(at)
    assert at.radio(key="pool_source").value == "feature_map"
    assert "The Convolution page's feature map (kernel 3x3)." in [c.value for c in at.caption]
    at.number_input(key="pool_size").set_value(3).run()
    assert metric_value(at, "Pooled value at (0, 0)") == 660  # max of the 3x3 classic map


def test_feature_maps_page() -> None:
    at = page("feature_maps").run()
    assert_clean(at)
    at.radio(key="fm_bank").set_value("gabor").run()
    at.slider(key="fm_orientations").set_value(3).run()
    at.selectbox(key="fm_pool").set_value("max").run()
    assert_clean(at)
    at.radio(key="fm_bank").set_value("chosen").run()
    at.multiselect(key="fm_chosen").set_value([]).run()
    assert_clean(at)
    assert any("Choose at least one" in i.value for i in at.info)


def test_feature_maps_match_scipy() -> None:
    from convviz.ui.pages.feature_maps import _feature_maps

    img = sample_image("Coins", max_side=64).astype(np.float64)
    bank = {n: KERNELS[n] for n in ("sobel_y", "gaussian_5x5", "sharpen")}
    maps = _feature_maps(img, bank, "relu", "max")
    for m, k in zip(maps, bank.values(), strict=True):
        ref = np.maximum(ndimage.correlate(img, k.weights, mode="mirror"), 0)
        h, w = ref.shape[0] // 2, ref.shape[1] // 2  # 2x2 max pooling, by reshaping
        ref = ref[: 2 * h, : 2 * w].reshape(h, 2, w, 2).max(axis=(1, 3))
        np.testing.assert_allclose(m, ref, atol=1e-5)


@pytest.mark.parametrize("module", ["about", "train"])
def test_static_pages(module: str) -> None:
    at = page(module).run()
    assert_clean(at)
    if module == "about":
        text = " ".join(m.value for m in at.markdown)
        assert "MNIST" in text and "CC BY-SA 3.0" in text


def test_app_shell_navigates(app: AppTest) -> None:
    assert_clean(app)
    assert app.title[0].value == "Convolution"
