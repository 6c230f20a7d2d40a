"""Giving freed memory back to the operating system (issue 17: the server's memory is bounded).

A run's arrays freed by Python are not always returned to the OS: glibc's
``malloc`` keeps freed blocks in its arenas (one per thread that allocated, up
to 8 per core) for reuse, and a worker thread's arena is left with holes when the
thread ends. :func:`release_memory` collects reference cycles, then asks glibc to
return every free page (``malloc_trim(0)``: all arenas, and free pages in the
middle of a heap too, since glibc 2.8). Where there is no glibc (macOS, musl) it
only collects.

The run manager's janitor calls it once the worker threads of discarded runs have
ended (:class:`~convviz.runs.manager.RunManager`).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import sys
import threading

__all__ = ["ARENA_MAX", "limit_arenas", "release_memory", "rss_bytes"]

#: glibc malloc arenas a server process keeps (glibc's default: 8 per core).
ARENA_MAX = 2

_lock = threading.Lock()


def _glibc(name: str, argtypes: list, restype):
    """The C library's function ``name`` with its signature set, or None off glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # musl: no malloc_trim, no mallopt
        return None
    fn.argtypes, fn.restype = argtypes, restype
    return fn


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    return _glibc("malloc_trim", [ctypes.c_size_t], ctypes.c_int)


def limit_arenas(n: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at ``n`` (``mallopt(M_ARENA_MAX, n)``); True if set.

    Why: every thread that allocates may get an arena of its own (up to 8 per core),
    and what a script run or a run's worker frees there is left in holes that
    ``malloc_trim`` cannot return. Measured with the load test (8 explorers, 4
    trainers, then every tab closed; 2-core machine): RSS after closing was the idle
    baseline + 127 and + 166 MB with glibc's default (``malloc_trim`` then returned
    0.6 MB), and + 12 MB with ``MALLOC_ARENA_MAX=2`` in the server's environment.
    Called from inside the running server (``ui.server.tune_for_training``) it came
    to + 91 and + 131 MB: the arenas made before it stay. So the start command sets
    the variable (README, ``deploy/launch.py``); this call is the fallback for a
    server started without it.
    """
    mallopt = _glibc("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)
    return mallopt is not None and mallopt(_M_ARENA_MAX, int(n)) == 1


_M_ARENA_MAX = -8  # glibc's malloc.h


def release_memory() -> bool:
    """Collect garbage cycles, then return free heap pages to the OS; True if trimmed."""
    with _lock:  # one at a time: a second caller would find nothing left to return
        gc.collect()
        trim = _malloc_trim()
        if trim is None:
            return False
        trim(0)
        return True


def rss_bytes() -> int | None:
    """This process's resident set size in bytes (Linux), None elsewhere."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
