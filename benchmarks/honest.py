"""What every convviz benchmark shares: the machine's load, a wait-for-quiet gate, and
interleaved same-round ratios.

The machines these run on are shared: other processes' load hits whichever side
happens to be timing. So comparisons are interleaved (A B, then B A, ...), each side
gets the same number of repeats, ratios are taken within a round and their median
and range reported, and every row prints the load average and the CPU pressure
(``/proc/pressure/cpu``, the share of time runnable tasks waited for a CPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "cpu_pressure",
    "interleave",
    "load_line",
    "ratio_summary",
    "rounds_order",
    "run_child",
    "wait_for_quiet",
]


def cpu_pressure() -> float | None:
    """``some avg10`` of /proc/pressure/cpu in percent (None where the kernel has no PSI)."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    fields = dict(kv.split("=") for kv in line.split()[1:])
                    return float(fields["avg10"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def load_line() -> str:
    """``load 0.42 0.61 0.70, cpu pressure 1.2%`` (1, 5, 15 min averages; PSI avg10)."""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    psi = cpu_pressure()
    return f"load {load}, cpu pressure {'n/a' if psi is None else f'{psi:.1f}%'}"


def wait_for_quiet(
    max_load: float = 0.7, max_pressure: float = 5.0, timeout_s: float = 300.0
) -> bool:
    """Wait until the 1-minute load and the CPU pressure are below the limits.

    Returns whether the machine got quiet before ``timeout_s``; prints what it waited on.
    """
    t0 = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        psi = cpu_pressure() or 0.0
        if load <= max_load and psi <= max_pressure:
            return True
        if time.monotonic() - t0 > timeout_s:
            print(f"# not quiet after {timeout_s:.0f} s ({load_line()}): measuring anyway")
            return False
        time.sleep(5)


def rounds_order(sides: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of the sides in each round, rotated round by round (A B, B A, ...)."""
    k = len(sides)
    return [[sides[(r + i) % k] for i in range(k)] for r in range(rounds)]


def run_child(argv: Sequence[str], timeout: float = 600.0) -> dict:
    """Run ``python <argv>`` in a fresh process; its last stdout line is a JSON object."""
    out = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {argv} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratio_summary(ratios: Sequence[float]) -> str:
    """``1.35x [1.26-1.41]``: the median of same-round ratios and their range."""
    r = np.asarray(ratios, dtype=float)
    return f"{np.median(r):.2f}x [{r.min():.2f}-{r.max():.2f}]"


def interleave(measure: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call each side once per round in rotated order; ``{side: [value per round]}``."""
    got: dict[str, list[float]] = {k: [] for k in measure}
    for order in rounds_order(list(measure), rounds):
        for side in order:
            got[side].append(measure[side]())
    return got
