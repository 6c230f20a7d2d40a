"""The least a Streamlit page can do per kernel edit: a 3x3 cell editor and a 510x510 PNG.

``bench_ui.py`` times the same edit here as the floor that Streamlit's own round trip
sets on this machine (the editor's send, the rerun, the repaint), and the first paint
of this page from a fresh tab. It uses the app's own editor
(:mod:`convviz.ui.widgets.cell_editor`), so the floor and the app differ only by
what the app's pages do. Run on its own with ``streamlit run benchmarks/floor_app.py``.
"""

import io

import numpy as np
import streamlit as st
from PIL import Image

from convviz.i18n import translator
from convviz.ui.params import merge_edits
from convviz.ui.widgets.cell_editor import cell_editor

st.set_page_config(layout="wide")
t = translator("en")
base = np.zeros((3, 3))
with st.container(key="kernel"):
    edits = cell_editor(base, key="kernel_editor", t=t, edits=st.session_state.get("kernel_editor"))
grid, _ = merge_edits(base, edits)
seed = int(abs(float(np.nansum(grid))) * 10) % 1000
img = (np.random.default_rng(seed).random((510, 510)) * 255).astype(np.uint8)
buf = io.BytesIO()
Image.fromarray(img).save(buf, format="PNG", compress_level=1)
with st.container(key="conv_output_img"):
    st.image(buf.getvalue(), width=520, output_format="PNG")
