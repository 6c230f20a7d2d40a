"""Every word the interface shows: message catalogues in English and Brazilian Portuguese.

The catalogues are gettext ``.po`` files under ``convviz/locale/<locale>/LC_MESSAGES/``,
one *domain* per part of the app (``core``, ``figures``, ``convolution``, ...), compiled
to ``.mo`` with Babel (``python -m convviz.i18n compile``) and read with the standard
library's :mod:`gettext`. Message ids are stable keys (``conv.title``), not English
sentences, so an English wording can change without touching the Portuguese file;
the English catalogue holds the English text.

Placeholders are named, ``{stride}``, and filled by :meth:`Translator.__call__`:
numbers are written the locale's way (pt-BR: ``0,99`` and ``1.234``) by Babel, loaded
only when a number is formatted.

>>> t = translator("pt")
>>> t.num(1234.5, 1), t.num(0.99, 2), t.pct(0.9712, 2)
('1.234,5', '0,99', '97,12%')
>>> translator("en").num(1234.5, 1)
'1,234.5'

Nothing here imports streamlit; :mod:`convviz.ui.i18n` picks the language of a session.
"""

from __future__ import annotations

import datetime
import functools
import gettext
import numbers
from pathlib import Path

__all__ = [
    "DEFAULT",
    "DOMAINS",
    "LANGUAGES",
    "LOCALE_DIR",
    "Translator",
    "parse_lang",
    "translator",
]

#: Language code (as in ``?lang=pt``) -> Babel/gettext locale.
LANGUAGES: dict[str, str] = {"en": "en", "pt": "pt_BR"}
DEFAULT = "en"
LOCALE_DIR = Path(__file__).with_name("locale")


def _domains() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (LOCALE_DIR / "en" / "LC_MESSAGES").glob("*.po")))


DOMAINS: tuple[str, ...] = _domains()


def parse_lang(text: object) -> str | None:
    """A language code from a URL value or a browser locale (``pt-BR`` -> ``pt``), else None.

    >>> parse_lang("pt-BR"), parse_lang("en_US"), parse_lang("PT"), parse_lang("fr")
    ('pt', 'en', 'pt', None)
    """
    if not isinstance(text, str):
        return None
    code = text.strip().replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else None


class Translator:
    """Messages and numbers of one language. ``t("key", name=value)`` -> text.

    Numbers among the parameters are formatted for the locale (ints with
    grouping, floats with up to 3 decimals); pre-format with :meth:`num` or
    :meth:`pct` for another precision. A key missing from this language falls
    back to English, and a key missing from both comes back as itself (the
    catalogue tests make sure neither happens).
    """

    def __init__(self, lang: str) -> None:
        if lang not in LANGUAGES:
            raise ValueError(f"`lang` must be one of {sorted(LANGUAGES)}, got {lang!r}")
        self.lang = lang
        self.locale = LANGUAGES[lang]
        self._gt = _load(self.locale)
        if lang != DEFAULT:
            self._gt.add_fallback(_load(LANGUAGES[DEFAULT]))

    def __repr__(self) -> str:
        return f"Translator({self.lang!r})"

    def __call__(self, key: str, /, **params: object) -> str:
        text = self._gt.gettext(key)
        if not params:
            return text
        return text.format(**{k: self._value(v) for k, v in params.items()})

    def has(self, key: str) -> bool:
        """Whether ``key`` is in the catalogues (this language or English)."""
        return self._gt.gettext(key) != key

    def _value(self, v: object) -> object:
        if isinstance(v, bool) or not isinstance(v, numbers.Number):
            return v
        if isinstance(v, numbers.Integral):
            return self.int(int(v))
        return self.num(float(v))

    # ------------------------------------------------------------------ numbers
    def int(self, n: int) -> str:
        """An integer with the locale's grouping: ``1,234`` / ``1.234``."""
        from babel.numbers import format_decimal

        return format_decimal(int(n), locale=self.locale)

    def num(self, x: float, digits: int | None = None, *, fixed: bool = True) -> str:
        """A number with ``digits`` decimals (``fixed=False``: up to ``digits``).

        ``digits=None`` writes up to 3 decimals. Non-finite values are written
        as ``nan``, ``inf`` and ``−inf``.
        """
        from babel.numbers import format_decimal

        x = float(x)
        if x != x:
            return "nan"
        if x in (float("inf"), float("-inf")):
            return "inf" if x > 0 else "−inf"
        if digits is None:
            digits, fixed = 3, False
        frac = ("0" if fixed else "#") * digits
        pattern = "#,##0" + (f".{frac}" if digits else "")
        return format_decimal(x, format=pattern, locale=self.locale)

    def pct(self, fraction: float, digits: int = 1) -> str:
        """A fraction as a percentage: ``0.9712`` -> ``97.12%`` / ``97,12%``."""
        from babel.numbers import format_percent

        frac = "0" * digits
        pattern = "#,##0" + (f".{frac}" if digits else "") + "%"
        return format_percent(float(fraction), format=pattern, locale=self.locale)

    @property
    def separators(self) -> str:
        """plotly's ``layout.separators`` for this locale: decimal then thousands."""
        return ",." if self.lang == "pt" else ".,"


@functools.cache
def _load(locale: str) -> gettext.GNUTranslations:
    """All domains of one locale, chained (a fresh chain per locale, cached)."""
    chain: gettext.GNUTranslations | None = None
    for domain in DOMAINS:
        t = gettext.translation(domain, LOCALE_DIR, languages=[locale])
        if chain is None:
            chain = t
        else:
            chain.add_fallback(t)
    if chain is None:  # pragma: no cover - the package always ships its catalogues
        raise FileNotFoundError(f"no catalogues under {LOCALE_DIR}")
    return chain


@functools.cache
def translator(lang: str = DEFAULT) -> Translator:
    """The shared :class:`Translator` of ``lang`` (``"en"`` or ``"pt"``)."""
    return Translator(lang)


_EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def compile_catalogues() -> list[Path]:
    """Compile every ``.po`` to its ``.mo`` with Babel; returns the files written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        # read_po stamps "now" into the header: a fixed date makes the same .po
        # compile to the same bytes (no .mo churn in commits).
        catalog.creation_date = catalog.revision_date = _EPOCH
        mo = po.with_suffix(".mo")
        with mo.open("wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        written.append(mo)
    return written


if __name__ == "__main__":  # python -m convviz.i18n compile
    import sys

    if sys.argv[1:] != ["compile"]:
        sys.exit("usage: python -m convviz.i18n compile")
    for path in compile_catalogues():
        print(path.relative_to(LOCALE_DIR.parent))
