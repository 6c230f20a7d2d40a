"""A drawn or photographed digit made into an MNIST digit, every stage kept for display.

MNIST's recipe (LeCun, Cortes and Burges, the MNIST page): the digits "were size
normalized to fit in a 20x20 pixel box while preserving their aspect ratio", then
"centered in a 28x28 image by computing the center of mass of the pixels, and
translating the image so as to position this point at the center of the 28x28
field". They are white ink on black. :func:`preprocess_digit` follows it:

1. **grey** ``(H, W)``: the picture as seen on paper, 0 black .. 1 white
   (ITU-R 601-2 luma for colour, as Pillow's mode ``"L"``);
2. **ink** ``(H, W)``: white ink on black. The picture is inverted when its
   paper is light (the median of its border pixels is above one half), the
   paper's level (the border's median plus three robust deviations) is
   subtracted and the ink stretched to reach 1, so a photo's grey paper becomes black;
3. **cropped**: the bounding box of the ink, pixels above :data:`INK_THRESHOLD`;
4. **scaled**: the box resized (Pillow's Lanczos, anti-aliased) so its longer
   side is 20 pixels, keeping the aspect ratio;
5. **centred** ``(28, 28)`` float32 in [0, 1]: the scaled box pasted at the whole-pixel
   shift that brings its centre of mass nearest to ``(14, 14)`` (row, column; pixel
   ``(i, j)`` has its centre at ``(i, j)``). Whole pixels, as MNIST: its own test digits'
   centres of mass lie in [13.5, 14.5] on both axes (measured on the first 2,000).

Canvas input: an RGBA array whose alpha is not opaque everywhere (the canvas of
``streamlit-drawable-canvas`` with a transparent background) is a drawing on
white paper: each pixel's opacity is its ink, whatever the stroke's colour
(grey = ``1 - alpha``). A canvas with an opaque background fill (alpha 255
everywhere) is read by its colours, like a photo. Uploaded files should go
through :func:`convviz.images.load_image` first, which composites any alpha onto
white.

>>> img = np.full((60, 40), 255, np.uint8)   # white paper
>>> img[10:50, 15:25] = 0                     # a black bar: a "1"
>>> s = preprocess_digit(img)
>>> s.inverted, s.bbox, s.scaled.shape, s.digit.shape, s.digit.dtype
(True, (10, 50, 15, 25), (20, 5), (28, 28), dtype('float32'))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from convviz.errors import CodedError

__all__ = [
    "BOX",
    "INK_THRESHOLD",
    "MAX_PIXELS",
    "MIN_CONTRAST",
    "MIN_INK_FRACTION",
    "SIDE",
    "STAGE_KEYS",
    "DigitStages",
    "Stage",
    "center_of_mass",
    "preprocess_digit",
]

SIDE = 28  # MNIST images are 28x28
BOX = 20  # the digit's longer side after scaling
#: Ink (0..1, after the stretch) above this belongs to the digit's bounding box. Low, so the
#: faint anti-aliased rim of an MNIST digit counts: its box is then exactly 20 pixels.
INK_THRESHOLD = 0.05
#: The ink must be at least this much brighter than the paper, else the image is empty.
MIN_CONTRAST = 0.15
#: Fewer pixels above the threshold than this fraction of the image (and never fewer
#: than 2) is "near empty": a speck, not a digit.
MIN_INK_FRACTION = 0.001
#: The paper's level is the border's median plus this many robust deviations (1.4826 MAD):
#: above the noise and the uneven light of a photo, yet 0 for an MNIST digit whose strokes
#: touch a few border pixels (a high percentile of the border would be ink there).
_PAPER_SPREAD = 3.0
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, Pillow's "L"
#: Largest picture accepted (H * W). Every stage keeps full-size float64 copies (grey,
#: ink and their temporaries: ~5 x 8 bytes a pixel), so 2048 x 2048 costs ~170 MB; the
#: pages pass at most 512 x 512 (load_image's max_side) or the canvas's 280 x 280.
MAX_PIXELS = 2048 * 2048

#: Catalogue keys of the stages' captions (domain ``inside_core``); the second picture is
#: captioned ``inverted`` or ``ink`` depending on whether the paper was light.
STAGE_KEYS = (
    "inside.stage.grey",
    "inside.stage.inverted",
    "inside.stage.ink",
    "inside.stage.cropped",
    "inside.stage.scaled",
    "inside.stage.centred",
)


@dataclass(frozen=True)
class Stage:
    """One picture of the pipeline: its caption's catalogue key, parameters and image."""

    key: str  # one of STAGE_KEYS; caption = t(key, **params)
    image: np.ndarray  # (h, w) float in [0, 1]
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DigitStages:
    """Every stage of :func:`preprocess_digit`; ``digit`` is what the model gets."""

    grey: np.ndarray  # (H, W) float64, 0 black .. 1 white, as seen on paper
    inverted: bool  # the paper was light: the grey picture was inverted
    paper: float  # paper level subtracted from the (inverted) picture, in [0, 1]
    ink: np.ndarray  # (H, W) float64 in [0, 1], white ink on black
    bbox: tuple[int, int, int, int]  # (top, bottom, left, right) of the ink, half-open
    cropped: np.ndarray  # (bottom - top, right - left) float64: ink[top:bottom, left:right]
    scaled: np.ndarray  # (h, w) float64, max(h, w) == BOX, aspect kept
    offset: tuple[int, int]  # (row, col) of the scaled box's top-left corner in the digit
    digit: np.ndarray  # (28, 28) float32 in [0, 1]: the model's input
    centre: tuple[float, float]  # centre of mass (row, col) of `digit`, within 0.5 of 14

    def stages(self) -> tuple[Stage, ...]:
        """The five pictures, in order, with their captions' keys and parameters.

        Keys and parameters: ``inside.stage.grey`` (``h``, ``w``: the picture's
        size); ``inside.stage.inverted`` when the paper was light, else
        ``inside.stage.ink`` (no parameters); ``inside.stage.cropped`` (``h``,
        ``w``); ``inside.stage.scaled`` (``h``, ``w``); ``inside.stage.centred``
        (``row``, ``col``: the digit's centre of mass).

        >>> img = np.zeros((30, 30), np.uint8); img[5:25, 12:18] = 255
        >>> [s.key.rsplit(".", 1)[1] for s in preprocess_digit(img).stages()]
        ['grey', 'ink', 'cropped', 'scaled', 'centred']
        """
        gh, gw = self.grey.shape
        ch, cw = self.cropped.shape
        sh, sw = self.scaled.shape
        row, col = self.centre
        return (
            Stage("inside.stage.grey", self.grey, {"h": gh, "w": gw}),
            Stage("inside.stage.inverted" if self.inverted else "inside.stage.ink", self.ink),
            Stage("inside.stage.cropped", self.cropped, {"h": ch, "w": cw}),
            Stage("inside.stage.scaled", self.scaled, {"h": sh, "w": sw}),
            Stage("inside.stage.centred", self.digit, {"row": row, "col": col}),
        )


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """Centre of mass ``(row, col)`` of a non-negative image (pixel ``(i, j)`` sits at ``(i, j)``).

    >>> center_of_mass(np.array([[0.0, 1.0], [0.0, 3.0]]))
    (0.75, 1.0)
    """
    a = np.asarray(image, np.float64)
    total = a.sum()
    rows = np.arange(a.shape[0]) @ a.sum(axis=1) / total
    cols = np.arange(a.shape[1]) @ a.sum(axis=0) / total
    return float(rows), float(cols)


