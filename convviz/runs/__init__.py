"""Background training runs for the app: a service built on :mod:`convviz.nn`.

No streamlit and no page knowledge here: the page reads :class:`Snapshot`s and
sends commands to a :class:`Run`.
"""

from convviz.runs.manager import STATES, Run, RunManager, RunOptions, Snapshot, get_manager

__all__ = ["STATES", "Run", "RunManager", "RunOptions", "Snapshot", "get_manager"]
