"""Smoke test: on every page and in both languages, every button is pressed and every
widget changed once, and no run raises; in Portuguese no English is left.

"English left" is checked two ways, each failure listing the strings per page:

- an English catalogue message (one that differs from its Portuguese) shown in
  Portuguese mode: a key used with the wrong language, or a literal copy of it;
- a sentence shown the same in both languages (a literal that never reached the
  catalogue: the interface's modules, figure builders, Streamlit defaults).

Messages of fewer than two words or eight characters, names written the same in
both catalogues ("Leaky ReLU"), code, plain text (file names) and formulas are
not counted.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from convviz.runs import get_manager
from tests.support.apptest import (
    LANGUAGE_NEUTRAL,
    PAGES,
    Walk,
    english_left,
    english_only_messages,
    is_prose,
    page_app,
    shared_messages,
    walk,
)

LANGS = ("en", "pt")
_walks: dict[tuple[str, str], Walk] = {}


@pytest.fixture(scope="module")
def walks():
    """Each page walked once per language (both checks below read the same walk).

    Training runs the Train page starts are discarded here, and their threads
    must end: the test leaves nothing training behind.
    """
    before = set(get_manager().run_ids)

    def get(page: str, lang: str) -> Walk:
        if (page, lang) not in _walks:
            _walks[page, lang] = walk(page_app(page, lang), page, lang)
        return _walks[page, lang]

    yield get
    started = set(get_manager().run_ids) - before
    for rid in started:
        get_manager().discard(rid)
    names = {f"convviz-run-{rid}" for rid in started}
    deadline, alive = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        alive = [t.name for t in threading.enumerate() if t.name in names]
        if not alive:
            break
        time.sleep(0.05)
    assert not alive, f"training threads still running after the smoke test: {alive}"
    _walks.clear()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", list(PAGES))
def test_every_widget_once_without_an_exception(walks, page: str, lang: str) -> None:
    w = walks(page, lang)
    assert w.exceptions == [], f"{page} ({lang}): {w.exceptions}\nactions: {w.actions}"
    assert w.unhandled == set(), f"{page}: widget types the walk does not know: {w.unhandled}"
    assert w.untouched == set(), (
        f"{page} ({lang}): the walk stopped ({len(w.actions)} actions, {w.seconds:.0f} s) "
        f"before changing {sorted(w.untouched)}"
    )
    if page != "about":  # the About page has no widget but the language picker
        assert w.actions, f"{page}: the walk found nothing to change"


def _shape(text: str) -> str:
    """One line per kind of string: numbers and hover labels' trace names folded."""
    return re.sub(r"\d+", "0", re.sub(r"<extra>.+?</extra>", "<extra>…</extra>", text))


def _report(page: str, found: dict[str, list[str]]) -> str:
    shapes: dict[str, tuple[str, list[str], int]] = {}
    for text, why in sorted(found.items()):
        first, reasons, n = shapes.get(_shape(text), (text, why, 0))
        shapes[_shape(text)] = (first, reasons, n + 1)
    lines = [f"page {page!r} shows English in Portuguese mode ({len(shapes)} strings):"]
    for first, reasons, n in shapes.values():
        more = f" (and {n - 1} like it)" if n > 1 else ""
        lines.append(f"  {first[:160]!r}{more}  <- {', '.join(reasons)}")
    return "\n".join(lines)


@pytest.mark.parametrize("page", list(PAGES))
def test_no_english_catalogue_message_in_portuguese(walks, page: str) -> None:
    found = english_left(walks(page, "pt").texts, english_only_messages())
    assert not found, _report(page, found)


@pytest.mark.parametrize("page", list(PAGES))
def test_no_sentence_left_the_same_in_both_languages(walks, page: str) -> None:
    shared = shared_messages()

    def prose(w: Walk) -> dict[str, str]:
        return {
            " ".join(text.split()): kind
            for kind, text in w.texts
            if kind not in LANGUAGE_NEUTRAL and not text.startswith(("http://", "https://"))
        }

    en, pt = prose(walks(page, "en")), prose(walks(page, "pt"))
    found = {
        text: [f"{kind}, same in English"]
        for text, kind in pt.items()
        if text in en and is_prose(text) and text not in shared
    }
    assert not found, _report(page, found)
