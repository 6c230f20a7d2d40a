"""Command line: train a preset on MNIST, print its summary, evaluate or export a saved model.

    python -m convviz train --model classic --epochs 5 --optimizer rmsprop --out model.npz
    python -m convviz summary --model classic
    python -m convviz evaluate assets/models/classic.npz
    python -m convviz export assets/models/classic.npz --to pytorch --out model.py

Progress goes to stderr (one line rewritten with ``\\r``, shown when stderr is a
terminal or with ``--progress``); the per-epoch lines and results go to stdout.
Any error ends in one ``convviz: error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, NoReturn

__all__ = ["main"]

EXIT_USAGE = 2

# The commands that made assets/models/*.npz (their metadata holds them; test accuracy on
# the 10k test set) and Keras's reference recipe. argparse does not %-format an epilog.
RECIPES = """recipes (55,000 training images, seed 0; test accuracy on the 10,000 test images):
  default (--recipe best): per model, the fastest recipe to its best accuracy
  (convviz.nn.recipes): classic adam one-cycle lr 0.005, batch 128, 3 epochs (99.23%);
  tiny lr 0.004, batch 64, 1 epoch of 25,000 images (98.24-98.47% in 3.5-3.7 s);
  the others adam one-cycle lr 0.003, batch 64, 5 epochs
  (resnet 99.17%, inception 99.15% after 6, densenet 99.06%).
  --recipe keras: the Keras book's, rmsprop lr 0.001, batch 64, 5 epochs, no schedule.
  Any flag given (--epochs, --lr...) overrides the recipe's value.
"""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class _UsageError(CliError):
    """A bad command line; its message is the whole line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line that names the command is enough.
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def _number(kind: type, minimum: float, *, strict: bool = False):
    """An argparse ``type=`` that parses ``kind`` and refuses values below ``minimum``
    (or equal to it, when ``strict``), and infinities."""
    noun = "an integer" if kind is int else "a number"
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not (value > minimum if strict else value >= minimum) or value == float("inf"):
            finite = "a finite number " if kind is float else ""
            raise argparse.ArgumentTypeError(f"must be {finite}{bound}, got {text}")
        return value

    return parse


_positive_int = _number(int, 1)
_non_negative_int = _number(int, 0)
_positive_float = _number(float, 0, strict=True)


def _help(text: str) -> str:
    """``text`` as an argparse help string: argparse %-formats those, so a bare % breaks them."""
    return text.replace("%", "%%")


def _build_parser() -> _Parser:
    from convviz.export import TARGETS
    from convviz.nn.optim import OPTIMIZERS
    from convviz.nn.presets import PRESETS
    from convviz.nn.recipes import RECIPE_NAMES
    from convviz.nn.train import SCHEDULES, TrainConfig

    d = TrainConfig()
    parser = _Parser(prog="convviz", description="convviz: a NumPy CNN on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    models = ", ".join(f"{k} ({v})" for k, v in PRESETS.items())
    t = sub.add_parser(
        "train",
        help="train a preset model on MNIST and save it",
        epilog=RECIPES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument(
        "--model", default=d.model, choices=list(PRESETS), help=_help(f"preset: {models}")
    )
    t.add_argument(
        "--recipe", default="best", choices=list(RECIPE_NAMES),
        help="the defaults of the five flags below (see the recipes at the end)",
    )  # fmt: skip
    t.add_argument("--epochs", type=_positive_int, default=None, help="default: the recipe's")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="default: the recipe's")
    t.add_argument(
        "--optimizer", default=None, choices=list(OPTIMIZERS), help="default: the recipe's"
    )
    t.add_argument(
        "--lr", type=_positive_float, default=None,
        help="default: the recipe's, or the optimizer's own when --optimizer differs from it",
    )  # fmt: skip
    t.add_argument(
        "--schedule", default=None, choices=list(SCHEDULES), help="default: the recipe's"
    )
    t.add_argument("--warmup", type=float, default=d.warmup, help="fraction of steps")
    t.add_argument("--final-lr-ratio", type=float, default=d.final_lr_ratio)
    t.add_argument("--weight-decay", type=float, default=d.weight_decay)
    t.add_argument("--seed", type=_non_negative_int, default=d.seed)
    t.add_argument(
        "--train-size", type=_positive_int, default=None, help="default: the recipe's (all)"
    )
    t.add_argument("--val-size", type=_non_negative_int, default=d.val_size)
    t.add_argument(
        "--eval-every", type=_non_negative_int, default=0, help="steps (0: at epoch ends only)"
    )
    t.add_argument("--out", default=None, help="where to save the trained model (.npz)")
    t.add_argument(
        "--reference",
        action="store_true",
        help="train with the readable reference layers, not convviz.nn.fast "
        "(slower; the same numbers up to float rounding)",
    )
    t.add_argument(
        "--parallel",
        choices=("processes", "threads"),
        default="processes",
        help="how the fast path uses two cores: each batch split over two processes "
        "(default) or two threads of one (the Train page's way); the same numbers up to "
        "float rounding",
    )
    t.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )

    s = sub.add_parser("summary", help="print a preset model's Keras-style summary")
    s.add_argument("--model", default=d.model, choices=list(PRESETS))

    e = sub.add_parser("evaluate", help="test accuracy of a saved model (.npz)")
    e.add_argument("path")

    x = sub.add_parser(
        "export",
        help="write a saved model (.npz) as a Python file that runs without convviz",
        description="Write a saved model as a standalone Python file: a PyTorch module or a "
        "plain NumPy forward pass. The file defines build_model(weights_path), which reads "
        "the weights from the .npz, and prints the test accuracy when run as "
        "`python model.py MODEL.npz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz`.",
    )
    x.add_argument("path", help="the model (.npz)")
    x.add_argument("--to", default="pytorch", choices=list(TARGETS))
    x.add_argument("--out", default=None, help="the .py file to write (default: print it)")
    return parser


