"""The load test's server: ``streamlit run app.py`` whose process id we keep, so its RSS
can be sampled from ``/proc/<pid>/status`` while browsers use it; and a Pillow line chart.

Used by ``tests/test_load.py`` and ``benchmarks/bench_load.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.browser import ROOT, free_port, wait_healthy


def threads(pid: int) -> int | None:
    """How many threads process ``pid`` has (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    """Resident set size of process ``pid`` in MB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Sampler:
    """Samples a process's RSS every ``interval`` seconds in a thread, with a phase label."""

    pid: int
    interval: float = 0.5
    phase: str = "start"
    rows: list[tuple[float, float, str]] = field(default_factory=list)  # (t, MB, phase)

    def __post_init__(self) -> None:
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            mb = rss_mb(self.pid)
            if mb is not None:
                self.rows.append((time.monotonic() - self._t0, mb, self.phase))
            self._stop.wait(self.interval)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def values(self, phase: str | None = None, since: float = 0.0) -> list[float]:
        return [mb for t, mb, p in self.rows if (phase is None or p == phase) and t >= since]

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            fh.write("seconds,rss_mb,phase\n")
            for t, mb, p in self.rows:
                fh.write(f"{t:.2f},{mb:.1f},{p}\n")


@contextlib.contextmanager
def app_server(
    env: dict[str, str] | None = None, timeout: float = 90.0, probe: Path | None = None
) -> Iterator[tuple]:
    """``streamlit run app.py`` on a free loopback port; yield ``(url, process)``; always stop.

    ``probe``: run it under :mod:`tests.support.mem_probe`, answering in that folder.
    """
    port = free_port()
    launch = ["-m", "streamlit"] if probe is None else ["-m", "tests.support.mem_probe", str(probe)]
    cmd = [
        sys.executable, *launch, "run", str(ROOT / "app.py"),
        "--server.headless=true", f"--server.port={port}", "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
        # Closed sessions are dropped after this many seconds (Streamlit's default: 120).
        "--server.disconnectedSessionTTL=10",
    ]  # fmt: skip
    log = open(os.environ.get("CONVVIZ_SERVER_LOG", os.devnull), "w")
    proc = subprocess.Popen(
        # MALLOC_ARENA_MAX=2: as the README's start command and deploy/launch.py run it.
        cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2",
                            **(env or {})},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, timeout)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


PHASE_COLOURS = {
    "start": (150, 150, 150),
    "warmup": (120, 120, 200),
    "idle": (40, 160, 40),
    "load": (210, 60, 40),
    "closed": (40, 90, 200),
}


def plot_series(rows, path: Path, title: str, lines: dict[str, float] | None = None) -> None:
    """A line chart of ``(t, MB, phase)`` rows (coloured by phase) with labelled levels."""
    from PIL import Image, ImageDraw

    w, h, left, right, top, bottom = 1000, 500, 70, 20, 40, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    if not rows:
        img.save(path)
        return
    t_max = max(r[0] for r in rows) or 1.0
    levels = list((lines or {}).values())
    y_max = max([r[1] for r in rows] + levels) * 1.1
    y_min = 0.0

    def xy(t: float, mb: float) -> tuple[float, float]:
        return (
            left + (w - left - right) * t / t_max,
            h - bottom - (h - top - bottom) * (mb - y_min) / (y_max - y_min),
        )

    d.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    for k in range(6):  # y grid and labels
        mb = y_min + (y_max - y_min) * k / 5
        _, y = xy(0, mb)
        d.line([left, y, w - right, y], fill=(225, 225, 225))
        d.text((5, y - 6), f"{mb:.0f} MB", fill=(0, 0, 0))
    for k in range(6):
        t = t_max * k / 5
        x, _ = xy(t, 0)
        d.text((x - 10, h - bottom + 8), f"{t:.0f} s", fill=(0, 0, 0))
    for name, mb in (lines or {}).items():
        _, y = xy(0, mb)
        d.line([left, y, w - right, y], fill=(120, 120, 120), width=1)
        d.text((left + 5, y - 12), name, fill=(80, 80, 80))
    for a, b in itertools.pairwise(rows):
        d.line([xy(a[0], a[1]), xy(b[0], b[1])], fill=PHASE_COLOURS.get(b[2], (0, 0, 0)), width=2)
    x = left
    for name, colour in PHASE_COLOURS.items():
        d.rectangle([x, 12, x + 12, 24], fill=colour)
        d.text((x + 16, 12), name, fill=(0, 0, 0))
        x += 90
    d.text((x + 20, 12), title, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
