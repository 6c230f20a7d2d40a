"""Display names of core things (activations, kernel presets, pad and pool modes).

One home for them, so every page names a thing the same way. The core's
catalogue (``act.<name>``, ``kernel.<name>.label``, ``pad.mode.<mode>``,
``pool.mode.<mode>``) wins where it exists; until it lands these fall back to the
``convolution`` and ``pooling`` catalogues (or, for presets, the core's English).
TODO(lead): once the core keys are merged, drop the fallbacks and their keys.
"""

from __future__ import annotations

from convviz.i18n import Translator
from convviz.kernels import KERNELS


def _first(t: Translator, key: str, fallback: str) -> str:
    return t(key) if t.has(key) else t(fallback)


def act_label(t: Translator, name: str) -> str:
    """``relu`` -> "ReLU"; ``none`` -> "None (raw feature map)"."""
    core = "act.none.raw" if name == "none" else f"act.{name}"
    return _first(t, core, f"conv.act.{name}")


def pad_mode_label(t: Translator, mode: str) -> str:
    """``reflect`` -> "reflect (mirror)"."""
    return _first(t, f"pad.mode.{mode}", f"conv.pad_mode.{mode}")


def pool_mode_label(t: Translator, mode: str) -> str:
    """``avg`` -> "Average"."""
    return _first(t, f"pool.mode.{mode}", f"pool.modes.{mode}")


def _kernel_words(t: Translator, name: str, part: str, english: str) -> str:
    k = KERNELS[name]
    key = f"{getattr(k, 'msg', '') or f'kernel.{name}'}.{part}"  # the core's key stem
    return t(key, **getattr(k, "msg_params", {})) if t.has(key) else english


def kernel_label(t: Translator, name: str) -> str:
    """A preset's name, e.g. "Sobel x"."""
    return _kernel_words(t, name, "label", KERNELS[name].label)


def kernel_description(t: Translator, name: str) -> str:
    """A preset's one-line description."""
    return _kernel_words(t, name, "description", KERNELS[name].description)
