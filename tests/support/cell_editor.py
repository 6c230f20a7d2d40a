"""Helpers for the cell editor (convviz.ui.widgets.cell_editor): AppTest and Chromium."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

IFRAME = "iframe[title='convviz.ui.widgets.cell_editor.cell_editor']"


def editor_args(at: AppTest) -> list[dict]:
    """The arguments every cell editor on the page was drawn with, in page order."""
    out = []
    for node in at:
        if getattr(node, "type", "") == "component_instance":
            args = json.loads(node.proto.json_args)
            if "shown" in args and "exact" in args:
                out.append(args)
    return out


def editor_frame(page, index: int = 0):
    """The ``index``-th cell editor's frame (Playwright ``FrameLocator``)."""
    return page.frame_locator(IFRAME).nth(index)


def editor_cell(page, row: int, col: int, index: int = 0):
    """One cell's ``<input>`` (rows and columns from 0)."""
    return editor_frame(page, index).locator(f"input[data-r='{row}'][data-c='{col}']")


def type_into_cell(page, row: int, col: int, text: str, index: int = 0, key: str = "Enter") -> None:
    """Click a cell, replace its text and commit with ``key`` (sent at once)."""
    cell = editor_cell(page, row, col, index)
    cell.click()
    cell.fill(text)
    cell.press(key)


def open_kernel_cell_editor(page, value: str, attempts: int = 10) -> None:
    """Type ``value`` into the first grid's bottom-right cell, not committed yet.

    A drop-in for ``tests.support.browser.open_kernel_cell_editor`` (written for
    ``st.data_editor``'s canvas): the caller's ``page.keyboard.press("Enter")``
    commits it, and the edit leaves at once.
    """
    del attempts  # the cells are plain inputs: no retries needed
    cell = editor_frame(page).locator("input").last
    cell.click()
    cell.fill(value)
