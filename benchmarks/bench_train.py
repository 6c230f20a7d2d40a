"""Training throughput of `convviz.nn` "classic" against PyTorch CPU, timed in the same run.

One training step = forward + softmax cross-entropy + backward + plain SGD update,
batch 64, float32, on the Keras MNIST convnet (93,322 params). Both frameworks
run the same architecture on the same random batch; their timing rounds are
interleaved so that load from other processes hits both alike, and the median
round counts. Printed: images/s of each, the ratio, the share of this machine's
float32 matmul peak (a large ``np.matmul`` timed here) that our step reaches
(training FLOPs counted analytically), and peak RSS for batch 256 in a fresh
process (must stay < 1 GB).

    .venv/bin/python benchmarks/bench_train.py [--rounds 5] [--steps 20] [--batch 64]

Ours trains through :class:`convviz.nn.fast.FastPlan`, as the Trainer does;
``--reference`` also times the plain reference layers (``model.forward`` /
``model.backward``) for comparison.

PyTorch is optional (``pip install torch==2.13.0``): without it only our numbers print.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from convviz.nn.fast import FastPlan
from convviz.nn.layers import Conv2D, Dense
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.presets import build_model


def make_sgd(model, lr=0.01):
    try:
        from convviz.nn.optim import SGD
    except ImportError:  # the optimizer module is optional for this benchmark
        triples = model.parameters()

        class _Plain:
            def step(self):
                for _, p, g in triples:
                    p -= np.float32(lr) * g

        return _Plain()
    return SGD(model.parameters(), lr=lr)


def ours_stepper(batch: int, fast: bool = True):
    model = build_model("classic", seed=0)
    net = FastPlan(model) if fast else model
    opt = make_sgd(model)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        logits = net.forward(x, training=True)
        _, d = softmax_cross_entropy(logits, y)
        net.backward(d)
        opt.step()

    return model, step


def torch_stepper(batch: int):
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(576, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    return step, torch.get_num_threads(), torch.__version__


def time_steps(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def training_flops(model, batch: int) -> float:
    """Multiply-adds x 2 of forward, weight-gradient and input-gradient GEMMs."""
    total = 0.0
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            kh, kw = layer.kernel_size
            ho, wo, f = layer.output_shape
            fwd = 2.0 * batch * ho * wo * kh * kw * layer.input_shape[2] * f
        elif isinstance(layer, Dense):
            fwd = 2.0 * batch * layer.input_shape[0] * layer.units
        else:
            continue
        total += fwd * (2 if i == 0 else 3)  # the first layer skips dx
    return total


def matmul_gflops(n: int = 1536, reps: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    t = min(time_steps(lambda: np.matmul(a, a, out=out), 1) for _ in range(reps))
    return 2.0 * n**3 / t / 1e9


def rss_child(batch: int) -> None:
    _, step = ours_stepper(batch)
    for _ in range(3):
        step()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(peak_kb / 1024.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="steps per timing round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median counts)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument(
        "--reference", action="store_true", help="also time the reference layers (no FastPlan)"
    )
    ap.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return

    model, ours = ours_stepper(args.batch)
    plain = ours_stepper(args.batch, fast=False)[1] if args.reference else None
    theirs = None
    if not args.no_torch:
        try:
            theirs, threads, version = torch_stepper(args.batch)
        except ImportError:
            print("torch not installed: timing convviz.nn only")
    for _ in range(3):  # warm-up: buffers, BLAS threads, allocator
        ours()
        if theirs:
            theirs()
        if plain:
            plain()
    t_ours, t_torch, t_plain = [], [], []
    for _ in range(args.rounds):
        t_ours.append(time_steps(ours, args.steps))
        if theirs:
            t_torch.append(time_steps(theirs, args.steps))
        if plain:
            t_plain.append(time_steps(plain, args.steps))
    ours_s = float(np.median(t_ours))
    flops = training_flops(model, args.batch)
    peak = matmul_gflops()

    print(
        f"classic convnet, batch {args.batch}, float32, {args.rounds} rounds x {args.steps} steps"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average {load}")
    print(f"convviz.nn : {ours_s * 1e3:7.2f} ms/step  {args.batch / ours_s:8.0f} images/s")
    if plain:
        plain_s = float(np.median(t_plain))
        print(
            f"reference  : {plain_s * 1e3:7.2f} ms/step  {args.batch / plain_s:8.0f} images/s "
            f"(FastPlan is {plain_s / ours_s:.2f}x faster)"
        )
    if theirs:
        torch_s = float(np.median(t_torch))
        print(
            f"torch {version} ({threads} threads): {torch_s * 1e3:7.2f} ms/step  "
            f"{args.batch / torch_s:8.0f} images/s"
        )
        print(f"speed ratio convviz.nn / torch: {torch_s / ours_s:.2f}x (median rounds)")
        best = min(t_torch) / min(t_ours)
        print(f"speed ratio of the best rounds: {best:.2f}x (least disturbed by other load)")
    gflops = flops / ours_s / 1e9
    print(
        f"training FLOPs/step {flops / 1e9:.3f} G -> {gflops:.1f} GFLOP/s = "
        f"{100 * gflops / peak:.0f}% of float32 matmul peak ({peak:.0f} GFLOP/s)"
    )
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", "256"], capture_output=True, text=True, check=True
    )
    rss = float(out.stdout.strip().splitlines()[-1])
    print(
        f"peak RSS, batch 256 (fresh process): {rss:.0f} MB "
        f"({'OK' if rss < 1024 else 'OVER'} < 1 GB)"
    )


if __name__ == "__main__":
    main()
