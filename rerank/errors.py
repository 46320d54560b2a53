"""Exception types for bad input (kept import-light: the CLI imports this before anything heavy).

:class:`InputError` (a ``ValueError``) and :class:`InputTypeError` (a ``TypeError`` *and* an
``InputError``) are what every check in :mod:`rerank.params` and :mod:`rerank.schemas` raise; their message names
the parameter, column, user or item at fault. The ``rerank`` CLI reports them in one line with
exit code 2 and no traceback; any other exception is treated as a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input data or parameter; the message names the culprit. CLI: one line, exit 2."""


class InputTypeError(InputError, TypeError):
    """Input of the wrong type (e.g. strings in ``score``, a float ``k``)."""
