"""The device inventory: YAML files validated into Device specs.

An inventory lists the devices of a farm and what each one offers. Errors name the file, the device and the field:
    inventory/lab.yaml: device 'rpi4-a': delegates: unknown delegate 'gpuu' (known: xnnpack, none, gpu, ...)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from farm.errors import FarmError

DELEGATES = ("xnnpack", "none", "gpu", "nnapi", "hexagon", "edgetpu", "external")
KINDS = ("local", "linux", "android")
# Delegates that only run fully integer-quantized models.
INT8_ONLY_DELEGATES = frozenset({"hexagon", "edgetpu"})

# Names go into file names (CSV reports) and never into a shell: anything printable but '/' and surrounding spaces.
NAME = re.compile(r"^[^\s/\x00-\x1f\x7f](?:[^/\x00-\x1f\x7f]*[^\s/\x00-\x1f\x7f])?$")


def check_name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"invalid name {value!r} (printable, no '/', no surrounding spaces)")
    return value


def known(what: str, choices: tuple[str, ...]):
    """A validator of a list whose items must be among `choices`, each named in the error."""

    def check(values: list[str]) -> list[str]:
        for value in values:
            if value not in choices:
                raise ValueError(f"unknown {what} {value!r} (known: {', '.join(choices)})")
        if len(set(values)) != len(values):
            raise ValueError(f"a {what} is listed twice")
        return values

    return AfterValidator(check)


Name = Annotated[str, AfterValidator(check_name)]
Delegates = Annotated[list[str], known("delegate", DELEGATES)]


class DelegateOptions(BaseModel):
    """How a delegate is loaded on a device: a library (external, gpu on Linux, edgetpu) and its key/value options."""

    model_config = ConfigDict(extra="forbid")
    library: str | None = None
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("options", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # Delegate options reach C APIs as strings; accept YAML numbers and booleans for convenience.
        if isinstance(value, dict):
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class Device(BaseModel):
    """One device of the farm: how to reach it and what it can run."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Literal["local", "linux", "android"]
    tags: list[str] = Field(default_factory=list)
    delegates: Delegates = Field(default_factory=lambda: ["xnnpack", "none"])
    delegate_options: dict[str, DelegateOptions] = Field(default_factory=dict)
    flex: bool = False  # the runtime on this device can run Flex (SELECT_TF_OPS) ops
    python: str | None = None  # interpreter that runs the agent (local and linux)

    # linux over ssh
    host: str | None = None
    port: int = 22
    user: str | None = None
    key: str | None = None
    known_hosts: str | None = None
    jump: str | None = None
    password_env: str | None = None  # the name of an environment variable, never the password itself
    workspace: str = "~/.cache/tflite-farm"

    # android over adb
    serial: str | None = None
    adb_server: str | None = None  # host:port of the adb server the phone hangs off; the local one by default
    binaries: dict[str, str] = Field(default_factory=dict)  # ABI -> local path of benchmark_model
    flex_binaries: dict[str, str] = Field(default_factory=dict)  # ABI -> benchmark_model_plus_flex, for Flex models
    affinity: str | None = None  # taskset CPU mask, e.g. "f0" for the big cores

    @field_validator("delegate_options")
    @classmethod
    def _delegate_options(cls, value: dict[str, DelegateOptions]) -> dict[str, DelegateOptions]:
        for delegate in value:
            if delegate not in DELEGATES:
                raise ValueError(f"unknown delegate {delegate!r} (known: {', '.join(DELEGATES)})")
        return value

    @model_validator(mode="after")
    def _connection(self) -> "Device":
        if self.kind == "linux" and not self.host:
            raise ValueError("host: required for a linux device")
        if self.kind == "android" and not self.serial:
            raise ValueError("serial: required for an android device")
        if self.kind == "android" and not self.binaries:
            raise ValueError("binaries: required for an android device (ABI: local path of benchmark_model)")
        if self.kind == "android" and self.flex and not self.flex_binaries:
            raise ValueError("flex_binaries: required with flex: true (ABI: local path of benchmark_model_plus_flex)")
        if self.kind == "android" and self.python:
            raise ValueError("python: android devices run benchmark_model, not the Python agent")
        for delegate in ("external",):
            if delegate in self.delegates and not (self.delegate_options.get(delegate) or DelegateOptions()).library:
                raise ValueError(f"delegate_options: {delegate}: library: required when the '{delegate}' delegate is listed")
        return self

    def offers(self, delegate: str) -> bool:
        return delegate in self.delegates


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    devices: list[Device]

    @model_validator(mode="after")
    def _unique(self) -> "Inventory":
        seen: set[str] = set()
        for device in self.devices:
            if device.name in seen:
                raise ValueError(f"device {device.name!r} is defined twice")
            seen.add(device.name)
        return self

    def device(self, name: str) -> Device:
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)


