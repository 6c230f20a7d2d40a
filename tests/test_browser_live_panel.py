"""The live_panel component alone in Chromium, hosted by a page that plays Streamlit's part.

The host page (written here) loads the component's ``index.html`` in an iframe, sends it
``streamlit:render`` messages with :func:`~convviz.ui.live_panel.panel_args` payloads and,
like Streamlit, sets the iframe's height from ``streamlit:setFrameHeight``. No Streamlit
and no training: each case is deterministic and takes seconds. The Train page itself, with
a run paused from another tab and a run that finishes, is in ``test_browser_train_panel.py``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from convviz.i18n import translator
from convviz.train_figures import curves_figure
from convviz.ui import live_panel
from convviz.ui.live_panel import Chart, Pic, Pictures, panel_args, zoom_range
from tests.support.browser import chromium_browser, require_browser, serve_folder

pytestmark = pytest.mark.browser

HOST = """<!doctype html><html><body style="margin:0">
<iframe id="f" src="index.html" style="width:900px;height:0;border:0" scrolling="no"></iframe>
<script>
window.ready = false; window.values = [];
const f = document.getElementById("f");
window.addEventListener("message", e => { const m = e.data;
  if (m.type === "streamlit:componentReady") window.ready = true;
  if (m.type === "streamlit:setFrameHeight") f.style.height = m.height + "px";
  if (m.type === "streamlit:setComponentValue") window.values.push(m.value); });
window.send = args => f.contentWindow.postMessage({type: "streamlit:render", args: args}, "*");
</script></body></html>"""  # i18n: not text


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The component's files and the host page, served on a free loopback port."""
    require_browser()
    root = tmp_path_factory.mktemp("live_panel_host")
    for name in ("index.html", "plotly.min.js", "SourceSans.woff2"):
        src = live_panel._component_dir() / name
        if src.exists():
            shutil.copyfile(src, root / name)
    (root / "host.html").write_text(HOST)

    with serve_folder(root) as base, chromium_browser() as browser:
        yield browser, f"{base}/host.html"


@pytest.fixture
def panel(host):
    browser, url = host
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.ready")
    yield page, page.frames[1]
    context.close()


def send(page, blocks, lang="en"):
    args = panel_args(blocks)
    args.update(feed=None, poll_ms=1000, state=None, version=None, lang=lang)
    page.evaluate("a => send(a)", json.loads(json.dumps(args)))
    page.wait_for_timeout(400)


def run(steps: int, total: int = 1580, acc=(0.9, 0.99)):
    s = np.arange(1, steps + 1)
    chunks = {"step": s, "loss": 1 / s, "acc": np.linspace(*acc, steps)}
    history = {"val_step": [steps], "val_loss": [0.1], "val_acc": [0.97]}
    return curves_figure(chunks, history, total_steps=total, height=300)


def filters(h: int) -> Pictures:
    return Pictures([Pic(np.full((h, 200, 3), 90, np.uint8))], "Filters", "", name="filters")


BOXES = """() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return [r.top, r.bottom, r.height, r.width]; };
  const g = document.querySelector(".chart");
  return { chart: box(g), svg: box(g.querySelector(".main-svg")),
           filters: box(document.querySelector("[data-name='filters']")),
           width: g._fullLayout.width, clientWidth: g.clientWidth,
           frame: innerHeight, panel: box(document.getElementById("panel")) };
}"""


def assert_laid_out(frame):
    b = frame.evaluate(BOXES)
    top, bottom, height, _ = b["chart"]
    assert height == pytest.approx(300, abs=1), f"the curves' box is {height} px high"
    assert b["svg"][0] >= top - 1 and b["svg"][1] <= bottom + 1, "the curves overflow their box"
    assert b["filters"][0] >= b["svg"][1], "the filters are drawn over the curves"
    assert abs(b["width"] - b["clientWidth"]) <= 1, "the curves are not as wide as their box"
    assert b["frame"] >= b["panel"][2] - 1, "the frame is shorter than the panel"
    return b


