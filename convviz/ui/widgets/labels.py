"""Display names of core things (activations, kernel presets, pad and pool modes).

One home for them, so every page names a thing the same way: the core's
catalogue entries ``act.<name>``, ``kernel.<name>.label``, ``pad.mode.<mode>`` and
``pool.mode.<mode>``.
"""

from __future__ import annotations

from convviz.activations import activation_label
from convviz.i18n import Translator
from convviz.kernels import KERNELS


def act_label(t: Translator, name: str) -> str:
    """``relu`` -> "ReLU"; ``none`` -> "None (raw feature map)"."""
    return activation_label(name, t, raw=name == "none")


def pad_mode_label(t: Translator, mode: str) -> str:
    """``reflect`` -> "reflect (mirror)"."""
    return t(f"pad.mode.{mode}")


def pool_mode_label(t: Translator, mode: str) -> str:
    """``avg`` -> "Average"."""
    return t(f"pool.mode.{mode}")


def kernel_label(t: Translator, name: str) -> str:
    """A preset's name, e.g. "Sobel x"."""
    k = KERNELS[name]
    return t(k.msg + ".label", **k.msg_params)


def kernel_description(t: Translator, name: str) -> str:
    """A preset's one-line description."""
    k = KERNELS[name]
    return t(k.msg + ".description", **k.msg_params)
