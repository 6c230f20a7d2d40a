"""Settings of the web server process that hosts the app (call once, from ``app.py``)."""

from __future__ import annotations

import logging
import sys
import threading

__all__ = [
    "SERVER_SWITCH_INTERVAL_S",
    "SESSION_SWEEP_S",
    "free_closed_sessions",
    "tune_for_training",
]

_log = logging.getLogger(__name__)

#: GIL switch interval (s) of a process that trains next to a web server (default 0.005).
SERVER_SWITCH_INTERVAL_S = 0.0005

#: How often (s) the sessions of closed tabs past their reconnect window are shut down.
SESSION_SWEEP_S = 5.0

_sweeper: threading.Thread | None = None
_sweeper_lock = threading.Lock()


def tune_for_training() -> None:
    """Shorten the GIL switch interval, and keep the memory of closed tabs from piling up.

    The training threads (:mod:`convviz.runs`) drop the GIL around every NumPy
    call and need it back at once, but when the server's threads (the page's
    script runs, the event loop) held it, Python made them wait up to 5 ms.
    Measured on this 2-core machine with the Train page open in Chromium
    (classic): 3,430-3,540 -> 3,670-3,850 images/s (+5-8%); a plain trainer on
    its own gains 1-3%, within noise. Never lengthens an interval set shorter.

    Once per process: caps glibc's malloc arenas
    (:func:`convviz.runs.memory.limit_arenas`) and starts a thread that calls
    :func:`free_closed_sessions` every :data:`SESSION_SWEEP_S` seconds on Streamlit's
    event loop.
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), SERVER_SWITCH_INTERVAL_S))
    global _sweeper
    with _sweeper_lock:
        if _sweeper is None:  # once per process (app.py calls this on every run)
            from convviz.runs.memory import limit_arenas

            limit_arenas()  # closed tabs' memory goes back: see limit_arenas
            _sweeper = threading.Thread(target=_sweep_loop, name="convviz-sessions", daemon=True)
            _sweeper.start()


def free_closed_sessions() -> int:
    """Shut down the sessions of closed tabs whose reconnect window is over; how many.

    Streamlit 1.67 keeps a closed tab's session ``server.disconnectedSessionTTL``
    seconds (default 120) so that a reconnect finds it, in a cache that forgets an
    expired session only at its next write (the next tab that closes) and then
    without shutting it down: its session state, uploads and media files stayed in
    memory. Measured: after 6 tabs closed, 6 sessions were still stored 40 s past a
    10 s TTL, with their uploads and media. Here they expire and are shut down, as
    Streamlit's own ``close_session`` does, then the memory goes back to the OS.

    Must run on the event loop's thread (as Streamlit's session manager does).
    Reads Streamlit internals: if they moved, it does nothing.
    """
    try:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return 0
        mgr = Runtime.instance()._session_mgr
        expire = mgr._session_storage._cache.expire
        lock = mgr._storage_lock
    except Exception:  # another Streamlit: its storage is its own business
        return 0
    with lock:
        expired = expire()
    for _, info in expired:
        try:
            info.session.shutdown()
        except Exception:
            _log.exception("a closed session did not shut down")
    if expired:
        from convviz.runs.memory import release_memory

        release_memory()
    return len(expired)


def _sweep_loop() -> None:
    import time

    while True:
        time.sleep(SESSION_SWEEP_S)
        try:
            from streamlit.runtime import Runtime

            if Runtime.exists():
                loop = Runtime.instance()._get_async_objs().eventloop
                loop.call_soon_threadsafe(_sweep_on_loop)
        except Exception:  # no loop yet, or it has closed: try again later
            pass


def _sweep_on_loop() -> None:
    try:
        free_closed_sessions()
    except Exception:
        _log.exception("sweeping closed sessions failed")
