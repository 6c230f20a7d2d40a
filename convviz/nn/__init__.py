"""A small NumPy CNN (NHWC, float32) to train on MNIST and look inside.

Layers, blocks and a Keras-like :class:`Sequential` with forward and backward
passes written in NumPy; no deep-learning framework at run time. Modules, from
the bottom up (each imports only those above it in this list, and the core):

* ``registry``: class name -> layer class, to rebuild saved models;
* ``init``: weight initialisers; ``functional``: im2col/col2im and pooling kernels;
* ``layers``: the reference layers (``Conv2D``, ``Dense``...), short forward and
  backward passes, a loop version beside the conv's;
* ``blocks``: layers made of layers (``Residual``, ``Concat``);
* ``losses``: softmax cross-entropy; ``model``: ``Sequential``, save and load;
* ``fast``: ``FastPlan``, the fused and threaded training path (opt-in), tested
  against the reference layers;
* ``presets``: named architectures; ``optim``: SGD, RMSprop, Adam;
  ``data``: MNIST; ``train``: ``Trainer`` and ``evaluate``.
"""

from convviz.nn.blocks import Concat, Residual, dense_block
from convviz.nn.data import Mnist, MnistError, load_mnist, to_batch, train_val_split
from convviz.nn.fast import FastPlan
from convviz.nn.init import INITIALIZERS
from convviz.nn.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Identity,
    Layer,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Rescaling,
    Sigmoid,
    Tanh,
)
from convviz.nn.losses import softmax_cross_entropy
from convviz.nn.model import ModelFileError, Sequential, load_model
from convviz.nn.optim import OPTIMIZERS, SGD, Adam, Optimizer, RMSprop, make_optimizer
from convviz.nn.presets import PRESETS, build_model
from convviz.nn.train import SCHEDULES, Evaluation, TrainConfig, Trainer, evaluate, evaluate_set

__all__ = [
    "INITIALIZERS",
    "OPTIMIZERS",
    "PRESETS",
    "SCHEDULES",
    "SGD",
    "Adam",
    "AvgPool2D",
    "BatchNorm",
    "Concat",
    "Conv2D",
    "Dense",
    "Dropout",
    "Evaluation",
    "FastPlan",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Mnist",
    "MnistError",
    "ModelFileError",
    "Optimizer",
    "RMSprop",
    "ReLU",
    "Rescaling",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "TrainConfig",
    "Trainer",
    "build_model",
    "dense_block",
    "evaluate",
    "evaluate_set",
    "load_mnist",
    "load_model",
    "make_optimizer",
    "softmax_cross_entropy",
    "to_batch",
    "train_val_split",
]
