"""Errors that a person may see: a catalogue code, named parameters and an English message.

The core raises :class:`CodedError` (a ``ValueError``) so Python users get a
readable English message from ``str(exc)``, and the pages show the same
message in the reader's language from ``exc.code`` and ``exc.params``:

>>> err = CodedError("err.must_be_positive", name="stride", value=0)
>>> str(err)
'`stride` must be >= 1, got 0'
>>> isinstance(err, ValueError), err.code, err.params
(True, 'err.must_be_positive', {'name': 'stride', 'value': 0})

Codes are keys of the ``core`` (or another domain's) catalogue, ``err.*``.
"""

from __future__ import annotations

from convviz.i18n import translator

__all__ = ["CodedError"]


class CodedError(ValueError):
    """A ``ValueError`` whose message comes from the catalogue entry ``code``."""

    def __init__(self, code: str, /, **params: object) -> None:
        self.code = code
        self.params = params
        super().__init__(translator("en")(code, **params))

    def __reduce__(self):  # picklable across processes, like a plain ValueError
        return (_rebuild, (type(self), self.code, self.params))


def _rebuild(cls, code, params):
    return cls(code, **params)
