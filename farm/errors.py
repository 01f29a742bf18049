"""Errors a user sees: one line that says what is wrong and where."""


class FarmError(Exception):
    """A user-facing error; the CLI prints str(error) on one line and exits non-zero."""
