"""The Train a CNN page under Streamlit's AppTest: it renders, and its controls drive the run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from convviz.nn.presets import build_model
from convviz.runs import get_manager

APP = str(Path(__file__).parent / "apps" / "train_app.py")
TIMEOUT = 60.0


@pytest.fixture
def at():
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    yield app
    rid = app.query_params.get("run")
    if rid:
        get_manager().discard(rid if isinstance(rid, str) else rid[0])


def small(app: AppTest) -> None:
    """tiny on 1,000 training images, 200 validation, 500 test images."""
    app.sidebar.select_slider(key="train_train_size").set_value(1_000)
    app.sidebar.select_slider(key="train_val_size").set_value(200)
    app.select_slider(key="train_test_size").set_value(500)


def the_run(app: AppTest):
    rid = app.query_params["run"]
    run = get_manager().get(rid if isinstance(rid, str) else rid[0])
    assert run is not None
    return run


def settle(run) -> None:
    deadline = time.monotonic() + TIMEOUT
    while run.busy:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def labels(app: AppTest) -> list[str]:
    return [b.label for b in app.button]


def panels(app: AppTest) -> list[list[dict]]:
    """The blocks of each live_panel component on the page, in page order."""
    return [
        json.loads(c.proto.json_args)["blocks"]
        for c in app.get("component_instance")
        if c.proto.component_name.endswith("live_panel")
    ]


def walk(blocks: list[dict]):
    """Every block, through rows and their columns."""
    for b in blocks:
        yield b
        if b["kind"] == "row":
            for column in b["columns"]:
                yield from walk(column)


def live_panel(app: AppTest) -> dict[str, dict]:
    """The fast live panel's blocks by kind (its filters under their kind too)."""
    (fast,) = [p for p in panels(app) if p[0]["kind"] == "progress"]
    return {b["kind"]: b for b in fast}


def chart_types(block: dict) -> set[str]:
    return {t.get("type", "scatter") for t in json.loads(block["spec"])["data"]}


def test_page_renders_without_a_run(at):
    assert not at.exception
    assert at.title[0].value == "Train a CNN"
    assert "Start" in labels(at) and "Step" in labels(at)
    n_params = build_model("tiny").count_params()
    assert f"Total params: {n_params:,}" in at.code[0].value  # tiny's summary table


def test_controls_drive_the_run(at):
    small(at)
    at.sidebar.number_input(key="train_epochs").set_value(20)  # still training when paused
    at.button(key="train_start").click().run()
    assert not at.exception
    run = the_run(at)
    assert run.config.train_size == 1_000 and run.config.val_size == 200
    run.wait(lambda s: s.step >= 2, TIMEOUT)
    at.run()
    assert not at.exception and "Pause" in labels(at)
    # Progress, metrics, curves and filters are one live_panel component (updated in
    # place); while the run trains, the other views are pictures, not plotly charts.
    panel = live_panel(at)
    assert f"/{run.snapshot().total_steps:,}" in panel["progress"]["text"]
    assert 0 < panel["progress"]["value"] <= 1
    metrics = panel["metrics"]["items"]
    assert [m["label"] for m in metrics][:2] == ["Train loss (last chunk)", "Train accuracy"]
    assert float(metrics[0]["value"]) > 0  # a loss, not the "–" of no data
    fig = json.loads(panel["chart"]["spec"])
    assert [t["name"] for t in fig["data"]] == ["train", "validation"] * 2
    assert len(fig["data"][0]["x"]) >= 1 and fig["layout"]["xaxis"]["range"][1] > 0
    filters = panel["pictures"]
    assert filters["name"] == "filters" and filters["title"].startswith(
        "First-layer filters (conv2d"
    )
    assert "colour scale" in filters["items"][0]["caption"]
    assert filters["items"][0]["src"].startswith("data:image/png;base64,")
    blocks = [b for p in panels(at) for b in walk(p)]
    strip = next(b for b in blocks if b.get("name") == "strip")
    assert len(strip["items"]) >= 10 and all("%)" in i["caption"] for i in strip["items"])
    maps = [b["items"][0]["caption"] for b in blocks if b["kind"] == "pictures" and b["items"]]
    assert any(c.startswith("conv2d (Conv2D) 26×26×") for c in maps), maps
    assert any(c.startswith("softmax: predicts") for c in maps), maps
    assert not [b for b in blocks if b["kind"] == "chart"][1:]  # only the curves
    assert not at.get("plotly_chart")

    at.button(key="train_pause").click().run()
    assert run.state == "paused" and "Resume" in labels(at)
    # Paused: the filters are a plotly heatmap (hover values) again, the dense layers bars.
    charts = [chart_types(b) for p in panels(at) for b in walk(p) if b["kind"] == "chart"]
    assert charts[:2] == [{"scatter"}, {"heatmap"}], charts
    assert {"bar"} in charts[2:], charts
    settle(run)
    step = run.snapshot().step
    at.button(key="train_step").click().run()
    settle(run)
    assert run.snapshot().step == step + 1

    at.sidebar.select_slider(key="train_lr").set_value(0.01).run()
    settle(run)
    assert run.snapshot().lr == 0.01
    run.step()
    settle(run)
    assert run.snapshot().history["lr"][-1] == 0.01

    at.button(key="train_reset").click().run()
    settle(run)
    snap = run.snapshot()
    assert (snap.state, snap.step) == ("ready", 0)
    at.run()
    assert not at.exception and "Start" in labels(at)


