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
private temporary directory that Streamlit serves. That directory also holds the
feeds (run data): it is removed at exit, and a process that could not (killed)
has its directory removed by the next one to start (:func:`sweep_stale`).

Charts are drawn at the width of their box and the height Python gives, with
plotly's own resizing off: its window-resize handler, run when Streamlit resized
the panel's frame during the rerun that a pause elsewhere or a run's end causes
(seen: 1460 -> 300 px wide and 0 high, and back), deleted the figure's height and
drew the curves' box at 0 px with the filters over them (``index.html``, drawChart).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import math
import os
import shutil
import socket
import stat
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

from convviz.i18n import Translator
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
    "curves_chart",
    "follow_range",
    "live_panel",
    "zoom_bounds",
    "zoom_range",
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

    ``follow_x``: every x axis spans the data so far with a little headroom (its end a
    round number, :func:`follow_range`), inside the figure's own range (a run's total
    steps): early learning is not squeezed into a sliver of the run's length.
    ``zoom_y``: the y axes (layout names, ``"yaxis2"``) zoomed to their data
    (:func:`zoom_bounds`, :func:`zoom_range`); when the figure gives such an axis a
    range of its own and ``full_label`` is set, a checkbox with that label (tooltip
    ``full_help``) above the chart shows that range instead (an accuracy's 0-100%).
    """

    figure: go.Figure
    height: int | None = None
    config: dict | None = None
    follow_x: bool = False
    zoom_y: tuple[str, ...] = ()
    full_label: str = ""
    full_help: str = ""


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


def curves_chart(
    figure: go.Figure, height: int | None = None, config: dict | None = None, *, t: Translator
) -> Chart:
    """A run's loss and accuracy curves (``convviz.train_figures.curves_figure``): the step
    axes follow the run, the accuracy axis (the right panel's, ``yaxis2``) zooms to the
    values reached, and a checkbox labelled in ``t``'s language shows 0-100%."""
    return Chart(
        figure,
        height,
        config,
        follow_x=True,
        zoom_y=("yaxis2",),
        full_label=t("live_panel.acc_full"),
        full_help=t("live_panel.acc_full.help"),
    )


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


# ------------------------------------------------------------------ the served directory
# Each process serves the page from its own private temporary directory, which holds
# the live feeds too (run data). A process that dies without running its atexit
# (SIGKILL, a crash, the machine's power) leaves it behind: the next process to make
# one removes those of dead processes, judged by the owner record written in each.
_PREFIX = "convviz-live-panel-"  # i18n: not text
_OWNER = "owner.json"  # i18n: not text


def _process_start(pid: int) -> str | None:
    """The process' start time in clock ticks since boot (``/proc``), None where unknown.

    With the pid it names one process: a pid can be reused by a later one.
    """
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_line.rpartition(")")[2].split()  # after "pid (comm)": comm may hold spaces
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5)


def _owner_record() -> dict:
    pid = os.getpid()
    return {"pid": pid, "start": _process_start(pid), "host": socket.gethostname()}


def _owner_alive(record: dict) -> bool:
    """Whether the process that wrote ``record`` may still run (True when unsure)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process, alive
        return True
    start = record.get("start")
    now = _process_start(pid)
    return start is None or now is None or now == start  # another start: the pid was reused


def sweep_stale(base: Path | None = None) -> list[Path]:
    """Remove the served directories that dead convviz processes left in ``base``.

    ``base``: the temporary directory (default ``tempfile.gettempdir()``). Only a real
    directory (not a link) named with convviz's prefix, owned by this user, whose owner
    record names a process of this host that is gone (or whose pid now belongs to a
    later process) is removed; anything else, a directory without a record included
    (an older convviz's, or one being made right now), is left alone. Returns the
    removed paths.
    """
    base = Path(tempfile.gettempdir()) if base is None else Path(base)
    uid = os.getuid() if hasattr(os, "getuid") else None
    host = socket.gethostname()
    removed = []
    for path in sorted(base.glob(_PREFIX + "*")):
        try:
            info = path.lstat()
            if not stat.S_ISDIR(info.st_mode) or (uid is not None and info.st_uid != uid):
                continue
            record = json.loads((path / _OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("host") != host or _owner_alive(record):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def _remove_root(top: Path) -> None:
    """At exit: this process' directory, feeds and all."""
    shutil.rmtree(top, ignore_errors=True)


def _component_dir() -> Path:
    """The served directory, made once per process (mkdtemp: private to this user).

    ``<tmp>/convviz-live-panel-XXXX/www``: the owner record sits beside it, not served.
    Made after :func:`sweep_stale` removed what dead processes left; removed at exit.
    """
    with _lock:
        if not _root:
            try:
                if removed := sweep_stale():
                    _log.info("removed %d live panel directories of ended processes", len(removed))
            except OSError:  # an unreadable temp dir: nothing swept, nothing lost
                _log.exception("could not sweep the live panel directories of ended processes")
            top = Path(tempfile.mkdtemp(prefix=_PREFIX))
            atexit.register(_remove_root, top)
            tmp = top / f".{_OWNER}.tmp"
            tmp.write_text(json.dumps(_owner_record()))
            os.replace(tmp, top / _OWNER)
            root = top / "www"  # i18n: not text
            root.mkdir(mode=0o700)
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
    return _spec_of(fig.to_dict())


def _spec_of(d: dict) -> str:
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
        return _chart_args(b)
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


# ------------------------------------------------------------------ axes that follow the data
_ROUND = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)  # an axis end's mantissa
_STEP = (1.0, 2.0, 2.5, 5.0, 10.0)  # a zoomed axis' grain, as tick steps go


def _round_up(x: float, mantissas: tuple[float, ...]) -> float:
    """The smallest ``m * 10**k >= x`` with ``m`` in ``mantissas`` (``x > 0``)."""
    e = math.floor(math.log10(x))
    for m in mantissas:
        if m * 10.0**e >= x * (1 - 1e-12):
            return float(f"{m * 10.0**e:.12g}")
    return float(f"{10.0 ** (e + 1):.12g}")


def follow_range(data_max: float, limit: tuple[float, float] | None = None) -> list[float]:
    """A step axis that follows a run: ``[lo, end]``, ``end`` the first round number
    (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten) at or past ``1.1 * data_max``,
    at most ``limit``'s end; ``lo`` is ``limit``'s start, else 0.

    Round ends change the axis a dozen times per decade of steps, not at every refresh:
    plotly re-ticks an axis whose range changed (the reason the curves' axis was fixed).

    >>> follow_range(282), follow_range(364), follow_range(900, (0, 1580)), follow_range(0)
    ([0.0, 400.0], [0.0, 500.0], [0.0, 1000.0], [0.0, 1.0])
    >>> follow_range(1500, (0, 1580))
    [0.0, 1580.0]
    """
    lo = float(limit[0]) if limit is not None else 0.0
    end = _round_up(max(1.1 * float(data_max) - lo, 1.0), _ROUND) + lo
    if limit is not None:
        end = min(end, float(limit[1]))
    return [lo, end]


def zoom_range(
    data_min: float, data_max: float, limit: tuple[float, float] | None = None
) -> list[float]:
    """A value axis zoomed to ``[data_min, data_max]``: padded by 5% of the span on each
    side, out to a multiple of a round grain (a quarter of the span, rounded up to 1, 2,
    2.5 or 5 times a power of ten), and clipped to ``limit``. The span is at least 2% of
    ``limit``'s (1e-3 without one), so a flat curve is not blown up to noise.

    >>> zoom_range(0.95, 0.995, (0, 1.02))
    [0.94, 1.0]
    >>> zoom_range(0.1, 0.99, (0, 1.02))
    [0.0, 1.02]
    """
    lo, hi = float(data_min), float(data_max)
    floor_span = 0.02 * (limit[1] - limit[0]) if limit is not None else 1e-3
    span = max(hi - lo, floor_span)
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - span / 2), max(hi, mid + span / 2)
    grain = _round_up(span / 4, _STEP)
    pad = 0.05 * span
    zlo = math.floor((lo - pad) / grain) * grain
    zhi = math.ceil((hi + pad) / grain) * grain
    if limit is not None:
        zlo, zhi = max(zlo, float(limit[0])), min(zhi, float(limit[1]))
    return [float(f"{zlo:.12g}"), float(f"{zhi:.12g}")]


