"""The language picker: chosen from the URL, else the browser, else English; kept in the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _app(**context) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.context.update(context)
    return at


def _picker(at: AppTest):
    (box,) = [s for s in at.sidebar.selectbox if s.key == "lang"]
    return box


def test_english_by_default() -> None:
    at = _app().run()
    assert not at.exception
    box = _picker(at)
    assert box.value == "en" and box.label == "Language"
    assert "lang" not in at.query_params


@pytest.mark.parametrize(("locale", "lang"), [("pt-BR", "pt"), ("pt", "pt"), ("en-GB", "en")])
def test_the_browser_language_is_the_default(locale: str, lang: str) -> None:
    at = _app(locale=locale).run()
    assert not at.exception
    assert _picker(at).value == lang


def test_the_url_wins_over_the_browser() -> None:
    at = _app(locale="en-US")
    at.query_params["lang"] = "pt"
    at.run()
    box = _picker(at)
    assert box.value == "pt" and box.label == "Idioma"
    assert box.options == ["English", "Português (Brasil)"]


def test_an_unknown_language_in_the_url_falls_back_quietly() -> None:
    at = _app(locale="pt-BR")
    at.query_params["lang"] = "<b>xx</b>"
    at.run()
    assert not at.exception and not at.error
    assert _picker(at).value == "pt"


def test_picking_a_language_changes_the_page_and_the_url() -> None:
    at = _app().run()
    _picker(at).select("pt").run()
    assert not at.exception
    assert _picker(at).label == "Idioma"
    assert at.query_params.get("lang") == "pt"
    _picker(at).select("en").run()
    assert _picker(at).label == "Language"
    assert "lang" not in at.query_params
