"""Every number a person or a link can set is bounded, and every result is finite (issue 17.3).

Bounds live in :mod:`convviz.shapes` (``VALUE_MAX`` ...); overflow in any path is a coded
``err.overflow``, shown by the page in its language, never drawn as NaN/inf.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from convviz.errors import CodedError
from convviz.i18n import translator

TIMEOUT = 60


def page(module: str) -> AppTest:
    return AppTest.from_string(
        f"from convviz.ui.pages import {module}\n{module}.render()\n", default_timeout=TIMEOUT
    )


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for e in [*at.warning, *at.error, *at.exception])


# --------------------------------------------------------------------------- the measured failures


def test_typed_huge_bias_keeps_the_page() -> None:
    at = page("convolution").run()
    at.number_input(key="conv_bias").set_value(1e308).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="conv_bias") is not None


def test_linked_huge_bias_keeps_the_page() -> None:
    at = page("convolution")
    at.query_params["bias"] = "1e308"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.number_input(key="conv_bias").value == 0.0


def _sample_page(lang: str = "en") -> AppTest:
    at = page("convolution")
    if lang != "en":
        at.query_params["lang"] = lang
    at.run()
    at.radio(key="conv_source").set_value("sample").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _kernel(at: AppTest) -> np.ndarray:
    return at.session_state["conv"].kernel.base


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_huge_kernel_cells_on_a_sample_are_refused_and_the_kernel_stays(lang: str) -> None:
    """The measured failure: 1e200 cells on a 512x512 sample (FFT path) gave an all-NaN map."""
    from tests.support.conv_apptest import edit_grid

    at = _sample_page(lang)
    before = _kernel(at).copy()
    edit_grid(at, "kernel", {(0, 0): 1e200, (1, 1): 1e200}).run()
    assert not at.exception, [e.value for e in at.exception]
    t = translator(lang)
    want = t("conv.grid.too_large", row=1, col=1, limit=1e6)
    assert want in texts(at), texts(at)
    np.testing.assert_array_equal(_kernel(at), before)
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_typed_huge_bias_message_in_the_page_language_and_previous_bias_stays(lang: str) -> None:
    at = page("convolution")
    if lang != "en":
        at.query_params["lang"] = lang
    at.run()
    at.number_input(key="conv_bias").set_value(2.5).run()
    at.number_input(key="conv_bias").set_value(1e308).run()
    assert not at.exception, [e.value for e in at.exception]
    assert translator(lang)("conv.bias.too_large", limit=1e6) in texts(at), texts(at)
    assert at.number_input(key="conv_bias").value == 2.5
    assert at.session_state["conv"].bias == 2.5


def test_linked_huge_bias_is_reported_and_ignored() -> None:
    at = page("convolution")
    at.query_params["bias"] = "1e308"
    at.run()
    assert translator("en")("conv.url.too_large", limit=1e6) in texts(at), texts(at)
    assert at.query_params.get("bias") in (None, [], "0")


# --------------------------------------------------------------------------- one test per bound

from convviz.pool import check_settings  # noqa: E402
from convviz.shapes import (  # noqa: E402
    DILATION_MAX,
    PADDING_MAX,
    STRIDE_MAX,
    VALUE_MAX,
    WINDOW_MAX,
    check_at_most,
    check_magnitude,
)
from convviz.ui.params import decode_query, merge_edits, parse_grid  # noqa: E402


def _code(fn, *a, **kw) -> str:
    with pytest.raises(CodedError) as exc:
        fn(*a, **kw)
    return exc.value.code


def test_value_bound() -> None:
    assert check_magnitude(VALUE_MAX, "b") == VALUE_MAX
    assert check_magnitude(-VALUE_MAX, "b") == -VALUE_MAX
    assert _code(check_magnitude, np.nextafter(VALUE_MAX, np.inf), "b") == "err.magnitude"
    assert _code(check_magnitude, float("nan"), "b") == "err.magnitude"


def test_grid_cell_bound() -> None:
    assert parse_grid([[VALUE_MAX, -VALUE_MAX]]).tolist() == [[VALUE_MAX, -VALUE_MAX]]
    assert _code(parse_grid, [[0, 1e200]]) == "conv.grid.too_large"
    a, problems = merge_edits(np.ones((2, 2)), {"edited_rows": {0: {"1": -1e7}}})
    assert a.tolist() == [[1, 1], [1, 1]]
    assert [p.error.code for p in problems] == ["conv.grid.too_large"]
    assert problems[0].error.params == {"row": 1, "col": 2, "limit": VALUE_MAX}


def test_url_bias_bound() -> None:
    s, problems = decode_query({"bias": "1000000"})
    assert s.bias == VALUE_MAX and problems == []
    s, problems = decode_query({"bias": "1e308"})
    assert s.bias == 0.0
    assert [(n, e.code) for n, e in problems] == [("bias", "conv.url.too_large")]


def test_url_kernel_cell_bound() -> None:
    s, problems = decode_query({"kernel": "1,2;3,1e7"})
    assert [(n, e.code) for n, e in problems] == [("kernel", "conv.grid.too_large")]
    assert s.kernel.shape == (3, 3)  # the default kernel stays


@pytest.mark.parametrize(
    ("key", "top"), [("stride", STRIDE_MAX), ("padding", PADDING_MAX), ("dilation", DILATION_MAX)]
)
def test_url_integer_bounds(key: str, top: int) -> None:
    s, problems = decode_query({key: str(top)})
    assert getattr(s, key) == top and problems == []
    s, problems = decode_query({key: str(top + 1)})
    assert [(n, e.code) for n, e in problems] == [(key, "conv.url.range")]
    assert problems[0][1].params["hi"] == top


@pytest.mark.parametrize(
    ("args", "name"),
    [((WINDOW_MAX + 1, 1, 0), "size"), ((2, WINDOW_MAX + 1, 0), "stride"), ((4, 1, 3), "padding")],
)
def test_pool_settings_bounds(args: tuple[int, int, int], name: str) -> None:
    assert check_settings(WINDOW_MAX, WINDOW_MAX, WINDOW_MAX // 2) == (8, 8, 4)
    with pytest.raises(CodedError) as exc:
        check_settings(*args)
    assert exc.value.code == "err.at_most" and exc.value.params["name"] == name


def test_at_most_messages_in_both_languages() -> None:
    with pytest.raises(CodedError) as exc:
        check_at_most(9, "size", 1, 8)
    assert str(exc.value) == "`size` must be at most 8, got 9"
    assert translator("pt")(exc.value.code, **exc.value.params).startswith("`size` deve ser no")


# --------------------------------------------------------------------------- overflow, each path

from convviz.activations import leaky_relu  # noqa: E402
from convviz.conv import conv2d, conv2d_naive, conv2d_step  # noqa: E402
from convviz.images import sample_image  # noqa: E402
from convviz.pool import pool2d  # noqa: E402

BIG32 = np.float32(3e38)  # near float32's largest, 3.4e38


def _overflow(fn, *a, **kw) -> None:
    with pytest.raises(CodedError) as exc:
        fn(*a, **kw)
    assert exc.value.code == "err.overflow"
    assert translator("pt")("err.overflow", **exc.value.params) != str(exc.value)


def test_direct_path_overflow_is_reported() -> None:
    x = np.full((4, 4), BIG32, np.float32)
    _overflow(conv2d, x, np.ones((2, 2), np.float32), method="direct")


def test_loop_and_step_overflow_are_reported() -> None:
    x = np.full((3, 3), BIG32, np.float32)
    _overflow(conv2d_naive, x, np.ones((2, 2), np.float32))
    _overflow(conv2d_step, x, np.ones((2, 2), np.float32), index=0)


def test_fft_path_overflow_is_reported() -> None:
    x = np.full((64, 64), 1e300)
    _overflow(conv2d, x, np.full((5, 5), 1e300), method="fft")


def test_fft_overflow_that_the_direct_sums_avoid_gives_the_direct_numbers() -> None:
    """The measured case: on a 512x512 sample, 1e300 taps overflow the spectra (NaN) only."""
    x = sample_image("Cameraman", max_side=512).astype(np.float64)
    w = np.full((3, 3), 1e300)
    got = conv2d(x, w, method="fft")
    assert np.isfinite(got).all()
    # oracle: the window sums, written out (exact in float64 here up to rounding)
    want = sum(x[i : i + 510, j : j + 510] for i in range(3) for j in range(3)) * 1e300
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(conv2d(x, w), want, rtol=1e-12)  # auto


def test_pool_overflow_is_reported() -> None:
    _overflow(pool2d, np.full((2, 2), BIG32, np.float32), 2, mode="avg")
    assert pool2d(np.full((2, 2), BIG32, np.float32), 2).item() == BIG32  # max stays finite


def test_activation_overflow_is_reported() -> None:
    _overflow(leaky_relu, np.array([-BIG32], np.float32), alpha=2.0)
    assert leaky_relu(np.array([-BIG32], np.float32), alpha=0.5).item() == pytest.approx(-1.5e38)


def test_huge_input_cell_in_numbers_mode_is_refused_and_the_input_stays() -> None:
    from tests.support.conv_apptest import edit_grid

    at = page("convolution").run()  # opens on the numbers input
    before = at.session_state["conv"].numbers.base.copy()
    edit_grid(at, "numbers", {(2, 3): -1e9}).run()
    assert not at.exception, [e.value for e in at.exception]
    assert translator("en")("conv.grid.too_large", row=3, col=4, limit=1e6) in texts(at)
    np.testing.assert_array_equal(at.session_state["conv"].numbers.base, before)


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_pooling_page_reports_an_overflow_in_its_language(lang: str) -> None:
    from convviz.ui.pages.convolution import FeatureMap

    at = page("pooling")
    if lang != "en":
        at.query_params["lang"] = lang
    at.session_state["conv_feature_map"] = FeatureMap(np.full((8, 8), 1.7e308), (3, 3))
    at.run()
    at.radio(key="pool_mode").set_value("avg").run()
    assert not at.exception, [e.value for e in at.exception]
    t = translator(lang)
    assert [e.value for e in at.error] == [t("err.overflow", name="pool2d")]
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-pool_out")]


@pytest.mark.parametrize(("side", "ok"), [(15, True), (16, False)])
def test_kernel_side_bound(side: int, ok: bool) -> None:
    from convviz.ui.params import KERNEL_MAX, NUMBERS_MAX

    assert (KERNEL_MAX, NUMBERS_MAX) == (15, 16)
    text = ";".join([",".join(["1"] * side)] * side)
    s, problems = decode_query({"kernel": text})
    if ok:
        assert s.kernel.shape == (side, side) and problems == []
    else:
        assert [(n, e.code) for n, e in problems] == [("kernel", "conv.grid.size")]
    assert parse_grid(np.zeros((16, 16)), max_side=NUMBERS_MAX).shape == (16, 16)
    assert _code(parse_grid, np.zeros((17, 1)), max_side=NUMBERS_MAX) == "conv.grid.size"
