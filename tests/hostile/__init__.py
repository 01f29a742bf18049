"""TEST CODE, not part of tflite-farm: a lying device's replies, crafted by hypothesis, and the board-side "python"
that replays them, one per job.

Each fault is a reply an agent could send (its bytes, and how its process ends) with the start of the reason its job
must fail with: the reason names the field or the fault.

    from hostile import Replayer, faults
    replayer = Replayer(folder, agent_python=sys.executable)   # folder/python answers jobs, probes with the real agent
    replayer.load(list_of_faults)                              # the i-th job the board runs gets fault i
    host.device(name="liar", python=str(replayer.script))
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import strategies as st

from farm.errors import one_line


class Fault:
    """A plain class, not a dataclass: hypothesis prints every fault of a failing example, and this repr is short."""

    def __init__(self, kind: str, stdout: bytes, ends: str, reason: str, header: bytes = b""):
        self.kind = kind  # which family of fault, for a failing test's message and the benchmark's table
        self.stdout = stdout
        self.ends = ends  # how the job's process ends: an exit code ("0", "3") or a signal ("TERM")
        self.reason = reason  # what the job's failure reason starts with
        self.header = header  # the warm agent's answer header, when it is the lie (else the true one is sent)

    def __repr__(self) -> str:
        return f"Fault({self.kind!r}, {len(self.stdout)} bytes {self.stdout[:60]!r}, ends {self.ends}, {self.reason!r})"


def valid_reply(samples: int = 3) -> dict:
    """A reply the farm would store: the shape agents/litert_agent.py prints."""
    return {"ok": True, "runtime": {"name": "ai_edge_litert", "version": "2.3.0"}, "init_ms": 1.5, "first_ms": 0.4,
            "samples_us": [100.0 + i for i in range(samples)], "delegate": {"name": "none", "outcome": "cpu"},
            "memory": {"peak_mb": 40.0}, "host": {"machine": "x86_64"}, "warnings": []}


def _json(value) -> bytes:
    return json.dumps(value).encode()


REQUIRED = ["ok", "runtime", "delegate", "init_ms", "first_ms", "samples_us"]
# JSON values that are not numbers (an integer is a number; a boolean is not, in strict mode).
NOT_A_NUMBER = (st.text(max_size=12) | st.booleans() | st.none() | st.lists(st.integers(), max_size=3)
                | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
OUT_OF_RANGE = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False) | st.floats(min_value=1.01e12, allow_infinity=False)
NOT_POSITIVE = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False) | st.sampled_from([0, -1])
PLAIN_SIGNALS = ["KILL", "TERM", "HUP", "USR1", "USR2", "ALRM"]  # none of them dumps core


@st.composite
def missing_field(draw) -> Fault:
    field = draw(st.sampled_from(REQUIRED))
    reply = valid_reply()
    del reply[field]
    return Fault("missing field", _json(reply), "0", f"agent reply: {field}: missing")


@st.composite
def wrong_number(draw) -> Fault:
    field = draw(st.sampled_from(["init_ms", "first_ms"]))
    reply = valid_reply()
    reply[field] = draw(NOT_A_NUMBER | OUT_OF_RANGE)
    return Fault("wrong number", _json(reply), "0", f"agent reply: {field}: not a number in range")


@st.composite
def bad_sample(draw) -> Fault:
    samples = draw(st.lists(st.floats(min_value=0.5, max_value=1e6), min_size=1, max_size=40))
    index = draw(st.integers(0, len(samples) - 1))
    samples[index] = draw(NOT_A_NUMBER | NOT_POSITIVE | OUT_OF_RANGE)
    reply = valid_reply()
    reply["samples_us"] = samples
    return Fault("bad sample", _json(reply), "0", f"agent reply: samples_us[{index}]: not a ")


@st.composite
def non_finite(draw) -> Fault:
    field = draw(st.sampled_from(["init_ms", "first_ms", "samples_us"]))
    constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
    reply = valid_reply()
    reply[field] = [12345.0] if field == "samples_us" else 12345.0
    text = json.dumps(reply).replace("12345.0", constant)
    return Fault("NaN or Infinity", text.encode(), "0", f"agent reply: not JSON ({constant} is not a number")


@st.composite
def truncated(draw) -> Fault:
    text = _json(valid_reply(draw(st.integers(1, 30))))
    return Fault("truncated JSON", text[:draw(st.integers(1, len(text) - 1))], "0", "agent reply: not JSON")


@st.composite
def not_utf8(draw) -> Fault:
    text = _json(valid_reply())
    at = draw(st.integers(0, len(text)))
    bad = draw(st.sampled_from([b"\xff", b"\xfe", b"\xc3(", b"\xed\xa0\x80", b"\x80"]))
    return Fault("not UTF-8", text[:at] + bad + text[at:], "0", "agent output is not UTF-8")


def deep(limit: int):
    @st.composite
    def strategy(draw) -> Fault:
        opening, closing = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        depth = draw(st.integers(5_000, limit // (len(opening) + len(closing))))  # within the reply cap
        end = b"1" if opening != b"[" else b""
        return Fault("deep nesting", opening * depth + end + closing * depth, "0", "agent reply: nested too deeply")
    return strategy()


def oversize(limit: int):
    @st.composite
    def strategy(draw) -> Fault:
        size = draw(st.integers(limit + 1, 4 * limit))
        filler = draw(st.sampled_from([b" ", b"[", b"0", b"\n"]))
        return Fault("oversize", filler * size, "0", f"agent reply: more than {limit / (1 << 20):g} MB")
    return strategy()


@st.composite
def not_an_object(draw) -> Fault:
    value = draw(st.integers() | st.text(max_size=30) | st.lists(st.integers(), max_size=4) | st.booleans())
    return Fault("not an object", _json(value), "0", f"agent reply: expected an object, got {type(value).__name__}")


@st.composite
def too_long(draw) -> Fault:
    where = draw(st.sampled_from([("runtime", "name"), ("runtime", "version"), ("delegate", "name")]))
    reply = valid_reply()
    reply[where[0]][where[1]] = draw(st.text(min_size=1, max_size=1)) * draw(st.integers(201, 5_000))
    return Fault("too long", _json(reply), "0", f"agent reply: {where[0]}.{where[1]}: too long")


@st.composite
def bad_outcome(draw) -> Fault:
    reply = valid_reply()
    reply["delegate"]["outcome"] = draw(st.text(max_size=20).filter(
        lambda text: text not in ("applied", "partial", "not_applied", "failed", "cpu", "unknown")))
    return Fault("unknown delegate outcome", _json(reply), "0", "agent reply: delegate.outcome: ")


@st.composite
def huge_facts(draw) -> Fault:
    field = draw(st.sampled_from(["host", "env_before", "env_after"]))
    reply = valid_reply()
    reply[field] = {"notes": "x" * draw(st.integers(64 << 10, 150 << 10))}
    return Fault("huge facts", _json(reply), "0", f"agent reply: {field}: more than 64 KB")


@st.composite
def bad_prediction(draw) -> Fault:
    predictions = draw(st.lists(st.integers(0, 9), min_size=1, max_size=50))
    index = draw(st.integers(0, len(predictions) - 1))
    predictions[index] = draw(st.integers(max_value=-1) | st.floats(allow_nan=False, allow_infinity=False)
                              | st.text(max_size=5) | st.none())
    reply = valid_reply()
    reply["eval"] = {"predictions": predictions}
    return Fault("bad prediction", _json(reply), "0", f"agent reply: eval.predictions[{index}]: ")


@st.composite
def unclean_exit(draw) -> Fault:
    reply = _json(valid_reply()) + b"\n"
    if draw(st.booleans()):
        code = draw(st.integers(1, 125))
        return Fault("unclean exit", reply, str(code), f"agent exited with code {code} after reporting a result")
    name = draw(st.sampled_from(PLAIN_SIGNALS))
    return Fault("killed after replying", reply, name, f"agent killed by SIG{name} after reporting a result")


@st.composite
def agent_error(draw) -> Fault:
    # The agent may say the run failed, in any words: they become the reason as plain text, markup and all.
    words = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
    kind, message = draw(words.filter(lambda text: text.strip())), draw(words)
    reply = {"ok": False, "error": {"type": kind, "message": message}}
    return Fault("agent error", _json(reply), "1", one_line(f"{kind}: {message}"))


@st.composite
def bad_header(draw) -> Fault:
    """The warm agent's answer header itself lies: not JSON, not its fields, or lengths past their caps."""
    reply = _json(valid_reply())
    fields = {"exit": 0, "out": len(reply), "err": 0, "why": None}
    lie = draw(st.sampled_from(["garbage", "fields", "negative", "stderr", "why"]))
    if lie == "garbage":
        header = draw(st.binary(min_size=127, max_size=127).filter(lambda data: not data.strip().startswith(b"{")))
        reason = "agent reply: not an answer header"
    elif lie == "fields":
        fields = {draw(st.text(max_size=5)): draw(st.integers() | st.none())}
        reason = "agent reply: not an answer header"
    else:
        field, value = {"negative": ("out", -len(reply)), "stderr": ("err", (64 << 10) + draw(st.integers(1, 10 ** 9))),
                        "why": ("why", draw(st.text(min_size=1, max_size=10).filter(
                            lambda why: why not in ("timeout", "too_large"))))}[lie]
        fields[field] = value
        reason = "agent reply: header: "
    if lie != "garbage":
        header = json.dumps(fields).encode()
    return Fault("bad answer header", reply, "0", reason, header.ljust(127)[:127] + b"\n")


