"""Data-parallel training on two processes: each computes half of every batch.

:class:`ProcessPlan` runs the training steps of a :class:`~convviz.nn.fast.FastPlan`
with the batch's second half in a helper process, so the two halves run on two cores
without sharing one interpreter. Threads (``FastPlan``'s own slices) spend part of
their time waiting for the GIL between the many small NumPy calls of a step: on
classic at batch 64 (``benchmarks/profile_train.py``, one run) a step on two threads
took 1/1.26 of one thread's time, on two processes 1/1.57; in ``bench_train.py``'s
interleaved rounds the processes trained 0-10% more images/s than the threads
(three runs, medians).

How a step goes, for a batch of N rows:

* ``forward(x, training=True)``: the parameters and the last ``N // 2`` rows are
  written to memory both processes map (a file in ``/dev/shm``); the helper runs
  its half through its own ``FastPlan`` on one thread while this process runs the
  first half on one thread; the helper's logits come back through the same memory.
* ``backward(dlogits)``: the same split; the helper's gradients are added to the
  model's, so the model holds the full batch's gradient, as ``FastPlan`` leaves it.
  The optimizer then steps the model here, as usual.

The helper is built from the model's own file format (:meth:`Sequential.save`,
nothing pickled) and starts in the background at the first training pass it could
share (so a plan that only evaluates, or trains on small batches, starts none): until
it has said it is ready
(about half a second), steps run on threads through the same ``FastPlan``, with
the same numbers up to float rounding. Anything the helper cannot do falls back to
threads the same way, for that pass and those after it: evaluation, batches of
fewer than 32 rows, models with ``BatchNorm`` (batch statistics need the whole
batch) or ``Dropout`` (its random masks would then depend on timing), an
``input_grad`` model, and a helper that failed or died. The helper ends with
:meth:`ProcessPlan.close`, with the plan's garbage collection, or when this
process ends (its command pipe closes).

>>> from convviz.nn.presets import build_model
>>> model = build_model("tiny")
>>> plan = ProcessPlan(model)
>>> x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
>>> plan.wait_ready(30)
True
>>> bool(np.allclose(plan.forward(x, training=True), model.forward(x), atol=1e-5))
True
>>> plan.remote_passes
1
>>> plan.close()
"""

from __future__ import annotations

import json
import mmap
import os
import select
import subprocess
import sys
import tempfile
import weakref

import numpy as np

from convviz.nn.fast import FastPlan, blas_threads
from convviz.nn.layers import BatchNorm, Dropout, walk_layers
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.model import Sequential
from convviz.nn.optim import packed_span

__all__ = ["ProcessPlan"]

_MIN_ROWS = 32  # below this a half is too small to pay for the hand-off
_ROWS = 256  # the shared buffers' first capacity in rows (grown on demand)


class _Layout:
    """Where each array lives in the shared memory: offsets in elements of ``dtype``."""

    def __init__(self, model: Sequential, rows: int) -> None:
        self.dtype = np.dtype(model.dtype)
        self.rows = int(rows)
        self.sizes = [p.size for _, p, _ in model.parameters()]
        self.shapes = [p.shape for _, p, _ in model.parameters()]
        self.x_shape = tuple(model.input_shape)
        self.classes = int(np.prod(model.output_shape))
        n_params = sum(self.sizes)
        x_size = self.rows * int(np.prod(self.x_shape))
        y_size = self.rows * self.classes
        self.parts = {"params": n_params, "grads": n_params, "x": x_size, "y": y_size}
        self.parts["d"] = y_size
        self.parts["labels"] = self.rows  # class numbers, exact in any float dtype
        self.parts["loss"] = 1  # the helper's share of the batch's mean loss
        self.nbytes = sum(self.parts.values()) * self.dtype.itemsize

    def to_json(self) -> dict:
        return {"dtype": self.dtype.str, "rows": self.rows}

    def views(self, buf) -> dict[str, np.ndarray]:
        flat = np.frombuffer(buf, self.dtype, count=self.nbytes // self.dtype.itemsize)
        out, at = {}, 0
        for name, size in self.parts.items():
            out[name] = flat[at : at + size]
            at += size
        out["x"] = out["x"].reshape(self.rows, *self.x_shape)
        out["y"] = out["y"].reshape(self.rows, self.classes)
        out["d"] = out["d"].reshape(self.rows, self.classes)
        return out

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """The per-parameter views of a flat ``params`` or ``grads`` region."""
        out, at = [], 0
        for size, shape in zip(self.sizes, self.shapes, strict=True):
            out.append(flat[at : at + size].reshape(shape))
            at += size
        return out


def _shared_file(nbytes: int):
    """A new file of ``nbytes`` in memory (``/dev/shm`` where there is one) and its map.

    ``nbytes=0``: the file only (the map is ``None``).
    """
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix="convviz-dp-", dir=folder)
    try:
        os.ftruncate(fd, nbytes)
        buf = mmap.mmap(fd, nbytes) if nbytes else None
    finally:
        os.close(fd)
    return path, buf


