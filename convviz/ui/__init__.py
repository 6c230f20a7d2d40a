"""The Streamlit front end: one module per page plus shared widgets.

This is the only package (with ``app.py``) that imports streamlit. Pages are
thin: read widgets, call :mod:`convviz`, render with :mod:`convviz.figures`.
Pure state logic lives in :mod:`convviz.ui.params` so it is unit-tested.
"""
