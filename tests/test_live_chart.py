"""The live_plotly component's served directory (its behaviour is in test_browser_train.py)."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio

from convviz.ui import live_chart


def test_component_dir_serves_our_page_and_the_packaged_plotly():
    root = live_chart._component_dir()
    assert live_chart._component_dir() == root  # made once per process
    page = (root / "index.html").read_text()
    assert '<script src="plotly.min.js"></script>' in page
    assert "streamlit:componentReady" in page and "Plotly.react" in page
    js = (root / "plotly.min.js").read_bytes()
    assert js == live_chart._plotly_js().read_bytes()
    assert b"plotly.js v" in js[:200]  # the bundle the plotly package ships for its figures
    assert oct(root.stat().st_mode & 0o777) == "0o700"  # mkdtemp: this user's only


def test_spec_gives_the_app_look_without_touching_the_figure():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"height": 200})
    before = fig.to_json()
    spec = json.loads(live_chart._spec(fig))
    assert fig.to_json() == before  # the caller's figure is unchanged
    assert spec["data"][0]["y"] == [3, 4] and spec["layout"]["height"] == 200
    white = pio.templates["plotly_white"].layout.plot_bgcolor
    assert spec["layout"]["template"]["layout"]["plot_bgcolor"] == white
    assert "Source Sans" in spec["layout"]["font"]["family"]