def test_the_curves_keep_their_box_when_the_frame_is_resized_after_an_update(panel):
    """The collapse: once a Plotly.react had run on a shown graph, a resize of the frame
    made plotly's responsive handler delete layout.height and relayout; the graph's
    container became 100% of an auto-height div (0 px) and the filters moved over it."""
    page, frame = panel
    send(page, [Chart(run(50), 300), filters(60)])
    send(page, [Chart(run(80), 300), filters(60)])  # a refresh: Plotly.react again
    assert_laid_out(frame)
    page.evaluate("document.getElementById('f').style.width = '760px'")  # a scroll bar came
    page.wait_for_timeout(600)  # plotly's handler waited 100 ms
    b = assert_laid_out(frame)
    assert b["width"] == pytest.approx(760, abs=1)
    send(page, [Chart(run(80), 300), filters(240)])  # paused: taller filters, same curves
    page.evaluate("document.getElementById('f').style.width = '900px'")
    page.wait_for_timeout(600)
    assert assert_laid_out(frame)["width"] == pytest.approx(900, abs=1)


AXES = """() => { const l = document.querySelector(".chart")._fullLayout;
  return [l.xaxis.range, l.xaxis2.range, l.yaxis2.range]; }"""


def test_the_step_axis_follows_the_run_and_keeps_a_user_zoom(panel):
    page, frame = panel
    t = translator("en")
    send(page, [live_panel.curves_chart(run(282), 300, t=t)])
    x, x2, _ = frame.evaluate(AXES)
    assert x == x2 == [0, 400]  # the steps so far and some headroom, not 0-1580
    send(page, [live_panel.curves_chart(run(900), 300, t=t)])
    assert frame.evaluate(AXES)[0] == [0, 1000]
    # The user zooms the step axis with the mouse: it stays as they left it while the
    # run moves on (and past a new round end)...
    drag = frame.locator(".nsewdrag").first.bounding_box()
    x0, y0 = drag["x"] + 20, drag["y"] + 20
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 120, y0 + 80, steps=5)
    page.mouse.up()
    page.wait_for_timeout(300)
    zoomed = frame.evaluate(AXES)[0]
    assert 0 < zoomed[0] < zoomed[1] < 1000
    send(page, [live_panel.curves_chart(run(1300), 300, t=t)])
    assert frame.evaluate(AXES)[0] == pytest.approx(zoomed)
    # ... until they double-click: the axis follows again, never past the run's end.
    frame.locator(".nsewdrag").first.dblclick()
    page.wait_for_timeout(300)
    send(page, [live_panel.curves_chart(run(1580), 300, t=t)])
    assert frame.evaluate(AXES)[0] == [0, 1580]


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_the_accuracy_axis_zooms_and_the_checkbox_shows_0_to_100(panel, lang):
    page, frame = panel
    t = translator(lang)
    send(page, [live_panel.curves_chart(run(300, acc=(0.95, 0.99)), 300, t=t)], lang)
    low = np.quantile(np.linspace(0.95, 0.99, 300), 0.05)  # the train curve's 5th percentile
    zoomed = zoom_range(low, 0.99, (0, 1.02))
    assert frame.evaluate(AXES)[2] == pytest.approx(zoomed)
    assert zoomed[1] - zoomed[0] < 0.2  # 95 -> 99% fills the panel, not a sliver of it
    label = frame.get_by_text(t("live_panel.acc_full"), exact=True)
    assert label.count() == 1
    toggle = frame.locator("[data-testid='full-range']")
    assert toggle.get_attribute("title") == t("live_panel.acc_full.help")
    assert frame.evaluate("document.documentElement.lang") == lang
    label.click()
    page.wait_for_timeout(300)
    assert frame.evaluate(AXES)[2] == [0, 1.02]
    send(page, [live_panel.curves_chart(run(400, acc=(0.95, 0.99)), 300, t=t)], lang)
    assert frame.evaluate(AXES)[2] == [0, 1.02]  # the choice survives the refreshes
    label.click()
    page.wait_for_timeout(300)
    assert frame.evaluate(AXES)[2] == pytest.approx(zoomed)
    # A chart without a label has no checkbox.
    send(page, [Chart(run(10), 300)], lang)
    assert frame.locator("[data-testid='full-range']").is_hidden()
