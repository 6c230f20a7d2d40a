"""AppTest helpers for every page: run a page in a language, change every widget once,
and read every text the page shows (for the "no English left in Portuguese" check).

Used by ``tests/test_smoke.py``. Pages are ``st.Page`` callables, so
``AppTest.switch_page`` (file pages only) cannot reach them: each page runs
through a small script with the same shell as ``app.py`` (the language picker,
then the page).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf.message import Message
from PIL import Image
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Widget

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "convviz" / "locale"
TIMEOUT = 60  # generous: a page normally runs in well under a second

#: Page module -> its navigation title key (``app`` domain) and URL path in app.py.
PAGES: dict[str, tuple[str, str]] = {
    "convolution": ("nav.convolution", ""),
    "pooling": ("nav.pooling", "pooling"),
    "feature_maps": ("nav.feature_maps", "feature-maps"),
    "train": ("nav.train", "train"),
    "step": ("nav.step", "step"),
    "inside": ("nav.inside", "inside"),
    "about": ("nav.about", "about"),
}
LANG_KEY = "lang"  # the language picker's widget key (convviz.ui.i18n.KEY)


def page_script(module: str) -> str:
    """app.py's shell around one page: the sidebar's language picker, then the page."""
    return (
        "from convviz.ui.i18n import language_picker\n"
        f"from convviz.ui.pages import {module}\n"
        "language_picker()\n"
        f"{module}.render()\n"
    )


def page_app(module: str, lang: str = "en") -> AppTest:
    """An AppTest of one page in ``lang`` (through ``?lang=``, as a shared link would)."""
    at = AppTest.from_string(page_script(module), default_timeout=TIMEOUT)
    if lang != "en":
        at.query_params[LANG_KEY] = lang
    return at


# --------------------------------------------------------------------------- texts


#: Proto string fields that never hold words for people.
_NOT_TEXT_FIELDS = {
    "id", "form_id", "url", "icon", "type", "format", "default", "language", "data_format",
    "page_script_hash", "component_name", "element_type", "widget_id", "key", "src", "mime",
    "color", "value_type", "file_name", "theme", "selection_mode", "fragment_id",
}  # fmt: skip
#: JSON fields that hold strings for people (plotly specs, live panels, column configs).
_JSON_TEXT_KEYS = {
    "text", "title", "name", "hovertemplate", "texttemplate", "hovertext", "ticktext",
    "label", "caption", "help", "value", "legendgrouptitle", "labels", "message",
    "placeholder", "items", "columns", "blocks", "metrics", "header",
}  # fmt: skip
#: Element types whose text is data or notation, the same in every language.
LANGUAGE_NEUTRAL = {"code", "text", "latex", "json", "dataframe", "arrow_data_frame", "table"}


def _json_strings(obj: object, key: str | None = None) -> Iterator[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_strings(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _json_strings(v, key)
    elif isinstance(obj, str) and key in _JSON_TEXT_KEYS:
        if obj.startswith("data:"):
            return
        if obj[:1] in "{[":
            try:
                yield from _json_strings(json.loads(obj), key)
                return
            except ValueError:
                pass
        yield obj


def _proto_strings(msg: Message) -> Iterator[str]:
    for fd, value in msg.ListFields():
        if fd.name in _NOT_TEXT_FIELDS:
            continue
        values = value if fd.is_repeated else [value]
        for v in values:
            if isinstance(v, Message):
                yield from _proto_strings(v)
            elif isinstance(v, str) and v and not v.startswith("data:"):
                if fd.name in ("spec", "json_args", "columns") or v[:1] in "{[":
                    try:
                        yield from _json_strings(json.loads(v), "text")
                        continue
                    except ValueError:
                        pass
                yield v


def page_texts(at: AppTest) -> list[tuple[str, str]]:
    """``(element type, text)`` for every text the page shows, sidebar included.

    Titles, markdown, captions, alerts, metrics, every widget's label, help,
    placeholder and options, tab, expander and popover labels, chart titles,
    axis titles, hover templates and trace names, and custom components' text.
    """
    out: list[tuple[str, str]] = []
    for node in at:
        proto = getattr(node, "proto", None)
        if not isinstance(proto, Message):
            continue
        kind = node.type
        for s in _proto_strings(proto):
            if s.strip():
                out.append((kind, s))
    return out


# --------------------------------------------------------------------------- catalogues


@functools.cache
def catalogue(locale: str) -> dict[str, str]:
    """Every message of one locale (all domains), read from the ``.po`` files with Babel."""
    from babel.messages.pofile import read_po

    out: dict[str, str] = {}
    for po in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with po.open("rb") as f:
            out.update({m.id: m.string for m in read_po(f, locale=locale) if m.id})
    return out


def _pattern(text: str) -> re.Pattern[str]:
    """A message as a regex: its literal parts, any text for each ``{placeholder}``."""
    parts = []
    for literal, fieldname, _, _ in string.Formatter().parse(text):
        parts.append(re.escape(_norm(literal)))
        if fieldname is not None:
            parts.append(r".+?")
    return re.compile("".join(parts))


def _norm(text: str) -> str:
    return " ".join(text.split())


def _literal(text: str) -> str:
    return "".join(lit for lit, _, _, _ in string.Formatter().parse(text))


_WORD = re.compile(r"[A-Za-zÀ-ÿ]{2,}")


def is_wordy(text: str, min_words: int = 2, min_chars: int = 8) -> bool:
    """At least two words and eight characters of words (not a number, a symbol or a name)."""
    lit = _norm(text)
    return len(_WORD.findall(lit)) >= min_words and len(lit) >= min_chars


def is_prose(text: str) -> bool:
    """Two or more plain words (letters only: not ``conv2d``, ``26×26``, ``x``) and 8+ characters.

    For texts shown the same in both languages: layer names, shapes and
    formulas are the same everywhere, sentences are not.
    """
    words = [w.strip(".,;:!?()[]{}'\"*`«»<>") for w in text.split()]
    names = _layer_names()  # Keras-style layer types and their default names: API names
    return (
        sum(len(w) >= 2 and w.isalpha() and w.lower() not in names for w in words) >= 2
        and len(_norm(text)) >= 8
    )


@functools.cache
def _layer_names() -> frozenset[str]:
    from convviz.nn.registry import LAYER_CLASSES

    return frozenset(name.lower() for name in LAYER_CLASSES)


@dataclass(frozen=True)
class CatalogueMessage:
    key: str
    en: str
    pt: str
    pattern: re.Pattern[str]


def english_only_messages() -> list[CatalogueMessage]:
    """Every catalogue message whose English differs from its Portuguese and that is
    wordy enough to mean something (>= 2 words, >= 8 characters without placeholders)."""
    en, pt = catalogue("en"), catalogue("pt_BR")
    msgs = []
    for key, text in en.items():
        if _norm(text) == _norm(pt.get(key, "")) or not is_wordy(_literal(text)):
            continue
        msgs.append(CatalogueMessage(key, text, pt.get(key, ""), _pattern(text)))
    return msgs


def shared_messages() -> set[str]:
    """Messages written the same in English and Portuguese (names: "Leaky ReLU", "Sobel x")."""
    en, pt = catalogue("en"), catalogue("pt_BR")
    return {_norm(v) for k, v in en.items() if _norm(v) == _norm(pt.get(k, ""))}


def english_left(
    texts: Iterable[tuple[str, str]], messages: list[CatalogueMessage]
) -> dict[str, list[str]]:
    """English catalogue messages found in the texts: ``{shown text: [message keys]}``."""
    found: dict[str, list[str]] = {}
    for _kind, text in dict.fromkeys(texts):
        t = _norm(text)
        keys = [m.key for m in messages if m.pattern.search(t)]
        if keys:
            found[text] = keys
    return found


# --------------------------------------------------------------------------- the walk

#: Widget types the walk changes; anything else found on a page fails the smoke test,
#: so a new kind of widget cannot go untested silently.
HANDLED = {
    "button", "download_button", "checkbox", "toggle", "radio", "selectbox", "multiselect",
    "select_slider", "slider", "number_input", "text_input", "text_area", "color_picker",
    "date_input", "button_group", "file_uploader", "data_editor", "cell_editor",
}  # fmt: skip


def _as_label(w: Widget) -> Widget:
    """Let ``w.set_value`` take the option labels the page shows.

    AppTest sets a choice by its raw value, and the test only knows the labels
    (``w.options``). AppTest falls back to a label only when ``format_func``
    raises on it, which a catalogue lookup never does (an unknown key comes back
    as itself). Labels are what the browser sends, so we give this one widget a
    ``format_func`` that keeps labels as they are.
    """
    fmt = w.format_func
    labels = set(w.options)

    def keep_labels(v):
        return v if isinstance(v, str) and v in labels else fmt(v)

    w.__class__ = type(
        type(w).__name__, (type(w),), {"format_func": property(lambda _: keep_labels)}
    )
    return w


def _other(options: list, current: int | None) -> int | None:
    """Another index than ``current``: the next one (the previous one at the end)."""
    if len(options) < 2:
        return None
    if current is None:
        return 0
    return current + 1 if current + 1 < len(options) else current - 1


def _index(w) -> int | None:
    """The chosen option's index (the first one for pills and segmented controls)."""
    if w.type == "button_group":
        return next(iter(w.indices), None)
    return w.index


