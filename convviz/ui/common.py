"""Widgets and render helpers shared by the pages (the streamlit side of the app)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from convviz.figures import plot_config
from convviz.images import SAMPLES, ImageLoadError, encode_png, load_image, sample_image

_log = logging.getLogger(__name__)

UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"]
WORKING_SIZES = (128, 256, 512, 1024)
GENERIC_ERROR = "Something went wrong while computing this view. Try other settings."
SPEEDS = {"slow (1 s)": 1.0, "medium (0.5 s)": 0.5, "fast (0.2 s)": 0.2}


@contextmanager
def user_errors():
    """Show convviz's ``ValueError`` messages (written for people) as ``st.error``.

    Anything else is logged and shown as a generic message: no tracebacks or
    internals reach the page. Code after a caught error in the ``with`` block
    does not run; check the returned flag list (``[True]`` on success).
    """
    ok = [False]
    try:
        yield ok
        ok[0] = True
    except ValueError as exc:  # ImageLoadError is a ValueError too
        st.error(str(exc))
    except Exception:
        _log.exception("unexpected error in a page")
        st.error(GENERIC_ERROR)


def show_figure(fig: go.Figure, key: str, filename: str | None = None) -> None:
    """``st.plotly_chart`` with the app's toolbar config (PNG download button)."""
    st.plotly_chart(fig, width="stretch", key=key, config=plot_config(filename or key))


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def download_buttons(
    a: np.ndarray, name: str, key: str, vmin: float | None = None, vmax: float | None = None
) -> None:
    """``.npy`` (exact values) and ``.png`` (display scaling) downloads for a map.

    The files are made only when clicked (deferred ``data``), not on every rerun.
    """
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download .npy",
        data=lambda: npy_bytes(a),
        file_name=f"{name}.npy",
        mime="application/octet-stream",
        key=f"{key}_npy",
        on_click="ignore",
        width="stretch",
    )
    c2.download_button(
        "Download .png",
        data=lambda: encode_png(a, vmin=vmin, vmax=vmax),
        file_name=f"{name}.png",
        mime="image/png",
        key=f"{key}_png",
        on_click="ignore",
        width="stretch",
    )


SOURCE_LABELS = {
    "sample": "Sample image",
    "upload": "Upload your own",
    "numbers": "Numbers (type the pixels)",
    "feature_map": "Convolution page's feature map",
    "example": "Small example (6x6 numbers)",
}


def image_input(
    prefix: str,
    *,
    sources: tuple[str, ...] = ("sample", "upload"),
    allow_rgb: bool = True,
    default_size: int = 512,
    default_sample: str = "Cameraman",
) -> tuple[np.ndarray | None, str, str, str]:
    """Sidebar widgets to choose the input; returns ``(image, label, source, colour)``.

    ``image`` is float32 ``(H, W)`` or ``(H, W, 3)`` in [0, 1], or None when the
    source is not an image (numbers, feature map: the page handles those) or
    nothing was uploaded yet. A bad upload shows ``st.error`` and the previous
    good image stays.
    """
    source = st.sidebar.radio(
        "Input", sources, format_func=SOURCE_LABELS.get, key=f"{prefix}_source"
    )
    colour = "gray"
    if allow_rgb:
        colour = st.sidebar.radio(
            "Colour",
            ["gray", "rgb"],
            format_func={"gray": "Grayscale", "rgb": "RGB"}.get,
            key=f"{prefix}_colour",
            horizontal=True,
        )
    if source not in ("sample", "upload"):
        return None, "", source, colour
    st.session_state.setdefault(f"{prefix}_max_side", default_size)
    size = st.sidebar.select_slider(
        "Working size (longer side, px)",
        WORKING_SIZES,
        key=f"{prefix}_max_side",
        help="Images are scaled down to this size first; smaller is faster.",
    )
    if source == "sample":
        st.session_state.setdefault(f"{prefix}_sample", default_sample)
        name = st.sidebar.selectbox("Sample", list(SAMPLES), key=f"{prefix}_sample")
        st.sidebar.caption(SAMPLES[name])
        return sample_image(name, mode=colour, max_side=size), name, source, colour
    image, name = _uploaded(prefix, colour, size)
    return image, name, source, colour


def _uploaded(prefix: str, colour: str, size: int):
    ss = st.session_state
    up = st.sidebar.file_uploader(
        "PNG, JPEG, GIF, WebP, BMP or TIFF", type=UPLOAD_TYPES, key=f"{prefix}_upload"
    )
    good = f"{prefix}_upload_good"  # (file_id, name, bytes) of the last file that decoded
    if up is not None and (ss.get(good) is None or ss[good][0] != up.file_id):
        try:
            data = up.getvalue()
            load_image(data, max_side=size, mode=colour)  # validate before keeping it
            ss[good] = (up.file_id, up.name, data)
        except ImageLoadError as exc:
            st.error(f"Could not use {up.name!r}: {exc}")
        except Exception:
            _log.exception("unexpected error decoding an upload")
            st.error(f"Could not use {up.name!r}: the file could not be read.")
    if ss.get(good) is None:
        st.info("Upload an image in the sidebar (or pick a sample image).")
        return None, ""
    _, name, data = ss[good]
    return _decode_cached(data, colour, size), name


@st.cache_data(max_entries=8, show_spinner=False)
def _decode_cached(data: bytes, colour: str, size: int) -> np.ndarray:
    return load_image(data, max_side=size, mode=colour)


def play_controls(prefix: str) -> float | None:
    """Play/pause toggle and speed; returns the fragment interval (None when paused)."""
    c1, c2 = st.columns([1, 2])
    playing = c1.toggle("Play", key=f"{prefix}_playing", help="Step the window automatically")
    st.session_state.setdefault(f"{prefix}_speed", "medium (0.5 s)")
    speed = c2.select_slider(
        "Speed", list(SPEEDS), key=f"{prefix}_speed", label_visibility="collapsed"
    )
    return SPEEDS[speed] if playing else None


def step_controls(prefix: str, n: int, playing: bool) -> int:
    """◀ / ▶ buttons and a position slider over ``n`` raster positions; returns the index.

    Call inside the stepper fragment. While playing, every fragment run moves
    one step on (and wraps around).
    """
    ss = st.session_state
    key = f"{prefix}_step"
    cur = int(ss.get(key, 0))
    if playing:
        cur += 1
    ss[key] = min(max(cur, 0), n - 1) if not playing else cur % n

    def move(delta: int) -> None:
        ss[key] = (int(ss[key]) + delta) % n

    c1, c2, c3 = st.columns([1, 1, 10], vertical_alignment="bottom")
    c1.button("◀", key=f"{prefix}_prev", on_click=move, args=(-1,), help="Previous position")
    c2.button("▶", key=f"{prefix}_next", on_click=move, args=(1,), help="Next position")
    if n > 1:
        c3.slider("Window position (raster order)", 0, n - 1, key=key)
    else:
        c3.caption("Only one window position.")
    return int(ss[key])


def persist_widget_state(keys: tuple[str, ...]) -> None:
    """Keep widget values across page switches.

    Streamlit drops a widget's state when a run does not draw it (as on
    another page); writing the value back each run keeps the user's choices.
    Only for plain value widgets (never buttons, uploaders or editors).
    """
    ss = st.session_state
    for k in keys:
        if k in ss:
            ss[k] = ss[k]


def run_guarded(render: Callable[[], None]) -> None:
    """Run a page body; unexpected errors become a generic message."""
    with user_errors():
        render()
