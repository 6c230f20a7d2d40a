"""The Train a CNN page on its own, for AppTest and the browser test (``streamlit run`` it)."""

import streamlit as st

from convviz.ui.pages.train import render
from convviz.ui.server import tune_for_training

tune_for_training()  # as app.py does: the training threads get the GIL back sooner
st.set_page_config(page_title="convviz", layout="wide")
render()
