"""Ownership of training runs: a run obeys only the session that started it.

The service (:mod:`convviz.runs`) refuses every command from another token or
none; on the Train page a second session opening ``?run=<id>`` watches read-only
and can copy the run into one of its own; the page follows changes made to the
run elsewhere.
"""

from __future__ import annotations

import math
import secrets
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.nn import TrainConfig
from convviz.runs import RunManager, RunOptions, get_manager
from convviz.runs import manager as manager_module

APP = str(Path(__file__).parent / "apps" / "train_app.py")
TIMEOUT = 60.0
EN, PT = translator("en"), translator("pt")
CFG = TrainConfig(model="tiny", epochs=1, train_size=256, val_size=64, batch_size=32, eval_every=0)


@pytest.fixture
def manager():
    m = RunManager(max_active=2, abandon_after=math.inf)
    yield m
    m.shutdown()


def settle(run) -> None:
    deadline = time.monotonic() + TIMEOUT
    while run.busy:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def weights(model) -> list[np.ndarray]:
    return [np.array(p) for _, p, _ in model.parameters()]


# ---------------------------------------------------------------------------- service
COMMANDS = {
    "start": lambda r, tok: r.start(token=tok),
    "pause": lambda r, tok: r.pause(token=tok),
    "step": lambda r, tok: r.step(2, token=tok),
    "reset": lambda r, tok: r.reset(token=tok),
    "set_lr": lambda r, tok: r.set_lr(0.01, token=tok),
    "set_probe": lambda r, tok: r.set_probe(7, token=tok),
    "discard": lambda r, tok: r.discard(token=tok),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("intruder", [None, "someone-else", ""])
def test_the_service_refuses_commands_from_anyone_but_the_owner(manager, command, intruder):
    owner = secrets.token_urlsafe(16)
    run = manager.create(CFG, options=RunOptions(test_size=100), owner=owner)
    run.step(3, token=owner)
    settle(run)
    before = run.snapshot()
    with pytest.raises(CodedError) as err:
        COMMANDS[command](run, intruder)
    assert err.value.code == "train.err.not_owner"
    assert str(err.value) == EN("train.err.not_owner")
    time.sleep(0.05)
    settle(run)
    after = run.snapshot()
    assert manager.get(run.id) is run
    assert (after.state, after.step, after.lr, after.probe_index, after.version) == (
        before.state,
        before.step,
        before.lr,
        before.probe_index,
        before.version,
    )


def test_the_owner_can_do_everything(manager):
    owner = secrets.token_urlsafe(16)
    run = manager.create(CFG, options=RunOptions(test_size=100), owner=owner)
    assert run.owned_by(owner) and not run.owned_by("x") and not run.owned_by(None)
    run.step(2, token=owner)
    settle(run)
    assert run.snapshot().step == 2
    run.set_lr(0.01, token=owner)
    run.set_probe(7, token=owner)
    settle(run)
    snap = run.snapshot()
    assert snap.lr == 0.01 and snap.probe_index == 7
    assert run.start(token=owner) in ("running", "queued", "finished")
    run.pause(token=owner)
    run.reset(token=owner)
    settle(run)
    assert (run.snapshot().state, run.snapshot().step) == ("ready", 0)
    assert run.discard(token=owner) and manager.get(run.id) is None


def test_run_ids_come_from_secrets(manager, monkeypatch):
    calls = []

    def fake(n):
        calls.append(n)
        return f"secret-{len(calls)}"

    monkeypatch.setattr(manager_module.secrets, "token_urlsafe", fake)
    run = manager.create(CFG, options=RunOptions(test_size=100))
    assert run.id == "secret-1" and calls == [16]  # 16 bytes: 128 random bits
    monkeypatch.undo()
    other = manager.create(CFG, options=RunOptions(test_size=100))
    assert len(other.id) >= 21 and other.id != run.id


def test_a_copy_has_the_settings_and_current_weights_and_its_own_owner(manager):
    a, b = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    src = manager.create(CFG, options=RunOptions(test_size=100), owner=a)
    src.step(4, token=a)
    src.set_lr(0.003, token=a)
    settle(src)
    copy = manager.copy(src.id, owner=b)
    settle(copy)
    assert copy.id != src.id and copy.owned_by(b) and not copy.owned_by(a)
    s, c = src.snapshot(), copy.snapshot()
    assert c.step == 0 and s.step == 4 and c.init == "copy"
    assert {**s.config} == {**c.config}
    for x, y in zip(weights(s.model), weights(c.live_model), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(CodedError):
        copy.step(token=a)  # the source's owner does not own the copy
    copy.step(2, token=b)
    settle(copy)
    assert src.snapshot().step == 4 and copy.snapshot().step == 2
    with pytest.raises(CodedError) as err:
        manager.copy("no-such-run", owner=b)
    assert err.value.code == "train.err.run_gone"


# ---------------------------------------------------------------------------- page
def new_app(lang: str | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    if lang:
        app.query_params["lang"] = lang
    return app


def run_of(app: AppTest):
    rid = app.query_params["run"]
    return get_manager().get(rid if isinstance(rid, str) else rid[0])


@pytest.fixture
def two():
    made = []

    def make(lang=None):
        made.append(new_app(lang))
        return made[-1]

    yield make
    for app in made:
        rid = app.query_params.get("run")
        if rid:
            get_manager().discard(rid if isinstance(rid, str) else rid[0])


def small(app: AppTest) -> None:
    app.sidebar.select_slider(key="train_train_size").set_value(1_000)
    app.sidebar.select_slider(key="train_val_size").set_value(200)
    app.select_slider(key="train_test_size").set_value(500)


@pytest.mark.parametrize("lang", [None, "pt"])
def test_a_second_session_watches_read_only_and_copies(two, lang):
    t = PT if lang == "pt" else EN
    a = two(lang)
    a.run()
    small(a)
    a.sidebar.number_input(key="train_seed").set_value(5)
    a.button(key="train_step").click().run()
    assert not a.exception
    run = run_of(a)
    settle(run)
    run.step(4, token=a.session_state["train_owner"])
    settle(run)
    assert "train_owner" in a.session_state
    assert a.session_state["train_owner"] not in str(dict(a.query_params))  # never in the URL

    b = two(lang)
    b.query_params["run"] = run.id
    b.run()
    assert not b.exception
    assert run_of(b) is run
    assert t("train.watching") in [i.value for i in b.info]
    keys = {btn.key for btn in b.button}
    assert not keys & {"train_pause", "train_start", "train_step", "train_reset", "train_new"}
    assert b.number_input(key="train_probe").disabled
    assert b.button(key="train_random").disabled
    assert b.button(key="train_copy").label == t("train.copy")
    # Changing the learning rate in B's sidebar does not reach A's run.
    untouched = run.snapshot()
    b.sidebar.select_slider(key="train_lr").set_value(0.1).run()
    settle(run)
    after = run.snapshot()
    assert after.config["lr"] == untouched.config["lr"] != 0.1
    assert (after.step, after.lr) == (untouched.step, untouched.lr)

    before = run.snapshot()
    b.button(key="train_copy").click().run()
    assert not b.exception
    mine = run_of(b)
    assert mine is not None and mine is not run
    assert mine.owned_by(b.session_state["train_owner"]) and not mine.owned_by(
        a.session_state["train_owner"]
    )
    settle(mine)
    copied = mine.snapshot()
    assert copied.config == before.config and copied.config["seed"] == 5
    for x, y in zip(weights(before.model), weights(copied.live_model), strict=True):
        np.testing.assert_array_equal(x, y)
    # B now owns its copy: the controls are back, the watcher label is gone.
    assert t("train.watching") not in [i.value for i in b.info]
    assert {"train_step", "train_reset"} <= {btn.key for btn in b.button}
    b.button(key="train_step").click().run()
    settle(mine)
    assert mine.snapshot().step == 1
    # A's run is untouched.
    settle(run)
    after = run.snapshot()
    assert (after.step, after.state, after.version) == (before.step, before.state, before.version)
    assert get_manager().get(run.id) is run


def test_the_page_shows_the_true_state_after_a_change_elsewhere(two):
    a = two()
    a.run()
    small(a)
    a.sidebar.number_input(key="train_epochs").set_value(20)
    a.button(key="train_start").click().run()
    run = run_of(a)
    run.wait(lambda s: s.step >= 2, TIMEOUT)
    a.button(key="train_pause").click().run()
    settle(run)
    a.run()
    assert EN("train.state.paused") in [c.value for c in a.caption]
    token = a.session_state["train_owner"]
    run.reset(token=token)  # another tab of the same owner, through the service
    settle(run)
    a.run()
    assert not a.exception
    assert EN("train.state.ready") in [c.value for c in a.caption]
    assert EN("train.state.paused") not in [c.value for c in a.caption]
    assert "Start" in [btn.label for btn in a.button]


def test_an_idle_page_reruns_when_the_run_changed(two, monkeypatch):
    """The idle fragment's check: a rerun when the version or state moved, none otherwise."""
    from convviz.ui.pages import train as page

    owner = secrets.token_urlsafe(16)
    m = get_manager()
    run = m.create(CFG, options=RunOptions(test_size=100), owner=owner)
    settle(run)
    reruns = []
    monkeypatch.setattr(page.st, "rerun", lambda scope="app": reruns.append(scope))
    snap = run.snapshot()
    page._idle_watch(run.id, snap.version, snap.state)
    assert reruns == []
    run.step(1, token=owner)
    settle(run)
    page._idle_watch(run.id, snap.version, snap.state)
    assert reruns == ["app"]
    m.discard(run.id)
    page._idle_watch(run.id, snap.version, snap.state)
    assert reruns == ["app", "app"]


# ---------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def server():
    from tests.support.browser import require_browser
    from tests.support.train_browser import train_server

    require_browser()
    with train_server() as url:
        yield url


@pytest.mark.browser
def test_two_browsers_owner_keeps_control_across_a_reload_and_a_watcher_follows(server):
    """Browser contexts share no cookies: A owns its run (also after a reload), B only
    watches it, sees A's reset within seconds without a click, and copies it."""
    from tests.support.browser import assert_no_exception, chromium_browser, wait_ready
    from tests.support.train_browser import progress_step, start_training, wait_for_panel

    def buttons(page) -> set[str]:
        return set(page.locator("button").all_inner_texts())

    with chromium_browser() as browser:
        ctx_a, ctx_b = browser.new_context(), browser.new_context()
        try:
            a = ctx_a.new_page()
            a.goto(server)
            wait_ready(a)
            start_training(a, epochs=20)
            a.get_by_role("button", name="Pause", exact=True).click()
            a.get_by_role("button", name="Resume", exact=True).wait_for(timeout=20_000)
            url = a.url
            cookie = {c["name"]: c["value"] for c in ctx_a.cookies()}.get("convviz_owner")
            assert cookie and cookie not in url
            a.reload()
            wait_ready(a)
            a.get_by_role("button", name="Resume", exact=True).wait_for(timeout=20_000)
            assert a.get_by_text(EN("train.watching")).count() == 0

            b = ctx_b.new_page()
            b.goto(url)
            wait_ready(b)
            b.get_by_text(EN("train.watching")).wait_for(timeout=20_000)
            assert not {"Pause", "Resume", "Reset", "Step", "New run"} & {
                s.strip() for s in buttons(b)
            }
            b.get_by_role("button", name="Copy this run", exact=True).wait_for(timeout=5_000)
            wait_for_panel(b)
            deadline = time.monotonic() + 20
            while progress_step(b) == 0 and time.monotonic() < deadline:
                b.wait_for_timeout(300)
            assert progress_step(b) > 0

            a.get_by_role("button", name="Reset", exact=True).click()
            wait_ready(a)
            deadline = time.monotonic() + 20  # B's idle check reruns its page
            while progress_step(b) != 0 and time.monotonic() < deadline:
                b.wait_for_timeout(300)
            assert progress_step(b) == 0

            b.get_by_role("button", name="Copy this run", exact=True).click()
            b.get_by_role("button", name="Reset", exact=True).wait_for(timeout=20_000)
            assert b.get_by_text(EN("train.watching")).count() == 0
            assert b.url != url and "run=" in b.url
            assert_no_exception(a)
            assert_no_exception(b)
        finally:
            ctx_a.close()
            ctx_b.close()
