"""Named MNIST-sized architectures: ``build_model(name, seed)`` and ``PRESETS``.

>>> build_model("classic").count_params()
93322
>>> sorted(PRESETS)
['classic', 'densenet', 'inception', 'resnet', 'tiny']
>>> build_model("classic_bn_dropout").count_params()
93802
>>> variant_name("classic", batchnorm=True, dropout=False), variant_of("tiny_dropout")
('classic_bn', ('tiny', False, True))

Variants of ``tiny`` and ``classic`` (:data:`VARIANTS`) add BatchNorm after each
conv and/or Dropout before the dense head; ``build_model`` builds them by name,
but :data:`PRESETS` lists the five base architectures only (the CLI, the
pretrained files and the tests that walk every preset keep their list).
"""

from __future__ import annotations

from collections.abc import Callable

from convviz.nn.blocks import Concat, Residual, dense_block
from convviz.nn.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Rescaling,
)
from convviz.nn.model import Sequential

__all__ = ["PRESETS", "VARIANTS", "build_model", "variant_name", "variant_of"]


# MNIST pixel mean and std: standardising the input speeds up the first epoch.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _tiny() -> list[Layer]:
    # The smallest net we found that passes 98% test accuracy after ONE epoch
    # (Adam 1e-3, batch 64): 8-16 or 16-32 filter nets ending in Dense(10) stop
    # at 96.5-97.8%; the third conv, the hidden Dense and the input scaling each help.
    return [
        Rescaling(1 / MNIST_STD, offset=-MNIST_MEAN / MNIST_STD),
        Conv2D(16, 3, activation="relu"),  # 26x26x16
        MaxPool2D(2),  # 13x13x16
        Conv2D(32, 3, activation="relu"),  # 11x11x32
        MaxPool2D(2),  # 5x5x32
        Conv2D(64, 3, activation="relu"),  # 3x3x64
        Flatten(),
        Dense(64, activation="relu"),
        Dense(10, activation="softmax"),
    ]


def _classic() -> list[Layer]:
    # The Keras MNIST convnet ("Deep Learning with Python", ch. 8): 93,322 params.
    return [
        Conv2D(32, 3, activation="relu"),
        MaxPool2D(2),
        Conv2D(64, 3, activation="relu"),
        MaxPool2D(2),
        Conv2D(64, 3, activation="relu"),
        Flatten(),
        Dense(64, activation="relu"),
        Dense(10, activation="softmax"),
    ]


def _resnet() -> list[Layer]:
    return [
        Conv2D(16, 3, padding="same", activation="relu"),  # 28x28x16
        MaxPool2D(2),  # 14x14x16
        Residual([Conv2D(16, 3, padding="same", activation="relu"), Conv2D(16, 3, padding="same")]),
        ReLU(),
        # Downsampling block: the skip gets a strided 1x1 projection.
        Residual(
            [
                Conv2D(32, 3, strides=2, padding="same", activation="relu"),  # 7x7x32
                Conv2D(32, 3, padding="same"),
            ]
        ),
        ReLU(),
        AvgPool2D(2),  # 3x3x32
        Flatten(),
        Dense(10, activation="softmax"),
    ]


def _inception() -> list[Layer]:
    return [
        Conv2D(16, 3, activation="relu"),  # 26x26x16
        MaxPool2D(2),  # 13x13x16
        Concat(
            [
                [Conv2D(8, 1, activation="relu")],
                [Conv2D(8, 1, activation="relu"), Conv2D(16, 3, padding="same", activation="relu")],
                [Conv2D(4, 1, activation="relu"), Conv2D(8, 5, padding="same", activation="relu")],
            ]
        ),  # 13x13x32
        MaxPool2D(2),  # 6x6x32
        Flatten(),
        Dense(10, activation="softmax"),
    ]


def _densenet() -> list[Layer]:
    return [
        Conv2D(16, 3, activation="relu"),  # 26x26x16
        MaxPool2D(2),  # 13x13x16
        *dense_block(8, 3),  # 13x13x40
        Conv2D(24, 1, activation="relu"),  # transition
        AvgPool2D(2),  # 6x6x24
        Flatten(),
        Dense(10, activation="softmax"),
    ]


