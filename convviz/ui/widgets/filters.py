"""A conv layer's filters as a picture to click: a click picks a filter.

The filters are :func:`convviz.train_figures.filters_figure` (one tiled
``go.Heatmap``, hover shows each weight). Clicks on a heatmap send no selection
through ``st.plotly_chart(on_select=...)`` (STYLE.md, measured with Streamlit
1.67 and plotly 7.1); a near-transparent square marker on each filter's centre
does. The click's callback writes the filter into the selector's key before the
selector is drawn, so the selector stays the one owner of the choice (AppTest,
which cannot click a chart, drives the selector).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from convviz.figures import plot_config
from convviz.i18n import Translator
from convviz.train_figures import filters_figure
from convviz.ui.common import without_template

__all__ = ["NCOLS", "filter_picker", "picker_figure"]

NCOLS = 8  # filters per row
_HIT_OPACITY = 0.01  # invisible, yet plotly still hit-tests and selects the marker
_CHOSEN = "#ff7f0e"


def picker_figure(t: Translator, kernel: np.ndarray, chosen: int) -> go.Figure:
    """The first input channel of ``kernel`` ``(kh, kw, C, F)``, one clickable marker a filter."""
    k = np.asarray(kernel)
    kh, kw, _, f = k.shape
    fig = filters_figure(k, channel=0, ncols=NCOLS, t=t)
    ids = np.arange(f)
    r, c = np.divmod(ids, min(NCOLS, f))
    x = c * (kw + 1) + (kw - 1) / 2  # each filter's centre in the tiled grid (gaps of 1)
    y = r * (kh + 1) + (kh - 1) / 2
    fig.add_trace(
        go.Scatter(
            x=x.tolist(),
            y=y.tolist(),
            customdata=ids.tolist(),
            mode="markers",
            marker={"symbol": "square", "size": 26, "opacity": _HIT_OPACITY, "color": "#000"},
            hovertemplate=t("inside.filters.hover", filter="%{customdata}") + "<extra></extra>",
            showlegend=False,
        )
    )
    cr, cc = divmod(int(chosen), min(NCOLS, f))
    fig.add_shape(
        type="rect",
        x0=cc * (kw + 1) - 0.5,
        x1=cc * (kw + 1) + kw - 0.5,
        y0=cr * (kh + 1) - 0.5,
        y1=cr * (kh + 1) + kh - 0.5,
        line={"color": _CHOSEN, "width": 3},
    )
    fig.update_layout(clickmode="event+select", dragmode=False)
    return fig


def filter_picker(t: Translator, kernel: np.ndarray, key: str, target: str) -> None:
    """Draw the clickable filters; a click sets ``st.session_state[target]`` to that filter.

    Call before the selector whose key is ``target`` is drawn.
    """
    ss = st.session_state
    chosen = int(ss.get(target, 0))

    def clicked() -> None:
        points = (ss.get(key) or {}).get("selection", {}).get("points", [])
        if points:
            data = points[0].get("customdata")
            index = data[0] if isinstance(data, list) else data
            if isinstance(index, int | float) and 0 <= int(index) < kernel.shape[3]:
                ss[target] = int(index)

    st.plotly_chart(
        without_template(picker_figure(t, kernel, chosen)),
        width="stretch",
        key=key,
        on_select=clicked,
        selection_mode="points",
        config=plot_config("filters", t),
    )