# --------------------------------------------------------------------------- the stages


def _as_grey(image: object) -> np.ndarray:
    """The checked input as ``(H, W)`` float64 paper, 0 black .. 1 white."""
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise CodedError("err.digit.shape", shape=str(a.shape))
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise CodedError("err.digit.shape", shape=str(a.shape))
    if a.shape[0] * a.shape[1] > MAX_PIXELS:  # checked before any float copy is made
        raise CodedError(
            "err.image.too_many_pixels",
            width=str(a.shape[1]),
            height=str(a.shape[0]),
            limit=MAX_PIXELS,
            megapixels=round(MAX_PIXELS / 1e6, 1),
        )
    if a.dtype == np.uint8:
        f = a.astype(np.float64) / 255.0
    elif a.dtype == np.bool_:
        f = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float64)
        if not np.isfinite(f).all() or f.min() < 0.0 or f.max() > 1.0:
            raise CodedError("err.digit.range")
    else:
        raise CodedError("err.digit.dtype", dtype=str(a.dtype))
    if f.ndim == 2:
        return f
    if f.shape[2] == 1:
        return f[..., 0]
    if f.shape[2] == 4 and f[..., 3].min() < 1.0:
        return 1.0 - f[..., 3]  # a drawing on transparent film: opacity is ink
    return f[..., :3] @ _LUMA  # (H, W): luma of the colours


