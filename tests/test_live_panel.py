"""The live_panel component: its served directory and the arguments it is sent.

Its behaviour in a browser (updates in place, zoom kept) is in test_browser_train.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from PIL import Image

from convviz import render
from convviz.i18n import translator
from convviz.train_figures import curves_figure
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


# ------------------------------------------------------------------ axes that follow the data
def round_numbers(top: float) -> list[float]:
    """Every 'round' axis end up to ``top``, enumerated (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k)."""
    out = []
    for k in range(-3, 8):
        out += [m * 10**k for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8)]
    return sorted(x for x in out if x <= top)


@pytest.mark.parametrize("steps", [1, 7, 10, 282, 364, 999, 1234, 40_000])
def test_the_step_axis_ends_at_the_first_round_number_past_the_data_with_headroom(steps):
    want = min(x for x in round_numbers(1e9) if x >= 1.1 * steps - 1e-9)
    assert live_panel.follow_range(steps) == pytest.approx([0, want])
    assert live_panel.follow_range(steps, (0, 300)) == pytest.approx([0, min(want, 300)])


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.95, 0.995), (0.1, 0.99), (0.97, 0.99), (0.5, 0.5), (0.0, 0.02)]
)
def test_the_accuracy_axis_zooms_to_the_data_within_0_to_102_percent(lo, hi):
    zlo, zhi = live_panel.zoom_range(lo, hi, (0, 1.02))
    assert 0 <= zlo <= lo and hi <= zhi <= 1.02  # every value shown, inside the full range
    span = max(hi - lo, 0.02 * 1.02)
    assert zhi - zlo <= span + 2 * (0.05 * span) + 2 * (span / 2)  # padding + grain, at most
    assert zhi - zlo >= min(span, 1.02) - 1e-12  # a flat curve is not blown up to noise
    if hi - lo < 0.1:  # near the top: much narrower than 0-100%, so 97->99% shows
        assert zhi - zlo < 0.3


def test_the_zoom_ignores_the_first_steps_near_chance_but_no_validation_point():
    start = np.r_[np.linspace(0.1, 0.9, 10), np.linspace(0.9, 0.99, 290)]  # a run's train acc
    lo, hi = live_panel.zoom_bounds([start, np.array([0.95, 0.97, 0.98])])
    assert lo == pytest.approx(np.quantile(start, 0.05)) and hi == 0.99
    zlo, zhi = live_panel.zoom_range(lo, hi, (0, 1.02))
    assert zlo > 0.8 and zhi <= 1.02  # not 0-100%: 97 -> 99% can be told apart
    # A validation point below the train curve is always shown (short traces: their min).
    assert live_panel.zoom_bounds([start, np.array([0.5, 0.97])]) == (0.5, 0.99)
    # Short runs: every point.
    assert live_panel.zoom_bounds([np.array([0.1, 0.5, 0.6])]) == (0.1, 0.6)
    assert live_panel.zoom_bounds([np.empty(0)]) is None


def curves(steps: int, acc_lo: float = 0.9, total: int = 1580):
    s = np.arange(1, steps + 1)
    acc = np.linspace(acc_lo, 0.99, steps)
    chunks = {"step": s.tolist(), "loss": (1 / s).tolist(), "acc": acc.tolist()}
    history = {"val_step": [steps], "val_loss": [0.1], "val_acc": [0.97]}
    return curves_figure(chunks, history, total_steps=total)


def test_curves_chart_follows_the_steps_zooms_accuracy_and_sends_its_label():
    for lang in ("en", "pt"):
        t = translator(lang)
        (c,) = panel_args([live_panel.curves_chart(curves(282), 300, t=t)])["blocks"]
        assert c["ranges"]["xaxis"] == c["ranges"]["xaxis2"] == [0, 400]
        low = np.quantile(np.linspace(0.9, 0.99, 282), 0.05)  # the train curve's 5th pct
        assert c["ranges"]["yaxis2"] == pytest.approx(live_panel.zoom_range(low, 0.99, (0, 1.02)))
        assert "yaxis" not in c["ranges"]  # the loss keeps plotly's own range
        assert c["full"] == {"yaxis2": [0, 1.02]}
        assert c["toggle"] == {
            "label": t("live_panel.acc_full"),
            "help": t("live_panel.acc_full.help"),
        }
    assert translator("pt")("live_panel.acc_full") != translator("en")("live_panel.acc_full")
    (done,) = panel_args([live_panel.curves_chart(curves(1580), t=translator("en"))])["blocks"]
    assert done["ranges"]["xaxis"] == [0, 1580]  # never past the run's total


def test_a_plain_chart_is_sent_as_before():
    (c,) = panel_args([Chart(curves(10))])["blocks"]
    assert (c["ranges"], c["full"]) == ({}, {}) and "toggle" not in c
    # No data on an axis: no range for it (plotly's own), and no toggle without a label.
    empty = go.Figure(go.Scatter(x=[], y=[]), layout={"yaxis": {"range": [0, 1]}})
    (c,) = panel_args([Chart(empty, follow_x=True, zoom_y=("yaxis",))])["blocks"]
    assert c["ranges"] == {} and c["full"] == {"yaxis": [0.0, 1.0]} and "toggle" not in c


# ------------------------------------------------------------------ feed files: start and exit
NO_PID = 4_194_305  # above the kernel's largest pid_max (2**22): never a running process


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def served_dir(base, name, record, feeds=True):
    """A directory as _component_dir leaves it: the owner record beside www/feeds."""
    top = base / name
    (top / "www" / "feeds").mkdir(parents=True)
    if feeds:
        (top / "www" / "feeds" / "tok.json").write_text('{"seq": 1, "blocks": []}')
    if record is not None:
        (top / "owner.json").write_text(json.dumps(record))
    return top


def test_sweep_removes_only_our_dirs_whose_process_is_gone(tmp_path):
    host = socket.gethostname()
    me = live_panel._owner_record()
    assert me["pid"] == os.getpid() and me["host"] == host
    P = live_panel._PREFIX
    gone = [
        served_dir(tmp_path, P + "dead", {"pid": dead_pid(), "start": "1", "host": host}),
        served_dir(tmp_path, P + "never", {"pid": NO_PID, "start": None, "host": host}),
        # The pid runs, but it is a later process (another start time): the pid was reused.
        served_dir(tmp_path, P + "reused", {**me, "start": str(int(me["start"]) - 1)}),
    ]
    kept = [
        served_dir(tmp_path, P + "alive", me),
        served_dir(tmp_path, P + "alive-no-start", {**me, "start": None}),
        served_dir(tmp_path, P + "norecord", None),  # an older convviz's, or being made
        served_dir(tmp_path, P + "otherhost", {"pid": NO_PID, "start": None, "host": "x" + host}),
        served_dir(tmp_path, P + "badpid", {"pid": "1; rm", "start": None, "host": host}),
        served_dir(tmp_path, "other-app-dead", {"pid": NO_PID, "start": None, "host": host}),
    ]
    (tmp_path / (P + "junk")).write_text("not json")
    (tmp_path / (P + "badrecord")).mkdir()
    (tmp_path / (P + "badrecord") / "owner.json").write_text("{")
    # A link with our prefix to a dead process' directory: not followed, nothing removed.
    target = served_dir(tmp_path, "elsewhere", {"pid": NO_PID, "start": None, "host": host})
    (tmp_path / (P + "link")).symlink_to(target, target_is_directory=True)

    removed = live_panel.sweep_stale(tmp_path)
    assert sorted(removed) == sorted(gone)
    assert not any(p.exists() for p in gone)
    assert all((p / "owner.json").exists() or p.name.endswith("norecord") for p in kept)
    assert (target / "www" / "feeds" / "tok.json").exists()
    assert (tmp_path / (P + "junk")).is_file() and (tmp_path / (P + "link")).is_symlink()
    assert live_panel.sweep_stale(tmp_path) == []  # nothing more to do


def run_python(code: str, tmp_path, **kw):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, **kw
    )


ROOT = Path(__file__).resolve().parents[1]
MAKE = (
    "from convviz.ui import live_panel as lp; r = lp._component_dir();"
    " f = lp.feeder(1.0); f.register('tok', lambda: 1, lambda: ([], {})); f.publish_due();"
    " print(r, flush=True)"
)


def test_a_process_removes_its_dir_at_exit_and_sweeps_the_dead_ones_at_start(tmp_path):
    stale = served_dir(
        tmp_path,
        live_panel._PREFIX + "stale",
        {"pid": dead_pid(), "start": None, "host": socket.gethostname()},
    )
    out = run_python(MAKE, tmp_path)
    assert out.returncode == 0, out.stderr
    served = Path(out.stdout.strip())
    assert served.name == "www" and served.parent.parent == tmp_path
    assert not stale.exists()  # swept when the process made its own
    assert list(tmp_path.iterdir()) == []  # and its own removed at exit (atexit)


def test_a_killed_process_leaves_its_feeds_and_the_next_one_removes_them(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-c", MAKE + "; import time; time.sleep(60)"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        served = Path(p.stdout.readline().strip())
        assert (served / "feeds" / "tok.json").exists() and (served / "feeds" / "tok.seq").exists()
    finally:
        p.send_signal(signal.SIGKILL)  # no atexit
        p.wait(timeout=30)
        p.stdout.close()
    assert served.exists()
    out = run_python(MAKE, tmp_path)
    assert out.returncode == 0, out.stderr
    assert not served.parent.exists() and list(tmp_path.iterdir()) == []


def test_the_served_dir_does_not_serve_the_owner_record():
    root = live_panel._component_dir()
    assert not (root / "owner.json").exists()
    record = json.loads((root.parent / "owner.json").read_text())
    assert record == live_panel._owner_record()
    assert root.parent.name.startswith(live_panel._PREFIX)


# ------------------------------------------------------------------ feed files: while running
def test_a_feed_discarded_while_its_blocks_were_built_leaves_no_file(tmp_path):
    """The page's rerun discards the feed (the run settled) while the feeder's thread
    builds it: before, the pass wrote the files back and they stayed until exit."""
    f = feeder_at(tmp_path)

    def build():
        f.discard("t")  # what the script thread does meanwhile
        return [Progress(1, "done")], {}

    f.register("t", lambda: 1, build)
    f.publish_due()
    assert f.tokens() == [] and f.files() == []


def test_a_feed_replaced_while_built_writes_nothing_and_its_successor_counts_on(tmp_path):
    f = feeder_at(tmp_path)
    f.register("t", lambda: 1, lambda: ([Progress(0, "first")], {}))
    f.publish_due()

    def build_then_rerun():
        f.register("t", lambda: 3, lambda: ([Progress(0, "new")], {}))  # the page's rerun
        return [Progress(0, "old")], {}

    f.register("t", lambda: 2, build_then_rerun)
    f.publish_due()
    assert read_feed(tmp_path, "t")["blocks"][0]["text"] == "first"  # the old build: dropped
    f.publish_due()
    d = read_feed(tmp_path, "t")
    assert (d["seq"], d["blocks"][0]["text"]) == (2, "new")


def test_each_feed_holds_one_current_version_and_a_failed_write_leaves_nothing(
    tmp_path, monkeypatch, caplog
):
    f = feeder_at(tmp_path)
    v = {"v": 1}
    f.register("a", lambda: v["v"], lambda: ([Progress(0, str(v["v"]))], {}))
    f.register("b", lambda: 1, lambda: ([Progress(0, "b")], {}))
    for v["v"] in range(1, 6):
        f.publish_due()
    assert f.files() == ["a.json", "a.seq", "b.json", "b.seq"]  # no history, no temporaries
    assert read_feed(tmp_path, "a")["seq"] == 5

    real = live_panel.os.replace

    def full_disk(src, dst):
        if "a." in str(dst):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(live_panel.os, "replace", full_disk)
    v["v"] = 6
    f.publish_due()
    assert f.tokens() == ["b"] and f.files() == ["b.json", "b.seq"]
    assert "feed a could not be written" in caplog.text
