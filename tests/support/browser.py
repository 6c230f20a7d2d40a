"""Start/stop ``streamlit run app.py`` and drive it with Playwright's Chromium.

Used by ``tests/test_browser.py`` and ``benchmarks/bench_ui.py``. Chromium is
Debian's (``apt-get install chromium``): ``playwright install`` cannot
download browsers here, so we launch it by path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"


def chromium_path() -> str | None:
    """Chromium's path: ``$CONVVIZ_CHROMIUM`` if set, else /usr/bin/chromium or on PATH."""
    override = os.environ.get("CONVVIZ_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def browser_missing_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        return "no Chromium found (apt-get install chromium, or set CONVVIZ_CHROMIUM)"
    return None


def require_browser() -> None:
    """Skip with the reason when no browser is here; fail under CONVVIZ_REQUIRE_BROWSER=1."""
    import pytest  # only the tests need it; the benchmarks import this module too

    reason = browser_missing_reason()
    if reason:
        if os.environ.get("CONVVIZ_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CONVVIZ_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc, url: str, timeout: float) -> None:
    """Wait until the ``streamlit run`` process ``proc`` answers ``/_stcore/health``."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("streamlit did not become healthy in time")
        time.sleep(0.25)


@contextlib.contextmanager
def streamlit_server(timeout: float = 60.0, script: Path | None = None) -> Iterator[str]:
    """``streamlit run app.py`` (or ``script``) on a free port; yield its URL; always stop it."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script or ROOT / "app.py"),
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]
    # CONVVIZ_SERVER_LOG=path keeps the server's output (for debugging a browser test).
    log = open(os.environ.get("CONVVIZ_SERVER_LOG", os.devnull), "w")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # a script under tests/ imports convviz too
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@contextlib.contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """``root``'s files over HTTP on a free loopback port, quietly: yields the base URL
    (tests host a component's page in a plain page of their own this way)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium_browser():
    """Headless Chromium (Debian's binary, launched by path)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def chromium_page(width: int = 1500, height: int = 1000, browser=None):
    """A fresh page (its own context: no cookies or session shared between pages)."""
    if browser is None:
        with chromium_browser() as b, chromium_page(width, height, b) as page:
            yield page
        return
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        yield context.new_page()
    finally:
        context.close()


def wait_ready(page, timeout: float = 30_000) -> None:
    """Wait until the script run finished (and give the frontend a beat to paint)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => { const a = document.querySelector(\"[data-testid='stApp']\");"
        " return a && a.getAttribute('data-test-script-state') === 'notRunning'; }",
        timeout=timeout,
    )
    page.wait_for_timeout(300)


def wait_painted(page, timeout: float = 60_000) -> None:
    """After :func:`wait_ready`: wait until every chart has drawn (for screenshots)."""
    wait_ready(page, timeout)
    page.wait_for_function(
        """() => {
          if (document.querySelector("[data-testid='stSkeleton']")) return false;
          const charts = document.querySelectorAll("[data-testid='stPlotlyChart']");
          return Array.from(charts).every(c => c.querySelector('.main-svg'));
        }""",
        timeout=timeout,
    )
    page.wait_for_timeout(500)


def open_kernel_cell_editor(page, value: str, attempts: int = 10) -> None:
    """Type ``value`` into the first grid's bottom-right cell (the caller's Enter commits it).

    The grids are convviz's cell editor (plain inputs in a component frame); see
    :func:`tests.support.cell_editor.open_kernel_cell_editor`.
    """
    from tests.support.cell_editor import open_kernel_cell_editor as _open

    _open(page, value, attempts)


def assert_no_exception(page) -> None:
    n = page.locator("[data-testid='stException']").count()
    assert n == 0, f"the page shows {n} exception box(es)"
