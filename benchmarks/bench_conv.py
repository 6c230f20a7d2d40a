"""convviz.conv2d against the best scipy path for each case, measured the way a skeptic asks.

Every case is a 'same'-size, zero-padded cross-correlation in float32 of a random
image (1 MP and 12 MP, grey and RGB) with a random k x k kernel (k = 3, 5, 15, 31).
RGB cases have one kernel per channel and sum the three channels, as a CNN layer
does (convviz: one ``(3, k, k)`` kernel; scipy: the channels filtered and added).

The rules (issue 18 §1):

- **The peer is the best scipy path**: ``scipy.ndimage.correlate``,
  ``scipy.signal.fftconvolve`` and ``scipy.signal.oaconvolve`` are all timed, and the
  one with the lowest median for that case is the peer. ndimage's cost is linear in
  the pixels, so it is first timed on a 1/16 crop: when that, scaled up, is over 3x
  the fastest FFT path's warm-up time it cannot be the best and is left out (printed).
- **Interleaved, same repeats**: each round times every contender once, in an order
  rotated by one each round (A B C, B C A, C A B, ...); every contender gets the same
  number of rounds, after one untimed warm-up call that also checks the results agree.
- **Same-round ratios**: for each round, peer time / convviz time (> 1: convviz is
  faster); the row prints their median and range, and each contender's median time.
- **Fresh processes**: each case runs in its own Python process (threads and caches
  start cold for every case); ``--same-process`` turns that off.
- **Load**: each row prints the 1-minute load average (``/proc/loadavg``) and CPU
  pressure (``/proc/pressure/cpu``, "some" avg10, % of time some task waited for a
  CPU) at the end of the case. Before each case a gate waits until the machine is
  quiet (``--max-load``, ``--max-pressure``) for at most ``--wait`` seconds, then runs
  anyway and marks the row NOT QUIET; ``--no-wait`` skips the gate.
- **OpenCV** (``cv2.filter2D``, the distance still to go) when importable; else the
  script says it is not installed.

    .venv/bin/python benchmarks/bench_conv.py              # every case
    .venv/bin/python benchmarks/bench_conv.py --quick      # 1 MP only
    .venv/bin/python benchmarks/bench_conv.py --no-wait --rounds 5 --cases 1000x1000:gray:15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {"1mp": (1000, 1000), "12mp": (3000, 4000)}
KERNELS = (3, 5, 15, 31)
NDIMAGE_CROP = 4  # ndimage is first timed on a (H/4, W/4) crop: 1/16 of the pixels
NDIMAGE_DROP = 3.0  # ... and left out when 16x that is over 3x the fastest FFT path


# --------------------------------------------------------------------------- the machine


def load_avg() -> float | None:
    """The 1-minute load average, or None where /proc/loadavg is missing."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_pressure() -> float | None:
    """``some avg10`` of /proc/pressure/cpu (% of the last 10 s a task waited for a CPU)."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                fields = dict(f.split("=") for f in line.split()[1:])
                return float(fields["avg10"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def machine_text() -> str:
    load, psi = load_avg(), cpu_pressure()
    load_s = "?" if load is None else f"{load:.2f}"
    psi_s = "?" if psi is None else f"{psi:.1f}%"
    return f"load {load_s}, cpu pressure {psi_s}"


def wait_for_quiet(max_load: float, max_pressure: float, timeout: float) -> tuple[bool, float]:
    """Wait until load <= max_load and CPU pressure <= max_pressure; ``(quiet, waited s)``."""
    start = time.monotonic()
    while True:
        load, psi = load_avg(), cpu_pressure()
        quiet = (load is None or load <= max_load) and (psi is None or psi <= max_pressure)
        waited = time.monotonic() - start
        if quiet or waited >= timeout:
            return quiet, waited
        time.sleep(min(2.0, max(0.1, timeout - waited)))


# --------------------------------------------------------------------------- one case


def contenders(x: np.ndarray, w: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    """convviz and every scipy path (and OpenCV) for ``x`` (C, H, W), ``w`` (C, k, k)."""
    from scipy import ndimage, signal

    from convviz.conv import conv2d

    flipped = np.ascontiguousarray(w[:, ::-1, ::-1])  # scipy.signal convolves
    grey = x.shape[0] == 1
    xs, ws = (x[0], w[0]) if grey else (x, w)
    out = {"convviz": lambda: conv2d(xs, ws, padding="same")}
    if grey:
        out["ndimage.correlate"] = lambda: ndimage.correlate(x[0], w[0], mode="constant")
        out["signal.fftconvolve"] = lambda: signal.fftconvolve(x[0], flipped[0], mode="same")
        out["signal.oaconvolve"] = lambda: signal.oaconvolve(x[0], flipped[0], mode="same")
    else:
        out["ndimage.correlate"] = lambda: sum(
            ndimage.correlate(x[c], w[c], mode="constant") for c in range(len(x))
        )
        out["signal.fftconvolve"] = lambda: signal.fftconvolve(
            x, flipped, mode="same", axes=(1, 2)
        ).sum(axis=0)
        out["signal.oaconvolve"] = lambda: signal.oaconvolve(
            x, flipped, mode="same", axes=(1, 2)
        ).sum(axis=0)
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        out["opencv.filter2D"] = lambda: sum(
            cv2.filter2D(x[c], cv2.CV_32F, w[c], borderType=cv2.BORDER_CONSTANT)
            for c in range(len(x))
        )
    return out


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_case(h: int, w: int, channels: int, k: int, rounds: int) -> dict:
    """Time one case; returns every contender's round times and notes."""
    from scipy import ndimage

    rng = np.random.default_rng(1000 * k + channels)
    x = rng.random((channels, h, w), dtype=np.float32)
    wk = rng.standard_normal((channels, k, k)).astype(np.float32)
    fns = contenders(x, wk)
    notes = []
    # Warm-up: one untimed (well, timed for the ndimage rule) call each; results agree.
    expected = fns["signal.fftconvolve"]()
    warm = {}
    for name, fn in fns.items():
        if name == "ndimage.correlate":
            continue
        t = time.perf_counter()
        got = fn()
        warm[name] = time.perf_counter() - t
        err = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))
        if err > 1e-4:
            raise AssertionError(f"{name} disagrees with signal.fftconvolve: {err:.2e}")
    crop = np.ascontiguousarray(x[:, : h // NDIMAGE_CROP, : w // NDIMAGE_CROP])
    t_crop = timed(
        lambda: [ndimage.correlate(c, wk[i], mode="constant") for i, c in enumerate(crop)]
    )
    estimate = t_crop * NDIMAGE_CROP**2
    fastest_fft = min(warm["signal.fftconvolve"], warm["signal.oaconvolve"])
    if estimate > NDIMAGE_DROP * fastest_fft:
        notes.append(
            f"ndimage left out: est. {estimate:.2f} s > 3x fastest FFT {fastest_fft:.2f} s"
        )
        del fns["ndimage.correlate"]
    else:
        got = fns["ndimage.correlate"]()
        err = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-12))
        if err > 1e-4:
            raise AssertionError(f"ndimage.correlate disagrees: {err:.2e}")
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotated each round
        for name in order:
            times[name].append(timed(fns[name]))
    return {"times": times, "notes": notes}