def faults(limit: int):
    """Any one crafted reply, for a sweep whose max_reply_bytes is `limit`."""
    return st.one_of(missing_field(), wrong_number(), bad_sample(), non_finite(), truncated(), not_utf8(), deep(limit),
                     oversize(limit), not_an_object(), too_long(), bad_outcome(), huge_facts(), bad_prediction(),
                     unclean_exit(), agent_error(), bad_header())


REPLAYER = """#!{python}
# TEST CODE: a lying board's "python", run as `python agent --serve`: it answers a probe with the real agent's, and
# each job with the next crafted reply, framed as a warm agent frames answers (or with the fault's own header).
import json, signal, subprocess, sys
from pathlib import Path

agent, folder, out = sys.argv[1], Path({folder!r}), sys.stdout.buffer
for line in sys.stdin.buffer:
    if json.loads(line).get("probe"):
        reply, ends, header = subprocess.run([{agent_python!r}, agent, "--probe"], capture_output=True).stdout, "0", b""
    else:
        n = int((folder / "next").read_text())
        (folder / "next").write_text(f"{{n + 1}}\\n")
        reply, ends = (folder / f"reply-{{n}}").read_bytes(), (folder / f"ends-{{n}}").read_text().strip()
        header = (folder / f"header-{{n}}").read_bytes()
    code = int(ends) if ends.isdigit() else -signal.Signals["SIG" + ends]
    header = header or json.dumps({{"exit": code, "out": len(reply), "err": 0, "why": None}}).encode().ljust(127) + b"\\n"
    out.write(header + reply)
    out.flush()
"""


class Replayer:
    """A folder holding the crafted replies and the script that answers each job with the next one."""

    def __init__(self, folder: Path, agent_python: str):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.script = folder / "python"
        self.script.write_text(REPLAYER.format(python=sys.executable, agent_python=agent_python, folder=str(folder)))
        self.script.chmod(0o755)

    def load(self, replies: list[Fault]) -> None:
        for index, fault in enumerate(replies):
            (self.folder / f"reply-{index}").write_bytes(fault.stdout)
            (self.folder / f"ends-{index}").write_text(fault.ends + "\n")
            (self.folder / f"header-{index}").write_bytes(fault.header)
        (self.folder / "next").write_text("0\n")

    def answered(self) -> int:
        """How many jobs the script has answered since the last load."""
        return int((self.folder / "next").read_text())

