"""One training step, stepped: initialise, forward, loss, backpropagation, update.

Read the widgets -> :func:`convviz.nn.walkthrough.walkthrough` (cached by the
choices) -> render with :mod:`convviz.walkthrough_figures`. The numbers come from
``convviz.nn``'s reference forward and backward, so what the page shows is what
the tests check.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from convviz.figures import heatmap_figure
from convviz.i18n import Translator
from convviz.nn.walkthrough import (
    BATCH_SIZES,
    NETS,
    OPTIMIZERS,
    SCHEMES,
    StepConfig,
    Walkthrough,
    walkthrough,
)
from convviz.ui.common import run_guarded, user_errors
from convviz.ui.i18n import tr
from convviz.ui.params import ConvSettings
from convviz.ui.widgets.charts import show
from convviz.ui.widgets.stepper import conv_stepper
from convviz.walkthrough_figures import (
    GRID_CHANNELS,
    finite_difference_latex,
    gradient_sum_text,
    histogram,
    init_formula,
    init_latex,
    loss_latex,
    map_figure,
    sig,
    softmax_latex,
    update_latex,
)

__all__ = ["STAGES", "STATE_KEYS", "render"]

P = "step_"  # widget key prefix
STAGES = ("init", "forward", "loss", "backprop", "update")  # labels: step.stage.*
LRS = (0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0)
DEFAULT_LR = 0.1
SEED_MAX = 9999
PAIR_CELLS = 10  # maps up to this many cells wide pair up (see _grid)
KERNEL_HEIGHT = 280  # a 3x3 kernel with its numbers (plotly's default 450 px is mostly air)

#: Widget keys whose values survive switching pages (see app.py).
STATE_KEYS: tuple[str, ...] = tuple(
    P + k
    for k in (
        "net", "batch_size", "batch_seed", "scheme", "optimizer", "lr", "filter", "row",
        "col", "stage", "sample",
    )
)  # fmt: skip


@st.cache_data(max_entries=8, show_spinner=False)
def _recorded(config: StepConfig) -> Walkthrough:
    # ~0.3 s for classic (forward, backward, a float64 finite difference, the update),
    # then a cache hit per rerun.
    return walkthrough(config)


def _choice(key: str, options, default) -> None:
    """Keep a selector's stored value among its options (they change with the net)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]


def _settings(t: Translator) -> StepConfig:
    """Two rows of choices: the net and its batch, then the recipe and the chosen weight."""
    ss = st.session_state
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
    _choice(P + "net", NETS, "hand")
    net = c1.selectbox(
        t("step.net"), NETS, key=P + "net", format_func=lambda n: t(f"step.net.{n}"),
        help=t("step.net.help"),
    )  # fmt: skip
    sizes = BATCH_SIZES[net]
    _choice(P + "batch_size", sizes, sizes[1])
    size = c2.selectbox(t("step.batch_size"), sizes, key=P + "batch_size", format_func=t.int)
    ss.setdefault(P + "batch_seed", 0)

    def redraw() -> None:
        ss[P + "batch_seed"] = (int(ss.get(P + "batch_seed", 0)) + 1) % (SEED_MAX + 1)

    seed = c3.number_input(
        t("step.batch_seed"), 0, SEED_MAX, step=1, key=P + "batch_seed",
        help=t("step.batch_seed.help"),
    )  # fmt: skip
    c4.button(t("step.redraw"), key=P + "redraw", on_click=redraw, help=t("step.redraw.help"))
    d1, d2, d3, e1, e2, e3 = st.columns([3, 2, 3, 2, 2, 2])
    _choice(P + "scheme", SCHEMES, "glorot_uniform")
    scheme = d1.selectbox(
        t("step.scheme"), SCHEMES, key=P + "scheme", format_func=lambda s: t(f"step.scheme.{s}")
    )
    _choice(P + "optimizer", OPTIMIZERS, "sgd")
    opt = d2.selectbox(
        t("step.optimizer"), OPTIMIZERS, key=P + "optimizer",
        format_func=lambda s: t(f"step.optimizer.{s}"),
    )  # fmt: skip
    _choice(P + "lr", LRS, DEFAULT_LR)
    lr = d3.select_slider(
        t("step.lr"), LRS, key=P + "lr", format_func=lambda v: t.num(v, 4, fixed=False)
    )
    filters = 2 if net == "hand" else (16 if net == "tiny" else 32)
    _choice(P + "filter", list(range(filters)), 0)
    f = e1.selectbox(
        t("step.weight.filter"), list(range(filters)), key=P + "filter", format_func=t.int,
        help=t("step.weight.help"),
    )  # fmt: skip
    _choice(P + "row", [0, 1, 2], 1)
    u = e2.selectbox(t("step.weight.row"), [0, 1, 2], key=P + "row", format_func=t.int)
    _choice(P + "col", [0, 1, 2], 1)
    v = e3.selectbox(t("step.weight.col"), [0, 1, 2], key=P + "col", format_func=t.int)
    return StepConfig(
        net=net, batch_size=int(size), batch_seed=int(seed), scheme=scheme, optimizer=opt,
        lr=float(lr), weight=(int(f), 0, int(u), int(v)),
    )  # fmt: skip


