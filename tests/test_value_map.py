"""The value map (the numbers page's input and feature map as cells with their numbers):
its colours against plotly's own colour scale, its ink against the WCAG contrast rule,
its numbers the locale's way, and the page's maps against scipy's convolution."""

from __future__ import annotations

import numpy as np
import pytest
from plotly.colors import sample_colorscale
from scipy.signal import correlate2d

from convviz.errors import CodedError
from convviz.figures import DIVERGING, GREYS, TEXT_MAX_CELLS, colour_scale, value_grid
from convviz.i18n import translator
from convviz.ui.params import CLASSIC_INPUT, CLASSIC_KERNEL, KERNEL_MAX
from tests.support.apptest import page_app, value_map_args, value_map_z
from tests.support.conv_apptest import edit_grid

EN, PT = translator("en"), translator("pt")


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], float)


def _luminance(rgb: np.ndarray) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""
    c = rgb / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(lin @ [0.2126, 0.7152, 0.0722])


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(_rgb(a)), _luminance(_rgb(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("signed", [False, True])
def test_cell_colours_are_plotlys_colour_scale_at_each_value(signed: bool) -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 7)) * 50 + (0 if signed else 200)
    cs = colour_scale(a)
    assert cs.colorscale == (DIVERGING if signed else GREYS)
    g = value_grid(a, colour=cs)
    where = np.clip((a - cs.vmin) / (cs.vmax - cs.vmin), 0, 1)
    scale = cs.colorscale if isinstance(cs.colorscale, str) else [list(c) for c in cs.colorscale]
    want = np.array(sample_colorscale(scale, where.ravel().tolist(), colortype="tuple")) * 255
    got = np.array([_rgb(c) for row in g["fill"] for c in row])
    # the 256-colour table the image maps use: within one step of plotly's interpolation
    assert np.abs(got - want).max() <= 3, np.abs(got - want).max()


def test_every_number_is_legible_on_its_cell() -> None:
    """The ink of each cell is the one of the two (dark, white) with the higher WCAG
    contrast on its fill, and never under 3:1 (AA for large text) on either scale."""
    ramp = np.linspace(-1, 1, 256).reshape(16, 16)
    for a in (ramp, ramp + 1):  # diverging, then greys
        g = value_grid(a)
        inks = {i for row in g["ink"] for i in row}
        assert len(inks) == 2, inks  # both used along a full ramp
        for fills, chosen in zip(g["fill"], g["ink"], strict=True):
            for f, i in zip(fills, chosen, strict=True):
                other = (inks - {i}).pop()
                assert _contrast(f, i) >= max(3.0, _contrast(f, other)), (f, i)


def test_numbers_hover_and_words_follow_the_locale() -> None:
    a = np.array([[1234.0, -0.25], [np.nan, 3.0]])  # 4 significant digits, whole in full
    en, pt = value_grid(a, title="Map"), value_grid(a, title="Mapa", t=PT)
    assert en["text"] == [["1,234", "-0.25"], ["", "3"]]
    assert pt["text"] == [["1.234", "-0,25"], ["", "3"]]
    assert en["z"] == [[1234.0, -0.25], [None, 3.0]]  # NaN is no JSON
    assert pt["hover"][0][1] == f"{PT('fig.hover.cell', row=0, col=1)}: {PT('fig.value')} -0,25"
    assert pt["label"] == PT("fig.grid.label", title="Mapa", rows=2, cols=2)
    assert pt["legend"] and pt["legend"] != en["legend"]
    assert en["bar_ends"] == ["-1,234", "1,234"] and pt["bar_ends"] == ["-1.234", "1.234"]


