"""Settings of the web server process that hosts the app (call once, from ``app.py``)."""

from __future__ import annotations

import sys

__all__ = ["SERVER_SWITCH_INTERVAL_S", "tune_for_training"]

#: GIL switch interval (s) of a process that trains next to a web server (default 0.005).
SERVER_SWITCH_INTERVAL_S = 0.0005


def tune_for_training() -> None:
    """Shorten the interpreter's GIL switch interval to :data:`SERVER_SWITCH_INTERVAL_S`.

    The training threads (:mod:`convviz.runs`) drop the GIL around every NumPy
    call and need it back at once, but when the server's threads (the page's
    script runs, the event loop) held it, Python made them wait up to 5 ms.
    Measured on this 2-core machine with the Train page open in Chromium
    (classic): 3,430-3,540 -> 3,670-3,850 images/s (+5-8%); a plain trainer on
    its own gains 1-3%, within noise. Never lengthens an interval set shorter.
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), SERVER_SWITCH_INTERVAL_S))
