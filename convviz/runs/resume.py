"""A trainer's and a timeline's state as JSON and arrays, and back: what a checkpoint holds.

:func:`pack_trainer` reads everything that decides the next step of a
:class:`~convviz.nn.train.Trainer` (weights and buffers, the optimizer's slots
and step count, the shuffling generator's state and the epoch's order, the step
and the base learning rate) and what it has to show (history, last
validation, epoch log); :func:`unpack_trainer` puts it into a fresh trainer of
the same config, which then trains on exactly as the original would have.
Models with ``Dropout`` resume with their masks' generators as rebuilt (the
training twins of :class:`~convviz.nn.fast.FastPlan` draw their own streams):
the same kind of training, not the same numbers.

Any inconsistency while unpacking raises ``ValueError``; the caller turns it
into a :class:`~convviz.runs.store.CheckpointError`.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any

import numpy as np

from convviz.nn import load_model
from convviz.nn.train import History, Trainer
from convviz.runs.snapshot import TimelineFrame, frozen

__all__ = ["pack_model", "pack_timeline", "pack_trainer", "unpack_timeline", "unpack_trainer"]

_INT_HISTORY = ("step", "val_step")
_STATS = ("steps", "images", "correct", "loss_sum", "seconds")


def pack_model(model: Any) -> np.ndarray:
    """``model.save`` bytes as a uint8 array (a model file inside the checkpoint)."""
    buf = io.BytesIO()
    model.save(buf, metadata=dict(getattr(model, "metadata", {})))
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def unpack_model(arr: np.ndarray) -> Any:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError("`model` must be bytes")
    return load_model(io.BytesIO(arr.tobytes()))


def pack_trainer(t: Trainer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of trainer ``t`` (call it from the thread that trains ``t``)."""
    arrays: dict[str, np.ndarray] = {"model": pack_model(t.model)}
    h = t.history
    for key, values in asdict(h).items():
        dtype = np.int64 if key in _INT_HISTORY else np.float64
        arrays[f"history/{key}"] = np.asarray(values, dtype=dtype)
    arrays["trainer/order"] = np.asarray(t._order, dtype=np.int64)
    for key in ("confusion", "val_pred", "val_conf"):
        value = getattr(t, key)
        if value is not None:
            arrays[f"trainer/{key}"] = np.asarray(value)
    opt = t.optimizer.state_dict()
    for pname, slots in opt["slots"].items():
        for s, a in slots.items():
            arrays[f"opt/{pname}/{s}"] = a
    meta = {
        "step": t.step,
        "config": asdict(t.config),
        "rng": t._shuffle_rng.bit_generator.state,
        "epoch_stats": {k: getattr(t._epoch_stats, k) for k in _STATS},
        "epoch_log": list(t.epoch_log),
        "optimizer": {
            "name": opt["name"],
            "hyperparameters": opt["hyperparameters"],
            "iterations": opt["iterations"],
            "slots": {pname: sorted(slots) for pname, slots in opt["slots"].items()},
        },
    }
    return meta, arrays


