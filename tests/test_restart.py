"""Runs survive SIGKILL: of a process mid-training, and of one in the middle of a checkpoint write.

Each test runs a child Python process with a :class:`RunManager` over a runs
directory in ``tmp_path``, kills it with SIGKILL (no clean-up of any kind runs),
then "restarts": a new manager in this process over the same directory.
Oracle: a serial headless :class:`Trainer`, never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from convviz.nn import TrainConfig, Trainer, load_mnist
from convviz.runs import RunManager
from convviz.runs.run import EARLY_STEPS
from convviz.runs.store import RunStore, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120.0
TOKEN = "tok-of-the-owner"
# 32 steps per epoch, a validation every 8 steps, 64 steps in all.
CFG = TrainConfig(
    model="tiny", train_size=1024, val_size=200, batch_size=32, epochs=2, eval_every=8
)

CHILD = """
import json, math, sys, time
from convviz.nn import TrainConfig, load_mnist
from convviz.runs import RunManager, RunOptions, store
from convviz.runs.observe import RecordingTrainer

runs_dir, cfg, mode = sys.argv[1], TrainConfig(**json.loads(sys.argv[2])), sys.argv[3]
real = RecordingTrainer.train_steps

def slow(self, n):  # slower chunks, the same numbers: the parent has time to kill mid-run
    time.sleep(0.1)
    return real(self, n)

RecordingTrainer.train_steps = slow
if mode == "block-third-write":
    writes = []

    def hook(tmp):  # the third checkpoint: written and fsynced, never renamed
        writes.append(tmp)
        if len(writes) >= 3:
            print("WRITING", tmp, flush=True)
            time.sleep(3600)

    store.before_replace = hook
m = RunManager(max_active=1, abandon_after=math.inf, data=load_mnist(), runs_dir=runs_dir)
opts = RunOptions(test_size=100, probe_index=3, target_chunk_s=0.05)
run = m.create(cfg, options=opts, owner=sys.argv[4], start=True)
print("RUN", run.id, flush=True)
last = None
while True:
    s = run.snapshot()
    if s.checkpoint_step != last:
        last = s.checkpoint_step
        print("CKPT", last, s.step, s.state, flush=True)
    time.sleep(0.01)
"""

BIG_WRITER = """
import sys
import numpy as np
from convviz.runs.store import RunStore

store = RunStore(sys.argv[1])
big = np.random.default_rng(0).random(4_000_000)  # 32 MB a checkpoint
i = 0
while True:
    i += 1
    store.save("K" * 22, {"i": i}, {"x": big + i})
    print("SAVED", i, flush=True)
"""


def spawn(tmp_path: Path, source: str, *args: str) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def read_until(proc: subprocess.Popen, pred) -> list[str]:
    """Lines of the child's output until one satisfies ``pred``; that line's words."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the child ended early (code {proc.poll()})")
        words = line.split()
        if pred(words):
            return words
    raise AssertionError("the child never got there")


def kill(proc: subprocess.Popen) -> None:
    assert proc.poll() is None, "the child was supposed to be still running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def serial(steps: int) -> Trainer:
    t = Trainer(replace(CFG))
    t.train_steps(steps)
    return t


def same_history(snap, trainer: Trainer) -> None:
    for key in ("step", "loss", "acc", "lr", "val_step", "val_loss", "val_acc"):
        assert snap.history[key] == tuple(getattr(trainer.history, key)), key


@pytest.fixture(scope="module")
def data():
    return load_mnist()


def test_killed_mid_training_the_run_comes_back_and_resumes_exactly(tmp_path, data):
    runs_dir = tmp_path / "runs"
    proc = spawn(tmp_path, CHILD, str(runs_dir), json.dumps(asdict(CFG)), "train", TOKEN)
    try:
        run_id = read_until(proc, lambda w: w[0] == "RUN")[1]
        read_until(proc, lambda w: w[0] == "CKPT" and w[1] != "None" and int(w[1]) >= 16)
        kill(proc)  # mid-training: SIGKILL, no clean-up at all
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    m = RunManager(max_active=1, abandon_after=math.inf, data=data, runs_dir=runs_dir)
    try:
        run = m.get(run_id)
        assert run is not None, m.problem(run_id)
        snap = run.snapshot()
        s = snap.step
        assert snap.state == "paused" and snap.restored and s < 64
        assert s >= 16 and s % 8 == 0  # a validation's checkpoint
        ref = serial(s)
        same_history(snap, ref)
        assert [f.step for f in snap.timeline] == sorted(
            {0, *[e for e in EARLY_STEPS if e <= s], *range(8, s + 1, 8)}
        )
        np.testing.assert_array_equal(
            snap.timeline[-1].kernels[1], dict(ref.model.layer_weights())["conv2d"]["kernel"]
        )
        assert snap.timeline[-1].val_acc == ref.history.val_acc[-1]
        with pytest.raises(ValueError, match="Only the session"):
            run.start(token="a-watcher")
        run.start(token=TOKEN)
        done = run.wait(lambda x: x.state == "finished", TIMEOUT)
        full = serial(64)
        same_history(done, full)  # exactly as if it had never stopped
        for (_, p, _), (_, q, _) in zip(
            done.model.parameters(), full.model.parameters(), strict=True
        ):
            np.testing.assert_array_equal(p, q)
        assert [f.step for f in done.timeline][-1] == 64
    finally:
        m.shutdown()


