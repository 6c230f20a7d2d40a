"""Training throughput of `convviz.nn` "classic" against PyTorch CPU, measured so a skeptic
would accept it.

One training step = forward + softmax cross-entropy + backward + optimizer update,
float32, on the Keras MNIST convnet (93,322 params), the same architecture and the
same kind of batch for both. convviz runs twice: "processes" splits each batch over two
processes (``convviz.nn.parallel.ProcessPlan``, what ``python -m convviz train`` uses),
"threads" over two threads of one process (``FastPlan``, what the Train page uses).
The rules (see ``benchmarks/honest.py``):

* every measurement is a **fresh process** (threads and BLAS state matter: convviz
  switches OpenBLAS to one thread while its own threads run; torch keeps an OpenMP
  pool), warmed up, then timed over the same window of images for every batch size
  (``--steps`` defaults to 9,600 images' worth: 600 steps at batch 16, 150 at 64, 38
  at 256, at least 30; about a second per measurement, where a 0.2 s window gave
  wider ranges on both sides);
* **interleaved**: each round runs convviz and torch once, in rotated order; the same
  number of rounds for each side; the ratio is taken **within a round**, and the
  median and range of those ratios are printed;
* each row prints the **load** and the **CPU pressure** measured beside it, and the
  script first **waits for a quiet machine** (``--no-wait`` skips that);
* the **matmul peak** is a 2048² float32 ``np.matmul`` in a fresh process with BLAS at
  its full thread count (no convviz import), best of 5, measured before the first batch
  size and after each, and once in every round beside the training measurements. Two
  shares are printed: of the best reading of the whole run (the strictest: a slow
  reading would flatter the share), and the median and range of the same-round shares
  (convviz's throughput over the peak measured in the same round: the host's speed
  drifts by up to 2x within a run, and this ratio is what stays put);
* **FLOPs** count the work that matters: convolution outputs a following pooling layer
  drops (classic's conv2: 11x11 pooled to 5x5 uses 10x10) are not counted, and the
  first layer has no input gradient.

    .venv/bin/python benchmarks/bench_train.py [--batches 16,64,256] [--rounds 6]
        [--steps N] [--optimizer sgd|adam] [--torch-threads 2] [--no-wait]

PyTorch is optional (``pip install torch==2.13.0``): without it only convviz's rows print.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from honest import load_line, ratio_summary, rounds_order, run_child, wait_for_quiet  # noqa: E402

ME = os.path.abspath(__file__)


# ------------------------------------------------------------------ children (one per measurement)
def child_ours(batch: int, steps: int, optimizer: str, parallel: str = "processes") -> dict:
    """convviz's fast path: the batch split over two processes (the CLI's) or two threads."""
    from convviz.nn.fast import FastPlan
    from convviz.nn.optim import make_optimizer
    from convviz.nn.parallel import ProcessPlan
    from convviz.nn.presets import build_model

    model = build_model("classic", seed=0).pack_parameters()  # as the Trainer does
    if parallel == "processes":
        plan = ProcessPlan(model)
        if not plan.wait_ready(60):  # its start (~0.5 s) is not what is measured here
            raise RuntimeError("the helper process did not start")
    else:
        plan = FastPlan(model)
    opt = make_optimizer(optimizer, model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step():  # the Trainer's step: forward, loss and backward in one call, then the update
        plan.train_step(x, y)
        opt.step()

    out = _time(step, batch, steps)
    if parallel == "processes":
        out["remote_share"] = plan.remote_passes / (steps + 5)  # 1.0 below 32 rows: 0
        plan.close()
    return out


def child_torch(batch: int, steps: int, optimizer: str, threads: int) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip
    make = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]
    opt = make(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    out = _time(step, batch, steps)
    out.update(threads=torch.get_num_threads(), version=torch.__version__)
    return out


def child_peak(n: int = 2048, reps: int = 5) -> dict:
    """float32 matmul GFLOP/s with BLAS at its default (full) thread count."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        np.matmul(a, a, out=out)
        best = min(best, time.perf_counter() - t0)
    return {"gflops": 2.0 * n**3 / best / 1e9}


