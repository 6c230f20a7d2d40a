"""Figure builders (convviz.figures).

Oracles: Pillow decoding the PNGs we ship, plotly's own colour interpolation,
loop counts, convviz.shapes / conv2d output shapes, hand-written expectations.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from plotly.colors import sample_colorscale

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
    value_range,
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


@pytest.mark.parametrize(
    "values",
    [[1e9, 1e9 + 1e-6], [3.0, 3.0], [-2.5e15, -2.5e15 + 1.0], [0.0, 5e-324], [1.0]],
    ids=["ulps apart", "equal", "huge, 1 apart", "subnormal", "one value"],
)
def test_histogram_of_values_too_close_to_bin_is_drawn(values) -> None:
    """numpy refuses 60 bins over a range of a few ulps: the figure widens it instead."""
    fig = histogram_figure(np.array(values))
    assert sum(fig.data[0].y) == len(values)  # every value counted once


# ------------------------------------------------------------------ colours that explain themselves

from convviz.conv import conv2d  # noqa: E402
from convviz.figures import (  # noqa: E402
    PAD_FILL,
    PAD_NAME,
    colour_legend,
    colour_scale,
    kernel_figure,
    pad_shapes,
)
from convviz.i18n import translator  # noqa: E402
from convviz.images import sample_image  # noqa: E402
from convviz.kernels import KERNELS  # noqa: E402
from convviz.render import lut  # noqa: E402

VISIBLE = 40.0  # RGB distance from the zero colour that a person sees as "coloured"


def _percentile_by_sorting(v: np.ndarray, q: float) -> float:
    """Linear-interpolated percentile written out (numpy's default rule), as an oracle."""
    s = np.sort(v.ravel())
    pos = q / 100 * (s.size - 1)
    i = int(np.floor(pos))
    return float(s[i] + (s[min(i + 1, s.size - 1)] - s[i]) * (pos - i))


def _coloured_share(fig) -> float:
    """Share of the shipped pixels visibly away from the colour the figure gives 0.

    Everything comes from the figure itself: its PNG, its colour bar's limits and scale.
    """
    px = decode_png(fig.data[0].source).astype(np.float64)
    bar = fig.data[1].marker
    zero = plotly_rgb(bar.colorscale, (0 - bar.cmin) / (bar.cmax - bar.cmin))
    return float((np.sqrt(((px - zero) ** 2).sum(-1)) >= VISIBLE).mean())


@pytest.mark.parametrize("sample", ["Cameraman", "Coins"])
@pytest.mark.parametrize("kernel", ["sobel_x", "outline", "gabor"])
def test_edge_maps_are_no_longer_almost_white(sample, kernel) -> None:
    """Issue 16 §3: Sobel/Outline/Gabor maps spanned ±max and came out almost white."""
    x = sample_image(sample)  # 512 px, as the Convolution page shows it
    out = conv2d(x, np.asarray(KERNELS[kernel].weights), padding="same")
    fig = map_figure(out)  # the defaults a page gets
    assert fig.data[0].type == "image"
    m = _percentile_by_sorting(np.abs(out), 99)
    bar = fig.data[1].marker
    np.testing.assert_allclose([bar.cmin, bar.cmax], [-m, m], rtol=1e-12)
    share = _coloured_share(fig)
    full = np.abs(out).max()
    old = _coloured_share(map_figure(out, vmin=-full, vmax=full))
    # A meaningful share of the map is visibly coloured (measured: 12-29% of the pixels
    # against 5-14% under ±max, the old default), and clearly more than before.
    assert share >= 0.10, share
    assert share >= 1.5 * old, (share, old)
    # the legend says so, with the number the colour bar uses
    assert "99th percentile" in fig.layout.meta["legend"]


def test_small_maps_and_kernels_keep_the_exact_range() -> None:
    # every cell of a worked example counts: no percentile below 257 values
    a = np.linspace(-3, 1, 16).reshape(4, 4)
    assert value_range(a) == (-3.0, 3.0, DIVERGING)
    assert colour_scale(a).rule == "max_abs"
    big = np.linspace(-3, 1, 1000)
    assert colour_scale(big).rule == "p99_abs"
    assert value_range(big, robust=False)[:2] == (-3.0, 3.0)
    # a mostly-zero map whose 99th percentile is 0 falls back to the maximum
    sparse = np.zeros(1000)
    sparse[:3] = [-2.0, 1.0, 0.5]
    assert colour_scale(sparse).as_tuple() == (-2.0, 2.0, DIVERGING)


def test_unsigned_maps_keep_a_sequential_scale() -> None:
    img = np.random.default_rng(0).random((64, 64)) * 0.5 + 0.25
    lo, hi, scale = value_range(img)
    assert scale == GREYS and (lo, hi) == (img.min(), img.max())
    fig = map_figure(img)
    assert fig.layout.meta["legend"].startswith("Black: ")


def test_legend_words_and_numbers_in_both_languages() -> None:
    a = np.array([[-0.5, 0.25], [0.125, 0.0]])
    en = heatmap_figure(a)
    pt = heatmap_figure(a, t=translator("pt"))
    assert en.layout.meta["legend"] == (
        "Red: positive, blue: negative, white: zero; range ±0.5 (the largest |value|)."
    )
    assert pt.layout.meta["legend"] == (
        "Vermelho: positivo, azul: negativo, branco: zero; faixa ±0,5 (o maior |valor|)."
    )
    # the words are drawn: an annotation under the plot, with room made for it
    (note,) = en.layout.annotations
    assert note.text.replace("<br>", " ") == en.layout.meta["legend"]
    assert note.yanchor == "top" and note.y == 0 and en.layout.margin.b > 10
    # given limits: the share beyond them is said, in the locale's percent
    x = np.linspace(-1, 1, 1001)
    fig = map_figure(x.reshape(7, 143), vmin=-0.5, vmax=0.5, t=translator("pt"))
    beyond = np.mean(np.abs(x) > 0.5)
    assert translator("pt").pct(beyond, 1) in fig.layout.meta["legend"]
    assert heatmap_figure(a, legend=False).layout.annotations == ()


def test_legend_text_for_a_page_caption() -> None:
    cs = colour_scale(np.array([[0.0, 1234.0]]))
    assert colour_legend(cs, translator("pt")) == "Preto: 0, branco: 1.234 (menor e maior valor)."
    assert colour_legend(cs, padding=True).endswith("Hatched yellow: padding.")


def _path_cells(path: str) -> set[tuple[int, int]]:
    cells = set()
    for part in path.split("M")[1:]:
        x0, rest = part.split(",", 1)
        y0 = rest.split("H", 1)[0]
        cells.add((round(float(y0) + 0.5), round(float(x0) + 0.5)))
    return cells


def test_padding_is_hatched_yellow_that_no_data_colour_uses() -> None:
    mask = np.ones((5, 6), bool)
    mask[1:4, 1:5] = False
    shapes = pad_shapes(mask, origin=(2, 3))
    assert [s["name"] for s in shapes] == [PAD_NAME, PAD_NAME]
    fill, hatch = shapes
    expect = {(int(r) + 2, int(c) + 3) for r, c in np.argwhere(mask)}
    assert _path_cells(fill["path"]) == expect  # exactly the padding cells
    assert hatch["line"]["width"] >= 1 and "L" in hatch["path"]
    # the fill over white is far from every colour either data scale paints
    r, g, b, alpha = (float(v) for v in PAD_FILL[5:-1].split(","))
    over_white = alpha * np.array([r, g, b]) + (1 - alpha) * 255
    for scale in (DIVERGING, GREYS):
        dist = np.sqrt(((lut(scale).astype(float) - over_white) ** 2).sum(1)).min()
        assert dist > 60, (scale, dist)
    # every map builder names the padding in its legend, in both languages
    for build in (heatmap_figure, image_figure):
        fig = build(np.zeros((5, 6)), shapes=shapes)
        assert fig.layout.meta["legend"].endswith("Hatched yellow: padding.")
    pt = heatmap_figure(np.zeros((5, 6)), shapes=shapes, t=translator("pt"))
    assert "Amarelo hachurado: preenchimento" in pt.layout.meta["legend"]
    assert image_figure(np.zeros((5, 6, 3)), shapes=shapes).layout.meta["legend"]


def test_kernel_figure_heat_view_of_a_large_kernel() -> None:
    gabor = np.asarray(KERNELS["gabor"].weights)
    assert gabor.shape == (13, 13)
    fig = kernel_figure(gabor, title="Gabor")
    m = np.abs(gabor).max()
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-m, m)  # every weight counts
    assert fig.data[0].colorscale[0][1] == plotly_rgb_str(DIVERGING, 0.0)
    assert fig.data[0].texttemplate is None  # colour only: no runs of zeros
    assert "weight" in fig.data[0].hovertemplate
    assert "largest |value|" in fig.layout.meta["legend"]
    small = kernel_figure(np.array([[1.0, -2.0], [0.0, 0.5]]), t=translator("pt"))
    assert [list(r) for r in small.data[0].text] == [["1", "-2"], ["0", "0,5"]]
    assert "peso" in small.data[0].hovertemplate
    with pytest.raises(ValueError, match="`k` must be 2-D"):
        kernel_figure(np.zeros((3, 3, 3)))


def plotly_rgb_str(scale, t: float) -> str:
    r, g, b = (int(v) for v in plotly_rgb(scale, t))
    return f"rgb({r},{g},{b})"


def test_feature_grid_legend_and_hover_ranges() -> None:
    maps = [np.linspace(-1, 1, 400).reshape(20, 20), np.linspace(0, 2, 400).reshape(20, 20)]
    fig = feature_grid_figure(maps, ["a", "b"], ncols=2, t=translator("pt"))
    legend = fig.layout.meta["legend"]
    assert "vermelho positivo" in legend and "preto no 1º percentil" in legend
    assert "faixa ±" in fig.data[0].hovertemplate and "faixa de" in fig.data[1].hovertemplate
    texts = [a.text for a in fig.layout.annotations]
    assert texts[:2] == ["a", "b"]  # the subplot titles stay
