"""The language of a session: picked in the sidebar, remembered in the URL (``?lang=pt``).

The picker's widget key owns the value. A new session takes it from the URL,
else from the browser's language (``st.context.locale``), else English.
"""

from __future__ import annotations

import streamlit as st

from convviz.errors import CodedError
from convviz.i18n import DEFAULT, LANGUAGES, Translator, parse_lang, translator

KEY = "lang"


def current_lang() -> str:
    """This session's language code; the first call of a session chooses it."""
    ss = st.session_state
    url = parse_lang(st.query_params.get(KEY))
    if KEY not in ss or parse_lang(ss[KEY]) is None:
        ss[KEY] = url or parse_lang(_browser_locale()) or DEFAULT
    elif url is not None and url != ss[KEY]:
        ss[KEY] = url  # a pasted or edited link wins over the session's last choice
    return ss[KEY]


def _browser_locale() -> str | None:
    try:
        return st.context.locale
    except Exception:  # no browser behind this run (bare scripts, old servers)
        return None


def tr() -> Translator:
    """The :class:`~convviz.i18n.Translator` of this session's language."""
    return translator(current_lang())


def _sync_url() -> None:
    lang = st.session_state[KEY]
    if lang == DEFAULT:
        st.query_params.pop(KEY, None)
    else:
        st.query_params[KEY] = lang


def language_picker() -> Translator:
    """The sidebar's language picker; returns the chosen language's translator."""
    t = tr()
    st.sidebar.selectbox(
        t("app.language"),
        list(LANGUAGES),
        format_func=lambda code: t(f"app.language.{code}"),
        key=KEY,
        on_change=_sync_url,
    )
    if st.session_state[KEY] != DEFAULT:
        st.query_params[KEY] = st.session_state[KEY]
        # Streamlit adds its own "Fullscreen" button to plotly's toolbar, with an English
        # tooltip no option or catalogue reaches (plotly's own buttons speak the reader's
        # language: convviz.figures.plot_config); in another language it is not shown.
        st.html(UNTRANSLATABLE_CSS)
    return tr()


UNTRANSLATABLE_CSS = (
    "<style>"  # i18n: not text
    ".modebar-btn[data-title='Fullscreen'],"  # i18n: not text
    ".modebar-btn[data-title='Close fullscreen']{display:none}"  # i18n: not text
    "</style>"  # i18n: not text
)


def error_text(exc: BaseException, t: Translator | None = None) -> str:
    """What a person reads for ``exc``: its catalogue message, or a generic one.

    Only :class:`~convviz.errors.CodedError` messages are shown; any other
    exception text (English, possibly with paths) never reaches the page.
    """
    t = t or tr()
    if isinstance(exc, CodedError) and t.has(exc.code):
        return t(exc.code, **exc.params)
    return t("app.error.invalid")