class _Helper:
    """The helper process and our end of its pipes and shared memory."""

    def __init__(self, model: Sequential, rows: int) -> None:
        self.layout = _Layout(model, rows)
        self.path, self.buf = _shared_file(self.layout.nbytes)
        self.views = self.layout.views(self.buf)
        self.params = self.layout.split(self.views["params"])
        self.grads = self.layout.split(self.views["grads"])
        # The model goes by file too: a pipe holds 64 KiB, and the helper reads nothing
        # until its imports are done (our constructor must not wait for that).
        self.model_path, _ = _shared_file(0)
        with open(self.model_path, "wb") as fh:
            model.save(fh, metadata={})
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from convviz.nn.parallel import _main; _main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                close_fds=True,
            )
        except OSError:  # no process: leave no file behind either
            self._unlink()
            raise
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self._out, select.POLLIN)
        head = {"path": self.path, "model": self.model_path, **self.layout.to_json()}
        self.ready = False
        self.alive = True
        try:
            self._write(json.dumps(head).encode() + b"\n")
        except OSError:
            self.close()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._in, view) :]

    def _reply(self, timeout: float | None = None) -> bytes | None:
        """The helper's next one-line reply; ``None`` if none came within ``timeout``."""
        line = b""
        while not line.endswith(b"\n"):
            if timeout is not None and not self._poll.poll(int(timeout * 1000)):
                return None  # (poll, not select: a server may hold fds past select's 1024)
            chunk = os.read(self._out, 64)
            if not chunk:  # the helper ended
                raise OSError("the helper process ended")
            line += chunk
        return line.strip()

    def poll_ready(self, timeout: float = 0.0) -> bool:
        """Whether the helper has started (waits up to ``timeout`` seconds for it)."""
        if self.ready or not self.alive:
            return self.ready
        try:
            got = self._reply(timeout)
        except OSError:
            self.close()
            return False
        if got is None:
            return False
        if got != b"R":
            self.close()
            return False
        self.ready = True
        self._unlink()  # the helper has mapped and read them: the names can go
        return True

    def _unlink(self) -> None:
        for path in (self.path, self.model_path):
            try:
                os.unlink(path)
            except OSError:
                pass

    def send(self, command: bytes) -> bool:
        """Send one command; False (and the helper closed) if it has gone."""
        try:
            self._write(command + b"\n")
        except OSError:
            self.close()
            return False
        return True

    def done(self) -> bool:
        """Wait for the reply to the last command; False (and the helper closed) on failure."""
        try:
            ok = self._reply() == b"K"
        except OSError:
            ok = False
        if not ok:
            self.close()
        return ok

    def close(self) -> None:
        if not self.alive:
            return
        self.alive = self.ready = False
        try:
            self.proc.stdin.close()  # the helper's read ends: it exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._unlink()


def _close_helper(holder: list) -> None:
    if holder and holder[0] is not None:
        holder[0].close()