_BUILDERS: dict[str, tuple[Callable[[], list[Layer]], str]] = {
    # No accuracy claims here: they depend on the recipe (see assets/models/README.md).
    "tiny": (_tiny, "3 small convs (16-32-64), 2 max-pools, 2 dense: the quickest to train"),
    "classic": (_classic, "the Keras MNIST convnet: 3 convs (32-64-64), 2 max-pools, 2 dense"),
    "resnet": (_resnet, "a stem conv and two residual blocks (one with a strided projection)"),
    "inception": (_inception, "a stem conv and one Inception block of 1x1, 3x3 and 5x5 branches"),
    "densenet": (_densenet, "a stem conv, a 3-layer dense block (growth 8) and a transition"),
}

#: Preset name -> one-line description.
PRESETS: dict[str, str] = {name: desc for name, (_, desc) in _BUILDERS.items()}


#: Architectures that take the BatchNorm and Dropout options (plain conv stacks).
VARIANT_BASES = ("tiny", "classic")
DROPOUT_RATE = 0.5  # Keras's MNIST convnet example drops half of the flattened features


def variant_name(base: str, *, batchnorm: bool, dropout: bool) -> str:
    """``classic`` + options -> ``classic_bn``, ``classic_dropout``, ``classic_bn_dropout``."""
    return base + ("_bn" if batchnorm else "") + ("_dropout" if dropout else "")


def variant_of(name: str) -> tuple[str, bool, bool]:
    """``(base, batchnorm, dropout)`` of a preset or variant name (a base: both False)."""
    base, bn, drop = name, False, False
    if base.endswith("_dropout"):
        base, drop = base[: -len("_dropout")], True
    if base.endswith("_bn"):
        base, bn = base[: -len("_bn")], True
    if (bn or drop) and base not in VARIANT_BASES:
        return name, False, False
    return base, bn, drop


def _with_options(layers: list[Layer], *, batchnorm: bool, dropout: bool) -> list[Layer]:
    """``layers`` with ``Conv2D(relu)`` -> ``Conv2D`` (no bias: BN's beta is one), BatchNorm,
    ReLU; and ``Dropout`` right after ``Flatten``, before the dense head."""
    out: list[Layer] = []
    for layer in layers:
        if batchnorm and isinstance(layer, Conv2D) and layer.activation == "relu":
            cfg = {**layer.get_config(), "activation": None, "use_bias": False}
            out += [Conv2D(**cfg), BatchNorm(), ReLU()]
        else:
            out.append(layer)
        if dropout and isinstance(layer, Flatten):
            out.append(Dropout(DROPOUT_RATE))
    return out


def _variant(base: str, batchnorm: bool, dropout: bool):
    return lambda: _with_options(_BUILDERS[base][0](), batchnorm=batchnorm, dropout=dropout)


_OPTIONS = {
    (True, False): "BatchNorm after each conv",
    (False, True): "Dropout (0.5) before the dense head",
    (True, True): "BatchNorm after each conv, Dropout (0.5) before the dense head",
}
_VARIANT_BUILDERS: dict[str, tuple[Callable[[], list[Layer]], str]] = {
    variant_name(base, batchnorm=bn, dropout=drop): (
        _variant(base, bn, drop),
        f"{base} with {what}",
    )
    for base in VARIANT_BASES
    for (bn, drop), what in _OPTIONS.items()
}

#: Variant name -> one-line description (``tiny_bn``, ``classic_bn_dropout``...).
VARIANTS: dict[str, str] = {name: desc for name, (_, desc) in _VARIANT_BUILDERS.items()}


def build_model(name: str, seed: int = 0) -> Sequential:
    """Build preset or variant ``name`` (see :data:`PRESETS`, :data:`VARIANTS`) for 28x28x1
    input, seeded by ``seed``."""
    builders = {**_BUILDERS, **_VARIANT_BUILDERS}
    if name not in builders:
        raise ValueError(f"`name` must be one of {sorted(builders)}, got {name!r}")
    return Sequential(builders[name][0](), input_shape=(28, 28, 1), seed=seed, name=name)
