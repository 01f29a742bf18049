"""The device inventory: YAML files validated into Device specs.

An inventory lists the devices of a farm and what each one offers. Errors name the file, the device and the field:
    inventory/lab.yaml: device 'rpi4-a': delegates: unknown delegate 'gpuu' (known: xnnpack, none, gpu, ...)
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)
from yaml.composer import ComposerError

from farm.errors import FarmError

DELEGATES = ("xnnpack", "none", "gpu", "nnapi", "hexagon", "edgetpu", "external")
# Delegates that only run fully integer-quantized models.
INT8_ONLY_DELEGATES = frozenset({"hexagon", "edgetpu"})
# The agent (this machine, Linux boards) loads every delegate but xnnpack and none from a shared library; edgetpu's is
# libedgetpu.so.1 unless another is named.
AGENT_LIBRARY_DELEGATES = frozenset({"gpu", "nnapi", "hexagon", "external"})

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


def _pattern(regex: str, what: str):
    """A validator of strings that must match `regex`; its error says `what` is expected and never echoes the value
    (a secret typed into the wrong field must not reach a log)."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return AfterValidator(check)


# Values that reach a tool on a device as arguments: never read as an option there.
Program = Annotated[str, _pattern(r"[^-\s][^\x00-\x1f]*", "a program's path or name (not starting with '-')")]
RemotePath = Annotated[str, _pattern(r"[^-\s][^\x00-\x1f]*", "a path (not starting with '-')")]
CpuMask = Annotated[str, _pattern(r"(0x)?[0-9a-fA-F]{1,16}", "a hexadecimal CPU mask such as f0")]
EnvName = Annotated[str, _pattern(r"[A-Za-z_][A-Za-z0-9_]{0,127}",
                                  "the name of an environment variable that holds the password, never the password")]
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
    """What every device of the farm has: a name, its kind, its tags and the delegates it offers.

    Each kind (KINDS) subclasses it in the module of its transport, with its own connection fields."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: str
    tags: list[str] = Field(default_factory=list)
    delegates: Delegates = Field(default_factory=lambda: ["xnnpack", "none"])
    delegate_options: dict[str, DelegateOptions] = Field(default_factory=dict)
    flex: bool = False  # the runtime on this device can run Flex (SELECT_TF_OPS) ops
    # Delegates this kind of device loads only from a shared library named in delegate_options (the agent takes every
    # delegate but xnnpack and none as one; a phone's benchmark_model has flags for gpu, nnapi and hexagon).
    LIBRARY_DELEGATES: ClassVar[frozenset[str]] = frozenset({"external"})
    # The inventory file that defines the device (None: this machine by default), for the commands farm suggests.
    _file: Path | None = PrivateAttr(default=None)

    @property
    def inventory_file(self) -> Path | None:
        return self._file

    @field_validator("delegate_options")
    @classmethod
    def _delegate_options(cls, value: dict[str, DelegateOptions]) -> dict[str, DelegateOptions]:
        for delegate in value:
            if delegate not in DELEGATES:
                raise ValueError(f"unknown delegate {delegate!r} (known: {', '.join(DELEGATES)})")
        return value

    def offers(self, delegate: str) -> bool:
        return delegate in self.delegates

    def where(self) -> str:
        """The device as an error names it: with the inventory file that defines it, when there is one."""
        return f"{self._file}: device {self.name!r}" if self._file else f"device {self.name!r}"

    def without_library(self) -> list[str]:
        """The delegates it lists that this kind of device can load only from a library named in delegate_options,
        and that name none (each kind says which: LIBRARY_DELEGATES)."""
        return [delegate for delegate in self.delegates if delegate in self.LIBRARY_DELEGATES
                and not (self.delegate_options.get(delegate) or DelegateOptions()).library]

    def reached_at(self) -> str:
        """How the coordinator reaches the device, in a few words (`farm inventory check`); each kind says better."""
        return f"a {self.kind} device"

    def resolve_paths(self, base: Path) -> None:
        """Make the coordinator's files that the entry names (keys, binaries) absolute against `base`."""

    def local_files(self) -> dict[str, str]:
        """The files of this machine that the entry names, by field ('key', 'binaries: arm64-v8a'): `farm inventory
        check` looks for each, and a job that needs a missing one could only fail."""
        return {}

    def missing_files(self) -> dict[str, str]:
        """The local_files that are not there, by field, each as 'path: file not found' (or 'not a file')."""
        missing = {}
        for field, path in self.local_files().items():
            found = Path(path).expanduser()
            if not found.is_file():
                missing[field] = f"{path}: {'not a file' if found.exists() else 'file not found'}"
        return missing

    def notes(self) -> list[str]:
        """What is not ready yet although the entry is right (a host key not recorded yet), each as 'field: what to
        do': the warnings of `farm inventory check`."""
        return []

    def runtime_fix(self, python: str) -> str | None:
        """What installs a LiteRT runtime for `python`, the device's Python that runs the agent; None for a kind that
        runs no agent."""
        return None


# Every kind of device and the module that owns it: its inventory entry (DEVICE, a Device) and its transport
# (TRANSPORT). A module is imported only when a device of its kind is in the inventory.
KINDS = {
    "local": "farm.transports.local",
    "linux": "farm.transports.ssh",
    "android": "farm.transports.adb",
}


def kind_module(kind: str):
    """The module of a device kind (KINDS)."""
    return importlib.import_module(KINDS[kind])