def _lower(options: list, current: int) -> int | None:
    """Another index, the previous one first: a smaller size trains and draws faster."""
    if len(options) < 2:
        return None
    return current - 1 if current > 0 else current + 1


def small_png() -> bytes:
    yy, xx = np.mgrid[0:24, 0:32]
    a = ((np.sin(xx / 3.0) + np.cos(yy / 2.0) + 2) * 63).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def change(at: AppTest, kind: str, w, option: int | None = None) -> str | None:
    """Change one widget the way a person would, once; returns what was done (None: nothing).

    Another option, one step up (down at the top) within bounds, the other
    toggle state, a click, a small PNG for an image uploader, one edited cell.
    """
    t = kind
    if t in ("button", "download_button"):
        w.click()
        return "click"
    if t in ("checkbox", "toggle"):
        new = not w.value
        w.set_value(new)
        return f"set {new}"
    if t in ("radio", "selectbox"):
        i = _other(w.options, w.index) if option is None else option
        if i is None:
            return None
        _as_label(w).set_value(w.options[i])
        return f"choose {w.options[i]!r}"
    if t == "multiselect":
        chosen = list(w.values)
        if chosen:
            new = chosen[:-1]
        else:
            new = w.options[:1]
        _as_label(w).set_value(new)
        return f"choose {new!r}"
    if t == "select_slider":
        labels = list(w.options)
        value = w.value
        if isinstance(value, tuple | list):
            return None  # no range select_slider in the app yet
        i = _lower(labels, labels.index(w.format_func(value)))
        if i is None:
            return None
        _as_label(w).set_value(labels[i])
        return f"choose {labels[i]!r}"
    if t == "slider":
        p = w.proto
        value = w.value
        if isinstance(value, dt.date | dt.time | dt.datetime):
            return None
        step = p.step or 1
        lo, hi = p.min, p.max
        if isinstance(value, tuple | list):
            a, b = value
            nb = b + step if b + step <= hi else b - step
            w.set_value((a, type(b)(nb)) if nb >= a else (a, b))
            return f"range ({a}, {nb})"
        nv = value + step if value + step <= hi else value - step
        if nv < lo or nv == value:
            return None
        nv = type(value)(round(nv, 10)) if isinstance(value, float) else type(value)(nv)
        w.set_value(nv)
        return f"set {nv}"
    if t == "number_input":
        value = w.value
        if value is None:
            w.set_value(w.min if w.min is not None else 0)
            return "set a value"
        cast = int if w.proto.data_type == w.proto.INT else float
        for nv in (value + w.step, value - w.step):
            if (w.max is None or nv <= w.max) and (w.min is None or nv >= w.min):
                w.set_value(cast(nv))
                return f"set {cast(nv)}"
        return None
    if t in ("text_input", "text_area"):
        w.input((w.value or "") + "1")
        return "type 1"
    if t == "color_picker":
        w.pick("#1f77b4" if w.value.lower() != "#1f77b4" else "#ff7f0e")
        return "pick a colour"
    if t == "date_input":
        value = w.value
        if isinstance(value, dt.date):
            w.set_value(value + dt.timedelta(days=1))
            return "next day"
        return None
    if t == "button_group":
        i = option if option is not None else _other(w.options, _index(w))
        if i is None:
            return None
        _as_label(w).set_value(w.options[i])
        return f"choose {w.options[i]!r}"
    if t == "file_uploader":
        types = [x.lower().lstrip(".") for x in w.proto.type]
        if not types or "png" in types or "image/png" in types:
            w.set_value(("waves.png", small_png(), "image/png"))
            return "upload waves.png"
        # Not an image uploader: a file with an allowed name that is not what it says.
        name = f"notes.{types[0].split('/')[-1]}"
        w.set_value((name, b"not what the name says\n", "application/octet-stream"))
        return f"upload a broken {name}"
    if t == "data_editor":
        return _edit_first_cell(at, w)
    if t == "cell_editor":
        return _edit_first_editor_cell(at, w)
    return None


