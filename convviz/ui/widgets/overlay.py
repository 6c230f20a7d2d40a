"""A heat map laid over a digit, as one RGB picture for ``st.image``.

The digit shows in greys; the heat map's colours (blue < 0 < red, white = 0, on a
scale symmetric about 0) are mixed in where the heat is strong, so weak values
leave the digit visible. Pictures, not plotly heatmaps: two 28x28 overlays cost a
few kilobytes of PNG per rerun (STYLE.md latency notes).
"""

from __future__ import annotations

import numpy as np

from convviz.render import DIVERGING, GREYS, colorize

__all__ = ["heat_image", "overlay_image"]


def _symmetric(a: np.ndarray) -> float:
    m = float(np.max(np.abs(a))) if a.size else 0.0
    return m if m > 0 and np.isfinite(m) else 1.0


def _zoom(rgb: np.ndarray, zoom: int) -> np.ndarray:
    return rgb.repeat(zoom, axis=0).repeat(zoom, axis=1) if zoom > 1 else rgb


def heat_image(heat: np.ndarray, *, zoom: int = 6) -> np.ndarray:
    """``heat`` ``(H, W)`` in diverging colours (white = 0), enlarged by whole pixels.

    >>> heat_image(np.array([[-1.0, 0.0, 1.0]]), zoom=1)[0].tolist()
    [[5, 48, 97], [247, 246, 246], [103, 0, 31]]
    """
    h = np.asarray(heat, dtype=np.float64)
    m = _symmetric(h)
    return _zoom(colorize(h, -m, m, DIVERGING), zoom)


def overlay_image(digit: np.ndarray, heat: np.ndarray, *, zoom: int = 6) -> np.ndarray:
    """``heat`` ``(H, W)`` over ``digit`` ``(H, W)`` in [0, 1]: ``(H*zoom, W*zoom, 3)`` uint8.

    Each pixel mixes the digit's grey with the heat's colour in proportion to
    ``|heat| / max|heat|``.

    >>> img = overlay_image(np.ones((1, 2)), np.array([[0.0, 1.0]]), zoom=1)
    >>> img[0, 0].tolist(), img[0, 1].tolist()
    ([255, 255, 255], [103, 0, 31])
    """
    h = np.asarray(heat, dtype=np.float64)
    base = colorize(np.clip(np.asarray(digit, dtype=np.float64), 0, 1), 0.0, 1.0, GREYS)
    m = _symmetric(h)
    colour = colorize(h, -m, m, DIVERGING).astype(np.float64)
    weight = (np.abs(h) / m)[..., None]  # (H, W, 1) in [0, 1]
    mixed = base * (1 - weight) + colour * weight
    return _zoom(np.rint(mixed).astype(np.uint8), zoom)
