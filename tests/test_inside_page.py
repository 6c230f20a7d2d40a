"""The Inside the network page under Streamlit's AppTest, in English and Portuguese.

Each model source (a shipped model, an uploaded file, the Train page's live run)
and each digit source (a test image, a photo; the canvas only renders here, the
browser test draws on it), the evaluation, the prediction and every layer's
output, the learned-filter stepper (its finished map against the model's own
activation), the deeper layer's and the dense head's sums, kernel surgery (buttons
and the cell-by-cell grid), what the network looks at, and the export downloads.
Oracles: the shipped files' metadata (their test accuracy, written when they were
trained), the models' own forward passes, and
SciPy's correlation for the stepper, surgery's copy scored by train.evaluate,
and the exported NumPy file exec'd on its own against convviz's forward.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from convviz.i18n import translator
from convviz.nn import TrainConfig, load_mnist, load_model, to_batch
from convviz.runs import RunOptions, get_manager
from convviz.ui.pages import inside
from convviz.ui.params import sig
from tests.support.apptest import page_app
from tests.support.cell_editor import editor_args
from tests.test_app import chart, heatmap_z

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
EN, PT = translator("en"), translator("pt")
P = "inside_"


def app(lang: str = "en", **state) -> AppTest:
    at = page_app("inside", lang)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture(autouse=True)
def fresh_evaluations():
    """Evaluations are cached per model for the whole process: each test starts without."""
    inside._EVALS.clear()
    yield
    inside._EVALS.clear()


def prediction(at: AppTest, t=EN):
    (metric,) = [m for m in at.metric if m.label == t("inside.pred.class")]
    return metric


def texts(at: AppTest) -> list[str]:
    return [x.value for x in at.text]


def digit_png(invert: bool = False) -> bytes:
    """A photo-like "1": a dark slanted bar on light grey paper, off centre."""
    im = Image.new("L", (120, 160), 200 if not invert else 30)
    ImageDraw.Draw(im).line([(70, 20), (60, 130)], fill=20 if not invert else 230, width=12)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def model_file(name: str) -> bytes:
    return (MODELS / f"{name}.npz").read_bytes()


# ------------------------------------------------------------------ model sources
def test_a_shipped_model_renders_with_a_test_image_and_every_layer():
    at = ok(app())
    assert at.title[0].value == EN("inside.title")
    assert at.sidebar.radio(key=P + "source").value == "pretrained"
    assert at.sidebar.selectbox(key=P + "pretrained").value == "tiny"
    model = load_model(MODELS / "tiny.npz")
    assert at.expander[0].label == EN("inside.model.summary", n=model.count_params())
    # Test image 0 of MNIST is a 7, and the model sees it as one.
    images, labels = load_mnist().test_images, load_mnist().test_labels
    probs = model.predict_proba(to_batch(images[:1]))[0]
    assert labels[0] == 7 and int(np.argmax(probs)) == 7
    metric = prediction(at)
    assert metric.value == "7"
    assert EN("inside.pred.right", label=7) in [c.value for c in at.caption]
    # Every layer but Flatten is listed, in order, with its output shape.
    acts = model.activations(to_batch(images[:1]))
    listed = [s.split(" · ")[0] for s in texts(at)]
    want = [name for layer, (name, _) in zip(model.layers, acts, strict=True)]
    want = [n for n, layer in zip(want, model.layers, strict=True) if layer.keras_name != "Flatten"]
    assert listed == want
    shapes = [s.split(" · ")[2] for s in texts(at)]
    assert shapes[1] == "26 × 26 × 16"  # the first conv's 16 maps


def test_picking_another_test_image_and_a_random_one():
    at = ok(app())
    at.number_input(key=P + "index").set_value(1).run()
    labels = load_mnist().test_labels
    ok(at)
    assert EN("inside.test.caption", index=1, label=int(labels[1])) in [c.value for c in at.caption]
    at.button(key=P + "random").click().run()
    ok(at)
    index = at.number_input(key=P + "index").value
    assert 0 <= index < 10_000
    assert EN("inside.test.caption", index=index, label=int(labels[index])) in [
        c.value for c in at.caption
    ]


def test_evaluating_a_shipped_model_gives_its_recorded_test_accuracy():
    at = ok(app())
    (button,) = [b for b in at.button if b.key == P + "evaluate"]
    assert button.label == EN("inside.eval.button", n=10_000)
    button.click().run()
    ok(at)
    recorded = load_model(MODELS / "tiny.npz").metadata["test_accuracy"]  # written by the CLI
    acc = [m for m in at.metric if m.label == EN("inside.eval.acc", n=10_000)]
    assert acc and acc[0].value == EN.pct(recorded, 2)
    right = round(recorded * 10_000)
    assert EN("inside.eval.caption", right=right, n=10_000) in [c.value for c in at.caption]
    # Cached per model: the next run shows it without the button.
    at.run()
    assert not [b for b in at.button if b.key == P + "evaluate"]
    assert [m.value for m in at.metric if m.label == EN("inside.eval.acc", n=10_000)]


def test_another_shipped_model():
    at = ok(app())
    at.sidebar.selectbox(key=P + "pretrained").set_value("classic").run()
    ok(at)
    model = load_model(MODELS / "classic.npz")
    assert at.expander[0].label == EN("inside.model.summary", n=model.count_params())
    assert texts(at)[0].startswith("conv2d · Conv2D · 26 × 26 × 32")


def test_an_uploaded_model_and_a_bad_file():
    at = ok(app())
    at.sidebar.radio(key=P + "source").set_value("upload").run()
    assert [i.value for i in at.info] == [EN("inside.upload.prompt")]
    name = "[click](https://example.com) **bold**.npz"
    at.sidebar.file_uploader(key=P + "upload").set_value((name, b"not a zip", "application/zip"))
    at.run()
    assert not at.exception
    (err,) = at.error
    assert err.value == EN("inside.upload.bad", reason=EN("err.nn.not_a_model"))
    assert texts(at) == [name]  # the file name, as plain text only
    # A model whose input is not 28x28x1 is refused by load_model's header checks.
    from convviz.nn import Dense, Flatten, Sequential

    buf = io.BytesIO()
    Sequential([Flatten(), Dense(10)], input_shape=(8, 8, 1)).save(buf)
    at.sidebar.file_uploader(key=P + "upload").set_value(("m.npz", buf.getvalue(), "x"))
    at.run()
    (err,) = at.error
    reason = EN("err.nn.input_shape", want="(28, 28, 1)", got="(8, 8, 1)")
    assert err.value == EN("inside.upload.bad", reason=reason)
    at.sidebar.file_uploader(key=P + "upload").set_value(("m.npz", model_file("classic"), "x"))
    at.run()
    ok(at)
    assert at.expander[0].label == EN("inside.model.summary", n=93_322)
    assert [b.key for b in at.button if b.key == P + "evaluate"] == [P + "evaluate"]


@pytest.fixture
def live_run():
    manager = get_manager()
    cfg = TrainConfig(model="tiny", train_size=512, val_size=200, eval_every=0, epochs=1)
    run = manager.create(cfg, options=RunOptions(test_size=200), start=False)
    yield run
    manager.discard(run.id)


def test_the_live_run_of_the_train_page(live_run):
    at = ok(app())
    at.sidebar.radio(key=P + "source").set_value("live").run()
    assert [i.value for i in at.info] == [EN("inside.live.none")]
    at.session_state["train_run_id"] = live_run.id  # where the Train page keeps its run
    live_run.step(3)
    snap = live_run.wait(lambda s: s.live_step == 3 and not live_run.busy)
    at.run()
    ok(at)
    total = snap.total_steps
    caption = EN("inside.live.caption", step=3, total=total, state=EN("inside.live.state.ready"))
    assert caption in [c.value for c in at.sidebar.caption]
    assert not [b for b in at.button if b.key == P + "evaluate"]  # it changes: not evaluated
    # The page reads the run's weights at that step: its prediction is theirs.
    probs = snap.live_model.predict_proba(to_batch(load_mnist().test_images[:1]))[0]
    pred = int(np.argmax(probs))
    metric = prediction(at)
    assert metric.value == str(pred) and metric.delta == EN.pct(probs[pred], 1)


def test_a_live_run_that_trains_is_followed():
    manager = get_manager()
    cfg = TrainConfig(model="tiny", train_size=1024, val_size=200, eval_every=0, epochs=50)
    run = manager.create(cfg, options=RunOptions(test_size=200), start=True)
    try:
        run.wait(lambda s: s.state == "running" and s.live_step > 0)
        at = ok(app(**{P + "source": "live", "train_run_id": run.id}))
        following = [c.value for c in at.caption if c.value.startswith("Following")]
        assert following, [c.value for c in at.caption]
    finally:
        manager.discard(run.id)


# ------------------------------------------------------------------ digit sources
def test_a_photo_is_made_into_an_mnist_digit_stage_by_stage():
    at = ok(app())
    at.radio(key=P + "digit").set_value("upload").run()
    assert [i.value for i in at.info] == [EN("inside.photo.prompt")]
    at.file_uploader(key=P + "photo").set_value(("one.png", digit_png(), "image/png")).run()
    ok(at)
    captions = [c.value for c in at.caption]
    assert EN("inside.stage.grey", h=160, w=120) in captions
    assert EN("inside.stage.inverted") in captions  # light paper: inverted
    assert prediction(at).value.isdigit()
    # A picture with no ink says so; a file that is no picture is refused.
    blank = io.BytesIO()
    Image.new("L", (50, 50), 200).save(blank, format="PNG")
    at.file_uploader(key=P + "photo").set_value(("blank.png", blank.getvalue(), "image/png")).run()
    assert not at.exception
    assert [w.value for w in at.warning] == [EN("err.digit.empty")]
    at.file_uploader(key=P + "photo").set_value(("x.png", b"not a png", "image/png")).run()
    assert not at.exception
    assert at.error and at.error[0].value.startswith(EN("inside.photo.bad", reason="").rstrip())
    assert texts(at) == ["x.png"]


def test_the_canvas_renders_and_waits_for_a_drawing():
    at = ok(app())
    at.radio(key=P + "digit").set_value("draw").run()
    ok(at)
    assert [i.value for i in at.info] == [EN("inside.draw.prompt")]
    assert at.slider(key=P + "stroke").value == 20
    at.slider(key=P + "stroke").set_value(24).run()
    ok(at)
    assert len(at.get("bidi_component")) == 1  # the canvas (drawn on in the browser test)


# ------------------------------------------------------------------ Portuguese
def test_portuguese():
    at = ok(app("pt"))
    assert at.title[0].value == PT("inside.title")
    assert at.sidebar.radio(key=P + "source").options[0] == PT("inside.source.pretrained")
    at.button(key=P + "evaluate").click().run()
    ok(at)
    recorded = load_model(MODELS / "tiny.npz").metadata["test_accuracy"]
    acc = [m.value for m in at.metric if m.label == PT("inside.eval.acc", n=10_000)]
    assert acc == [PT.pct(recorded, 2)] and "," in acc[0]  # 98,93%
    assert PT("inside.pred.right", label=7) in [c.value for c in at.caption]


# ------------------------------------------------------------------ step a learned filter
def tiny_reference():
    """tiny's own layer outputs for test image 0, and the first conv's weights."""
    model = load_model(MODELS / "tiny.npz")
    acts = dict(model.activations(to_batch(load_mnist().test_images[:1])))
    conv = model.layers[1]
    return model, acts, conv.params["kernel"].astype(np.float64), conv.params["bias"]


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_every_first_layer_channel_is_a_plain_correlation_of_the_rescaled_digit():
    """The oracle the page's stepper is held to: SciPy's correlation, bias, ReLU."""
    from scipy.signal import correlate2d

    _model, acts, k, b = tiny_reference()
    x_in = acts["rescaling"][0, :, :, 0].astype(np.float64)  # what conv2d receives
    for f in range(k.shape[3]):
        oracle = np.maximum(correlate2d(x_in, k[:, :, 0, f], mode="valid") + b[f], 0)
        np.testing.assert_allclose(oracle, acts["conv2d"][0, :, :, f], atol=1e-5, rtol=1e-5)


def test_the_stepper_s_finished_map_equals_the_network_s_activation_and_the_page_says_so():
    from scipy.signal import correlate2d

    _, acts, k, b = tiny_reference()
    f = 5
    x_in = acts["rescaling"][0, :, :, 0].astype(np.float64)
    pre = correlate2d(x_in, k[:, :, 0, f], mode="valid") + b[f]  # (26, 26) before the ReLU
    at = ok(app())
    assert at.selectbox(key=P + "layer").value == 1  # tiny's first conv (after Rescaling)
    at.selectbox(key=P + "filter").set_value(f).run()
    ok(at)
    # The page says the stepped map is the network's, with the largest difference it found.
    (success,) = at.success
    head = EN("inside.step.match", f=f, diff="").split(":")[0]
    assert success.value.startswith(head)
    assert number(success.value.rsplit(" ", 3)[-3]) < 1e-5
    # Step to the middle: the window's sum and the ReLU as the oracle computes them.
    at.slider(key=P + "conv_step").set_value(13 * 26 + 12).run()
    ok(at)
    metrics = {m.label: m.value for m in at.metric}
    value = metrics[EN("conv.step.value_at", row=13, col=12)]
    assert number(value) == pytest.approx(pre[13, 12], rel=1e-5, abs=1e-6)
    after = metrics[EN("conv.step.after", activation="ReLU")]
    assert number(after) == pytest.approx(max(pre[13, 12], 0), rel=1e-5, abs=1e-6)
    # At the last step, the output map drawn is whole: it is the network's channel f.
    at.slider(key=P + "conv_step").set_value(26 * 26 - 1).run()
    z = heatmap_z(at, "conv_step_output")  # the stepper's chart keys are its own
    np.testing.assert_allclose(z, np.maximum(pre, 0), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(z, acts["conv2d"][0, :, :, f], atol=1e-5, rtol=1e-5)
    # The stepper keeps its own position, apart from the Convolution page's.
    assert "conv_step" not in at.session_state


def test_play_and_the_arrows_move_the_stepper():
    at = ok(app())
    middle = 13 * 26 + 13  # it opens on the middle of the 26x26 map, where the digit is
    assert at.slider(key=P + "conv_step").value == middle
    at.button(key=P + "conv_next").click().run()
    assert at.slider(key=P + "conv_step").value == middle + 1
    at.slider(key=P + "conv_step").set_value(0).run()
    at.button(key=P + "conv_prev").click().run()
    assert at.slider(key=P + "conv_step").value == 26 * 26 - 1  # wraps around
    at.toggle(key=P + "conv_playing").set_value(True).run()
    ok(at)
    at.select_slider(key=P + "conv_speed").set_value("fast").run()
    ok(at)


def test_a_deeper_layer_sums_a_partial_sum_per_input_channel():
    model, acts, _, _ = tiny_reference()
    at = ok(app())
    at.selectbox(key=P + "layer").set_value(3).run()  # conv2d_1: 16 input maps
    ok(at)
    f, row, col = 7, 4, 6
    at.selectbox(key=P + "deep_filter").set_value(f)
    at.number_input(key=P + "deep_row").set_value(row)
    at.number_input(key=P + "deep_col").set_value(col).run()
    ok(at)
    maps = acts["max_pooling2d"][0].astype(np.float64)  # (13, 13, 16): conv2d_1's input
    k = model.layers[3].params["kernel"][:, :, :, f].astype(np.float64)  # (3, 3, 16)
    bias = float(model.layers[3].params["bias"][f])
    partial = (maps[row : row + 3, col : col + 3, :] * k).sum(axis=(0, 1))  # (16,)
    shown = np.asarray(chart(at, P + "partials")["data"][0]["y"], dtype=np.float64)
    np.testing.assert_allclose(shown, partial, rtol=1e-6, atol=1e-7)
    network = float(acts["conv2d_1"][0, row, col, f])
    assert max(partial.sum() + bias, 0) == pytest.approx(network, rel=1e-5, abs=1e-6)
    (success,) = at.success
    assert success.value.startswith(
        EN("inside.deep.match", row=row, col=col, f=f, value="", diff="").split(" is ")[0]
    )
    code = at.code[-1].value
    assert EN("inside.deep.bias", total="", bias="", pre="").split(" ")[1] in code  # "+ bias"


def test_the_dense_head_writes_the_logit_as_its_terms_and_the_softmax():
    model, acts, _, _ = tiny_reference()
    at = ok(app())
    at.selectbox(key=P + "layer").set_value(-1).run()
    ok(at)
    h = acts["dense"][0].astype(np.float64)  # (64,): the head's input
    w = model.layers[-1].params["kernel"].astype(np.float64)
    b = model.layers[-1].params["bias"].astype(np.float64)
    logits = h @ w + b
    cls = int(np.argmax(logits))
    terms = h * w[:, cls]
    top = np.sort(np.abs(terms))[::-1][:8]
    shown = np.asarray(chart(at, P + "head_terms")["data"][0]["y"], dtype=np.float64)
    np.testing.assert_allclose(np.abs(shown), top, rtol=1e-6)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    shown_p = np.asarray(chart(at, P + "head_probs")["data"][0]["y"], dtype=np.float64)
    np.testing.assert_allclose(shown_p, probs, rtol=1e-5)
    code = at.code[-1].value
    assert f"= {sig(EN, logits[cls], 4)}" in code.splitlines()[0]
    # Another class, and fewer terms.
    at.selectbox(key=P + "head_class").set_value(3)
    at.slider(key=P + "head_top").set_value(4).run()
    ok(at)
    shown = np.asarray(chart(at, P + "head_terms")["data"][0]["y"], dtype=np.float64)
    np.testing.assert_allclose(np.abs(shown), np.sort(np.abs(h * w[:, 3]))[::-1][:4], rtol=1e-6)


# ------------------------------------------------------------------ surgery
def slice_accuracy(model) -> tuple[float, np.ndarray]:
    """Accuracy and confusion on the first 2,000 test images, the plain forward pass."""
    data = load_mnist()
    x, y = data.test_images[:2000], data.test_labels[:2000]
    pred = np.concatenate(
        [model.forward(to_batch(x[i : i + 500])).argmax(1) for i in (0, 500, 1000, 1500)]
    )
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (y.astype(np.int64), pred), 1)
    return float(np.mean(pred == y)), confusion


def test_surgery_zeroes_a_kernel_as_computed_independently_and_undo_restores_it():
    at = ok(app(**{P + "section": "surgery"}))
    model = load_model(MODELS / "tiny.npz")
    acc0, conf0 = slice_accuracy(model)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[EN("inside.surgery.before", n=2000)] == EN.pct(acc0, 2)
    assert metrics[EN("inside.surgery.after", n=2000)] == EN.pct(acc0, 2)
    f = 4
    at.selectbox(key=P + "surgery_filter").set_value(f).run()
    at.button(key=P + "op_zero").click().run()
    ok(at)
    zeroed = load_model(MODELS / "tiny.npz")
    zeroed.layers[1].params["kernel"][..., f] = 0
    acc1, conf1 = slice_accuracy(zeroed)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[EN("inside.surgery.after", n=2000)] == EN.pct(acc1, 2)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf1)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_before"), conf0)
    np.testing.assert_array_equal(heatmap_z(at, P + "kernel_after"), np.zeros((3, 3)))
    assert EN("inside.surgery.timing", n=1, images=2000, ms="").split(";")[0] in [
        c.value.split(";")[0] for c in at.caption
    ]
    # Undo: the learned kernel back, the scores bit for bit the learned model's.
    at.button(key=P + "op_undo").click().run()
    ok(at)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf0)
    np.testing.assert_array_equal(
        heatmap_z(at, P + "kernel_after"), model.layers[1].params["kernel"][:, :, 0, f]
    )
    assert {m.label: m.value for m in at.metric}[EN("inside.surgery.after", n=2000)] == EN.pct(
        acc0, 2
    )


def test_surgery_negates_and_replaces_with_a_preset_then_undoes_all():
    from convviz.kernels import KERNELS

    at = ok(app(**{P + "section": "surgery"}))
    at.button(key=P + "op_negate").click().run()  # filter 0
    ok(at)
    model = load_model(MODELS / "tiny.npz")
    learned = model.layers[1].params["kernel"][:, :, 0, 0].astype(np.float64)
    np.testing.assert_allclose(heatmap_z(at, P + "kernel_after"), -learned)
    at.selectbox(key=P + "surgery_filter").set_value(1).run()
    at.selectbox(key=P + "preset").set_value("sobel_x").run()
    at.button(key=P + "op_preset").click().run()
    ok(at)
    np.testing.assert_array_equal(heatmap_z(at, P + "kernel_after"), KERNELS["sobel_x"].weights)
    edited = load_model(MODELS / "tiny.npz")
    k = edited.layers[1].params["kernel"]
    k[..., 0] = -k[..., 0]
    k[:, :, 0, 1] = KERNELS["sobel_x"].weights
    _acc, conf = slice_accuracy(edited)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf)
    at.button(key=P + "op_reset").click().run()
    ok(at)
    _acc0, conf0 = slice_accuracy(model)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf0)


# ------------------------------------------------------------------ what it looks at
def test_saliency_and_occlusion_for_the_predicted_and_a_chosen_class():
    model = load_model(MODELS / "tiny.npz")
    probs = model.predict_proba(to_batch(load_mnist().test_images[:1]))[0]
    at = ok(app())
    assert at.radio(key=P + "section").value == "step"
    at.radio(key=P + "section").set_value("looks").run()
    captions = [c.value for c in at.caption]
    assert EN("inside.look.saliency", c=7) in captions
    occl = [c for c in captions if c.startswith(EN("inside.look.occlusion", c=7, patch=4,
            base="", drop="").split("=")[0])]  # fmt: skip
    assert occl and f"= {EN.pct(probs[7], 1)}" in occl[0]
    at.selectbox(key=P + "look_class").set_value(1)
    at.slider(key=P + "patch").set_value(6)
    at.slider(key=P + "patch_stride").set_value(3).run()
    ok(at)
    captions = [c.value for c in at.caption]
    assert EN("inside.look.saliency", c=1) in captions
    assert any(c.startswith(EN("inside.look.occlusion", c=1, patch=6, base="", drop="")[:20])
               for c in captions)  # fmt: skip


@pytest.mark.parametrize("name", ["resnet", "inception", "densenet"])
def test_an_uploaded_model_with_blocks_goes_through_every_section(name):
    """Residual and Concat blocks: their inner convs are not steppable, the rest works."""
    from convviz.nn import build_model

    buf = io.BytesIO()
    model = build_model(name, seed=1)
    model.save(buf)
    at = ok(app(**{P + "source": "upload"}))
    at.sidebar.file_uploader(key=P + "upload").set_value((f"{name}.npz", buf.getvalue(), "x"))
    at.run()
    ok(at)
    (success,) = at.success  # the first conv ("same" padding for resnet) matches the network
    assert success.value.startswith(EN("inside.step.match", f=0, diff="").split(":")[0])
    for section in ("surgery", "looks"):
        at.radio(key=P + "section").set_value(section).run()
        ok(at)
    assert prediction(at).value.isdigit()


def test_surgery_on_the_live_run_works_on_a_pinned_copy_until_refreshed(live_run):
    live_run.step(2)
    live_run.wait(lambda s: s.live_step == 2 and not live_run.busy)
    at = ok(app(**{P + "source": "live", "train_run_id": live_run.id, P + "section": "surgery"}))
    assert EN("inside.surgery.live", step=2) in [c.value for c in at.caption]
    assert at.button(key=P + "bench_refresh").disabled  # already the current weights
    at.button(key=P + "op_zero").click().run()  # filter 0 of the copy
    ok(at)
    live_run.step(3)
    snap = live_run.wait(lambda s: s.live_step == 5 and not live_run.busy)
    assert np.abs(snap.live_model.layers[1].params["kernel"][..., 0]).sum() > 0  # untouched
    at.run()
    assert EN("inside.surgery.live", step=2) in [c.value for c in at.caption]  # still pinned
    assert EN("inside.surgery.timing", n=1, images=2000, ms="").split(";")[0] in [
        c.value.split(";")[0] for c in at.caption
    ]
    at.button(key=P + "bench_refresh").click().run()
    ok(at)
    assert EN("inside.surgery.live", step=5) in [c.value for c in at.caption]
    assert EN("inside.surgery.timing", n=0, images=2000, ms="").split(";")[0] in [
        c.value.split(";")[0] for c in at.caption
    ]  # new weights: the edits belonged to the old copy


def test_portuguese_sections_write_numbers_the_brazilian_way():
    at = ok(app("pt"))
    (success,) = at.success
    assert success.value.startswith(PT("inside.step.match", f=0, diff="").split(":")[0])
    assert "0,0000" in success.value  # the largest difference, with a decimal comma
    assert at.radio(key=P + "section").options == [
        PT("inside.section.step"),
        PT("inside.section.surgery"),
        PT("inside.section.looks"),
    ]
    at.radio(key=P + "section").set_value("surgery").run()
    ok(at)
    acc = [m.value for m in at.metric if m.label == PT("inside.surgery.before", n=PT.int(2000))]
    assert acc and "," in acc[0] and acc[0].endswith("%")
    at.radio(key=P + "section").set_value("looks").run()
    ok(at)
    assert PT("inside.look.saliency", c=7) in [c.value for c in at.caption]


def grid_edit(at: AppTest, cells: dict) -> AppTest:
    """Type ``cells`` {(row, col): value} into the surgery's kernel grid, then run."""
    from tests.support.conv_apptest import edits

    grid = at.session_state[P + "kernel_grid"]
    at.session_state[f"{P}kernel_grid_{grid.version}_0"] = edits(cells)
    return at.run()


