"""A run's training timeline: a frame at step 0, at every validation and at early steps.

Oracle: a plain headless :class:`Trainer` with the same config, replayed serially to
each frame's step (training is deterministic for a seed): the frame's filters, probe
prediction, layer outputs and confusion matrix must be that model's.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from convviz.nn import TrainConfig, Trainer, evaluate, load_mnist, to_batch
from convviz.runs import RunManager, RunOptions
from convviz.runs.run import EARLY_STEPS
from convviz.runs.snapshot import TIMELINE_MAX_FRAMES, TimelineFrame, thin

TIMEOUT = 90.0
PROBE = 7


@pytest.fixture(scope="module")
def data():
    return load_mnist()


@pytest.fixture
def manager(data):
    m = RunManager(max_active=2, abandon_after=math.inf, data=data)
    yield m
    m.shutdown()


def replay(config: TrainConfig, steps: int) -> Trainer:
    t = Trainer(replace(config))
    if steps:
        t.train_steps(steps)
    return t


def test_frames_are_the_model_at_their_step(manager, data):
    cfg = TrainConfig(
        model="tiny", train_size=640, val_size=200, batch_size=32, epochs=2, eval_every=15
    )  # 20 steps per epoch: validations at 15, 20, 30, 40
    opts = RunOptions(test_size=100, probe_index=PROBE, target_chunk_s=0.05)
    run = manager.create(cfg, options=opts, start=True)
    snap = run.wait(lambda s: s.state == "finished", TIMEOUT)
    frames = snap.timeline
    steps = [f.step for f in frames]
    val_steps = list(snap.history["val_step"])
    assert val_steps == [15, 20, 30, 40]
    assert steps == sorted({0, *[s for s in EARLY_STEPS if s <= 40], *val_steps})
    by_step = {f.step: f for f in frames}
    # Validation frames carry the history's own scores; early frames none.
    for s, loss, acc in zip(
        val_steps, snap.history["val_loss"], snap.history["val_acc"], strict=True
    ):
        assert (by_step[s].val_loss, by_step[s].val_acc) == (loss, acc)
    assert by_step[5].val_acc is None and by_step[5].confusion is None
    image = data.test_images[PROBE]
    for s in (0, 2, 15, 40):
        ref = replay(cfg, s)
        f = by_step[s]
        np.testing.assert_array_equal(
            f.kernels[1], dict(ref.model.layer_weights())["conv2d"]["kernel"]
        )
        probs = ref.model.predict_proba(to_batch(image[None]))[0]
        np.testing.assert_allclose(f.probe_probs, probs, rtol=1e-5, atol=1e-7)
        acts = dict(ref.model.activations(to_batch(image[None])))
        for name, _, out in f.probe_activations:  # float16: 3 significant digits
            np.testing.assert_allclose(out, acts[name][0], rtol=2e-3, atol=2e-3)
        if s:
            assert f.loss == ref.history.loss[-1]
        if s in val_steps or s == 0:  # step 0: the untrained net, scored on the same split
            _, acc, confusion = evaluate(ref.model, ref.val_images, ref.val_labels)
            np.testing.assert_array_equal(f.confusion, confusion)
            assert f.val_acc == pytest.approx(acc, abs=1e-12)
    assert all(f.probe_index == PROBE for f in frames)
    assert not frames[-1].kernels[1].flags.writeable
    assert sum(f.nbytes for f in frames) < 2_000_000  # tiny: well under the ~5 MB bound


def test_a_reset_starts_a_new_timeline(manager):
    cfg = TrainConfig(model="tiny", train_size=320, val_size=100, batch_size=32, eval_every=5)
    run = manager.create(cfg, options=RunOptions(test_size=50), start=True)
    run.wait(lambda s: s.state == "finished", TIMEOUT)
    run.reset()
    run.step(2)
    snap = run.wait(lambda s: s.step == 2 and not run.busy, TIMEOUT)
    assert [f.step for f in snap.timeline] == [0, 1, 2]


def _frame(step: int) -> TimelineFrame:
    z = np.zeros(10)
    return TimelineFrame(step, step / 10, 1e-3, None, None, None, None, None, 0, z, ())


def test_thinning_bounds_the_timeline_and_keeps_its_span():
    frames: list[TimelineFrame] = []
    for s in range(1000):
        frames = thin([*frames, _frame(s)])
        assert len(frames) <= TIMELINE_MAX_FRAMES
    steps = [f.step for f in frames]
    assert steps[0] == 0 and steps[-1] == 999 and steps == sorted(steps)
    gaps = np.diff(steps)
    assert gaps.max() <= 4 * np.median(gaps)  # spread over the run, not bunched at one end