def test_the_shared_extent_and_the_limits() -> None:
    # the lesson draws any kernel the editor offers, and its products, as a value map
    assert KERNEL_MAX**2 <= TEXT_MAX_CELLS
    assert value_grid(np.zeros((3, 3)), extent=(5, 5))["extent"] == 5
    assert value_grid(np.zeros((2, 4)))["extent"] == 4
    with pytest.raises(CodedError):
        value_grid(np.zeros(TEXT_MAX_CELLS + 1).reshape(1, -1))
    with pytest.raises(CodedError):
        value_grid(np.zeros(3))


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_the_numbers_page_draws_both_maps_as_values(lang: str) -> None:
    at = page_app("convolution", lang)
    at.run()
    assert not at.exception
    t = translator(lang)
    np.testing.assert_array_equal(value_map_z(at, "conv_input_map"), CLASSIC_INPUT)
    oracle = correlate2d(CLASSIC_INPUT, CLASSIC_KERNEL, mode="valid")
    np.testing.assert_allclose(value_map_z(at, "conv_output_map"), oracle)
    out = value_map_args(at, "conv_output_map")
    assert out["text"] == [[t.num(v) for v in row] for row in oracle]
    assert out["title"] == t("conv.result.map") and out["extent"] == 5
    assert value_map_args(at, "conv_input_map")["title"] == t("conv.result.input")
    # An edit: the map follows (scipy's), in the locale's numbers.
    edit_grid(at, "kernel", {(0, 1): "0,5" if lang == "pt" else "0.5"})
    at.run()
    k = CLASSIC_KERNEL.copy()
    k[0, 1] = 0.5
    want = correlate2d(CLASSIC_INPUT, k, mode="valid")
    np.testing.assert_allclose(value_map_z(at, "conv_output_map"), want)
    assert value_map_args(at, "conv_output_map")["text"][0][0] == t.num(want[0, 0])


def test_the_window_padding_and_cells_not_computed_yet() -> None:
    from convviz.figures import PAD_FILL, not_yet_shapes, window_shape

    a = np.array([[1.0, 2.0, np.nan], [4.0, np.nan, np.nan]])
    pad = np.array([[True, False, False], [False, False, True]])
    g = value_grid(a, shapes=[window_shape(0, 1, 2, 2)], hatch=pad, t=PT)
    # the window in cell coordinates: columns 1-2, rows 0-1, edges half a cell out
    (w,) = g["shapes"]
    assert (w["x0"], w["x1"], w["y0"], w["y1"], w["type"]) == (0.5, 2.5, -0.5, 1.5, "rect")
    assert g["hatch"] == pad.tolist()
    assert g["legend"].endswith(PT("fig.legend.padding"))  # the words say what hatching is
    assert value_grid(a)["hatch"] is None and PAD_FILL  # no padding, no hatching
    # not computed yet: no number, the grey of the veils over big maps
    assert g["text"][1][1] == "" and g["fill"][1][1] == g["fill"][0][2] == "#e1e1e1"
    assert g["fill"][0][0] != "#e1e1e1"
    with pytest.raises(CodedError):
        value_grid(a, hatch=np.ones((3, 3), bool))
    # veils and crosshairs (paper-wide lines) come through as they are drawn on charts
    veils = value_grid(np.ones((3, 4)), shapes=not_yet_shapes((3, 4), 1, 2))["shapes"]
    assert [(v["y0"], v["y1"]) for v in veils] == [(0.5, 1.5), (1.5, 2.5)]


@pytest.mark.parametrize("signed", [False, True])
def test_a_big_map_is_one_picture_of_plotlys_colours(signed: bool) -> None:
    import base64
    import io

    from PIL import Image

    from convviz.figures import crosshair_shapes, image_grid

    rng = np.random.default_rng(5)
    a = rng.normal(size=(40, 60)) + (0 if signed else 5)
    cs = colour_scale(a)
    g = image_grid(a, colour=cs, shapes=crosshair_shapes(3, 4), t=PT)
    assert (g["image"]["rows"], g["image"]["cols"], g["text"]) == (40, 60, [])
    png = base64.b64decode(g["image"]["src"].split(",", 1)[1])
    got = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), float)
    where = np.clip((a - cs.vmin) / (cs.vmax - cs.vmin), 0, 1)
    scale = cs.colorscale if isinstance(cs.colorscale, str) else [list(c) for c in cs.colorscale]
    want = np.array(sample_colorscale(scale, where.ravel().tolist(), colortype="tuple")) * 255
    assert np.abs(got.reshape(-1, 3) - want).max() <= 3
    assert g["legend"] == value_grid(a[:10, :10], colour=cs, t=PT)["legend"]
    assert g["hover_tpl"] == PT("fig.hover.cell", row="{row}", col="{col}")
    assert [s["xref"] for s in g["shapes"]] == ["paper", "x"]  # the crosshair spans the map
    rgb = image_grid(np.zeros((4, 5, 3)))
    assert rgb["bar"] is None and rgb["image"]["cols"] == 5
