"""Widgets and render helpers shared by the pages (the streamlit side of the app)."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from convviz.figures import plot_config
from convviz.images import SAMPLES, ImageLoadError, encode_png, load_image, sample_image
from convviz.lesson import PLAY_MODES, advanced, moved
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


def without_template(fig: go.Figure) -> go.Figure:
    """``fig`` without plotly's own template (``"none"``), for ``st.plotly_chart``.

    With Streamlit's theme the browser draws every chart in that theme: the template
    plotly.py writes into each figure (about 6 KB, most of a small chart's JSON) is
    sent, parsed and merged for nothing. Measured here: screenshots of every page
    pixel-identical without it, and a kernel edit on the numbers page repainted in
    p50 109 ms instead of 128 (interleaved, n=15 each).
    """
    fig.layout.template = "none"
    return fig


def show_figure(fig: go.Figure, key: str, filename: str | None = None) -> None:
    """``st.plotly_chart`` with the app's toolbar config (PNG download button)."""
    without_template(fig)
    config = plot_config(filename or key, tr())
    st.plotly_chart(fig, width="stretch", key=key, config=config)


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


PLAY_BY = "play_by"  # <prefix>_play_by: how far one tick of Play moves (convviz.lesson)


def play_controls(prefix: str, *, modes: bool = False) -> float | None:
    """Play/pause toggle and speed; returns the fragment interval (None when paused).

    ``modes`` adds a choice of how far each tick moves (one window, a whole output
    row, a fast sweep: :data:`convviz.lesson.PLAY_MODES`), for maps with many windows.
    """
    t = tr()
    ss = st.session_state
    c1, c2, c3 = st.columns([1, 2, 2] if modes else [1, 2, 0.01], vertical_alignment="center")
    playing = c1.toggle(t("app.play"), key=f"{prefix}_playing", help=t("app.play.help"))
    if ss.get(f"{prefix}_speed") not in SPEEDS:
        ss[f"{prefix}_speed"] = "medium"
    speed = c2.select_slider(
        t("app.speed"),
        list(SPEEDS),
        key=f"{prefix}_speed",
        format_func=lambda s: t(f"app.speed.{s}", seconds=SPEEDS[s]),
        label_visibility="collapsed",
    )
    by = f"{prefix}_{PLAY_BY}"
    if ss.get(by) not in PLAY_MODES:
        ss[by] = PLAY_MODES[0]
    if modes:
        c3.segmented_control(
            t("app.play.by"),
            PLAY_MODES,
            key=by,
            format_func=lambda m: t(f"app.play.by.{m}"),
            label_visibility="collapsed",
            help=t("app.play.by.help"),
        )
    return SPEEDS[speed] if playing else None


def _ticks(prefix: str, interval: float | None) -> int:
    """How many ticks of Play are due now, by the clock since Play started (1 on its first run).

    A repaint slower than the interval would otherwise slow Play down: the position
    follows the clock (``floor(elapsed / interval) + 1`` ticks in all), so the
    windows per second are the ones asked for even when frames are dropped.
    """
    ss = st.session_state
    clock = f"{prefix}_clock"
    if interval is None:
        ss.pop(clock, None)
        return 0
    now = time.monotonic()
    start, done, every = ss.get(clock, (now, 0, interval))
    if every != interval:  # a new speed: count from here
        start, done = now, 0
    due = int((now - start) / interval) + 1
    # 0 when a run comes early (queued reruns catching up): measured, counting at least 1
    # a run overshot the speed asked by 1.5-1.9x on the 5x5 numbers page
    ticks = due - done
    ss[clock] = (start, due, interval)
    return ticks


ARROWS = {"prev": ("◀", "left"), "up": ("▲", "up"), "down": ("▼", "down"), "next": ("▶", "right")}


RECENT_WRITES = 16  # positions a stepper remembers writing to its slider


def set_position(prefix: str, index: int) -> None:
    """Put stepper ``prefix``'s window at raster ``index`` (its slider and its own record)."""
    ss = st.session_state
    index = int(index)
    ss[f"{prefix}_step"] = index
    recent = [i for i in ss.get(f"{prefix}_written", []) if i != index][-(RECENT_WRITES - 1) :]
    ss[f"{prefix}_written"] = [*recent, index]


def position(prefix: str) -> int:
    """Stepper ``prefix``'s current raster index.

    The slider (``<prefix>_step``) carries the browser's value on every run, and while
    Play repaints slower than its ticks the browser sends a value it has not yet been
    shown the change of: measured on a 512x512 image at 0.2 s a step, runs came back
    with positions one to three steps old, so the window stalled and went back and
    Play reached 47% of the speed asked. So while Play runs (``<prefix>_playing``), a
    slider value this stepper wrote itself recently is such an echo and the last
    position written wins; any other value is the user's (a drag on the slider) and
    wins. Paused, nothing reruns on a timer and the slider's value is the position.
    """
    ss = st.session_state
    slider = int(ss.get(f"{prefix}_step", 0))
    written = ss.get(f"{prefix}_written") or []
    if ss.get(f"{prefix}_playing") and slider in written:
        return int(written[-1])
    return slider


def step_controls(
    prefix: str,
    n: int,
    playing: bool | float | None,
    *,
    out_hw: tuple[int, int] | None = None,
    placed: int | None = None,
) -> int:
    """◀ ▲ ▼ ▶ buttons (arrow keys too) and a position slider over ``n`` positions; returns
    the index.

    Call inside the stepper fragment. ``playing`` is the Play interval (None or False
    when paused; True counts as one tick a run). While playing, each run moves on by
    the ticks due (:func:`_ticks`) in the chosen mode, wrapping around. ``out_hw``
    ``(Ho, Wo)`` adds ▲ ▼ (one output row; without it the map is one row of ``n``).
    ``placed`` is a position the user just chose (a click): it wins over Play this run.
    The position is :func:`position`'s (a stale slider value does not move it back).
    """
    ss = st.session_state
    key = f"{prefix}_step"
    hw = out_hw if out_hw is not None else (1, n)
    cur = position(prefix)
    interval = 1.0 if playing is True else (playing or None)
    ticks = _ticks(prefix, interval)
    if placed is not None:
        cur = placed
    elif ticks:
        mode = ss.get(f"{prefix}_{PLAY_BY}")  # None when a segmented control is unselected
        cur = advanced(cur % n, mode if mode in PLAY_MODES else PLAY_MODES[0], hw, ticks)
    set_position(prefix, min(max(cur, 0), n - 1))

    def move(direction: str) -> None:
        set_position(prefix, moved(position(prefix), direction, hw))

    t = tr()
    shown = ("prev", "up", "down", "next") if out_hw is not None else ("prev", "next")
    widths = [1] * len(shown) + ([8] if out_hw is not None else [10])
    cols = st.columns(widths, vertical_alignment="bottom")
    for c, name in zip(cols, shown, strict=False):
        label, direction = ARROWS[name]
        c.button(
            label,
            key=f"{prefix}_{name}",
            on_click=move,
            args=(direction,),
            help=t(f"app.step.{name}"),
            shortcut=direction.capitalize(),  # i18n: not text (a key name)
        )
    if n > 1:  # beside the arrows in the lesson layout, where its label would cost a line
        hide = "collapsed" if out_hw is not None else "visible"
        cols[-1].slider(t("app.step.position"), 0, n - 1, key=key, label_visibility=hide)
    else:
        cols[-1].caption(t("app.step.only_one"))
    return int(ss[key])


# Streamlit's wide layout starts the page 6rem down and titles at 2.75rem: at 1280x720
# that alone pushed the lesson's sum line below the fold.
LESSON_CSS = (
    "<style>"  # i18n: not text
    "[data-testid='stMainBlockContainer']"  # i18n: not text
    "{padding-top:2.25rem;padding-bottom:2rem}"  # i18n: not text
    "[data-testid='stMainBlockContainer'] h1{font-size:2rem;padding:0 0 .25rem 0}"  # i18n: not text
    # the output-size formula: at Streamlit's 1.21em a 512 px image's ran 412 px in a 378 px
    # column at 1280x720 (measured), its "= 256" cut off; never cut, at worst it scrolls
    "[class*='st-key-conv_formula_'] .katex{font-size:1em}"  # i18n: not text
    "[class*='st-key-conv_formula_'] .katex-display"  # i18n: not text
    "{overflow-x:auto;overflow-y:hidden}"  # i18n: not text
    "</style>"  # i18n: not text
)


def lesson_css() -> None:
    """A tighter top of the page, so a lesson fits one screen (see LESSON_CSS). The
    page's first style block: it also loads the code that later ones need (see style)."""
    style(LESSON_CSS)


# A block of Markdown that holds a style only takes no room (its style still applies).
_STYLE_ONLY = (
    "<style>[data-testid='stElementContainer']"  # i18n: not text
    ":has(> [data-testid='stMarkdown'] style){display:none}</style>"  # i18n: not text
)


def style(sheet: str) -> None:
    """Add ``sheet`` (``<style>...</style>``, constant text or built from numbers, never
    from data) to the page, at once. In a Markdown block, not ``st.html``: Streamlit loads
    the code of st.html's element when the page first needs it, and measured here a
    lesson's styles came 0.6 s after the run had ended (the page moved then). A Markdown
    block with HTML waits for its own code only on the page's first (``lesson_css``)."""
    st.markdown(sheet + _STYLE_ONLY, unsafe_allow_html=True)


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
