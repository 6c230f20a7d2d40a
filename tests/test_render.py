"""convviz.render: the PNGs decode (by Pillow) to exactly the pixels meant; the cache is bounded.

Oracles: Pillow's decoder, plotly's own colour interpolation, the scaling
written out by hand.
"""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from plotly.colors import sample_colorscale

from convviz import render
from convviz.errors import CodedError
from convviz.render import (
    DIVERGING,
    GREYS,
    encode_png,
    lut,
    png_bytes,
    png_cache_clear,
    png_cache_info,
    png_data_url,
    png_from_map,
    png_from_pixels,
    to_indices,
)

RNG = np.random.default_rng(0)


def decode(png: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG"
    im.load()
    return im


@pytest.mark.parametrize(
    ("shape", "mode"), [((5, 7), "L"), ((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA")]
)
def test_pixels_round_trip(shape, mode):
    px = RNG.integers(0, 256, shape, dtype=np.uint8)
    im = decode(png_from_pixels(px))
    assert im.mode == mode
    np.testing.assert_array_equal(np.asarray(im), px)


def test_palette_png_round_trip():
    idx = RNG.integers(0, 256, (6, 9), dtype=np.uint8)
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    im = decode(png_from_pixels(idx, palette=palette))
    assert im.mode == "P"
    np.testing.assert_array_equal(np.asarray(im), idx)  # the indices survive
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[idx])


@pytest.mark.parametrize("scale", [GREYS, DIVERGING, "Blues"])
def test_map_png_is_the_scaled_map_through_plotlys_colours(scale):
    a = RNG.normal(size=(8, 11))
    a[0, 0], a[0, 1], a[0, 2] = np.nan, np.inf, -np.inf
    vmin, vmax = -1.5, 2.0
    im = decode(png_from_map(a, vmin, vmax, scale))
    # The scaling written out: vmin -> 0, vmax -> 255, clipped; NaN -> 0, inf -> 255.
    t = np.where(np.isnan(a), vmin, a)
    t = np.clip(np.where(np.isposinf(t), vmax, t), vmin, vmax)
    want_idx = np.rint((t - vmin) / (vmax - vmin) * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(im), want_idx)
    stops = scale if isinstance(scale, str) else [list(c) for c in scale]
    colours = sample_colorscale(stops, (want_idx.ravel() / 255).tolist(), colortype="tuple")
    want_rgb = np.rint(np.asarray(colours) * 255).reshape(*a.shape, 3)
    np.testing.assert_allclose(np.asarray(im.convert("RGB")), want_rgb, atol=1)


def test_png_bytes_of_a_picture_and_encode_png_of_a_map():
    rgb = RNG.random((4, 6, 3))
    np.testing.assert_array_equal(
        np.asarray(decode(png_bytes(rgb))), np.rint(rgb * 255).astype(np.uint8)
    )
    a = np.array([[-2.0, 0.0], [1.0, 2.0]])
    want = np.array([[0, 128], [191, 255]], np.uint8)  # min-max stretch, rounded
    np.testing.assert_array_equal(np.asarray(decode(encode_png(a))), want)
    with pytest.raises(CodedError, match="channels"):
        encode_png(np.zeros((2, 2, 2)))
    with pytest.raises(CodedError, match=r"\(H, W\) or \(H, W, 3\)"):
        png_bytes(np.zeros((2, 2, 4)))
    with pytest.raises(CodedError, match="`vmax` must be greater than `vmin`"):
        png_from_map(np.zeros((2, 2)), 1.0, 1.0)
    with pytest.raises(CodedError, match="uint8"):
        png_from_pixels(np.zeros((2, 2)))


def test_data_url_round_trip():
    png = png_from_pixels(np.arange(12, dtype=np.uint8).reshape(3, 4))
    url = png_data_url(png)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png


def test_lut_is_plotlys_interpolation_and_read_only():
    table = lut(DIVERGING)
    assert table.shape == (256, 3) and table.dtype == np.uint8 and not table.flags.writeable
    (mid,) = sample_colorscale(DIVERGING, [128 / 255], colortype="tuple")
    np.testing.assert_allclose(table[128], np.rint(np.asarray(mid) * 255), atol=0)
    assert to_indices(np.array([0.0, 1.0]), 0.0, 1.0).tolist() == [0, 255]


def test_one_cache_follows_the_content():
    png_cache_clear()
    a = RNG.random((16, 16))
    first = png_from_map(a, 0.0, 1.0)
    assert png_from_map(a.copy(), 0.0, 1.0) is first  # same content: no second encode
    info = png_cache_info()
    assert (info["entries"], info["hits"], info["misses"]) == (1, 1, 1)
    b = a.copy()
    b[3, 4] = 0.5 if a[3, 4] != 0.5 else 0.25
    assert png_from_map(b, 0.0, 1.0) != first  # one changed pixel
    assert png_from_map(a, 0.0, 2.0) != first  # another range
    assert png_from_map(a, 0.0, 1.0, DIVERGING) != first  # another scale
    # Pixels and maps share the one cache.
    png_from_pixels(np.zeros((3, 3), np.uint8))
    assert png_cache_info()["entries"] == 5


def test_the_shared_cache_is_bounded_in_entries():
    png_cache_clear()
    for i in range(render.PNG_CACHE_MAX_ENTRIES + 40):
        png_from_pixels(np.full((2, 2), i % 256, np.uint8) + np.uint8(i // 256))
        png_from_pixels(np.array([[i % 256, i // 256]], np.uint8))
    info = png_cache_info()
    assert info["entries"] == render.PNG_CACHE_MAX_ENTRIES
    assert info["bytes"] <= render.PNG_CACHE_MAX_BYTES


def test_cache_evicts_least_recently_used_within_its_byte_budget():
    cache = render._PngCache(max_bytes=1000, max_entries=100)
    made = []

    def make(tag):
        def f():
            made.append(tag)
            return tag.encode() * 300  # 300 bytes each

        return f

    for tag in "abc":
        cache.get(tag.encode(), make(tag))
    cache.get(b"a", make("a"))  # a is now the most recent
    cache.get(b"d", make("d"))  # 1200 bytes > 1000: the oldest (b) goes
    assert cache.info()["entries"] == 3 and cache.info()["bytes"] == 900
    cache.get(b"b", make("b"))
    assert made == ["a", "b", "c", "d", "b"]  # b was encoded again, a never was


def test_cache_is_safe_across_threads():
    png_cache_clear()
    maps = [RNG.random((32, 32)) for _ in range(8)]
    want = [png_from_map(m, 0.0, 1.0) for m in maps]
    png_cache_clear()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: png_from_map(maps[i % 8], 0.0, 1.0), range(64)))
    assert all(g == want[i % 8] for i, g in enumerate(got))
    assert png_cache_info()["entries"] == 8


def test_the_pages_names_still_come_from_figures_and_images():
    from convviz import figures, images, train_figures

    assert figures.png_bytes is png_bytes and figures.colorize is render.colorize
    assert figures.value_range is render.value_range and figures.GREYS is GREYS
    assert figures.colorbar_strip is render.colorbar_strip and figures.DIVERGING is DIVERGING
    assert images.encode_png is encode_png and images.to_display is render.to_display
    assert images.to_uint8 is render.to_uint8
    assert images.symmetric_range is render.symmetric_range
    assert train_figures.colorize is render.colorize


def test_indices_are_the_scaling_written_out_cell_by_cell():
    a = RNG.normal(0.0, 2.0, (23, 17))
    a[0, :4] = [np.nan, np.inf, -np.inf, 0.5]  # missing values and the ends
    a[1, :3] = [-1.0, 1.5, -7.0]  # the range's ends, and beyond it
    vmin, vmax = -1.0, 1.5

    def one(v: float) -> int:
        if np.isnan(v):
            return 0
        s = (v - vmin) * (255.0 / (vmax - vmin))
        return 255 if s >= 255 else 0 if s <= 0 else round(s)  # round(): half to even

    want = [[one(float(v)) for v in row] for row in a]
    got = to_indices(a, vmin, vmax)
    assert got.dtype == np.uint8 and got.shape == a.shape
    assert got.tolist() == want


def test_signed_colour_range_and_clipped_share_against_a_sort():
    from convviz.render import colour_scale

    x = RNG.standard_normal((60, 70)) ** 3
    x[5, 5] = np.nan  # left out of the range and of the share
    before = x.copy()
    finite = np.sort(np.abs(x[np.isfinite(x)]).ravel())
    pos = 0.99 * (finite.size - 1)  # the 99th percentile, interpolated between neighbours
    i = int(pos)
    p99 = finite[i] + (finite[i + 1] - finite[i]) * (pos - i)
    cs = colour_scale(x)
    assert cs.rule == "p99_abs" and cs.colorscale == DIVERGING
    assert cs.vmin == pytest.approx(-p99, rel=1e-12) and cs.vmax == pytest.approx(p99, rel=1e-12)
    assert cs.clipped == np.count_nonzero(finite > cs.vmax) / finite.size
    np.testing.assert_array_equal(x, before)  # the caller's map is not reordered
    y = RNG.standard_normal((40, 40))  # all finite: the fast path, on a view of y
    y_before = y.copy()
    assert colour_scale(y).rule == "p99_abs"
    np.testing.assert_array_equal(y, y_before)
