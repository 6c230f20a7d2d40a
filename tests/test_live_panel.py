"""The live_panel component: its served directory and the arguments it is sent.

Its behaviour in a browser (updates in place, zoom kept) is in test_browser_train.py.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from PIL import Image

from convviz import render
from convviz.ui import live_panel
from convviz.ui.live_panel import (
    Chart,
    Metric,
    Metrics,
    Pic,
    Pictures,
    Progress,
    Row,
    panel_args,
)


def test_component_dir_serves_our_page_the_packaged_plotly_and_the_app_font():
    root = live_panel._component_dir()
    assert live_panel._component_dir() == root  # made once per process
    page = (root / "index.html").read_text()
    assert '<script src="plotly.min.js"></script>' in page
    assert "streamlit:componentReady" in page and "Plotly.react" in page
    # Text from the server (layer names of uploaded models) never becomes markup.
    assert "innerHTML" not in page.split("<script>", 1)[1]
    js = (root / "plotly.min.js").read_bytes()
    assert js == live_panel._plotly_js().read_bytes()
    assert b"plotly.js v" in js[:200]  # the bundle the plotly package ships for its figures
    font = live_panel._font()
    assert font is not None, "Streamlit's Source Sans font was not found"
    assert (root / "SourceSans.woff2").read_bytes()[:4] == b"wOF2" == font.read_bytes()[:4]
    assert oct(root.stat().st_mode & 0o777) == "0o700"  # mkdtemp: this user's only


def test_spec_gives_the_app_look_without_touching_the_figure():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"height": 200})
    before = fig.to_json()
    spec = json.loads(live_panel._spec(fig))
    assert fig.to_json() == before  # the caller's figure is unchanged
    assert spec["data"][0]["y"] == [3, 4] and spec["layout"]["height"] == 200
    white = pio.templates["plotly_white"].layout.plot_bgcolor
    assert spec["layout"]["template"]["layout"]["plot_bgcolor"] == white
    assert "Source Sans" in spec["layout"]["font"]["family"]


def blocks(*extra):
    return panel_args(
        [
            Progress(0.25, "step 5/20"),
            Metrics([Metric("Loss", "0.5"), Metric("Val", "90%", help="On 200 images")]),
            Chart(go.Figure(go.Scatter(x=[1], y=[2])), 300, {"displaylogo": False}),
            *extra,
        ]
    )["blocks"]


def test_panel_args_are_json_and_keep_the_values():
    a = panel_args([Progress(0.25, "step 5/20")])
    assert json.loads(json.dumps(a)) == a
    progress, metrics, chart = blocks()
    assert progress == {"kind": "progress", "value": 0.25, "text": "step 5/20"}
    assert metrics["items"] == [
        {"label": "Loss", "value": "0.5", "help": ""},
        {"label": "Val", "value": "90%", "help": "On 200 images"},
    ]
    assert json.loads(chart["spec"])["data"][0]["y"] == [2]
    assert (chart["height"], chart["config"]) == (300, {"displaylogo": False})


def test_chart_height_defaults_to_the_figure_s():
    fig = go.Figure(layout={"height": 222})
    assert panel_args([Chart(fig)])["blocks"][0]["height"] == 222
    assert panel_args([Chart(go.Figure())])["blocks"][0]["height"] == 400


@pytest.mark.parametrize(("given", "sent"), [(-0.5, 0.0), (1.5, 1.0), (float("nan"), 0.0)])
def test_progress_is_clamped_to_0_1(given, sent):
    assert panel_args([Progress(given, "")])["blocks"][0]["value"] == sent


def decode(src: str) -> np.ndarray:
    head, data = src.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_pictures_are_sent_as_pngs_that_decode_to_the_same_pixels():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    (p,) = panel_args([Pictures([Pic(a, "±0.2"), Pic(b, "x", 64)], "Filters", "note", "f")])[
        "blocks"
    ]
    assert (p["kind"], p["title"], p["note"], p["name"]) == ("pictures", "Filters", "note", "f")
    assert [(i["caption"], i["width"]) for i in p["items"]] == [("±0.2", 50), ("x", 64)]
    np.testing.assert_array_equal(decode(p["items"][0]["src"]), a)
    np.testing.assert_array_equal(decode(p["items"][1]["src"]), b)


def test_a_picture_is_encoded_once_and_distinct_pictures_get_distinct_urls():
    """The panel encodes through convviz.render's one bounded cache (its bounds: test_render)."""
    render.png_cache_clear()
    a = np.zeros((4, 6, 3), np.uint8)
    first = live_panel._data_url(a)
    assert live_panel._data_url(a.copy()) == first  # cached by content, not identity
    info = render.png_cache_info()
    assert (info["misses"], info["hits"]) == (1, 1)
    assert live_panel._data_url(np.zeros((6, 4, 3), np.uint8)) != first  # same bytes, other shape
    b = a.copy()
    b[0, 0, 0] = 1
    assert live_panel._data_url(b) != first


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)]
)
def test_picture_must_be_rgb_uint8(bad):
    with pytest.raises(ValueError, match="`rgb` must be"):
        panel_args([Pictures([Pic(bad)])])


