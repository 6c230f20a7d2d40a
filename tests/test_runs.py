"""The background run manager: commands, queueing, independence, reattaching, the janitor.

Oracle: a plain headless :class:`Trainer` with the same config, driven serially.
Whatever the worker thread, chunk sizes, pauses or other runs do, a run's
per-step losses must equal that serial run's exactly.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from convviz.nn.data import load_mnist, to_batch
from convviz.nn.train import TrainConfig, Trainer, evaluate
from convviz.runs import Run, RunManager, RunOptions, _ViewTrainer

TIMEOUT = 60.0


def small(**kw) -> TrainConfig:
    base = {"model": "tiny", "train_size": 512, "val_size": 200, "batch_size": 64, "eval_every": 4}
    return TrainConfig(**{**base, **kw})  # 8 steps per epoch


# Short chunks: pauses act within a few steps, so the serial replays stay short.
OPTS = RunOptions(test_size=200, strip_size=6, gallery_size=10, target_chunk_s=0.05)


@pytest.fixture
def manager():
    m = RunManager(max_active=2, abandon_after=math.inf, data=load_mnist())
    yield m
    m.shutdown()


def headless(config: TrainConfig, steps: int) -> Trainer:
    t = Trainer(replace(config))
    t.train_steps(steps)
    return t


def settled(run: Run) -> None:
    """Wait until the worker has applied every command."""
    deadline = time.monotonic() + TIMEOUT
    while run.busy:
        assert time.monotonic() < deadline, "the worker did not settle"
        time.sleep(0.01)
    run.wait(lambda s: True)


def test_run_trains_like_a_headless_trainer(manager):
    cfg = small(epochs=2)
    run = manager.create(cfg, options=OPTS, start=True)
    snap = run.wait(lambda s: s.state == "finished", TIMEOUT)
    ref = headless(cfg, 16)
    assert snap.step == snap.total_steps == 16
    np.testing.assert_array_equal(snap.history["loss"], ref.history.loss)
    np.testing.assert_array_equal(snap.history["val_acc"], ref.history.val_acc)
    np.testing.assert_array_equal(snap.confusion, ref.confusion)
    assert snap.test_acc == ref.test_accuracy(200)
    # Chunks partition the steps; each chunk's loss is the image-weighted mean of its steps.
    assert snap.chunks["step"][-1] == 16
    edges = (0, *snap.chunks["step"])
    for lo, hi, loss in zip(edges, edges[1:], snap.chunks["loss"], strict=False):
        assert loss == pytest.approx(np.mean(ref.history.loss[lo:hi]), rel=1e-9)
    # The live views show the trained model's numbers.
    acts = ref.model.activations(to_batch(load_mnist().test_images[:1]))
    shown = {name: out for name, _, out in snap.activations}
    for name, out in acts:
        if name in shown:
            np.testing.assert_allclose(shown[name], out[0], rtol=1e-6)
    np.testing.assert_array_equal(
        dict(snap.kernels)["conv2d"], dict(ref.model.layer_weights())["conv2d"]["kernel"]
    )
    strip = ref.model.predict_proba(to_batch(load_mnist().test_images[list(snap.strip_indices)]))
    np.testing.assert_allclose(snap.strip_probs, strip, rtol=1e-5, atol=1e-7)
    assert snap.model_npz is not None and snap.eta_s is None
    assert not snap.kernels[0][1].flags.writeable  # snapshots are read-only


def test_misclassified_gallery_matches_the_confusion_matrix(manager):
    cfg = small(epochs=1)
    snap = manager.create(cfg, options=OPTS, start=True).wait(lambda s: s.finished, TIMEOUT)
    ref = headless(cfg, 8)
    wrong = int(ref.confusion.sum() - np.trace(ref.confusion))
    assert len(snap.misclassified) == min(OPTS.gallery_size, wrong)
    pred = ref.model.predict(to_batch(ref.val_images))
    expected = np.flatnonzero(pred != ref.val_labels)[: OPTS.gallery_size]
    for (img, true, p, conf), i in zip(snap.misclassified, expected, strict=True):
        np.testing.assert_array_equal(img, ref.val_images[i])
        assert (true, p) == (ref.val_labels[i], pred[i]) and 0 < conf <= 1


def test_view_trainer_evaluate_matches_module_evaluate():
    t = _ViewTrainer(small())
    t.train_steps(3)
    loss, acc, cm = t.evaluate(t.val_images, t.val_labels)
    ref = evaluate(t.model, t.val_images, t.val_labels, batch_size=t.config.val_batch_size)
    assert loss == pytest.approx(ref[0], rel=1e-6) and acc == ref[1]
    np.testing.assert_array_equal(cm, ref[2])
    np.testing.assert_array_equal(t.val_pred, t.model.predict(to_batch(t.val_images)))


def test_pause_stops_training_and_resume_continues(manager):
    cfg = small(epochs=30)  # 240 steps: still running when we pause
    run = manager.create(cfg, options=OPTS, start=True)
    run.wait(lambda s: s.step >= 2, TIMEOUT)
    assert run.pause() == "paused"
    settled(run)
    step = run.snapshot().step
    time.sleep(0.4)
    snap = run.snapshot()
    assert snap.step == step and snap.state == "paused" and snap.model_npz is not None
    assert run.resume() == "running"
    snap = run.wait(lambda s: s.step >= step + 2, TIMEOUT)
    run.pause()
    settled(run)
    snap = run.snapshot()
    np.testing.assert_array_equal(snap.history["loss"], headless(cfg, snap.step).history.loss)


def test_single_steps_while_paused(manager):
    cfg = small()
    run = manager.create(cfg, options=OPTS)
    assert run.snapshot().state == "ready"
    run.step()
    settled(run)
    assert run.snapshot().step == 1
    run.step(3)
    settled(run)
    snap = run.snapshot()
    assert snap.step == 4 and snap.state == "ready"
    np.testing.assert_array_equal(snap.history["loss"], headless(cfg, 4).history.loss)


def test_reset_starts_over_with_the_same_config(manager):
    cfg = small(epochs=30)
    run = manager.create(cfg, options=OPTS, start=True)
    run.wait(lambda s: s.step >= 3, TIMEOUT)
    run.set_lr(0.01)
    run.reset()
    settled(run)
    snap = run.snapshot()
    assert (snap.state, snap.step, snap.history["loss"], snap.chunks["step"]) == (
        "ready",
        0,
        (),
        (),
    )
    assert snap.lr == cfg.lr  # the original learning rate, not the changed one
    assert manager.active_ids == []  # reset freed the training slot
    run.step(2)
    settled(run)
    np.testing.assert_array_equal(run.snapshot().history["loss"], headless(cfg, 2).history.loss)


def test_learning_rate_changes_between_chunks(manager):
    cfg = small(lr=1e-3)
    run = manager.create(cfg, options=OPTS)
    run.step(2)
    settled(run)
    run.set_lr(0.01)
    run.step(2)
    settled(run)
    snap = run.snapshot()
    assert snap.history["lr"] == (1e-3, 1e-3, 0.01, 0.01)
    ref = Trainer(replace(cfg))
    ref.train_steps(2)
    ref.set_lr(0.01)
    ref.train_steps(2)
    np.testing.assert_array_equal(snap.history["loss"], ref.history.loss)


def test_reattach_by_id(manager):
    run = manager.create(small(), options=OPTS)
    run.step(3)
    settled(run)
    again = manager.get(run.id)
    assert again is run
    assert again.snapshot().history == run.snapshot().history
    assert len(run.snapshot().history["step"]) == 3
    assert manager.get("no-such-run") is None and manager.get(None) is None
    assert len(run.id) >= 16  # token_urlsafe(12): not guessable


def test_cap_queues_and_releases(manager):
    manager.max_active = 1
    a = manager.create(small(epochs=30), options=OPTS, start=True)
    b = manager.create(small(epochs=30, seed=1), options=OPTS, start=True)
    assert a.snapshot().state == "running"
    sb = b.snapshot()
    assert (sb.state, sb.queue_position) == ("queued", 1)
    assert manager.active_ids == [a.id] and manager.queued_ids == [b.id]
    time.sleep(0.3)
    assert b.snapshot().step == 0  # a queued run does not train
    a.pause()  # frees the slot: b goes next
    assert b.snapshot().state == "running"
    assert a.start() == "queued" and a.snapshot().queue_position == 1
    b.wait(lambda s: s.step >= 1, TIMEOUT)
    manager.discard(b.id)  # discarding frees it too
    assert a.snapshot().state == "running" and manager.active_ids == [a.id]
    assert b.state == "discarded" and manager.get(b.id) is None


def test_two_runs_with_different_seeds_stay_independent(manager):
    c0, c1 = small(epochs=2, seed=0), small(epochs=2, seed=1)
    r0 = manager.create(c0, options=OPTS, start=True)
    r1 = manager.create(c1, options=OPTS, start=True)
    s0 = r0.wait(lambda s: s.finished, TIMEOUT)
    s1 = r1.wait(lambda s: s.finished, TIMEOUT)
    np.testing.assert_array_equal(s0.history["loss"], headless(c0, 16).history.loss)
    np.testing.assert_array_equal(s1.history["loss"], headless(c1, 16).history.loss)
    assert s0.history["loss"] != s1.history["loss"]
    assert not np.array_equal(dict(s0.kernels)["conv2d"], dict(s1.kernels)["conv2d"])


def test_abandoned_run_is_freed():
    m = RunManager(max_active=1, abandon_after=0.2, janitor_interval=0.05, data=load_mnist())
    try:
        kept_alive = [True]
        gone = m.create(small(epochs=30), options=OPTS, start=True)
        alive = m.create(small(epochs=30), options=OPTS)
        alive.touch(lambda: kept_alive[0])  # its session is still connected
        deadline = time.monotonic() + TIMEOUT
        while m.get(gone.id) is not None:
            assert time.monotonic() < deadline, "the janitor did not free the run"
            time.sleep(0.05)
        gone._thread.join(TIMEOUT)
        assert not gone._thread.is_alive() and gone.state == "discarded"
        assert m.active_ids == [] and gone._trainer is None  # slot and memory freed
        time.sleep(0.3)
        assert m.get(alive.id) is alive  # past the timeout, but its session is there
        kept_alive[0] = False
        while m.get(alive.id) is not None:
            assert time.monotonic() < deadline, "the janitor did not free the second run"
            time.sleep(0.05)
    finally:
        m.shutdown()


def test_touch_keeps_a_run():
    m = RunManager(abandon_after=0.3, janitor_interval=0.05, data=load_mnist())
    try:
        run = m.create(small(), options=OPTS)
        for _ in range(10):
            run.touch()
            time.sleep(0.05)
        assert m.get(run.id) is run
    finally:
        m.shutdown()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.set_lr(0), "`lr` must be > 0"),
        (lambda r: r.set_lr(float("nan")), "`lr` must be a finite number"),
        (lambda r: r.step(0), "`n` must be an integer >= 1"),
        (lambda r: r.set_probe(10_000), "`index` must be in"),
        (lambda r: r.set_probe(1.5), "`index` must be an integer"),
    ],
)
def test_run_commands_validate(manager, call, message):
    run = manager.create(small(), options=OPTS)
    with pytest.raises(ValueError, match=message):
        call(run)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_active": 0}, "`max_active` must be an integer >= 1"),
        ({"abandon_after": 0}, "`abandon_after` must be > 0"),
    ],
)
def test_manager_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunManager(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_chunk_s": 0}, "`target_chunk_s` must be > 0"),
        ({"max_chunk_steps": 0}, "`max_chunk_steps` must be >= 1"),
        ({"view_interval_s": -1}, "`view_interval_s` must be >= 0"),
        ({"strip_size": -1}, "`strip_size` must be >= 0"),
        ({"gallery_size": -1}, "`gallery_size` must be >= 0"),
        ({"test_size": 0}, "`test_size` must be None or >= 1"),
    ],
)
def test_options_validate(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunOptions(**kwargs).validate()


def test_bad_config_raises_at_create(manager):
    with pytest.raises(ValueError, match="`train_size` must be <="):
        manager.create(small(train_size=59_990), options=OPTS)
    with pytest.raises(ValueError, match="`probe_index` must be in"):
        manager.create(small(), options=RunOptions(probe_index=-1))


def test_the_server_manager_shortens_the_gil_switch_interval():
    """Training threads next to a server get the GIL back within 0.5 ms, not 5 ms."""
    from convviz.runs import manager as runs

    old = sys.getswitchinterval()
    saved, runs._manager = runs._manager, None
    try:
        sys.setswitchinterval(0.005)
        manager = runs.get_manager()
        assert runs.get_manager() is manager  # one per process
        assert sys.getswitchinterval() == pytest.approx(runs.SERVER_SWITCH_INTERVAL_S)
        manager.shutdown()
    finally:
        runs._manager = saved
        sys.setswitchinterval(old)
