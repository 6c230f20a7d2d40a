"""The chunked trainer: bounds, determinism, lr, schedules, history, evaluation, learning."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convviz.nn.data import Mnist, load_mnist, to_batch
from convviz.nn.fast import FastPlan
from convviz.nn.presets import build_model
from convviz.nn.train import TrainConfig, Trainer, evaluate, evaluate_set, lr_at

REPO = Path(__file__).resolve().parents[1]


# --- a fake model and a synthetic data set that let us see exactly what the trainer feeds


def tagged_mnist(n_train: int = 300, n_test: int = 40) -> Mnist:
    """Images whose two first pixels encode their index; labels = index % 10."""

    def images(n: int) -> np.ndarray:
        x = np.zeros((n, 28, 28), np.uint8)
        x[:, 0, 0] = np.arange(n) // 256
        x[:, 0, 1] = np.arange(n) % 256
        return x

    return Mnist(
        images(n_train),
        (np.arange(n_train) % 10).astype(np.uint8),
        images(n_test),
        (np.arange(n_test) % 10).astype(np.uint8),
    )


def image_ids(x: np.ndarray) -> np.ndarray:
    """Indices encoded by ``tagged_mnist`` in a float batch (N, 28, 28, 1)."""
    px = np.rint(x[:, 0, :2, 0] * 255).astype(int)
    return px[:, 0] * 256 + px[:, 1]


class RecordingModel:
    """Predicts class ``id % 10`` for even ids (right) and ``(id + 1) % 10`` for odd ones."""

    def __init__(self) -> None:
        self.w = np.zeros(3, np.float32)
        self.g = np.zeros(3, np.float32)
        self.batches: list[np.ndarray] = []
        self.modes: list[bool] = []

    def forward(self, x, training=False):
        ids = image_ids(x)
        if training:
            self.batches.append(ids)
        self.modes.append(training)
        pred = np.where(ids % 2 == 0, ids % 10, (ids + 1) % 10)
        logits = np.zeros((len(x), 10), np.float32)
        logits[np.arange(len(x)), pred] = 5.0
        return logits

    def backward(self, dlogits):
        self.g[...] = 1.0
        return None

    def parameters(self):
        return [("fake/w", self.w, self.g)]


def fake_trainer(**kw) -> tuple[Trainer, RecordingModel]:
    cfg = {"batch_size": 32, "val_size": 50, "eval_every": 0, "optimizer": "sgd", "lr": 0.1}
    cfg.update(kw)
    model = RecordingModel()
    return Trainer(TrainConfig(**cfg), model=model, data=tagged_mnist()), model


# --- chunks and bookkeeping --------------------------------------------------------------


def test_each_epoch_is_a_new_permutation_of_the_training_split():
    t, model = fake_trainer(epochs=3)
    assert t.steps_per_epoch == math.ceil(250 / 32) == 8
    t.train_steps(100)
    assert t.finished and t.step == t.total_steps == 24
    sizes = [len(b) for b in model.batches]
    assert sizes == ([32] * 7 + [26]) * 3  # the last batch of an epoch is partial
    epochs = [np.concatenate(model.batches[i * 8 : (i + 1) * 8]) for i in range(3)]
    train_ids = set(image_ids(np.asarray(t.train_images, np.float32)[..., None] / 255).tolist())
    val_ids = set(image_ids(np.asarray(t.val_images, np.float32)[..., None] / 255).tolist())
    assert not train_ids & val_ids and len(train_ids | val_ids) == 300
    for ids in epochs:
        assert sorted(ids.tolist()) == sorted(train_ids)  # every image exactly once
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled
    assert not np.array_equal(epochs[1], epochs[2])


def test_chunks_respect_their_bound():
    t, model = fake_trainer(epochs=2)
    assert t.train_steps(0)["steps"] == 0 and t.step == 0
    m = t.train_steps(3)
    assert (m["steps"], m["step"], len(model.batches)) == (3, 3, 3)
    m = t.train_steps(6)
    assert (m["steps"], m["step"], m["epoch"], m["finished"]) == (6, 9, 1, False)
    m = t.train_steps(1000)
    assert (m["steps"], m["step"], m["finished"]) == (7, 16, True)
    m = t.train_steps(5)
    assert m["steps"] == 0 and t.step == 16 and len(model.batches) == 16


def test_chunk_metrics_are_per_image_means():
    t, _ = fake_trainer()
    m = t.train_steps(100)
    # The fake model is right on even ids only: accuracy = share of even ids in the split.
    ids = np.concatenate([image_ids(to_float(t.train_images))])
    assert m["acc"] == pytest.approx(np.mean(ids % 2 == 0))
    assert m["images"] == 250 and m["seconds"] > 0
    assert m["images_per_s"] == pytest.approx(250 / m["seconds"])
    # The loss of a logit-5 one-hot guess, right or wrong (two values), averaged per image.
    right = -math.log(math.exp(5) / (math.exp(5) + 9))
    wrong = -math.log(1 / (math.exp(5) + 9))
    assert m["loss"] == pytest.approx(m["acc"] * right + (1 - m["acc"]) * wrong, rel=1e-5)


def to_float(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, np.float32)[..., None] / 255


def test_history_lengths_and_validation_points():
    t, model = fake_trainer(epochs=2, eval_every=3)
    while not t.finished:
        t.train_steps(5)
    h = t.history
    n = t.total_steps
    for key in ("step", "epoch", "loss", "acc", "lr", "images_per_s"):
        assert len(getattr(h, key)) == n, key
    assert h.step == list(range(1, n + 1))
    assert h.epoch[-1] == 2.0 and h.epoch[7] == 1.0
    # Every 3 steps and at both epoch ends, each point once.
    assert h.val_step == sorted(set(range(3, n + 1, 3)) | {8, 16})
    assert len(h.val_acc) == len(h.val_loss) == len(h.val_step)
    # Validation runs in eval mode.
    assert model.modes.count(False) > 0
    assert [e["epoch"] for e in t.epoch_log] == [1, 2]
    # The fake model is right on even ids: check the validation accuracy against that.
    val_ids = image_ids(to_float(t.val_images))
    assert h.val_acc[-1] == pytest.approx(np.mean(val_ids % 2 == 0))
    assert t.history.to_dict()["val_step"] == h.val_step


def test_no_validation_split():
    t, _ = fake_trainer(val_size=0, eval_every=2)
    t.train_steps(100)
    assert t.history.val_step == [] and t.confusion is None
    assert t.epoch_log[0]["val_acc"] is None
    assert len(t.train_images) == 300


def test_train_size_takes_a_seeded_subset():
    a, _ = fake_trainer(train_size=100)
    b, _ = fake_trainer(train_size=100)
    c, _ = fake_trainer(train_size=100, seed=1)
    assert len(a.train_images) == 100 and a.steps_per_epoch == 4
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert not np.array_equal(a.train_images, c.train_images)


def test_train_size_larger_than_the_split_is_an_error():
    with pytest.raises(ValueError, match=r"`train_size` must be <= 250"):
        fake_trainer(train_size=251)


def test_set_lr_takes_effect_on_the_next_step():
    cfg = TrainConfig(batch_size=32, val_size=50, optimizer="sgd", lr=0.1)
    model = RecordingModel()
    t = Trainer(cfg, model=model, data=tagged_mnist())
    t.train_steps(2)  # the fake grad is 1: each step moves w by -lr
    np.testing.assert_allclose(model.w, -0.2, rtol=1e-6)
    t.set_lr(0.01)
    assert t.lr == 0.01
    m = t.train_steps(2)
    assert m["lr"] == 0.01
    np.testing.assert_allclose(model.w, -0.22, rtol=1e-6)
    assert t.history.lr == [0.1, 0.1, 0.01, 0.01]
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        t.set_lr(0.0)
    assert cfg.lr == 0.1  # the trainer changed its own copy of the config


def test_set_lr_rescales_the_schedule():
    t, _ = fake_trainer(lr=0.1, schedule="cosine", final_lr_ratio=0.1)
    t.train_steps(4)
    t.set_lr(0.2)
    t.train_steps(4)
    expect = [
        lr_at(TrainConfig(lr=0.1 if s < 4 else 0.2, schedule="cosine", final_lr_ratio=0.1), s, 8)
        for s in range(8)
    ]
    np.testing.assert_allclose(t.history.lr, expect)


def test_state_snapshot():
    t, _ = fake_trainer(epochs=2)
    t.train_steps(5)
    s = t.state
    assert s == {
        "step": 5,
        "total_steps": 16,
        "epoch": 0,
        "epochs": 2,
        "steps_per_epoch": 8,
        "progress": 5 / 16,
        "finished": False,
        "lr": 0.1,
        "val_acc": None,
    }


# --- schedules against torch.optim.lr_scheduler --------------------------------------------


def torch_lrs(make_sched, lr: float, n: int) -> list[float]:
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_sched(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize(("n", "warmup", "final"), [(100, None, 0.01), (37, 0.2, 0.001)])
def test_onecycle_matches_torch(n, warmup, final):
    torch = pytest.importorskip("torch")
    cfg = TrainConfig(lr=0.01, schedule="onecycle", warmup=warmup, final_lr_ratio=final)
    ours = [lr_at(cfg, s, n) for s in range(n)]
    ref = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=0.01,
            total_steps=n,
            pct_start=0.3 if warmup is None else warmup,
            div_factor=25.0,
            final_div_factor=1 / (25 * final),
            anneal_strategy="cos",
            cycle_momentum=False,
        ),
        0.01,
        n,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_cosine_matches_torch():
    torch = pytest.importorskip("torch")
    n = 50
    cfg = TrainConfig(lr=0.02, schedule="cosine", final_lr_ratio=0.05)
    ours = [lr_at(cfg, s, n) for s in range(n)]
    ref = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n - 1, eta_min=0.001),
        0.02,
        n,
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_cosine_warmup_by_hand():
    cfg = TrainConfig(lr=1.0, schedule="cosine", warmup=0.4, final_lr_ratio=0.1)
    lrs = [lr_at(cfg, s, 10) for s in range(10)]
    np.testing.assert_allclose(lrs[:4], [0.25, 0.5, 0.75, 1.0])  # linear warm-up over 4 steps
    assert lrs[4] == 1.0 and lrs[-1] == pytest.approx(0.1)
    # Halfway through the 5 cosine steps after the warm-up: the mean of 1 and 0.1.
    assert lrs[4 + 5 // 2 - 0] == pytest.approx(0.55 + 0.45 * math.cos(math.pi * 2 / 5))
    assert all(a >= b for a, b in itertools.pairwise(lrs[3:]))


def test_constant_schedule():
    cfg = TrainConfig(lr=0.3)
    assert {lr_at(cfg, s, 7) for s in range(7)} == {0.3}


# --- evaluation ---------------------------------------------------------------------------


def test_evaluate_against_a_direct_computation():
    data = load_mnist()
    model = build_model("tiny", seed=3)
    x, y = data.test_images[:300], data.test_labels[:300]
    loss, acc, confusion = evaluate(model, x, y, batch_size=128)  # 3 uneven batches
    # Oracle: one float64 pass over all 300 images, loss and confusion by loops.
    logits = model.forward(np.asarray(x, np.float32)[..., None] / 255).astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert loss == pytest.approx(-logp[np.arange(300), y].mean(), rel=1e-5)
    pred = logits.argmax(1)
    expect = np.zeros((10, 10), int)
    for t, p in zip(y, pred, strict=True):
        expect[t, p] += 1
    np.testing.assert_array_equal(confusion, expect)
    assert acc == pytest.approx(np.mean(pred == y))


def test_evaluate_set_keeps_predictions_and_agrees_with_evaluate_and_the_plan():
    data = load_mnist()
    model = build_model("tiny", seed=3)
    x, y = data.test_images[:300], data.test_labels[:300]
    e = evaluate_set(FastPlan(model), x, y, batch_size=128)  # sliced over threads
    loss, acc, confusion = evaluate(model, x, y, batch_size=128)  # the reference layers
    assert e.loss == pytest.approx(loss, rel=1e-6) and e.acc == acc
    np.testing.assert_array_equal(e.confusion, confusion)
    probs = model.predict_proba(to_batch(x)).astype(np.float64)  # an independent softmax
    np.testing.assert_array_equal(e.pred, probs.argmax(1))
    np.testing.assert_allclose(e.conf, probs.max(1), rtol=1e-5)
    assert e.pred.dtype == np.int64 and e.conf.dtype == np.float64


def test_validation_keeps_the_per_image_predictions():
    t, _ = fake_trainer(val_size=50)
    t.train_steps(t.steps_per_epoch)  # an epoch end validates
    ids = image_ids(to_batch(t.val_images))
    want = np.where(ids % 2 == 0, ids % 10, (ids + 1) % 10)  # what RecordingModel predicts
    np.testing.assert_array_equal(t.val_pred, want)
    assert t.val_conf.shape == (50,) and (t.val_conf > 0.9).all()  # logit 5 vs 0: p = 0.94
    assert t.history.val_acc[-1] == pytest.approx(np.mean(want == t.val_labels))


def test_evaluate_validation():
    model = build_model("tiny")
    with pytest.raises(ValueError, match="`labels` must have 3 entries"):
        evaluate(model, np.zeros((3, 28, 28), np.uint8), np.zeros(2))
    with pytest.raises(ValueError, match="`images` must not be empty"):
        evaluate(model, np.zeros((0, 28, 28), np.uint8), np.zeros(0))
    with pytest.raises(ValueError, match="`batch_size`"):
        evaluate(model, np.zeros((3, 28, 28), np.uint8), np.zeros(3), batch_size=0)


def test_one_softmax():
    """nn uses the core's softmax: stable for large logits, float32 kept float32."""
    from convviz import activations
    from convviz.nn import layers, losses, model

    assert losses.softmax is activations.softmax
    assert layers.softmax is activations.softmax and model.softmax is activations.softmax
    p = losses.softmax(np.array([[1000.0, 0.0, -1000.0]], np.float32))
    assert p.dtype == np.float32 and p.tolist() == [[1.0, 0.0, 0.0]]
    assert build_model("tiny").predict_proba(np.zeros((2, 28, 28))).dtype == np.float32


