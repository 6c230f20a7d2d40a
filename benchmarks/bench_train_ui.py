"""Training throughput with the Train page open and refreshing, against the headless trainer.

Same preset, same settings, same step window, timed in the same run:

1. headless: a plain :class:`convviz.nn.train.Trainer` in this process, steps
   ``[start, stop)`` (no validation falls in the window);
2. page open: ``streamlit run tests/apps/train_app.py`` in headless Chromium,
   the preset picked in the sidebar, **Start** pressed; the window's rate is read
   from the progress text of the page's live panel at its redraws, which a
   MutationObserver there records (one change = one redraw with new data;
   nothing polls the page);
3. headless again (load from other processes hits both alike; the mean counts);
   ``--rounds`` repeats 2-3 (default 3) and prints the median ratio.

Printed: images/s of each, the ratio page/headless (target >= 0.80) and the
page's refresh rate while training (target >= 1 Hz).

    .venv/bin/python benchmarks/bench_train_ui.py [--model classic] [--start 10] [--stop 700]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from convviz.nn import TrainConfig, Trainer, build_model
from tests.support.browser import chromium_page, wait_ready
from tests.support.train_browser import panel_frame, start_training, train_server

OBSERVER = """() => {
  window.__redraws = [];
  let last = "";
  const note = () => {
    const el = document.querySelector("[data-testid='progress']");
    const text = el ? el.textContent : "";  // textContent: no forced layout
    if (text === last) return;
    last = text;
    const m = text.match(/step ([\\d,]+)\\//);
    if (m) window.__redraws.push([performance.now(), parseInt(m[1].replace(/,/g, ""), 10)]);
  };
  new MutationObserver(note).observe(document.body,
    {subtree: true, childList: true, characterData: true});
  note();
}"""

# The page's defaults (tiny/classic from the sidebar, 5,000 training images, validation every 50).
BATCH = 64


def config(model: str) -> TrainConfig:
    return TrainConfig(model=model, train_size=5_000, val_size=1_000, eval_every=50, epochs=20)


def headless(model: str, start: int, stop: int) -> float:
    t = Trainer(config(model))
    t.train_steps(start)
    t0 = time.perf_counter()
    t.train_steps(stop - start)
    return (stop - start) * BATCH / (time.perf_counter() - t0)


def page_open(model: str, start: int, stop: int) -> tuple[float, float]:
    with train_server() as url, chromium_page(1400, 1000) as page:
        page.goto(url)
        wait_ready(page)
        start_training(page, epochs=20, model=model)

        n_params = f"{build_model(model).count_params():,} parameters"  # the page's summary
        expander = page.locator("[data-testid='stExpander']").filter(has_text=n_params)
        assert expander.count() == 1, f"the page does not show {model}'s {n_params}"

        # The page records its own redraws: a MutationObserver in the live panel's frame
        # notes (time, step) whenever the progress text changes. Python looks only once a
        # second, so the benchmark adds next to nothing to the browser's work (polling the
        # text every 20 ms from here cost the training 10-20% in an earlier version).
        panel = panel_frame(page)
        panel.evaluate(OBSERVER)
        while True:
            page.wait_for_timeout(1000)
            assert panel_frame(page) is panel, "the live panel was rebuilt: its records are lost"
            last = panel.evaluate("() => window.__redraws.length ? window.__redraws.at(-1)[1] : -1")
            if last >= stop:
                break
        events = [(t / 1000, step) for t, step in panel.evaluate("() => window.__redraws")]
        events = [e for e in events if e[1] >= start]
        (t0, s0), (t1, s1) = events[0], events[-1]
        wall = t1 - t0
        page.get_by_role("button", name="Pause", exact=True).click()
        return (s1 - s0) * BATCH / wall, (len(events) - 1) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="classic")
    ap.add_argument("--start", type=int, default=10)
    ap.add_argument("--stop", type=int, default=700)
    ap.add_argument("--rounds", type=int, default=3, help="headless, page, headless per round")
    args = ap.parse_args()
    print(f"preset {args.model}, batch {BATCH}, steps [{args.start}, {args.stop}), 2-core machine")
    ratios, rates = [], []
    h1 = headless(args.model, args.start, args.stop)
    for r in range(1, args.rounds + 1):
        p, hz = page_open(args.model, args.start, args.stop)
        h2 = headless(args.model, args.start, args.stop)
        h = (h1 + h2) / 2  # the headless runs on either side of the page run
        ratios.append(p / h)
        rates.append(hz)
        print(
            f"round {r}: headless {h1:7.1f} / {h2:7.1f} images/s, page open {p:7.1f} images/s, "
            f"ratio {p / h:.3f}, page redraws with new data {hz:.2f} Hz"
        )
        h1 = h2
    print(
        f"ratio page/headless: median {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}, target >= 0.80); "
        f"refresh {min(rates):.2f}-{max(rates):.2f} Hz (target >= 1)"
    )


if __name__ == "__main__":
    main()
