"""About page: what convolution is, the output-size formula, credits and licenses."""

from __future__ import annotations

import streamlit as st


def render() -> None:
    st.title("About convviz")
    st.markdown(
        """
convviz shows what a convolution layer does, one multiplication at a time.

### What is a convolution?
A small grid of weights, the **kernel** (or filter), slides over the image. At every
position the app multiplies each kernel weight by the pixel under it, adds the products
up, adds a **bias**, and writes that one number into the output, the **feature map**:
"""
    )
    st.latex(r"y[i, j] = b + \sum_{c}\sum_{u}\sum_{v} w[c, u, v]\; x[c,\; i s + u d,\; j s + v d]")
    st.markdown(
        """
where `s` is the **stride** (how far the window moves each step) and `d` the **dilation**
(the spacing between kernel taps). With several input channels (RGB) there is one kernel
slice per channel and the per-channel sums are added together.

CNN libraries compute this *cross-correlation* and call it convolution. Mathematical
convolution first flips the kernel in both directions: the **true convolution (flip)**
switch on the Convolution page does that. For symmetric kernels (blurs) the two agree.

**Padding** adds a border so the window can be centred on edge pixels: `valid` adds
none, `same` adds enough to keep `ceil(n / s)` outputs, `full` lets the kernel overlap
the image by a single pixel. The border can hold zeros, a mirror image (`reflect`), the
edge pixel repeated (`replicate`) or the opposite edge (`circular`).

### Output size
For an input of length `n`, kernel length `k`, padding `p_before + p_after`, stride `s`
and dilation `d`, along each axis:
"""
    )
    st.latex(
        r"n_{out} = \left\lfloor \frac{n + p_{before} + p_{after} - d\,(k-1) - 1}{s} "
        r"\right\rfloor + 1"
    )
    st.markdown(
        """
The Convolution page fills in this formula with your numbers.

**Pooling** slides a window too but has no weights: it keeps the largest (max), the mean
(average) or the smallest (min) value. An **activation** (ReLU, sigmoid, tanh, ...) is
applied to every value of a feature map and is what makes a stack of layers more than one
big linear filter.

### How to use it
1. **Convolution**: pick *Numbers* (the classic 5x5 example), a sample image, or upload
   your own in the sidebar. Choose a preset kernel or type weights into the grid, then
   scrub the *Sliding window* slider, click ◀ ▶, or press *Play*.
   The URL keeps your kernel and settings: copy it to share the view.
2. **Pooling & activations**: pool the Convolution page's feature map (or an image) and
   step through the windows; compare activation functions.
3. **Feature maps**: run a whole bank of filters at once.

Every chart has a camera button (top right when you hover) that saves a PNG; feature maps
also download as `.npy` (exact values) and `.png`.

### Credits and licenses
- Built with [Streamlit](https://streamlit.io) (Apache-2.0), [NumPy](https://numpy.org)
  (BSD-3-Clause), [Pillow](https://python-pillow.org) (MIT-CMU), [plotly](https://plotly.com/python/)
  (MIT), [SciPy](https://scipy.org) (BSD-3-Clause) and
  [scikit-image](https://scikit-image.org) (BSD-3-Clause).
- Sample images come from `skimage.data`, shipped inside scikit-image: the cameraman,
  coffee, cat (Chelsea) and horse images are CC0 from their photographers; astronaut and
  text are public domain; coins has no known copyright restrictions; the brick texture is
  CC0 (CC0Textures). See each function's docstring in `skimage.data` for its source.
- **MNIST** (used by *Train a CNN*): Yann LeCun, Corinna Cortes and Christopher J.C.
  Burges, *The MNIST database of handwritten digits*, licensed under
  [CC BY-SA 3.0](https://creativecommons.org/licenses/by-sa/3.0/).
"""
    )
