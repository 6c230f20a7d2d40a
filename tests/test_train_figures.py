"""Figure builders of the training page, checked against loops and hand-made arrays."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convviz.figures import DIVERGING, colorize
from convviz.i18n import translator
from convviz.train_figures import (
    bars_image,
    compare_figure,
    confusion_figure,
    confusion_image,
    curves_figure,
    dense_figure,
    digit_tile,
    feature_maps_image,
    filters_figure,
    filters_image,
    format_duration,
    mark_step,
    smooth,
    thin,
    tile,
)


def tile_loop(maps, ncols, gap):
    n, h, w = maps.shape
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    out = np.full((nrows * h + (nrows - 1) * gap, ncols * w + (ncols - 1) * gap), np.nan)
    for i in range(n):
        r, c = i // ncols, i % ncols
        for y in range(h):
            for x in range(w):
                out[r * (h + gap) + y, c * (w + gap) + x] = maps[i, y, x]
    return out


@pytest.mark.parametrize(("n", "ncols", "gap"), [(1, 4, 1), (5, 2, 1), (8, 8, 0), (7, 3, 2)])
def test_tile_matches_loop(n, ncols, gap):
    maps = np.random.default_rng(n).normal(size=(n, 3, 4))
    np.testing.assert_array_equal(tile(maps, ncols, gap), tile_loop(maps, ncols, gap))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maps": np.zeros((0, 2, 2)), "ncols": 1}, "`maps` must have shape"),
        ({"maps": np.zeros((2, 2)), "ncols": 1}, "`maps` must have shape"),
        ({"maps": np.zeros((1, 2, 2)), "ncols": 0}, "`ncols` must be >= 1"),
        ({"maps": np.zeros((1, 2, 2)), "ncols": 1, "gap": -1}, "`gap` must be >= 0"),
    ],
)
def test_tile_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tile(**kwargs)


def test_thin_keeps_ends_and_limit():
    x = list(range(1000))
    tx, ty = thin(x, [v * 2 for v in x], max_points=50)
    assert len(tx) <= 50 and tx[0] == 0 and tx[-1] == 999
    assert ty == [v * 2 for v in tx]
    with pytest.raises(ValueError, match="`max_points` must be >= 2"):
        thin(x, x, max_points=1)
    with pytest.raises(ValueError, match="`y` must have 1,000 entries"):
        thin(x, x[:3])


def test_filters_figure_places_each_weight():
    k = np.random.default_rng(0).normal(size=(3, 3, 2, 5))  # (kh, kw, C, F)
    fig = filters_figure(k, channel=1, ncols=2)
    z = np.asarray(fig.data[0].z, dtype=float)
    for f in range(5):
        r, c = divmod(f, 2)
        np.testing.assert_array_equal(z[r * 4 : r * 4 + 3, c * 4 : c * 4 + 3], k[:, :, 1, f])
    m = np.abs(k[:, :, 1, :]).max()
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-m, m)  # white is 0
    with pytest.raises(ValueError, match="`channel` must be in"):
        filters_figure(k, channel=2)
    with pytest.raises(ValueError, match="`kernel` must have shape"):
        filters_figure(k[..., 0])


def test_filters_image_rows_are_filters_and_columns_channels():
    k = np.random.default_rng(1).normal(size=(2, 2, 3, 4))
    img = filters_image(k, zoom=1)  # 4 rows (filters) x 3 columns (channels)
    assert img.shape == (4 * 3 - 1, 3 * 3 - 1, 3)
    m = np.abs(k).max()
    f, c = 2, 1
    expected = colorize(k[:, :, c, f], -m, m, DIVERGING)
    np.testing.assert_array_equal(img[f * 3 : f * 3 + 2, c * 3 : c * 3 + 2], expected)
    assert (img[2, :] == 255).all()  # the gap rows are white


def test_feature_maps_image_shares_one_range():
    a = np.zeros((4, 4, 2))
    a[..., 0] = 1.0
    a[..., 1] = 0.5
    img = feature_maps_image(a, ncols=2, min_side=4)
    assert img.shape == (4, 9, 3)
    assert (img[:, :4] == 255).all() and (img[:, 5:] == 128).all()  # greys, max = white


def test_dense_and_confusion_figures():
    v = np.array([0.2, -1.0, 3.0])
    fig = dense_figure(v, "dense", labels=["a", "b", "c"])
    assert list(fig.data[0].y) == v.tolist() and list(fig.data[0].x) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="`labels` must have 3 entries"):
        dense_figure(v, "x", labels=["a"])
    cm = np.arange(100).reshape(10, 10)
    np.testing.assert_array_equal(np.asarray(confusion_figure(cm).data[0].z), cm)
    with pytest.raises(ValueError, match="`confusion` must be a square"):
        confusion_figure(np.zeros((2, 3)))


def test_digit_tile_frame():
    img = np.full((28, 28), 200, np.uint8)
    right = digit_tile(img, True, zoom=1)
    assert right.shape == (32, 32, 3)
    assert right[0, 0].tolist() == [46, 160, 67] and right[16, 16].tolist() == [200] * 3
    plain = digit_tile(img, None, zoom=2)
    assert plain.shape == (56, 56, 3) and (plain == 200).all()


def test_curves_figure_thins_long_histories():
    n = 5000
    chunks = {"step": list(range(1, n + 1)), "loss": [1.0] * n, "acc": [0.5] * n}
    fig = curves_figure(chunks, {}, max_points=300)
    assert len(fig.data[0].x) <= 300 and fig.data[0].x[-1] == n


def _bar_heights(img: np.ndarray, colour: tuple[int, int, int]) -> list[int]:
    """Pixels of ``colour`` in each run of bar columns, left to right."""
    mask = (img == colour).all(axis=2)
    cols = mask.any(axis=0)
    heights, i = [], 0
    while i < len(cols):
        if cols[i]:
            j = i
            while j < len(cols) and cols[j]:
                j += 1
            heights.append(int(mask[:, i].sum()))
            i = j
        else:
            i += 1
    return heights


def test_bars_image_heights_follow_the_values():
    v = np.array([0.1, 0.4, 0.25, 0.0, 1.0, 0.5, 0.75, 0.05, 0.2, 0.3])
    img = bars_image(v, probability=True, height=114, width=400)  # plot area 100 rows
    blue = (31, 119, 180)
    heights = _bar_heights(img[:100], blue)
    # Each bar spans the zero row (99) up to row round((1 - v) * 99), both ends drawn.
    want = [100 - int(np.rint(99 * (1 - x))) for x in v if x > 0]
    assert heights == want
    hl = bars_image(v, probability=True, highlight=4, height=114, width=400)
    orange = (255, 127, 14)
    assert _bar_heights(hl[:100], orange) == [100]  # the tallest bar, in the highlight colour
    assert (img[100:] != 255).any()  # the class digits under the bars


def test_bars_image_signed_values_hang_below_zero():
    v = np.array([-1.0, 1.0, 3.0] + [0.0] * 17)  # 20 bars: no labels, plot = whole height
    img = bars_image(v, height=41, width=200)
    mask = (img == (31, 119, 180)).all(axis=2)
    zero = 30  # rows 0..40 span [3, -1]: 0 sits at 40 * 3 / 4
    assert (img[zero, 100:] == 190).all()  # the grey zero line where bars are 0
    bar0 = mask[:, 2:9]  # first bar's columns
    assert bar0[zero:].all() and not bar0[:zero].any()  # -1 hangs from 0 down to the bottom
    bar2 = mask[:, 20:27]
    assert bar2[: zero + 1].all() and not bar2[zero + 1 :].any()  # 3 rises to the top
    with pytest.raises(ValueError, match="`values` must not be empty"):
        bars_image(np.array([]))
    nan = bars_image(np.array([1.0, np.nan] + [0.5] * 18), height=41, width=200)
    red = (nan == (214, 39, 40)).all(axis=2)
    assert red[:, 11:18].any() and not red[:, :10].any()  # the NaN bar is marked, not drawn


def test_confusion_image_shades_and_counts():
    cm = np.array([[9, 1, 0], [2, 6, 0], [0, 0, 4]])
    img = confusion_image(cm, cell=20)
    assert img.shape == (80, 80, 3)
    corner = lambda i, j: img[(i + 1) * 20 + 1, (j + 1) * 20 + 1].astype(int).sum()  # noqa: E731
    # Darker (smaller RGB sum) for larger counts.
    order = sorted((cm[i, j], corner(i, j)) for i in range(3) for j in range(3))
    assert all(a[1] >= b[1] for a, b in itertools.pairwise(order))
    assert corner(0, 2) >= 750  # 0: the scale's near-white end
    cell = img[20:40, 20:40]  # count 9 on dark blue: white digits written in
    assert (cell.astype(int).sum(axis=2) > 600).any()
    with pytest.raises(ValueError, match="`confusion` must be a square"):
        confusion_image(np.zeros((2, 3)))


def test_curves_figure_spans_the_run_with_fixed_margins():
    fig = curves_figure({"step": [1, 5], "loss": [2.0, 1.0], "acc": [0.1, 0.5]}, {}, total_steps=80)
    assert fig.layout.xaxis.range == (0, 80) and fig.layout.xaxis2.range == (0, 80)
    # Nothing may push the margins: plotly would measure and draw twice per refresh.
    assert fig.layout.margin.autoexpand is False
    assert fig.layout.xaxis.automargin is False and fig.layout.yaxis2.automargin is False
    assert curves_figure({}, {}).layout.xaxis.range is None  # no run length: fit the data


# --------------------------------------------------------------------------- languages
PT = translator("pt")


def test_curves_figure_in_portuguese():
    fig = curves_figure(
        {"step": [1, 2], "loss": [2.3, 2.1], "acc": [0.1, 0.2]},
        {"val_step": [2], "val_loss": [2.0], "val_acc": [0.3]},
        t=PT,
    )
    assert fig.layout.separators == ",."
    assert [t.name for t in fig.data] == ["treino", "validação", "treino", "validação"]
    assert fig.layout.xaxis.title.text == "iteração"
    assert (fig.layout.yaxis.title.text, fig.layout.yaxis2.title.text) == ("perda", "acurácia")
    assert fig.data[0].hovertemplate == "iteração %{x}<br>perda no treino %{y:.4f}<extra></extra>"
    assert "acurácia na validação %{y:.2%}" in fig.data[3].hovertemplate
    en = curves_figure({"step": [1], "loss": [2.3], "acc": [0.1]}, {})
    assert en.layout.separators == ".," and en.layout.yaxis2.title.text == "accuracy"
    assert en.data[0].hovertemplate == "step %{x}<br>train loss %{y:.4f}<extra></extra>"


def test_filters_dense_and_confusion_in_portuguese():
    k = np.ones((3, 3, 1, 2))
    f = filters_figure(k, t=PT)
    assert f.layout.separators == ",."
    assert f.data[0].hovertemplate == "filtro %{customdata}<br>peso %{z:.4f}<extra></extra>"
    d = dense_figure(np.array([0.1, 0.9]), "softmax", probability=True, t=PT)
    assert d.layout.separators == ",." and d.layout.title.text == "softmax"
    cm = np.array([[1234, 1], [0, 56]])
    c = confusion_figure(cm, t=PT)
    assert (c.layout.xaxis.title.text, c.layout.yaxis.title.text) == ("prevista", "real")
    assert c.data[0].hovertemplate == "real %{y}, prevista %{x}: %{z}<extra></extra>"
    assert c.data[0].text.tolist() == [["1.234", "1"], ["0", "56"]]
    assert confusion_figure(cm).data[0].text.tolist() == [["1,234", "1"], ["0", "56"]]
    assert c.layout.separators == ",."


def test_format_duration_is_one_formatter_in_both_languages():
    for t in (None, PT):
        assert format_duration(75, t) == "1:15"
        assert format_duration(3725.2, t) == "1:02:05"
        assert format_duration(36000 * 100, t) == "1000:00:00"  # a clock: no grouping
        assert format_duration(float("nan"), t) == format_duration(-1, t) == "–"
    assert format_duration(59.6) == "1:00"


# ------------------------------------------------------------------ timeline and comparison
def _ema_loop(values, w):
    out = []
    num = den = 0.0
    for v in values:
        num = w * num + (1 - w) * v
        den = w * den + (1 - w)  # the weights' sum so far: 1 - w**(i+1)
        out.append(num / den)
    return out


@pytest.mark.parametrize("w", [0.0, 0.5, 0.9, 0.99])
def test_smooth_matches_a_weighted_mean_loop(w):
    v = np.random.default_rng(int(w * 100)).normal(size=50).tolist()
    np.testing.assert_allclose(smooth(v, w), _ema_loop(v, w), rtol=1e-12)
    assert smooth([], w) == []


def test_smooth_validates_its_weight():
    with pytest.raises(ValueError, match="`weight` must be between 0 and 1"):
        smooth([1.0], 1.0)


def _history(rng, n_steps, val_every):
    steps = list(range(1, n_steps + 1))
    vsteps = steps[val_every - 1 :: val_every]
    return {
        "step": steps,
        "loss": rng.uniform(0.1, 2.0, n_steps).tolist(),
        "acc": rng.uniform(0, 1, n_steps).tolist(),
        "lr": [1e-3] * n_steps,
        "val_step": vsteps,
        "val_loss": rng.uniform(0.1, 2.0, len(vsteps)).tolist(),
        "val_acc": rng.uniform(0, 1, len(vsteps)).tolist(),
    }


def test_compare_figure_traces_equal_each_run_s_history():
    rng = np.random.default_rng(0)
    runs = [("#1 a", _history(rng, 30, 5)), ("#2 b", _history(rng, 1000, 100))]
    fig = compare_figure(runs, weight=0.8, max_points=400, t=translator("pt"))
    assert len(fig.data) == 8
    for k, (label, h) in enumerate(runs):
        vl, tl, va, ta = fig.data[4 * k : 4 * k + 4]
        assert {d.name for d in (vl, tl, va, ta)} == {label}
        assert vl.showlegend and not (tl.showlegend or va.showlegend or ta.showlegend)
        assert (vl.xaxis, va.xaxis) == ("x", "x2")
        assert list(vl.x) == h["val_step"] and list(vl.y) == h["val_loss"]
        assert list(va.y) == h["val_acc"]
        assert vl.line.color == tl.line.color == ta.line.color  # one colour per run
        smooth_loss = _ema_loop(h["loss"], 0.8)
        # Long histories are thinned (evenly, keeping the last) after smoothing.
        idx = [h["step"].index(s) for s in tl.x]
        assert len(tl.x) <= 400 and tl.x[-1] == h["step"][-1]
        np.testing.assert_allclose(tl.y, [smooth_loss[i] for i in idx], rtol=1e-12)
    assert fig.data[0].line.color != fig.data[4].line.color
    assert fig.layout.separators == ",."
    assert "iteração" in fig.data[0].hovertemplate or "step" in fig.data[0].hovertemplate


def test_mark_step_marks_both_panels():
    fig = curves_figure(
        {"step": [1, 2], "loss": [2.0, 1.0], "acc": [0.1, 0.3]},
        {"val_step": [2], "val_loss": [1.5], "val_acc": [0.4]},
        total_steps=10,
    )
    n = len(fig.data)
    mark_step(fig, 2, (1.5, 0.4))
    assert [(s.x0, s.x1, s.xref) for s in fig.layout.shapes] == [(2, 2, "x"), (2, 2, "x2")]
    assert [(list(d.x), list(d.y), d.xaxis) for d in fig.data[n:]] == [
        ([2], [1.5], "x"),
        ([2], [0.4], "x2"),
    ]