def test_killed_during_a_checkpoint_write_the_previous_checkpoint_stays(tmp_path, data):
    runs_dir = tmp_path / "runs"
    proc = spawn(
        tmp_path, CHILD, str(runs_dir), json.dumps(asdict(CFG)), "block-third-write", TOKEN
    )
    try:
        run_id = read_until(proc, lambda w: w[0] == "RUN")[1]
        tmp = Path(read_until(proc, lambda w: w[0] == "WRITING")[1])
        kill(proc)  # between the fsync of the new file and its rename
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    store = RunStore(runs_dir)
    assert tmp.is_file()  # the dead writer's temporary file (younger than a minute: kept)
    old = store.load(run_id)
    with open(tmp, "rb") as fh:
        new = read_checkpoint(fh)  # the write itself was whole, only never renamed
    p = old.meta["trainer"]["step"]
    assert p < new.meta["trainer"]["step"]
    m = RunManager(max_active=1, abandon_after=math.inf, data=data, runs_dir=runs_dir)
    try:
        snap = m.get(run_id).snapshot()
        assert snap.step == p and snap.restored
        same_history(snap, serial(p))
    finally:
        m.shutdown()
    assert store.clean_temps(min_age_s=0) == [tmp]


@pytest.mark.parametrize("delay", [0.02, 0.11, 0.23, 0.37])
def test_sigkill_at_any_moment_of_large_writes_leaves_a_whole_checkpoint(tmp_path, delay):
    runs_dir = tmp_path / "runs"
    proc = spawn(tmp_path, BIG_WRITER, str(runs_dir))
    try:
        read_until(proc, lambda w: w == ["SAVED", "1"])
        time.sleep(delay)  # somewhere in a later 32 MB write, its fsync or its rename
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ckpt = RunStore(runs_dir).load("K" * 22)
    i = ckpt.meta["i"]
    assert i >= 1
    big = np.random.default_rng(0).random(4_000_000)
    np.testing.assert_array_equal(ckpt.arrays["x"], big + i)


@pytest.mark.browser
def test_the_train_page_brings_a_run_back_to_its_owner_after_a_restart(tmp_path, monkeypatch):
    """The owner's browser keeps its cookie across the restart: the restored run is theirs."""
    from tests.support.browser import chromium_browser, require_browser, wait_ready
    from tests.support.train_browser import (
        progress_step,
        start_training,
        train_server,
        wait_for_panel,
    )

    require_browser()
    runs_dir = tmp_path / "runs"
    monkeypatch.setenv("CONVVIZ_RUNS_DIR", str(runs_dir))
    shots = ROOT / "artifacts" / "screenshots" / "runstore"
    shots.mkdir(parents=True, exist_ok=True)
    with chromium_browser() as browser:
        ctx = browser.new_context(viewport={"width": 1280, "height": 720})
        page = ctx.new_page()
        with train_server() as url:
            page.goto(url)
            wait_ready(page, 120_000)
            start_training(page, epochs=20, timeout=TIMEOUT)
            run_id = page.url.split("run=")[1].split("&")[0]
            deadline = time.monotonic() + TIMEOUT
            while not (runs_dir / f"{run_id}.npz").is_file():  # its first validation
                assert time.monotonic() < deadline
                page.wait_for_timeout(200)
        # The server is gone (stopped mid-training); a new one starts on another port.
        saved = RunStore(runs_dir).load(run_id).meta["trainer"]["step"]
        with train_server() as url:
            page.goto(f"{url}/?run={run_id}")  # cookies ignore the port: the owner's is sent
            wait_ready(page, 120_000)
            wait_for_panel(page, TIMEOUT)
            assert progress_step(page) >= saved
            resume = page.get_by_role("button", name="Resume", exact=True)
            assert resume.is_enabled()  # the owner's controls, not a watcher's
            assert page.get_by_role("button", name="Copy this run").count() == 0
            page.screenshot(path=str(shots / "restored_owner_1280x720.png"))
            page.set_viewport_size({"width": 1920, "height": 1080})
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "restored_owner_1920x1080.png"))
            first = progress_step(page)
            resume.click()
            deadline = time.monotonic() + TIMEOUT
            while progress_step(page) <= first:  # it trains on
                assert time.monotonic() < deadline, "the restored run did not resume"
                page.wait_for_timeout(300)
        ctx.close()
