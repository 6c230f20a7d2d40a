r"""All training runs of this server process: a :class:`RunManager` of private :class:`Run`\ s.

Why a worker thread per run (and not chunks driven from ``st.fragment`` ticks):

* A fragment tick trains only while the page is open and its script thread is
  free; any widget change or slow figure would stall training, and a browser
  refresh would cut a chunk in half. A worker thread keeps training at full
  speed whatever the page does, and the page only READS the latest snapshot.
* The state lives outside the script run (in this process-wide manager), so a
  reload reattaches to a run by its id (``?run=<id>`` in the URL) with its whole
  history.

The manager's rules:

* **Private runs.** The manager is shared by every session (the page gets it
  via ``st.cache_resource``), but each :class:`Run` owns its own trainer and
  model; its id (``secrets.token_urlsafe(16)``, 128 random bits: unguessable)
  is the only handle to it. The id lets one watch or :meth:`RunManager.copy`
  a run; its commands also need the ``owner`` token given at creation.
* **A cap on concurrent training.** At most ``max_active`` runs train at once
  (default ``os.cpu_count()``; env ``CONVVIZ_MAX_TRAINING_RUNS``); the others
  wait in a FIFO queue in state ``"queued"``. Pausing, finishing, resetting or
  discarding a run frees its slot for the next in line. A single step while
  paused runs outside the cap: it is one optimizer step.
* **Runs survive restarts.** With a runs directory (``runs_dir``; the app's
  :func:`get_manager` uses ``$CONVVIZ_RUNS_DIR`` or ``~/.cache/convviz/runs``),
  every run checkpoints itself (:mod:`convviz.runs.store`) and :meth:`RunManager.get`
  brings back a run that is not in memory from its checkpoint: paused at its
  last checkpoint (or finished, or failed), its owner still its owner. A
  checkpoint that cannot be restored is refused with a code
  (:meth:`RunManager.problem`) and ``get`` answers None. Discarding or reaping a
  run deletes its checkpoint; :meth:`RunManager.shutdown` keeps them.
* **Replicas.** Behind a proxy (deploy/README.md), ``replica`` (env
  ``CONVVIZ_REPLICA``, e.g. ``r1``) prefixes this process's run ids (``r1-<id>``)
  so the proxy can send a run's link to the replica holding it; a replica only
  restores its own runs.
* **Abandoned runs are freed.** The page calls :meth:`Run.touch` on every
  rerun and may register an ``alive`` check (is the browser session still
  connected?). A janitor thread discards runs not seen for ``abandon_after``
  seconds whose session is gone (env ``CONVVIZ_ABANDON_AFTER_S``). Once the
  worker threads of discarded runs have ended, it gives their memory back to the
  OS (:func:`convviz.runs.memory.release_memory`).

Nothing here imports streamlit.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import numpy as np

from convviz.errors import CodedError
from convviz.nn import Mnist, TrainConfig, build_model, load_mnist
from convviz.runs.memory import release_memory
from convviz.runs.run import Run
from convviz.runs.snapshot import RunOptions
from convviz.runs.store import CheckpointError, RunStore, default_runs_dir

__all__ = ["RunManager", "get_manager"]

_log = logging.getLogger(__name__)


class RunManager:
    """All training runs of this server process, a cap on concurrent training, a janitor.

    Parameters
    ----------
    max_active : int, optional
        Runs training at once; the rest queue. Default ``os.cpu_count()``.
    abandon_after : float
        Seconds without a :meth:`Run.touch` after which a run whose ``alive``
        check fails (or that has none) is discarded. ``math.inf``: never.
    janitor_interval : float, optional
        How often the janitor looks; default ``min(5, abandon_after / 4)``.
    data : Mnist, optional
        Default ``load_mnist()`` (shared, read-only).
    runs_dir : path, optional
        Where runs checkpoint themselves (created if missing); None: no checkpoints.
    replica : str, optional
        This process's name behind a proxy (``r1``): run ids start with ``r1-``.
    """

    _REPLICA_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
    _MAX_PROBLEMS = 256

    def __init__(
        self,
        max_active: int | None = None,
        abandon_after: float = 900.0,
        janitor_interval: float | None = None,
        data: Mnist | None = None,
        runs_dir: str | os.PathLike | None = None,
        replica: str | None = None,
    ) -> None:
        if max_active is None:
            max_active = os.cpu_count() or 1
        if isinstance(max_active, bool) or not isinstance(max_active, int) or max_active < 1:
            raise ValueError(f"`max_active` must be an integer >= 1, got {max_active!r}")
        if not abandon_after > 0:
            raise ValueError(f"`abandon_after` must be > 0, got {abandon_after!r}")
        self.max_active = max_active
        self.abandon_after = float(abandon_after)
        if replica is not None and not self._REPLICA_RE.match(replica):
            raise ValueError(f"`replica` must be a short lowercase name like 'r1', got {replica!r}")
        self.replica = replica
        self._data = data
        self.store = None if runs_dir is None else RunStore(runs_dir)
        self._restore_lock = threading.Lock()  # one restore at a time: never two copies
        self._problems: OrderedDict[str, tuple[float, CodedError]] = OrderedDict()
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._active: set[str] = set()
        self._queue: deque[str] = deque()
        self._ending: list[threading.Thread] = []  # workers of discarded runs, maybe running
        self._closed = threading.Event()
        self._janitor: threading.Thread | None = None
        if math.isfinite(self.abandon_after):
            interval = (
                min(5.0, self.abandon_after / 4) if janitor_interval is None else janitor_interval
            )
            self._janitor = threading.Thread(
                target=self._janitor_loop, args=(interval,), name="convviz-janitor", daemon=True
            )
            self._janitor.start()

    # ------------------------------------------------------------------ runs
    def create(
        self,
        config: TrainConfig,
        *,
        model_factory: Callable[[], Any] | None = None,
        init: str = "random",
        options: RunOptions | None = None,
        start: bool = False,
        owner: str | None = None,
    ) -> Run:
        """A new private run (state "ready"; "running"/"queued" with ``start=True``).

        ``model_factory`` builds the starting model (default: the preset
        ``config.model`` with random weights from ``config.seed``); it is
        called again on reset. ``owner``: the token its commands must carry
        (see :class:`Run`); None: whoever holds the run controls it.
        Raises ``ValueError`` for a bad config.
        """
        options = RunOptions() if options is None else options
        options.validate()
        config.validate()
        data = self._data if self._data is not None else load_mnist()
        options.check_indices(len(data.test_labels))
        run_id = secrets.token_urlsafe(16)
        if self.replica is not None:
            run_id = f"{self.replica}-{run_id}"
        run = Run(
            self,
            run_id,
            config,
            model_factory=model_factory,
            init=init,
            options=options,
            data=data,
            owner=owner,
            store=self.store,
        )
        with self._lock:
            self._runs[run_id] = run
        if start:
            run.start(token=owner)
        return run

    def copy(self, run_id: str, *, owner: str | None, start: bool = False) -> Run:
        """A new run of ``owner``'s with the settings and current weights of run ``run_id``.

        Anyone who can watch a run may copy it; the source is only read (its
        latest published model copy: exact when it is settled, at most
        ``view_interval_s`` old while it trains). The copy starts at step 0 from
        those weights, and its reset goes back to them. Raises
        ``CodedError("train.run_gone")`` when the source is gone.
        """
        source = self.get(run_id)
        if source is None:
            raise CodedError("train.err.run_gone")
        snap = source.snapshot()
        model = snap.model if snap.model is not None else snap.live_model
        params = [np.array(p) for _, p, _ in model.parameters()]  # writable copies
        buffers = [np.array(b) for _, b in model.buffers()]
        build = source._model_factory or functools.partial(
            build_model, source._initial.model, seed=source._initial.seed
        )

        def factory():  # a fresh model per run and per reset, with the copied weights
            twin = build()
            for (_, dst, _), src in zip(twin.parameters(), params, strict=True):
                dst[...] = src
            for (_, dst), src in zip(twin.buffers(), buffers, strict=True):
                dst[...] = src
            return twin

        config = TrainConfig(**snap.config)
        return self.create(
            config,
            model_factory=factory,
            init="copy",
            options=source.options,
            start=start,
            owner=owner,
        )

    def get(self, run_id: str | None) -> Run | None:
        """The run with this id, or None (unknown, expired, discarded or not restorable).

        A run not in memory but with a checkpoint in the runs directory is restored
        (once; later calls get the same :class:`Run`). A checkpoint that cannot be
        restored gives None, and :meth:`problem` tells why.
        """
        if not run_id or not isinstance(run_id, str):
            return None
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None or self.store is None:
            return run
        if self.replica is not None and not run_id.startswith(f"{self.replica}-"):
            return None  # another replica's run: never restore a second copy of it
        path = self.store.path(run_id)
        if path is None:
            return None
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None  # no checkpoint: the usual answer for an unknown id, one stat
        with self._restore_lock:
            with self._lock:
                run = self._runs.get(run_id)
            if run is not None:
                return run
            seen = self._problems.get(run_id)
            if seen is not None and seen[0] == mtime and isinstance(seen[1], CheckpointError):
                return None  # a file refused before, and it has not changed since
            try:
                run = self._restore(run_id)
            except CodedError as exc:
                _log.warning("run %s not restored: %s", run_id, exc.code, exc_info=True)
                self._problems[run_id] = (mtime, exc)
                while len(self._problems) > self._MAX_PROBLEMS:
                    self._problems.popitem(last=False)
                return None
            if run is None:
                return None
            self._problems.pop(run_id, None)
            with self._lock:
                self._runs[run_id] = run
            return run

    def problem(self, run_id: str | None) -> CodedError | None:
        """Why the run ``run_id`` could not be restored (a coded error), or None."""
        seen = self._problems.get(run_id) if isinstance(run_id, str) else None
        return None if seen is None else seen[1]

    def _restore(self, run_id: str) -> Run | None:
        """A :class:`Run` from its checkpoint; :class:`CheckpointError` if it does not fit."""
        ckpt = self.store.load(run_id)
        if ckpt is None:
            return None
        data = self._data if self._data is not None else load_mnist()  # MnistError: coded
        m = ckpt.meta
        try:
            config = TrainConfig(**m["initial_config"])
            config.validate()
            raw = dict(m["options"])
            raw["sample"] = tuple(int(i) for i in raw["sample"])
            options = RunOptions(**raw)
            options.validate()
            options.check_indices(len(data.test_labels))
            factory = None
            if m["factory"]:
                from convviz.runs.resume import unpack_model

                init_bytes = ckpt.arrays["init_model"]
                unpack_model(init_bytes)  # a damaged model file is refused now, not on reset

                def factory(init_bytes=init_bytes):
                    return unpack_model(init_bytes)

            owner = m["owner_sha256"]
            if owner is not None and not (isinstance(owner, str) and len(owner) == 64):
                raise ValueError("bad owner hash")
            return Run(
                self,
                run_id,
                config,
                model_factory=factory,
                init=str(m["init"]),
                options=options,
                data=data,
                owner_sha256=owner,
                store=self.store,
                checkpoint=ckpt,
            )
        except CodedError as exc:  # a model file inside that load_model refused
            raise CheckpointError("runs.err.checkpoint_damaged") from exc
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise CheckpointError("runs.err.checkpoint_damaged") from exc

    def discard(self, run_id: str, *, forget: bool = True) -> bool:
        """Stop a run and forget it; returns whether it existed.

        The server's own clean-up (janitor, shutdown, tests): no owner check. A
        session discards its run with :meth:`Run.discard`, which checks the token.
        ``forget``: delete its checkpoint too (False on shutdown: it comes back).
        """
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is None:
                return False
            self._release(run, "discarded")
            run._discard(forget)
            self._ending.append(run._thread)
        if forget and self.store is not None:
            self.store.delete(run_id)
        return True

    def reap(self) -> list[str]:
        """Discard the runs abandoned by their sessions; returns their ids."""
        now = time.monotonic()
        with self._lock:
            stale = [r for r in self._runs.values() if now - r.last_seen > self.abandon_after]
        freed = []
        for run in stale:
            alive = run.alive
            try:
                still_there = bool(alive()) if alive is not None else False
            except Exception:  # a broken check must not keep a run forever
                still_there = False
            if not still_there and self.discard(run.id):
                freed.append(run.id)
        return freed

    @property
    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    @property
    def active_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._active)

    @property
    def queued_ids(self) -> list[str]:
        with self._lock:
            return list(self._queue)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every run and the janitor (tests, server exit); checkpoints stay on disk.

        Waits up to ``timeout`` seconds in all for the runs' workers to end, so a
        checkpoint being written is finished (renamed into place) rather than left as a
        temporary file; a worker still busy after that is left to end on its own.
        """
        self._closed.set()
        for run_id in self.run_ids:
            self.discard(run_id, forget=False)
        deadline = time.monotonic() + timeout
        with self._lock:
            ending = list(self._ending)
        for thread in ending:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ slots (lock held)
    def _admit(self, run: Run) -> None:
        if len(self._active) < self.max_active:
            self._active.add(run.id)
            run.state = "running"
            run._cond.notify_all()
        elif run.id not in self._queue:
            self._queue.append(run.id)
            run.state = "queued"

    def _release(self, run: Run, state: str) -> None:
        self._active.discard(run.id)
        if run.id in self._queue:
            self._queue.remove(run.id)
        run.state = state
        while self._queue and len(self._active) < self.max_active:
            nxt = self._runs.get(self._queue.popleft())
            if nxt is not None and nxt.state == "queued":
                self._active.add(nxt.id)
                nxt.state = "running"
                nxt._cond.notify_all()

    def _position(self, run: Run) -> int | None:
        try:
            return self._queue.index(run.id) + 1
        except ValueError:
            return None

    def free_memory(self) -> bool:
        """Give the memory of discarded runs back to the OS once their workers have ended.

        True if it did (some worker had ended since the last call). The janitor calls it
        on every round; tests and scripts without a janitor may call it themselves.
        """
        with self._lock:
            ended = [t for t in self._ending if not t.is_alive()]
            if not ended:
                return False
            self._ending = [t for t in self._ending if t.is_alive()]
        return release_memory()

    def _janitor_loop(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.reap()
                if self.store is not None:
                    self.store.prune(keep=set(self.run_ids))
                self.free_memory()
            except Exception:
                _log.exception("janitor failed")


_manager: RunManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> RunManager:
    """The process-wide :class:`RunManager`, configured from the environment on first use.

    ``CONVVIZ_MAX_TRAINING_RUNS`` (default: number of CPU cores),
    ``CONVVIZ_ABANDON_AFTER_S`` (default 900), ``CONVVIZ_RUNS_DIR`` (default
    ``~/.cache/convviz/runs``; ``off``: no checkpoints) and ``CONVVIZ_REPLICA``
    (behind a proxy: this replica's name). A web server hosting it should also
    call :func:`convviz.ui.server.tune_for_training` once.
    """
    global _manager
    with _manager_lock:
        if _manager is None:
            cap = os.environ.get("CONVVIZ_MAX_TRAINING_RUNS")
            after = os.environ.get("CONVVIZ_ABANDON_AFTER_S")
            runs_dir = default_runs_dir()
            _manager = RunManager(
                max_active=int(cap) if cap else None,
                abandon_after=float(after) if after else 900.0,
                runs_dir=runs_dir,
                replica=os.environ.get("CONVVIZ_REPLICA") or None,
            )
        return _manager