class _Progress:
    """One status line on a stream, rewritten in place with ``\\r`` (at most 10 times/s)."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self._width = 0
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _bar(fraction: float, width: int = 24) -> str:
    filled = round(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _fmt_seconds(s: float) -> str:
    s = round(s)
    return f"{s // 60}:{s % 60:02d}"


def recipe_config(args: argparse.Namespace):
    """The TrainConfig of a ``train`` command line: the recipe's values where no flag is given.

    Without ``--lr``, the recipe's learning rate goes with the recipe's optimizer; another
    optimizer gets its own default (0.001 for adam and rmsprop, 0.01 for sgd).
    """
    from convviz.nn.optim import OPTIMIZERS
    from convviz.nn.recipes import recipe
    from convviz.nn.train import TrainConfig

    r = recipe(args.model, args.recipe)
    optimizer = args.optimizer or r.optimizer
    lr = args.lr
    if lr is None:
        own = inspect.signature(OPTIMIZERS[optimizer]).parameters["lr"].default
        lr = r.lr if optimizer == r.optimizer else own
    return TrainConfig(
        model=args.model,
        optimizer=optimizer,
        lr=lr,
        batch_size=args.batch_size or r.batch_size,
        epochs=args.epochs or r.epochs,
        train_size=args.train_size or r.train_size,
        val_size=args.val_size,
        seed=args.seed,
        eval_every=args.eval_every,
        schedule=args.schedule or r.schedule,
        warmup=args.warmup,
        final_lr_ratio=args.final_lr_ratio,
        weight_decay=args.weight_decay,
    )


def _train(args: argparse.Namespace, argv: Sequence[str], out: IO[str], err: IO[str]) -> int:
    from convviz.nn.train import Trainer

    config = recipe_config(args)
    if args.out and not Path(args.out).resolve().parent.is_dir():
        # Fail now rather than after minutes of training.
        raise CliError(f"--out: no such directory: {Path(args.out).parent}")
    trainer = Trainer(config, fast=not args.reference, processes=args.parallel == "processes")
    show = args.progress if args.progress is not None else err.isatty()
    progress = _Progress(err, show)
    print(
        f"training {config.model} ({trainer.model.count_params():,} parameters) on "
        f"{len(trainer.train_images):,} images, validating on {len(trainer.val_images):,}; "
        f"{config.optimizer} lr={config.lr:g} schedule={config.schedule} "
        f"batch={config.batch_size}, {config.epochs} epoch(s) of {trainer.steps_per_epoch} steps",
        file=out,
        flush=True,
    )
    spe = trainer.steps_per_epoch
    t_start = time.perf_counter()
    loss_sum = correct = seen = 0.0
    train_seconds = 0.0
    while not trainer.finished:
        left_in_epoch = spe - trainer.step % spe
        m = trainer.train_steps(min(10, left_in_epoch))
        loss_sum += m["loss"] * m["images"]
        correct += m["acc"] * m["images"]
        seen += m["images"]
        train_seconds += m["seconds"]
        elapsed = time.perf_counter() - t_start
        eta = elapsed / trainer.step * (trainer.total_steps - trainer.step)
        in_epoch = trainer.step - trainer.epoch * spe if trainer.step % spe else spe
        progress.show(
            f"epoch {min(trainer.epoch + 1, config.epochs)}/{config.epochs} "
            f"{_bar(in_epoch / spe)} {in_epoch}/{spe}  loss {loss_sum / seen:.4f}  "
            f"acc {correct / seen:.4f}  {seen / train_seconds:,.0f} img/s  "
            f"ETA {_fmt_seconds(eta)}"
        )
        if trainer.step % spe == 0:  # an epoch just ended
            progress.clear()
            e = trainer.epoch_log[-1]
            val = "" if e["val_acc"] is None else f"  val_loss {e['val_loss']:.4f}"
            val += "" if e["val_acc"] is None else f"  val_acc {e['val_acc']:.4f}"
            print(
                f"epoch {e['epoch']}/{config.epochs}  loss {e['loss']:.4f}  acc {e['acc']:.4f}"
                f"{val}  {e['seconds']:.1f} s  {e['images_per_s']:,.0f} img/s",
                file=out,
                flush=True,
            )
            loss_sum = correct = seen = 0.0
            train_seconds = 0.0
    total = time.perf_counter() - t_start
    test_loss, test_acc, _ = trainer.evaluate(trainer.data.test_images, trainer.data.test_labels)
    n_test = len(trainer.data.test_labels)
    print(
        f"test accuracy {test_acc:.4f} ({round(test_acc * n_test)}/{n_test}), "
        f"test loss {test_loss:.4f}, total {_fmt_seconds(total)}",
        file=out,
        flush=True,
    )
    if args.out:
        metadata: dict[str, Any] = {
            "command": "python -m convviz " + shlex.join(argv),
            "model": config.model,
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "epochs": config.epochs,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "train_seconds": round(total, 1),
            "config": asdict(config),
            "epoch_log": trainer.epoch_log,
        }
        trainer.model.save(args.out, metadata=metadata)
        print(f"saved {args.out}", file=out, flush=True)
    return 0


def _load(path: str):
    from convviz.nn.model import ModelFileError, load_model

    try:
        return load_model(path)
    except FileNotFoundError:
        raise CliError(f"no such file: {path}") from None
    except ModelFileError as exc:
        raise CliError(f"{path}: {exc}") from None


def _evaluate(args: argparse.Namespace, out: IO[str]) -> int:
    from convviz.nn.data import load_mnist
    from convviz.nn.train import evaluate

    model = _load(args.path)
    data = load_mnist()
    loss, acc, _ = evaluate(model, data.test_images, data.test_labels)
    n = len(data.test_labels)
    print(
        f"{args.path}: test accuracy {acc:.4f} ({round(acc * n)}/{n}), test loss {loss:.4f}",
        file=out,
    )
    return 0


def _export(args: argparse.Namespace, out: IO[str]) -> int:
    from convviz.export import export_model
    from convviz.nn.data import DEFAULT_ROOT, FILES

    if args.out is not None:
        target = Path(args.out).resolve()
        if not target.parent.is_dir():
            raise CliError(f"--out: no such directory: {Path(args.out).parent}")
        if target == Path(args.path).resolve():
            raise CliError("--out: would overwrite the model itself")
    source = export_model(_load(args.path), to=args.to)
    if args.out is None:
        out.write(source)
        return 0
    Path(args.out).write_text(source, encoding="utf-8")
    root = DEFAULT_ROOT
    if root.is_relative_to(Path.cwd()):
        root = root.relative_to(Path.cwd())  # assets/mnist when run from the repository
    mnist = [str(root / FILES[k]) for k in ("test_images", "test_labels")]
    print(f"wrote {args.out} ({args.to}); its test accuracy:", file=out)
    print("  python " + shlex.join([args.out, args.path, *mnist]), file=out)
    return 0


def main(
    argv: Sequence[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line; returns the exit status (0 ok, 2 error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        parser = _build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help (status 0)
            return int(exc.code or 0)
        if args.command == "summary":
            from convviz.nn.presets import build_model

            print(build_model(args.model).summary(), file=out)
            return 0
        if args.command == "evaluate":
            return _evaluate(args, out)
        if args.command == "export":
            return _export(args, out)
        return _train(args, argv, out, err)
    except (CliError, ValueError, OSError) as exc:  # MnistError is a ValueError
        line = str(exc) if isinstance(exc, _UsageError) else f"convviz: error: {exc}"
        if getattr(exc, "path", None) is not None:  # MnistError: where, kept out of the message
            line += f" (in {exc.path})"
        err.write(("\n" if err.isatty() else "") + line + "\n")  # a tty may hold a progress bar
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("\nconvviz: interrupted\n")
        return 130