class ProcessPlan:
    """A :class:`~convviz.nn.fast.FastPlan` whose training steps split the batch over two processes.

    Parameters
    ----------
    model : Sequential
        Its weights are shared (copied to the helper before each step) and its
        ``grads`` receive the full batch's gradients.
    workers : int or None
        Threads of the fallback ``FastPlan`` (default: 2 if the machine has 2+ cores).

    ``forward(x, training)`` and ``backward(dlogits)`` behave as ``FastPlan``'s;
    ``remote_passes`` counts the training passes the helper shared.
    """

    def __init__(self, model: Sequential, workers: int | None = None) -> None:
        self.model = model
        self.fast = FastPlan(model, workers=workers)
        self.remote_passes = 0
        layers = list(walk_layers(model.layers))
        self._eligible = (
            os.name == "posix"
            and (os.cpu_count() or 1) >= 2
            and not any(isinstance(layer, BatchNorm | Dropout) for layer in layers)
        )
        self._holder: list[_Helper | None] = [None]
        self._key = self._model_key()
        self._pending: tuple | None = None  # the helper's half of the last forward
        self._started = False  # the helper starts with the first pass it could share
        weakref.finalize(self, _close_helper, self._holder)

    @property
    def workers(self) -> int:
        return self.fast.workers

    def _model_key(self) -> tuple:
        m = self.model
        return (np.dtype(m.dtype).str, tuple(p.shape for _, p, _ in m.parameters()))

    def _start(self, rows: int) -> None:
        self._started = True
        try:
            self._holder[0] = _Helper(self.model, rows)
        except OSError:  # no process could start (limits, no /dev/shm...): threads it is
            self._holder[0] = None

    @property
    def _helper(self) -> _Helper | None:
        h = self._holder[0]
        return h if h is not None and h.alive else None

    def start(self) -> None:
        """Start the helper now, if the model can use one (the trainer does, before it
        loads the data, so both happen at once); training never waits for it."""
        if self._eligible and not self._started:
            self._start(_ROWS)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """:meth:`start`, and wait up to ``timeout`` s for the helper; whether it is ready
        (tests and benchmarks use this)."""
        self.start()
        h = self._helper
        return h is not None and h.poll_ready(timeout)

    def close(self) -> None:
        """End the helper process (the plan keeps working, on threads)."""
        _close_helper(self._holder)
        self._eligible = False

    def _use_helper(self, n: int, training: bool) -> _Helper | None:
        if not (training and self._eligible and n >= 2 * _MIN_ROWS) or self.model.input_grad:
            return None
        if self._model_key() != self._key:  # astype or new parameters: the helper is stale
            self.close()
            return None
        if not self._started:
            self._start(max(_ROWS, n))
        h = self._helper
        if h is None or not h.poll_ready():
            return None
        if n - n // 2 > h.layout.rows or n // 2 > h.layout.rows:  # a bigger batch: more room
            h.close()
            self._start(max(n, 2 * h.layout.rows))
            return None  # this pass on threads; the new helper takes over when ready
        return h

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits ``(N, classes)`` for ``x`` (N, H, W, C), as ``model.forward`` computes them."""
        self._pending = None
        h = self.model.prepare(x)
        helper = self._use_helper(len(h), training)
        if helper is None:
            return self.fast.forward(h, training)
        n = len(h)
        mine, theirs = n - n // 2, n // 2
        self._send_weights(helper)
        helper.views["x"][:theirs] = h[mine:]
        if blas_threads() not in (0, 1):
            blas_threads(1)  # the other core is the helper's
        if not helper.send(b"F%d" % theirs):
            return self.fast.forward(h, training)
        out = np.empty((n, helper.layout.classes), self.model.dtype)
        out[:mine] = self.fast.forward(h[:mine], True, workers=1)
        if not helper.done():  # the helper failed: the pass again, on threads
            return self.fast.forward(h, training)
        out[mine:] = helper.views["y"][:theirs]
        self._pending = (helper, mine, theirs, h)
        self.remote_passes += 1
        return out

    __call__ = forward

    def train_step(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward, softmax cross-entropy and backward of one training batch, as
        :meth:`FastPlan.train_step`: ``(mean loss, logits)``, the model's ``grads`` filled.

        Each process runs all three on its half with no hand-off in between, so the two
        halves meet once per step instead of twice, and the loss is not serial. The
        gradient's rows are the whole batch's bit for bit (``mean_over``), so the
        gradients are the same as ``forward`` + loss + ``backward`` give.
        """
        self._pending = None
        h = self.model.prepare(x)
        labels = np.asarray(labels)
        helper = self._use_helper(len(h), True)
        if helper is None or labels.shape != (len(h),):
            return self.fast.train_step(h, labels)
        n = len(h)
        mine, theirs = n - n // 2, n // 2
        self._send_weights(helper)
        helper.views["x"][:theirs] = h[mine:]
        helper.views["labels"][:theirs] = labels[mine:]
        if blas_threads() not in (0, 1):
            blas_threads(1)  # the other core is the helper's
        if not helper.send(b"T%d,%d" % (theirs, n)):
            return self.fast.train_step(h, labels)
        try:
            logits = self.fast.forward(h[:mine], True, workers=1)
            loss, d = softmax_cross_entropy(logits, labels[:mine], mean_over=n)
            self.fast.backward(d)
        except Exception:
            helper.done()  # let it finish; the whole step again, with the error raised there
            return self.fast.train_step(h, labels)
        if not helper.done():  # the helper failed: the whole step again, here
            return self.fast.train_step(h, labels)
        self._add_their_grads(helper)
        out = np.concatenate([logits, helper.views["y"][:theirs]])
        self.remote_passes += 1
        return loss + float(helper.views["loss"][0]), out

    def _send_weights(self, helper: _Helper) -> None:
        triples = self.model.parameters()
        packed = packed_span([p for _, p, _ in triples])
        if packed is not None and packed.dtype == helper.views["params"].dtype:
            np.copyto(helper.views["params"], packed)  # the same layout: one copy
        else:
            for dst, (_, p, _) in zip(helper.params, triples, strict=True):
                np.copyto(dst, p)

    def _add_their_grads(self, helper: _Helper) -> None:
        triples = self.model.parameters()
        packed = packed_span([g for _, _, g in triples])
        if packed is not None and packed.dtype == helper.views["grads"].dtype:
            packed += helper.views["grads"]
        else:
            for (_, _, g), g_theirs in zip(triples, helper.grads, strict=True):
                g += g_theirs

    def backward(self, dlogits: np.ndarray) -> np.ndarray | None:
        """Fill the model's ``grads`` from ``dlogits`` (N, classes), as ``FastPlan.backward``."""
        if self._pending is None:
            return self.fast.backward(dlogits)
        helper, mine, theirs, h = self._pending
        self._pending = None
        d = np.asarray(dlogits, self.model.dtype)
        if len(d) != mine + theirs:
            raise ValueError(f"`dlogits` must have {mine + theirs} rows, got {len(d)}")
        helper.views["d"][:theirs] = d[mine:]
        sent = helper.send(b"B")
        self.fast.backward(d[:mine])
        if not (sent and helper.done()):  # the helper failed: the whole step again, here
            self.fast.forward(h, True)
            return self.fast.backward(d)
        self._add_their_grads(helper)
        return None


