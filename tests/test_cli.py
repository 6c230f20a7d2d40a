"""`python -m convviz`: summary, a short training run that saves a model, evaluate, errors."""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convviz.cli import _build_parser, main
from convviz.nn.data import load_mnist
from convviz.nn.model import load_model
from convviz.nn.presets import PRESETS, build_model

REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_summary_classic():
    code, out, err = run(["summary", "--model", "classic"])
    assert code == 0 and err == ""
    assert "93,322" in out
    assert out.strip() == build_model("classic").summary().strip()


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "convviz", "summary", "--model", "tiny"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Total params" in proc.stdout


def test_module_entry_point_bad_args_exit_2_with_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "convviz", "train", "--epochs", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        "convviz train: error: argument --epochs: must be >= 1, got 0 (see convviz train --help)"
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str, str]:
    path = tmp_path_factory.mktemp("cli") / "tiny.npz"
    argv = ["train", "--model", "tiny", "--train-size", "640", "--val-size", "200"]
    argv += ["--batch-size", "64", "--epochs", "2", "--lr", "0.003", "--progress"]
    argv += ["--out", str(path)]
    code, out, err = run(argv)
    assert code == 0, err
    return path, out, err


def test_train_writes_a_loadable_model_with_metadata(trained):
    path, _, _ = trained
    model = load_model(path)
    meta = model.metadata
    assert meta["command"].startswith("python -m convviz train --model tiny --train-size 640")
    assert meta["epochs"] == 2 and meta["model"] == "tiny"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", meta["date"])
    assert meta["config"]["lr"] == 0.003 and meta["config"]["train_size"] == 640
    assert [e["epoch"] for e in meta["epoch_log"]] == [1, 2]
    # The stored test accuracy is what the loaded model scores on the 10k test set.
    data = load_mnist()
    pred = model.predict(np.asarray(data.test_images, np.float32)[..., None] / 255)
    assert meta["test_accuracy"] == pytest.approx(np.mean(pred == data.test_labels))
    assert meta["test_accuracy"] > 0.5  # 20 steps already beat chance by far


def test_train_prints_one_line_per_epoch_and_the_test_accuracy(trained):
    path, out, err = trained
    lines = out.strip().splitlines()
    n_params = build_model("tiny").count_params()
    assert lines[0].startswith(
        f"training tiny ({n_params:,} parameters) on 640 images, validating on 200"
    )
    epoch_lines = [ln for ln in lines if ln.startswith("epoch ")]
    assert len(epoch_lines) == 2
    pattern = (
        r"epoch (\d)/2  loss \d\.\d{4}  acc \d\.\d{4}  val_loss \d\.\d{4}  val_acc \d\.\d{4}  "
        r"\d+\.\d s  [\d,]+ img/s"
    )
    for i, line in enumerate(epoch_lines, start=1):
        m = re.fullmatch(pattern, line)
        assert m and int(m.group(1)) == i, line
    assert re.fullmatch(
        r"test accuracy \d\.\d{4} \(\d+/10000\), test loss \d\.\d{4}, total \d+:\d\d", lines[-2]
    )
    assert lines[-1] == f"saved {path}"
    # The progress bar lives on stderr, rewritten in place.
    assert "\r" in err and "img/s" in err and "ETA" in err and "\n" not in err


def test_no_progress_bar_when_not_asked(tmp_path):
    code, out, err = run(["train", "--train-size", "64", "--val-size", "0", "--no-progress"])
    assert code == 0 and err == ""
    assert "val_acc" not in out  # no validation split
    assert "saved" not in out  # no --out, nothing written


