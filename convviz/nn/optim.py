"""Optimizers that update a model's parameters in place: SGD, RMSprop and Adam.

An optimizer is given ``model.parameters()`` -- a list of ``(name, param, grad)``
triples -- or the model itself, and ``step()`` updates every ``param`` in place
from its ``grad`` (float32 stays float32). The learning rate ``lr`` may be
changed between steps, which is how the trainer applies a schedule and how the
UI lets a user turn the knob while a model trains.

The update rules follow Keras 3 (whose defaults we use), so a model trained here
behaves like the Keras reference it is compared with:

* ``SGD``: PyTorch's momentum buffer ``b = momentum * b + g`` (``b = g`` on the
  first step), ``p -= lr * b``, or ``p -= lr * (g + momentum * b)`` with
  Nesterov. For a constant ``lr`` this is exactly Keras's ``v = momentum * v -
  lr * g; p += v``; with a changing ``lr`` the new rate acts on the whole
  buffer at once, as in PyTorch.
* ``RMSprop`` (Keras): ``v = rho * v + (1 - rho) * g**2`` and
  ``p -= lr * g / sqrt(v + eps)`` -- ``eps`` sits INSIDE the square root;
  PyTorch uses ``g / (sqrt(v) + eps)`` instead (and ``eps=1e-8``), so the two
  agree only for ``eps = 0``.
* ``Adam`` (Keras): ``p -= alpha_t * m / (sqrt(v) + eps)`` with
  ``alpha_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` -- the bias correction
  is folded into the step size, so ``eps`` is not bias-corrected; PyTorch's
  ``m_hat / (sqrt(v_hat) + eps)`` equals it with ``eps`` scaled by
  ``sqrt(1 - beta2**t)``.

``weight_decay`` is decoupled (AdamW, Keras 3): before the update every
parameter shrinks by ``p -= lr * weight_decay * p``; it is not added to the
gradient.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

import numpy as np

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "Optimizer",
    "RMSprop",
    "make_optimizer",
    "packed_span",
]

ParamTriple = tuple[str, np.ndarray, np.ndarray]


class _HasParameters(Protocol):
    def parameters(self) -> list[ParamTriple]: ...


Params = _HasParameters | Iterable[ParamTriple]


def _check_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    return value


def _check_positive(value: object, name: str) -> float:
    value = _check_real(value, name)
    if value <= 0:
        raise ValueError(f"`{name}` must be > 0, got {value!r}")
    return value


def _check_non_negative(value: object, name: str) -> float:
    value = _check_real(value, name)
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {value!r}")
    return value


def _check_unit(value: object, name: str) -> float:
    """A decay rate in [0, 1)."""
    value = _check_real(value, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}")
    return value


def packed_span(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The 1-D array that ``arrays`` are consecutive C-contiguous pieces of, in order; or None.

    >>> flat = np.arange(5.0)
    >>> packed_span([flat[:2].reshape(2, 1), flat[2:]]) is not None
    True
    >>> packed_span([flat[2:], flat[:2]]) is None  # out of order
    True
    """
    if not arrays:
        return None
    base = arrays[0].base
    if not isinstance(base, np.ndarray) or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    origin = base.__array_interface__["data"][0]
    start = (arrays[0].__array_interface__["data"][0] - origin) // base.itemsize
    at = start
    for a in arrays:
        if a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous:
            return None
        if a.__array_interface__["data"][0] != origin + at * base.itemsize:
            return None
        at += a.size
    return base[start:at]


