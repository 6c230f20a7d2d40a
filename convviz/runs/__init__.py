"""Background training runs for the app: a service built on :mod:`convviz.nn`.

No streamlit and no page knowledge here: a caller creates runs through the
:class:`RunManager`, sends them commands and reads their :class:`Snapshot`\\ s
(numbers, arrays, probabilities, labels and a model copy); what to draw from
them is the caller's business.

* :mod:`convviz.runs.snapshot`: :class:`RunOptions`, :class:`Snapshot`, ``STATES``
* :mod:`convviz.runs.observe`: what a run reads off its model between chunks
* :mod:`convviz.runs.run`: :class:`Run`, a trainer and its worker thread
* :mod:`convviz.runs.manager`: :class:`RunManager` (private runs, a cap, a janitor,
  restores from checkpoints)
* :mod:`convviz.runs.store`: the runs directory, one atomic ``.npz`` checkpoint per run
* :mod:`convviz.runs.resume`: a trainer's and a timeline's state as JSON and arrays

Ownership: a run created with ``owner=<token>`` obeys only commands carrying
that token (others get ``CodedError("train.err.not_owner")``); anyone with its
id may read its snapshots or :meth:`RunManager.copy` it into a run of their own.
Checkpoints keep the token's SHA-256, never the token, so after a restart the
owner's cookie still proves ownership.

Faults are catalogue codes (the ``runs`` domain), never exception text or paths:
``Snapshot.fault`` (``runs.fail.*``: why a run failed), ``Snapshot.checkpoint_error``
(``runs.err.disk_full``...: the run trains on), :meth:`RunManager.problem`
(``runs.err.checkpoint_*``: why a checkpoint was refused).
"""

from convviz.runs.manager import RunManager, get_manager
from convviz.runs.run import Run
from convviz.runs.snapshot import STATES, RunOptions, Snapshot

__all__ = ["STATES", "Run", "RunManager", "RunOptions", "Snapshot", "get_manager"]
