"""The message catalogues: complete in both languages, compiled, used by the code,
and no user-facing string literal left in the interface's modules."""

from __future__ import annotations

import ast
import io
import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from convviz.i18n import DOMAINS, LANGUAGES, LOCALE_DIR, Translator, parse_lang, translator

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "convviz" / "ui"


def _po(locale: str, domain: str):
    with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{domain}.po").open("rb") as f:
        return read_po(f, locale=locale)


def _entries(locale: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for d in DOMAINS:
        for m in _po(locale, d):
            if m.id:
                assert m.id not in out, f"{m.id!r} is in two domains"
                out[m.id] = m.string
    return out


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def test_every_language_has_every_domain() -> None:
    assert DOMAINS, "no catalogues found"
    for locale in LANGUAGES.values():
        have = sorted(p.stem for p in (LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po"))
        assert have == list(DOMAINS), locale


def test_catalogues_have_the_same_keys_no_empty_entry_same_placeholders() -> None:
    en, pt = _entries("en"), _entries("pt_BR")
    assert sorted(set(en) - set(pt)) == [], "keys missing in Portuguese"
    assert sorted(set(pt) - set(en)) == [], "keys missing in English"
    assert [k for k, v in en.items() if not v.strip()] == []
    assert [k for k, v in pt.items() if not v.strip()] == []
    wrong = {k: (_fields(en[k]), _fields(pt[k])) for k in en if _fields(en[k]) != _fields(pt[k])}
    assert wrong == {}


def test_every_message_formats() -> None:
    """Placeholders are named and every message formats (no stray braces)."""
    for lang in LANGUAGES:
        t = translator(lang)
        for key, text in _entries(LANGUAGES[lang]).items():
            fields = _fields(text)
            assert all(f and f.isidentifier() for f in fields), (key, fields)
            t(key, **dict.fromkeys(fields, 1))


@pytest.mark.parametrize("locale", list(LANGUAGES.values()))
def test_compiled_catalogues_match_their_sources(locale: str) -> None:
    """Each ``.mo`` is the compile of its ``.po`` (run ``python -m convviz.i18n compile``)."""
    for d in DOMAINS:
        po = {m.id: m.string for m in _po(locale, d) if m.id}
        with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{d}.mo").open("rb") as f:
            mo = {m.id: m.string for m in read_mo(f) if m.id}
        assert mo == po, f"{locale}/{d}.mo is stale: python -m convviz.i18n compile"


_KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


def test_keys_used_in_code_exist() -> None:
    """Babel's extractor finds every literal ``t("key")``: each is in the catalogue."""
    en = _entries("en")
    used = set()
    for filename, _lineno, key, _c, _ctx in extract_from_dir(
        str(ROOT / "convviz"),
        method_map=[("**.py", "python")],
        keywords={"t": None, "_": None},
    ):
        # a whole literal key; t(kernel.msg + ".label") yields only the suffix: not a key
        if isinstance(key, str) and _KEY.fullmatch(key):
            used.add((filename, key))
    assert used, "the extractor found no keys"
    missing = sorted((f, k) for f, k in used if k not in en)
    assert missing == []


def test_numbers_follow_the_locale() -> None:
    pt, en = translator("pt"), translator("en")
    assert (pt.int(1234567), en.int(1234567)) == ("1.234.567", "1,234,567")
    assert (pt.num(0.99, 2), en.num(0.99, 2)) == ("0,99", "0.99")
    assert (pt.pct(0.9712, 2), en.pct(0.9712, 2)) == ("97,12%", "97.12%")
    assert pt.num(2.5, 3, fixed=False) == "2,5"
    assert pt.num(float("nan")) == "nan" and pt.num(float("-inf")) == "−inf"
    assert pt("app.speed.slow", seconds=0.5) == "lenta (0,5 s)"
    assert en("app.speed.slow", seconds=0.5) == "slow (0.5 s)"


def test_language_codes() -> None:
    assert parse_lang("pt-BR") == "pt" and parse_lang("en") == "en"
    assert parse_lang("de") is None and parse_lang("") is None and parse_lang(3) is None
    with pytest.raises(ValueError, match="lang"):
        Translator("fr")


def test_a_missing_portuguese_entry_falls_back_to_english() -> None:
    t = translator("pt")
    assert t("nav.about") == "Sobre"
    assert t("no.such.key") == "no.such.key" and not t.has("no.such.key")


# ------------------------------------------------------------------ no literals in the UI
#: Keyword arguments that never hold words for people.
_NOT_TEXT_KWARGS = {
    "key", "type", "icon", "mime", "file_name", "language", "width", "height",
    "label_visibility", "format", "url_path", "selection_mode", "on_select", "on_click",
    "anchor", "layout", "page_icon", "use_container_width", "args", "kwargs",
}  # fmt: skip
_WORDS = re.compile(r"[A-Za-zÀ-ÿ]{2,}")


def _is_text(s: str) -> bool:
    """Looks like words for a person: a sentence, or a Capitalised word."""
    s = s.strip()
    if not _WORDS.search(s) or s.startswith(":material/"):
        return False
    if s.isidentifier() and (s.isupper() or "_" in s):  # names: STATE_KEYS, conv_kernel
        return False
    return " " in s or s[:1].isupper()


def _literals(tree: ast.AST):
    """(line, text) of string literals that may reach a person, in a module's AST."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        # docstrings
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
        # logging, raising (internal English for Python users) and not-text keywords
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = (
                f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            )
            if owner in ("_log", "log", "logging", "logger", "warnings"):
                skip.update(id(n) for n in ast.walk(node))
            if name in ("getLogger", "get", "setdefault", "pop", "startswith", "endswith"):
                skip.update(id(n) for n in ast.walk(node))
            for kw in node.keywords:
                if kw.arg in _NOT_TEXT_KWARGS:
                    skip.update(id(n) for n in ast.walk(kw.value))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Raise | ast.Assert):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Subscript):  # session_state["..."], dict lookups
            skip.update(id(n) for n in ast.walk(node.slice))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _is_text(node.value):
                yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if _is_text(text):
                yield node.lineno, text
            skip.update(id(v) for v in node.values)


UI_MODULES = [*sorted(p for p in UI.rglob("*.py") if p.name != "__init__.py"), ROOT / "app.py"]


@pytest.mark.parametrize("path", UI_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_user_facing_literals_in_the_interface(path: Path) -> None:
    """Every word the interface shows comes from the catalogue (an AST scan).

    A line may opt out with ``# i18n: not text`` (a CSS rule, a format spec).
    """
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = [
        f"{path.name}:{line}: {text!r}"
        for line, text in _literals(ast.parse(source))
        if "i18n: not text" not in lines[line - 1]
    ]
    assert found == []


def test_the_scan_finds_literals() -> None:
    """The scan itself: it flags labels and sentences and passes keys and internals."""
    tree = ast.parse(
        'st.button("Start", key="go")\nst.caption(f"{n} steps done")\nx = t("conv.title")\n'
        'ss["conv_kernel"] = 1\n_log.info("Nothing to see")\nraise ValueError("Bad value")\n'
    )
    assert [text for _, text in _literals(tree)] == ["Start", " steps done"]


def test_catalogues_are_utf8_po() -> None:
    for po in LOCALE_DIR.glob("*/LC_MESSAGES/*.po"):
        po.read_bytes().decode("utf-8")
        read_po(io.BytesIO(po.read_bytes()))
