"""Where a training step of ``classic`` spends its time (issue 18: "profile first").

Times each part of one optimizer step of the fast path (:class:`convviz.nn.fast.FastPlan`)
on one thread (``workers=1``, BLAS at one thread), so every millisecond is attributed to one
part: each layer's forward and backward, the loss, the optimizer update, and what is left
(slicing, bookkeeping). Then the same step with the default two workers, for scale, and
on two processes (``convviz.nn.parallel.ProcessPlan``, the CLI's), split into this
process's half, the wait for the helper's half, the serial loss and update, and the hand-off.

    .venv/bin/python benchmarks/profile_train.py [--batch 64] [--steps 40] [--optimizer adam]

The matmul-heavy parts are compared with what the float32 GEMMs inside them would take at
the machine's single-thread matmul rate (measured here, same process): the gap is the
memory-bound work around them (im2col, Winograd's tile transforms, masks, pooling) that no
BLAS speeds up. conv2 runs as Winograd F(2x2, 3x3); its im2col GEMMs are listed for scale.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from bench_train import child_peak  # noqa: E402
from honest import load_line  # noqa: E402


def _timer(times: dict[str, float]):
    """``timed(name, fn)``: ``fn`` that adds its run time to ``times[name]``."""

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            times[name] += time.perf_counter() - t0
            return out

        return wrapper

    return timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    args = ap.parse_args()

    from convviz.nn import fast
    from convviz.nn.losses import softmax_cross_entropy
    from convviz.nn.optim import make_optimizer
    from convviz.nn.presets import build_model

    fast.blas_threads(1)
    gflops1 = child_peak(1024)["gflops"]  # BLAS is at one thread now
    model = build_model("classic", seed=0).pack_parameters()  # as the Trainer does
    plan = fast.FastPlan(model, workers=1)
    opt = make_optimizer(args.optimizer, model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)

    times: dict[str, float] = collections.defaultdict(float)
    timed = _timer(times)

    plan.forward(x, training=True)  # builds the chain
    chain = plan._get_chains(True, 1)[0]
    for i, twin in enumerate(chain):
        name = f"{i} {type(twin).__name__.lstrip('_')}({getattr(twin, 'layer', twin).name})"
        twin.forward = timed(name + " forward", twin.forward)
        twin.backward = timed(name + " backward", twin.backward)
    loss = timed("loss (softmax + cross-entropy)", softmax_cross_entropy)
    update = timed(f"optimizer ({args.optimizer}) update", opt.step)

    def step():
        logits = plan.forward(x, training=True)
        _, d = loss(logits, y)
        plan.backward(d)
        update()

    for _ in range(5):
        step()
    times.clear()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    total = time.perf_counter() - t0
    parts = sum(times.values())
    times["rest (chain, slicing, bookkeeping)"] = total - parts

    print(f"# classic, batch {args.batch}, {args.optimizer}, {args.steps} steps, one thread")
    print(f"# {load_line()}")
    print(f"# single-thread float32 matmul: {gflops1:.0f} GFLOP/s")
    per = total / args.steps * 1e3
    print(f"step: {per:.2f} ms = {args.batch / (total / args.steps):,.0f} img/s on one thread")
    for name, s in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {s / args.steps * 1e3:7.2f} ms  {100 * s / total:5.1f}%  {name}")

    # The GEMMs of the two big convs, alone, at their shapes: what BLAS needs for them.
    n = args.batch
    # (batch, m, k, f): `batch` stacked GEMMs (m, k) @ (k, f).
    gemms = {
        "conv1 (im2col 9 -> 32), fwd + dW": [
            (1, n * 13 * 13 * 4, 10, 32), (1, 10, n * 13 * 13 * 4, 32)
        ],
        "conv2 as im2col (288 -> 64), fwd + dW + dX": [
            (1, n * 10 * 10, 288, 64), (1, 288, n * 10 * 10, 64), (1, n * 10 * 10, 64, 288)
        ],
        "conv2 as Winograd F(2x2,3x3) (what runs), fwd + dW + dX": [
            (16, n * 25, 32, 64), (16, 32, n * 25, 64), (16, n * 25, 64, 32)
        ],
    }  # fmt: skip
    print("GEMMs alone at the same shapes (one thread):")
    for name, shapes in gemms.items():
        t = 0.0
        for batch, m, k, f in shapes:
            a = rng.random((batch, m, k), dtype=np.float32)
            b = rng.random((batch, k, f), dtype=np.float32)
            o = np.empty((batch, m, f), np.float32)
            np.matmul(a, b, out=o)
            t0 = time.perf_counter()
            for _ in range(10):
                np.matmul(a, b, out=o)
            t += (time.perf_counter() - t0) / 10
        print(f"  {t * 1e3:7.2f} ms  {name}")

    fast.blas_threads(None)
    plan2 = fast.FastPlan(model)
    for _ in range(3):
        logits = plan2.forward(x, training=True)
        plan2.backward(softmax_cross_entropy(logits, y)[1])
    t0 = time.perf_counter()
    for _ in range(args.steps):
        logits = plan2.forward(x, training=True)
        plan2.backward(softmax_cross_entropy(logits, y)[1])
        opt.step()
    two = (time.perf_counter() - t0) / args.steps
    print(f"the same step with {plan2.workers} workers: {two * 1e3:.2f} ms "
          f"({args.batch / two:,.0f} img/s, {per / (two * 1e3):.2f}x one thread)")  # fmt: skip
    _two_processes(model, opt, x, y, args.steps, per)
    print(f"# {load_line()}")


def _two_processes(model, opt, x, y, steps: int, one_thread_ms: float) -> None:
    """The same step with the batch split over two processes, and where its time goes."""
    from convviz.nn import parallel
    from convviz.nn.losses import softmax_cross_entropy

    plan = parallel.ProcessPlan(model)
    if not plan.wait_ready(60):
        print("two processes: the helper did not start")
        return
    times: dict[str, float] = collections.defaultdict(float)
    timed = _timer(times)

    plan.fast.forward = timed("this process's half, forward", plan.fast.forward)
    plan.fast.backward = timed("this process's half, backward", plan.fast.backward)
    done = parallel._Helper.done
    parallel._Helper.done = timed("waiting for the helper's half", done)
    # The Trainer's step (train_step): each half's loss runs in its own process.
    parallel.softmax_cross_entropy = timed("loss of this half", softmax_cross_entropy)
    update = timed("optimizer update", opt.step)
    try:

        def step():
            plan.train_step(x, y)
            update()

        for _ in range(5):
            step()
        times.clear()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        total = time.perf_counter() - t0
    finally:
        parallel._Helper.done = done
        parallel.softmax_cross_entropy = softmax_cross_entropy
        plan.close()
    times["rest (hand-off: weights, rows, gradients)"] = total - sum(times.values())
    per = total / steps * 1e3
    print(f"the same step on two processes: {per:.2f} ms ({len(x) / (total / steps):,.0f} img/s, "
          f"{one_thread_ms / per:.2f}x one thread)")  # fmt: skip
    for name, s in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {s / steps * 1e3:7.2f} ms  {100 * s / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
