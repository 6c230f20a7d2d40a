"""Training recipes: what ``python -m convviz train`` and the Train page run by default.

A recipe is the part of a :class:`~convviz.nn.train.TrainConfig` that decides how well and
how fast a model learns (optimizer, peak learning rate, schedule, batch size, epochs,
and how many training images an epoch uses).
``"best"`` is, per preset, the recipe that reached the highest test accuracy in the least
time here; ``"keras"`` is the reference recipe of the Keras MNIST convnet ("Deep Learning
with Python", ch. 8: RMSprop at its default 1e-3, batch 64, 5 epochs, no schedule), one
flag away (``--recipe keras``).

Measured with ``python -m convviz train`` (55,000 training images, 5,000 validation, seed 0;
test accuracy on the 10,000 test images), 2026-12-02, on a 2-core AMD EPYC (AVX2) whose
float32 matmul peak is ~135 GFLOP/s:

* ``classic``: Adam, one-cycle to 5e-3, batch 128, 3 epochs -> 99.23% (peak 4e-3: 99.17%
  in 71 s wall on a quiet machine, 99.33% after 4 epochs; 3e-3: 99.12%; the Keras recipe:
  99.04-99.13% after 5 epochs).
  Again on 2026-12-02 16:11 (a faster day: peak ~205 GFLOP/s, load ~1): 99.26% in
  28.7 and 30.4 s wall. On 2026-12-04 (peak 188-205 GFLOP/s, load 0.1-0.9, the
  training path of that day): 99.22% in 21.7 and 22.8 s wall; seeds 1 and 2: 99.22%
  and 99.33%.
* ``tiny``: Adam, one-cycle to 4e-3, batch 64, 1 epoch of 25,000 images -> 98.47%,
  98.24% and 98.33% (seeds 0, 1, 2) in 3.5-3.7 s wall, on that faster day. The whole
  55,000 at batch 128: 98.79-98.80% in 6.5 s wall that day (12.7 s on the slower one);
  30,000 at batch 64: 98.58% in 4.0 s; 20,000: 98.37% in 3.4 s.

>>> best = recipe("classic")
>>> best.optimizer, best.schedule, best.batch_size, best.epochs
('adam', 'onecycle', 128, 3)
>>> recipe("classic", "keras").optimizer
'rmsprop'
>>> recipe("inception") == recipe("inception", "best")  # presets without a tuned recipe
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["RECIPE_NAMES", "Recipe", "recipe"]


@dataclass(frozen=True)
class Recipe:
    """How a model is trained (the rest of a TrainConfig says on what, and with which seed)."""

    optimizer: str = "adam"
    lr: float = 3e-3  # the schedule's peak
    schedule: str = "onecycle"  # "none" | "cosine" | "onecycle"
    batch_size: int = 64
    epochs: int = 5
    train_size: int | None = None  # training images an epoch uses (None: all of them)

    def fields(self) -> dict:
        """The TrainConfig fields this recipe sets."""
        return asdict(self)


# The Keras book's recipe for its MNIST convnet: RMSprop(1e-3), batch 64, 5 epochs.
KERAS = Recipe(optimizer="rmsprop", lr=1e-3, schedule="none", batch_size=64, epochs=5)

_BEST: dict[str, Recipe] = {
    "tiny": Recipe(lr=4e-3, batch_size=64, epochs=1, train_size=25_000),
    "classic": Recipe(lr=5e-3, batch_size=128, epochs=3),
}
# resnet, inception and densenet: the shipped models' recipe (assets/models, 5-6 epochs).
_DEFAULT = Recipe()

RECIPE_NAMES = ("best", "keras")


def recipe(model: str, name: str = "best") -> Recipe:
    """The recipe ``name`` (one of :data:`RECIPE_NAMES`) for preset or variant ``model``.

    A variant (``classic_bn``, ``tiny_dropout``...) gets its base preset's recipe.
    """
    if name not in RECIPE_NAMES:
        raise ValueError(f"`recipe` must be one of {list(RECIPE_NAMES)}, got {name!r}")
    if name == "keras":
        return KERAS
    base = model.split("_", 1)[0]
    return _BEST.get(base, _DEFAULT)