# ------------------------------------------------------------------ the helper's side


def _serve(stdin, stdout) -> None:
    """Run commands from ``stdin`` until it closes: the helper process's main loop."""
    from convviz.nn.model import load_model

    blas_threads(1)
    head = json.loads(stdin.readline())
    model = load_model(head["model"])
    layout = _Layout(model, head["rows"])
    fd = os.open(head["path"], os.O_RDWR)
    try:
        buf = mmap.mmap(fd, layout.nbytes)
    finally:
        os.close(fd)
    views = layout.views(buf)
    # Our layers' weights and gradients ARE the shared arrays: the parent's writes are
    # the weights we use, our backward's are the gradients it reads. No copy either way.
    shared = zip(layout.split(views["params"]), layout.split(views["grads"]), strict=True)
    owners = [(layer, key) for layer in walk_layers(model.layers) for key in layer.params]
    for (layer, key), (p, g) in zip(owners, shared, strict=True):
        np.copyto(p, layer.params[key])
        layer.params[key], layer.grads[key] = p, g
    plan = FastPlan(model, workers=1)
    stdout.write(b"R\n")
    stdout.flush()
    n = 0
    for line in stdin:
        command = line.strip()
        try:
            if command.startswith(b"F"):
                n = int(command[1:])
                views["y"][:n] = plan.forward(views["x"][:n], training=True)
            elif command == b"B":
                plan.backward(views["d"][:n])
            elif command.startswith(b"T"):  # a whole training step on our rows
                n, batch = (int(v) for v in command[1:].split(b","))
                views["y"][:n] = logits = plan.forward(views["x"][:n], training=True)
                labels = views["labels"][:n].astype(np.intp)
                loss, d = softmax_cross_entropy(logits, labels, mean_over=batch)
                plan.backward(d)
                views["loss"][0] = loss
            else:
                break
            stdout.write(b"K\n")
        except Exception:  # the parent falls back to threads for this step
            stdout.write(b"E\n")
        stdout.flush()


def _main() -> None:
    """The helper process's entry point (see :class:`_Helper`)."""
    _serve(sys.stdin.buffer, sys.stdout.buffer)