# The inventory used when none is given: this file, if the current directory has one, else this machine alone.
DEFAULT_FILE = Path("inventory") / "local.yaml"
THIS_MACHINE = Device(name="local", kind="local", tags=["coordinator"])


def default_inventory() -> list[str]:
    """The inventory files to use when none is given: [inventory/local.yaml] if it is here, else [] (this machine)."""
    return [str(DEFAULT_FILE.resolve())] if DEFAULT_FILE.is_file() else []


def describe_default(files: list[str]) -> str:
    """Where a default inventory came from, in words, for `farm inventory check`."""
    if files:
        return f"inventory: none given, so {DEFAULT_FILE} of the current directory"
    return f"inventory: none given and no {DEFAULT_FILE} here, so this machine alone, as device 'local'"


def load_inventory(*paths: str | Path) -> Inventory:
    """Read and validate inventory files into one Inventory (device names unique across files); none: this machine."""
    if not paths:
        return Inventory(devices=[THIS_MACHINE.model_copy(deep=True)])
    devices: list[Device] = []
    origin: dict[str, Path] = {}
    for path in map(Path, paths):
        for device in _load_file(path).devices:
            if device.name in origin:
                raise FarmError(f"{path}: device {device.name!r}: already defined in {origin[device.name]}")
            origin[device.name] = path
            devices.append(device)
    return Inventory(devices=devices)


def _load_file(path: Path) -> Inventory:
    if not path.is_file():
        raise FarmError(f"{path}: inventory file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise FarmError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("devices"), list):
        raise FarmError(f"{path}: expected a mapping with a 'devices:' list")
    try:
        inventory = Inventory.model_validate(raw)
    except ValidationError as error:
        raise FarmError(f"{path}: {_describe(error, raw)}") from None
    for device in inventory.devices:
        _resolve_local_paths(device, path.parent)
    return inventory


def _resolve_local_paths(device: Device, base: Path) -> None:
    """Files of the coordinator named in an inventory are relative to that inventory (as sweep specs are to theirs).

    Paths on the device itself (python, workspace, delegate libraries) are left as written."""

    def local(value: str) -> str:
        return str((base / Path(value).expanduser()).resolve())

    if device.key:
        device.key = local(device.key)
    if device.known_hosts:
        device.known_hosts = local(device.known_hosts)
    device.binaries = {abi: local(binary) for abi, binary in device.binaries.items()}
    device.flex_binaries = {abi: local(binary) for abi, binary in device.flex_binaries.items()}


def _describe(error: ValidationError, raw: dict) -> str:
    """The first validation error as 'device NAME: field: message'."""
    first = error.errors()[0]
    loc = list(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "literal_error" and loc[-1:] == ["kind"]:
        message = f"unknown kind {first['input']!r} (known: {', '.join(KINDS)})"
    where = ""
    if len(loc) >= 2 and loc[0] == "devices" and isinstance(loc[1], int):
        entry = raw["devices"][loc[1]]
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"device {name!r}: " if name else f"device #{loc[1] + 1}: "
        loc = loc[2:]
    # Drop list indexes inside a field: 'delegates: unknown delegate' reads better than 'delegates.1: ...'.
    field = ".".join(str(part) for part in loc if not isinstance(part, int))
    return f"{where}{field}: {message}" if field else f"{where}{message}"
