"""The pure UI logic behind the Convolution page (convviz.ui.params).

Oracles: hand-written expectations, conv2d's output shapes, the catalogues'
English and Portuguese texts. (Moved here from test_figures.py, which keeps the
figure builders.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from convviz.conv import conv2d
from convviz.errors import CodedError
from convviz.i18n import translator
from convviz.shapes import resolve_padding
from convviz.ui.params import (
    CLASSIC_KERNEL,
    QUERY_KEYS,
    ConvSettings,
    decode_query,
    encode_query,
    fmt,
    merge_edits,
    normalise_sum,
    output_size_latex,
    parse_grid,
    random_kernel,
    resized,
    sig,
)
from tests.support.conv_apptest import edits

# --------------------------------------------------------------------------- grids


def test_parse_grid_accepts_a_data_editor_frame() -> None:
    df = pd.DataFrame([[0, 1.5], [-2, "3"]], columns=["0", "1"])
    np.testing.assert_array_equal(parse_grid(df), [[0, 1.5], [-2, 3]])


@pytest.mark.parametrize(
    ("cell", "code", "message"),
    [
        (None, "conv.grid.empty", "row 1, column 2 is empty"),
        (float("nan"), "conv.grid.empty", "row 1, column 2 is empty"),
        ("", "conv.grid.empty", "row 1, column 2 is empty"),
        ("abc", "conv.grid.not_number", "row 1, column 2 is not a number"),
        (float("inf"), "conv.grid.not_finite", "row 1, column 2 must be a finite number"),
        (object(), "conv.grid.not_number", "row 1, column 2 is not a number"),
    ],
)
def test_parse_grid_rejects_bad_cells(cell, code, message) -> None:
    with pytest.raises(CodedError, match=message) as info:
        parse_grid([[1.0, cell]])
    assert info.value.code == code and info.value.params == {"row": 1, "col": 2}
    assert "abc" not in str(info.value)  # a cell's text may come from a link: never quoted


def test_parse_grid_shape_rules() -> None:
    with pytest.raises(CodedError, match="2-D grid"):
        parse_grid([1, 2, 3])
    with pytest.raises(CodedError, match="between 1x1 and 15x15"):
        parse_grid(np.zeros((16, 3)))
    with pytest.raises(CodedError, match="between 1x1 and 4x4"):
        parse_grid(np.zeros((0, 3)), max_side=4)


def test_merge_edits_applies_cells_and_keeps_bad_ones() -> None:
    base = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    got, problems = merge_edits(base, edits({(1, 2): 9, (0, 0): "-2.5", (0, 1): None}))
    assert got.tolist() == [[-2.5, 1.0, 2.0], [3.0, 4.0, 9.0]]  # the cleared cell keeps 1
    assert [(p.error.code, p.error.params, p.kept) for p in problems] == [
        ("conv.grid.empty", {"row": 1, "col": 2}, 1.0)
    ]
    assert base[0, 0] == 0.0  # the base is never edited in place
    assert merge_edits(base, None)[0].tolist() == base.tolist()
    # keys as the browser sends them (strings), and a stale edit outside the grid
    got, problems = merge_edits(base, {"edited_rows": {"1": {"0": 7}, 5: {"0": 1}}})
    assert got[1, 0] == 7 and problems == []


def test_merge_edits_agrees_with_pandas_applying_the_same_edits() -> None:
    """Oracle: the same edits written into a DataFrame by hand, then parsed whole."""
    rng = np.random.default_rng(1)
    base = rng.integers(-5, 5, (4, 5)).astype(float)
    cells = {(int(r), int(c)): float(v) for r, c, v in rng.integers(0, 4, (6, 3))}
    df = pd.DataFrame(base, columns=[str(j) for j in range(5)])
    for (r, c), v in cells.items():
        df.iloc[r, c] = v
    np.testing.assert_array_equal(merge_edits(base, edits(cells))[0], parse_grid(df))


def test_resized_keeps_the_middle() -> None:
    k = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(resized(k, 5, 3)[1:4], k)
    assert resized(k, 5, 3)[[0, 4]].sum() == 0
    np.testing.assert_array_equal(resized(k, 1, 1), [[4.0]])
    k3 = np.stack([k, -k, 2 * k])
    np.testing.assert_array_equal(resized(k3, 3, 1)[:, :, 0], k3[:, :, 1])


def test_random_and_normalise() -> None:
    k = random_kernel((3, 5, 5), np.random.default_rng(3))
    assert k.shape == (3, 5, 5) and set(np.unique(k)) <= {-2, -1, 0, 1, 2}
    n = normalise_sum(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert n.sum() == pytest.approx(1.0) and n[1, 1] == pytest.approx(0.4)
    per_channel = normalise_sum(np.stack([np.ones((2, 2)), 2 * np.eye(2), np.eye(2)]))
    np.testing.assert_allclose(per_channel.sum(axis=(1, 2)), [1, 1, 1])
    with pytest.raises(CodedError, match="sum to 0") as info:
        normalise_sum(np.array([[-1.0, 1.0]]))
    assert info.value.code == "conv.kernel.sum_zero"


# --------------------------------------------------------------------------- numbers


def test_fmt_is_locale_independent() -> None:
    assert [fmt(v) for v in (181.0, -0.0, 0.1 + 0.2, 1234567.0)] == [
        "181",
        "0",
        "0.3",
        "1.23457e+06",
    ]


@pytest.mark.parametrize(
    ("v", "digits", "en", "pt"),
    [
        (181.0, 6, "181", "181"),
        (0.1 + 0.2, 6, "0.3", "0,3"),
        (-0.0509803921, 6, "-0.0509804", "-0,0509804"),
        (1234.5678, 6, "1,234.57", "1.234,57"),
        (2 / 3, 4, "0.6667", "0,6667"),
        (-1e-15, 6, "0", "0"),
        (0.0, 4, "0", "0"),
    ],
)
def test_sig_writes_significant_digits_the_locale_way(v, digits, en, pt) -> None:
    assert sig(translator("en"), v, digits) == en
    assert sig(translator("pt"), v, digits) == pt
    if abs(v) < 1000:  # the same digits as Python's own %g, up to the separators
        assert en == ("0" if f"{v:.{digits}g}" in ("-1e-15", "0") else f"{v:.{digits}g}")


# --------------------------------------------------------------------------- URL state


def test_query_round_trip() -> None:
    s = ConvSettings(
        kernel=np.arange(18.0).reshape(2, 3, 3)[:1].repeat(3, axis=0) / 7,
        bias=-0.25,
        stride=3,
        padding=2,
        pad_mode="circular",
        dilation=2,
        flip=True,
        source="sample",
        sample="Coins",
        colour="rgb",
        activation="tanh",
    )
    q = encode_query(s)
    assert all(isinstance(v, str) for v in q.values()) and set(q) <= set(QUERY_KEYS)
    back, problems = decode_query(q, {"Coins": "", "Cameraman": ""})
    assert problems == []
    np.testing.assert_allclose(back.kernel, s.kernel, rtol=1e-7)
    assert back == s
    assert encode_query(ConvSettings()) == {}  # defaults stay out of the URL
    np.testing.assert_array_equal(decode_query({})[0].kernel, CLASSIC_KERNEL)


def test_conv_kwargs_are_what_conv2d_takes() -> None:
    s = ConvSettings(stride=2, padding="same", pad_mode="reflect", dilation=1, flip=True)
    x = np.arange(36.0).reshape(6, 6)
    out = conv2d(x, s.kernel, **s.conv_kwargs())
    assert out.shape == (3, 3)


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"kernel": "1,2;3"}, "kernel", "conv.url.ragged"),
        ({"kernel": "1|2|3|4"}, "kernel", "conv.url.channels"),
        ({"kernel": "1|2,3|4"}, "kernel", "conv.url.channel_sizes"),
        ({"kernel": "1;2,3"}, "kernel", "conv.url.ragged"),
        ({"kernel": "1,[evil](http://x)"}, "kernel", "conv.grid.not_number"),
        ({"stride": "0"}, "stride", "conv.url.range"),
        ({"stride": "two"}, "stride", "conv.url.not_int"),
        ({"padding": "huge"}, "padding", "conv.url.not_int"),
        ({"pad_mode": "mirror"}, "pad_mode", "conv.url.choice"),
        ({"dilation": "99"}, "dilation", "conv.url.range"),
        ({"flip": "yes"}, "flip", "conv.url.choice"),
        ({"source": "camera"}, "source", "conv.url.choice"),
        ({"sample": "Nope"}, "sample", "conv.url.choice"),
        ({"colour": "cmyk"}, "colour", "conv.url.choice"),
        ({"activation": "gelu"}, "activation", "conv.url.choice"),
        ({"bias": "nan"}, "bias", "conv.url.not_number"),
    ],
)
def test_decode_query_falls_back_per_field(query, field, code) -> None:
    s, problems = decode_query(query, {"Cameraman": ""})
    assert [(name, err.code) for name, err in problems] == [(field, code)]
    assert s == ConvSettings()
    # the message never quotes the link's text (it is shown as Markdown), in either
    # language; a range error names the parsed integer
    (text,) = query.values()
    for lang in ("en", "pt"):
        if code == "conv.url.range":
            break
        t = translator(lang)
        shown = t(problems[0][1].code, **problems[0][1].params)
        assert text not in shown and "http" not in shown


def test_url_messages_read_in_both_languages() -> None:
    _, problems = decode_query({"stride": "99"})
    name, err = problems[0]
    en = translator("en")("conv.url.ignored", name=name, reason=str(err))
    assert en == "Ignored the link's `stride`: it must be from 1 to 16, got 99."
    pt = translator("pt")
    assert pt(err.code, **err.params) == "deve estar entre 1 e 16, mas veio 99."


# --------------------------------------------------------------------------- formula


@pytest.mark.parametrize(
    ("n", "k", "s", "padding", "d"),
    [(5, 3, 1, "valid", 1), (28, 3, 2, "same", 1), (7, 3, 1, "full", 2), (10, 4, 3, 2, 2)],
)
def test_output_size_formula_agrees_with_conv2d(n, k, s, padding, d) -> None:
    pad = resolve_padding(padding, (n, n), (k, k), (s, s), (d, d))
    tex = output_size_latex(n, k, s, pad[0], d)
    out = conv2d(np.zeros((n, n)), np.ones((k, k)), stride=s, padding=padding, dilation=d)
    assert tex.endswith(f"= {out.shape[0]}")
    assert f"{{{n} + {pad[0][0]} + {pad[0][1]} - {d}\\cdot({k}-1) - 1}}{{{s}}}" in tex


def test_output_size_formula_in_portuguese() -> None:
    tex = output_size_latex(1024, 3, 1, (1, 1), 1, "W", t=translator("pt"), out="saída")
    assert tex.startswith("W_{\\text{saída}} = ") and tex.endswith("= 1.024")
    tex = output_size_latex(1024, 3, 1, (1, 1), 1, t=translator("en"))
    assert "{1{,}024 + 1 + 1" in tex  # TeX's comma braced, so it does not space out
