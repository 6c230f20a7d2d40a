"""``Snapshot.live_model``: a run's current weights, readable while it trains.

Oracle: a plain headless :class:`Trainer` with the same config, trained the same
number of steps serially: the copy published at ``live_step`` must hold exactly
its weights, while the run goes on training undisturbed.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pytest

from convviz.nn import TrainConfig, Trainer, load_mnist, to_batch
from convviz.runs import RunManager, RunOptions

TIMEOUT = 60.0


@pytest.fixture
def manager():
    m = RunManager(max_active=1, abandon_after=math.inf, data=load_mnist())
    yield m
    m.shutdown()


def params(model) -> dict[str, np.ndarray]:
    return {name: p for name, p, _ in model.parameters()}


def test_a_training_run_publishes_read_only_copies_of_its_current_weights(manager):
    cfg = TrainConfig(model="tiny", train_size=1024, val_size=200, eval_every=0, epochs=3)
    interval = 0.2
    opts = RunOptions(test_size=200, target_chunk_s=0.05, view_interval_s=interval)
    run = manager.create(cfg, options=opts, start=False)
    first = run.snapshot()
    assert first.live_model is not None and first.live_step == 0  # readable before training
    run.start()
    seen: dict[int, object] = {}
    while_training = []
    t0 = time.monotonic()
    while True:
        snap = run.snapshot()
        seen.setdefault(snap.live_step, snap.live_model)
        if snap.state == "running" and snap.live_step > 0:
            while_training.append(snap.live_step)
        if snap.state == "finished":
            break
        assert time.monotonic() - t0 < TIMEOUT
        time.sleep(0.005)
    wall = time.monotonic() - t0
    assert while_training, "no copy was published while the run trained"
    # At most one copy per view interval (plus the first and the settled one).
    assert len(seen) <= wall / interval + 3, (len(seen), wall)
    # Each copy holds exactly the weights a serial trainer has after that many steps.
    trainer = Trainer(replace(cfg))
    done = 0
    for step in sorted(seen):
        trainer.train_steps(step - done)
        done = step
        copy = params(seen[step])
        for name, p in params(trainer.model).items():
            np.testing.assert_array_equal(copy[name], p, err_msg=f"{name} at step {step}")
            assert not copy[name].flags.writeable
    # Settled: the copy of the final weights is the snapshot's model.
    assert snap.live_step == snap.step == snap.total_steps
    assert snap.live_model is snap.model
    # A copy shares nothing with the run: it predicts as the weights it was copied with.
    x = to_batch(load_mnist().test_images[:4])
    np.testing.assert_array_equal(snap.live_model.forward(x), trainer.model.forward(x))
