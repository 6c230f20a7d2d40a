"""convviz: see convolution, pooling and a small NumPy CNN learn.

The pure core: NumPy, Pillow and plotly figure builders. Streamlit is imported
only by :mod:`convviz.ui`.
"""

from convviz.activations import (
    ACTIVATIONS,
    activation_label,
    leaky_relu,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from convviz.conv import ConvStep, conv2d, conv2d_naive, conv2d_step, conv2d_steps
from convviz.images import (
    SAMPLES,
    ImageLoadError,
    encode_png,
    load_image,
    sample_image,
    symmetric_range,
    to_display,
)
from convviz.kernels import KERNELS, Kernel, gabor_bank
from convviz.pool import POOL_MODES, PoolStep, pool2d, pool2d_naive, pool2d_step, pool2d_steps
from convviz.shapes import PAD_MODES, output_size, resolve_padding

__all__ = [
    "ACTIVATIONS",
    "KERNELS",
    "PAD_MODES",
    "POOL_MODES",
    "SAMPLES",
    "ConvStep",
    "ImageLoadError",
    "Kernel",
    "PoolStep",
    "activation_label",
    "conv2d",
    "conv2d_naive",
    "conv2d_step",
    "conv2d_steps",
    "encode_png",
    "gabor_bank",
    "leaky_relu",
    "load_image",
    "output_size",
    "pool2d",
    "pool2d_naive",
    "pool2d_step",
    "pool2d_steps",
    "relu",
    "resolve_padding",
    "sample_image",
    "sigmoid",
    "softmax",
    "symmetric_range",
    "tanh",
    "to_display",
]
