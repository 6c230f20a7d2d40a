"""The lesson: where the window starts, where a click puts it, how the arrows and Play move
it, what a kernel resize keeps, and the words shown when no window fits.

The core rules (:mod:`convviz.lesson`, :func:`convviz.ui.params.resized_keeping`) are held
to brute-force versions written here; the pages (AppTest, English and Portuguese) to those
rules and to the numbers of the seeds' 5x5 example.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from streamlit.testing.v1 import AppTest

from convviz.i18n import translator
from convviz.images import sample_image
from convviz.kernels import KERNELS
from convviz.lesson import SWEEP_TICKS, advanced, busiest_window, moved, window_at
from convviz.ui.params import CLASSIC_INPUT, resized, resized_keeping
from tests.support.conv_apptest import click, edit_grid, english_left, kernel_key, numbers_key

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 60
# The seeds' example, valid cross-correlation with the 4-neighbour kernel.
CLASSIC_OUT = np.array([[181, 303, 618], [115, 338, 605], [189, 351, 660]], dtype=np.float64)


# --------------------------------------------------------------------------- core rules


def brute_busiest(xp: np.ndarray, extent, stride, out_hw) -> tuple[int, int]:
    a = xp.mean(axis=0) if xp.ndim == 3 else xp
    var = sliding_window_view(a, extent).var(axis=(-2, -1))
    var = var[:: stride[0], :: stride[1]][: out_hw[0], : out_hw[1]]
    if var.max() <= 1e-12:
        return (0, 0)
    oy, ox = np.unravel_index(int(np.argmax(var)), var.shape)
    return (int(oy), int(ox))


@pytest.mark.parametrize("seed", range(6))
def test_busiest_window_is_the_window_of_largest_variance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(6, 30, size=2)
    x = rng.random((h, w)) * rng.integers(0, 2, size=(h, w))  # patches of structure
    eh, ew = rng.integers(1, 6, size=2)
    s = int(rng.integers(1, 4))
    out_hw = ((h - eh) // s + 1, (w - ew) // s + 1)
    assert busiest_window(x, (eh, ew), (s, s), out_hw) == brute_busiest(x, (eh, ew), (s, s), out_hw)


def test_busiest_window_on_a_photo_and_on_flat_input() -> None:
    x = sample_image("Cameraman", mode="gray", max_side=128).astype(np.float64)
    out_hw = (126, 126)
    found = busiest_window(x, (3, 3), (1, 1), out_hw)
    assert found == brute_busiest(x, (3, 3), (1, 1), out_hw)
    assert found != (0, 0)
    rgb = np.random.default_rng(1).random((3, 9, 9))
    assert busiest_window(rgb, (3, 3), (2, 2), (4, 4)) == brute_busiest(rgb, (3, 3), (2, 2), (4, 4))
    assert busiest_window(np.full((8, 8), 0.5), (3, 3), (1, 1), (6, 6)) == (0, 0)


def brute_window_at(v: float, k: int, s: int, d: int, n: int) -> int:
    """The window whose centre is nearest ``v`` (ties: the later one)."""
    centres = np.arange(n) * s + d * (k - 1) / 2
    dist = np.abs(centres - v)
    return int(np.flatnonzero(dist == dist.min())[-1])


@pytest.mark.parametrize("seed", range(5))
def test_a_click_selects_the_window_centred_nearest_it(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        k, s, d = (int(v) for v in rng.integers(1, 5, size=3))
        size = int(rng.integers(d * (k - 1) + 1, 30))
        n = (size - d * (k - 1) - 1) // s + 1
        r, c = (int(v) for v in rng.integers(0, size, size=2))
        got = window_at(r, c, (k, k), (s, s), (d, d), (n, n))
        assert got == (brute_window_at(r, k, s, d, n), brute_window_at(c, k, s, d, n))
        # the window chosen covers the clicked cell whenever some window does
        oy = got[0]
        if any(j * s <= r <= j * s + d * (k - 1) for j in range(n)):
            assert oy * s <= r <= oy * s + d * (k - 1)


def test_moves_and_play_advance_wrap_around() -> None:
    ho, wo = 4, 5
    n = ho * wo
    for i in range(n):
        oy, ox = divmod(i, wo)
        assert moved(i, "right", (ho, wo)) == (i + 1) % n
        assert moved(i, "left", (ho, wo)) == (i - 1) % n
        assert moved(i, "down", (ho, wo)) == ((oy + 1) % ho) * wo + ox
        assert moved(i, "up", (ho, wo)) == ((oy - 1) % ho) * wo + ox
        assert advanced(i, "cell", (ho, wo), 3) == (i + 3) % n
        # a whole row: the window ends on the last cell of a row; the map fills by rows
        end = advanced(i, "row", (ho, wo))
        assert end % wo == wo - 1
        assert end // wo == (oy if ox != wo - 1 else (oy + 1) % ho)
        assert advanced(i, "row", (ho, wo), 2) == advanced(end, "row", (ho, wo))
    big = (300, 400)
    assert advanced(0, "sweep", big) == math.ceil(300 * 400 / SWEEP_TICKS)
    with pytest.raises(ValueError):
        advanced(0, "diagonal", big)
    with pytest.raises(ValueError):
        moved(0, "diagonal", big)


# --------------------------------------------------------------------------- resize rule


def test_shrinking_and_growing_back_keeps_every_value() -> None:
    k = np.arange(1.0, 26.0).reshape(5, 5)
    one, canvas = resized_keeping(k, 1, 1)
    assert one.tolist() == [[13.0]]  # the centre
    back, _ = resized_keeping(one, 5, 5, canvas)
    np.testing.assert_array_equal(back, k)  # no zeros where values could be kept
    # without the canvas (the old rule) the ring would be lost
    assert not resized(one, 5, 5)[0].any()


def test_an_edit_at_the_smaller_size_wins_and_the_ring_stays() -> None:
    k = np.arange(1.0, 26.0).reshape(5, 5)
    small, canvas = resized_keeping(k, 3, 3)
    np.testing.assert_array_equal(small, k[1:4, 1:4])
    edited = small.copy()
    edited[1, 1] = -7.0
    back, _ = resized_keeping(edited, 5, 5, canvas)
    want = k.copy()
    want[2, 2] = -7.0
    np.testing.assert_array_equal(back, want)


@pytest.mark.parametrize("seed", range(5))
def test_any_resize_sequence_back_to_the_largest_size_restores_the_grid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = rng.integers(-9, 10, size=(7, 6)).astype(np.float64)
    a, canvas = k, None
    for _ in range(8):
        a, canvas = resized_keeping(a, int(rng.integers(1, 8)), int(rng.integers(1, 7)), canvas)
    back, canvas = resized_keeping(a, 7, 6, canvas)
    np.testing.assert_array_equal(back, k)
    # growing past every size it had: the original in the middle, zeros only outside
    grown, _ = resized_keeping(back, 9, 8, canvas)
    np.testing.assert_array_equal(grown, np.pad(k, 1))


def test_a_per_channel_kernel_resizes_each_channel_alike() -> None:
    k = np.stack([np.arange(9.0).reshape(3, 3) + 10 * c for c in range(3)])
    one, canvas = resized_keeping(k, 1, 1)
    assert one[:, 0, 0].tolist() == [4.0, 14.0, 24.0]
    np.testing.assert_array_equal(resized_keeping(one, 3, 3, canvas)[0], k)
    # a canvas of another channel count (per-channel switched) is not used
    np.testing.assert_array_equal(resized_keeping(one[0], 3, 3, canvas)[0], np.pad([[4.0]], 1))


# --------------------------------------------------------------------------- pages


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def clean_run(at: AppTest, lang: str, english: list[str]) -> AppTest:
    at.run()
    assert_clean(at)
    if lang == "pt":
        english += english_left(at)
    return at


def conv_app(lang: str) -> tuple[AppTest, functools.partial, list[str]]:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    english: list[str] = []
    run = functools.partial(clean_run, at, lang, english)
    run()
    return at, run, english


def step(at: AppTest, prefix: str = "conv") -> int:
    return int(at.slider(key=f"{prefix}_step").value)


def value_shown(at: AppTest, lang: str, row: int, col: int) -> str:
    label = translator(lang)("conv.step.value_at", row=row, col=col)
    (m,) = [m for m in at.metric if m.label == label]
    return m.value


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_numbers_lesson_click_arrows_and_the_classic_result(lang: str) -> None:
    t = translator(lang)
    at, run, english = conv_app(lang)
    assert step(at) == 0 and value_shown(at, lang, 0, 0) == "181"  # the seeds' example
    # ◀ ▲ ▼ ▶ with their help texts (the arrow keys' names) in the page's language
    helps = {b.key: b.help for b in at.button if b.key in ("conv_prev", "conv_up", "conv_down")}
    assert helps == {k: t(f"app.step.{k[5:]}") for k in ("conv_prev", "conv_up", "conv_down")}
    click(at, "conv_step_input", 4, 4)  # the bottom-right input cell: window (2, 2)
    run()
    assert step(at) == 8 and value_shown(at, lang, 2, 2) == "660"
    run()  # the same selection again is not a new click: the window stays
    assert step(at) == 8
    at.button(key="conv_up").click()
    run()
    assert step(at) == 5 and value_shown(at, lang, 1, 2) == "605"
    at.button(key="conv_down").click()
    run()
    at.button(key="conv_down").click()  # wraps to the top row
    run()
    assert step(at) == 2 and value_shown(at, lang, 0, 2) == "618"
    click(at, "conv_step_output", 1, 0)  # a click on the output map writes that cell
    run()
    assert step(at) == 3 and value_shown(at, lang, 1, 0) == "115"
    click(at, "conv_step_input", 0, 0)
    run()
    assert step(at) == 0
    at.button(key="conv_next").click()
    run()
    click(at, "conv_step_input", 0, 0)  # the same cell clicked again is a new click
    run()
    assert step(at) == 0
    # every cell of the classic result, reached by clicks on the output map
    for oy in range(3):
        for ox in range(3):
            click(at, "conv_step_output", oy, ox)
            run()
            assert value_shown(at, lang, oy, ox) == t.int(int(CLASSIC_OUT[oy, ox]))
    assert english == []


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_an_image_opens_on_structure_and_plays_by_rows_and_fast(lang: str) -> None:
    at, run, english = conv_app(lang)
    at.radio(key="conv_source").set_value("sample")
    run()
    x = sample_image("Cameraman", mode="gray", max_side=512).astype(np.float64)
    ho, wo = x.shape[0] - 2, x.shape[1] - 2
    oy, ox = brute_busiest(x, (3, 3), (1, 1), (ho, wo))
    start = oy * wo + ox
    assert step(at) == start and start != 0
    # the play modes appear on a map this big; one tick of each, from the start
    by = at.segmented_control(key="conv_play_by")
    assert by.options == [translator(lang)(f"app.play.by.{m}") for m in ("cell", "row", "sweep")]
    by.set_value("row")
    at.toggle(key="conv_playing").set_value(True)
    run()
    assert step(at) == oy * wo + wo - 1  # the first tick finishes the window's row
    at.toggle(key="conv_playing").set_value(False)
    run()
    at.segmented_control(key="conv_play_by").set_value("sweep")
    at.slider(key="conv_step").set_value(0)
    run()
    at.toggle(key="conv_playing").set_value(True)
    run()
    assert step(at) == math.ceil(ho * wo / SWEEP_TICKS)
    at.toggle(key="conv_playing").set_value(False)
    at.segmented_control(key="conv_play_by").set_value("cell")
    run()
    # a click on the big map's pixel (300, 100) centres the window there
    click(at, "conv_step_overview", 300, 100)
    run()
    assert divmod(step(at), wo) == (300 - 1, 100 - 1)
    # a new image opens on its own structure; a kernel change keeps the window
    here = step(at)
    at.selectbox(key=kernel_key(at, "preset")).set_value("sobel_x")
    run()
    assert step(at) == here
    at.selectbox(key="conv_sample").set_value("Coins")
    run()
    coins = sample_image("Coins", mode="gray", max_side=512).astype(np.float64)
    ch, cw = coins.shape[0] - 2, coins.shape[1] - 2
    cy, cx = brute_busiest(coins, (3, 3), (1, 1), (ch, cw))
    assert step(at) == cy * cw + cx
    assert english == []


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_kernel_resize_keeps_the_preset_values(lang: str) -> None:
    at, run, english = conv_app(lang)
    # the Numbers input: 5x5 -> 3x3 -> 5x5 is the seeds' example again
    for side in (3, 5):
        at.number_input(key=numbers_key(at, "num_rows")).set_value(side)
        run()
        at.number_input(key=numbers_key(at, "num_cols")).set_value(side)
        run()
    np.testing.assert_array_equal(at.session_state["conv"].numbers.value, CLASSIC_INPUT)
    at.selectbox(key=kernel_key(at, "preset")).set_value("gaussian_5x5")
    run()
    preset = np.array(KERNELS["gaussian_5x5"].weights)
    for rows, cols in ((1, 5), (1, 1), (5, 1), (5, 5)):
        at.number_input(key=kernel_key(at, "kh")).set_value(rows)
        run()
        at.number_input(key=kernel_key(at, "kw")).set_value(cols)
        run()
    np.testing.assert_allclose(at.session_state["conv"].kernel.value, preset)
    # an edit at 3x3 wins; the outer ring comes back
    at.number_input(key=kernel_key(at, "kh")).set_value(3)
    run()
    at.number_input(key=kernel_key(at, "kw")).set_value(3)
    run()
    edit_grid(at, "kernel", {(1, 1): 2.5})
    run()
    at.number_input(key=kernel_key(at, "kh")).set_value(5)
    run()
    at.number_input(key=kernel_key(at, "kw")).set_value(5)
    run()
    want = preset.copy()
    want[2, 2] = 2.5
    np.testing.assert_allclose(at.session_state["conv"].kernel.value, want)
    assert english == []


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_no_window_fits_is_said_in_words_not_a_negative_size(lang: str) -> None:
    t = translator(lang)
    at, _, english = conv_app(lang)
    at.number_input(key=kernel_key(at, "kh")).set_value(7)
    at.run()
    assert not at.exception
    texts = [m.value for m in at.markdown]
    said = t("conv.formula.none", axis="H", extent=7, d=1, k=7, padded=5, n=5, pad=0)
    assert said in texts
    latex = [e.value for e in at.latex]
    assert len(latex) == 1 and latex[0].strip("$\n").startswith("W_")  # the axis that fits
    assert not any("-1" in v.rsplit("=", 1)[-1] for v in latex)
    # with dilation the sentence gives the dilated span
    at.number_input(key=kernel_key(at, "kh")).set_value(3)
    at.number_input(key="conv_dilation").set_value(3)
    at.run()
    said = t("conv.formula.none", axis="H", extent=7, d=3, k=3, padded=5, n=5, pad=0)
    assert said in [m.value for m in at.markdown]
    if lang == "pt":
        english += english_left(at)
    assert english == []


POOL_SCRIPT = "from convviz.ui.pages import pooling\npooling.render()\n"


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_pooling_lesson_click_arrows_and_play_modes(lang: str) -> None:
    from convviz.ui.pages.pooling import EXAMPLE

    t = translator(lang)
    at = AppTest.from_string(POOL_SCRIPT, default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    english: list[str] = []
    run = functools.partial(clean_run, at, lang, english)
    run()
    assert step(at, "pool") == 0  # the example opens on its corner
    click(at, "pool_step_input", 5, 0)  # 2x2 windows, stride 2: cell (5, 0) is window (2, 0)
    run()
    assert step(at, "pool") == 6
    label = t("pool.step.value_at", row=2, col=0)
    assert [m.value for m in at.metric if m.label == label] == [t.int(int(EXAMPLE[4:, :2].max()))]
    at.button(key="pool_up").click()
    run()
    assert step(at, "pool") == 3
    click(at, "pool_step_output", 0, 2)
    run()
    assert step(at, "pool") == 2
    # a sample image: it opens where the map varies most, and Play offers its modes
    at.radio(key="pool_source").set_value("sample")
    run()
    x = sample_image("Cameraman", mode="gray", max_side=256).astype(np.float64)
    ho, wo = x.shape[0] // 2, x.shape[1] // 2
    oy, ox = brute_busiest(x, (2, 2), (2, 2), (ho, wo))
    assert step(at, "pool") == oy * wo + ox
    at.segmented_control(key="pool_play_by").set_value("row")
    at.toggle(key="pool_playing").set_value(True)
    run()
    assert step(at, "pool") == oy * wo + wo - 1
    at.toggle(key="pool_playing").set_value(False)
    run()
    assert english == []


STEPPER = """
import streamlit as st
from convviz.ui.common import step_controls
idx = step_controls("p", 100, 1.0 if st.session_state.get("p_playing") else None)
st.write(idx)
"""


def test_play_is_not_held_back_by_a_stale_slider_value() -> None:
    # While Play repaints slower than it ticks, the browser sends back slider values it
    # has not yet been shown the change of (measured: 1-3 steps old on a 512x512 image);
    # they must not move the window back. A value the stepper did not write is the
    # user's, and wins; paused, the slider always wins.
    at = AppTest.from_string(STEPPER, default_timeout=TIMEOUT)
    at.session_state["p_playing"] = True

    def tick() -> int:
        # one Play tick due (a 1 s interval, the clock started half a tick ago)
        done = at.session_state["p_clock"][1] if "p_clock" in at.session_state else 0
        if done:
            at.session_state["p_clock"] = (time.monotonic() - done - 0.5, done, 1.0)
        at.run()
        assert not at.exception
        return step(at, "p")

    assert [tick() for _ in range(4)] == [1, 2, 3, 4]
    at.slider(key="p_step").set_value(2)  # an echo of a position written two runs ago
    assert tick() == 5
    at.slider(key="p_step").set_value(50)  # the user's drag
    assert tick() == 51
    at.session_state["p_playing"] = False  # paused: a value written before is the user's too
    at.slider(key="p_step").set_value(4).run()
    assert step(at, "p") == 4
