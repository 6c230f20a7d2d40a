"""The Train a CNN page on its own, for AppTest and the browser test (``streamlit run`` it)."""

import streamlit as st

from convviz.ui.pages.train import render

st.set_page_config(page_title="convviz: train", layout="wide")
render()
