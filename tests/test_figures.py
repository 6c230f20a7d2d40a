"""Figure builders (convviz.figures) and the pure UI logic (convviz.ui.params).

Oracles: Pillow decoding the PNGs we ship, plotly's own colour interpolation,
loop counts, convviz.shapes / conv2d output shapes, hand-written expectations.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from plotly.colors import sample_colorscale

from convviz.conv import conv2d, conv2d_step
from convviz.figures import (
    DIVERGING,
    GREYS,
    HEATMAP_MAX_CELLS,
    activation_curves_figure,
    add_window,
    colorize,
    feature_grid_figure,
    heatmap_figure,
    histogram_figure,
    image_figure,
    map_figure,
    num_text,
    value_range,
)
from convviz.i18n import translator
from convviz.ui.params import (
    CLASSIC_KERNEL,
    ConvSettings,
    decode_query,
    encode_query,
    fmt,
    keep_last_valid,
    normalise_sum,
    output_size_latex,
    parse_grid,
    random_kernel,
)


def decode_png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    return np.asarray(png.convert("RGB"))  # maps ship as palette PNGs


def plotly_rgb(scale, t: float) -> np.ndarray:
    scale = scale if isinstance(scale, str) else [list(c) for c in scale]
    (c,) = sample_colorscale(scale, [t], colortype="tuple")
    return np.rint(np.asarray(c) * 255)


# --------------------------------------------------------------------------- colours


@pytest.mark.parametrize("scale", [GREYS, DIVERGING])
def test_colorize_matches_plotly_interpolation(scale) -> None:
    a = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]])
    got = colorize(a, -2.0, 2.0, scale)
    for j, t in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
        np.testing.assert_allclose(got[0, j], plotly_rgb(scale, t), atol=2)


def test_colorize_clips_and_survives_nonfinite() -> None:
    got = colorize(np.array([[-5.0, 5.0, np.nan, np.inf]]), 0.0, 1.0)
    assert got[0].tolist() == [[0, 0, 0], [255, 255, 255], [0, 0, 0], [255, 255, 255]]
    with pytest.raises(ValueError, match="`vmax` must be greater"):
        colorize(np.zeros((2, 2)), 1.0, 1.0)
    with pytest.raises(ValueError, match="`a` must be 2-D"):
        colorize(np.zeros(3), 0.0, 1.0)


def test_value_range_rules() -> None:
    assert value_range(np.array([[-1.0, 3.0]])) == (-3.0, 3.0, DIVERGING)
    assert value_range(np.array([[0.5, 2.0]])) == (0.5, 2.0, GREYS)
    assert value_range(np.zeros((3, 3))) == (-0.5, 0.5, GREYS)  # never zero-width
    assert value_range(np.array([[np.nan]])) == (0.0, 1.0, GREYS)
    # robust: one outlier in 1000 values does not set the range
    x = np.concatenate([np.linspace(0, 1, 999), [1000.0]])
    lo, hi, _ = value_range(x, robust=True)
    assert 0 <= lo < 0.02 and 0.98 < hi < 1.5
    assert value_range(np.array([1.0, 2.0]), signed=True)[:2] == (-2.0, 2.0)


# --------------------------------------------------------------------------- figures


def test_image_figure_ships_the_exact_pixels() -> None:
    a = np.random.default_rng(1).random((37, 53))
    fig = image_figure(a, vmin=0.0, vmax=1.0, colorscale=GREYS)
    px = decode_png(fig.data[0].source)
    assert px.shape == (37, 53, 3)
    np.testing.assert_allclose(px[..., 0], np.rint(a * 255), atol=1)
    # a colour bar rides on an invisible marker; axes are pinned to the map
    assert fig.data[1].marker.showscale and fig.data[1].marker.cmax == 1.0
    assert tuple(fig.layout.xaxis.range) == (-0.5, 52.5)
    assert tuple(fig.layout.yaxis.range) == (36.5, -0.5)  # row 0 on top


def test_image_png_cache_follows_the_content() -> None:
    # PNGs are cached by a digest of the values: same values -> same PNG, and
    # changing the array in place must give a new PNG (never a stale picture).
    a = np.zeros((8, 8))
    a[2, 3] = 1.0
    first = image_figure(a, vmin=0, vmax=1).data[0].source
    assert image_figure(a.copy(), vmin=0, vmax=1).data[0].source == first
    a[5, 5] = 1.0
    changed = decode_png(image_figure(a, vmin=0, vmax=1).data[0].source)
    assert changed[5, 5, 0] == 255 and changed[2, 3, 0] == 255 and changed[0, 0, 0] == 0
    other_range = decode_png(image_figure(a, vmin=0, vmax=2).data[0].source)
    assert abs(int(other_range[5, 5, 0]) - 128) <= 1


def test_image_figure_rgb_and_extent() -> None:
    rgb = np.zeros((4, 5, 3))
    rgb[..., 1] = 1.0
    fig = image_figure(rgb, extent=(10, 20))
    px = decode_png(fig.data[0].source)
    assert px[0, 0].tolist() == [0, 255, 0]
    assert len(fig.data) == 1  # no colour bar for RGB
    assert tuple(fig.layout.xaxis.range) == (-0.5, 19.5)
    with pytest.raises(ValueError, match="`a` must be"):
        image_figure(np.zeros((2, 2, 2)))


def test_heatmap_figure_values_mask_and_text() -> None:
    a = np.array([[1.0, -2.5], [3.25, 0.0]])
    fig = heatmap_figure(a, mask=np.array([[True, True], [False, True]]), origin=(5, 7))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z[0].tolist() == [1.0, -2.5] and np.isnan(z[1, 0]) and z[1, 1] == 0.0
    assert [list(r) for r in fig.data[0].text] == [["1", "-2.5"], ["", "0"]]
    assert list(fig.data[0].x) == [7, 8] and list(fig.data[0].y) == [5, 6]
    assert fig.data[0].texttemplate == "%{text}"
    assert "%{z" in fig.data[0].hovertemplate
    big = heatmap_figure(np.zeros((40, 40)))
    assert big.data[0].texttemplate is None  # too many cells to write numbers in


def test_map_figure_switches_on_size() -> None:
    side = int(np.sqrt(HEATMAP_MAX_CELLS))
    assert map_figure(np.zeros((side, side))).data[0].type == "heatmap"
    assert map_figure(np.zeros((side + 1, side))).data[0].type == "image"
    assert map_figure(np.zeros((3, 3, 3))).data[0].type == "image"


def test_not_yet_shapes_cover_exactly_the_cells_after_the_current_one() -> None:
    from convviz.figures import not_yet_shapes

    for oy, ox in [(0, 0), (1, 2), (2, 3), (0, 3)]:
        covered = np.zeros((3, 4), bool)
        for s in not_yet_shapes((3, 4), oy, ox):
            rows = slice(int(s["y0"] + 0.5), int(s["y1"] + 0.5))
            cols = slice(int(s["x0"] + 0.5), int(s["x1"] + 0.5))
            covered[rows, cols] = True
        flat = np.arange(12).reshape(3, 4)
        np.testing.assert_array_equal(covered, flat > oy * 4 + ox)


def test_add_window_encloses_the_cells() -> None:
    fig = add_window(heatmap_figure(np.zeros((5, 5))), 1, 2, 3, 2)
    s = fig.layout.shapes[-1]
    assert (s.x0, s.x1, s.y0, s.y1) == (1.5, 3.5, 0.5, 3.5)


def test_histogram_counts_like_a_loop() -> None:
    x = np.array([0.0, 0.1, 0.1, 0.5, 0.9, 1.0, np.nan])
    fig = histogram_figure(x, bins=4)
    counts = [0, 0, 0, 0]
    for v in x[np.isfinite(x)]:
        counts[min(int(v / 0.25), 3)] += 1
    assert np.asarray(fig.data[0].y).tolist() == counts
    assert np.asarray(histogram_figure(np.full(3, 2.0), bins=1).data[0].y).tolist() == [3]


def test_activation_curves() -> None:
    fig = activation_curves_figure(
        {"relu": lambda v: np.maximum(v, 0), "neg": lambda v: -v}, highlight="relu"
    )
    xs = np.asarray(fig.data[0].x)
    np.testing.assert_allclose(np.asarray(fig.data[0].y), np.maximum(xs, 0))
    assert fig.data[0].line.width > fig.data[1].line.width


def test_feature_grid_figure_each_map_scaled_on_its_own() -> None:
    maps = [np.arange(12.0).reshape(3, 4), -np.arange(12.0).reshape(3, 4)]
    fig = feature_grid_figure(maps, ["up", "down"], ncols=2)
    first = decode_png(fig.data[0].source)[..., 0]
    assert first[0, 0] <= 3 and first[-1, -1] >= 252  # min -> black, max -> white (robust)
    second = decode_png(fig.data[1].source)
    np.testing.assert_allclose(second[0, 0], plotly_rgb(DIVERGING, 0.5), atol=2)  # 0 is white
    with pytest.raises(ValueError, match="`titles`"):
        feature_grid_figure(maps, ["one"])


# --------------------------------------------------------------------------- UI logic


def test_parse_grid_accepts_a_data_editor_frame() -> None:
    df = pd.DataFrame([[0, 1.5], [-2, "3"]], columns=["0", "1"])
    np.testing.assert_array_equal(parse_grid(df), [[0, 1.5], [-2, 3]])


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (None, "row 1, column 2 is empty"),
        (float("nan"), "row 1, column 2 is empty"),
        ("", "row 1, column 2 is empty"),
        ("abc", "row 1, column 2 is not a number"),
        (float("inf"), "row 1, column 2 must be a finite number"),
        (object(), "row 1, column 2 is not a number"),
    ],
)
def test_parse_grid_rejects_bad_cells(cell, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_grid([[1.0, cell]])


def test_parse_grid_shape_rules() -> None:
    with pytest.raises(ValueError, match="2-D grid"):
        parse_grid([1, 2, 3])
    with pytest.raises(ValueError, match="between 1x1 and 15x15"):
        parse_grid(np.zeros((16, 3)))
    with pytest.raises(ValueError, match="between 1x1 and 4x4"):
        parse_grid(np.zeros((0, 3)), max_side=4)


def test_keep_last_valid() -> None:
    last = np.eye(2)
    k, msg = keep_last_valid([[1, 2], [3, None]], last)
    assert k is last and msg.endswith("Using the last valid kernel.")
    k, msg = keep_last_valid([[1, 2], [3, 4]], last)
    assert msg is None and k.tolist() == [[1, 2], [3, 4]]


def test_random_and_normalise() -> None:
    k = random_kernel((3, 5, 5), np.random.default_rng(3))
    assert k.shape == (3, 5, 5) and set(np.unique(k)) <= {-2, -1, 0, 1, 2}
    n = normalise_sum(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert n.sum() == pytest.approx(1.0) and n[1, 1] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="sum to 0"):
        normalise_sum(np.array([[-1.0, 1.0]]))


def test_fmt() -> None:
    assert [fmt(v) for v in (181.0, -0.0, 0.1 + 0.2, 1234567.0)] == [
        "181",
        "0",
        "0.3",
        "1.23457e+06",
    ]


def test_query_round_trip() -> None:
    s = ConvSettings(
        kernel=np.arange(18.0).reshape(2, 3, 3)[:1].repeat(3, axis=0) / 7,
        bias=-0.25,
        stride=3,
        padding=2,
        pad_mode="circular",
        dilation=2,
        flip=True,
        source="sample",
        sample="Coins",
        colour="rgb",
        activation="tanh",
    )
    q = encode_query(s)
    assert all(isinstance(v, str) for v in q.values())
    back, problems = decode_query(q, {"Coins": "", "Cameraman": ""})
    assert problems == []
    np.testing.assert_allclose(back.kernel, s.kernel, rtol=1e-7)
    assert back == s
    assert encode_query(ConvSettings()) == {}  # defaults stay out of the URL
    np.testing.assert_array_equal(decode_query({})[0].kernel, CLASSIC_KERNEL)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"kernel": "1,2;3"}, "kernel"),  # ragged
        ({"kernel": "1|2|3|4"}, "kernel"),  # 4 channels
        ({"kernel": "1|2,3|4"}, "kernel"),  # channel sizes differ
        ({"stride": "0"}, "stride"),
        ({"stride": "two"}, "stride"),
        ({"padding": "huge"}, "padding"),
        ({"pad_mode": "mirror"}, "pad_mode"),
        ({"dilation": "99"}, "dilation"),
        ({"flip": "yes"}, "flip"),
        ({"source": "camera"}, "source"),
        ({"sample": "Nope"}, "sample"),
        ({"colour": "cmyk"}, "colour"),
        ({"activation": "gelu"}, "activation"),
        ({"bias": "nan"}, "bias"),
    ],
)
def test_decode_query_falls_back_per_field(query, field) -> None:
    s, problems = decode_query(query, {"Cameraman": ""})
    assert len(problems) == 1 and f"`{field}`" in problems[0]
    assert s == ConvSettings()


@pytest.mark.parametrize(
    ("n", "k", "s", "padding", "d"),
    [(5, 3, 1, "valid", 1), (28, 3, 2, "same", 1), (7, 3, 1, "full", 2), (10, 4, 3, 2, 2)],
)
def test_output_size_formula_agrees_with_conv2d(n, k, s, padding, d) -> None:
    from convviz.shapes import resolve_padding

    pad = resolve_padding(padding, (n, n), (k, k), (s, s), (d, d))
    tex = output_size_latex(n, k, s, pad[0], d)
    out = conv2d(np.zeros((n, n)), np.ones((k, k)), stride=s, padding=padding, dilation=d)
    assert tex.endswith(f"= {out.shape[0]}")
    assert f"{{{n} + {pad[0][0]} + {pad[0][1]} - {d}\\cdot({k}-1) - 1}}{{{s}}}" in tex


@pytest.mark.parametrize("pad_mode", ["zeros", "reflect", "replicate", "circular"])
def test_stepper_neighbourhood_view_matches_the_core_patch(pad_mode: str) -> None:
    # The page pads the input itself to draw the zoomed neighbourhood; the core's
    # ConvStep.patch is the oracle for what lies under the window.
    from convviz.shapes import resolve_padding
    from convviz.ui.pages.convolution import _padded

    x = np.random.default_rng(0).random((2, 6, 7))
    w = np.ones((2, 3, 3))
    pad = resolve_padding("full", (6, 7), (3, 3), (1, 1), (2, 2))
    xp = _padded(x, pad, pad_mode)
    for idx in (0, 5, 17, 40):
        step = conv2d_step(x, w, index=idx, padding="full", dilation=2, pad_mode=pad_mode)
        np.testing.assert_array_equal(xp[:, step.rows][:, :, step.cols], step.patch)


# --------------------------------------------------------------------------- languages
PT = translator("pt")


def test_figures_default_to_english_words_and_separators() -> None:
    fig = heatmap_figure(np.array([[1.0, -2.5]]))
    assert fig.layout.separators == ".,"
    assert fig.data[0].hovertemplate.startswith("row %{y}, col %{x}<br>value %{z")
    assert histogram_figure(np.arange(5.0)).layout.xaxis.title.text == "value"


def test_heatmap_in_portuguese() -> None:
    a = np.array([[1.0, -2.5], [1234.7, 0.125]])
    fig = heatmap_figure(a, t=PT, title="Kernel")
    assert fig.layout.separators == ",."
    assert fig.layout.title.text == "Kernel"  # titles from the caller stay as given
    assert fig.data[0].hovertemplate.startswith("linha %{y}, coluna %{x}<br>valor %{z:.6g}")
    assert [list(r) for r in fig.data[0].text] == [["1", "-2,5"], ["1.235", "0,125"]]
    named = heatmap_figure(a, t=PT, hover_name="peso")
    assert "<br>peso %{z" in named.data[0].hovertemplate


def test_every_map_figure_carries_portuguese_words() -> None:
    img = image_figure(np.zeros((4, 6)), t=PT)
    assert img.layout.separators == ",." and img.data[0].hovertemplate.startswith("linha")
    big = map_figure(np.zeros((100, 100)), t=PT)
    assert big.data[0].type == "image" and big.layout.separators == ",."
    hist = histogram_figure(np.arange(10.0), t=PT)
    assert (hist.layout.xaxis.title.text, hist.layout.yaxis.title.text) == ("valor", "contagem")
    assert hist.layout.separators == ",."
    curves = activation_curves_figure({"ReLU": np.tanh}, t=PT)
    assert (curves.layout.xaxis.title.text, curves.layout.yaxis.title.text) == ("entrada", "saída")
    assert curves.layout.separators == ",." and curves.data[0].name == "ReLU"
    grid = feature_grid_figure([np.zeros((3, 3))], ["Sobel x"], ncols=1, t=PT)
    assert grid.data[0].hovertemplate == "linha %{y}, coluna %{x}<extra>Sobel x</extra>"
    assert grid.layout.separators == ",." and grid.layout.annotations[0].text == "Sobel x"


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_num_text_writes_what_translator_num_writes(lang) -> None:
    """The fast cell formatter against Babel (through Translator.num), ties included."""
    t = translator(lang)
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.normal(scale=10.0 ** rng.integers(-4, 7, 300)),
            [0.0, -0.0, 0.5, 1.5, 2.5, -2.5, 0.125, 2.675, 1e-9, -1e-9, 123456789.0, 1 / 3],
        ]
    )
    for v in values:
        for d in (0, 1, 3, 6):
            want = t.num(v, d, fixed=False)
            want = "0" if want == "-0" else want
            assert num_text(v, d, t) == want, (v, d)
