"""``live_plotly``: a plotly chart updated in place, for a view redrawn every second.

``st.plotly_chart`` (Streamlit 1.67) throws its graph away whenever the
figure's data change and builds a new one. On the Train page, whose curves
change at every refresh, that reset the user's zoom within a second
(measured in Chromium: a zoomed step axis was back to the whole run 0.85 s
later). This component keeps one graph per key and calls ``Plotly.react``
with each new figure, so the zoom (``layout.uirevision``) survives the
refreshes. (The browser's CPU use with the page open was about the same
either way, measured.)

It is a Streamlit v1 custom component with no build step:
``live_plotly/index.html`` (a few lines of our own) and the ``plotly.min.js``
shipped inside the installed ``plotly`` package (so it always matches the
figures' schema), copied together into a private temporary directory that
Streamlit serves.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import threading
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio
import streamlit.components.v1 as components
from plotly.utils import PlotlyJSONEncoder

__all__ = ["live_plotly"]

_PAGE = Path(__file__).resolve().parent / "live_plotly" / "index.html"
_FONT = {"family": '"Source Sans", "Source Sans Pro", sans-serif', "color": "#31333F"}
_lock = threading.Lock()
_root: list[Path] = []


def _plotly_js() -> Path:
    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"the plotly package has no plotly.min.js at {path}")
    return path


def _component_dir() -> Path:
    """The served directory, made once per process (mkdtemp: private to this user)."""
    with _lock:
        if not _root:
            root = Path(tempfile.mkdtemp(prefix="convviz-live-plotly-"))
            atexit.register(shutil.rmtree, root, True)
            shutil.copyfile(_PAGE, root / "index.html")
            shutil.copyfile(_plotly_js(), root / "plotly.min.js")
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


def live_plotly(fig: go.Figure, *, key: str, height: int, config: dict | None = None) -> None:
    """Draw ``fig``, ``height`` pixels tall; later calls with the same ``key`` update it."""
    # Declared on every call: cheap, and right for each Streamlit runtime (tests make several).
    component = components.declare_component("live_plotly", path=str(_component_dir()))
    component(spec=_spec(fig), height=int(height), config=config or {}, key=key, default=None)