def independent(kernel: np.ndarray, f: int) -> tuple[float, np.ndarray]:
    """tiny with filter ``f`` of its first conv set to ``kernel``, scored by train.evaluate."""
    from convviz.nn.inspect import surgery
    from convviz.nn.train import evaluate

    model = load_model(MODELS / "tiny.npz")
    edited = surgery(model, 1, f, kernel)
    assert np.array_equal(model.layers[1].params["kernel"][..., 0, f], tiny_kernel(f))  # a copy
    data = load_mnist()
    _loss, acc, confusion = evaluate(edited, data.test_images[:2000], data.test_labels[:2000])
    return acc, confusion


def tiny_kernel(f: int) -> np.ndarray:
    return load_model(MODELS / "tiny.npz").layers[1].params["kernel"][:, :, 0, f]


def test_surgery_cell_by_cell_in_the_grid_then_undo_restores_the_learned_kernel_bit_for_bit():
    f = 2
    at = ok(app(**{P + "section": "surgery", P + "surgery_filter": f}))
    learned = tiny_kernel(f).astype(np.float64)
    # The grid shows the learned values of the chosen filter.
    grid = at.session_state[P + "kernel_grid"]
    np.testing.assert_array_equal(grid.base, learned)
    shown = np.float32([[float(v) for v in r] for r in editor_args(at)[0]["exact"]])
    np.testing.assert_array_equal(shown, learned.astype(np.float32))  # 10 digits: float32 exact
    before = {m.label: m.value for m in at.metric}[EN("inside.surgery.before", n=2000)]
    acc0, conf0 = independent(learned, f)
    assert before == EN.pct(acc0, 2)
    # One typed cell: the kernel in the surgery, scored as an independent evaluation scores it.
    grid_edit(at, {(1, 1): 3.0, (0, 2): -1.5})
    ok(at)
    kernel = learned.copy()
    kernel[1, 1], kernel[0, 2] = 3.0, -1.5
    np.testing.assert_array_equal(heatmap_z(at, P + "kernel_after"), kernel)
    np.testing.assert_array_equal(heatmap_z(at, P + "kernel_before"), learned)
    acc1, conf1 = independent(kernel, f)
    assert acc1 < acc0 - 0.01  # a real change
    after = {m.label: m.value for m in at.metric}[EN("inside.surgery.after", n=2000)]
    assert after == EN.pct(acc1, 2)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf1)
    assert at.session_state[P + "surgery_done"][2].acc == pytest.approx(acc1, abs=0)
    assert (
        at.selectbox(key=P + "surgery_filter").options[f].endswith(EN("inside.surgery.edited_mark"))
    )
    np.testing.assert_array_equal(at.session_state[P + "kernel_grid"].base, kernel)
    # Cells that are no number, empty (NaN) or too big for the float32 network: the
    # grid's message, and the kernel in the surgery stays as it was.
    problems = {
        (0, 0): ("abc", EN("conv.grid.not_number", row=1, col=1)),
        (2, 1): (float("nan"), EN("conv.grid.empty", row=3, col=2)),
        (2, 2): (1e300, EN("inside.surgery.cell_big", row=3, col=3, max=1000)),
    }
    for (r, c), (value, reason) in problems.items():
        grid_edit(at, {(r, c): value})
        assert not at.exception
        kept = sig(EN, kernel[r, c])
        assert [w.value for w in at.warning] == [EN("conv.grid.kept", reason=reason, value=kept)]
        np.testing.assert_array_equal(heatmap_z(at, P + "kernel_after"), kernel)
        np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf1)
    # Undo: the learned kernel exactly, and the scores bit for bit the learned model's.
    at.button(key=P + "op_undo").click().run()
    ok(at)
    np.testing.assert_array_equal(heatmap_z(at, P + "kernel_after"), learned)
    np.testing.assert_array_equal(at.session_state[P + "kernel_grid"].base, learned)
    shown = np.float32([[float(v) for v in r] for r in editor_args(at)[0]["exact"]])
    np.testing.assert_array_equal(shown, learned.astype(np.float32))  # 10 digits: float32 exact
    done = at.session_state[P + "surgery_done"][2]
    baseline = inside._BENCHES[at.session_state[P + "edits"]["key"]].baseline
    assert done.loss == baseline.loss and done.acc == baseline.acc  # from the same logits
    np.testing.assert_array_equal(done.conf, baseline.conf)
    np.testing.assert_array_equal(done.pred, baseline.pred)
    assert done.acc == acc0  # bit for bit: the same count out of 2,000
    np.testing.assert_array_equal(done.confusion, conf0)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf0)
    assert {m.label: m.value for m in at.metric}[EN("inside.surgery.after", n=2000)] == before
    assert (
        not at.selectbox(key=P + "surgery_filter")
        .options[f]
        .endswith(EN("inside.surgery.edited_mark"))
    )


