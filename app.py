"""convviz: an interactive convolution visualizer. Run with ``streamlit run app.py``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from convviz.ui.common import persist_widget_state
from convviz.ui.i18n import KEY as LANG_KEY
from convviz.ui.i18n import language_picker
from convviz.ui.pages import about, convolution, feature_maps, inside, pooling, step, train
from convviz.ui.server import tune_for_training


def run() -> None:
    # A shipped image: a ":material/...:" icon made the browser fetch it from fonts.gstatic.com.
    icon = Path(__file__).with_name("assets") / "static" / "favicon.png"  # i18n: not text
    st.set_page_config(page_title="convviz", page_icon=str(icon), layout="wide")
    tune_for_training()  # once per process: training threads beside the web server
    # Widget values survive switching pages (Streamlit drops undrawn widgets' state).
    persist_widget_state(
        (
            LANG_KEY,
            *convolution.STATE_KEYS,
            *pooling.STATE_KEYS,
            *feature_maps.STATE_KEYS,
            *train.STATE_KEYS,
            *step.STATE_KEYS,
            *inside.STATE_KEYS,
        )
    )
    t = language_picker()
    page = st.navigation(
        [
            st.Page(
                convolution.render,
                title=t("nav.convolution"),
                icon=":material/blur_on:",
                default=True,
            ),
            st.Page(
                pooling.render,
                title=t("nav.pooling"),
                icon=":material/grid_view:",
                url_path="pooling",
            ),
            st.Page(
                feature_maps.render,
                title=t("nav.feature_maps"),
                icon=":material/layers:",
                url_path="feature-maps",
            ),
            st.Page(
                train.render,
                title=t("nav.train"),
                icon=":material/model_training:",
                url_path="train",
            ),
            st.Page(
                step.render,
                title=t("nav.step"),
                icon=":material/footprint:",
                url_path="step",
            ),
            st.Page(
                inside.render,
                title=t("nav.inside"),
                icon=":material/neurology:",
                url_path="inside",
            ),
            st.Page(about.render, title=t("nav.about"), icon=":material/info:", url_path="about"),
        ]
    )
    page.run()


if __name__ == "__main__":
    run()
