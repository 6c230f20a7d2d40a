"""convviz: an interactive convolution visualizer. Run with ``streamlit run app.py``."""

from __future__ import annotations

import streamlit as st

from convviz.ui import about, convolution, feature_maps, pooling, train_page
from convviz.ui.common import persist_widget_state


def run() -> None:
    st.set_page_config(page_title="convviz", page_icon=":material/blur_on:", layout="wide")
    # Widget values survive switching pages (Streamlit drops undrawn widgets' state).
    persist_widget_state(
        convolution.STATE_KEYS
        + pooling.STATE_KEYS
        + feature_maps.STATE_KEYS
        + train_page.STATE_KEYS
    )
    page = st.navigation(
        [
            st.Page(
                convolution.render,
                title="Convolution",
                icon=":material/blur_on:",
                default=True,
            ),
            st.Page(
                pooling.render,
                title="Pooling & activations",
                icon=":material/grid_view:",
                url_path="pooling",
            ),
            st.Page(
                feature_maps.render,
                title="Feature maps",
                icon=":material/layers:",
                url_path="feature-maps",
            ),
            st.Page(
                train_page.render,
                title="Train a CNN",
                icon=":material/model_training:",
                url_path="train",
            ),
            st.Page(about.render, title="About", icon=":material/info:", url_path="about"),
        ]
    )
    page.run()


if __name__ == "__main__":
    run()
