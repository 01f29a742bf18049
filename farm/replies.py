"""What a device may send back: the schemas an agent's reply and a probe's facts are checked against before anything
is stored, with types, ranges and sizes. A device is not trusted: a reply that breaks them fails its job, with the
field named (`agent reply: samples_us[3]: not a positive number`), and never the sweep.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from farm.results import JobFailed

MAX_REPLY_BYTES = 64 << 20  # a reply's bytes, unless a sweep says otherwise (max_reply_bytes)
MAX_SAMPLES = 1_000_000  # latencies or predictions in one reply
MAX_OUTPUT_VALUES = 1 << 20  # eval output values in one reply, all samples together (the agent's own limit)
MAX_PROVIDERS = 64  # execution providers an onnxruntime build lists
MAX_FACTS_BYTES = 64 << 10  # a facts object (host, env_before, env_after, a probe), as JSON
NAME = 200  # characters of a name or a version
TEXT = 2000  # characters of a message


def _number(low: float | None = None, positive: bool = False):
    """A JSON number (never a boolean or a string), finite, within range."""
    bounds = {"gt": 0} if positive else ({"ge": low} if low is not None else {})
    return Annotated[float, Field(strict=True, allow_inf_nan=False, le=1e12, **bounds)]


Positive = _number(positive=True)
NonNegative = _number(low=0)
Number = _number()
Count = Annotated[int, Field(strict=True, ge=0, le=1 << 31)]
Value = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # a model's output: any finite number
Name = Annotated[str, Field(strict=True, max_length=NAME)]
Text = Annotated[str, Field(strict=True, max_length=TEXT)]


def _bounded_facts(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: not an object")
    if len(json.dumps(value)) > MAX_FACTS_BYTES:
        raise ValueError(f"{where}: more than {MAX_FACTS_BYTES // 1024} KB")
    return value


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Runtime(_Reply):
    name: Name
    version: Name


class DelegateOutcome(_Reply):
    name: Name
    outcome: Literal["applied", "partial", "not_applied", "failed", "cpu", "unknown"]
    delegated_nodes: Count | None = None
    total_nodes: Count | None = None
    message: Text | None = None


class Memory(_Reply):
    peak_mb: Positive | None = None
    peak_delta_mb: Number | None = None


class Evaluation(_Reply):
    predictions: Annotated[list[Count], Field(max_length=MAX_SAMPLES)] | None = None
    # Each sample's first output, flattened (eval_outputs); one per prediction.
    outputs: Annotated[list[Annotated[list[Value], Field(max_length=MAX_OUTPUT_VALUES)]],
                       Field(max_length=MAX_SAMPLES)] | None = None

    @model_validator(mode="after")
    def _one_output_per_prediction(self) -> "Evaluation":
        if self.outputs is not None:
            if self.predictions is None or len(self.outputs) != len(self.predictions):
                raise ValueError("outputs: one per prediction")
            if sum(len(values) for values in self.outputs) > MAX_OUTPUT_VALUES:
                raise ValueError(f"outputs: more than {MAX_OUTPUT_VALUES} values")
        return self


class AgentError(_Reply):
    type: Name = "AgentError"
    message: Text = "unknown error"


class AgentFailure(_Reply):
    ok: Literal[False]
    error: AgentError


class AgentResult(_Reply):
    """The agent's one JSON object for a benchmark that ran (agents/litert_agent.py says what each field means)."""

    ok: Literal[True]
    runtime: Runtime
    delegate: DelegateOutcome
    init_ms: NonNegative
    first_ms: NonNegative
    warmup_ms: Annotated[list[NonNegative], Field(max_length=MAX_SAMPLES)] = Field(default_factory=list)
    samples_us: Annotated[list[Positive], Field(min_length=1, max_length=MAX_SAMPLES)]
    memory: Memory = Field(default_factory=Memory)
    eval: Evaluation | None = None
    host: dict = Field(default_factory=dict)
    env_before: dict = Field(default_factory=dict)
    env_after: dict = Field(default_factory=dict)
    agent_ms: NonNegative | None = None
    warnings: Annotated[list[Text], Field(max_length=100)] = Field(default_factory=list)

    @field_validator("host", "env_before", "env_after", mode="before")
    @classmethod
    def _facts(cls, value: Any, info) -> dict:
        return _bounded_facts(value, info.field_name)


def read_json(text: str, what: str) -> Any:
    """The JSON value of a device's text (NaN and Infinity refused), or JobFailed saying what was wrong with it."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise JobFailed(f"{what}: nested too deeply") from None
    except ValueError as error:
        raise JobFailed(f"{what}: not JSON ({' '.join(str(error).split())[:200]})") from None


def agent_reply(value: Any) -> AgentResult | AgentFailure:
    """An agent's decoded JSON as a result or a failure; JobFailed naming the first field that is wrong."""
    if not isinstance(value, dict):
        raise JobFailed(f"agent reply: expected an object, got {type(value).__name__}")
    model = AgentResult if value.get("ok") is True else AgentFailure
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise JobFailed(f"agent reply: {describe(error)}") from None


class OnnxRuntimeFacts(_Reply):
    """A probe's `onnxruntime`: its version and execution providers, or why it is not importable."""

    version: Name | None = None
    providers: Annotated[list[Name], Field(max_length=MAX_PROVIDERS)] = Field(default_factory=list)
    error: Text | None = None


class RuntimeFacts(_Reply):
    """A probe's `runtime`: the LiteRT runtime the agent would import (name, version), or none and why."""

    name: Name | None = None
    version: Name | None = None
    error: Text | None = None


class _ProbeRuntimes(_Reply):
    # Absent: left out (an older agent); present, an object (a null is "not an object": defaults are not validated).
    runtime: RuntimeFacts = None
    onnxruntime: OnnxRuntimeFacts = None


def probe_facts(value: Any) -> dict:
    """A probe's decoded JSON: an object of bounded size, its `runtime` and `onnxruntime` (when there) checked as
    RuntimeFacts and OnnxRuntimeFacts; JobFailed otherwise."""
    if not isinstance(value, dict):
        raise JobFailed(f"probe reply: expected an object, got {type(value).__name__}")
    try:
        facts = _bounded_facts(value, "probe reply")
    except ValueError as error:
        raise JobFailed(str(error)) from None
    runtimes = {key: facts[key] for key in _ProbeRuntimes.model_fields if key in facts}
    try:
        checked = _ProbeRuntimes.model_validate(runtimes)
    except ValidationError as error:
        raise JobFailed(f"probe reply: {describe(error)}") from None
    for key in runtimes:
        facts[key] = getattr(checked, key).model_dump()
    return facts


def describe(error: ValidationError) -> str:
    """The first error as `field[index].field: what is wrong`, in the words of a person, not of pydantic."""
    first = error.errors()[0]
    where = ""
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    kind, message = first["type"], first["msg"]
    if kind in ("greater_than", "greater_than_equal", "float_type", "float_parsing", "finite_number", "less_than_equal"):
        message = "not a positive number" if first.get("ctx", {}).get("gt") == 0 else "not a number in range"
    elif kind in ("int_type", "int_parsing"):
        message = "not a whole number"
    elif kind == "missing":
        message = "missing"
    elif kind in ("string_type", "list_type", "model_type", "dict_type"):
        message = {"string_type": "not a string", "list_type": "not a list"}.get(kind, "not an object")
    elif kind in ("too_long", "string_too_long"):
        message = "too long"
    elif kind == "value_error":
        message = str(first.get("ctx", {}).get("error", message)).removeprefix(f"{where}: ")
    return f"{where}: {message}" if where else message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")