def _finite_values(v) -> np.ndarray:
    try:
        a = np.asarray(v if v is not None else (), dtype=float).ravel()
    except (TypeError, ValueError):  # categories, dates: not an axis we follow
        return np.empty(0)
    return a[np.isfinite(a)]


def _axis_data(d: dict, letter: str) -> dict[str, list[np.ndarray]]:
    """Per layout axis name (``xaxis``, ``yaxis2``): the finite values of each trace on it."""
    seen: dict[str, list[np.ndarray]] = {}
    for trace in d.get("data", ()):
        ref = trace.get(f"{letter}axis") or letter  # "x2" -> "xaxis2"
        seen.setdefault(f"{letter}axis{ref[1:]}", []).append(_finite_values(trace.get(letter)))
    return {name: [p for p in parts if p.size] for name, parts in seen.items()}


ROBUST_POINTS = 20  # traces this long are zoomed to their 5th percentile, not their minimum
ROBUST_Q = 0.05


def zoom_bounds(traces: list[np.ndarray]) -> tuple[float, float] | None:
    """The values a zoomed axis shows: up to the largest of any trace, down to the smallest
    of a short trace (validation: each point counts) and the 5th percentile of a long one.

    A run's first steps have a train accuracy near chance (10%): the minimum would keep
    the axis at 0-100% for the whole run and 97->99% would look flat again. Those first
    steps run below the zoomed axis; the checkbox shows all.

    >>> train = np.r_[np.linspace(0.1, 0.9, 4), np.linspace(0.9, 0.99, 96)]
    >>> lo, hi = zoom_bounds([train, np.array([0.93, 0.97])])
    >>> round(lo, 3), hi
    (0.901, 0.99)
    """
    parts = [p for p in traces if p.size]
    if not parts:
        return None
    lows = [
        float(np.quantile(p, ROBUST_Q)) if p.size >= ROBUST_POINTS else float(p.min())
        for p in parts
    ]
    return float(f"{min(lows):.12g}"), float(max(p.max() for p in parts))


