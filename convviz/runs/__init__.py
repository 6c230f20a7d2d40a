"""Background training runs for the app: a service built on :mod:`convviz.nn`.

No streamlit and no page knowledge here: a caller creates runs through the
:class:`RunManager`, sends them commands and reads their :class:`Snapshot`\\ s
(numbers, arrays, probabilities, labels and a model copy); what to draw from
them is the caller's business.

* :mod:`convviz.runs.snapshot`: :class:`RunOptions`, :class:`Snapshot`, ``STATES``
* :mod:`convviz.runs.observe`: what a run reads off its model between chunks
* :mod:`convviz.runs.run`: :class:`Run`, a trainer and its worker thread
* :mod:`convviz.runs.manager`: :class:`RunManager` (private runs, a cap, a janitor)

Ownership: a run created with ``owner=<token>`` obeys only commands carrying
that token (others get ``CodedError("train.err.not_owner")``); anyone with its
id may read its snapshots or :meth:`RunManager.copy` it into a run of their own.
"""

from convviz.runs.manager import RunManager, get_manager
from convviz.runs.run import Run
from convviz.runs.snapshot import STATES, RunOptions, Snapshot

__all__ = ["STATES", "Run", "RunManager", "RunOptions", "Snapshot", "get_manager"]
