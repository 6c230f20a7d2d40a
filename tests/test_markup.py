"""No markup from data (issue 17, section 2): text from a URL, an upload's file name or a
model file is never rendered as Markdown or HTML.

Hostile payloads (links, images, raw HTML with handlers, Streamlit's colour directive,
LaTeX, headings, entities, emphasis, a script) go through every path where text comes
from data:

- every ``?param`` a page reads (``grep query_params convviz/ui``: ``lang``, ``run`` and
  the Convolution settings ``kernel bias stride padding pad_mode dilation flip source
  sample colour activation``, which Pooling and Feature maps read through its state),
  set on every page;
- the name of an uploaded image (Convolution, Pooling, Feature maps), good and broken;
- the Inside page's uploaded model: its file name, model name, layer names and
  metadata; its uploaded digit photo's name;
- the Train page's uploaded starting model: file name, model name and layer names.

Two levels. AppTest (here, no browser): the payload's marker never appears in the body,
label or help of an element Streamlit renders as Markdown (only in ``st.text`` /
``st.code`` / option lists, which are plain text). Chromium (``@pytest.mark.browser``):
the DOM has no link or image pointing off the machine, no inline event handler, no
element built from a payload (link, image, heading, emphasis, KaTeX, coloured span), no
request leaves loopback, and where a payload shows at all it shows literally.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.apptest import page_app

# One marker per payload (``Qzmark`` + a digit), found in any rendering: never a word,
# nor a likely run of a random token (``Qz`` + a digit once matched a run's owner token).
PAYLOADS = [
    "[Qzmark0 link](http://evil.example/a)",
    "![Qzmark1 image](http://evil.example/p.png)",
    '<img src="http://evil.example/x.png" onerror="window.__pwned=1">Qzmark2',
    '<a href="http://evil.example/h">Qzmark3 anchor</a>',
    ":red[Qzmark4 red] :material/warning:",
    "$\\frac{Qzmark5}{2}$ and $$Qzmark5^2$$",
    "# Qzmark6 heading",
    "&lt;b&gt;Qzmark7&amp;amp;&#x41;",
    "**Qzmark8 bold** _it_ `code`",
    "<script>window.__pwned=2</script>Qzmark9",
]
MARKERS = [f"Qzmark{i}" for i in range(len(PAYLOADS))]
# Every query parameter some page reads.
QUERY_KEYS = [
    "lang", "run", "kernel", "bias", "stride", "padding", "pad_mode", "dilation", "flip",
    "source", "sample", "colour", "activation",
]  # fmt: skip
PAGES = ["convolution", "pooling", "feature_maps", "step", "train", "inside", "about"]

# Element types whose text is shown verbatim (no Markdown): a payload may appear there.
PLAIN = {"text", "code"}
# Proto fields Streamlit renders as Markdown: bodies of markdown/caption/alerts/titles,
# every widget's label and help, expander/tab/popover labels.
MARKDOWN_FIELDS = {"body", "label", "help", "caption", "labels"}


def _markdown_strings(msg, out: list[str]) -> None:
    for fd, value in msg.ListFields():
        values = value if fd.is_repeated else [value]
        for v in values:
            if hasattr(v, "ListFields"):
                _markdown_strings(v, out)
            elif isinstance(v, str) and fd.name in MARKDOWN_FIELDS:
                out.append(v)


def rendered_as_markdown(at) -> list[tuple[str, str]]:
    """``(element type, text)`` of every string the page hands to Markdown."""
    found = []
    for node in at:
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields") or node.type in PLAIN:
            continue
        strings: list[str] = []
        _markdown_strings(proto, strings)
        found += [(node.type, s) for s in strings]
    return found


def assert_no_marker_in_markdown(at, what: str) -> None:
    assert not at.exception, f"{what}: {at.exception}"
    leaks = [(k, s) for k, s in rendered_as_markdown(at) if any(m in s for m in MARKERS)]
    assert not leaks, f"{what}: data rendered as Markdown: {leaks[:3]}"


def _png(picture: np.ndarray | None = None) -> bytes:
    if picture is None:
        picture = ((np.arange(24 * 32).reshape(24, 32) * 7) % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "PNG")
    return buf.getvalue()


def _digit_png() -> bytes:
    a = np.full((60, 40), 255, np.uint8)
    a[10:50, 15:25] = 0  # a "1"
    return _png(a)


def hostile_model(payload: str, kind: str = "tiny") -> bytes:
    """A real model (it loads and predicts) whose name, layer names and metadata are ``payload``."""
    from convviz.nn import build_model

    model = build_model(kind)
    model.name = payload
    for i, layer in enumerate(model.layers):
        # Unique within the model. A "/" would split the weights' keys (``conv/kernel``) and
        # the zip member names: such a file is refused as damaged (the broken-file cases),
        # so here the slash is U+2044, which a Markdown renderer would still link.
        layer.name = f"{payload.replace('/', chr(0x2044))} {i}"
    buf = io.BytesIO()
    model.save(buf, metadata={"note": payload, payload: [payload]})
    return buf.getvalue()


def file_name(payload: str, ext: str) -> str:
    return f"{payload}.{ext}"


# --------------------------------------------------------------------------- AppTest


@pytest.mark.parametrize("page", PAGES)
def test_query_params_never_reach_markdown(page):
    """Every page with every parameter set to each payload (10 runs per page)."""
    for payload in PAYLOADS:
        at = page_app(page)
        for key in QUERY_KEYS:
            at.query_params[key] = payload
        at.run()
        assert_no_marker_in_markdown(at, f"{page} ?*={payload!r}")


@pytest.mark.parametrize("page", ["convolution", "pooling", "feature_maps"])
def test_uploaded_image_names_never_reach_markdown(page):
    prefix = {"convolution": "conv", "pooling": "pool", "feature_maps": "fm"}[page]
    for payload in PAYLOADS:
        for data in (_png(), b"not an image at all"):
            at = page_app(page)
            at.query_params["source"] = "upload"  # the Convolution page reads it from the URL
            at.session_state[f"{prefix}_source"] = "upload"  # the others from their radio
            at.run()
            uploaders = at.get("file_uploader")
            assert uploaders, f"{page}: no image uploader with ?source=upload"
            uploaders[0].set_value((file_name(payload, "png"), data, "image/png"))
            at.run()
            assert_no_marker_in_markdown(at, f"{page} upload {payload!r}")


def _inside_with(widget_values: dict, upload=None, photo=None):
    at = page_app("inside")
    at.run()
    for key, value in widget_values.items():
        at.session_state[key] = value
    at.run()
    for key, file in ((("inside_upload"), upload), ("inside_photo", photo)):
        if file is None:
            continue
        matches = [u for u in at.get("file_uploader") if u.key == key]
        assert matches, f"no uploader {key}"
        matches[0].set_value(file)
        at.run()
    return at


def test_inside_uploaded_model_and_photo_names_never_reach_markdown():
    for payload in PAYLOADS:
        model = (file_name(payload, "npz"), hostile_model(payload), "application/octet-stream")
        at = _inside_with({"inside_source": "upload"}, upload=model)
        assert_no_marker_in_markdown(at, f"inside model {payload!r}")
        # Every layer (the step section lists the model's layers by name).
        layers = [sb for sb in at.selectbox if sb.key == "inside_layer"]
        assert layers, "the step section's layer choice is missing"
        for k, option in enumerate(layers[0].options):
            at.selectbox(key="inside_layer").select_index(k).run()
            assert_no_marker_in_markdown(at, f"inside layer {option!r}")
        broken = (file_name(payload, "npz"), b"PK not a model", "application/octet-stream")
        at = _inside_with({"inside_source": "upload"}, upload=broken)
        assert_no_marker_in_markdown(at, f"inside broken model {payload!r}")
        for data in (_digit_png(), b"broken"):
            photo = (file_name(payload, "png"), data, "image/png")
            at = _inside_with({"inside_digit": "upload"}, photo=photo)
            assert_no_marker_in_markdown(at, f"inside photo {payload!r}")


def test_train_uploaded_model_names_never_reach_markdown():
    for payload in PAYLOADS:
        for data in (hostile_model(payload), b"PK not a model"):
            at = page_app("train")
            at.run()
            at.session_state["train_init"] = "upload"
            at.run()
            uploaders = [u for u in at.get("file_uploader") if u.key == "train_upload"]
            assert uploaders
            uploaders[0].set_value((file_name(payload, "npz"), data, "application/octet-stream"))
            at.run()
            assert_no_marker_in_markdown(at, f"train upload {payload!r}")


def test_the_scan_sees_markdown_when_a_page_does_render_data():
    """The oracle: a script that DOES pass data to Markdown is caught by the same scan."""
    from streamlit.testing.v1 import AppTest

    script = f"import streamlit as st\np = {PAYLOADS[0]!r}\nst.text(p)\nst.code(p)\nst.warning(p)\n"
    at = AppTest.from_string(script).run()
    kinds = {k for k, s in rendered_as_markdown(at) if "Qzmark0" in s}
    assert kinds == {"warning"}


def hostile_case_count() -> dict[str, int]:
    """How many hostile inputs the AppTest level tries (reported in issue 17's note)."""
    n = len(PAYLOADS)
    return {
        "query: pages x params x payloads": len(PAGES) * len(QUERY_KEYS) * n,
        "image upload names (3 pages, good + broken)": 3 * 2 * n,
        "inside model uploads (file, model, layer names, metadata; good + broken)": 2 * n,
        "inside digit photo names (good + broken)": 2 * n,
        "train model uploads (good + broken)": 2 * n,
    }


# --------------------------------------------------------------------------- Chromium

ALLOWED_SCHEMES = ("data:", "blob:", "about:", "javascript:void")

_DOM_CHECK = """(markers) => {
  const origin = location.origin;
  const problems = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.getAttributeNames()) {
      const value = el.getAttribute(attr) || '';
      if (attr.startsWith('on')) problems.push(`inline handler ${attr} on <${el.tagName}>`);
      const urls = ['href', 'src', 'srcset', 'action', 'formaction', 'poster', 'xlink:href'];
      if (urls.includes(attr)) {
        if (!value || value.startsWith('#')) continue;
        let url;
        try { url = new URL(value, location.href); } catch (e) { continue; }
        const local = url.origin === origin || ['data:', 'blob:', 'about:'].includes(url.protocol);
        // Off-machine links the app writes itself (the About page's credits)
        // are fine; one the payload chose is not, and neither is a script: URL.
        const fromData = value.includes('evil.example') || markers.some(m => value.includes(m));
        if (!local && (fromData || url.protocol === 'javascript:'))
          problems.push(`${attr}=${value} on <${el.tagName}>`);
      }
    }
    const built = ['A', 'IMG', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'STRONG', 'EM', 'SCRIPT'];
    const own = Array.from(el.childNodes).filter(n => n.nodeType === 3).map(n => n.data).join('');
    const hit = markers.find(m => own.includes(m));
    if (hit && (built.includes(el.tagName) || el.closest('.katex, [data-testid=stMarkdown] a')
        || (el.tagName === 'SPAN' && /color/.test(el.getAttribute('style') || ''))))
      problems.push(`<${el.tagName}> built from ${hit}`);
  }
  if (window.__pwned) problems.push('a payload script ran: ' + window.__pwned);
  return problems;
}"""

_SHOWN = """(markers) => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const t = walker.currentNode.data;
    if (markers.some(m => t.includes(m))) out.push(t);
  }
  return out;
}"""


def _check_dom(page, where: str) -> list[str]:
    problems = page.evaluate(_DOM_CHECK, MARKERS)
    assert not problems, f"{where}: {problems[:5]}"
    assert page.locator("[data-testid='stException']").count() == 0, where
    return page.evaluate(_SHOWN, MARKERS)


def _literal(shown: list[str], where: str) -> None:
    """Where a payload shows, it shows whole and as written (or as the file name it was)."""
    for text in shown:
        assert any(p in text for p in PAYLOADS) or any(
            p.replace("/", "_") in text or p.replace("/", ":") in text for p in PAYLOADS
        ), f"{where}: a payload shown altered: {text!r}"


@pytest.fixture(scope="module")
def browser_server():
    from tests.support.browser import chromium_browser, require_browser, streamlit_server

    require_browser()
    with streamlit_server() as url, chromium_browser() as browser:
        yield url, browser


def _page(browser, requests: list[str]):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.on("request", lambda r: requests.append(r.url))
    return context, page


def _off_machine(requests: list[str]) -> list[str]:
    from urllib.parse import urlparse

    return [u for u in requests if urlparse(u).hostname not in ("127.0.0.1", "localhost", None)
            and not u.startswith(("data:", "blob:"))]  # fmt: skip


SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots" / "harden"
URL_PATHS = {"convolution": "", "pooling": "pooling", "feature_maps": "feature-maps",
             "step": "step", "train": "train", "inside": "inside", "about": "about"}  # fmt: skip


@pytest.mark.browser
def test_chromium_query_params_build_nothing(browser_server):
    from urllib.parse import urlencode

    from tests.support.browser import wait_ready

    url, browser = browser_server
    requests: list[str] = []
    context, page = _page(browser, requests)
    try:
        for name, path in URL_PATHS.items():
            for payload in (
                PAYLOADS[0] + " " + PAYLOADS[2],
                PAYLOADS[1] + " " + PAYLOADS[4],
                PAYLOADS[3] + PAYLOADS[5] + PAYLOADS[6],
                " ".join(PAYLOADS[7:]),
            ):
                query = urlencode({k: payload for k in QUERY_KEYS})
                page.goto(f"{url}/{path}?{query}")
                wait_ready(page, 120_000)
                _literal(_check_dom(page, f"{name}?{payload}"), name)
            if name in ("convolution", "train"):
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"markup_query_{name}.png"))
    finally:
        context.close()
    assert not _off_machine(requests), _off_machine(requests)[:5]