def parse_device(entry: dict) -> Device:
    """An inventory entry validated by the model of its kind; ValueError for an unknown kind, else ValidationError."""
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})" if kind else "Field required")
    return kind_module(kind).DEVICE.model_validate(entry)


class _BoundedAliases(yaml.SafeLoader):
    """YAML whose aliases cannot multiply: an alias may repeat a node that holds no alias itself, at most
    MAX_ALIASES times, so a document expands to at most that many copies of its own parts (an alias bomb's nested
    aliases, which grow exponentially, are refused at once)."""

    MAX_ALIASES = 1000

    def compose_document(self):
        self._aliases, self._holds_alias = 0, set()
        return super().compose_document()

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            self._aliases += 1
            if target is not None and id(target) in self._holds_alias:
                raise ComposerError(problem="an alias of a node that itself holds aliases: refused, it could expand "
                                    "without bound", problem_mark=event.start_mark)
            if self._aliases > self.MAX_ALIASES:
                raise ComposerError(problem=f"more than {self.MAX_ALIASES} aliases", problem_mark=event.start_mark)
            node = super().compose_node(parent, index)
            self._holds_alias.add(id(node))
            return node
        node = super().compose_node(parent, index)
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode) else [])
        if any(id(child) in self._holds_alias for child in children):
            self._holds_alias.add(id(node))
        return node


def read_yaml(path: Path) -> Any:
    """A YAML file of the user's, aliases bounded; else a FarmError as `file:line:column: not valid YAML: why`, the
    form editors and terminals jump to."""
    data = path.read_bytes()
    try:
        text = data.decode()
    except UnicodeDecodeError as error:
        raise FarmError(f"{path}:{_position(data, error.start)}: not valid YAML: not UTF-8 text "
                        f"(byte 0x{data[error.start]:02x})") from None
    try:
        return yaml.load(text, Loader=_BoundedAliases)  # noqa: S506 - a SafeLoader
    except yaml.reader.ReaderError as error:  # a character YAML refuses: it gives an offset, not a mark
        raise FarmError(f"{path}:{_position(text, error.position)}: not valid YAML: character "
                        f"#x{error.character:04x} is not allowed") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or getattr(error, "context", None) or error
        raise FarmError(f"{path}{where}: not valid YAML: {' '.join(str(problem).split())}") from None


def _position(text: str | bytes, offset: int) -> str:
    """'line:column' (1-based) of an offset into a text."""
    before = text[:offset]
    newline = b"\n" if isinstance(text, bytes) else "\n"
    return f"{before.count(newline) + 1}:{offset - (before.rfind(newline) + 1) + 1}"


def local_file(base: Path, value: str) -> str:
    """A file of the coordinator named in an inventory: relative to that inventory, as sweep specs are to theirs."""
    return str((base / Path(value).expanduser()).resolve())


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
THIS_MACHINE = {"name": "local", "kind": "local", "tags": ["coordinator"]}


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
        return Inventory(devices=[parse_device(THIS_MACHINE)])
    devices: list[Device] = []
    origin: dict[str, Path] = {}
    read: set[Path] = set()
    for path in map(Path, paths):
        if path.resolve() in read:  # else each of its devices would be "already defined" in itself
            raise FarmError(f"{path}: inventory file given twice")
        read.add(path.resolve())
        for device in _load_file(path).devices:
            if device.name in origin:
                raise FarmError(f"{path}: device {device.name!r}: name: already defined in {origin[device.name]} "
                                "(device names are unique across inventory files)")
            origin[device.name] = path
            devices.append(device)
    return Inventory(devices=devices)


def _load_file(path: Path) -> Inventory:
    if not path.is_file():
        raise FarmError(f"{path}: inventory file not found")
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("devices"), list):
        raise FarmError(f"{path}: expected a mapping with a 'devices:' list")
    for key in set(raw) - {"devices"}:
        raise FarmError(f"{path}: {key}: unknown field")
    devices = []
    for index, entry in enumerate(raw["devices"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"device {name!r}: " if isinstance(name, str) and name else f"device #{index + 1}: "
        if not isinstance(entry, dict):
            raise FarmError(f"{path}: {where}expected a mapping (name, kind, ...)")
        try:
            device = parse_device(entry)
        except ValueError as error:  # pydantic's ValidationError is a ValueError too
            message = _describe(error) if isinstance(error, ValidationError) else f"kind: {error}"
            raise FarmError(f"{path}: {where}{message}") from None
        # Checked here rather than by the model: a device built in code (a store's, a test's) may list any delegate,
        # but an inventory entry is what jobs run from, and such a delegate's every job would fail.
        unloadable = device.without_library()
        if unloadable:
            raise FarmError(f"{path}: {where}delegate_options: {unloadable[0]}: library: required for the "
                            f"'{unloadable[0]}' delegate on {device.kind} devices (the path of its shared library)")
        device.resolve_paths(path.parent)
        device._file = path
        devices.append(device)
    try:
        return Inventory(devices=devices)
    except ValidationError as error:
        raise FarmError(f"{path}: {_describe(error)}") from None


def _describe(error: ValidationError) -> str:
    """The first validation error as 'field: message'."""
    first = error.errors()[0]
    loc = list(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    # Drop list indexes inside a field: 'delegates: unknown delegate' reads better than 'delegates.1: ...'.
    field = ".".join(str(part) for part in loc if not isinstance(part, int))
    return f"{field}: {message}" if field else message