def test_grid_edits_follow_the_buttons_and_the_filter():
    """Zero, then a cell typed into the zeroed kernel; another filter shows its own values."""
    at = ok(app(**{P + "section": "surgery"}))
    at.button(key=P + "op_zero").click().run()  # filter 0
    ok(at)
    np.testing.assert_array_equal(at.session_state[P + "kernel_grid"].base, np.zeros((3, 3)))
    grid_edit(at, {(1, 1): 1.0})
    ok(at)
    kernel = np.zeros((3, 3))
    kernel[1, 1] = 1.0
    np.testing.assert_array_equal(heatmap_z(at, P + "kernel_after"), kernel)
    acc, conf = independent(kernel, 0)
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf)
    after = {m.label: m.value for m in at.metric}[EN("inside.surgery.after", n=2000)]
    assert after == EN.pct(acc, 2)
    at.selectbox(key=P + "surgery_filter").set_value(3).run()
    ok(at)
    np.testing.assert_array_equal(at.session_state[P + "kernel_grid"].base, tiny_kernel(3))
    np.testing.assert_array_equal(heatmap_z(at, P + "confusion_after"), conf)  # 0 still edited
    # Typing the learned value back is no edit.
    grid_edit(at, {(0, 0): float(tiny_kernel(3)[0, 0])})
    ok(at)
    assert list(at.session_state[P + "edits"]["ops"]) == [0]
    at.selectbox(key=P + "surgery_filter").set_value(0).run()
    np.testing.assert_array_equal(at.session_state[P + "kernel_grid"].base, kernel)
    at.button(key=P + "op_reset").click().run()
    ok(at)
    np.testing.assert_array_equal(at.session_state[P + "kernel_grid"].base, tiny_kernel(0))


