"""AppTest helpers for the Convolution and Pooling pages and their widgets."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator

from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from convviz.i18n import LOCALE_DIR

DOMAINS = ("convolution", "pooling", "app")  # the catalogues these pages' words come from


def edits(cells: dict[tuple[int, int], object]) -> dict:
    """``st.data_editor`` widget state for ``{(row, col): value}``."""
    rows: dict[int, dict[str, object]] = {}
    for (r, c), v in cells.items():
        rows.setdefault(r, {})[str(c)] = v
    return {"edited_rows": rows, "added_rows": [], "deleted_rows": []}


def edit_grid(at: AppTest, grid: str, cells: dict, channel: int = 0) -> AppTest:
    """Type ``cells`` into the Convolution page's ``grid`` ("kernel" or "numbers")."""
    state = getattr(at.session_state["conv"], grid)
    at.session_state[f"conv_{grid}_{state.version}_{channel}"] = edits(cells)
    return at


_clicks = iter(range(1, 1 << 30))


def click(at: AppTest, chart: str, row: float, col: float) -> AppTest:
    """A click on cell ``(row, col)`` of the clickable map ``chart``, as the browser sends
    it: a value map's value is the cell and the click's number (``seq``); a plotly
    chart's selection state holds the point (x is the column, y the row)."""
    if _is_value_map(at, chart):
        at.session_state[chart] = {"row": int(row), "col": int(col), "seq": next(_clicks)}
    else:
        at.session_state[chart] = {"selection": {"points": [{"x": col, "y": row}]}}
    return at


def _is_value_map(at: AppTest, key: str) -> bool:
    for node in at:
        if getattr(node, "type", "") == "component_instance" and hasattr(node, "proto"):
            name = getattr(node.proto, "component_name", "")
            if name.endswith("value_map") and node.proto.id.endswith(key):
                return True
    return False


def kernel_key(at: AppTest, name: str) -> str:
    """The key of a kernel widget (``kh``, ``kw``, ``preset``, ``per_channel``) now."""
    return f"conv_{name}_{at.session_state['conv'].kernel.version}"


def numbers_key(at: AppTest, name: str) -> str:
    """The key of a Numbers-size widget (``num_rows``, ``num_cols``) now."""
    return f"conv_{name}_{at.session_state['conv'].numbers.version}"


def _node_texts(node) -> Iterator[str]:
    for attr in ("label", "body", "help", "placeholder"):
        v = getattr(node, attr, None)
        if isinstance(v, str) and v:
            yield v
    if type(node).__name__ in ("Code", "Metric", "Caption", "Markdown", "Title", "Subheader"):
        v = getattr(node, "value", None)
        if isinstance(v, str):
            yield v
    options = getattr(node, "options", None)
    if isinstance(options, list):
        yield from (o for o in options if isinstance(o, str))
    kids = getattr(node, "children", None)
    if kids:
        for k in kids.values() if isinstance(kids, dict) else kids:
            yield from _node_texts(k)


def visible_texts(at: AppTest) -> list[str]:
    """Every word-bearing string the run shows: element texts, labels, help texts,
    options, and the titles of its plotly charts."""
    texts = list(_node_texts(at._tree))
    for c in at.get("plotly_chart"):
        title = (json.loads(c.proto.spec).get("layout", {}).get("title") or {}).get("text")
        if title:
            texts.append(title)
    return texts


def _catalogue(locale: str) -> dict[str, str]:
    out = {}
    for d in DOMAINS:
        with (LOCALE_DIR / locale / "LC_MESSAGES" / f"{d}.po").open("rb") as f:
            out |= {m.id: m.string for m in read_po(f) if m.id}
    return out


def english_left(at: AppTest) -> list[str]:
    """Texts of a Portuguese run that hold English from these pages' catalogues:
    a whole English message, or a fragment of three words or more of one."""
    en, pt = _catalogue("en"), _catalogue("pt_BR")
    whole, fragments = set(), set()
    for key, text in en.items():
        if text == pt[key]:
            continue  # the same in both (ReLU, R, {terms} = {total})
        parts = [p for p, *_ in string.Formatter().parse(text)]
        if len(parts) == 1:
            whole.add(text)
        fragments |= {p.strip() for p in parts if len(re.findall(r"[A-Za-z]{2,}", p)) >= 3}
    whole -= set(pt.values())  # "Kernel" is Portuguese too (conv.step.kernel)
    return [s for s in visible_texts(at) if s in whole or any(f in s for f in fragments)]