def _border(a: np.ndarray) -> np.ndarray:
    """The outermost rows and columns of ``a`` (H, W), as one vector."""
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def _ink(grey: np.ndarray) -> tuple[np.ndarray, bool, float]:
    """White-on-black ink in [0, 1] from the paper picture; ``(ink, inverted, paper)``."""
    inverted = bool(np.median(_border(grey)) > 0.5)
    a = 1.0 - grey if inverted else grey
    border = _border(a)
    median = float(np.median(border))
    paper = median + _PAPER_SPREAD * 1.4826 * float(np.median(np.abs(border - median)))
    peak = float(a.max())
    if peak - paper < MIN_CONTRAST:
        raise CodedError("err.digit.empty")
    return np.clip((a - paper) / (peak - paper), 0.0, 1.0), inverted, paper


def _bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    mask = ink > INK_THRESHOLD
    if int(mask.sum()) < max(2, MIN_INK_FRACTION * mask.size):
        raise CodedError("err.digit.empty")
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _scale(cropped: np.ndarray) -> np.ndarray:
    """``cropped`` (h, w) resized so that its longer side is :data:`BOX` (Lanczos)."""
    h, w = cropped.shape
    if h >= w:
        size = (max(1, round(w * BOX / h)), BOX)  # Pillow sizes are (width, height)
    else:
        size = (BOX, max(1, round(h * BOX / w)))
    if size == (w, h):
        return cropped.copy()  # already 20 on its longer side (an MNIST digit): untouched
    im = Image.fromarray(np.ascontiguousarray(cropped, dtype=np.float32))  # mode "F"
    out = np.asarray(im.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    return np.clip(out, 0.0, 1.0)  # Lanczos rings slightly below 0 and above 1


def _centre(scaled: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Paste ``scaled`` into 28x28 with its centre of mass nearest (14, 14); ``(digit, offset)``.

    The shift is clamped so the whole box stays inside the frame (a box is at most
    20 wide, so this only moves a digit whose mass sits far off its box's middle).
    """
    h, w = scaled.shape
    cy, cx = center_of_mass(scaled)
    centre = SIDE // 2
    top = int(np.clip(np.floor(centre - cy + 0.5), 0, SIDE - h))
    left = int(np.clip(np.floor(centre - cx + 0.5), 0, SIDE - w))
    digit = np.zeros((SIDE, SIDE), np.float32)
    digit[top : top + h, left : left + w] = scaled
    return digit, (top, left)


def preprocess_digit(image: np.ndarray) -> DigitStages:
    """Turn a picture of one digit into a 28x28 MNIST-style digit, keeping each stage.

    Parameters
    ----------
    image : ndarray, shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)
        uint8 (0..255), bool, or float in [0, 1]. Dark ink on light paper or light
        ink on dark; an RGBA canvas with transparent pixels is read by its opacity
        (see the module notes).

    Returns
    -------
    DigitStages
        ``digit`` is ``(28, 28)`` float32 in [0, 1], white on black, its centre of
        mass within half a pixel of ``(14, 14)`` (unless the box had to be kept in frame).

    Raises
    ------
    CodedError
        ``err.digit.shape`` (not one of the shapes above), ``err.digit.dtype``,
        ``err.digit.range`` (floats outside [0, 1] or not finite), ``err.digit.empty``
        (no ink: contrast below :data:`MIN_CONTRAST`, or fewer ink pixels than
        :data:`MIN_INK_FRACTION` of the image), ``err.image.too_many_pixels`` (more
        than :data:`MAX_PIXELS`, refused before any copy).
    """
    grey = _as_grey(image)  # (H, W)
    ink, inverted, paper = _ink(grey)  # (H, W)
    top, bottom, left, right = _bbox(ink)
    cropped = ink[top:bottom, left:right]  # (h, w)
    scaled = _scale(cropped)  # (<=20, <=20)
    digit, offset = _centre(scaled)  # (28, 28)
    return DigitStages(
        grey=grey,
        inverted=inverted,
        paper=paper,
        ink=ink,
        bbox=(top, bottom, left, right),
        cropped=cropped,
        scaled=scaled,
        offset=offset,
        digit=digit,
        centre=center_of_mass(digit),
    )
