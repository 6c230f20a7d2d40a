"""Two replicas behind nginx on loopback (deploy/launch.py): sessions stick, runs keep training.

Starts the launcher exactly as deploy/README.md does (two ``streamlit run``
replicas of the Train page and Debian's nginx, all on free loopback ports, the
config from deploy/nginx.conf.template), then drives Chromium through the proxy:

* every response a browser gets carries ``X-Convviz-Replica``, the replica nginx
  sent it to; every one of a session's (page, assets, the live panel's frames,
  reloads) names the same replica, and the two sessions land on different ones;
* each session's run id carries its replica's name, its checkpoint appears in that
  replica's runs directory (never the other's), and its step keeps growing;
* a run's link opened in the other session's browser is routed to the run's
  replica and shows that run.

Skips with the reason when nginx is missing (``apt-get install nginx-light``; CI
installs it and sets ``CONVVIZ_REQUIRE_NGINX=1``, which turns the skip into a failure).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.browser import ROOT, chromium_browser, free_port, require_browser, wait_ready
from tests.support.train_browser import APP, progress_step, start_training, wait_for_panel

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = ROOT / "artifacts" / "screenshots" / "runstore"
TIMEOUT = 120.0
WAIT_MS = 120_000  # a loaded shared machine: script runs took over 30 s here


def nginx_path() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None


def require_nginx() -> str:
    path = nginx_path()
    if path is None:
        reason = "nginx is not installed (apt-get install nginx-light): no proxy to test"
        if os.environ.get("CONVVIZ_REQUIRE_NGINX") == "1":
            pytest.fail(f"CONVVIZ_REQUIRE_NGINX=1 but {reason}")
        pytest.skip(reason)
    return path


@contextlib.contextmanager
def cluster(tmp_path: Path, nginx: str):
    """deploy/launch.py with two replicas; yields (proxy URL, runs directory); always stops."""
    ports = [free_port(), free_port()]
    listen = free_port()
    runs, work = tmp_path / "runs", tmp_path / "nginx"
    cmd = [
        sys.executable,
        str(ROOT / "deploy" / "launch.py"),
        "--ports",
        ",".join(map(str, ports)),
        "--listen",
        f"127.0.0.1:{listen}",
        "--runs-dir",
        str(runs),
        "--workdir",
        str(work),
        "--script",
        str(APP),
        "--nginx",
        nginx,
    ]
    log = open(tmp_path / "launch.log", "w")  # closed in finally
    env = {**os.environ, "CONVVIZ_MAX_TRAINING_RUNS": "2"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while "replicas behind" not in (tmp_path / "launch.log").read_text():
            assert proc.poll() is None, (tmp_path / "launch.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.25)
        yield url, runs
    finally:
        proc.terminate()  # the launcher stops nginx and the replicas
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


class Session:
    """One browser context through the proxy, recording which replica served each response."""

    def __init__(self, browser, url: str, size=(1280, 720)) -> None:
        self.ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
        self.page = self.ctx.new_page()
        self.replicas: list[str] = []
        self.page.on("response", self._saw)
        self.page.goto(url)
        wait_ready(self.page, WAIT_MS)

    def _saw(self, response) -> None:
        name = response.headers.get("x-convviz-replica")
        if name is not None:
            self.replicas.append(name)

    @property
    def replica(self) -> str:
        return self.replicas[0]

    def run_id(self) -> str:
        m = re.search(r"[?&]run=([\w-]+)", self.page.url)
        assert m, self.page.url
        return m.group(1)


def wait_file(path: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.is_file():
        assert time.monotonic() < deadline, f"no checkpoint {path.name}"
        time.sleep(0.2)


def test_sessions_stay_on_their_replica_and_their_runs_keep_training(tmp_path):
    require_browser()
    nginx = require_nginx()
    with cluster(tmp_path, nginx) as (url, runs), chromium_browser() as browser:
        # With the proxy's health check from the launcher, the next newcomers go r1, r2...
        by_replica: dict[str, Session] = {}
        for _ in range(4):  # the pool is round robin: a few newcomers reach both
            s = Session(browser, url)
            by_replica.setdefault(s.replica, s)
            if len(by_replica) == 2:
                break
        assert sorted(by_replica) == ["r1", "r2"]
        for s in by_replica.values():
            start_training(s.page, epochs=20, timeout=TIMEOUT)
        for name, s in by_replica.items():
            rid = s.run_id()
            assert rid.startswith(f"{name}-")
            other = "r2" if name == "r1" else "r1"
            wait_file(runs / name / f"{rid}.npz")  # its first validation's checkpoint
            assert not (runs / other / f"{rid}.npz").exists()
            first = progress_step(s.page)
            deadline = time.monotonic() + TIMEOUT
            while progress_step(s.page) <= first:  # it keeps training
                assert time.monotonic() < deadline, "the run stopped training"
                s.page.wait_for_timeout(300)
        SHOTS.mkdir(parents=True, exist_ok=True)
        by_replica["r1"].page.screenshot(path=str(SHOTS / "proxy_r1_1280x720.png"))
        # A reload is a new Streamlit session: the cookie takes it back to its replica.
        for s in by_replica.values():
            s.page.reload()
            wait_ready(s.page, WAIT_MS)
            wait_for_panel(s.page, TIMEOUT)
        for name, s in by_replica.items():
            assert set(s.replicas) == {name}, s.replicas  # every response, reloads included
        # A link to r1's run opened in the browser of r2: routed to r1, showing that run.
        r1, r2 = by_replica["r1"], by_replica["r2"]
        link = f"{url}/?run={r1.run_id()}"
        r2.page.set_viewport_size({"width": 1920, "height": 1080})
        doc = r2.page.goto(link)
        assert doc.headers["x-convviz-replica"] == "r1"
        wait_ready(r2.page, WAIT_MS)
        r2.replicas.clear()  # (the old page's last requests may still have come from r2)
        try:
            wait_for_panel(r2.page, TIMEOUT)
        except AssertionError:
            r2.page.screenshot(path=str(tmp_path / "link_failed.png"), full_page=True)
            raise AssertionError(f"{r2.page.url} {r2.replicas}") from None
        r2.page.wait_for_timeout(2500)  # a few live-panel refreshes
        assert set(r2.replicas) == {"r1"}, r2.replicas
        assert r2.run_id() == r1.run_id() and progress_step(r2.page) > 0
        r2.page.screenshot(path=str(SHOTS / "proxy_link_to_r1_1920x1080.png"))
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            assert r.status == 200
        for s in by_replica.values():
            s.ctx.close()
