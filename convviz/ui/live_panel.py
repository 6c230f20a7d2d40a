"""``live_panel``: a group of live views drawn as ONE element and updated in place.

While a run trains, the Train page redraws its progress, metrics, curves and
first-layer filters about once a second, and its predictions, activations and
confusion matrix every few seconds. Drawn as Streamlit elements, each refresh
sent dozens of deltas and the browser re-rendered its React tree for each.
Measured on this 2-core machine, ``classic`` training, per-process CPU from
``/proc``: Chromium's renderer took 0.25 of a core, which the training lost,
and ``benchmarks/bench_train_ui.py`` gave 0.73-0.79 of the headless
throughput. With these panels the renderer took 0.18-0.29 (the fragment's
rerun each second still re-rendered the whole page), and with the fast panel
fed between reruns (:class:`Feeder`) 0.18, its JavaScript time halved; the
ratio's medians are 0.82-0.91, within this shared machine's noise of each other.

A panel is a list of blocks (:class:`Progress`, :class:`Metrics`,
:class:`Chart`, :class:`Pictures`, :class:`Row` of columns). Its own script
touches only what changed: text nodes, the bar's width, the pictures' ``src``
and ``Plotly.react`` on the same graph, so a user's zoom survives the
refreshes (``layout.uirevision``); ``st.plotly_chart`` (Streamlit 1.67) builds
a new graph whenever the data change, and the zoom was gone within a second.
Text is set as text, never as markup (layer names come from uploaded models).

It is a Streamlit v1 custom component with no build step: ``live_panel/index.html``
(our own), the ``plotly.min.js`` shipped inside the installed ``plotly``
package (so it always matches the figures' schema) and Streamlit's own Source
Sans font (so a panel looks like the page around it), copied together into a
private temporary directory that Streamlit serves.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly
import plotly.graph_objects as go
import plotly.io as pio
import streamlit
import streamlit.components.v1 as components
from plotly.utils import PlotlyJSONEncoder

from convviz.render import png_data_url, png_from_pixels

__all__ = [
    "Block",
    "Chart",
    "Metric",
    "Metrics",
    "Pic",
    "Pictures",
    "Progress",
    "Row",
    "live_panel",
]

_log = logging.getLogger(__name__)
_PAGE = Path(__file__).resolve().parent / "live_panel" / "index.html"
_FONT = {
    "family": '"Source Sans", "Source Sans Pro", sans-serif',  # i18n: not text
    "color": "#31333F",
}
_lock = threading.Lock()
_root: list[Path] = []


# ------------------------------------------------------------------ the blocks a panel shows
@dataclass(frozen=True)
class Progress:
    """A progress bar: ``value`` in [0, 1] (clamped; NaN shows empty) under ``text``."""

    value: float
    text: str


@dataclass(frozen=True)
class Metric:
    label: str
    value: str
    help: str = ""  # a tooltip on the label


@dataclass(frozen=True)
class Metrics:
    """A row of big numbers, like ``st.metric`` in ``st.columns``."""

    items: list[Metric]


@dataclass(frozen=True)
class Chart:
    """A plotly figure, updated in place (the user's zoom is kept).

    ``height`` in pixels; default: the figure's own layout height, else 400.
    ``config``: plotly's (toolbar buttons, download file name).
    """

    figure: go.Figure
    height: int | None = None
    config: dict | None = None


@dataclass(frozen=True)
class Pic:
    """An RGB picture ``(H, W, 3)`` uint8, shown ``width`` pixels wide (default: its own, at most
    the panel's) with a caption under it."""

    rgb: np.ndarray
    caption: str = ""
    width: int | None = None


@dataclass(frozen=True)
class Pictures:
    """Pictures side by side (wrapping), under a bold ``title`` and a grey ``note``.

    ``name`` marks the block in the page (``data-name``), for tests and styles.
    """

    items: list[Pic]
    title: str = ""
    note: str = ""
    name: str = ""


@dataclass(frozen=True)
class Row:
    """Columns side by side, each a list of blocks; ``weights`` as in ``st.columns``."""

    columns: list[list]
    weights: list[float] | None = None


Block = Progress | Metrics | Chart | Pictures | Row


def _plotly_js() -> Path:
    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"the plotly package has no plotly.min.js at {path}")
    return path


def _font() -> Path | None:
    """Streamlit's Source Sans (variable, upright), or None (the panel falls back to sans-serif)."""
    media = Path(streamlit.__file__).resolve().parent / "static" / "static" / "media"
    fonts = media.glob("SourceSansVF-Upright*.woff2")  # i18n: not text
    return next(iter(sorted(fonts)), None)


def _component_dir() -> Path:
    """The served directory, made once per process (mkdtemp: private to this user)."""
    with _lock:
        if not _root:
            root = Path(tempfile.mkdtemp(prefix="convviz-live-panel-"))
            atexit.register(shutil.rmtree, root, True)
            shutil.copyfile(_PAGE, root / "index.html")
            shutil.copyfile(_plotly_js(), root / "plotly.min.js")
            if (font := _font()) is not None:
                shutil.copyfile(font, root / "SourceSans.woff2")  # i18n: not text
            _root.append(root)
        return _root[0]


@functools.cache
def _template() -> dict:
    """The look of the app's other charts: plotly_white in the app's font (built once)."""
    return pio.templates["plotly_white"].to_plotly_json()


def _spec(fig: go.Figure) -> str:
    """``fig`` as JSON with the app's look, leaving ``fig`` as it was.

    Through a dict, not ``go.Figure(fig).update_layout(...)``: that copy and
    its validation took 22 ms per refresh on the server, this 2-3 ms.
    """
    d = fig.to_dict()
    layout = d.setdefault("layout", {})
    layout["template"] = _template()
    layout["font"] = {**_FONT, **layout.get("font", {})}
    return json.dumps(d, cls=PlotlyJSONEncoder)


def _data_url(rgb: np.ndarray) -> str:
    """``rgb`` as a PNG data URL, through the one cached encoder (:mod:`convviz.render`)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"`rgb` must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
    return png_data_url(png_from_pixels(rgb))


def _finite_fraction(v: float) -> float:
    v = float(v)
    return min(max(v, 0.0), 1.0) if np.isfinite(v) else 0.0


def _block_args(b: Block) -> dict:
    if isinstance(b, Progress):
        return {"kind": "progress", "value": _finite_fraction(b.value), "text": str(b.text)}
    if isinstance(b, Metrics):
        items = [{"label": m.label, "value": m.value, "help": m.help} for m in b.items]
        return {"kind": "metrics", "items": items}
    if isinstance(b, Chart):
        height = b.height if b.height is not None else (b.figure.layout.height or 400)
        spec = _spec(b.figure)
        return {"kind": "chart", "spec": spec, "height": int(height), "config": b.config or {}}
    if isinstance(b, Pictures):
        items = [
            {
                "src": _data_url(p.rgb),
                "caption": p.caption,
                "width": int(p.width if p.width is not None else p.rgb.shape[1]),
            }
            for p in b.items
        ]
        return {
            "kind": "pictures",
            "title": b.title,
            "note": b.note,
            "name": b.name,
            "items": items,
        }
    if isinstance(b, Row):
        weights = b.weights if b.weights is not None else [1.0] * len(b.columns)
        if len(weights) != len(b.columns) or not all(w > 0 for w in weights):
            raise ValueError(f"`weights` must be one positive number per column, got {weights}")
        return {
            "kind": "row",
            "weights": [float(w) for w in weights],
            "columns": [[_block_args(c) for c in col] for col in b.columns],
        }
    raise TypeError(f"not a live_panel block: {type(b).__name__}")


def panel_args(blocks: list[Block]) -> dict:
    """The component's arguments (JSON-able) for ``blocks``; :func:`live_panel` sends them."""
    return {"blocks": [_block_args(b) for b in blocks]}


def live_panel(
    blocks: list[Block],
    *,
    key: str,
    feed: str | None = None,
    poll_s: float = 1.0,
    state: str | None = None,
    version: int | None = None,
    lang: str | None = None,
) -> None:
    """Draw ``blocks`` in one element; a later call with the same ``key`` updates it in place.

    ``feed``: a URL from :meth:`Feeder.register`; the panel then checks it for new
    blocks every ``poll_s`` seconds, between Streamlit reruns. When the feed's
    ``state`` (from its ``build``) is set and differs from ``state``, the panel asks
    Streamlit for a rerun, once per new state. ``version`` orders the data: fed
    blocks older than the ones drawn now (their ``version`` from ``build``) are
    ignored, newer ones replace them (whichever came first, the rerun or the feed).
    ``lang``: the language of the text in ``blocks`` (the frame's ``lang`` attribute).

    Every word the panel shows comes from ``blocks``: its page holds none of its own.
    """
    args = panel_args(blocks)
    args.update(
        feed=feed, poll_ms=round(float(poll_s) * 1000), state=state, version=version, lang=lang
    )
    # Declared on every call: cheap, and right for each Streamlit runtime (tests make several).
    component = components.declare_component("live_panel", path=str(_component_dir()))
    component(**args, key=key, default=None)


# ------------------------------------------------------------------ panels that feed themselves
_clock = time.monotonic  # the Feeder's clock (tests move it)


@dataclass
class _Feed:
    version: Callable[[], Hashable | None]
    build: Callable[[], tuple[list[Block], dict]]
    ttl: float
    touched: float
    shown: Hashable = None
    seq: int = 0


class Feeder:
    """Panels that update themselves, without a Streamlit rerun.

    A registered panel's page polls ``feeds/<token>.seq`` in the panel's own
    directory several times per ``interval`` and fetches ``feeds/<token>.json``
    when that number changes (:func:`live_panel`'s ``feed``); a background
    thread rebuilds the blocks and writes both files every ``interval`` seconds
    while ``version()`` changes. Why: on the Train page, a Streamlit fragment rerun
    every 0.85 s cost the browser about 0.06 of a core in React work for the
    whole page (its sidebar and two dozen elements), for a panel that is one
    element; measured with ``benchmarks/bench_train_ui.py``. The thread never
    calls ``st.*``: ``version`` and ``build`` must not either.

    A feed whose page stopped calling :meth:`touch` for ``ttl`` seconds, or
    whose ``version()`` returns None, is dropped and its file deleted. Tokens
    are random and unguessable; a feed's file is readable by whoever has its
    token, as a run is by whoever has its id.
    """

    def __init__(self, root: Path, interval: float) -> None:
        self.dir = root / "feeds"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self.interval = float(interval)
        self._feeds: dict[str, _Feed] = {}
        self._lock = threading.Lock()
        self._passing = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(
        self,
        token: str,
        version: Callable[[], Hashable | None],
        build: Callable[[], tuple[list[Block], dict]],
        ttl: float = 60.0,
    ) -> str:
        """Feed ``token`` from now on (replacing what fed it before); the panel's ``feed`` URL."""
        if not token.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"`token` must be URL-safe letters and digits, got {token!r}")
        with self._lock:
            old = self._feeds.get(token)
            seq = old.seq if old is not None else 0
            self._feeds[token] = _Feed(version, build, float(ttl), _clock(), seq=seq)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="convviz-live-feeds", daemon=True
                )
                self._thread.start()
        return f"feeds/{token}.json"

    def touch(self, token: str) -> None:
        with self._lock:
            if (feed := self._feeds.get(token)) is not None:
                feed.touched = _clock()

    def discard(self, token: str) -> None:
        with self._lock:
            self._feeds.pop(token, None)
        for suffix in (".json", ".seq"):
            (self.dir / f"{token}{suffix}").unlink(missing_ok=True)

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._feeds)

    def publish_due(self) -> None:
        """One pass: write the feeds whose version changed, drop the stale ones."""
        with self._passing:  # one pass at a time (the thread's, a test's)
            self._publish_due()

    def _publish_due(self) -> None:
        now = _clock()
        with self._lock:
            feeds = list(self._feeds.items())
        for token, feed in feeds:
            if now - feed.touched > feed.ttl:
                self.discard(token)
                continue
            try:
                version = feed.version()
                if version is None:
                    self.discard(token)
                    continue
                if version == feed.shown:
                    continue
                blocks, extra = feed.build()
                args = {**extra, **panel_args(blocks)}
            except Exception:  # a feed must not stop the others
                _log.exception("live panel feed %s failed; dropped", token[:4])
                self.discard(token)
                continue
            feed.shown = version
            feed.seq += 1
            # The blocks, then their number in a tiny file that the page polls often
            # (so it sees each update soon after it is written, without fetching the
            # blocks every time). os.replace: the page never reads half a file.
            for name, text in (
                (f"{token}.json", json.dumps({"seq": feed.seq, **args})),
                (f"{token}.seq", str(feed.seq)),
            ):
                tmp = self.dir / f".{name}.tmp"
                tmp.write_text(text)
                os.replace(tmp, self.dir / name)

    def _loop(self) -> None:
        due = time.monotonic() + self.interval
        while True:  # at a fixed rate: a pass's own time does not slow the refresh
            time.sleep(max(0.0, due - time.monotonic()))
            self.publish_due()
            due = max(due + self.interval, time.monotonic())


_feeders: dict[float, Feeder] = {}
_feeders_lock = threading.Lock()


def feeder(interval: float) -> Feeder:
    """The process's feeder writing every ``interval`` seconds (made once)."""
    # pandas fully imported before a feeder thread builds a figure: plotly uses
    # sys.modules["pandas"] when it is there, and while a script thread was still
    # importing it (Streamlit loads it lazily, for a component's arguments) the
    # feeder's first build failed on the half-made module (AttributeError: 'pandas'
    # has no attribute 'Series'; seen in test_browser_train on a loaded machine).
    import pandas  # noqa: F401

    root = _component_dir()
    with _feeders_lock:
        if interval not in _feeders:
            _feeders[interval] = Feeder(root, interval)
        return _feeders[interval]