def _upload(page, selector_index: int, name: str, data: bytes, mime: str) -> None:
    inputs = page.locator("[data-testid='stFileUploaderDropzoneInput']")
    inputs.nth(selector_index).set_input_files({"name": name, "mimeType": mime, "buffer": data})


@pytest.mark.browser
def test_chromium_uploads_build_nothing(browser_server):
    from tests.support.browser import wait_ready

    url, browser = browser_server
    requests: list[str] = []
    everything = " ".join(PAYLOADS)
    # A file name cannot hold "/" (the browser keeps the part after it): "_" instead.
    fname = everything.replace("/", "_")
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page = _page(browser, requests)

    def load(path: str, radio: str | None = None) -> None:
        page.goto(f"{url}/{path}")
        wait_ready(page, 120_000)
        if radio is not None:
            page.get_by_text(radio, exact=True).first.click()
            wait_ready(page, 120_000)

    def upload(name: str, data: bytes, mime: str, where: str) -> list[str]:
        _upload(page, 0, name, data, mime)
        page.wait_for_timeout(500)
        wait_ready(page, 120_000)
        return _check_dom(page, where)

    try:
        for path in ("", "pooling", "feature-maps"):
            for data in (_png(), b"not an image"):
                load(path, "Upload your own")
                upload(fname + ".png", data, "image/png", f"{path} image upload")
        page.set_viewport_size({"width": 1280, "height": 720})
        page.screenshot(path=str(SHOTS / "markup_upload_broken_image.png"))

        model = hostile_model(everything)
        for data in (model, b"PK not a model"):
            load("inside", "an uploaded model (.npz)")
            shown = upload(fname + ".npz", data, "application/octet-stream", "inside model")
            _literal_or_renamed(shown, "inside model")
        page.set_viewport_size({"width": 1920, "height": 1080})
        load("inside", "an uploaded model (.npz)")
        upload(fname + ".npz", model, "application/octet-stream", "inside model")
        page.get_by_text("Model:", exact=False).first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "markup_inside_model_1920.png"))
        page.set_viewport_size({"width": 1280, "height": 720})
        page.screenshot(path=str(SHOTS / "markup_inside_model_1280.png"))
        page.set_viewport_size({"width": 1500, "height": 1000})

        page.set_viewport_size({"width": 1500, "height": 1000})
        for data in (_digit_png(), b"broken"):
            load("inside", "a photo")
            upload(fname + ".png", data, "image/png", "inside photo")
        page.screenshot(path=str(SHOTS / "markup_inside_photo.png"))

        for data in (model, b"PK not a model"):
            load("train", "Upload")
            upload(fname + ".npz", data, "application/octet-stream", "train model")
        page.screenshot(path=str(SHOTS / "markup_train_model.png"), full_page=True)
    finally:
        context.close()
    assert not _off_machine(requests), _off_machine(requests)[:5]


def _literal_or_renamed(shown: list[str], where: str) -> None:
    """Shown payload text is the payload as written: whole, with "/" as the file name's
    "_" or the layer names' U+2044 (see ``hostile_model``), or its export-safe stem."""
    variants = [" ".join(PAYLOADS)]
    variants += [variants[0].replace("/", "_"), variants[0].replace("/", chr(0x2044))]
    # Chromium sends a file name's quotes as %22 (the multipart encoding): shown as it came.
    variants += [variants[1].replace('"', "%22")]
    for text in shown:
        # The uploader shortens a long file name to "start...end.npz": each part is literal.
        if re.fullmatch(r"[\w.\- ]+", text):
            continue  # the export's file names: the stem made safe, nothing left to render
        parts = [p for p in text.split("...") if p]
        assert all(any(p.removesuffix(".npz") in v for v in variants) for p in parts) or any(
            v in text for v in variants
        ), f"{where}: altered {text!r}"


def test_hostile_case_count_is_reported(capsys):
    counts = hostile_case_count()
    with capsys.disabled():
        print("\nhostile markup cases:", json.dumps(counts), "total", sum(counts.values()))
    assert sum(counts.values()) == 1030
