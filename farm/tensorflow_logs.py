"""TensorFlow, kept quiet: imported only when a conversion needs it, its native log noise hidden, its converter
errors cleaned into one line."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from importlib import metadata

from farm.errors import FarmError, one_line

log = logging.getLogger(__name__)


_TF_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos",
             "tf-nightly", "tf-nightly-cpu")


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def tf_version() -> str | None:
    """TensorFlow's version from package metadata: answering from the cache must not import it."""
    for dist in _TF_DISTS:
        v = dist_version(dist)
        if v:
            return v
    return None


def import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with quiet_native_logs():
            import tensorflow as tf
    except ImportError as e:
        raise FarmError(f"converting models needs TensorFlow (pip install 'tflite-farm[convert]'): "
                        f"{one_line(e)}") from None
    return tf


# TensorFlow's C++ start-up and converter chatter (absl/glog INFO and WARNING lines, CPU
# feature notices), which TF_CPP_MIN_LOG_LEVEL can't silence because most of it is written
# before absl is initialised. Anything else written to stderr meanwhile is passed through.
_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d\d"
    r"|To enable the following instructions:"
    r"|fully_quantize: \d"
    r"|INFO: Created TensorFlow Lite"
    r"|WARNING:absl:)"
)


@contextlib.contextmanager
def quiet_native_logs():
    """Hide TensorFlow's native log noise on fd 2 (the CLI promises one-line errors)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = [ln for ln in text.splitlines() if ln.strip() and not _NATIVE_NOISE.match(ln)]
            if kept:
                os.write(2, ("\n".join(kept) + "\n").encode())
            if text:
                log.debug("TensorFlow said:\n%s", text)


def _strip_loc(msg: str) -> str:
    """Drop a leading MLIR ``loc(...)`` (balanced parentheses) and what precedes 'error:'."""
    msg = msg.strip()
    if msg.startswith("loc("):
        depth = 0
        for i, ch in enumerate(msg):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    msg = msg[i + 1 :].lstrip(": ").strip()
                    break
    return msg


def converter_reason(e: BaseException) -> str:
    """One line from a TFLite converter error: its first MLIR error, plus its error code."""
    text = str(e)
    errors = []
    for line in text.splitlines():
        if "error:" in line:
            msg = _strip_loc(line.split("error:", 1)[1])
            if msg:
                errors.append(msg)
    if not errors:
        return one_line(e)
    reason = errors[0]
    select = re.search(r"TF Select ops: ([^\n]+)", text)
    if select and "Select" not in reason:
        reason += f" (needs TF Select ops: {select.group(1).strip()})"
    code = re.search(r"Error code: (\w+)", text)
    if code:
        reason += f" [{code.group(1)}]"
    return one_line(reason)
