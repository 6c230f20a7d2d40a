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
from convviz.ui.i18n import error_text, tr

_log = logging.getLogger(__name__)

UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"]
WORKING_SIZES = (128, 256, 512, 1024)
SPEEDS = {"slow": 1.0, "medium": 0.5, "fast": 0.2}  # step interval (s); labels: app.speed.*


@contextmanager
def user_errors():
    """Show convviz's coded errors (written for people) as ``st.error``, in the page's language.

    A ``ValueError`` without a code shows a generic "not valid" message; anything
    else is logged and shown as a generic message: no tracebacks, exception text
    or internals reach the page. Code after a caught error in the ``with`` block
    does not run; check the returned flag list (``[True]`` on success).
    """
    ok = [False]
    try:
        yield ok
        ok[0] = True
    except ValueError as exc:  # ImageLoadError is a ValueError too
        _log.info("invalid input: %s", exc)
        st.error(error_text(exc))
    except Exception:
        _log.exception("unexpected error in a page")
        st.error(tr()("app.error.generic"))


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
    t = tr()
    c1, c2 = st.columns(2)
    c1.download_button(
        t("app.download_npy"),
        data=lambda: npy_bytes(a),
        file_name=f"{name}.npy",
        mime="application/octet-stream",
        key=f"{key}_npy",
        on_click="ignore",
        width="stretch",
    )
    c2.download_button(
        t("app.download_png"),
        data=lambda: encode_png(a, vmin=vmin, vmax=vmax),
        file_name=f"{name}.png",
        mime="image/png",
        key=f"{key}_png",
        on_click="ignore",
        width="stretch",
    )


SOURCES = ("sample", "upload", "numbers", "feature_map", "example")  # labels: app.source.*


def image_input(
    prefix: str,
    *,
    sources: tuple[str, ...] = ("sample", "upload"),
    allow_rgb: bool = True,
    default_size: int = 512,
    default_sample: str = "Cameraman",  # i18n: not text (a SAMPLES key)
) -> tuple[np.ndarray | None, str, str, str]:
    """Sidebar widgets to choose the input; returns ``(image, label, source, colour)``.

    ``image`` is float32 ``(H, W)`` or ``(H, W, 3)`` in [0, 1], or None when the
    source is not an image (numbers, feature map: the page handles those) or
    nothing was uploaded yet. A bad upload shows ``st.error`` and the previous
    good image stays.
    """
    t = tr()
    source = st.sidebar.radio(
        t("app.input"),
        sources,
        format_func=lambda s: t(f"app.source.{s}"),
        key=f"{prefix}_source",
    )
    colour = "gray"
    if allow_rgb:
        colour = st.sidebar.radio(
            t("app.colour"),
            ["gray", "rgb"],
            format_func=lambda c: t(f"app.colour.{c}"),
            key=f"{prefix}_colour",
            horizontal=True,
        )
    if source not in ("sample", "upload"):
        return None, "", source, colour
    st.session_state.setdefault(f"{prefix}_max_side", default_size)
    size = st.sidebar.select_slider(
        t("app.working_size"),
        WORKING_SIZES,
        key=f"{prefix}_max_side",
        format_func=t.int,
        help=t("app.working_size.help"),
    )
    if source == "sample":
        st.session_state.setdefault(f"{prefix}_sample", default_sample)
        name = st.sidebar.selectbox(
            t("app.sample"),
            list(SAMPLES),
            key=f"{prefix}_sample",
            format_func=lambda n: t(f"app.sample.{sample_slug(n)}"),
        )
        st.sidebar.caption(t(f"app.sample.{sample_slug(name)}.caption"))
        return sample_image(name, mode=colour, max_side=size), name, source, colour
    image, name = _uploaded(prefix, colour, size)
    return image, name, source, colour


def _uploaded(prefix: str, colour: str, size: int):
    ss = st.session_state
    t = tr()
    up = st.sidebar.file_uploader(t("app.upload"), type=UPLOAD_TYPES, key=f"{prefix}_upload")
    good = f"{prefix}_upload_good"  # (file_id, name, bytes) of the last file that decoded
    if up is not None and (ss.get(good) is None or ss[good][0] != up.file_id):
        try:
            data = up.getvalue()
            load_image(data, max_side=size, mode=colour)  # validate before keeping it
            ss[good] = (up.file_id, up.name, data)
        except ImageLoadError as exc:
            # The file name is the uploader's text: shown as plain text, never as Markdown.
            st.error(t("app.upload.bad", reason=error_text(exc, t)))
            st.text(up.name)
        except Exception:
            _log.exception("unexpected error decoding an upload")
            st.error(t("app.upload.unreadable"))
            st.text(up.name)
    if ss.get(good) is None:
        st.info(t("app.upload.prompt"))
        return None, ""
    _, name, data = ss[good]
    return _decode_cached(data, colour, size), name


@st.cache_data(max_entries=8, show_spinner=False)
def _decode_cached(data: bytes, colour: str, size: int) -> np.ndarray:
    return load_image(data, max_side=size, mode=colour)


def play_controls(prefix: str) -> float | None:
    """Play/pause toggle and speed; returns the fragment interval (None when paused)."""
    t = tr()
    c1, c2 = st.columns([1, 2])
    playing = c1.toggle(t("app.play"), key=f"{prefix}_playing", help=t("app.play.help"))
    if st.session_state.get(f"{prefix}_speed") not in SPEEDS:
        st.session_state[f"{prefix}_speed"] = "medium"
    speed = c2.select_slider(
        t("app.speed"),
        list(SPEEDS),
        key=f"{prefix}_speed",
        format_func=lambda s: t(f"app.speed.{s}", seconds=SPEEDS[s]),
        label_visibility="collapsed",
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

    t = tr()
    c1, c2, c3 = st.columns([1, 1, 10], vertical_alignment="bottom")
    c1.button("◀", key=f"{prefix}_prev", on_click=move, args=(-1,), help=t("app.step.prev"))
    c2.button("▶", key=f"{prefix}_next", on_click=move, args=(1,), help=t("app.step.next"))
    if n > 1:
        c3.slider(t("app.step.position"), 0, n - 1, key=key)
    else:
        c3.caption(t("app.step.only_one"))
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


def sample_slug(name: str) -> str:
    """A sample's catalogue key part: ``"Coins (skimage)"`` -> ``coins_skimage``."""
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_").replace("__", "_")


def run_guarded(render: Callable[[], None]) -> None:
    """Run a page body; unexpected errors become a generic message."""
    with user_errors():
        render()