def _own_range(layout: dict, name: str) -> tuple[float, float] | None:
    r = (layout.get(name) or {}).get("range")
    try:
        lo, hi = (float(r[0]), float(r[1])) if r is not None and len(r) == 2 else (0.0, 0.0)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and lo < hi else None


def _chart_args(b: Chart) -> dict:
    height = b.height if b.height is not None else (b.figure.layout.height or 400)
    d = b.figure.to_dict()
    layout = d.get("layout", {})
    ranges: dict[str, list[float]] = {}
    full: dict[str, list[float]] = {}
    if b.follow_x:
        for name, parts in _axis_data(d, "x").items():
            if parts:
                top = max(float(p.max()) for p in parts)
                ranges[name] = follow_range(top, _own_range(layout, name))
    if b.zoom_y:
        data = _axis_data(d, "y")
        for name in b.zoom_y:
            own = _own_range(layout, name)
            if (bounds := zoom_bounds(data.get(name, []))) is not None:
                ranges[name] = zoom_range(*bounds, own)
            if own is not None:
                full[name] = list(own)
    args = {
        "kind": "chart",
        "spec": _spec_of(d),
        "height": int(height),
        "config": b.config or {},
        "ranges": ranges,
        "full": full,
    }
    if full and b.full_label:
        args["toggle"] = {"label": b.full_label, "help": b.full_help}
    return args


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
        """Stop feeding ``token`` and delete its files (a pass in progress writes none)."""
        with self._lock:
            self._feeds.pop(token, None)
            self._remove_files(token)

    def _drop(self, token: str, feed: _Feed) -> None:
        """:meth:`discard` ``token`` if ``feed`` still feeds it (not a successor registered
        by the page's rerun meanwhile)."""
        with self._lock:
            if self._feeds.get(token) is feed:
                del self._feeds[token]
                self._remove_files(token)

    def _remove_files(self, token: str) -> None:
        for name in self._files(token):
            (self.dir / name).unlink(missing_ok=True)
            (self.dir / f".{name}.tmp").unlink(missing_ok=True)

    @staticmethod
    def _files(token: str) -> tuple[str, str]:
        return f"{token}.json", f"{token}.seq"

    def files(self) -> list[str]:
        """The names in the feeds directory (for tests: the files a page can fetch)."""
        return sorted(p.name for p in self.dir.iterdir())

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
                self._drop(token, feed)
                continue
            try:
                version = feed.version()
                if version is None:
                    self._drop(token, feed)
                    continue
                if version == feed.shown:
                    continue
                blocks, extra = feed.build()
                args = {**extra, **panel_args(blocks)}
            except Exception:  # a feed must not stop the others
                _log.exception("live panel feed %s failed; dropped", token[:4])
                self._drop(token, feed)
                continue
            try:
                self._write(token, feed, version, args)
            except OSError:  # a full disk: this feed stops, its files go, the others go on
                _log.exception("live panel feed %s could not be written; dropped", token[:4])
                self._drop(token, feed)

    def _write(self, token: str, feed: _Feed, version: Hashable, args: dict) -> None:
        """Write ``feed``'s files, if it is still the one registered for ``token``.

        Under the lock that :meth:`discard` and :meth:`register` take: a feed dropped or
        replaced while its blocks were built writes nothing (before, its files came back
        after the discard and stayed until the process ended, and a replaced feed could
        write the number its successor was about to use).
        """
        text = json.dumps({"seq": feed.seq + 1, **args})
        with self._lock:
            if self._feeds.get(token) is not feed:
                return
            feed.shown = version
            feed.seq += 1
            # The blocks, then their number in a tiny file that the page polls often
            # (so it sees each update soon after it is written, without fetching the
            # blocks every time). os.replace: the page never reads half a file, and
            # each feed has one current version on disk, never a history.
            blocks, seq = self._files(token)
            for name, data in ((blocks, text), (seq, str(feed.seq))):
                tmp = self.dir / f".{name}.tmp"
                try:
                    tmp.write_text(data)
                    os.replace(tmp, self.dir / name)
                finally:
                    tmp.unlink(missing_ok=True)

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