class Optimizer:
    """Base class: holds the parameters, the learning rate and per-parameter slots.

    Parameters
    ----------
    params : model or iterable of (str, ndarray, ndarray)
        ``model.parameters()`` -- ``(name, param, grad)`` triples with unique
        names and matching shapes -- or an object with a ``parameters()``
        method, which is then asked again at every step (so a layer that
        rebinds its ``grads`` dict entries is still seen).
    lr : float
        Learning rate, > 0; may be reassigned between steps.

    Subclasses name their slot arrays in ``slot_names`` and implement
    ``_update(param, grad, slots, t)``.
    """

    name: ClassVar[str] = "optimizer"
    slot_names: tuple[str, ...] = ()  # per-parameter state arrays this optimizer keeps

    def __init__(self, params: Params, lr: float) -> None:
        self._source: Callable[[], list[ParamTriple]]
        if hasattr(params, "parameters") and callable(params.parameters):
            self._source = params.parameters
        else:
            fixed = list(params)  # type: ignore[arg-type]
            self._source = lambda: fixed
        triples = self._params()
        if not triples:
            raise ValueError("`params` must not be empty")
        names = [n for n, _, _ in triples]
        if len(set(names)) != len(names):
            raise ValueError(f"`params` names must be unique, got {names}")
        for n, p, g in triples:
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise ValueError(f"`params` entry {n!r} must be a floating-point ndarray")
            if np.shape(g) != p.shape:
                raise ValueError(
                    f"`params` entry {n!r}: grad shape {np.shape(g)} != param shape {p.shape}"
                )
        self.lr = lr
        self.iterations = 0  # number of step() calls so far
        # Slots (momentum, velocity, ...) are created lazily, in the parameter's dtype.
        self._slots: dict[str, dict[str, np.ndarray]] = {}

    # -- learning rate -------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate used by the next ``step()``."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check_positive(value, "lr")

    # -- stepping --------------------------------------------------------------------------
    def _params(self) -> list[ParamTriple]:
        return list(self._source())

    def zero_grad(self) -> None:
        """Fill every gradient with zeros (not needed when backward overwrites them)."""
        for _, _, g in self._params():
            g[...] = 0

    def step(self) -> None:
        """Apply one update to every parameter, in place.

        When the parameters and the gradients each lie end to end in one buffer
        (:meth:`~convviz.nn.model.Sequential.pack_parameters`), the same update runs once
        on the whole buffer instead of once per array: every rule here is elementwise, so
        the result is the same to the bit, in a few NumPy calls instead of ~10 per array
        (classic's Adam step: 0.22 -> 0.10 ms here).
        """
        self.iterations += 1
        t = self.iterations
        triples = self._params()
        packed = self._packed(triples)
        work = (
            [packed]
            if packed is not None
            else [(p, g, self._slots_of(n, p)) for n, p, g in triples]
        )
        for p, g, slots in work:
            g = np.asarray(g, dtype=p.dtype)
            wd = getattr(self, "weight_decay", 0.0)
            if wd:
                # Decoupled weight decay (AdamW / Keras 3): shrink, then update.
                p -= p.dtype.type(self.lr * wd) * p
            self._update(p, g, slots, t)

    def _slots_of(self, name: str, p: np.ndarray) -> dict[str, np.ndarray]:
        slots = self._slots.get(name)
        if slots is None:
            slots = {s: np.zeros_like(p) for s in self.slot_names}
            self._slots[name] = slots
        return slots

    def _update(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray], t: int) -> None:
        raise NotImplementedError

    def _packed(self, triples: list[ParamTriple]) -> tuple | None:
        """``(P, G, slots)`` over the whole packed buffers, the slots packed alike; or None.

        The check is cached on the arrays' identities (the cache holds them, so an id
        cannot be reused by a new array while it is cached).
        """
        arrays = [a for _, p, g in triples for a in (p, g)]
        arrays += [a for name, _, _ in triples for a in self._slots.get(name, {}).values()]
        cached = getattr(self, "_pack_cache", None)
        if cached is not None and len(cached[0]) == len(arrays):
            if all(a is b for a, b in zip(cached[0], arrays, strict=True)):
                return cached[1]
        found = self._pack(triples)
        arrays = [a for _, p, g in triples for a in (p, g)]
        arrays += [a for name, _, _ in triples for a in self._slots.get(name, {}).values()]
        self._pack_cache = (arrays, found)
        return found

    def _pack(self, triples: list[ParamTriple]) -> tuple | None:
        params = packed_span([p for _, p, _ in triples])
        grads = packed_span([np.asarray(g) for _, _, g in triples])
        if params is None or grads is None or grads.dtype != params.dtype:
            return None
        slots = {}
        for s in self.slot_names:  # one buffer per slot, laid out as the parameters
            flat = np.zeros_like(params)
            start = 0
            for name, p, _ in triples:
                view = flat[start : start + p.size].reshape(p.shape)
                old = self._slots.setdefault(name, {}).get(s)
                if old is not None:
                    np.copyto(view, old)
                self._slots[name][s] = view
                start += p.size
            slots[s] = flat
        return params, grads, slots

    # -- state -------------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments other than ``params`` (JSON-able)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """A copy of everything needed to resume: hyperparameters, step count and slots.

        ``{"name": str, "hyperparameters": {...}, "iterations": int,
        "slots": {param_name: {slot_name: ndarray}}}``
        """
        return {
            "name": self.name,
            "hyperparameters": self.hyperparameters(),
            "iterations": self.iterations,
            "slots": {
                pname: {s: a.copy() for s, a in slots.items()}
                for pname, slots in self._slots.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` returned (for the same kind of optimizer)."""
        if state.get("name") != self.name:
            raise ValueError(f"`state` is for optimizer {state.get('name')!r}, not {self.name!r}")
        # Validate the hyperparameters (and learn the slot names they imply) on a scratch copy,
        # so that a rejected state leaves this optimizer untouched.
        hyper = dict(state["hyperparameters"])
        scratch = type(self)(self._params(), **hyper)
        shapes = {n: p.shape for n, p, _ in self._params()}
        slots: dict[str, dict[str, np.ndarray]] = {}
        for pname, pslots in state["slots"].items():
            if pname not in shapes:
                raise ValueError(f"`state` has slots for unknown parameter {pname!r}")
            if set(pslots) != set(scratch.slot_names):
                raise ValueError(
                    f"`state` slots for {pname!r} are {sorted(pslots)}, "
                    f"expected {sorted(scratch.slot_names)}"
                )
            for s, a in pslots.items():
                if np.shape(a) != shapes[pname]:
                    raise ValueError(
                        f"`state` slot {pname}/{s} has shape {np.shape(a)}, "
                        f"expected {shapes[pname]}"
                    )
            slots[pname] = {s: np.array(a, copy=True) for s, a in pslots.items()}
        for key in hyper:
            setattr(self, key, getattr(scratch, key))
        self.slot_names = scratch.slot_names
        self.iterations = int(state["iterations"])
        self._slots = slots

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Parameters
    ----------
    params : model or list of (name, param, grad)
    lr : float, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False
        Needs ``momentum > 0``.
    weight_decay : float >= 0, default 0 (decoupled)

    Notes
    -----
    ``b = momentum * b + g`` (``b = g`` on the first step), then
    ``p -= lr * b`` or, with Nesterov, ``p -= lr * (g + momentum * b)``
    (PyTorch's form, equal to Keras's for a constant ``lr``).

    Examples
    --------
    >>> p = np.array([1.0, -2.0], dtype=np.float32); g = 2 * p   # grad of |p|^2
    >>> opt = SGD([("w", p, g)], lr=0.25)
    >>> opt.step(); p
    array([ 0.5, -1. ], dtype=float32)
    """

    name = "sgd"
    slot_names = ("momentum",)

    def __init__(
        self,
        params: Params,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.momentum = _check_unit(momentum, "momentum")
        if not isinstance(nesterov, bool | np.bool_):
            raise ValueError(f"`nesterov` must be a bool, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("`nesterov` needs `momentum` > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_non_negative(weight_decay, "weight_decay")
        self.slot_names = ("momentum",) if self.momentum > 0 else ()  # plain SGD keeps no state
        super().__init__(params, lr)

    def _update(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray], t: int) -> None:
        lr = p.dtype.type(self.lr)
        if self.momentum == 0:
            p -= lr * g
            return
        mu = p.dtype.type(self.momentum)
        buf = slots["momentum"]  # starts at zeros, so the first step gives b = g as in PyTorch
        buf *= mu
        buf += g
        p -= lr * (g + mu * buf) if self.nesterov else lr * buf

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class RMSprop(Optimizer):
    """RMSprop as in Keras (defaults and the place of ``eps``).

    Parameters
    ----------
    params : model or list of (name, param, grad)
    lr : float, default 0.001
    rho : float in [0, 1), default 0.9
        Decay of the running mean of squared gradients.
    eps : float >= 0, default 1e-7
    momentum : float in [0, 1), default 0
    centered : bool, default False
        Divide by an estimate of the variance instead of the raw second moment.
    weight_decay : float >= 0, default 0 (decoupled)

    Notes
    -----
    ``v = rho * v + (1 - rho) * g**2``; centered also keeps
    ``a = rho * a + (1 - rho) * g`` and uses ``v - a**2``; then
    ``inc = lr * g / sqrt(v + eps)`` and ``p -= inc`` or, with momentum,
    ``m = momentum * m + inc; p -= m``. Keras puts ``eps`` inside the square
    root; PyTorch's ``RMSprop`` adds it after (``sqrt(v) + eps``).

    Examples
    --------
    >>> p = np.array([1.0], dtype=np.float32); g = np.array([0.5], dtype=np.float32)
    >>> opt = RMSprop([("w", p, g)], lr=0.1, eps=0.0)
    >>> opt.step(); p          # 1 - 0.1 * 0.5 / sqrt(0.1 * 0.25)
    array([0.68377227], dtype=float32)
    """

    name = "rmsprop"

    def __init__(
        self,
        params: Params,
        lr: float = 0.001,
        rho: float = 0.9,
        eps: float = 1e-7,
        momentum: float = 0.0,
        centered: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        self.rho = _check_unit(rho, "rho")
        self.eps = _check_non_negative(eps, "eps")
        self.momentum = _check_unit(momentum, "momentum")
        if not isinstance(centered, bool | np.bool_):
            raise ValueError(f"`centered` must be a bool, got {centered!r}")
        self.centered = bool(centered)
        self.weight_decay = _check_non_negative(weight_decay, "weight_decay")
        slots = ["velocity"]
        if self.momentum > 0:
            slots.append("momentum")
        if self.centered:
            slots.append("average_grad")
        self.slot_names = tuple(slots)
        super().__init__(params, lr)

    def _update(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray], t: int) -> None:
        f = p.dtype.type
        rho = f(self.rho)
        v = slots["velocity"]
        v *= rho
        v += (f(1) - rho) * np.square(g)
        if self.centered:
            a = slots["average_grad"]
            a *= rho
            a += (f(1) - rho) * g
            denom = v - np.square(a) + f(self.eps)
        else:
            denom = v + f(self.eps)
        inc = f(self.lr) * g / np.sqrt(denom)
        if self.momentum > 0:
            m = slots["momentum"]
            m *= f(self.momentum)
            m += inc
            p -= m
        else:
            p -= inc

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "rho": self.rho,
            "eps": self.eps,
            "momentum": self.momentum,
            "centered": self.centered,
            "weight_decay": self.weight_decay,
        }


class Adam(Optimizer):
    """Adam as in Keras (bias correction folded into the step size).

    Parameters
    ----------
    params : model or list of (name, param, grad)
    lr : float, default 0.001
    beta1, beta2 : float in [0, 1), defaults 0.9 and 0.999
    eps : float >= 0, default 1e-7
    weight_decay : float >= 0, default 0
        Decoupled, so ``Adam(..., weight_decay=w)`` is AdamW.

    Notes
    -----
    ``m = beta1 * m + (1 - beta1) * g``, ``v = beta2 * v + (1 - beta2) * g**2``,
    ``p -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + eps)``
    at step ``t`` (1-based).

    Examples
    --------
    The first step moves every parameter by about ``lr`` whatever the gradient's scale:

    >>> p = np.array([1.0, 1.0], dtype=np.float32)
    >>> g = np.array([100.0, -0.01], dtype=np.float32)
    >>> opt = Adam([("w", p, g)], lr=0.1, eps=0.0)
    >>> opt.step(); p.round(5)
    array([0.9, 1.1], dtype=float32)
    """

    name = "adam"
    slot_names = ("m", "v")

    def __init__(
        self,
        params: Params,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-7,
        weight_decay: float = 0.0,
    ) -> None:
        self.beta1 = _check_unit(beta1, "beta1")
        self.beta2 = _check_unit(beta2, "beta2")
        self.eps = _check_non_negative(eps, "eps")
        self.weight_decay = _check_non_negative(weight_decay, "weight_decay")
        super().__init__(params, lr)

    def _update(self, p: np.ndarray, g: np.ndarray, slots: dict[str, np.ndarray], t: int) -> None:
        f = p.dtype.type
        b1, b2 = self.beta1, self.beta2
        alpha = f(self.lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t))
        m, v = slots["m"], slots["v"]
        m += (g - m) * f(1.0 - b1)
        v += (np.square(g) - v) * f(1.0 - b2)
        p -= alpha * m / (np.sqrt(v) + f(self.eps))

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam}


def make_optimizer(name: str, params: Params, lr: float | None = None, **kw: Any) -> Optimizer:
    """Build an optimizer by name (``"sgd"``, ``"rmsprop"``, ``"adam"``; case-insensitive).

    ``lr=None`` keeps the optimizer's own default; other keywords go to its constructor.

    >>> p = np.zeros(3, dtype=np.float32)
    >>> make_optimizer("RMSprop", [("w", p, p.copy())])
    RMSprop(lr=0.001, rho=0.9, eps=1e-07, momentum=0.0, centered=False, weight_decay=0.0)
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"`name` must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    if lr is not None:
        kw["lr"] = lr
    return OPTIMIZERS[key](params, **kw)