def test_evaluate_command(trained):
    path, _, _ = trained
    code, out, _ = run(["evaluate", str(path)])
    assert code == 0
    acc = load_model(path).metadata["test_accuracy"]
    assert out.strip().startswith(f"{path}: test accuracy {acc:.4f}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "convviz: error: the following arguments are required: command"),
        (["fly"], "convviz: error: argument command: invalid choice: 'fly'"),
        (["train", "--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
        (["train", "--epochs", "two"], "argument --epochs: expected an integer, got 'two'"),
        (["train", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["train", "--lr", "-0.1"], "argument --lr: must be a finite number > 0, got -0.1"),
        (["train", "--lr", "nan"], "argument --lr: must be a finite number > 0, got nan"),
        (["train", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
        (["train", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["train", "--val-size", "60000"], r"convviz: error: `val_size` must be in [0, 60000)"),
        (["train", "--train-size", "60000"], "convviz: error: `train_size` must be <= 55000"),
        (["train", "--warmup", "1.5"], "convviz: error: `warmup` must be None or in [0, 1)"),
        (["summary", "--model", "x"], "convviz summary: error: argument --model: invalid choice"),
        (["evaluate", "/nonexistent/model.npz"], "convviz: error: no such file"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_line(argv, message):
    code, out, err = run(argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert message in err


def test_out_in_a_missing_directory_fails_before_training(tmp_path):
    code, out, err = run(["train", "--out", str(tmp_path / "missing" / "m.npz")])
    assert code == 2 and out == ""  # nothing printed: no training started
    assert err == f"convviz: error: --out: no such directory: {tmp_path / 'missing'}\n"


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_subcommand_help_is_readable(command, capsys):
    """A bare % in a help string made argparse print its internals (issue 13)."""
    assert main([command, "--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"usage: convviz {command}")
    for bad in ("%(", "Traceback", "TypeError", "option_strings", "{'"):
        assert bad not in out, f"{bad!r} in `convviz {command} --help`"
    for action in _subcommands()[command]._actions:  # every option is listed
        for flag in action.option_strings:
            assert flag in out
    if command == "train":
        for name in PRESETS:
            assert f"{name} (" in out  # the presets' descriptions, with their % intact
        assert "3 epochs (99.23%)" in out


def test_train_help_from_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "convviz", "train", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert "--reference" in proc.stdout and "option_strings" not in proc.stdout


def test_evaluate_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_bytes(b"hello")
    code, out, err = run(["evaluate", str(path)])
    assert code == 2 and out == ""
    assert err == f"convviz: error: {path}: This is not a model file saved by convviz\n"


def test_missing_mnist_names_the_directory(tmp_path, monkeypatch):
    monkeypatch.setattr("convviz.nn.data.DEFAULT_ROOT", tmp_path / "nowhere")
    code, out, err = run(["train", "--no-progress"])
    assert code == 2 and out == ""
    assert err.startswith("convviz: error: MNIST files not found: train-images-idx3-ubyte.gz")
    assert err.endswith(f" (in {tmp_path / 'nowhere'})\n")


def test_train_with_the_reference_layers(tmp_path):
    argv = ["train", "--train-size", "128", "--val-size", "64", "--no-progress", "--reference"]
    code, out, err = run(argv)
    assert code == 0 and err == ""
    assert re.search(r"test accuracy \d\.\d{4}", out)


def test_train_splits_batches_over_two_processes_unless_asked_for_threads(monkeypatch):
    """The default runs the helper process; ``--parallel threads`` runs the same numbers."""
    from convviz.nn import train
    from convviz.nn.parallel import ProcessPlan

    plans = []
    original = train.Trainer.close

    def close(self):  # the trainer closes its plan when it finishes: look at it then
        plans.append((type(self.plan), getattr(self.plan, "remote_passes", 0)))
        original(self)

    monkeypatch.setattr(train.Trainer, "close", close)
    started = ProcessPlan.__init__

    def start_and_wait(self, *a, **kw):  # a 20-step run is over before a helper starts
        started(self, *a, **kw)
        assert self.wait_ready(60)

    monkeypatch.setattr(ProcessPlan, "__init__", start_and_wait)
    argv = ["train", "--model", "tiny", "--train-size", "1280", "--val-size", "64"]
    argv += ["--batch-size", "64", "--epochs", "1", "--no-progress"]
    accuracies = []
    for extra in ([], ["--parallel", "threads"]):
        code, out, err = run(argv + extra)
        assert code == 0 and err == ""
        accuracies.append(float(re.search(r"test accuracy (\d\.\d{4})", out).group(1)))
    assert plans[0] == (ProcessPlan, 20)  # every step shared with the helper
    assert plans[1][0] is not ProcessPlan
    assert accuracies[0] == pytest.approx(accuracies[1], abs=0.002)  # float rounding only


@pytest.mark.parametrize(("name", "target"), [("tiny", 0.98), ("classic", 0.992)])
def test_shipped_models_reach_their_targets(name, target):
    path = REPO / "assets" / "models" / f"{name}.npz"
    model = load_model(path)
    data = load_mnist()
    pred = model.predict(np.asarray(data.test_images, np.float32)[..., None] / 255)
    acc = float(np.mean(pred == data.test_labels))
    assert acc >= target, f"{path.name}: {acc:.4f} < {target}"
    meta = model.metadata
    assert meta["model"] == name
    assert meta["test_accuracy"] == pytest.approx(acc)
    assert meta["command"].startswith(f"python -m convviz train --model {name} ")


def _config(argv: list[str]):
    from convviz.cli import recipe_config

    return recipe_config(_build_parser().parse_args(["train", *argv]))


def test_the_default_recipe_is_the_models_best():
    # Written out here, not read from convviz.nn.recipes: the README and --help promise these.
    c = _config(["--model", "classic"])
    assert (c.optimizer, c.lr, c.schedule, c.batch_size, c.epochs) == (
        "adam", 0.005, "onecycle", 128, 3
    )  # fmt: skip
    t = _config(["--model", "tiny"])
    assert (t.optimizer, t.lr, t.schedule, t.batch_size, t.epochs, t.train_size) == (
        "adam", 0.004, "onecycle", 64, 1, 25_000
    )  # fmt: skip
    assert (
        c.train_size is None
        and _config(["--model", "tiny", "--train-size", "900"]).train_size == 900
    )
    r = _config(["--model", "resnet"])
    assert (r.optimizer, r.lr, r.schedule, r.batch_size, r.epochs) == (
        "adam", 0.003, "onecycle", 64, 5
    )  # fmt: skip


def test_the_keras_recipe_is_one_flag_away():
    c = _config(["--model", "classic", "--recipe", "keras"])
    assert (c.optimizer, c.lr, c.schedule, c.batch_size, c.epochs) == (
        "rmsprop", 0.001, "none", 64, 5
    )  # fmt: skip


def test_flags_override_the_recipe_and_another_optimizer_gets_its_own_lr():
    c = _config(["--model", "classic", "--epochs", "2", "--batch-size", "32"])
    assert (c.epochs, c.batch_size, c.lr, c.schedule) == (2, 32, 0.005, "onecycle")
    sgd = _config(["--model", "classic", "--optimizer", "sgd"])
    assert sgd.optimizer == "sgd" and sgd.lr == 0.01  # SGD's default, not Adam's peak
    assert _config(["--optimizer", "sgd", "--lr", "0.2"]).lr == 0.2
    assert _config(["--schedule", "none"]).schedule == "none"


def test_an_unknown_recipe_is_a_usage_error():
    code, out, err = run(["train", "--recipe", "fastest"])
    assert code == 2 and out == ""
    assert "--recipe: invalid choice: 'fastest'" in err
