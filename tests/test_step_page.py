"""The One-training-step page through AppTest, in English and Portuguese.

Every widget is pressed, every stage reached on every net, each optimizer's update
shown, and the numbers on the page are the walkthrough's, written the locale's way.
"""

from __future__ import annotations

import pytest

from convviz.i18n import translator
from convviz.nn.walkthrough import NETS, StepConfig, walkthrough
from convviz.ui.pages.step import DEFAULT_LR, STAGES, STATE_KEYS
from convviz.walkthrough_figures import sig
from tests.support.apptest import page_app

LANGS = ("en", "pt")
NET_OPTIMIZER = {"hand": "sgd", "tiny": "rmsprop", "classic": "adam"}
BATCH = {"hand": 3, "tiny": 8, "classic": 8}  # the page's default batch sizes


def _run(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _config(at) -> StepConfig:
    """The walkthrough the page's widgets ask for."""
    ss = at.session_state
    return StepConfig(
        net=ss["step_net"],
        batch_size=int(ss["step_batch_size"]),
        batch_seed=int(ss["step_batch_seed"]),
        scheme=ss["step_scheme"],
        optimizer=ss["step_optimizer"],
        lr=float(ss["step_lr"]),
        weight=(int(ss["step_filter"]), 0, int(ss["step_row"]), int(ss["step_col"])),
    )


def _check_stage(at, stage: str, t, w) -> None:
    m = _metrics(at)
    if stage == "init":
        df = at.dataframe[0].value
        col = next(c for c in df.columns if c in (t("step.col.limit"), t("step.col.std")))
        assert list(df[col]) == [sig(t, layer.parameter) for layer in w.inits]
        assert list(df[t("step.col.fan_in")]) == [t.int(layer.fan_in) for layer in w.inits]
        assert len(at.get("plotly_chart")) >= len(w.inits)
    elif stage == "forward":
        assert len(at.get("plotly_chart")) >= len(w.layers) + 1
    elif stage == "loss":
        assert m[t("step.loss.mean")] == sig(t, w.loss, 6)
        df = at.dataframe[0].value
        assert list(df[t("step.col.neg_log")]) == [sig(t, v, 6) for v in w.losses]
        assert list(df[t("step.col.true")]) == [t.int(int(y)) for y in w.labels]
        p = [sig(t, w.probs[i, y], 6) for i, y in enumerate(w.labels)]
        assert list(df[t("step.col.p_true")]) == p
    elif stage == "backprop":
        ch = w.weight
        assert m[t("step.back.total")] == sig(t, ch.total, 8)
        assert m[t("step.back.backprop")] == sig(t, ch.gradient, 8)
        assert m[t("step.back.fd")] == sig(t, ch.finite_difference, 8)
        code = at.code[0].value
        assert code.endswith(t("step.back.sum_total", total=sig(t, ch.total, 8)))
    elif stage == "update":
        up = w.update
        _f, _c, u, v = w.weight.index
        assert m[t("step.update.w_before", u=u, v=v)] == sig(t, up.before, 8)
        assert m[t("step.update.w_after", u=u, v=v)] == sig(t, up.after, 8)
        assert m[t("step.update.next_loss")] == sig(t, w.next_loss, 6)
        assert len(at.latex) >= 2


@pytest.mark.parametrize("lang", LANGS)
def test_every_stage_of_every_net_shows_the_walkthroughs_numbers(lang: str) -> None:
    t = translator(lang)
    at = _run(page_app("step", lang))
    assert at.title[0].value == t("step.title")
    assert at.session_state["step_lr"] == DEFAULT_LR
    for net in NETS:
        at.selectbox(key="step_net").set_value(net)
        at.selectbox(key="step_optimizer").set_value(NET_OPTIMIZER[net])
        _run(at)
        assert int(at.session_state["step_batch_size"]) == BATCH[net]
        w = walkthrough(_config(at))
        for stage in STAGES:
            at.radio(key="step_stage").set_value(stage)
            _run(at)
            assert at.header[0].value == t(f"step.stage.{stage}", n=STAGES.index(stage) + 1)
            _check_stage(at, stage, t, w)


@pytest.mark.parametrize("lang", LANGS)
def test_each_optimizer_and_scheme_on_the_hand_sized_net(lang: str) -> None:
    t = translator(lang)
    at = _run(page_app("step", lang))
    at.radio(key="step_stage").set_value("update")
    for opt, lr in (("sgd", 0.5), ("rmsprop", 0.001), ("adam", 0.01)):
        at.selectbox(key="step_optimizer").set_value(opt)
        at.select_slider(key="step_lr").set_value(lr)
        _run(at)
        w = walkthrough(_config(at))
        assert w.config.optimizer == opt and w.config.lr == lr
        _check_stage(at, "update", t, w)
        assert len(at.latex) == {"sgd": 2, "rmsprop": 4, "adam": 4}[opt]
    at.radio(key="step_stage").set_value("init")
    for scheme in ("gaussian", "uniform", "he_normal", "glorot_uniform"):
        at.selectbox(key="step_scheme").set_value(scheme)
        _run(at)
        w = walkthrough(_config(at))
        _check_stage(at, "init", t, w)
        assert any(c.value == t(f"step.init.about.{scheme}") for c in at.caption)


@pytest.mark.parametrize("lang", LANGS)
def test_buttons_weight_choice_and_batch(lang: str) -> None:
    t = translator(lang)
    at = _run(page_app("step", lang))
    # ▶ walks the five stages, ◀ walks back; the ends disable the button
    assert at.button(key="step_prev").disabled
    for stage in STAGES[1:]:
        at.button(key="step_next").click()
        _run(at)
        assert at.session_state["step_stage"] == stage
    assert at.button(key="step_next").disabled
    at.button(key="step_prev").click()
    _run(at)
    assert at.session_state["step_stage"] == "backprop"
    # the chosen weight and the shown digit
    at.selectbox(key="step_filter").set_value(1)
    at.selectbox(key="step_row").set_value(2)
    at.selectbox(key="step_col").set_value(0)
    at.selectbox(key="step_sample").set_value(2)
    _run(at)
    w = walkthrough(_config(at))
    assert w.weight.index == (1, 0, 2, 0)
    _check_stage(at, "backprop", t, w)
    assert at.subheader[0].value == t("step.back.weight", f=1, c=0, u=2, v=0)
    # a new batch: the next seed, other digits
    at.button(key="step_redraw").click()
    _run(at)
    assert at.session_state["step_batch_seed"] == 1
    w2 = walkthrough(_config(at))
    assert list(w2.indices) != list(w.indices)
    _check_stage(at, "backprop", t, w2)
    at.number_input(key="step_batch_seed").set_value(42)
    at.selectbox(key="step_batch_size").set_value(4)
    _run(at)
    w3 = walkthrough(_config(at))
    assert len(w3.labels) == 4
    _check_stage(at, "backprop", t, w3)


@pytest.mark.parametrize("lang", LANGS)
def test_forward_cell_stepper_shows_the_layers_own_cell(lang: str) -> None:
    from convviz.ui.params import sig as page_sig

    t = translator(lang)
    at = _run(page_app("step", lang))
    at.radio(key="step_stage").set_value("forward")
    _run(at)
    w = walkthrough(_config(at))
    for _ in range(2):  # cell (0, 2) of filter 0, digit 0
        at.button(key="step_conv_next").click()
        _run(at)
    label = t("conv.step.value_at", row=0, col=2)
    assert _metrics(at)[label] == page_sig(t, w.layers[0].output[0, 0, 2, 0])
    at.toggle(key="step_conv_playing").set_value(True)
    _run(at)
    at.toggle(key="step_conv_playing").set_value(False)
    _run(at)


def test_state_keys_name_the_choices() -> None:
    for key in ("step_net", "step_stage", "step_optimizer", "step_lr", "step_batch_seed"):
        assert key in STATE_KEYS
    assert len(STAGES) == 5