def test_the_loss_of_a_part_of_a_batch_is_its_share_of_the_whole_batch():
    """``mean_over``: the gradient rows are the whole batch's bit for bit, and the parts'
    losses add up to the whole batch's mean (checked against a loop in float64)."""
    from convviz.nn.losses import softmax_cross_entropy

    rng = np.random.default_rng(8)
    logits = rng.normal(0, 3, (13, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 13)
    loss, d = softmax_cross_entropy(logits, labels)
    parts = [
        softmax_cross_entropy(logits[a:b], labels[a:b], mean_over=13) for a, b in ((0, 7), (7, 13))
    ]
    assert np.array_equal(np.concatenate([p[1] for p in parts]), d)
    assert parts[0][1].dtype == np.float32
    z = logits.astype(np.float64)
    by_loop = 0.0
    for row, label in zip(z, labels, strict=True):
        by_loop -= row[label] - row.max() - np.log(np.exp(row - row.max()).sum())
    assert sum(p[0] for p in parts) == pytest.approx(by_loop / 13, rel=1e-6)
    assert loss == pytest.approx(by_loop / 13, rel=1e-6)


# --- the real thing -------------------------------------------------------------------------


def tiny_config(**kw) -> TrainConfig:
    base = {"model": "tiny", "train_size": 512, "val_size": 200, "eval_every": 4, "batch_size": 64}
    base.update(kw)
    return TrainConfig(**base)


def test_same_seed_same_history_other_seed_other_history():
    runs = []
    for seed, chunks in ((0, [12]), (0, [5, 7]), (1, [5, 7])):
        t = Trainer(tiny_config(seed=seed, epochs=2))
        for n in chunks:  # how the steps are chunked does not matter
            t.train_steps(n)
        h = t.history.to_dict()
        h.pop("images_per_s")  # wall-clock, not part of the result
        runs.append((h, t.model.parameters(), t.confusion))
    (h0, p0, c0), (h1, p1, c1), (h2, _, _) = runs
    assert h0 == h1
    for (n0, a0, _), (n1, a1, _) in zip(p0, p1, strict=True):
        assert n0 == n1
        np.testing.assert_array_equal(a0, a1)
    np.testing.assert_array_equal(c0, c1)
    assert h0["loss"] != h2["loss"]


def test_real_model_gets_the_data_and_the_config():
    t = Trainer(tiny_config(optimizer="rmsprop", lr=0.002, weight_decay=1e-4))
    assert type(t.optimizer).__name__ == "RMSprop"
    assert t.optimizer.weight_decay == 1e-4
    assert len(t.train_images) == 512 and len(t.val_images) == 200
    assert t.train_images.dtype == np.uint8
    before = [p.copy() for _, p, _ in t.model.parameters()]
    t.train_steps(1)
    after = [p for _, p, _ in t.model.parameters()]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(p.dtype == np.float32 for p in after)


@pytest.mark.slow
def test_tiny_learns_mnist():
    # 4,000 images, 3 epochs (189 steps): >= 90% on the first 1,000 test images.
    t = Trainer(
        TrainConfig(
            model="tiny",
            train_size=4000,
            val_size=1000,
            epochs=3,
            lr=0.004,
            schedule="onecycle",
            eval_every=0,
        )
    )
    while not t.finished:
        t.train_steps(50)
    acc = t.test_accuracy(1000)
    assert acc >= 0.90, f"tiny reached only {acc:.3f} on 1000 test images"
    assert t.history.val_acc[-1] >= 0.88
    assert np.mean(t.history.loss[-20:]) < np.mean(t.history.loss[:20]) / 3


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"optimizer": "lbfgs"}, "`optimizer` must be one of"),
        ({"lr": 0}, "`lr` must be a number > 0"),
        ({"lr": float("inf")}, "`lr` must be a number > 0"),
        ({"batch_size": 0}, "`batch_size` must be an integer >= 1"),
        ({"epochs": 1.5}, "`epochs` must be an integer >= 1"),
        ({"val_batch_size": 0}, "`val_batch_size` must be an integer >= 1"),
        ({"val_size": -1}, "`val_size` must be an integer >= 0"),
        ({"eval_every": -2}, "`eval_every` must be an integer >= 0"),
        ({"seed": -1}, "`seed` must be an integer >= 0"),
        ({"train_size": 0}, "`train_size` must be None or an integer >= 1"),
        ({"schedule": "step"}, "`schedule` must be one of"),
        ({"warmup": 1.0}, r"`warmup` must be None or in \[0, 1\)"),
        ({"schedule": "onecycle", "warmup": 0.0}, "`warmup` must be > 0"),
        ({"final_lr_ratio": 2.0}, r"`final_lr_ratio` must be in \(0, 1\]"),
        ({"final_lr_ratio": 0.0}, r"`final_lr_ratio` must be in \(0, 1\]"),
        ({"weight_decay": -1.0}, "`weight_decay` must be >= 0"),
        ({"momentum": 1.0}, r"`momentum` must be in \[0, 1\)"),
        ({"momentum": 0.9}, "`momentum` applies to 'sgd' and 'rmsprop'"),
    ],
)
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw).validate()


def test_trainer_validates_its_config():
    with pytest.raises(ValueError, match="`batch_size`"):
        Trainer(TrainConfig(batch_size=0), model=RecordingModel(), data=tagged_mnist())


def test_train_steps_validates_n():
    t, _ = fake_trainer()
    with pytest.raises(ValueError, match="`n` must be an integer >= 0"):
        t.train_steps(-1)


def test_importing_the_trainer_leaves_streamlit_out():
    code = "import sys, convviz.nn.train, convviz.cli; print('streamlit' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
