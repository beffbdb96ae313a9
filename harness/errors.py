"""The exceptions that mean bad input (a file, a key, a name, a flag) rather than a bug.

Every such exception derives from :class:`UserError`; the command line prints it as one line
without a traceback (set EMCL_BENCH_TRACEBACK=1 to see the traceback anyway). Anything else that
escapes, ValueError included, is a bug in emcl-bench and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input; the message is one line naming the file, key or name and what to do."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DataError(UserError, ValueError):
    """A dataset file (annotations, split list, answer vocabulary) that is missing or malformed."""


class UsageError(UserError, ValueError):
    """Command-line flags that do not go together."""
