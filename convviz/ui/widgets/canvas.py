"""A canvas to draw a digit on (``streamlit-drawable-canvas``), guarded.

Why this component: ``streamlit-drawable-canvas`` is the original canvas component,
rebuilt on Streamlit's Components v2 in 0.10-0.13 (2026): it renders without an
iframe, inside a shadow root, and sends a stroke about 0.2 s after mouse-up
(STYLE.md). Its maintainer calls it best effort; the page only needs free
drawing and the PNG back, the part of it every release has kept.

The component registers its frontend when imported; outside ``streamlit run``
(a bare script) that raises, so the import happens here, inside a guard: the
page then says drawing is unavailable and offers the other digit sources.
"""

from __future__ import annotations

import logging

import numpy as np
import streamlit as st

from convviz.i18n import Translator

__all__ = ["INK", "PAPER", "draw_digit"]

_log = logging.getLogger(__name__)

INK = "#000000"  # black strokes ...
PAPER = "#ffffff"  # ... on white, like a pen on paper: the preprocessing inverts it


def draw_digit(t: Translator, key: str, *, stroke: int, size: int = 280) -> np.ndarray | None:
    """A ``size`` x ``size`` canvas; returns the drawing as RGBA ``(H, W, 4)`` uint8.

    Black ink on white paper: :func:`convviz.digits.preprocess_digit` reads it by
    its colours and inverts it (a stage the page shows). None until something is
    drawn (or after the canvas is cleared), and where the component cannot run (a
    caption says so).
    """
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception:  # the component cannot register its frontend outside `streamlit run`
        _log.info("the drawing canvas is unavailable here", exc_info=True)
        st.caption(t("inside.draw.unavailable"))
        return None
    result = st_canvas(
        stroke_width=int(stroke),
        stroke_color=INK,
        background_color=PAPER,
        height=size,
        width=size,
        drawing_mode="freedraw",
        return_image_data=True,
        key=key,
    )
    drawing = result.json_data or {}
    if not drawing.get("objects"):
        return None  # nothing drawn yet, or the canvas was cleared
    image = result.image_data  # (H, W, 4) uint8, None until the first stroke arrives
    if image is None or image.ndim != 3:
        return None
    return image
