"""MNIST-style preprocessing of a drawn or photographed digit (convviz.digits).

Oracles: scipy.ndimage.center_of_mass for the centring, Pillow's own "L" conversion
for the greyscale, skimage.transform.resize for the scaling, and real MNIST test
digits, which the recipe must leave (nearly) as they are.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image, ImageDraw
from skimage.transform import resize

from convviz.digits import (
    BOX,
    SIDE,
    STAGE_KEYS,
    DigitStages,
    center_of_mass,
    preprocess_digit,
)
from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.nn import load_mnist


def _paper(h: int, w: int, draw) -> np.ndarray:
    """A white sheet (h, w) uint8 with black ink drawn by ``draw(ImageDraw)``."""
    im = Image.new("L", (w, h), 255)
    draw(ImageDraw.Draw(im))
    return np.asarray(im)


def _seven(d: ImageDraw.ImageDraw, x0: int, y0: int, s: float, width: int) -> None:
    """A "7" whose box starts near (x0, y0), ``s`` pixels per unit (box 6 x 10 units)."""
    d.line([(x0, y0), (x0 + 6 * s, y0), (x0 + 2 * s, y0 + 10 * s)], fill=0, width=width)


def _bbox(a: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(a.any(axis=1))
    cols = np.flatnonzero(a.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _check_mnist_like(s: DigitStages) -> None:
    """What every result must be: 28x28 float32 in [0, 1], box 20 on its longer side,
    centre of mass within half a pixel of (14, 14), the box inside the frame."""
    d = s.digit
    assert d.shape == (SIDE, SIDE) and d.dtype == np.float32
    assert d.min() >= 0.0 and d.max() <= 1.0
    assert max(s.scaled.shape) == BOX
    com = ndi.center_of_mass(d.astype(np.float64))  # the oracle
    assert np.allclose(com, s.centre, atol=1e-9)
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5, com
    top, bottom, left, right = _bbox(d > 0)
    oy, ox = s.offset
    assert oy <= top and bottom <= oy + s.scaled.shape[0]
    assert ox <= left and right <= ox + s.scaled.shape[1]
    # nothing was cut off: the pasted box holds all of the scaled ink
    assert np.isclose(d.sum(dtype=np.float64), s.scaled.sum(), rtol=1e-6)


def test_an_off_centre_digit_is_centred_by_its_centre_of_mass() -> None:
    img = _paper(200, 160, lambda d: _seven(d, 100, 120, 5, 9))  # bottom-right corner
    s = preprocess_digit(img)
    assert s.inverted
    top, _, left, _ = s.bbox
    assert top >= 110 and left >= 90  # found where it was drawn
    _check_mnist_like(s)


def test_a_too_small_digit_is_scaled_up_to_20_pixels_keeping_its_aspect() -> None:
    img = np.zeros((28, 28), np.uint8)
    img[3:8, 20:23] = 255  # 5 x 3 pixels, white on black, in a corner
    s = preprocess_digit(img)
    assert not s.inverted
    assert s.bbox == (3, 8, 20, 23)
    assert s.scaled.shape == (20, 12)  # 3 * 20 / 5 = 12
    _check_mnist_like(s)


def test_a_thick_wide_digit_is_scaled_to_20_across_keeping_its_aspect() -> None:
    img = _paper(300, 400, lambda d: d.ellipse([20, 60, 380, 260], outline=0, width=60))  # a fat 0
    s = preprocess_digit(img)
    ch, cw = s.cropped.shape
    assert abs(ch - 200) <= 2 and abs(cw - 360) <= 2  # the ring's outer box, pen width aside
    assert s.scaled.shape == (round(ch * 20 / cw), 20)  # wider than tall: width is 20
    _check_mnist_like(s)
    # the hole is still there: the centre of the ring is dark
    assert s.digit[14, 14] < 0.2


@pytest.mark.parametrize("shape", [(300, 40), (40, 300), (90, 60)])
def test_the_aspect_ratio_is_kept(shape: tuple[int, int]) -> None:
    h, w = shape
    img = np.zeros(shape, np.uint8)
    img[5 : h - 5, 5 : w - 5] = 255  # a solid box
    s = preprocess_digit(img)
    sh, sw = s.scaled.shape
    assert max(sh, sw) == 20
    ch, cw = s.cropped.shape
    # the shorter side is the rounded proportional one
    assert (sh, sw) == (
        (20, max(1, round(cw * 20 / ch))) if ch >= cw else (round(ch * 20 / cw), 20)
    )


def test_scaling_matches_an_anti_aliased_resize() -> None:
    """Pillow's Lanczos against skimage's anti-aliased resize (an independent resampler)."""
    img = _paper(280, 280, lambda d: _seven(d, 60, 30, 20, 24))  # a canvas-sized stroke
    s = preprocess_digit(img)
    oracle = resize(s.cropped, s.scaled.shape, anti_aliasing=True, order=1)
    assert np.corrcoef(s.scaled.ravel(), oracle.ravel())[0, 1] > 0.98
    assert abs(s.scaled.mean() - oracle.mean()) < 0.02  # the ink's amount is kept


def test_a_dark_digit_photographed_on_light_paper() -> None:
    """Grey, unevenly lit, noisy paper under dark ink becomes a clean MNIST digit."""
    clean = _paper(240, 180, lambda d: _seven(d, 40, 40, 14, 18)).astype(np.float64) / 255
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:180]
    paper = 0.72 + 0.12 * xx / 180 + 0.04 * yy / 240  # lit from the right
    photo = np.where(clean < 0.5, 0.18, paper) + rng.normal(0, 0.015, clean.shape)
    photo = np.clip(photo, 0, 1)
    rgb = (np.stack([photo * 0.98, photo, photo * 0.93], axis=-1) * 255).astype(np.uint8)
    s = preprocess_digit(rgb)
    assert s.inverted
    assert 0.28 < s.paper < 0.6  # the inverted paper level (0.12 to 0.28) and its noise
    _check_mnist_like(s)
    # the same digit drawn cleanly, white on black, gives (nearly) the same 28x28 image
    ref = preprocess_digit(1.0 - clean).digit
    assert np.corrcoef(s.digit.ravel(), ref.ravel())[0, 1] > 0.95
    # the paper is black: the border of the result is empty
    assert np.abs(s.digit[[0, -1]]).max() == 0 and np.abs(s.digit[:, [0, -1]]).max() == 0


def test_real_mnist_digits_round_trip_to_themselves() -> None:
    mnist = load_mnist()
    images, labels = mnist.test_images[:100], mnist.test_labels[:100]
    corr = []
    for img in images:
        s = preprocess_digit(img)
        assert not s.inverted
        corr.append(np.corrcoef(s.digit.ravel(), img.ravel() / 255.0)[0, 1])
    assert min(corr) > 0.9
    assert np.median(corr) > 0.999  # a 20-pixel box is not even resampled
    assert len(labels) == 100


def test_greyscale_is_pillows_luma() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    rgb[10:20, 10:30] = (250, 240, 230)
    rgb[:3], rgb[-3:], rgb[:, :3], rgb[:, -3:] = 0, 0, 0, 0  # dark paper
    s = preprocess_digit(rgb)
    oracle = np.asarray(Image.fromarray(rgb).convert("L"), np.float64) / 255  # Pillow rounds
    assert np.abs(s.grey - oracle).max() <= 0.5 / 255 + 1e-12


def test_a_canvas_with_a_transparent_background_reads_the_strokes_opacity() -> None:
    """streamlit-drawable-canvas: RGBA, transparent where nothing is drawn."""
    ink = np.zeros((200, 200), np.uint8)
    ink[40:160, 90:110] = 255  # a "1"
    ink[40:60, 70:90] = 128  # a half-opaque serif (an anti-aliased edge)
    for colour in [(0, 0, 0), (255, 255, 255), (200, 30, 30)]:  # black, white, red strokes
        rgba = np.zeros((200, 200, 4), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = ink
        s = preprocess_digit(rgba)
        assert np.allclose(s.grey, 1 - ink / 255.0)  # white paper under black ink
        assert s.inverted
        assert np.allclose(s.ink, ink / 255.0)
    # an opaque dark background with light strokes is read by its colours
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., :3] = ink[..., None]
    s2 = preprocess_digit(rgba)
    assert not s2.inverted
    assert np.array_equal(s2.digit, s.digit)


def test_float_and_bool_input() -> None:
    img = np.zeros((50, 50))
    img[10:40, 20:30] = 1.0
    a = preprocess_digit(img)
    b = preprocess_digit(img.astype(bool))
    c = preprocess_digit((img * 255).astype(np.uint8))
    assert np.array_equal(a.digit, b.digit) and np.array_equal(a.digit, c.digit)


def test_a_digit_kept_in_frame_when_its_mass_sits_at_one_end() -> None:
    """A 'T' with a heavy bar: moving its centre of mass to 14 would push the box out."""
    img = np.zeros((100, 100), np.uint8)
    img[10:30, 10:90] = 255  # heavy top bar
    img[30:90, 48:52] = 255  # thin stem
    s = preprocess_digit(img)
    assert s.scaled.shape == (20, 20)
    oy, ox = s.offset
    assert 0 <= oy <= SIDE - 20 and 0 <= ox <= SIDE - 20
    assert np.isclose(s.digit.sum(dtype=np.float64), s.scaled.sum(), rtol=1e-6)  # nothing cut


def test_center_of_mass_against_scipy() -> None:
    a = np.random.default_rng(2).random((13, 17))
    assert np.allclose(center_of_mass(a), ndi.center_of_mass(a), atol=1e-12)


def test_every_stage_has_a_caption_in_both_languages() -> None:
    s = preprocess_digit(_paper(100, 100, lambda d: _seven(d, 20, 20, 6, 8)))
    stages = s.stages()
    assert [st.key for st in stages] == [
        "inside.stage.grey",
        "inside.stage.inverted",
        "inside.stage.cropped",
        "inside.stage.scaled",
        "inside.stage.centred",
    ]
    assert stages[-1].image is s.digit and stages[1].image is s.ink
    assert {st.key for st in stages} <= set(STAGE_KEYS)
    for lang in ("en", "pt"):
        t = translator(lang)
        for key in STAGE_KEYS:
            assert t.has(key), key
        for st in stages:
            text = t(st.key, **st.params)
            assert "{" not in text
    assert "20" in translator("en")(stages[3].key, **stages[3].params)


# ----------------------------------------------------------------------------- errors


def _code(exc: pytest.ExceptionInfo) -> str:
    assert translator("en").has(exc.value.code), exc.value.code
    assert translator("pt").has(exc.value.code), exc.value.code
    return exc.value.code


@pytest.mark.parametrize(
    "image",
    [
        np.full((100, 100), 255, np.uint8),  # blank paper
        np.zeros((100, 100), np.uint8),  # blank black
        np.full((50, 50), 0.5),  # flat grey
        np.zeros((100, 100, 4), np.uint8),  # an untouched transparent canvas
    ],
    ids=["white", "black", "grey", "transparent"],
)
def test_an_empty_image_is_refused(image: np.ndarray) -> None:
    with pytest.raises(CodedError) as exc:
        preprocess_digit(image)
    assert _code(exc) == "err.digit.empty"
    assert "No digit" in str(exc.value)


def test_a_near_empty_image_is_refused() -> None:
    img = np.full((200, 200), 255, np.uint8)
    img[100, 100] = 0  # one speck
    with pytest.raises(CodedError) as exc:
        preprocess_digit(img)
    assert _code(exc) == "err.digit.empty"
    img[100:108, 100:108] = 0  # a small blot (64 pixels, over 0.1% of the image) is a digit
    assert preprocess_digit(img).scaled.shape == (20, 20)


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (np.zeros(10), "err.digit.shape"),
        (np.zeros((5, 5, 2)), "err.digit.shape"),
        (np.zeros((2, 5, 5, 1)), "err.digit.shape"),
        (np.zeros((0, 5)), "err.digit.shape"),
        (np.zeros((5, 5), np.int16), "err.digit.dtype"),
        (np.full((5, 5), 1.5), "err.digit.range"),
        (np.full((5, 5), -0.1), "err.digit.range"),
        (np.full((5, 5), np.nan), "err.digit.range"),
    ],
)
def test_bad_input_raises_a_coded_error(image: np.ndarray, code: str) -> None:
    with pytest.raises(CodedError) as exc:
        preprocess_digit(image)
    assert _code(exc) == code


def test_a_picture_over_the_pixel_budget_is_refused_before_any_copy() -> None:
    from convviz import digits

    # A read-only broadcast view: 4097 x 4096 "pixels" that occupy 1 byte of memory, so
    # any float copy of it (what the budget prevents) would allocate 134 MB.
    huge = np.broadcast_to(np.uint8(255), (4097, 4096))
    with pytest.raises(CodedError) as e:
        preprocess_digit(huge)
    assert e.value.code == "err.image.too_many_pixels"
    assert e.value.params["width"] == "4096" and e.value.params["height"] == "4097"
    side = np.zeros((2048, 2048), np.uint8)
    side[500:1500, 900:1100] = 255
    assert preprocess_digit(side).digit.shape == (28, 28)  # exactly at the budget: accepted
    assert digits.MAX_PIXELS == 2048 * 2048