def test_rows_nest_blocks_in_weighted_columns():
    (row,) = panel_args([Row([[Progress(1, "a")], [Progress(0, "b"), Metrics([])]], [1, 6])])[
        "blocks"
    ]
    assert row["kind"] == "row" and row["weights"] == [1.0, 6.0]
    assert [[b["kind"] for b in col] for col in row["columns"]] == [
        ["progress"],
        ["progress", "metrics"],
    ]
    assert panel_args([Row([[], []])])["blocks"][0]["weights"] == [1.0, 1.0]


@pytest.mark.parametrize("weights", [[1], [1, 0], [1, -2]])
def test_row_weights_one_positive_per_column(weights):
    with pytest.raises(ValueError, match="`weights` must be one positive number per column"):
        panel_args([Row([[], []], weights)])


def test_unknown_block_is_refused():
    with pytest.raises(TypeError, match="not a live_panel block: str"):
        panel_args(["progress"])


# ------------------------------------------------------------------ the Feeder
def feeder_at(tmp_path):
    return live_panel.Feeder(tmp_path, interval=60.0)  # its thread sleeps; tests call passes


def read_feed(tmp_path, token):
    seq = (tmp_path / "feeds" / f"{token}.seq").read_text()
    data = json.loads((tmp_path / "feeds" / f"{token}.json").read_text())
    assert int(seq) == data["seq"]  # the small file names the blocks that are there
    return data


def test_feeder_writes_blocks_when_the_version_changes(tmp_path):
    f = feeder_at(tmp_path)
    state = {"v": 1, "builds": 0}

    def build():
        state["builds"] += 1
        return [Progress(state["v"] / 10, f"step {state['v']}")], {"state": "running"}

    url = f.register("tok_1", lambda: state["v"], build)
    assert url == "feeds/tok_1.json"
    f.publish_due()
    d = read_feed(tmp_path, "tok_1")
    assert d["seq"] == 1 and d["state"] == "running"
    assert d["blocks"] == [{"kind": "progress", "value": 0.1, "text": "step 1"}]
    f.publish_due()  # same version: nothing rebuilt, nothing written
    assert state["builds"] == 1 and read_feed(tmp_path, "tok_1")["seq"] == 1
    state["v"] = 2
    f.publish_due()
    d = read_feed(tmp_path, "tok_1")
    assert d["seq"] == 2 and d["blocks"][0]["text"] == "step 2"
    assert oct((tmp_path / "feeds").stat().st_mode & 0o777) == "0o700"