def _edit_first_editor_cell(at: AppTest, node) -> str | None:
    """One edited cell of convviz's cell editor, as the component sends it (first cell + 1)."""
    args = json.loads(node.proto.json_args)
    key = getattr(node, "key", None) or node.proto.form_id or None
    key = args.get("key") or key
    if not key or args.get("disabled") or not args["exact"] or not args["exact"][0]:
        return None
    try:
        value = float(args["exact"][0][0]) + 1
    except ValueError:
        return None
    at.session_state[key] = {"edited_rows": {"0": {"0": value}}}
    return "edit cell (0, 0)"


def _edit_first_cell(at: AppTest, ed) -> str | None:
    """One edited cell through the editor's session state (AppTest cannot type into it)."""
    if not ed.key or ed.proto.disabled:
        return None
    df = ed.value
    for j, col in enumerate(df.columns):
        v = df.iloc[0, j] if len(df) else None
        if v is not None and np.issubdtype(type(v), np.number):
            at.session_state[ed.key] = {
                "edited_rows": {0: {str(col): float(v) + 1}},
                "added_rows": [],
                "deleted_rows": [],
            }
            return f"edit cell (0, {col})"
    return None


def _widgets(at: AppTest) -> Iterator[tuple[str, object]]:
    """``(kind, widget)`` for every widget, editors included, in page order."""
    for node in at:
        if isinstance(node, Widget):
            yield node.type, node
        elif getattr(node, "type", "") == "dataframe" and not isinstance(node, Block):
            if node.editing_mode != "read_only":
                yield "data_editor", node
        elif getattr(node, "type", "") == "component_instance" and not isinstance(node, Block):
            args = json.loads(node.proto.json_args or "{}")
            if "shown" in args and "exact" in args:  # convviz's cell editor (a grid)
                yield "cell_editor", node


