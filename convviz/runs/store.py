"""Checkpoints: one ``.npz`` per run in a runs directory, written atomically, read defensively.

A checkpoint holds everything a run needs to come back after the server
restarts and to train on exactly as if it had never stopped: its id, the
SHA-256 of its owner token (never the token: the owner's cookie still proves
ownership, a stolen file does not give it), its config, options, state and
step, the trainer's history, the timeline, the model's weights (the
:meth:`~convviz.nn.model.Sequential.save` bytes, read back by
:func:`~convviz.nn.model.load_model`), the optimizer's slots, the shuffling
generator's state and the epoch's order.

The rules:

* **Format.** ``np.savez`` members only: a ``__meta__`` JSON string (config,
  state, generator state, frame descriptions) and plain numeric arrays. Read
  with ``allow_pickle=False``: nothing in a checkpoint is ever unpickled.
* **Atomic.** :meth:`RunStore.save` writes a temporary file in the same
  directory, flushes and fsyncs it, ``os.replace``\\ s it over the run's file
  and fsyncs the directory: a crash at any point leaves the previous checkpoint
  or the new one, whole. Temporary files a killed writer left are removed when
  a store opens and by :meth:`RunStore.prune` (once they are a minute old: a
  younger one may be a write in flight).
* **Bounded.** One file per run (replaced at every save); the manager deletes
  it when the run is discarded or reaped, and :meth:`RunStore.prune` keeps at
  most ``max_files`` files younger than ``max_age_s``.
* **Refusals are coded.** A missing, cut, garbled, pickled or foreign file is a
  :class:`CheckpointError` (``runs.err.checkpoint_damaged`` or
  ``runs.err.checkpoint_format``) with no path or exception text in it.
* **Ids are checked** against :data:`RUN_ID_RE` before any path is made: a
  ``?run=`` value from a URL never names a file outside the directory.

Nothing here imports streamlit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convviz.errors import CodedError

__all__ = [
    "FORMAT",
    "RUN_ID_RE",
    "Checkpoint",
    "CheckpointError",
    "RunStore",
    "default_runs_dir",
    "owner_hash",
    "read_checkpoint",
]

FORMAT = "convviz.runs/1"
#: Run ids: ``secrets.token_urlsafe(16)`` (22 characters), optionally after a replica
#: name and a dash (``r1-...``, see deploy/README.md). Nothing else names a file.
RUN_ID_RE = re.compile(r"^(?:[a-z][a-z0-9]{0,15}-)?[A-Za-z0-9_-]{16,64}$")
SUFFIX = ".npz"
#: A checkpoint larger than this is refused unread (a classic run's is ~6 MB).
MAX_FILE_BYTES = 256 << 20
_MAX_META_BYTES = 4 << 20

_log = logging.getLogger(__name__)

#: Test hook: called with the temporary path after it is written and fsynced, before
#: ``os.replace`` (the kill-during-write test blocks here). None in production.
before_replace: Callable[[Path], None] | None = None


class CheckpointError(CodedError):
    """A checkpoint that cannot be restored (a ``ValueError``); no path or file text in it."""


def owner_hash(token: str | None) -> str | None:
    """The SHA-256 (hex) of an owner token, or None: what a checkpoint keeps instead of it."""
    if token is None:
        return None
    return hashlib.sha256(token.encode()).hexdigest()


def default_runs_dir() -> Path | None:
    """``$CONVVIZ_RUNS_DIR``, else ``$XDG_CACHE_HOME/convviz/runs`` (``~/.cache/convviz/runs``).

    ``CONVVIZ_RUNS_DIR=off`` (or ``none``, ``0``, empty) turns checkpoints off: None.
    """
    env = os.environ.get("CONVVIZ_RUNS_DIR")
    if env is not None:
        if env.strip().lower() in ("", "off", "none", "0"):
            return None
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "convviz" / "runs"


@dataclass(frozen=True)
class Checkpoint:
    """What :meth:`RunStore.load` read: the JSON metadata and the arrays (all in memory)."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


