"""`convviz.nn.parallel.ProcessPlan` against the reference layers, and its helper's life.

The reference (``Sequential.forward`` / ``backward``) is checked against finite
differences, loops, scipy and torch in ``test_nn_layers.py`` and ``test_nn_torch.py``;
here the batch split over two processes must give the same numbers, and every way the
helper can be missing (not started yet, not fit for the model, dead) must too.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from convviz.nn.fast import FastPlan
from convviz.nn.optim import packed_span
from convviz.nn.parallel import ProcessPlan
from convviz.nn.presets import PRESETS, build_model
from convviz.nn.train import TrainConfig, Trainer
from tests.test_nn_fast import _compare, _step

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: threads only")


def _model(name: str, input_grad: bool = False):
    model = build_model(name, seed=2).astype(np.float64)
    model.input_grad = input_grad
    for _, p, _ in model.parameters():  # non-zero biases: the bias paths count
        p += np.random.default_rng(3).normal(0, 0.02, p.shape)
    return model


def _batch(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1)), rng.integers(0, 10, n)


def _ready(plan: ProcessPlan) -> ProcessPlan:
    assert plan.wait_ready(60), "the helper process did not start"
    return plan


def _gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it, or it stays a zombie that kill(0) still finds
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("packed", [False, True], ids=["arrays", "packed"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_two_processes_match_the_reference_on_every_preset_in_float64(name, packed):
    """70 rows: 35 here, 35 in the helper; its logits and gradients come back exactly.

    Packed: the weights go over in one copy and the gradients come back in one add.
    """
    x, labels = _batch(70)
    ref_model = _model(name)
    ref = _step(ref_model, ref_model, x, labels)
    model = _model(name)
    if packed:
        model.pack_parameters()
    assert (packed_span([p for _, p, _ in model.parameters()]) is not None) == packed
    plan = _ready(ProcessPlan(model))
    try:
        got = _step(plan, model, x, labels)
        assert plan.remote_passes == 1  # the helper did its half
        _compare(ref, got, rtol=1e-10, atol=1e-12)
        # A second step after an update: the helper sees the new weights.
        for m in (ref_model, model):
            for _, p, g in m.parameters():
                p -= 0.1 * g
        x2, labels2 = _batch(70, seed=5)
        _compare(
            _step(ref_model, ref_model, x2, labels2),
            _step(plan, model, x2, labels2),
            rtol=1e-10,
            atol=1e-12,
        )
        assert plan.remote_passes == 2
    finally:
        plan.close()


@pytest.mark.parametrize("name", ["classic_bn", "classic_dropout"])
def test_batchnorm_and_dropout_models_train_on_threads(name):
    """Batch statistics need the whole batch; dropout masks must not depend on timing."""
    x, labels = _batch(64)
    model = build_model(name, seed=0)
    plan = ProcessPlan(model)
    assert plan._helper is None and not plan.wait_ready(0.1)
    twin = build_model(name, seed=0)
    _compare(_step(FastPlan(twin), twin, x, labels), _step(plan, model, x, labels), 1e-5, 1e-6)
    assert plan.remote_passes == 0


def test_evaluation_small_batches_and_input_gradients_stay_on_threads():
    model = _model("tiny", input_grad=True)
    plan = _ready(ProcessPlan(model))
    try:
        x, labels = _batch(64)
        ref_model = _model("tiny", input_grad=True)
        _compare(
            _step(ref_model, ref_model, x, labels), _step(plan, model, x, labels), 1e-10, 1e-12
        )
        model.input_grad = False
        ref_model.input_grad = False
        small, small_labels = _batch(40)  # 20 + 20: too few rows to hand over
        _compare(
            _step(ref_model, ref_model, small, small_labels),
            _step(plan, model, small, small_labels),
            1e-10,
            1e-12,
        )
        np.testing.assert_allclose(plan.forward(x), ref_model.forward(x), rtol=1e-10)
        assert plan.remote_passes == 0
        _step(plan, model, x, labels)
        assert plan.remote_passes == 1
    finally:
        plan.close()


def test_no_helper_starts_until_a_pass_could_use_it():
    """Evaluation and small batches never start one; the first big training pass does."""
    model = _model("tiny")
    plan = ProcessPlan(model)
    try:
        x, labels = _batch(64)
        plan.forward(x)  # evaluation
        small, small_labels = _batch(40)
        _step(plan, model, small, small_labels)
        assert plan._holder[0] is None
        _step(plan, model, x, labels)  # on threads, while the helper starts
        assert plan._holder[0] is not None
        _ready(plan)
        _step(plan, model, x, labels)
        assert plan.remote_passes == 1
    finally:
        plan.close()


def test_the_steps_before_the_helper_is_ready_run_on_threads_with_the_same_numbers():
    model = _model("classic")
    plan = ProcessPlan(model)  # no wait: the first pass starts the helper, runs on threads
    try:
        x, labels = _batch(64)
        ref_model = _model("classic")
        _compare(
            _step(ref_model, ref_model, x, labels), _step(plan, model, x, labels), 1e-10, 1e-12
        )
    finally:
        plan.close()


def test_a_bigger_batch_gets_a_bigger_helper():
    model = _model("tiny")
    plan = _ready(ProcessPlan(model))
    try:
        first = plan._helper
        x, labels = _batch(600)  # 300 rows for the helper: more than its first room (256)
        ref_model = _model("tiny")
        ref = _step(ref_model, ref_model, x, labels)
        _compare(ref, _step(plan, model, x, labels), 1e-10, 1e-12)  # on threads meanwhile
        assert plan.remote_passes == 0 and not first.alive
        _ready(plan)
        assert plan._helper is not first and plan._helper.layout.rows >= 300
        _compare(ref, _step(plan, model, x, labels), 1e-10, 1e-12)
        assert plan.remote_passes == 1
    finally:
        plan.close()


def test_a_dead_helper_loses_no_step():
    """Killed between steps and between a forward and its backward: the numbers stay right."""
    x, labels = _batch(64)
    for when in ("before_forward", "before_backward"):
        model = _model("classic")
        plan = _ready(ProcessPlan(model))
        ref_model = _model("classic")
        ref = _step(ref_model, ref_model, x, labels)
        proc = plan._helper.proc
        if when == "before_forward":
            proc.kill()
            proc.wait()
            got = _step(plan, model, x, labels)
            assert plan.remote_passes == 0
        else:
            logits = np.array(plan.forward(x, training=True), copy=True)
            assert plan.remote_passes == 1
            proc.kill()
            proc.wait()
            from convviz.nn.losses import softmax_cross_entropy

            _, d = softmax_cross_entropy(logits, labels)
            plan.backward(d)
            got = (logits, None, {n: g.copy() for n, _, g in model.parameters()})
        _compare(ref, got, 1e-10, 1e-12)
        assert plan._helper is None
        plan.close()


def test_a_new_dtype_retires_the_helper():
    model = build_model("tiny", seed=0)
    plan = _ready(ProcessPlan(model))
    proc = plan._helper.proc
    model.astype(np.float64)
    x, labels = _batch(64)
    ref_model = build_model("tiny", seed=0).astype(np.float64)
    _compare(_step(ref_model, ref_model, x, labels), _step(plan, model, x, labels), 1e-10, 1e-12)
    assert plan.remote_passes == 0 and plan._helper is None
    assert _gone(proc.pid)


def test_close_ends_the_helper_and_leaves_no_file():
    before = set(glob.glob("/dev/shm/convviz-dp-*"))
    plan = _ready(ProcessPlan(build_model("tiny", seed=0)))
    pid = plan._helper.proc.pid
    assert set(glob.glob("/dev/shm/convviz-dp-*")) == before  # unlinked once mapped
    plan.close()
    assert _gone(pid)
    plan.close()  # twice is fine
    x, labels = _batch(64)
    _step(plan, plan.model, x, labels)  # and the plan goes on, on threads
    assert plan.remote_passes == 0


def test_the_helper_ends_with_its_parent():
    """A parent killed without any cleanup: the helper's command pipe closes, it exits."""
    code = (
        "import os, sys\n"
        "from convviz.nn.parallel import ProcessPlan\n"
        "from convviz.nn.presets import build_model\n"
        "plan = ProcessPlan(build_model('tiny'))\n"
        "assert plan.wait_ready(60)\n"
        "print(plan._helper.proc.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    pid = int(out.stdout.split()[0])
    assert _gone(pid), "the helper outlived its parent"


def test_a_trainer_on_processes_follows_the_thread_trainers_history():
    """The CLI's way (processes) and the page's (threads): the same run, step for step."""
    from tests.test_nn_train import tagged_mnist

    histories = []
    cfg = TrainConfig(model="tiny", train_size=512, val_size=64, batch_size=64, epochs=1)
    for processes in (False, True):
        trainer = Trainer(cfg, data=tagged_mnist(700), processes=processes)
        if processes:
            assert trainer.plan._holder[0] is not None  # started with the trainer
            _ready(trainer.plan)
        pid = trainer.plan._helper.proc.pid if processes else None
        trainer.train_steps(100)
        assert trainer.finished
        histories.append(trainer.history)
        if processes:
            assert trainer.plan.remote_passes == trainer.step
            assert _gone(pid)  # finished: the helper has ended
    np.testing.assert_allclose(histories[1].loss, histories[0].loss, rtol=1e-4)
    np.testing.assert_allclose(histories[1].val_acc, histories[0].val_acc, atol=1e-9)


def test_a_helper_that_cannot_start_leaves_no_file_and_training_goes_on(monkeypatch):
    """No process (limits, no interpreter): threads, and nothing left in /dev/shm."""
    import convviz.nn.parallel as parallel

    def refuse(*a, **kw):
        raise OSError("no process for you")

    before = set(glob.glob("/dev/shm/convviz-dp-*"))
    monkeypatch.setattr(parallel.subprocess, "Popen", refuse)
    model = _model("tiny")
    plan = ProcessPlan(model)
    assert not plan.wait_ready(1)
    x, labels = _batch(64)
    ref_model = _model("tiny")
    _compare(_step(ref_model, ref_model, x, labels), _step(plan, model, x, labels), 1e-10, 1e-12)
    assert plan.remote_passes == 0
    assert set(glob.glob("/dev/shm/convviz-dp-*")) == before


def _train_step(net, model, x, labels):
    """``net.train_step``: (logits, loss, {name: grad}) as copies."""
    loss, logits = net.train_step(x, labels)
    return np.array(logits, copy=True), loss, {n: g.copy() for n, _, g in model.parameters()}


@pytest.mark.parametrize("name", ["classic", "resnet", "inception"])
def test_a_whole_step_in_one_call_matches_forward_loss_and_backward_in_float64(name):
    """Each process runs forward, loss and backward on its half with no hand-off between."""
    from convviz.nn.losses import softmax_cross_entropy

    x, labels = _batch(70)
    ref_model = _model(name)
    ref = _step(ref_model, ref_model, x, labels)
    ref_loss, _ = softmax_cross_entropy(ref[0], labels)
    model = _model(name).pack_parameters()
    plan = _ready(ProcessPlan(model))
    try:
        logits, loss, grads = _train_step(plan, model, x, labels)
        assert plan.remote_passes == 1  # the helper did its half
        _compare(ref, (logits, None, grads), rtol=1e-10, atol=1e-12)
        assert loss == pytest.approx(ref_loss, rel=1e-12)
    finally:
        plan.close()


def test_one_call_on_processes_gives_the_threads_gradients_bit_for_bit():
    """Batch 64: the same 32 + 32 split as two threads, and the gradient rows of the whole
    batch's loss (``mean_over``), so float32 training is the same to the bit both ways."""
    x, labels = _batch(64)
    x = x.astype(np.float32)
    runs = []
    for use_processes in (False, True):
        model = build_model("classic", seed=3).pack_parameters()
        plan = _ready(ProcessPlan(model)) if use_processes else FastPlan(model)
        try:
            runs.append(_train_step(plan, model, x, labels))
            if use_processes:
                assert plan.remote_passes == 1
        finally:
            if use_processes:
                plan.close()
    (l1, loss1, g1), (l2, loss2, g2) = runs
    assert np.array_equal(l1, l2)
    assert all(np.array_equal(g1[n], g2[n]) for n in g1)
    assert loss2 == pytest.approx(loss1, rel=1e-6)  # the loss sums in another order


def test_a_helper_dead_before_a_one_call_step_loses_nothing():
    x, labels = _batch(64)
    ref_model = _model("classic")
    ref = _step(ref_model, ref_model, x, labels)
    model = _model("classic")
    plan = _ready(ProcessPlan(model))
    proc = plan._helper.proc
    proc.kill()
    proc.wait()
    logits, _, grads = _train_step(plan, model, x, labels)
    _compare(ref, (logits, None, grads), 1e-10, 1e-12)
    assert plan.remote_passes == 0 and plan._helper is None
    plan.close()


def test_a_one_call_step_with_bad_labels_raises_the_loss_error():
    model = _model("classic")
    plan = _ready(ProcessPlan(model))
    try:
        x, labels = _batch(64)
        labels[40] = 10  # in the helper's half
        with pytest.raises(ValueError, match="labels"):
            plan.train_step(x, labels)
    finally:
        plan.close()
