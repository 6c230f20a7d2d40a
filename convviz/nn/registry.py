"""The layer registry: class name -> layer class, for rebuilding a saved model.

Every layer and block class registers itself here with :func:`register` when its
module is imported, so ``layers.py`` and ``blocks.py`` need not know each other:
``blocks`` imports ``layers``, both import this module, and this module imports
neither (``convviz/nn/__init__.py`` imports both, so every class is registered
before a model can be loaded).

>>> from convviz.nn import layers  # registers Conv2D, Dense, ...
>>> layer_from_config({"class_name": "Dense", "config": {"units": 3, "name": "head"}})
Dense(units=3, activation=None, use_bias=True, kernel_initializer='glorot_uniform', name='head')
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["LAYER_CLASSES", "layer_from_config", "register"]

#: ``class_name`` (as written by ``Sequential.save``) -> class.
LAYER_CLASSES: dict[str, type] = {}  # Layer subclasses (this module imports no layer)

T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    """Class decorator: make ``cls`` loadable under its ``__name__``."""
    name = cls.__name__
    if LAYER_CLASSES.get(name, cls) is not cls:
        raise ValueError(f"`cls` name {name!r} is already registered")
    LAYER_CLASSES[name] = cls
    return cls


def layer_from_config(spec: dict) -> Any:
    """Rebuild a layer from ``{"class_name": ..., "config": {...}}`` (see ``Layer.to_spec``)."""
    if not isinstance(spec, dict):
        raise ValueError(f"`spec` must be a dict, got {type(spec).__name__}")
    name = spec.get("class_name")
    if name not in LAYER_CLASSES:
        raise ValueError(f"`class_name` must be one of {sorted(LAYER_CLASSES)}, got {name!r}")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"`config` must be a dict, got {type(config).__name__}")
    return LAYER_CLASSES[name].from_config(config)