class RunStore:
    """The runs directory: one checkpoint file per run id.

    Parameters
    ----------
    root : path
        Created (mode 0700) if missing.
    max_files : int
        :meth:`prune` keeps at most this many checkpoints (the newest).
    max_age_s : float
        :meth:`prune` deletes checkpoints not written for this long.
    """

    def __init__(
        self, root: str | os.PathLike, max_files: int = 200, max_age_s: float = 7 * 86400.0
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_files = int(max_files)
        self.max_age_s = float(max_age_s)
        self.clean_temps()

    #: A temporary file this old is a dead writer's (a write takes well under a second);
    #: younger ones may be another process's write in flight (a shared runs directory).
    TEMP_MAX_AGE_S = 60.0

    # ------------------------------------------------------------------ paths
    def path(self, run_id: object) -> Path | None:
        """The checkpoint path of ``run_id``, or None when it is not a run id."""
        if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
            return None
        return self.root / f"{run_id}{SUFFIX}"

    def exists(self, run_id: object) -> bool:
        p = self.path(run_id)
        return p is not None and p.is_file()

    def ids(self) -> list[str]:
        """Run ids with a checkpoint here."""
        return sorted(
            p.name[: -len(SUFFIX)]
            for p in self.root.glob(f"*{SUFFIX}")
            if RUN_ID_RE.match(p.name[: -len(SUFFIX)])
        )

    def clean_temps(self, min_age_s: float | None = None) -> list[Path]:
        """Remove the temporary files of writes that never finished (a killed process).

        Only those older than ``min_age_s`` (default :attr:`TEMP_MAX_AGE_S`).
        """
        min_age = self.TEMP_MAX_AGE_S if min_age_s is None else min_age_s
        now = time.time()
        gone = []
        for p in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime >= min_age:
                    p.unlink()
                    gone.append(p)
        return gone

    # ------------------------------------------------------------------ write
    def save(self, run_id: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> int:
        """Write the checkpoint of ``run_id`` atomically; returns its size in bytes.

        Raises ``OSError`` (a full disk: ``errno.ENOSPC``) with the previous checkpoint
        untouched and no temporary file left.
        """
        final = self.path(run_id)
        if final is None:
            raise ValueError(f"`run_id` is not a run id: {run_id!r}")
        payload = json.dumps({**meta, "format": FORMAT, "run_id": run_id})
        fd, tmp_name = tempfile.mkstemp(prefix=f".{run_id}.", suffix=".tmp", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, __meta__=np.array(payload), **arrays)
                f.flush()
                os.fsync(f.fileno())
                size = f.tell()
            if before_replace is not None:
                before_replace(tmp)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._sync_dir()
        return size

    def _sync_dir(self) -> None:
        try:
            fd = os.open(self.root, os.O_RDONLY)
        except OSError:  # pragma: no cover - a platform without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover - some filesystems refuse; the rename stands
            pass
        finally:
            os.close(fd)

    def delete(self, run_id: str) -> bool:
        p = self.path(run_id)
        if p is None:
            return False
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        except OSError:
            _log.warning("could not delete the checkpoint of run %s", run_id, exc_info=True)
            return False
        return True

    def prune(self, keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Delete checkpoints older than ``max_age_s`` and the oldest beyond ``max_files``.

        Runs in ``keep`` (those in memory) are never deleted. Returns the ids deleted.
        Also removes dead writers' temporary files.
        """
        self.clean_temps()
        now = time.time()
        dated = []
        for run_id in self.ids():
            if run_id in keep:
                continue
            try:
                dated.append((self.path(run_id).stat().st_mtime, run_id))
            except OSError:
                continue
        dated.sort(reverse=True)  # newest first
        room = max(self.max_files - len(keep), 0)
        gone = [
            rid for i, (mtime, rid) in enumerate(dated) if i >= room or now - mtime > self.max_age_s
        ]
        return [rid for rid in gone if self.delete(rid)]

    # ------------------------------------------------------------------ read
    def load(self, run_id: str) -> Checkpoint | None:
        """The checkpoint of ``run_id``; None when there is none (or it is not a run id).

        Raises :class:`CheckpointError` for a file that is not a whole checkpoint of
        this format, for this run.
        """
        p = self.path(run_id)
        if p is None:
            return None
        try:
            fh = open(p, "rb")  # closed below, after the size check
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError("runs.err.checkpoint_damaged") from exc
        with fh:
            try:
                size = os.fstat(fh.fileno()).st_size
            except OSError as exc:  # pragma: no cover
                raise CheckpointError("runs.err.checkpoint_damaged") from exc
            if size > MAX_FILE_BYTES:
                raise CheckpointError("runs.err.checkpoint_damaged")
            ckpt = read_checkpoint(fh)
        if ckpt.meta.get("run_id") != run_id:  # a file renamed onto another run's id
            raise CheckpointError("runs.err.checkpoint_damaged")
        return ckpt


def read_checkpoint(fh) -> Checkpoint:
    """Parse an open checkpoint file; :class:`CheckpointError` for anything else."""
    try:
        data = np.load(fh, allow_pickle=False)
    except Exception as exc:  # not a zip, a pickle refused, a bare .npy: all the same to us
        raise CheckpointError("runs.err.checkpoint_damaged") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError("runs.err.checkpoint_damaged")
    with data:
        try:
            if "__meta__" not in data.files:
                raise ValueError("no metadata")
            if data.zip.getinfo("__meta__.npy").file_size > _MAX_META_BYTES:
                raise ValueError("metadata too large")
            raw = data["__meta__"]
            if raw.shape != () or raw.dtype.kind != "U":
                raise ValueError("metadata is not a string")
            meta = json.loads(str(raw))
            if not isinstance(meta, dict):
                raise ValueError("metadata is not an object")
        except Exception as exc:
            raise CheckpointError("runs.err.checkpoint_damaged") from exc
        if meta.get("format") != FORMAT:
            raise CheckpointError("runs.err.checkpoint_format")
        arrays: dict[str, np.ndarray] = {}
        try:
            for key in data.files:
                if key == "__meta__":
                    continue
                arr = data[key]  # CRC-checked as it is read: a flipped byte fails here
                if arr.dtype.kind not in "biufU":
                    raise ValueError("unexpected dtype")
                arrays[key] = arr
        except Exception as exc:  # zipfile.BadZipFile, a short read, a refused object array
            raise CheckpointError("runs.err.checkpoint_damaged") from exc
    return Checkpoint(meta, arrays)