def test_a_too_big_cell_in_portuguese():
    at = ok(app("pt", **{P + "section": "surgery"}))
    assert PT("inside.surgery.cells", f=0) in [m.value.strip("*") for m in at.markdown]
    grid_edit(at, {(0, 0): 5e4})
    assert not at.exception
    reason = PT("inside.surgery.cell_big", row=1, col=1, max=1000)
    assert "1.000" in reason
    kept = sig(PT, float(tiny_kernel(0)[0, 0]))
    assert [w.value for w in at.warning] == [PT("conv.grid.kept", reason=reason, value=kept)]


# ------------------------------------------------------------------ export
@pytest.fixture
def deferred(monkeypatch):
    """The page's deferred download functions, by file name, as Streamlit registers them.

    AppTest cannot click a download button (there is no browser to fetch the file),
    so we keep what ``st.download_button(data=callable)`` hands the media manager
    and call it as a click would.
    """
    from streamlit.runtime.media_file_manager import MediaFileManager

    found: dict[str, tuple] = {}
    add = MediaFileManager.add_deferred

    def keep(self, data, mimetype, coordinates, file_name=None, **kw):
        found[file_name] = (data, mimetype)
        return add(self, data, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", keep)
    return found


def download_labels(at: AppTest) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


def run_numpy_export(source: str, weights: bytes, tmp_path: Path, x: np.ndarray) -> np.ndarray:
    """Logits of the exported NumPy file, exec'd on its own with the downloaded weights."""
    import ast

    ast.parse(source)
    path = tmp_path / "weights.npz"
    path.write_bytes(weights)
    namespace = {"__name__": "exported_model"}  # not "__main__": no accuracy run
    exec(compile(source, "model.py", "exec"), namespace)
    return namespace["build_model"](str(path))(x)


SAFE_NAME = r"[A-Za-z0-9_-]+\.(py|npz)"


def test_export_downloads_of_a_shipped_model_run_on_their_own(deferred, tmp_path):
    import ast
    import re

    at = ok(app())
    labels = [EN("inside.export.pytorch"), EN("inside.export.numpy"), EN("inside.export.npz")]
    assert download_labels(at) == labels
    assert EN("inside.export.header") in [e.label for e in at.expander]
    files = {"pytorch": "tiny_pytorch.py", "numpy": "tiny_numpy.py", "npz": "tiny.npz"}
    assert set(files.values()) <= set(deferred)
    command = EN("inside.export.command", py=files["numpy"], npz=files["npz"])
    assert command in [c.value for c in at.code]
    assert command.startswith("python tiny_numpy.py tiny.npz t10k-images")
    # Made only when clicked: the functions Streamlit keeps give the files.
    py_torch, mime = deferred[files["pytorch"]]
    assert mime == "text/x-python"
    torch_source = py_torch().decode("utf-8")
    ast.parse(torch_source)
    assert "import torch" in torch_source and "def build_model(weights_path)" in torch_source
    weights = deferred[files["npz"]][0]()
    assert weights == model_file("tiny")  # the shipped file itself
    numpy_source = deferred[files["numpy"]][0]().decode("utf-8")
    model = load_model(MODELS / "tiny.npz")
    x = to_batch(load_mnist().test_images[:16])
    got = run_numpy_export(numpy_source, weights, tmp_path, x)
    want = model.forward(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()
    assert all(re.fullmatch(SAFE_NAME, name) for name in files.values())


def test_export_downloads_in_portuguese_and_of_an_upload_with_an_unsafe_name(deferred, tmp_path):
    import re

    at = ok(app("pt"))
    assert download_labels(at) == [
        PT("inside.export.pytorch"),
        PT("inside.export.numpy"),
        PT("inside.export.npz"),
    ]
    assert PT("inside.export.header") in [e.label for e in at.expander]
    assert PT("inside.export.run") in [c.value for c in at.caption]
    at.sidebar.radio(key=P + "source").set_value("upload").run()
    name = "[x](https://e.com) ../../évil name.npz"
    data = model_file("classic")
    deferred.clear()
    at.sidebar.file_uploader(key=P + "upload").set_value((name, data, "x")).run()
    ok(at)
    names = sorted(n for n in deferred if n.startswith("x_https"))
    assert names == ["x_https_e_com_vil_name.npz", "x_https_e_com_vil_name_numpy.py",
                     "x_https_e_com_vil_name_pytorch.py"]  # fmt: skip
    assert all(re.fullmatch(SAFE_NAME, n) for n in names)
    weights = deferred["x_https_e_com_vil_name.npz"][0]()
    assert weights == data
    x = to_batch(load_mnist().test_images[:8])
    source = deferred["x_https_e_com_vil_name_numpy.py"][0]().decode("utf-8")
    got = run_numpy_export(source, weights, tmp_path, x)
    np.testing.assert_allclose(got, load_model(io.BytesIO(data)).forward(x), rtol=0, atol=1e-4)


def test_export_downloads_of_the_live_run_are_its_current_copy(live_run, deferred, tmp_path):
    live_run.step(2)
    snap = live_run.wait(lambda s: s.live_step == 2 and not live_run.busy)
    at = ok(app(**{P + "source": "live", "train_run_id": live_run.id}))
    assert download_labels(at) == [
        EN("inside.export.pytorch"),
        EN("inside.export.numpy"),
        EN("inside.export.npz"),
    ]
    stem = f"convviz-{snap.model_name}-step2"
    weights = deferred[f"{stem}.npz"][0]()
    saved = load_model(io.BytesIO(weights))
    x = to_batch(load_mnist().test_images[:8])
    want = snap.live_model.forward(x)
    np.testing.assert_array_equal(saved.forward(x), want)  # the weights at step 2
    source = deferred[f"{stem}_numpy.py"][0]().decode("utf-8")
    got = run_numpy_export(source, weights, tmp_path, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
