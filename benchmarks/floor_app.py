"""The least a Streamlit page can do per kernel edit: a 3x3 grid and a 510x510 PNG.

``bench_ui.py`` times the same edit here as the floor that Streamlit's own
round trip sets on this machine (the grid's debounce, the rerun, the repaint).
Run on its own with ``streamlit run benchmarks/floor_app.py``.
"""

import io

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

st.set_page_config(layout="wide")
if "base" not in st.session_state:
    st.session_state.base = pd.DataFrame(np.zeros((3, 3)), columns=["0", "1", "2"])
with st.container(key="kernel"):
    grid = st.data_editor(st.session_state.base, key="kernel_editor")
seed = int(abs(float(np.nansum(np.asarray(grid, dtype=float)))) * 10) % 1000
img = (np.random.default_rng(seed).random((510, 510)) * 255).astype(np.uint8)
buf = io.BytesIO()
Image.fromarray(img).save(buf, format="PNG", compress_level=1)
with st.container(key="conv_output_img"):
    st.image(buf.getvalue(), width=520, output_format="PNG")
