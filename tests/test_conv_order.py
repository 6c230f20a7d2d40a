"""The Convolution page sends its feature map before anything else it draws.

An edit's repaint waits for whatever the script sends before the map
(``benchmarks/bench_ui.py`` times it in Chromium): drawn after the lesson, the map
waited for the lesson's seven charts (805 ms on 512x512, 642 ms on the 5x5 numbers).
These tests record the order in which the page hands elements to Streamlit.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from convviz.i18n import translator
from tests.support.apptest import TIMEOUT
from tests.support.cell_editor import editor_args
from tests.support.conv_apptest import edit_grid

# The page behind app.py's language picker, with Streamlit's enqueue recorded:
# (element type, its id or text) in the order the script sent them.
SCRIPT = """
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from convviz.ui.i18n import language_picker
from convviz.ui.pages import convolution

sent = st.session_state.setdefault("sent", [])
sent.clear()
real = DeltaGenerator._enqueue

def recording(self, delta_type, element_proto, *args, **kwargs):
    what = getattr(element_proto, "id", "") or getattr(element_proto, "body", "")
    sent.append((delta_type, what))
    return real(self, delta_type, element_proto, *args, **kwargs)

DeltaGenerator._enqueue = recording
try:
    language_picker()
    convolution.render()
finally:
    DeltaGenerator._enqueue = real
"""

EN = translator("en")


def _app(query: dict[str, str]) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=TIMEOUT)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts_and_images(at: AppTest) -> list[tuple[str, str]]:
    return [(k, w) for k, w in at.session_state["sent"] if k in ("plotly_chart", "imgs")]


def test_the_big_map_goes_out_before_any_chart_after_an_edit() -> None:
    at = _app({"source": "sample", "sample": "Cameraman"})
    edit_grid(at, "kernel", {(0, 0): "3"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    sent = at.session_state["sent"]
    title = f"**{EN('conv.result.map')}**"
    i = sent.index(("markdown", title))
    kinds = [k for k, _ in sent]
    # the map's title, then its image, before the first chart of the lesson
    assert kinds[i + 1] == "imgs", sent[i : i + 3]
    assert "plotly_chart" in kinds and kinds.index("plotly_chart") > i + 1


def test_the_small_map_is_the_first_thing_drawn_after_an_edit() -> None:
    at = _app({})  # the 5x5 numbers page: the map is a value map (a component)
    edit_grid(at, "kernel", {(1, 1): "2"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    sent = [(k, w) for k, w in at.session_state["sent"]
            if k in ("plotly_chart", "imgs", "component_instance")]  # fmt: skip
    assert sent and sent[0][0] == "component_instance", sent[:3]
    assert sent[0][1].endswith("conv_output_map"), sent[:3]
    # the kernel editor, the input and the lesson's charts and maps were all drawn after it
    later = [w.rsplit("-", 1)[-1] for _, w in sent[1:]]
    assert {"conv_input_map", "conv_step_kernel_0", "conv_step_products_0"} <= set(later), later
    assert {"conv_step_input", "conv_step_output", "conv_hist"} <= set(later), later


def test_a_whole_run_asks_the_kernel_editor_for_no_catch_up() -> None:
    """Only a run of the workbench by itself gives the kernel editor a token to send
    back (the lesson is then behind; ``tests/test_browser_editor.py`` checks that it
    follows); a run of the whole page, after an edit too, is up to date and gives none."""
    at = _app({})
    assert editor_args(at)[0]["sync"] is None
    edit_grid(at, "kernel", {(1, 1): "2"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert editor_args(at)[0]["sync"] is None
    assert at.session_state["conv_sync"] is None
