"""One training step, stepped: initialise, forward, loss, backpropagation, update.

The numbers come from ``convviz.nn``'s reference forward and backward (see
``convviz.nn.walkthrough``), so what the page shows is what the tests check.
"""

from __future__ import annotations

import streamlit as st

from convviz.ui.i18n import tr

#: Widget keys whose values survive switching pages (see app.py).
STATE_KEYS: tuple[str, ...] = ()


def render() -> None:
    t = tr()
    st.title(t("step.title"))
