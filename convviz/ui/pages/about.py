"""About page: what convolution is, the output-size formula, credits and licenses.

Every paragraph is a catalogue entry (domain ``about``); the names of other
pages and widgets come from their own entries, so the guide always says what
the interface shows.
"""

from __future__ import annotations

from string import Template

import streamlit as st

from convviz.ui.i18n import tr

# The formulas: symbols only, no words (the output size's subscripts come from the catalogue).
CONV_FORMULA = (
    r"y[i, j] = b + \sum_{c}\sum_{u}\sum_{v}"  # i18n: not text
    r" w[c, u, v]\; x[c,\; i s + u d,\; j s + v d]"
)
SIZE_FORMULA = Template(
    r"n_{\text{$out}} = \left\lfloor"  # i18n: not text
    r" \frac{n + p_{\text{$before}} + p_{\text{$after}} - d\,(k-1) - 1}{s} \right\rfloor + 1"
)
SAMPLES = ("cameraman", "coffee", "cat", "horse", "astronaut", "text", "coins", "brick")


def render() -> None:
    t = tr()
    pages = {p: t(f"nav.{p}") for p in ("convolution", "pooling", "feature_maps", "train")}
    st.title(t("about.title"))
    st.markdown(t("about.intro"))
    st.subheader(t("about.what.heading"))
    st.markdown(t("about.what"))
    st.latex(CONV_FORMULA)
    st.markdown(t("about.what.after", **pages))
    st.subheader(t("about.size.heading"))
    st.markdown(t("about.size"))
    st.latex(
        SIZE_FORMULA.substitute(
            out=t("about.sub.out"), before=t("about.sub.before"), after=t("about.sub.after")
        )
    )
    st.markdown(t("about.size.after", **pages))
    st.subheader(t("about.use.heading"))
    st.markdown(
        t(
            "about.use",
            **pages,
            numbers=t("app.source.numbers"),
            position=t("app.step.position"),
            play=t("app.play"),
        )
    )
    st.subheader(t("about.credits.heading"))
    samples = {s: t(f"app.sample.{s}") for s in SAMPLES}
    st.markdown(t("about.credits", **pages, **samples))
