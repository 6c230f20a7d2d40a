"""The Train page's timeline, runs side by side and BatchNorm/Dropout choices, under AppTest.

Oracles: the run's own stored frames and histories (what the runs service recorded,
itself checked against serial replays in ``test_timeline.py``), formatted and smoothed
here independently of the page; the architectures against ``build_model``.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from convviz.i18n import translator
from convviz.nn import build_model, load_mnist
from convviz.runs import get_manager
from convviz.train_figures import filters_image
from convviz.ui.train_views import sig
from tests.test_train_page import TIMEOUT, new_app, panels, settle, small, the_run, walk

EN, PT = translator("en"), translator("pt")


def discard_all(app) -> None:
    """Every run the session made (the comparison keeps them alive)."""
    ids = (
        {rid for rid, _ in app.session_state["train_runs"]}
        if "train_runs" in app.session_state
        else set()
    )
    rid = app.query_params.get("run")
    if rid:
        ids.add(rid if isinstance(rid, str) else rid[0])
    for rid in ids:
        get_manager().discard(rid)


@pytest.fixture
def at():
    app = new_app()
    app.run()
    yield app
    discard_all(app)


@pytest.fixture
def at_pt():
    app = new_app("pt")
    app.run()
    yield app
    discard_all(app)


def finished_run(app, epochs: int = 1, eval_every: int = 5):
    """tiny on 1,000 images (16 steps an epoch), validated every ``eval_every`` steps."""
    small(app)
    app.sidebar.number_input(key="train_epochs").set_value(epochs)
    app.number_input(key="train_eval_every").set_value(eval_every)
    app.button(key="train_start").click().run()
    run = the_run(app)
    snap = run.wait(lambda s: s.finished and not run.busy, TIMEOUT)
    app.run()
    assert not app.exception
    return run, snap


def timeline_panel(app) -> list[dict]:
    """The timeline's live panel: the one whose filters block is named ``tl-filters``."""
    for p in panels(app, extra=True):
        if any(b.get("name") in ("tl-filters", "tl-confusion") for b in walk(p)):
            return p
    raise AssertionError("no timeline panel on the page")


def by_name(blocks, name: str) -> dict:
    return next(b for b in walk(blocks) if b.get("name") == name)


