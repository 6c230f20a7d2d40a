"""The Inside the network page under Streamlit's AppTest, in English and Portuguese.

Each model source (a shipped model, an uploaded file, the Train page's live run)
and each digit source (a test image, a photo; the canvas only renders here, the
browser test draws on it), the evaluation, the prediction and every layer's
output, the learned-filter stepper (its finished map against the model's own
activation), the deeper layer's and the dense head's sums, kernel surgery and
what the network looks at. Oracles: the shipped files' metadata (their test
accuracy, written when they were trained), the models' own forward passes, and
SciPy's correlation for the stepper.
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
from tests.support.apptest import page_app

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


def image_captions(at: AppTest) -> list[str]:
    return [img.caption for el in at.get("image") for img in el.proto.imgs if img.caption]


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
    (metric,) = at.metric
    assert metric.label == EN("inside.pred.class") and metric.value == "7"
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
    (metric,) = at.metric
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
    captions = image_captions(at)
    assert EN("inside.stage.grey", h=160, w=120) in captions
    assert EN("inside.stage.inverted") in captions  # light paper: inverted
    assert at.metric[0].label == EN("inside.pred.class")
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