def child_rss(batch: int) -> dict:
    """Peak RSS of the training process and of its helper process (a child of it)."""
    child_ours(batch, 3, "sgd")
    return {
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "helper_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
    }


def _time(step, batch: int, steps: int, warmup: int = 5) -> dict:
    for _ in range(warmup):  # buffers, thread pools, allocator
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    s = (time.perf_counter() - t0) / steps
    return {"s_per_step": s, "images_per_s": batch / s}


# ------------------------------------------------------------------ FLOPs of the work done
def training_flops(batch: int, gemm: bool = False) -> float:
    """2 x multiply-adds of the forward, weight-gradient and input-gradient GEMMs.

    Only the convolution outputs the next layer reads are counted (a 2x2 pool with
    floor drops an odd last row and column). ``gemm=False``: a direct convolution's
    multiply-adds (what the network computes, the same for any library). ``gemm=True``:
    those the fast path's GEMMs run: a conv it computes with Winograd F(2x2, 3x3)
    (``convviz.nn.fast``, classic's conv2 on slices of 2,048+ output positions) does
    16/36 of them, so the share of the peak on direct FLOPs is an *effective* figure.
    """
    from convviz.nn import fast
    from convviz.nn.layers import Conv2D, Dense, _Pool2D
    from convviz.nn.presets import build_model

    plan = fast.FastPlan(build_model("classic", seed=0))
    rows = -(-batch // plan._slices(batch, training=True))  # rows in a slice

    layers = build_model("classic", seed=0).layers
    total = 0.0
    for i, layer in enumerate(layers):
        if isinstance(layer, Conv2D):
            kh, kw = layer.kernel_size
            ho, wo, f = layer.output_shape
            nxt = layers[i + 1 : i + 3]
            pool = next((p for p in nxt if isinstance(p, _Pool2D)), None)
            if pool is not None:
                (ph, pw), (sh, sw) = pool.pool_size, pool.strides
                ho = ((ho - ph) // sh) * sh + ph
                wo = ((wo - pw) // sw) * sw + pw
            fwd = 2.0 * batch * ho * wo * kh * kw * layer.input_shape[2] * f
            # the first conv (no input gradient) runs fused with its pool, never Winograd
            wino = i > 0 and fast._winograd_fits(layer, ho, wo)
            wino = wino and rows * ho * wo >= fast._WINOGRAD_MIN_ROWS
            if gemm and wino:
                fwd *= 16 / 36
        elif isinstance(layer, Dense):
            fwd = 2.0 * batch * layer.input_shape[0] * layer.units
        else:
            continue
        total += fwd * (2 if i == 0 else 3)  # the first layer needs no input gradient
    return total


# ------------------------------------------------------------------ the comparison
def steps_for(batch: int) -> int:
    """The default timed window: the same 9,600 images at every batch size, >= 30 steps."""
    return max(30, round(9600 / batch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="16,64,256")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per measurement (default: 9,600 images' worth, at least 30)",
    )
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds per batch size")
    ap.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    ap.add_argument("--torch-threads", type=int, default=2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-wait", action="store_true", help="skip the wait-for-quiet gate")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.steps = args.steps or steps_for(args.batch)
        out = {
            "ours": lambda: child_ours(args.batch, args.steps, args.optimizer),
            "threads": lambda: child_ours(args.batch, args.steps, args.optimizer, "threads"),
            "torch": lambda: child_torch(
                args.batch, args.steps, args.optimizer, args.torch_threads
            ),
            "peak": child_peak,
            "rss": lambda: child_rss(args.batch),
        }[args.child]()
        print(json.dumps(out))
        return

    sides = ["ours", "threads", "peak"]
    if not args.no_torch:
        try:
            import importlib.util

            if importlib.util.find_spec("torch") is not None:
                sides.append("torch")
            else:
                print("# torch not installed: convviz rows only")
        except ImportError:
            pass
    quiet = True if args.no_wait else wait_for_quiet()
    print(
        f"# classic convnet, float32, {args.optimizer}, {args.rounds} interleaved rounds x "
        f"{f'{args.steps} steps' if args.steps else '9,600-image windows'}, "
        "fresh process per measurement; "
        f"numpy {np.__version__}, {os.cpu_count()} CPUs; quiet gate "
        f"{'skipped' if args.no_wait else ('passed' if quiet else 'timed out')}"
    )
    peaks = [run_child([ME, "--child", "peak"])["gflops"]]
    print(f"# matmul peak (2048², full BLAS threads, fresh process): {peaks[0]:.0f} GFLOP/s")
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        got: dict[str, list[float]] = {s: [] for s in sides}
        ratios: dict[str, list[float]] = {"ours": [], "threads": []}
        shares: dict[str, list[float]] = {"ours": [], "threads": []}  # of the same round's peak
        flops = training_flops(batch)
        steps = args.steps or steps_for(batch)
        for order in rounds_order(sides, args.rounds):
            this = {}
            for side in order:
                argv = [ME, "--child", side, "--batch", str(batch), "--steps", str(steps)]
                argv += ["--optimizer", args.optimizer, "--torch-threads", str(args.torch_threads)]
                this[side] = run_child(argv)
            for side in sides:
                got[side].append(this[side]["gflops" if side == "peak" else "images_per_s"])
            for side in ("ours", "threads"):
                if "torch" in this:
                    ratios[side].append(this[side]["images_per_s"] / this["torch"]["images_per_s"])
                effective = flops / batch * this[side]["images_per_s"] / 1e9
                shares[side].append(effective / this["peak"]["gflops"])
        peaks.extend(got["peak"])
        for side, label in (("ours", "processes"), ("threads", "threads  ")):
            med = float(np.median(got[side]))
            line = (
                f"batch {batch:4d}, {label}: convviz {med:7.0f} img/s "
                f"[{min(got[side]):.0f}-{max(got[side]):.0f}]"
            )
            if "torch" in got:
                th = float(np.median(got["torch"]))
                line += (
                    f" | torch {th:7.0f} img/s [{min(got['torch']):.0f}-{max(got['torch']):.0f}]"
                    f" | ratio {ratio_summary(ratios[side])}"
                )
            gflops = flops / batch * med / 1e9
            gemm = training_flops(batch, gemm=True) / batch * med / 1e9
            line += f" | {gflops:.0f} GFLOP/s effective, {gemm:.0f} run | {load_line()}"
            rows.append((batch, label.strip(), gflops, gemm, shares[side]))
            print(line, flush=True)
        peaks.append(run_child([ME, "--child", "peak"])["gflops"])
    # The machine's speed drifts (shared host): a slow peak reading would inflate the
    # shares, so the share is taken of the best peak this run measured.
    peak = float(max(peaks))
    print(
        "# matmul peak readings, in the rounds and between the batch sizes: "
        + ", ".join(f"{p:.0f}" for p in peaks)
        + f" GFLOP/s (the best: {peak:.0f})"
    )
    for batch, label, gflops, gemm, same_round in rows:
        print(
            f"batch {batch:4d}, {label}: {100 * gflops / peak:.0f}% of the best float32 matmul "
            f"peak on a direct convolution's FLOPs (effective), {100 * gemm / peak:.0f}% on the "
            "FLOPs the GEMMs ran (Winograd's conv2 does 16/36); of the same round's peak: "
            f"median {100 * np.median(same_round):.0f}% "
            f"[{100 * min(same_round):.0f}-{100 * max(same_round):.0f}]"
        )
    rss = run_child([ME, "--child", "rss", "--batch", "256"])
    total = rss["rss_mb"] + rss["helper_mb"]
    verdict = "OK" if total < 1024 else "OVER"
    print(
        f"peak RSS, batch 256 (fresh process): {rss['rss_mb']:.0f} MB + helper process "
        f"{rss['helper_mb']:.0f} MB ({verdict}: {total:.0f} < 1 GB)"
    )


if __name__ == "__main__":
    main()