def test_feeder_drops_a_feed_that_ended_or_was_left(tmp_path, monkeypatch):
    f = feeder_at(tmp_path)
    alive = {"v": 1}
    f.register("ended", lambda: alive["v"], lambda: ([], {}))
    f.register("left", lambda: 1, lambda: ([], {}), ttl=5.0)
    f.publish_due()
    assert sorted(p.name for p in (tmp_path / "feeds").iterdir()) == [
        "ended.json",
        "ended.seq",
        "left.json",
        "left.seq",
    ]
    alive["v"] = None  # the run is gone
    now = time.monotonic()
    monkeypatch.setattr(live_panel, "_clock", lambda: now + 10)  # nobody touched "left"
    f.publish_due()
    assert f.tokens() == [] and list((tmp_path / "feeds").iterdir()) == []


def test_touch_keeps_a_feed_and_reregistering_keeps_counting(tmp_path, monkeypatch):
    f = feeder_at(tmp_path)
    v = {"v": 1}
    f.register("t", lambda: v["v"], lambda: ([Progress(0, str(v["v"]))], {}), ttl=5.0)
    f.publish_due()
    now = time.monotonic()
    monkeypatch.setattr(live_panel, "_clock", lambda: now + 4)
    f.touch("t")
    monkeypatch.setattr(live_panel, "_clock", lambda: now + 8)
    f.publish_due()
    assert f.tokens() == ["t"]
    # A rerun registers the same token again (new closures): the numbering goes on,
    # so the page does not mistake the new blocks for ones it has.
    f.register("t", lambda: v["v"], lambda: ([Progress(0, "again")], {}))
    f.publish_due()
    assert read_feed(tmp_path, "t")["seq"] == 2


def test_a_failing_feed_is_dropped_and_the_others_go_on(tmp_path, caplog):
    f = feeder_at(tmp_path)
    f.register("bad", lambda: 1, lambda: 1 / 0)
    f.register("good", lambda: 1, lambda: ([Progress(1, "ok")], {}))
    f.publish_due()
    assert f.tokens() == ["good"] and read_feed(tmp_path, "good")["blocks"][0]["text"] == "ok"
    assert "feed bad failed" in caplog.text


@pytest.mark.parametrize("token", ["../x", "a/b", "", "a b"])
def test_feed_tokens_are_url_safe(tmp_path, token):
    with pytest.raises(ValueError, match="`token` must be URL-safe"):
        feeder_at(tmp_path).register(token, lambda: 1, lambda: ([], {}))


def test_live_panel_page_polls_the_seq_file_then_the_blocks():
    page = (live_panel._component_dir() / "index.html").read_text()
    assert '".seq?t="' in page and 'cache: "no-store"' in page
    assert "streamlit:setComponentValue" in page  # asks for a rerun when the state changes


def test_the_page_has_no_words_of_its_own():
    """Every word a panel shows comes from Python (in the reader's language): the page's
    markup has no text, and its script's strings are element, class and message names."""
    page = (live_panel._component_dir() / "index.html").read_text()
    markup = re.sub(r"<script.*?</script>|<style.*?</style>", "", page, flags=re.S)
    assert re.sub(r"<[^>]+>", " ", markup).split() == []
    js = page.split("<script>", 1)[1]
    strings = set(re.findall(r'"((?:[^"\\]|\\.)*)"', js)) - {"use strict"}
    assert strings, "the scan found no strings"
    assert {s for s in strings if not re.fullmatch(r"[A-Za-z0-9:_\-.?=/%* ]*", s)} == set()
    assert {s for s in strings if re.search(r"[A-Z]", s.split(":")[-1][:1])} == set()
    assert {s for s in strings if re.search(r"[a-z]{2,} [a-z]{2,}", s)} == set()
    # No literal is ever shown: none set as text, none as a fallback for missing text.
    assert re.findall(r'(?:setText\([^,]+,|textContent\s*=)\s*"', js) == []
    assert re.findall(r'\|\|\s*"[A-Za-z][^"]*"', js) == []
    assert "document.documentElement.lang = a.lang" in js  # the language Python sends
