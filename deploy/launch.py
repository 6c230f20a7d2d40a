"""Run N convviz replicas (``streamlit run app.py``) behind nginx; see deploy/README.md.

    python deploy/launch.py --replicas 2 --listen 0.0.0.0:8080 --runs-dir /var/lib/convviz/runs

Each replica listens on 127.0.0.1 only (nginx is the one door), is named ``r1``,
``r2``... (``CONVVIZ_REPLICA``: its run ids start with its name, so nginx sends a
run's ``?run=`` link to the replica that holds it) and checkpoints its runs in
``<runs-dir>/<name>`` (``--shared``: all in ``<runs-dir>``; each restores only its
own). All replicas share one cookie secret (``STREAMLIT_SERVER_COOKIE_SECRET``) so
a browser that a run link moves to another replica keeps a valid XSRF cookie.

The launcher writes ``nginx.conf`` into ``--workdir`` (``--print-config``: only
print it), starts the replicas, waits until each answers ``/_stcore/health``,
starts ``nginx -g 'daemon off;'`` and stays in the foreground; SIGTERM or
Ctrl-C stops everything. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("nginx.conf.template")


def replica_names(n: int) -> list[str]:
    return [f"r{i + 1}" for i in range(n)]


def nginx_conf(listen: str, ports: list[int], workdir: str | os.PathLike) -> str:
    """nginx.conf for replicas on 127.0.0.1:``ports`` (named r1, r2...), nginx on ``listen``."""
    names = replica_names(len(ports))
    upstreams = "\n".join(
        f"    upstream convviz_{name} {{ server 127.0.0.1:{port}; }}"
        for name, port in zip(names, ports, strict=True)
    )
    pool = "\n".join(f"        server 127.0.0.1:{port};" for port in ports)
    backends = "\n".join(f"        {name} convviz_{name};" for name in names)
    served = "\n".join(
        f'        "127.0.0.1:{port}" {name};' for name, port in zip(names, ports, strict=True)
    )
    text = TEMPLATE.read_text()
    for key, value in {
        "WORKDIR": str(Path(workdir).resolve()),
        "LISTEN": listen,
        "UPSTREAMS": upstreams,
        "POOL": pool,
        "BACKENDS": backends,
        "SERVED_BY": served,
    }.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def replica_command(port: int, script: str | os.PathLike = "app.py") -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",  # only nginx reaches a replica
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]


def replica_env(name: str, runs_dir: Path, cookie_secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CONVVIZ_REPLICA": name,
        "CONVVIZ_RUNS_DIR": str(runs_dir),
        # One secret for all: the XSRF cookie one replica sets is valid on the others.
        "STREAMLIT_SERVER_COOKIE_SECRET": cookie_secret,
        # Two glibc malloc arenas: what closed tabs freed goes back (convviz.runs.memory).
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
    }


def wait_healthy(url: str, procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a process exited early with code {p.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become healthy in time")
        time.sleep(0.25)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--listen", default="127.0.0.1:8080", help="nginx's address:port")
    ap.add_argument("--first-port", type=int, default=8501, help="replica k listens on this + k")
    ap.add_argument("--ports", help="comma-separated replica ports (instead of --first-port)")
    ap.add_argument("--runs-dir", type=Path, default=None, help="default ~/.cache/convviz/runs")
    ap.add_argument("--shared", action="store_true", help="one runs directory for all replicas")
    ap.add_argument("--workdir", type=Path, default=None, help="nginx.conf, logs, temp files")
    ap.add_argument("--script", default=str(ROOT / "app.py"))
    ap.add_argument("--nginx", default="nginx")
    ap.add_argument("--print-config", action="store_true")
    args = ap.parse_args(argv)
    if args.ports:
        ports = [int(p) for p in args.ports.split(",")]
    else:
        ports = [args.first_port + i for i in range(args.replicas)]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="convviz-nginx-"))
    if args.print_config:
        print(nginx_conf(args.listen, ports, workdir))
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_conf(args.listen, ports, workdir))
    runs = args.runs_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    if args.runs_dir is None:
        runs = runs / "convviz" / "runs"
    cookie_secret = secrets.token_hex(32)
    procs: list[subprocess.Popen] = []

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for name, port in zip(replica_names(len(ports)), ports, strict=True):
            env = replica_env(name, runs if args.shared else runs / name, cookie_secret)
            procs.append(subprocess.Popen(replica_command(port, args.script), cwd=ROOT, env=env))
        for port in ports:
            wait_healthy(f"http://127.0.0.1:{port}", procs, timeout=120)
        nginx = [args.nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"]
        procs.append(subprocess.Popen(nginx))
        host, _, port = args.listen.rpartition(":")
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        wait_healthy(f"http://{host}:{port}", procs, timeout=30)
        print(f"convviz: {len(ports)} replicas behind http://{args.listen}", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1  # something died: stop the rest
    except KeyboardInterrupt:
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