def _ident(kind: str, w) -> str:
    # Versioned keys (the Convolution page's conv_kh_80, conv_kernel_80_0) name one widget.
    return f"{kind}:{re.sub(r'(_[0-9]+)+$', '', w.key) if w.key else w.proto.id}"


@dataclass
class Walk:
    """What one walk over a page did and saw."""

    page: str
    lang: str
    actions: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    unhandled: set[str] = field(default_factory=set)
    untouched: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def record(self, at: AppTest) -> None:
        self.texts.extend(page_texts(at))


#: Choice widgets go through their first options one by one (up to this many), so the
#: controls each option shows (an uploader, the Gabor sliders) are changed too.
CHOICES = {"radio": 6, "selectbox": 4, "button_group": 4}


def walk(
    at: AppTest,
    page: str,
    lang: str,
    *,
    max_actions: int = 80,
    budget_s: float = 50.0,
    skip: Callable[[Widget], bool] = lambda w: w.key == LANG_KEY,
    after: Callable[[AppTest], None] = lambda at: None,
) -> Walk:
    """Change every widget of the page once, re-reading the page after each run.

    Order: the first widget (in page order) not changed yet; when there is none,
    the first choice widget with an option not chosen yet (see :data:`CHOICES`).
    So widgets that an action reveals (a source's own controls, the Train
    page's Pause) are changed right after it, before they can vanish again.
    Disabled widgets and ``skip`` are left alone. ``after(at)`` runs after each
    action. Stops at ``max_actions`` or ``budget_s``: what was left is ``untouched``.
    """
    result = Walk(page, lang)
    t0 = time.monotonic()
    at.run()
    result.record(at)
    result.exceptions += [e.value for e in at.exception]
    touched: set[str] = set()
    chosen: dict[str, set[str]] = {}

    def next_target():
        pending = None
        for kind, w in _widgets(at):
            ident = _ident(kind, w)
            if skip(w) or getattr(w.proto, "disabled", False):
                continue
            if kind not in HANDLED:
                result.unhandled.add(ident)
                continue
            if ident not in touched:
                return kind, w, ident, None
            if pending is None and kind in CHOICES:
                options = list(w.options)[: CHOICES[kind]]
                i = _index(w)
                current = w.options[i] if i is not None else None
                left = [
                    i
                    for i, o in enumerate(options)
                    if o not in chosen.get(ident, ()) and o != current
                ]
                if left:
                    pending = (kind, w, ident, left[0])
        return pending

    while len(result.actions) < max_actions and time.monotonic() - t0 < budget_s:
        target = next_target()
        if target is None:
            break
        kind, w, ident, option = target
        touched.add(ident)
        what = change(at, kind, w, option)
        if what is None:
            continue
        if kind in CHOICES:
            chosen.setdefault(ident, set()).add(w.options[_index(w)])
        result.actions.append(f"{ident}: {what}")
        at.run()
        after(at)
        result.record(at)
        if at.exception:
            result.exceptions += [f"after {result.actions[-1]}: {e.value}" for e in at.exception]
            break
    result.untouched = {
        _ident(kind, w)
        for kind, w in _widgets(at)
        if _ident(kind, w) not in touched
        and not skip(w)
        and not getattr(w.proto, "disabled", False)
    }
    result.seconds = time.monotonic() - t0
    return result


def value_map_args(at: AppTest, key: str) -> dict:
    """The arguments of convviz's value map (:mod:`convviz.ui.widgets.value_map`) with
    this key: what it draws (``text``, ``fill``, ``hover``, ``legend``; ``z`` the values)."""
    for node in at:
        if getattr(node, "type", "") == "component_instance" and not isinstance(node, Block):
            if node.proto.component_name.endswith("value_map") and node.proto.id.endswith(key):
                return json.loads(node.proto.json_args)
    raise AssertionError(f"no value map with key {key!r}")


def value_map_z(at: AppTest, key: str) -> np.ndarray:
    """A value map's values (None, not computed, as NaN), checked against its numbers."""
    args = value_map_args(at, key)
    z = np.array([[np.nan if v is None else v for v in row] for row in args["z"]], float)
    assert len(args["text"]) == z.shape[0] and all(len(r) == z.shape[1] for r in args["text"])
    return z
