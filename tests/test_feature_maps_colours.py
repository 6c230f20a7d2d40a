"""The Feature maps page's colours explain themselves (issue 16 §3), through AppTest.

The grid carries its legend in words in the page's language; without an activation
the maps are signed (red-white-blue, ± the 99th percentile of each map), after ReLU
unsigned (black-white); the kernel cards are heat views under one caption.
"""

from __future__ import annotations

import json

import pytest

from tests.support.apptest import page_app


def _chart(at, key: str) -> dict:
    for c in at.get("plotly_chart"):
        if c.proto.id.endswith(f"-{key}"):
            return json.loads(c.proto.spec)
    raise AssertionError(f"no chart with key {key!r}")


@pytest.mark.parametrize(
    ("lang", "relu", "none", "kernels"),
    [
        ("en", "black at its 1st percentile", "red positive", "Each kernel on its own range"),
        ("pt", "preto no 1º percentil", "vermelho positivo", "Cada kernel com sua própria faixa"),
    ],
)
def test_grid_legend_follows_the_activation(lang, relu, none, kernels) -> None:
    at = page_app("feature_maps", lang)
    at.session_state["fm_max_side"] = 64  # small: the colours, not the speed, are tested
    at.run()
    assert not at.exception
    grid = _chart(at, "fm_grid")
    assert relu in grid["layout"]["meta"]["legend"]
    assert any(relu in a["text"].replace("<br>", " ") for a in grid["layout"]["annotations"])
    at.selectbox(key="fm_activation").set_value("none").run()
    assert not at.exception
    grid = _chart(at, "fm_grid")
    # edge maps are signed now, blurs of the image are not: the legend explains both
    assert none in grid["layout"]["meta"]["legend"] and relu in grid["layout"]["meta"]["legend"]
    signed = [tr["hovertemplate"].count("±") == 1 for tr in grid["data"]]  # each map's range
    assert signed[7] and not signed[1]  # Sobel x, Box blur 3x3 (the bank's order)
    # the kernel cards: heat views (Gabor 13x13 without numbers), one legend above them;
    # drawn only once their expander is open
    assert any(kernels in c.value for c in at.caption)
    assert not any(c.proto.id.endswith("-fm_kernel_gabor") for c in at.get("plotly_chart"))
    at.session_state["fm_kernels"] = True  # what opening the expander sends
    at.run()
    assert not at.exception
    gabor = _chart(at, "fm_kernel_gabor")["data"][0]
    assert gabor["type"] == "heatmap" and gabor.get("texttemplate") is None
    assert gabor["zmin"] == -gabor["zmax"]
    sobel = _chart(at, "fm_kernel_sobel_x")["data"][0]
    assert sobel["texttemplate"] == "%{text}"