def test_reload_reattaches_to_the_run(at):
    small(at)
    at.button(key="train_step").click().run()
    run = the_run(at)
    settle(run)
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params["run"] = run.id
    again.run()
    assert not again.exception
    assert the_run(again) is run
    assert "step 1/" in live_panel(again)["progress"]["text"]
    assert again.sidebar.select_slider(key="train_train_size").value == 1_000  # settings adopted


def test_unknown_run_id_is_reported(at):
    at.query_params["run"] = "no-such-run"
    at.run()
    assert not at.exception
    assert any("has ended" in i.value for i in at.info)
    assert "run" not in at.query_params


def test_validation_and_probe_digit_views(at):
    small(at)
    at.sidebar.number_input(key="train_epochs").set_value(20)
    at.button(key="train_start").click().run()
    run = the_run(at)
    run.wait(lambda s: s.confusion is not None and s.probs is not None, TIMEOUT)
    at.run()
    assert not at.exception
    blocks = [b for p in panels(at) for b in walk(p)]
    # Training: the confusion matrix is a picture, the misclassified digits a gallery.
    confusion = next(b for b in blocks if b.get("title", "").startswith("Confusion matrix after"))
    assert confusion["items"][0]["width"] == 330
    wrong = next(b for b in blocks if b.get("name") == "misclassified")
    n = len(run.snapshot().misclassified)
    assert wrong["title"] == f"Misclassified validation digits (first {n})"
    assert all(" → " in i["caption"] for i in wrong["items"]) and len(wrong["items"]) == n

    at.button(key="train_pause").click().run()
    settle(run)
    at.run()
    # Paused: the confusion matrix is a heatmap with hover values.
    charts = [chart_types(b) for p in panels(at) for b in walk(p) if b["kind"] == "chart"]
    assert charts[-1] == {"heatmap"}, charts

    # Another test digit: its activations replace digit #0's.
    before = next(b for b in blocks if b["kind"] == "row" and b["weights"] == [1.0, 6.0])
    at.number_input(key="train_probe").set_value(5).run()
    assert not at.exception
    snap = run.snapshot()
    assert snap.probe_index == 5
    assert any(f"Digit #5: label {snap.probe_label}." in c.value for c in at.caption)
    after = next(
        b for p in panels(at) for b in walk(p) if b["kind"] == "row" and b["weights"] == [1.0, 6.0]
    )
    digit = after["columns"][0][0]["items"][0]
    assert digit["caption"] == "input"
    assert digit["src"] != before["columns"][0][0]["items"][0]["src"]
