"""Activations against their definitions; kernels against scipy/skimage filters; names."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage import filters

import convviz
from convviz.activations import (
    ACTIVATIONS,
    LEAKY_SLOPE,
    activation_label,
    leaky_relu,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from convviz.conv import conv2d
from convviz.i18n import translator
from convviz.kernels import KERNELS, gabor_bank, gabor_kernel
from convviz.pool import POOL_MODES
from convviz.shapes import PAD_MODES
from tests.support.helpers import assert_matches

X = np.linspace(-30, 30, 61)


def test_activations_match_scalar_definitions():
    assert_matches(relu(X), [max(v, 0.0) for v in X], rtol=0, atol=0)
    assert_matches(leaky_relu(X, 0.2), [v if v > 0 else 0.2 * v for v in X], rtol=1e-12)
    assert_matches(sigmoid(X), [1 / (1 + math.exp(-v)) for v in X], rtol=1e-12, atol=1e-15)
    assert_matches(tanh(X), [math.tanh(v) for v in X], rtol=1e-12)
    s = softmax(np.array([[1.0, 2.0, 3.0]]))
    e = [math.exp(v) for v in (1, 2, 3)]
    assert_matches(s, [[v / sum(e) for v in e]], rtol=1e-12)


def test_activations_are_stable_and_keep_float32():
    big = np.array([-1e4, 1e4], dtype=np.float32)
    for name, fn in ACTIVATIONS.items():
        y = fn(big)
        assert y.dtype == np.float32, name
        assert np.isfinite(y).all(), name
    assert sigmoid(big).tolist() == [0.0, 1.0]


def test_activation_validation():
    with pytest.raises(ValueError, match="`alpha` must be a finite number >= 0"):
        leaky_relu(X, alpha=-1)
    with pytest.raises(ValueError, match="`x` must be a real numeric array"):
        relu(np.array(["a"]))


def test_at_least_fourteen_presets_with_descriptions():
    required = {
        "identity", "box_blur_3x3", "box_blur_5x5", "gaussian_3x3", "gaussian_5x5", "sharpen",
        "unsharp_mask_5x5", "sobel_x", "sobel_y", "scharr_x", "scharr_y", "prewitt_x",
        "prewitt_y", "laplacian_4", "laplacian_8", "emboss", "outline", "motion_blur", "gabor",
    }  # fmt: skip
    assert required <= set(KERNELS)
    for name, k in KERNELS.items():
        assert k.name == name
        assert k.description and "\n" not in k.description
        assert k.weights.ndim == 2 and np.isfinite(k.weights).all()
        assert not k.weights.flags.writeable
        assert k.weights.shape[0] <= 15 and k.weights.shape[1] <= 15


@pytest.mark.parametrize(
    "name", ["box_blur_3x3", "box_blur_5x5", "gaussian_3x3", "gaussian_5x5", "motion_blur",
             "identity", "sharpen", "unsharp_mask_5x5"],
)  # fmt: skip
def test_smoothing_and_sharpening_kernels_preserve_flat_regions(name):
    assert KERNELS[name].weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "name", ["sobel_x", "sobel_y", "scharr_x", "scharr_y", "prewitt_x", "prewitt_y",
             "laplacian_4", "laplacian_8", "outline"],
)  # fmt: skip
def test_edge_kernels_ignore_flat_regions(name):
    assert KERNELS[name].weights.sum() == pytest.approx(0.0)


def test_presets_agree_with_scipy_and_skimage_filters():
    rng = np.random.default_rng(0)
    img = rng.random((20, 24))
    inner = (slice(1, -1), slice(1, -1))
    # scipy's sobel along axis 1 is the horizontal gradient, in the same orientation.
    assert_matches(
        conv2d(img, KERNELS["sobel_x"].weights), ndimage.sobel(img, axis=1)[inner], rtol=1e-12
    )
    assert_matches(
        conv2d(img, KERNELS["prewitt_y"].weights), ndimage.prewitt(img, axis=0)[inner], rtol=1e-12
    )
    assert_matches(
        conv2d(img, KERNELS["laplacian_4"].weights), ndimage.laplace(img)[inner], rtol=1e-12
    )
    # skimage's scharr_h is the unnormalised kernel / 16 (rows: vertical gradient).
    assert_matches(
        conv2d(img, KERNELS["scharr_y"].weights) / 16,
        filters.scharr_h(img)[inner],
        rtol=1e-9,
        atol=1e-12,
    )
    g = ndimage.gaussian_filter(img, sigma=1.0, mode="constant", truncate=2.0)
    approx = conv2d(img, KERNELS["gaussian_5x5"].weights, padding="same")
    assert np.abs(approx - g)[2:-2, 2:-2].max() < 0.02  # binomial ~ Gaussian, sigma 1


@pytest.mark.parametrize("theta", [0.0, 22.5, 45.0, 90.0, 135.0, 170.0])
@pytest.mark.parametrize(("frequency", "sigma"), [(0.25, 2.0), (0.1, 3.5), (0.4, 1.0)])
def test_gabor_matches_skimage(theta, frequency, sigma):
    """skimage.filters.gabor_kernel is the oracle: the same size and the same real part."""
    want = filters.gabor_kernel(
        frequency, theta=np.deg2rad(theta), sigma_x=sigma, sigma_y=sigma, n_stds=3
    ).real
    assert_matches(gabor_kernel(theta, frequency, sigma), want, rtol=1e-12, atol=1e-15)


def test_gabor_n_stds_sets_the_size_as_skimage_does():
    for n_stds in (1.0, 2.0, 2.5):
        want = filters.gabor_kernel(0.2, theta=0.3, sigma_x=1.5, sigma_y=1.5, n_stds=n_stds)
        assert_matches(
            gabor_kernel(np.rad2deg(0.3), 0.2, 1.5, n_stds), want.real, rtol=1e-12, atol=1e-15
        )


def test_gabor_preset_and_bank_rotate():
    want = filters.gabor_kernel(0.25, sigma_x=2, sigma_y=2).real
    assert_matches(KERNELS["gabor"].weights, want, rtol=1e-12, atol=1e-15)
    bank = gabor_bank(4)
    assert_matches(bank["gabor_90"].weights, bank["gabor_0"].weights.T, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="`n_orientations` must be between 1 and 36"):
        gabor_bank(0)
    with pytest.raises(ValueError, match="`frequency` must be > 0"):
        gabor_kernel(frequency=0)
    with pytest.raises(ValueError, match="`sigma` must be > 0"):
        gabor_kernel(sigma=-1)


def test_public_api_names():
    for name in ["conv2d", "conv2d_steps", "pool2d", "pool2d_steps", "output_size", "relu",
                 "leaky_relu", "sigmoid", "tanh", "KERNELS"]:  # fmt: skip
        assert hasattr(convviz, name), name


# ------------------------------------------------------------------ display names, one home
def test_every_activation_has_a_display_name_in_both_languages():
    en, pt = translator("en"), translator("pt")
    for name in [*ACTIVATIONS, "softmax"]:
        assert en.has(f"act.{name}") and pt.has(f"act.{name}"), name
        assert activation_label(name) == en(f"act.{name}")
    assert activation_label("leaky_relu", slope=LEAKY_SLOPE) == "Leaky ReLU (0.01)"
    assert activation_label("leaky_relu", pt, slope=0.25) == "Leaky ReLU (0,25)"
    assert activation_label("none", raw=True) == "None (raw feature map)"
    assert activation_label("sigmoid", pt) == "Sigmoide"


def test_every_pool_and_pad_mode_has_a_display_name():
    en, pt = translator("en"), translator("pt")
    keys = [f"pool.mode.{m}" for m in POOL_MODES] + [f"pad.mode.{m}" for m in PAD_MODES]
    for key in keys:
        assert en.has(key) and pt.has(key), key
    assert (en("pool.mode.avg"), pt("pool.mode.avg")) == ("Average", "Média")


def test_preset_words_are_their_english_catalogue_entries():
    """``label``/``description`` (for Python users) are what the catalogue says in English."""
    en, pt = translator("en"), translator("pt")
    kernels = [*KERNELS.values(), *gabor_bank(8, frequency=0.3).values()]
    for k in kernels:
        assert k.msg.startswith("kernel.")
        assert en(k.msg + ".label", **k.msg_params) == k.label, k.name
        assert en(k.msg + ".description", **k.msg_params) == k.description, k.name
        assert pt.has(k.msg + ".label") and pt.has(k.msg + ".description")
    assert KERNELS["sobel_x"].msg == "kernel.sobel_x" and KERNELS["sobel_x"].msg_params == {}
    g = gabor_bank(8)["gabor_22.5"]
    assert (g.msg, g.msg_params) == ("kernel.gabor_n", {"angle": 22.5, "frequency": 0.25})
    assert pt(g.msg + ".label", **g.msg_params) == "Gabor 22,5°"
    assert "0,25 ciclo(s)/pixel" in pt(g.msg + ".description", **g.msg_params)
    assert pt("kernel.emboss.label") == "Relevo"
