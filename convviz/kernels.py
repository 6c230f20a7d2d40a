"""Named kernel presets: blurs, sharpeners, edge detectors and Gabor filters.

All kernels are for cross-correlation (``conv2d(..., flip=False)``), the way
CNN libraries apply them: ``sobel_x`` is positive where the image gets
brighter to the right.

Names and descriptions people read are entries of the ``kernels`` catalogue,
``kernel.<name>.label`` and ``kernel.<name>.description`` (English and pt-BR);
every Gabor kernel of a bank shares ``kernel.gabor_n.*`` with its angle and
frequency as parameters. :class:`Kernel` carries the key stem and parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from convviz.errors import CodedError
from convviz.shapes import shown

__all__ = ["KERNELS", "Kernel", "gabor_bank", "gabor_kernel"]


@dataclass(frozen=True)
class Kernel:
    """A named kernel. ``weights`` is a read-only float64 array ``(kh, kw)``.

    ``label`` and ``description`` are the English words (for Python users); a
    page shows them in the reader's language from the ``kernels`` catalogue:
    ``t(k.msg + ".label", **k.msg_params)`` and ``t(k.msg + ".description", ...)``.
    """

    name: str  # key in KERNELS (or in a gabor_bank), safe for URLs
    label: str  # English display name
    weights: np.ndarray  # (kh, kw)
    description: str  # English, one line: what it does
    msg: str = ""  # catalogue key stem, "kernel.sobel_x"; defaults to "kernel.<name>"
    msg_params: Mapping[str, object] = field(default_factory=dict)  # {"angle": 45, ...}

    def __post_init__(self) -> None:
        if not self.msg:
            object.__setattr__(self, "msg", f"kernel.{self.name}")


def _make(
    name: str,
    label: str,
    weights,
    description: str,
    *,
    msg: str | None = None,
    params: Mapping[str, object] | None = None,
) -> Kernel:
    # The English words are written here, not read from the catalogue, so that
    # building the presets needs no catalogue (``python -m convviz.i18n compile``
    # imports this module); a test checks that they equal the English entries.
    w = np.array(weights, dtype=np.float64)
    w.setflags(write=False)  # presets are shared: nobody may edit them in place
    return Kernel(name, label, w, description, msg or f"kernel.{name}", dict(params or {}))


def gabor_kernel(
    theta_deg: float = 0.0, frequency: float = 0.25, sigma: float = 2.0, n_stds: float = 3.0
) -> np.ndarray:
    """Real part of a Gabor filter, the formula of :func:`skimage.filters.gabor_kernel`.

    Parameters
    ----------
    theta_deg : float
        Orientation in degrees (0: the stripes are vertical, the wave runs along x).
    frequency : float
        Spatial frequency of the cosine, in cycles per pixel.
    sigma : float
        Standard deviation of the (round) Gaussian envelope, in pixels.
    n_stds : float
        The kernel reaches ``n_stds`` standard deviations from its centre.

    Returns
    -------
    ndarray of float64, shape (2 * y0 + 1, 2 * x0 + 1)

    Notes
    -----
    With ``x' = x cos(theta) + y sin(theta)`` and ``y' = -x sin(theta) + y cos(theta)``:
    ``g = exp(-(x'^2 + y'^2) / (2 sigma^2)) / (2 pi sigma^2) * cos(2 pi f x')``.
    Written in NumPy so that building the presets does not import scikit-image
    (about 340 ms, most of ``import convviz``); the tests check it against skimage.

    >>> gabor_kernel().shape
    (13, 13)
    """
    if not np.isfinite(frequency) or frequency <= 0:
        raise CodedError("err.must_be_above_zero", name="frequency", value=shown(frequency))
    if not np.isfinite(sigma) or sigma <= 0:
        raise CodedError("err.must_be_above_zero", name="sigma", value=shown(sigma))
    if not np.isfinite(n_stds) or n_stds <= 0:
        raise CodedError("err.must_be_above_zero", name="n_stds", value=shown(n_stds))
    if not np.isfinite(theta_deg):
        raise CodedError("err.not_finite_number", name="theta_deg", value=shown(theta_deg))
    theta = np.deg2rad(theta_deg)
    ct, st = math.cos(theta), math.sin(theta)
    # Half-sizes: the envelope's n_stds extent along each axis, at least one pixel.
    x0 = math.ceil(max(abs(n_stds * sigma * ct), abs(n_stds * sigma * st), 1))
    y0 = math.ceil(max(abs(n_stds * sigma * ct), abs(n_stds * sigma * st), 1))
    y, x = np.meshgrid(
        np.arange(-y0, y0 + 1, dtype=np.float64),
        np.arange(-x0, x0 + 1, dtype=np.float64),
        indexing="ij",
        sparse=True,
    )
    rotx = x * ct + y * st  # (1, kw) + (kh, 1) -> (kh, kw)
    roty = -x * st + y * ct
    envelope = np.exp(-0.5 * (rotx**2 + roty**2) / sigma**2) / (2 * np.pi * sigma * sigma)
    return np.ascontiguousarray(envelope * np.cos(2 * np.pi * frequency * rotx))


def gabor_bank(
    n_orientations: int = 4, frequency: float = 0.25, sigma: float = 2.0
) -> dict[str, Kernel]:
    """Gabor kernels at ``n_orientations`` evenly spaced angles in [0, 180).

    >>> list(gabor_bank(4))
    ['gabor_0', 'gabor_45', 'gabor_90', 'gabor_135']
    """
    if isinstance(n_orientations, bool) or not isinstance(n_orientations, int | np.integer):
        raise CodedError("err.not_an_integer", name="n_orientations", value=shown(n_orientations))
    if not 1 <= n_orientations <= 36:
        raise CodedError(
            "err.between", name="n_orientations", low=1, high=36, value=int(n_orientations)
        )
    bank = {}
    for i in range(n_orientations):
        deg = 180.0 * i / n_orientations
        tag = f"{deg:g}"
        angle = int(deg) if deg.is_integer() else deg
        bank[f"gabor_{tag}"] = _make(
            f"gabor_{tag}",
            f"Gabor {tag}°",
            gabor_kernel(deg, frequency, sigma),
            f"Responds to stripes at {tag}° with frequency {frequency:g} cycles/pixel.",
            msg="kernel.gabor_n",  # one entry for every angle
            params={"angle": shown(angle), "frequency": shown(frequency)},
        )
    return bank


_G5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])

KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in [
        _make("identity", "Identity", [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
              "Copies the input: the centre tap is 1, every other tap 0."),
        _make("box_blur_3x3", "Box blur 3x3", np.full((3, 3), 1 / 9),
              "Average of the 3x3 neighbourhood: a mild blur."),
        _make("box_blur_5x5", "Box blur 5x5", np.full((5, 5), 1 / 25),
              "Average of the 5x5 neighbourhood: a stronger, blocky blur."),
        _make("gaussian_3x3", "Gaussian 3x3", np.outer([1, 2, 1], [1, 2, 1]) / 16,
              "Weighted average favouring the centre: a smooth blur."),
        _make("gaussian_5x5", "Gaussian 5x5", _G5 / 256,
              "Binomial approximation of a Gaussian (sigma about 1): smooth blur."),
        _make("sharpen", "Sharpen", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
              "Identity plus a negative Laplacian: boosts local contrast."),
        _make("unsharp_mask_5x5", "Unsharp mask 5x5", (2 * np.pad([[256]], 2) - _G5) / 256,
              "Image plus (image minus its Gaussian blur): sharpens edges."),
        _make("sobel_x", "Sobel x", [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
              "Horizontal gradient: lights up vertical edges."),
        _make("sobel_y", "Sobel y", [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
              "Vertical gradient: lights up horizontal edges."),
        _make("scharr_x", "Scharr x", [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]],
              "Like Sobel x with better rotational symmetry."),
        _make("scharr_y", "Scharr y", [[-3, -10, -3], [0, 0, 0], [3, 10, 3]],
              "Like Sobel y with better rotational symmetry."),
        _make("prewitt_x", "Prewitt x", [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
              "Horizontal gradient with equal row weights."),
        _make("prewitt_y", "Prewitt y", [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
              "Vertical gradient with equal column weights."),
        _make("laplacian_4", "Laplacian (4-neighbour)", [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
              "Second derivative: responds to blobs and edges in every direction."),
        _make("laplacian_8", "Laplacian (8-neighbour)", [[1, 1, 1], [1, -8, 1], [1, 1, 1]],
              "Second derivative including diagonals."),
        _make("emboss", "Emboss", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
              "Directional relief: the image looks pressed into metal."),
        _make("outline", "Outline", [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
              "Centre minus its neighbours: flat areas go black, edges stay."),
        _make("motion_blur", "Motion blur 7x7", np.eye(7) / 7,
              "Average along the diagonal: the blur of a camera moving diagonally."),
        _make("gabor", "Gabor 0°", gabor_kernel(0.0),  # NumPy only: no skimage at import
              "Oriented stripe detector (13x13), like first-layer CNN filters."),
    ]
}  # fmt: skip