def unpack_trainer(t: Trainer, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Put a :func:`pack_trainer` state into ``t``, a fresh trainer of the same config."""
    saved = unpack_model(arrays["model"])
    mine = t.model.parameters()
    theirs = saved.parameters()
    if [(n, p.shape) for n, p, _ in mine] != [(n, p.shape) for n, p, _ in theirs]:
        raise ValueError("the checkpoint's model has another architecture")
    for (_, dst, _), (_, src, _) in zip(mine, theirs, strict=True):
        dst[...] = src  # in place: the trainer's plan and optimizer keep their references
    for (_, dst), (_, src) in zip(t.model.buffers(), saved.buffers(), strict=True):
        if dst.shape != src.shape:
            raise ValueError("the checkpoint's model has other buffers")
        dst[...] = src
    o = meta["optimizer"]
    slots = {
        pname: {s: arrays[f"opt/{pname}/{s}"] for s in names}
        for pname, names in dict(o["slots"]).items()
    }
    t.optimizer.load_state_dict(
        {
            "name": o["name"],
            "hyperparameters": dict(o["hyperparameters"]),
            "iterations": int(o["iterations"]),
            "slots": slots,
        }
    )
    step = int(meta["step"])
    if not 0 <= step <= t.total_steps:
        raise ValueError("the checkpoint's step is out of range")
    order = np.asarray(arrays["trainer/order"], dtype=np.int64)
    if len(order) and (len(order) != len(t.train_images) or order.min() < 0):
        raise ValueError("the checkpoint's order does not fit the training set")
    if step % t.steps_per_epoch and not len(order):
        raise ValueError("the checkpoint lacks the epoch's order")
    t.config.lr = float(meta["config"]["lr"])
    t._shuffle_rng.bit_generator.state = dict(meta["rng"])
    t._order = order
    t._step = step
    for k in _STATS:
        setattr(t._epoch_stats, k, type(getattr(t._epoch_stats, k))(meta["epoch_stats"][k]))
    h = History()
    for key in asdict(h):
        values = arrays[f"history/{key}"]
        cast = int if key in _INT_HISTORY else float
        getattr(h, key).extend(cast(v) for v in values.tolist())
    if len(h.step) != step:
        raise ValueError("the checkpoint's history does not match its step")
    t.history = h
    t.confusion = _get(arrays, "trainer/confusion", np.int64)
    t.val_pred = _get(arrays, "trainer/val_pred", np.int64)
    t.val_conf = _get(arrays, "trainer/val_conf", np.float64)
    if t.val_pred is not None and len(t.val_pred) != len(t.val_labels):
        raise ValueError("the checkpoint's predictions do not fit the validation set")
    t.epoch_log = [dict(e) for e in meta["epoch_log"]]


def _get(arrays: dict[str, np.ndarray], key: str, dtype) -> np.ndarray | None:
    a = arrays.get(key)
    return None if a is None else np.asarray(a, dtype=dtype).copy()


def pack_timeline(
    frames: tuple[TimelineFrame, ...],
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """``(descriptions, arrays)`` of a timeline's frames."""
    out, arrays = [], {}
    for i, f in enumerate(frames):
        out.append(
            {
                "step": f.step,
                "epoch": f.epoch,
                "lr": f.lr,
                "loss": f.loss,
                "val_loss": f.val_loss,
                "val_acc": f.val_acc,
                "probe_index": f.probe_index,
                "confusion": f.confusion is not None,
                "kernel": None if f.kernels is None else f.kernels[0],
                "acts": [[name, keras] for name, keras, _ in f.probe_activations],
            }
        )
        arrays[f"tl/{i}/probs"] = np.asarray(f.probe_probs)
        if f.confusion is not None:
            arrays[f"tl/{i}/confusion"] = np.asarray(f.confusion)
        if f.kernels is not None:
            arrays[f"tl/{i}/kernel"] = np.asarray(f.kernels[1])
        for j, (_, _, a) in enumerate(f.probe_activations):
            arrays[f"tl/{i}/act/{j}"] = np.asarray(a)
    return out, arrays


def _opt_float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def unpack_timeline(
    frames: list[dict[str, Any]], arrays: dict[str, np.ndarray]
) -> list[TimelineFrame]:
    out = []
    for i, d in enumerate(frames):
        kernel = d["kernel"]
        out.append(
            TimelineFrame(
                step=int(d["step"]),
                epoch=float(d["epoch"]),
                lr=float(d["lr"]),
                loss=_opt_float(d["loss"]),
                val_loss=_opt_float(d["val_loss"]),
                val_acc=_opt_float(d["val_acc"]),
                confusion=(
                    frozen(arrays[f"tl/{i}/confusion"].astype(np.int64)) if d["confusion"] else None
                ),
                kernels=(
                    None
                    if kernel is None
                    else (str(kernel), frozen(arrays[f"tl/{i}/kernel"].astype(np.float32)))
                ),
                probe_index=int(d["probe_index"]),
                probe_probs=frozen(arrays[f"tl/{i}/probs"].astype(np.float64)),
                probe_activations=tuple(
                    (str(name), str(keras), frozen(arrays[f"tl/{i}/act/{j}"].astype(np.float16)))
                    for j, (name, keras) in enumerate(d["acts"])
                ),
            )
        )
    steps = [f.step for f in out]
    if steps != sorted(set(steps)):
        raise ValueError("the checkpoint's timeline is out of order")
    return out