def _stage_picker(t: Translator) -> str:
    ss = st.session_state
    key = P + "stage"
    _choice(key, STAGES, "init")

    def move(delta: int) -> None:
        i = STAGES.index(ss[key]) + delta
        ss[key] = STAGES[min(max(i, 0), len(STAGES) - 1)]

    c1, c2, c3 = st.columns([1, 1, 12], vertical_alignment="bottom")
    i = STAGES.index(ss[key])
    c1.button("◀", key=P + "prev", on_click=move, args=(-1,), help=t("step.prev"), disabled=i == 0)
    c2.button(
        "▶", key=P + "next", on_click=move, args=(1,), help=t("step.next"),
        disabled=i == len(STAGES) - 1,
    )  # fmt: skip
    return c3.radio(
        t("step.stage"), STAGES, key=key, horizontal=True,
        format_func=lambda s: t(f"step.stage.{s}", n=STAGES.index(s) + 1),
    )  # fmt: skip


def _sample(t: Translator, w: Walkthrough) -> int:
    n = len(w.labels)
    _choice(P + "sample", list(range(n)), 0)
    return st.columns([1, 3])[0].selectbox(
        t("step.sample"), list(range(n)), key=P + "sample",
        format_func=lambda i: t("step.sample.n", i=i, label=int(w.labels[i])),
    )  # fmt: skip


def _grid(t: Translator, figs: list, pair: bool, filename: str) -> None:
    """Figures down the page; with ``pair``, narrow ones two to a row.

    ``figs`` holds ``(key, figure, cells)`` with ``cells`` the map's width in cells: at
    1280 px half a row holds about 10 cells with readable numbers (seen in Chromium).
    """
    row: list = []
    for key, fig, cells in figs:
        if not pair or cells > PAIR_CELLS:
            show(t, fig, key, filename)
            continue
        row.append((key, fig))
        if len(row) == 2:
            for col, (k, f) in zip(st.columns(2), row, strict=True):
                with col:
                    show(t, f, k, filename)
            row = []
    if row:
        with st.columns(2)[0]:
            show(t, row[0][1], row[0][0], filename)


def _cells(a: np.ndarray) -> int:
    """How many cells wide :func:`map_figure` draws one sample's ``a``."""
    if a.ndim == 1:  # a vector's cells hold wider numbers ("-0.206"): count them twice
        return 2 * a.size
    c = min(a.shape[2], GRID_CHANNELS)
    return a.shape[1] * c + c - 1


def _layer_title(t: Translator, w: Walkthrough, i: int, what: str) -> str:
    s = w.layers[i]
    shape = "×".join(str(d) for d in s.output.shape[1:])
    return t(what, i=i + 1, kind=s.keras_name, name=s.name, shape=shape)


# ------------------------------------------------------------------------------ the stages


def _init(t: Translator, w: Walkthrough) -> None:
    st.markdown(t("step.init.intro"))
    st.latex(init_formula(t, w.config.scheme))
    st.caption(t(f"step.init.about.{w.config.scheme}"))
    rows = [
        {
            t("step.col.layer"): f"{layer.keras_name} {layer.name}",
            t("step.col.shape"): "×".join(str(d) for d in layer.shape),
            t("step.col.fan_in"): t.int(layer.fan_in),
            t("step.col.fan_out"): t.int(layer.fan_out),
            t(f"step.col.{layer.parameter_name}"): sig(t, layer.parameter),
            t("step.col.min"): sig(t, layer.kernel.min()),
            t("step.col.max"): sig(t, layer.kernel.max()),
        }
        for layer in w.inits
    ]
    st.dataframe(rows, hide_index=True)
    st.caption(t("step.init.bias"))
    cols = st.columns(min(len(w.inits), 3))
    for k, layer in enumerate(w.inits):
        with cols[k % len(cols)]:
            show(t, histogram(t, layer), f"step_hist_{k}", "init_histogram")
            st.latex(init_latex(t, layer))


