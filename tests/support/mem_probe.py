"""``python -m tests.support.mem_probe DIR run app.py ...``: Streamlit with a memory probe.

Used to find where a server's memory goes (issue 17): a thread polls ``DIR/request``
(one word) and answers in ``DIR/answer.json``:

* ``report``: RSS, live sessions (connected and kept for reconnection), runs, the PNG
  cache, live-panel feeds, uploads and media files held, threads, traced memory;
* ``mark``: a tracemalloc snapshot to compare against (with ``CONVVIZ_TRACEMALLOC=1``);
* ``diff``: the lines that hold the most memory allocated since the mark;
* ``trim``: ``malloc_trim(0)``, with the RSS before and after.

A test tool: it reads Streamlit's internals, which move between versions.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _sessions() -> dict:
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return {}
    rt = Runtime.instance()
    mgr = rt._session_mgr
    stored = mgr._session_storage._cache
    up = rt._uploaded_file_mgr
    media = rt.media_file_mgr._storage
    return {
        "active": len(mgr._active_session_info_by_id),
        "stored_raw": len(stored._data),  # without reaping the expired ones
        "uploads_sessions": len(up.file_storage),
        "uploads_bytes": sum(
            len(f.data) for files in up.file_storage.values() for f in files.values()
        ),
        "media_files": len(media._files_by_id),
        "media_bytes": sum(f.content_size for f in media._files_by_id.values()),
    }


def _convviz() -> dict:
    out: dict = {}
    manager = sys.modules.get("convviz.runs.manager")
    if manager is not None and manager._manager is not None:
        m = manager._manager
        out["runs"] = len(m.run_ids)
        out["active"] = len(m.active_ids)
        out["queued"] = len(m.queued_ids)
    render = sys.modules.get("convviz.render")
    if render is not None:
        out["png_cache"] = render.png_cache_info()
    panel = sys.modules.get("convviz.ui.live_panel")
    if panel is not None:
        out["feeds"] = sum(len(f.tokens()) for f in panel._feeders.values())
    return out


def _answer(word: str, state: dict) -> dict:
    gc.collect()
    out: dict = {"word": word, "rss_mb": _rss_mb(), "threads": threading.active_count()}
    with contextlib.suppress(Exception):
        out["sessions"] = _sessions()
    with contextlib.suppress(Exception):
        out["convviz"] = _convviz()
    if tracemalloc.is_tracing():
        out["traced_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
    if word == "mark" and tracemalloc.is_tracing():
        state["mark"] = tracemalloc.take_snapshot()
    elif word == "diff" and "mark" in state:
        now = tracemalloc.take_snapshot()
        stats = now.compare_to(state["mark"], "traceback")[:15]
        out["diff"] = [
            {"kb": s.size_diff / 1024, "count": s.count_diff, "where": s.traceback.format()[-6:]}
            for s in stats
        ]
    elif word == "trim":
        before = _rss_mb()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        out["trim"] = {"before_mb": before, "after_mb": _rss_mb()}
    return out


def _loop(folder: Path) -> None:
    state: dict = {}
    req, ans = folder / "request", folder / "answer.json"
    while True:
        time.sleep(0.2)
        if not req.exists():
            continue
        word = req.read_text().strip()
        try:
            out = _answer(word, state)
        except Exception as exc:  # a probe must not stop the server
            out = {"word": word, "error": repr(exc)}
        tmp = folder / "answer.tmp"
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, ans)
        req.unlink()


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    if os.environ.get("CONVVIZ_TRACEMALLOC") == "1":
        tracemalloc.start(6)
    threading.Thread(target=_loop, args=(folder,), name="mem-probe", daemon=True).start()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[2:]]
    sys.exit(cli.main())


def ask(folder: Path, word: str, timeout: float = 60.0) -> dict:
    """Ask the probe of the server started with ``folder``; its answer."""
    ans = folder / "answer.json"
    ans.unlink(missing_ok=True)
    (folder / "request").write_text(word)
    deadline = time.monotonic() + timeout
    while not ans.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer to {word!r}")
        time.sleep(0.1)
    return json.loads(ans.read_text())


if __name__ == "__main__":
    main()
