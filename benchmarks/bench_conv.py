"""Time convviz.conv2d against scipy.ndimage.correlate (and OpenCV when installed).

Every case is a 'same'-size, zero-padded cross-correlation in float32, timed in
this one run on this machine; the printed ratios are reference time / convviz
time (> 1 means convviz is faster). RGB cases sum the three channels, as a CNN
layer does: scipy and OpenCV filter each channel and the sums are added.

    .venv/bin/python benchmarks/bench_conv.py            # all cases
    .venv/bin/python benchmarks/bench_conv.py --quick    # 1000x1000 only
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from convviz.conv import conv2d

try:  # optional reference: OpenCV's SIMD C++ filter2D
    import cv2
except ImportError:  # pragma: no cover - depends on the machine
    cv2 = None


def best_time(fn: Callable[[], object], budget: float = 1.0, max_runs: int = 15) -> float:
    """Minimum wall time over repeated runs (within ~budget seconds; one if a run is slow)."""
    times = []
    start = time.perf_counter()
    while len(times) < max_runs:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if times[0] > 4 * budget or (len(times) >= 2 and time.perf_counter() - start > budget):
            break
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the 1000x1000 images")
    args = ap.parse_args()

    sizes = [(1000, 1000)] if args.quick else [(1000, 1000), (3000, 4000)]
    kernels = [3, 5, 15, 31]
    rng = np.random.default_rng(0)
    print(
        f"numpy {np.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores" + (f", OpenCV {cv2.__version__}" if cv2 else ", no OpenCV")
    )
    head = f"{'case':<26}{'convviz':>10}{'scipy':>10}{'ratio':>8}"
    if cv2:
        head += f"{'opencv':>10}{'ratio':>8}"
    print(head)
    worst = np.inf
    for h, w in sizes:
        for channels in (1, 3):
            x = rng.random((channels, h, w), dtype=np.float32)
            xs = x[0] if channels == 1 else x
            for k in kernels:
                wk = rng.standard_normal((channels, k, k)).astype(np.float32)  # (C, k, k)
                wks = wk[0] if channels == 1 else wk

                def ours(xs=xs, wks=wks):
                    return conv2d(xs, wks, padding="same")

                def ref(x=x, wk=wk):
                    return sum(
                        ndimage.correlate(x[c], wk[c], mode="constant") for c in range(len(x))
                    )

                got, exp = ours(), ref()
                err = float(np.abs(got - exp).max() / max(np.abs(exp).max(), 1e-12))
                assert err < 1e-4, f"mismatch {err}"
                t_ours = best_time(ours)
                t_ref = best_time(ref, budget=0.5, max_runs=3)
                ratio = t_ref / t_ours
                worst = min(worst, ratio)
                name = f"{h}x{w} {'rgb ' if channels == 3 else 'gray'} {k}x{k}"
                line = f"{name:<26}{t_ours * 1e3:>8.1f}ms{t_ref * 1e3:>8.1f}ms{ratio:>7.1f}x"
                if cv2:

                    def cv(x=x, wk=wk):
                        return sum(
                            cv2.filter2D(x[c], cv2.CV_32F, wk[c], borderType=cv2.BORDER_CONSTANT)
                            for c in range(len(x))
                        )

                    # OpenCV anchors even kernels differently; odd sizes only here.
                    t_cv = best_time(cv)
                    line += f"{t_cv * 1e3:>8.1f}ms{t_cv / t_ours:>7.2f}x"
                print(line, flush=True)
    print(
        f"slowest ratio vs scipy.ndimage.correlate: {worst:.1f}x "
        f"({'faster on every case' if worst > 1 else 'NOT faster on every case'})"
    )
    if cv2:
        print("opencv ratio = opencv time / convviz time (< 1: OpenCV still faster)")


if __name__ == "__main__":
    main()
