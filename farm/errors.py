"""Errors a user sees: one line that says what is wrong and where."""
from __future__ import annotations

import signal

MAX_REASON = 400


class FarmError(Exception):
    """A user-facing error; the CLI prints str(error) on one line and exits non-zero."""


def one_line(error: BaseException | str, limit: int = MAX_REASON) -> str:
    """An error or a text as one line of at most `limit` characters (an exception without text: its type's name). A
    NUL, which a device may send and PostgreSQL's text refuses, becomes U+FFFD."""
    text = " ".join(str(error).replace("\x00", "\ufffd").split()) or (type(error).__name__ if isinstance(error, BaseException) else "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def last_line(text: str | None) -> str:
    """The last non-empty line of a tool's output, as one line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else ""


def exit_reason(code: int | None) -> str:
    """How a process ended, in words: its exit code, or the signal that killed it."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code > 128 and code - 128 in {s.value for s in signal.Signals}:
        return f"exited with code {code} ({signal.Signals(code - 128).name}?)"
    return f"exited with code {code}"
