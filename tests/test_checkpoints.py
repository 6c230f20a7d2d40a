"""Checkpoints in one process: exact resume, bounds, refusals of damaged files, faults as codes.

Oracle for every resume: a plain serial :class:`Trainer` with the same config and
seed, never interrupted. The kill tests (a real SIGKILL of a process) are in
tests/test_restart.py.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import math
import os
import pickle
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.nn import TrainConfig, Trainer, load_mnist
from convviz.nn.data import MnistError
from convviz.runs import RunManager, RunOptions
from convviz.runs import store as store_mod
from convviz.runs.observe import RecordingTrainer
from convviz.runs.store import FORMAT, CheckpointError, RunStore, default_runs_dir

TIMEOUT = 90.0
TOKEN = "owner-secret-token"
OPTS = RunOptions(test_size=100, sample=(0, 3), probe_index=4, target_chunk_s=0.05)


def small(**kw) -> TrainConfig:
    base = {"model": "tiny", "train_size": 384, "val_size": 100, "batch_size": 32, "eval_every": 5}
    return TrainConfig(**{**base, **kw})  # 12 steps per epoch


@pytest.fixture(scope="module")
def data():
    return load_mnist()


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def manager(data, runs_dir):
    m = RunManager(max_active=2, abandon_after=math.inf, data=data, runs_dir=runs_dir)
    yield m
    m.shutdown()


def restart(data, runs_dir, **kw) -> RunManager:
    """A new manager over the same runs directory: what the server sees after a restart."""
    return RunManager(max_active=2, abandon_after=math.inf, data=data, runs_dir=runs_dir, **kw)


def serial(config: TrainConfig, steps: int) -> Trainer:
    t = Trainer(replace(config))
    t.train_steps(steps)
    return t


def on_disk(runs_dir, run_id: str, pred) -> dict:
    """Wait until the checkpoint of ``run_id`` satisfies ``pred(meta)``; its metadata."""
    store = RunStore(runs_dir)
    deadline = time.monotonic() + TIMEOUT
    while True:
        ckpt = store.load(run_id)
        if ckpt is not None and pred(ckpt.meta):
            return ckpt.meta
        assert time.monotonic() < deadline, "the checkpoint never got there"
        time.sleep(0.02)


def stepped(run, n: int, token=TOKEN):
    run.step(n, token=token)
    return run.wait(lambda s: not run.busy and s.checkpoint_step == s.step, TIMEOUT)


def assert_same_history(snap, trainer: Trainer) -> None:
    h = trainer.history
    for key in ("step", "loss", "acc", "lr", "val_step", "val_loss", "val_acc"):
        assert snap.history[key] == tuple(getattr(h, key)), key


# --------------------------------------------------------------------------- round trip
@pytest.mark.parametrize(
    "cfg",
    [
        small(epochs=2),
        small(epochs=2, optimizer="sgd", momentum=0.9, lr=0.05, schedule="cosine"),
        small(epochs=2, optimizer="rmsprop", schedule="onecycle", weight_decay=1e-4),
    ],
    ids=["adam", "sgd-momentum-cosine", "rmsprop-onecycle"],
)
def test_a_restored_run_resumes_exactly_like_an_uninterrupted_one(data, runs_dir, cfg):
    m = restart(data, runs_dir)
    run = m.create(cfg, options=OPTS, owner=TOKEN)
    before = stepped(run, 7)  # mid-epoch: the shuffled order and generator state matter
    assert before.checkpoint_step == 7 and before.checkpoint_error is None
    m.shutdown()  # the server goes away; the checkpoint stays

    m2 = restart(data, runs_dir)
    try:
        again = m2.get(run.id)
        assert again is not None and again is not run
        snap = again.snapshot()
        assert (snap.state, snap.step, snap.restored) == ("paused", 7, True)
        assert_same_history(snap, serial(cfg, 7))
        assert [f.step for f in snap.timeline] == [f.step for f in before.timeline]
        for a, b in zip(snap.timeline, before.timeline, strict=True):
            np.testing.assert_array_equal(a.kernels[1], b.kernels[1])
            np.testing.assert_array_equal(a.probe_probs, b.probe_probs)
            assert (a.val_acc, a.loss, a.lr) == (b.val_acc, b.loss, b.lr)
        assert snap.chunks == before.chunks
        assert snap.probe_index == OPTS.probe_index and snap.sample_indices == OPTS.sample
        assert m2.get(run.id) is again  # restored once
        again.start(token=TOKEN)
        done = again.wait(lambda s: s.state == "finished", TIMEOUT)
        ref = serial(cfg, 24)
        assert_same_history(done, ref)
        for (_, p, _), (_, q, _) in zip(
            done.model.parameters(), ref.model.parameters(), strict=True
        ):
            np.testing.assert_array_equal(p, q)
    finally:
        m2.shutdown()


def test_a_learning_rate_change_while_paused_is_checkpointed_and_kept(data, manager, runs_dir):
    cfg = small(epochs=2)
    run = manager.create(cfg, options=OPTS, owner=TOKEN)
    stepped(run, 3)
    run.set_lr(0.01, token=TOKEN)
    on_disk(runs_dir, run.id, lambda m: m["trainer"]["config"]["lr"] == 0.01)
    manager.shutdown()
    m2 = restart(data, runs_dir)
    try:
        again = m2.get(run.id)
        assert again.snapshot().config["lr"] == 0.01
        again.start(token=TOKEN)
        done = again.wait(lambda s: s.state == "finished", TIMEOUT)
        ref = Trainer(replace(cfg))
        ref.train_steps(3)
        ref.set_lr(0.01)
        ref.train_steps(100)
        assert_same_history(done, ref)
    finally:
        m2.shutdown()


def test_the_checkpoint_keeps_the_owner_hash_never_the_token(data, manager, runs_dir):
    run = manager.create(small(), options=OPTS, owner=TOKEN)
    stepped(run, 2)
    raw = (runs_dir / f"{run.id}.npz").read_bytes()
    assert TOKEN.encode() not in raw
    ckpt = RunStore(runs_dir).load(run.id)
    assert ckpt.meta["owner_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    manager.shutdown()
    m2 = restart(data, runs_dir)
    try:
        again = m2.get(run.id)
        assert again.owned_by(TOKEN) and not again.owned_by("someone-else")
        assert not again.owned_by(ckpt.meta["owner_sha256"])  # the hash is not a token
        with pytest.raises(CodedError) as err:
            again.start(token="someone-else")
        assert err.value.code == "train.err.not_owner"
        assert again.start(token=TOKEN) in ("running", "finished")
    finally:
        m2.shutdown()


def test_a_checkpoint_at_every_validation_and_when_it_settles(manager, runs_dir):
    run = manager.create(small(epochs=1, eval_every=4), options=OPTS, owner=TOKEN, start=True)
    seen = set()
    store = RunStore(runs_dir)
    deadline = time.monotonic() + TIMEOUT
    while run.snapshot().state != "finished":
        assert time.monotonic() < deadline
        snap = run.snapshot()
        if snap.checkpoint_step is not None:
            seen.add(snap.checkpoint_step)
        time.sleep(0.005)
    snap = run.wait(lambda s: s.checkpoint_step == 12, TIMEOUT)
    seen.add(snap.checkpoint_step)
    meta = on_disk(runs_dir, run.id, lambda m: m["state"] == "finished")
    assert meta["trainer"]["step"] == 12
    # Chunks end on validations (4, 8, 12), so each checkpoint holds a validation's step.
    assert seen <= {0, 4, 8, 12} and 12 in seen
    assert snap.history["val_step"] == (4, 8, 12)
    assert store.ids() == [run.id]  # one file per run, replaced


def test_a_finished_run_comes_back_finished(data, manager, runs_dir):
    run = manager.create(small(), options=OPTS, owner=TOKEN, start=True)
    done = run.wait(lambda s: s.state == "finished", TIMEOUT)
    on_disk(runs_dir, run.id, lambda m: m["state"] == "finished")
    manager.shutdown()
    m2 = restart(data, runs_dir)
    try:
        snap = m2.get(run.id).wait(lambda s: s.model is not None, TIMEOUT)
        assert snap.state == "finished" and snap.test_acc == done.test_acc
        assert snap.history == done.history and len(snap.timeline) == len(done.timeline)
    finally:
        m2.shutdown()


def test_an_uploaded_or_copied_start_comes_back_with_its_own_starting_weights(
    data, manager, runs_dir
):
    src = manager.create(small(), options=OPTS, owner=TOKEN)
    stepped(src, 3)
    copy = manager.copy(src.id, owner="other")
    stepped(copy, 2, token="other")
    start = [np.array(p) for _, p, _ in src.snapshot().model.parameters()]
    manager.shutdown()
    m2 = restart(data, runs_dir)
    try:
        again = m2.get(copy.id)
        assert again.snapshot().init == "copy" and again.snapshot().step == 2
        again.reset(token="other")  # back to the copied weights, from the checkpoint
        snap = again.wait(lambda s: s.step == 0 and not again.busy, TIMEOUT)
        for p, q in zip(snap.model.parameters(), start, strict=True):
            np.testing.assert_array_equal(p[1], q)
    finally:
        m2.shutdown()


# --------------------------------------------------------------------------- bounds
def test_discarding_or_reaping_deletes_the_file_shutdown_keeps_it(data, runs_dir):
    m = RunManager(max_active=2, abandon_after=0.2, janitor_interval=3600, data=data,
                   runs_dir=runs_dir)  # fmt: skip
    try:
        a = m.create(small(), options=OPTS, owner=TOKEN)
        b = m.create(small(), options=OPTS, owner=TOKEN)
        c = m.create(small(), options=OPTS, owner=TOKEN)
        for run in (a, b, c):
            stepped(run, 1)
        store = RunStore(runs_dir)
        assert set(store.ids()) == {a.id, b.id, c.id}
        a.discard(token=TOKEN)
        a._thread.join(TIMEOUT)
        assert not store.exists(a.id)
        c.touch(lambda: True)  # c's session is alive: the janitor keeps it
        time.sleep(0.3)
        assert m.reap() == [b.id]
        b._thread.join(TIMEOUT)
        assert store.ids() == [c.id]
    finally:
        m.shutdown()
    assert RunStore(runs_dir).ids() == [c.id]


def test_prune_keeps_the_newest_files_and_drops_old_ones(tmp_path):
    store = RunStore(tmp_path, max_files=3, max_age_s=3600)
    ids = [f"{'abcdefghijklmnop'}{i:06d}" for i in range(6)]
    now = time.time()
    for i, rid in enumerate(ids):
        store.save(rid, {"state": "paused"}, {"x": np.arange(3)})
        os.utime(store.path(rid), (now - 100 * (6 - i), now - 100 * (6 - i)))
    os.utime(store.path(ids[5]), (now - 7200, now - 7200))  # too old
    gone = store.prune(keep={ids[0]})
    assert sorted(store.ids()) == sorted([ids[0], ids[4], ids[3]])
    assert set(gone) == {ids[1], ids[2], ids[5]}


def test_default_runs_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(tmp_path / "r"))
    assert default_runs_dir() == tmp_path / "r"
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", "off")
    assert default_runs_dir() is None
    monkeypatch.delenv("CONVVIZ_RUNS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_runs_dir() == tmp_path / "cache" / "convviz" / "runs"


# --------------------------------------------------------------------------- atomic writes
def test_a_write_that_fails_before_the_rename_leaves_the_previous_checkpoint(monkeypatch, tmp_path):
    store = RunStore(tmp_path)
    rid = "A" * 22
    store.save(rid, {"v": 1}, {"x": np.arange(5)})

    def die(tmp: Path) -> None:
        assert tmp.is_file() and tmp.parent == tmp_path  # written in the same directory
        raise KeyboardInterrupt  # anything at all, up to an interrupt

    monkeypatch.setattr(store_mod, "before_replace", die)
    with pytest.raises(KeyboardInterrupt):
        store.save(rid, {"v": 2}, {"x": np.arange(7)})
    ckpt = store.load(rid)
    assert ckpt.meta["v"] == 1 and ckpt.arrays["x"].tolist() == list(range(5))
    assert [p.name for p in tmp_path.iterdir()] == [f"{rid}.npz"]  # no temp file left


def test_leftover_temp_files_are_removed_when_a_store_opens(tmp_path):
    dead = tmp_path / ".AAAAAAAAAAAAAAAAAAAAAA.x1y2.tmp"
    dead.write_bytes(b"half a checkpoint")
    in_flight = tmp_path / ".BBBBBBBBBBBBBBBBBBBBBB.x1y2.tmp"  # maybe another process's write
    in_flight.write_bytes(b"half a checkpoint")
    old = time.time() - RunStore.TEMP_MAX_AGE_S - 1
    os.utime(dead, (old, old))
    RunStore(tmp_path)
    assert list(tmp_path.iterdir()) == [in_flight]


# --------------------------------------------------------------------------- damaged files
def _valid_bytes(tmp_path) -> bytes:
    store = RunStore(tmp_path / "src")
    store.save("B" * 22, {"state": "paused"}, {"x": np.arange(1000, dtype=np.float64)})
    return store.path("B" * 22).read_bytes()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class _Boom:
    """Unpickling this would create a file: proof that nothing is ever unpickled."""

    def __reduce__(self):
        return (Path.touch, (Path(os.environ["CONVVIZ_PICKLE_CANARY"]),))


def _damaged_cases(tmp_path, rid: str) -> dict[str, bytes]:
    good = _valid_bytes(tmp_path)
    meta_ok = {"format": FORMAT, "run_id": rid, "state": "paused"}
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    obj = np.empty(1, dtype=object)
    obj[0] = _Boom()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("__meta__.npy", b"not an npy")
    npy = io.BytesIO()
    np.save(npy, np.arange(3))
    return {
        "empty": b"",
        "random bytes": os.urandom(4096),
        "cut in half": good[: len(good) // 2],
        "cut at the end": good[:-20],
        "one byte flipped": bytes(flipped),
        "pickled object array": _npz(__meta__=np.array(json.dumps(meta_ok)), x=obj),
        "a raw pickle": pickle.dumps(_Boom()),
        "zip with a broken member": zbuf.getvalue(),
        "bare npy": npy.getvalue(),
        "no metadata": _npz(x=np.arange(3)),
        "metadata not json": _npz(__meta__=np.array("{nope")),
        "metadata a list": _npz(__meta__=np.array("[1, 2]")),
        "metadata a number array": _npz(__meta__=np.arange(3)),
        "another format": _npz(__meta__=np.array(json.dumps({**meta_ok, "format": "x/9"}))),
        "another run's file": _npz(__meta__=np.array(json.dumps({**meta_ok, "run_id": "D" * 22}))),
        "fields missing": _npz(__meta__=np.array(json.dumps(meta_ok))),
        "fields of the wrong type": _npz(
            __meta__=np.array(
                json.dumps({**meta_ok, "initial_config": [1], "options": "x", "factory": 0})
            )
        ),
    }


def test_damaged_checkpoints_are_refused_with_a_code_never_a_crash_never_unpickled(
    data, tmp_path, monkeypatch
):
    canary = tmp_path / "unpickled"
    monkeypatch.setenv("CONVVIZ_PICKLE_CANARY", str(canary))
    runs_dir = tmp_path / "runs"
    m = restart(data, runs_dir)
    names = list(_damaged_cases(tmp_path, "C" * 22))
    try:
        for i, name in enumerate(names):
            rid = "C" * 21 + "abcdefghijklmnopqrstuvwxyz"[i]
            raw = _damaged_cases(tmp_path, rid)[name]
            (runs_dir / f"{rid}.npz").write_bytes(raw)
            assert m.get(rid) is None, name
            err = m.problem(rid)
            assert isinstance(err, CheckpointError), name
            assert err.code in ("runs.err.checkpoint_damaged", "runs.err.checkpoint_format")
            for lang in ("en", "pt"):
                text = translator(lang)(err.code, **err.params)
                assert str(runs_dir) not in text and "Error" not in text and text != err.code
            assert str(tmp_path) not in repr(err.params)
            assert m.get(rid) is None  # asked again: refused again, from the record
        assert not canary.exists()
        assert m.run_ids == []
        # Everything else works: a new run trains and checkpoints in the same directory.
        run = m.create(small(), options=OPTS, owner=TOKEN)
        assert stepped(run, 2).checkpoint_error is None
    finally:
        m.shutdown()


@pytest.mark.parametrize(
    "run_id", ["../../etc/passwd", "/etc/passwd", "..", "", "a" * 300, "x.npz", "a b c d e f g h"]
)
def test_run_ids_from_a_url_never_name_a_file_outside(manager, run_id):
    assert manager.get(run_id) is None and manager.problem(run_id) is None
    assert manager.store.path(run_id) is None


def test_a_replica_restores_only_its_own_runs(data, runs_dir):
    r1 = restart(data, runs_dir, replica="r1")
    run = r1.create(small(), options=OPTS, owner=TOKEN)
    assert run.id.startswith("r1-")
    stepped(run, 1)
    r1.shutdown()
    r2 = restart(data, runs_dir, replica="r2")
    r1b = restart(data, runs_dir, replica="r1")
    try:
        assert r2.get(run.id) is None  # a shared directory never yields two copies
        assert r1b.get(run.id) is not None
    finally:
        r2.shutdown()
        r1b.shutdown()
    with pytest.raises(ValueError, match="replica"):
        RunManager(replica="../x", abandon_after=math.inf, data=data)


# --------------------------------------------------------------------------- faults
SECRET = "/srv/secret/place/checkpoint.tmp"


def test_a_full_disk_is_recorded_as_a_code_and_training_goes_on(
    monkeypatch, manager, runs_dir, caplog
):
    def full(tmp: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", SECRET)

    run = manager.create(small(epochs=2), options=OPTS, owner=TOKEN)
    stepped(run, 3)
    monkeypatch.setattr(store_mod, "before_replace", full)
    with caplog.at_level(logging.WARNING, logger="convviz.runs.run"):
        run.start(token=TOKEN)
        snap = run.wait(lambda s: s.state == "finished", TIMEOUT)
    assert snap.checkpoint_error == "runs.err.disk_full"
    assert snap.checkpoint_step == 3  # the last good one, still on disk
    assert_same_history(snap, serial(small(epochs=2), 24))  # trained on, undisturbed
    for lang in ("en", "pt"):
        text = translator(lang)(snap.checkpoint_error)
        assert SECRET not in text and "No space" not in text and len(text) > 20
    assert any(SECRET in (r.exc_text or "") for r in caplog.records)  # details: the log only
    assert RunStore(runs_dir).load(run.id).meta["trainer"]["step"] == 3
    assert [p.name for p in runs_dir.iterdir()] == [f"{run.id}.npz"]  # no temp file left
    monkeypatch.setattr(store_mod, "before_replace", None)  # space again
    run.set_probe(9, token=TOKEN)  # settles again: the next checkpoint succeeds
    snap = run.wait(lambda s: s.checkpoint_step == 24 and not run.busy, TIMEOUT)
    assert snap.checkpoint_error is None


def test_another_write_error_has_its_own_code(monkeypatch, manager):
    def denied(tmp: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", SECRET)

    monkeypatch.setattr(store_mod, "before_replace", denied)
    run = manager.create(small(), options=OPTS, owner=TOKEN)
    run.step(2, token=TOKEN)
    snap = run.wait(lambda s: s.step == 2 and not run.busy and s.checkpoint_error, TIMEOUT)
    assert snap.checkpoint_error == "runs.err.checkpoint_write"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RuntimeError(f"boom at {SECRET}"), "runs.fail.internal"),
        (MemoryError("Unable to allocate 12.0 GiB"), "runs.fail.memory"),
    ],
)
def test_an_exception_inside_a_chunk_fails_that_run_only_with_a_code(
    monkeypatch, data, manager, runs_dir, exc, code
):
    manager.max_active = 1
    real = RecordingTrainer.train_steps
    victims: set[int] = set()

    def train_steps(self, n):
        if id(self) in victims and self.step >= 5:
            raise exc
        return real(self, n)

    monkeypatch.setattr(RecordingTrainer, "train_steps", train_steps)
    bad = manager.create(small(epochs=2), options=OPTS, owner=TOKEN)
    victims.add(id(bad._trainer))
    good = manager.create(small(), options=OPTS, owner=TOKEN)
    bad.start(token=TOKEN)
    assert good.start(token=TOKEN) == "queued"  # the cap: 1
    snap = bad.wait(lambda s: s.state == "failed", TIMEOUT)
    assert snap.fault == code
    for lang in ("en", "pt"):
        text = translator(lang)(snap.fault)
        assert SECRET not in text and "GiB" not in text and text != code
    assert good.wait(lambda s: s.state == "finished", TIMEOUT).test_acc is not None  # slot freed
    # The failure is recorded in the last good checkpoint and survives a restart.
    ckpt = RunStore(runs_dir).load(bad.id)
    assert (ckpt.meta["state"], ckpt.meta["fault"]) == ("failed", code)
    assert ckpt.meta["trainer"]["step"] == 5  # the validation at 5, before the fault
    monkeypatch.setattr(RecordingTrainer, "train_steps", real)
    manager.shutdown()
    m2 = restart(data, runs_dir)
    try:
        again = m2.get(bad.id).snapshot()
        assert (again.state, again.fault, again.step) == ("failed", code, 5)
    finally:
        m2.shutdown()


def test_missing_mnist_while_restoring_is_a_coded_refusal(monkeypatch, data, manager, runs_dir):
    run = manager.create(small(), options=OPTS, owner=TOKEN)
    stepped(run, 1)
    manager.shutdown()

    def missing(root=None):
        raise MnistError(
            "err.nn.mnist_missing", path=Path("/srv/secret/mnist"), missing="t10k-labels.gz"
        )

    monkeypatch.setattr("convviz.runs.manager.load_mnist", missing)
    m2 = RunManager(max_active=1, abandon_after=math.inf, runs_dir=runs_dir)  # no data given
    try:
        assert m2.get(run.id) is None
        err = m2.problem(run.id)
        assert err.code == "err.nn.mnist_missing" and "/srv" not in str(err)
        monkeypatch.setattr("convviz.runs.manager.load_mnist", lambda root=None: data)
        assert m2.get(run.id) is not None  # the files are back: so is the run
    finally:
        m2.shutdown()
