"""The background run manager: commands, queueing, independence, reattaching, the janitor.

Oracle: a plain headless :class:`Trainer` with the same config, driven serially.
Whatever the worker thread, chunk sizes, pauses or other runs do, a run's
per-step losses must equal that serial run's exactly.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from convviz.nn import TrainConfig, Trainer, evaluate, load_mnist, load_model, to_batch
from convviz.runs import Run, RunManager, RunOptions
from convviz.runs.observe import RecordingTrainer

TIMEOUT = 60.0


def small(**kw) -> TrainConfig:
    base = {"model": "tiny", "train_size": 512, "val_size": 200, "batch_size": 64, "eval_every": 4}
    return TrainConfig(**{**base, **kw})  # 8 steps per epoch


# Short chunks: pauses act within a few steps, so the serial replays stay short.
SAMPLE = (0, 5, 17, 42, 99, 1234)
OPTS = RunOptions(test_size=200, sample=SAMPLE, max_misclassified=10, target_chunk_s=0.05)


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
    data = load_mnist()
    assert snap.sample_indices == SAMPLE
    np.testing.assert_array_equal(snap.sample_images, data.test_images[list(SAMPLE)])
    np.testing.assert_array_equal(snap.sample_labels, data.test_labels[list(SAMPLE)])
    sample = ref.model.predict_proba(to_batch(data.test_images[list(SAMPLE)]))
    np.testing.assert_allclose(snap.sample_probs, sample, rtol=1e-5, atol=1e-7)
    probe = ref.model.predict_proba(to_batch(data.test_images[:1]))[0]
    np.testing.assert_allclose(snap.probs, probe, rtol=1e-5, atol=1e-7)
    assert snap.model is not None and snap.eta_s is None
    assert not snap.kernels[0][1].flags.writeable  # snapshots are read-only


def test_a_settled_run_carries_a_read_only_copy_of_its_model(manager, tmp_path):
    """The copy predicts like the trained model, survives more training, and saves to a file
    that loads back to the same predictions."""
    cfg = small(epochs=30)
    run = manager.create(cfg, options=OPTS)
    run.step(3)
    settled(run)
    snap = run.snapshot()
    copy = snap.model
    assert copy is not None and copy is not run._trainer.model
    x = to_batch(load_mnist().test_images[:50])
    ref = headless(cfg, 3).model
    np.testing.assert_array_equal(copy.predict_proba(x), ref.predict_proba(x))
    assert all(not p.flags.writeable for _, p, _ in copy.parameters())
    run.step(2)  # the live model trains on; the copy in the old snapshot does not change
    settled(run)
    np.testing.assert_array_equal(copy.predict_proba(x), ref.predict_proba(x))
    assert run.snapshot().model is not copy  # a new copy for the new weights
    run.start()
    run.wait(lambda s: s.state == "running" and s.step > 5, TIMEOUT)
    assert run.snapshot().model is None  # no copy while it trains
    run.pause()
    settled(run)
    path = tmp_path / "model.npz"
    run.snapshot().model.save(path)  # the copy saves like any model
    back = load_model(path)
    np.testing.assert_array_equal(back.predict_proba(x), run.snapshot().model.predict_proba(x))


def test_a_failing_worker_is_reported_as_failed_and_frees_its_slot(manager, caplog):
    run = manager.create(small(epochs=30), options=OPTS)

    def broken(n):
        raise RuntimeError("a bug")

    run._trainer.train_steps = broken
    run.start()
    snap = run.wait(lambda s: s.failed, TIMEOUT)
    assert snap.state == "failed" and manager.active_ids == []
    assert "training run" in caplog.text and "failed" in caplog.text


def test_misclassified_gallery_matches_the_confusion_matrix(manager):
    cfg = small(epochs=1)
    snap = manager.create(cfg, options=OPTS, start=True).wait(lambda s: s.finished, TIMEOUT)
    ref = headless(cfg, 8)
    wrong = int(ref.confusion.sum() - np.trace(ref.confusion))
    assert len(snap.misclassified) == min(OPTS.max_misclassified, wrong)
    probs = ref.model.predict_proba(to_batch(ref.val_images))
    pred = probs.argmax(axis=1)
    expected = np.flatnonzero(pred != ref.val_labels)[: OPTS.max_misclassified]
    for (img, true, p, conf), i in zip(snap.misclassified, expected, strict=True):
        np.testing.assert_array_equal(img, ref.val_images[i])
        assert (true, p) == (ref.val_labels[i], pred[i])
        assert conf == pytest.approx(probs[i].max(), rel=1e-5)


def test_recording_trainer_validates_like_nn_evaluate_and_keeps_the_predictions():
    t = RecordingTrainer(small())
    t.train_steps(3)
    acc = t.validate()
    loss, cm = t.history.val_loss[-1], t.confusion
    ref = evaluate(t.model, t.val_images, t.val_labels, batch_size=t.config.val_batch_size)
    assert acc == ref[1] and loss == pytest.approx(ref[0], rel=1e-5)  # fast path vs reference
    np.testing.assert_array_equal(cm, ref[2])
    probs = t.model.predict_proba(to_batch(t.val_images))
    np.testing.assert_array_equal(t.val_pred, probs.argmax(axis=1))
    np.testing.assert_allclose(t.val_conf, probs.max(axis=1), rtol=1e-5)
    # The confusion matrix counts exactly these predictions.
    again = np.zeros((10, 10), np.int64)
    np.add.at(again, (t.val_labels, t.val_pred), 1)
    np.testing.assert_array_equal(again, cm)
    # The test set goes through nn's evaluate untouched: no predictions kept.
    before = t.val_pred
    t.test_accuracy(100)
    assert t.val_pred is before


def test_pause_stops_training_and_resume_continues(manager):
    cfg = small(epochs=30)  # 240 steps: still running when we pause
    run = manager.create(cfg, options=OPTS, start=True)
    run.wait(lambda s: s.step >= 2, TIMEOUT)
    assert run.pause() == "paused"
    settled(run)
    step = run.snapshot().step
    time.sleep(0.4)
    snap = run.snapshot()
    assert snap.step == step and snap.state == "paused" and snap.model is not None
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
        ({"max_misclassified": -1}, "`max_misclassified` must be >= 0"),
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
    with pytest.raises(ValueError, match="`sample` must hold indices in"):
        manager.create(small(), options=RunOptions(sample=(0, 10_000)))


def test_get_manager_is_one_per_process(monkeypatch):
    from convviz.runs import manager as runs

    monkeypatch.setattr(runs, "_manager", None)
    monkeypatch.setenv("CONVVIZ_MAX_TRAINING_RUNS", "3")
    manager = runs.get_manager()
    try:
        assert runs.get_manager() is manager and manager.max_active == 3
    finally:
        manager.shutdown()


def test_runs_import_neither_streamlit_nor_page_code():
    code = (
        "import sys, convviz.runs; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit' "
        "or m.startswith('convviz.ui') or m == 'convviz.train_figures'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
