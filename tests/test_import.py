"""``import convviz`` stays light: no streamlit, scipy or scikit-image at import time.

Streamlit belongs to :mod:`convviz.ui` only; scipy and scikit-image are for the
bundled samples (loaded on first use) and for the tests' oracles. Measured on
this machine before the Gabor preset was written in NumPy: skimage took about
340 ms of a 450 ms ``import convviz``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("streamlit", "scipy", "skimage")


@pytest.mark.parametrize(
    "module", ["convviz", "convviz.nn", "convviz.figures", "convviz.train_figures"]
)
def test_import_leaves_heavy_packages_out(module: str) -> None:
    code = f"import sys, {module}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"`import {module}` loaded {out.stdout.strip()}"


def test_the_presets_need_no_skimage() -> None:
    """Touching every preset (Gabor included) still imports neither scipy nor skimage."""
    code = (
        "import sys, convviz\n"
        "ws = [k.weights.sum() for k in convviz.KERNELS.values()]\n"
        "ws += [k.weights.sum() for k in convviz.gabor_bank(8).values()]\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