def pixels(src: str) -> np.ndarray:
    data = base64.b64decode(src.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def scrubber(app):
    return app.select_slider(key="train_tl_step")


def shown_step(app) -> int:
    return scrubber(app).value


def check_frame_shown(app, snap, i: int, t=EN) -> None:
    """The timeline panel shows frame ``i``: its metrics, filters, prediction, confusion."""
    f = snap.timeline[i]
    blocks = timeline_panel(app)
    metrics = {m["label"]: m["value"] for m in blocks[0]["items"]}
    dash = "–"
    assert metrics[t("train.tl.step")] == t.int(f.step)
    assert len(metrics) == 5  # the epoch is in the scrubber's label
    assert metrics[t("train.tl.loss")] == (dash if f.loss is None else t.num(f.loss, 4))
    assert metrics[t("train.tl.val_loss")] == (dash if f.val_loss is None else t.num(f.val_loss, 4))
    assert metrics[t("train.tl.val_acc")] == (dash if f.val_acc is None else t.pct(f.val_acc, 1))
    # The curves carry a marker at the frame's step, on both panels.
    spec = json.loads(blocks[1]["spec"])
    assert [s["x0"] for s in spec["layout"]["shapes"]] == [f.step, f.step]
    # The first-layer filters are this frame's kernel.
    _name, k = f.kernels
    pic = by_name(blocks, "tl-filters")["items"][0]
    zoom = max(4, 72 // max(k.shape[:2]))
    expected = filters_image(k, channel=0, ncols=min(8, k.shape[3]), zoom=zoom)
    np.testing.assert_array_equal(pixels(pic["src"]), expected)
    m = float(np.abs(k[:, :, 0, :]).max())
    assert pic["caption"] == t("train.tl.filters.scale", m=sig(t, m))
    # The confusion matrix: the last known at or before this step.
    known = [g for g in snap.timeline[: i + 1] if g.confusion is not None]
    title = by_name(blocks, "tl-confusion")["title"]
    assert title == t("train.confusion.title", step=known[-1].step)
    # The probe digit's prediction: its argmax and probability, computed here.
    p = np.asarray(f.probe_probs, dtype=np.float64)
    caption = t("train.act.softmax", digit=int(p.argmax()), p=t.pct(p.max(), 1))
    captions = [it["caption"] for b in walk(blocks) if b["kind"] == "pictures" for it in b["items"]]
    assert caption in captions
    digit = by_name(blocks, "tl-digit")["items"][0]
    assert digit["caption"] == t("train.tl.digit", index=f.probe_index)
    img = load_mnist().test_images[f.probe_index]
    np.testing.assert_array_equal(pixels(digit["src"])[::3, ::3, 0], img)  # zoom 3, grey
    maps = [c for c in captions if "×" in c and "(" in c]
    n_maps = sum(1 for _, _, a in f.probe_activations if a.ndim == 3)
    assert len(maps) == n_maps


# ------------------------------------------------------------------ the timeline
def test_the_scrubber_shows_the_stored_frames_in_order(at):
    _run, snap = finished_run(at)
    steps = [f.step for f in snap.timeline]
    assert steps[:5] == [0, 1, 2, 5, 10] and steps == sorted(steps)
    assert scrubber(at).options == [
        EN("train.tl.frame", step=s, epoch=EN.num(s / 16, 2)) for s in steps
    ]
    assert shown_step(at) == steps[-1]  # a finished run opens at its end
    assert scrubber(at).label == EN("train.tl.scrub", n=len(steps))
    for i, step in enumerate(steps):
        scrubber(at).set_value(step).run()
        assert not at.exception and shown_step(at) == step
        check_frame_shown(at, snap, i)
    # The frames differ: step 0's filters are not the last frame's.
    assert not np.array_equal(snap.timeline[0].kernels[1], snap.timeline[-1].kernels[1])


def test_play_replays_from_step_0_and_stops_at_the_end(at):
    _run, snap = finished_run(at, eval_every=8)  # frames 0, 1, 2, 5, 8, 10, 16
    steps = [f.step for f in snap.timeline]
    assert [b.label for b in at.button if b.key == "train_tl_play_button"] == ["Play"]
    at.button(key="train_tl_play_button").click().run()  # at the end: from step 0
    assert not at.exception
    seen = [shown_step(at)]
    assert at.button(key="train_tl_play_button").label == "Stop"
    for _ in range(len(steps) + 1):  # each run is one tick of the fragment's timer
        at.run()
        seen.append(shown_step(at))
    assert seen[: len(steps)] == steps  # every frame once, in order
    assert set(seen[len(steps) :]) == {steps[-1]}
    assert at.session_state["train_tl_play"] is False  # stopped at the end
    assert at.button(key="train_tl_play_button").label == "Play"
    check_frame_shown(at, snap, len(steps) - 1)

    # Play from a frame in the middle, then scrub: the reader takes over, playing stops.
    scrubber(at).set_value(steps[2]).run()
    at.button(key="train_tl_play_button").click().run()
    assert shown_step(at) == steps[2]
    at.run()
    assert shown_step(at) == steps[3]
    scrubber(at).set_value(steps[1]).run()
    assert at.session_state["train_tl_play"] is False
    at.run()
    assert shown_step(at) == steps[1]
    check_frame_shown(at, snap, 1)
    # Stop while playing.
    at.button(key="train_tl_play_button").click().run()
    at.button(key="train_tl_play_button").click().run()
    assert at.session_state["train_tl_play"] is False and shown_step(at) == steps[1]


def test_the_timeline_follows_a_training_run_and_survives_a_reload(at):
    small(at)
    at.sidebar.number_input(key="train_epochs").set_value(20)
    at.number_input(key="train_eval_every").set_value(5)
    at.button(key="train_start").click().run()
    run = the_run(at)
    run.wait(lambda s: len(s.timeline) >= 4, TIMEOUT)
    at.run()
    assert not at.exception
    first = shown_step(at)
    run.wait(lambda s: s.timeline[-1].step > first, TIMEOUT)
    at.run()
    assert shown_step(at) > first  # at the end: it follows the newest frame
    at.button(key="train_pause").click().run()
    settle(run)
    at.run()
    snap = run.snapshot()
    assert shown_step(at) == snap.timeline[-1].step
    scrubber(at).set_value(snap.timeline[2].step).run()
    check_frame_shown(at, snap, 2)

    # A reload is a new session (here: another browser, so it watches): same frames.
    again = new_app()
    again.query_params["run"] = run.id
    again.run()
    assert not again.exception
    assert [i.value for i in again.info][:1] == [EN("train.watching")]
    assert scrubber(again).options == scrubber(at).options
    for i in (0, 3, len(snap.timeline) - 1):
        scrubber(again).set_value(snap.timeline[i].step).run()
        check_frame_shown(again, snap, i)
    again.button(key="train_tl_play_button").click().run()  # watchers can play it too
    again.run()
    assert shown_step(again) == snap.timeline[1].step
    assert not again.multiselect  # a watcher's session has no runs of its own to compare


def test_timeline_in_portuguese(at_pt):
    at = at_pt
    _run, snap = finished_run(at)
    assert scrubber(at).label == PT("train.tl.scrub", n=len(snap.timeline))
    assert scrubber(at).options[3] == "iteração 5 · época 0,31"
    assert at.button(key="train_tl_play_button").label == "Reproduzir"
    at.button(key="train_tl_play_button").click().run()
    assert at.button(key="train_tl_play_button").label == "Parar"
    at.run()
    check_frame_shown(at, snap, 1, t=PT)
    assert any(s.value == PT("train.tl.header") for s in at.subheader)


# ------------------------------------------------------------------ runs side by side
def _ema(values, w=0.9):
    out, s = [], 0.0
    for i, v in enumerate(values, start=1):
        s = w * s + (1 - w) * v
        out.append(s / (1 - w**i))
    return out


def compare_traces(app) -> list[dict]:
    for p in panels(app, extra=True):
        for b in walk(p):
            if b["kind"] == "chart":
                spec = json.loads(b["spec"])
                if spec["layout"].get("uirevision") == "compare":
                    return spec["data"]
    raise AssertionError("no comparison chart")


def test_runs_side_by_side_keep_old_runs_and_their_histories(at):
    first, snap1 = finished_run(at)
    assert at.multiselect(key="train_cmp_pick").value == [first.id]
    assert any(c.value == EN("train.cmp.one") for c in at.caption)
    # A second run with BatchNorm and another learning rate: New run keeps the first.
    at.sidebar.toggle(key="train_batchnorm").set_value(True)
    at.sidebar.select_slider(key="train_lr").set_value(3e-3)
    at.button(key="train_new").click().run()
    assert not at.exception
    second = the_run(at)
    assert second is not first and get_manager().get(first.id) is first
    second.start(token=at.session_state["train_owner"])
    snap2 = second.wait(lambda s: s.finished and not second.busy, TIMEOUT)
    snap1 = first.snapshot()
    at.run()
    pick = at.multiselect(key="train_cmp_pick")
    assert pick.value == [first.id, second.id]
    labels = [pick.format_func(i) for i in pick.value]
    assert labels == [
        "#1 tiny · adam · lr 0.004 · batch 64",
        "#2 tiny + BN · adam · lr 0.003 · batch 64",
    ]
    traces = compare_traces(at)
    assert [t["name"] for t in traces] == [labels[0]] * 4 + [labels[1]] * 4
    assert [t["showlegend"] for t in traces] == [True, False, False, False] * 2
    for k, snap in enumerate((snap1, snap2)):
        h = snap.history
        val_loss, train_loss, val_acc, train_acc = traces[4 * k : 4 * k + 4]
        assert val_loss["x"] == list(h["val_step"]) and val_loss["y"] == list(h["val_loss"])
        assert val_acc["y"] == list(h["val_acc"])
        assert train_loss["x"] == list(h["step"])  # 16 steps: no thinning
        np.testing.assert_allclose(train_loss["y"], _ema(h["loss"]), rtol=1e-12)
        np.testing.assert_allclose(train_acc["y"], _ema(h["acc"]), rtol=1e-12)
    # Pick one, then none.
    pick.set_value([second.id]).run()
    assert {t["name"] for t in compare_traces(at)} == {labels[1]}
    at.multiselect(key="train_cmp_pick").set_value([]).run()
    assert not at.exception
    assert any(c.value == EN("train.cmp.nothing") for c in at.caption)


def test_comparison_in_portuguese_and_a_reload_keeps_the_session_s_runs(at_pt):
    at = at_pt
    small(at)
    at.button(key="train_step").click().run()
    first = the_run(at)
    settle(first)
    at.sidebar.toggle(key="train_dropout").set_value(True)
    at.sidebar.selectbox(key="train_optimizer").set_value("sgd")
    at.button(key="train_new").click().run()
    second = the_run(at)
    at.button(key="train_step").click().run()
    settle(second)
    at.run()
    pick = at.multiselect(key="train_cmp_pick")
    assert pick.label == PT("train.cmp.pick")
    assert pick.placeholder == "Escolha os treinos a comparar"  # not Streamlit's English
    assert [pick.format_func(i) for i in pick.value] == [
        "nº 1 tiny · adam · taxa 0,004 · lote 64",
        "nº 2 tiny + dropout · sgd · taxa 0,004 · lote 64",
    ]
    assert any(s.value == PT("train.cmp.header") for s in at.subheader)
    # The owner's reload: a new session with the same owner token (its cookie) finds both.
    again = new_app("pt")
    again.query_params["run"] = second.id
    again.session_state["train_owner"] = at.session_state["train_owner"]
    again.run()
    assert not again.exception
    assert again.multiselect(key="train_cmp_pick").value == [first.id, second.id]
    assert again.sidebar.toggle(key="train_dropout").value is True  # settings adopted
    assert again.sidebar.selectbox(key="train_optimizer").value == "sgd"


def test_a_session_keeps_at_most_max_runs(at):
    from convviz.ui.pages import train as page

    small(at)
    made = []
    for _ in range(page.MAX_RUNS + 1):
        key = "train_step" if not made else "train_new"
        at.button(key=key).click().run()
        made.append(the_run(at))
    assert not at.exception
    ids = at.multiselect(key="train_cmp_pick").options
    assert len(ids) == page.MAX_RUNS
    assert get_manager().get(made[0].id) is None  # the oldest was freed
    assert all(get_manager().get(r.id) is r for r in made[1:])


# ------------------------------------------------------------------ BatchNorm and Dropout
@pytest.mark.parametrize(("bn", "drop"), [(True, False), (False, True), (True, True)])
def test_batchnorm_and_dropout_change_the_network(at, bn, drop):
    at.sidebar.selectbox(key="train_model").set_value("classic").run()
    at.sidebar.toggle(key="train_batchnorm").set_value(bn)
    at.sidebar.toggle(key="train_dropout").set_value(drop).run()
    assert not at.exception
    name = "classic" + ("_bn" if bn else "") + ("_dropout" if drop else "")
    model = build_model(name)
    assert at.expander[0].label == EN("train.summary", n=model.count_params())
    table = at.code[0].value
    assert ("BatchNormalization" in table) == bn and ("Dropout" in table) == drop
    assert table == model.summary()
    small(at)
    at.button(key="train_step").click().run()
    run = the_run(at)
    settle(run)
    assert run.config.model == name and run.snapshot().model_name == name
    at.run()
    # The timeline shows the new layers' outputs (BatchNorm: signed maps).
    blocks = timeline_panel(at)
    captions = [it["caption"] for b in walk(blocks) if b["kind"] == "pictures" for it in b["items"]]
    assert any("(BatchNormalization)" in c for c in captions) == bn
    assert not any("(Dropout)" in c for c in captions)  # identity outside training


def test_batchnorm_and_dropout_choices_in_portuguese(at_pt):
    at = at_pt
    bn, drop = at.sidebar.toggle(key="train_batchnorm"), at.sidebar.toggle(key="train_dropout")
    assert (bn.label, drop.label) == (PT("train.bn"), PT("train.dropout"))
    assert bn.help == PT("train.bn.help") and not bn.disabled
    at.sidebar.selectbox(key="train_model").set_value("resnet").run()
    assert at.sidebar.toggle(key="train_batchnorm").disabled  # not a plain conv stack
    at.sidebar.selectbox(key="train_model").set_value("tiny").run()
    at.sidebar.toggle(key="train_batchnorm").set_value(True).run()
    n = build_model("tiny_bn").count_params()
    assert at.expander[0].label == PT("train.summary", n=n)
    at.sidebar.radio(key="train_init").set_value("pretrained").run()
    assert [w.value for w in at.sidebar.warning] == [PT("train.init.no_pretrained", name="tiny_bn")]


def test_new_run_pauses_a_training_run_and_keeps_it(at):
    small(at)
    at.sidebar.number_input(key="train_epochs").set_value(20)
    at.button(key="train_start").click().run()
    first = the_run(at)
    first.wait(lambda s: s.step >= 2, TIMEOUT)
    at.button(key="train_new").click().run()
    assert not at.exception
    settle(first)
    assert first.state == "paused" and get_manager().get(first.id) is first
    second = the_run(at)
    assert second.state == "ready"
    assert at.multiselect(key="train_cmp_pick").value == [first.id, second.id]
    # The page keeps the old run alive too (the janitor frees runs nobody touches).
    seen = first.last_seen
    at.run()
    assert first.last_seen > seen
