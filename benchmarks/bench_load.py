"""The load test's figures, printed (issue 17): explorer step latency and server RSS.

Runs the scenario of ``tests/test_load.py`` (8 Chromium sessions upload and step on the
Convolution page while 4 start training, cap 2, on one ``streamlit run app.py`` on
loopback) and prints p50/p90 of the explorers' steps and the RSS figures; the series goes
to ``artifacts/load/rss.csv`` and ``artifacts/load/rss.png``. Quote it with ``uptime``:
on a shared machine the latency is mostly other people's load.

    .venv/bin/python benchmarks/bench_load.py
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.load_server import Sampler, app_server, plot_series
from tests.test_load import ART, CAP, EXPLORERS, TRAINERS, _quantile, scenario


def main() -> None:
    env = {"CONVVIZ_MAX_TRAINING_RUNS": str(CAP), "CONVVIZ_ABANDON_AFTER_S": "10"}
    with app_server(env) as (url, proc):
        sampler = Sampler(proc.pid)
        try:
            r = asyncio.run(scenario(url, sampler))
        finally:
            sampler.stop()
    sampler.write_csv(ART / "rss.csv")
    levels = {"idle baseline": r["baseline"], "baseline + 100 MB": r["baseline"] + 100}
    plot_series(sampler.rows, ART / "rss.png", f"{EXPLORERS} explorers + {TRAINERS} trainers",
                levels)  # fmt: skip
    lat = r["latencies"]
    print(
        f"load: {os.getloadavg()[0]:.1f} (1-min average, at the end); uptime: "
        f"{os.popen('uptime').read().strip()}"
    )
    print(f"explorer step: p50 {1000 * _quantile(lat, 0.5):.0f} ms, "
          f"p90 {1000 * _quantile(lat, 0.9):.0f} ms (n={len(lat)})")  # fmt: skip
    print(f"server RSS: idle {r['baseline']:.0f} MB, under load median {r['load_median']:.0f} "
          f"max {r['load_peak']:.0f} MB, after closing {r['after']:.0f} MB")  # fmt: skip
    print(f"trainers at Start: {r['states']}; problems: {r['problems'] or 'none'}")


if __name__ == "__main__":
    main()