def _forward(t: Translator, w: Walkthrough) -> None:
    st.markdown(t("step.forward.intro"))
    n = _sample(t, w)
    hand = w.config.net == "hand"
    title = t("step.forward.input", i=n, label=int(w.labels[n]))
    figs = [("step_input", map_figure(t, w.x[n], title, grey=True), _cells(w.x[n]))]
    for i in range(len(w.layers)):
        fig = map_figure(
            t, w.layers[i].output[n], _layer_title(t, w, i, "step.forward.layer"),
            digits=3 if hand else 2,
        )  # fmt: skip
        figs.append((f"step_out_{i}", fig, _cells(w.layers[i].output[n])))
    _grid(t, figs, hand, "layer_output")
    st.caption(t("step.forward.logits"))
    _cell_stepper(t, w, n)


def _cell_stepper(t: Translator, w: Walkthrough, n: int) -> None:
    """The first conv's cell arithmetic, stepped over the sample with the stepper widget."""
    st.markdown(t("step.forward.cell", f=w.config.weight[0]))
    i = w.first_conv
    layer = w.initial.layers[i]
    f = w.config.weight[0]
    x_in = w.conv_input(n)  # (H, W, 1)
    out = np.asarray(w.layers[i].output[n, :, :, f], np.float64)
    kernel = layer.params["kernel"][:, :, 0, f].astype(np.float64)
    settings = ConvSettings(
        kernel=kernel,
        bias=float(layer.params["bias"][f]),
        stride=layer.strides[0],
        padding=layer.pads[0][0],
        activation="relu" if layer.activation == "relu" else "none",
    )
    wo = out.shape[1]

    def step_at(idx: int):
        return w.conv_cell(n, idx // wo, idx % wo, f).step()

    conv_stepper(
        t, np.asarray(x_in[..., 0], np.float64), settings, out, layer.pads,
        numbers=w.config.net == "hand", prefix=P + "conv", step_at=step_at,
    )  # fmt: skip


def _loss(t: Translator, w: Walkthrough) -> None:
    st.markdown(t("step.loss.intro"))
    st.latex(softmax_latex(t))
    rows = []
    for i, y in enumerate(w.labels):
        rows.append(
            {
                t("step.col.sample"): t.int(i),
                t("step.col.true"): t.int(int(y)),
                t("step.col.pred"): t.int(int(w.probs[i].argmax())),
                t("step.col.p_true"): sig(t, w.probs[i, y], 6),
                t("step.col.neg_log"): sig(t, w.losses[i], 6),
            }
        )
    st.dataframe(rows, hide_index=True)
    st.latex(loss_latex(t, w))
    st.metric(t("step.loss.mean"), sig(t, w.loss, 6))
    fig = heatmap_figure(
        w.probs, title=t("step.loss.probs"), digits=2, text=w.probs.size <= 200, vmin=0,
        vmax=1, hover_name=t("step.loss.p"), height=90 + 32 * len(w.labels), t=t,
    )  # fmt: skip
    fig.update_xaxes(title_text=t("step.loss.class"), showticklabels=True, dtick=1)
    fig.update_yaxes(title_text=t("step.loss.sample_axis"), showticklabels=True, dtick=1)
    show(t, fig, "step_probs", "probabilities")


def _backprop(t: Translator, w: Walkthrough) -> None:
    st.markdown(t("step.back.intro"))
    n = _sample(t, w)
    hand = w.config.net == "hand"
    figs = []
    for i in reversed(range(len(w.layers))):
        fig = map_figure(
            t, w.layers[i].upstream[n], _layer_title(t, w, i, "step.back.layer"),
            digits=3 if hand else 2, signed=True,
        )  # fmt: skip
        figs.append((f"step_grad_{i}", fig, _cells(w.layers[i].upstream[n])))
    _grid(t, figs, hand, "gradient")
    ch = w.weight
    f, c, u, v = ch.index
    st.subheader(t("step.back.weight", f=f, c=c, u=u, v=v))
    st.markdown(t("step.back.weight_intro"))
    a1, a2, a3 = st.columns(3)  # 2 digits: 3 do not fit an 8x8 map a third of 1280 px wide
    with a1:
        fig = heatmap_figure(
            ch.upstream[n], title=t("step.back.upstream"), digits=2, height=330, t=t
        )
        show(t, fig, "step_w_upstream", "upstream")
    with a2:
        title = t("step.back.inputs", u=u, v=v)
        fig = heatmap_figure(ch.inputs[n], title=title, digits=2, height=330, t=t)
        show(t, fig, "step_w_inputs", "inputs")
    with a3:
        fig = heatmap_figure(
            ch.products[n], title=t("step.back.products"), digits=2, height=330, t=t
        )
        show(t, fig, "step_w_products", "products")
    st.code(gradient_sum_text(t, ch), language=None, wrap_lines=True)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(t("step.back.total"), sig(t, ch.total, 8))
    m2.metric(t("step.back.backprop"), sig(t, ch.gradient, 8))
    m3.metric(t("step.back.fd"), sig(t, ch.finite_difference, 8))
    m4.metric(t("step.back.rel"), sig(t, ch.relative_error, 2))
    st.latex(finite_difference_latex(t, ch))
    st.caption(t("step.back.fd_note." + ("hand" if hand else "preset")))
    conv = w.layers[w.first_conv]
    fig = heatmap_figure(
        conv.grads["kernel"][:, :, c, f], title=t("step.back.kernel_grad", f=f, c=c),
        digits=4, text=True, height=KERNEL_HEIGHT, t=t,
    )  # fmt: skip
    with st.columns(2)[0]:
        show(t, fig, "step_kernel_grad", "kernel_gradient")


def _update(t: Translator, w: Walkthrough) -> None:
    up = w.update
    f, c, u, v = w.weight.index
    st.markdown(t(f"step.update.intro.{up.optimizer}"))
    for line in update_latex(t, up):
        st.latex(line)
    k1, k2, k3 = st.columns(3)
    before = heatmap_figure(
        up.kernel_before, title=t("step.update.before", f=f, c=c), digits=4, text=True,
        height=KERNEL_HEIGHT, t=t,
    )  # fmt: skip
    after = heatmap_figure(
        up.kernel_after, title=t("step.update.after", f=f, c=c), digits=4, text=True,
        height=KERNEL_HEIGHT, t=t,
    )  # fmt: skip
    delta = heatmap_figure(
        up.kernel_after - up.kernel_before, title=t("step.update.delta"), digits=3, text=True,
        height=KERNEL_HEIGHT, t=t,
    )  # fmt: skip
    with k1:
        show(t, before, "step_k_before", "kernel_before")
    with k2:
        show(t, after, "step_k_after", "kernel_after")
    with k3:
        show(t, delta, "step_k_delta", "kernel_change")
    m1, m2, m3 = st.columns(3)
    m1.metric(t("step.update.w_before", u=u, v=v), sig(t, up.before, 8))
    m2.metric(t("step.update.w_after", u=u, v=v), sig(t, up.after, 8))
    m3.metric(
        t("step.update.next_loss"), sig(t, w.next_loss, 6),
        delta=sig(t, w.next_loss - w.loss, 4), delta_color="inverse",
    )  # fmt: skip
    st.caption(t("step.update.loss_before", loss=sig(t, w.loss, 6)))


VIEWS = {"init": _init, "forward": _forward, "loss": _loss, "backprop": _backprop,
         "update": _update}  # fmt: skip


def _render() -> None:
    t = tr()
    st.title(t("step.title"))
    st.caption(t("step.intro"))
    config = _settings(t)
    with user_errors() as ok:
        w = _recorded(config)
    if not ok[0]:
        return
    st.caption(
        t("step.batch", n=len(w.labels), labels=", ".join(t.int(int(y)) for y in w.labels),
          loss=sig(t, w.loss, 6))
    )  # fmt: skip
    stage = _stage_picker(t)
    st.header(t(f"step.stage.{stage}", n=STAGES.index(stage) + 1))
    VIEWS[stage](t, w)


def render() -> None:
    run_guarded(_render)