def summarise(times: dict[str, list[float]]) -> dict:
    scipy_names = [n for n in times if n.startswith(("ndimage", "signal"))]
    med = {n: statistics.median(v) for n, v in times.items()}
    peer = min(scipy_names, key=med.get)
    ratios = [p / o for p, o in zip(times[peer], times["convviz"], strict=True)]
    row = {
        "peer": peer,
        "median": {n: med[n] for n in times},
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }
    if "opencv.filter2D" in times:
        cv = [c / o for c, o in zip(times["opencv.filter2D"], times["convviz"], strict=True)]
        row["opencv_ratio"] = statistics.median(cv)
    return row


# --------------------------------------------------------------------------- driver


def parse_case(text: str) -> tuple[int, int, int, int]:
    """``1000x1000:gray:15`` -> (1000, 1000, 1, 15)."""
    size, colour, k = text.split(":")
    h, w = (int(v) for v in size.split("x"))
    return h, w, {"gray": 1, "grey": 1, "rgb": 3}[colour], int(k)


def case_name(h: int, w: int, c: int, k: int) -> str:
    return f"{h}x{w} {'rgb ' if c == 3 else 'gray'} {k}x{k}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the 1 MP images")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per case (default 7)")
    ap.add_argument("--cases", nargs="*", help="only these, e.g. 1000x1000:gray:15 3000x4000:rgb:5")
    ap.add_argument("--no-wait", action="store_true", help="skip the wait-for-quiet gate")
    ap.add_argument("--wait", type=float, default=120.0, help="gate timeout in s (default 120)")
    ap.add_argument("--max-load", type=float, default=1.0, help="quiet: 1-min load <= this")
    ap.add_argument("--max-pressure", type=float, default=5.0, help="quiet: CPU some avg10 <= %%")
    ap.add_argument("--same-process", action="store_true", help="no fresh process per case")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = ap.parse_args()

    if args.one:
        print(json.dumps(run_case(*parse_case(args.one), rounds=args.rounds)))
        return

    if args.cases:
        cases = [parse_case(c) for c in args.cases]
    else:
        sizes = [SIZES["1mp"]] if args.quick else [SIZES["1mp"], SIZES["12mp"]]
        cases = [(h, w, c, k) for h, w in sizes for c in (1, 3) for k in KERNELS]

    import scipy

    try:
        import cv2

        cv_text = f"OpenCV {cv2.__version__}"
    except ImportError:
        cv_text = "OpenCV not installed: no OpenCV column (pip install opencv-python-headless)"
    print(
        f"numpy {np.__version__}, scipy {scipy.__version__}, python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores; {cv_text}"
    )
    print(
        f"{args.rounds} interleaved rounds per case, order rotated; "
        f"{'a fresh process per case' if not args.same_process else 'one process'}; "
        f"ratio = best scipy path / convviz, same round (> 1: convviz faster); at start: "
        + machine_text()
    )
    head = (
        f"{'case':<20}{'convviz':>10}{'peer':>10}  {'ratio median [range]':<22}{'best scipy':<20}"
    )
    print(head + "machine")
    worst, all_quiet = np.inf, True
    for h, w, c, k in cases:
        quiet = True
        if not args.no_wait:
            quiet, _ = wait_for_quiet(args.max_load, args.max_pressure, args.wait)
        all_quiet &= quiet
        one = f"{h}x{w}:{'rgb' if c == 3 else 'gray'}:{k}"
        if args.same_process:
            res = run_case(h, w, c, k, args.rounds)
        else:
            cmd = [sys.executable, __file__, "--one", one, "--rounds", str(args.rounds)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res = json.loads(done.stdout.strip().splitlines()[-1])
        row = summarise(res["times"])
        worst = min(worst, row["ratio_median"])
        med = row["median"]
        span = f"{row['ratio_median']:.2f}x [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]"
        line = (
            f"{case_name(h, w, c, k):<20}{med['convviz'] * 1e3:>8.1f}ms"
            f"{med[row['peer']] * 1e3:>8.1f}ms  {span:<22}{row['peer']:<20}{machine_text()}"
        )
        if not quiet:
            line += " NOT QUIET"
        if "opencv_ratio" in row:
            line += f"; opencv/convviz {row['opencv_ratio']:.2f}x"
        others = ", ".join(
            f"{n} {t * 1e3:.0f}ms" for n, t in med.items() if n not in ("convviz", row["peer"])
        )
        print(line, flush=True)
        print(f"{'':<20}others: {others}" + "".join(f"; {n}" for n in res["notes"]), flush=True)
    verdict = "faster on every case" if worst > 1 else "NOT faster on every case"
    print(f"slowest median ratio vs the best scipy path: {worst:.2f}x ({verdict})")
    if not all_quiet or args.no_wait:
        print("NOT a quiet run: " + ("the gate was skipped" if args.no_wait else "gate timed out"))


if __name__ == "__main__":
    main()
