"""Inventory files: valid ones load; every mistake is one line naming the file, the device and the field."""
from pathlib import Path

import pytest
import yaml

from farm.errors import FarmError
from farm.inventory import default_inventory, describe_default, load_inventory
from conftest import refused

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_shipped_inventories_are_valid():
    inventory = load_inventory(REPO / "inventory" / "local.yaml", REPO / "inventory" / "example-lab.yaml")
    kinds = {device.name: device.kind for device in inventory.devices}
    assert kinds["local"] == "local"
    assert {"linux", "android"} <= set(kinds.values())
    coral = inventory.device("coral-devboard")
    assert coral.offers("edgetpu") and coral.delegate_options["edgetpu"].options == {"device": "pci:0"}
    assert inventory.device("rpi4-a").port == 22


def test_no_inventory_given_means_inventory_local_yaml_here_else_this_machine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_inventory() == []
    assert "this machine alone, as device 'local'" in describe_default([])
    alone = load_inventory()
    assert [(d.name, d.kind, d.delegates) for d in alone.devices] == [("local", "local", ["xnnpack", "none"])]
    # The repository's inventory/local.yaml says the same as the built-in default (the file it came from aside).
    assert load_inventory(REPO / "inventory" / "local.yaml").model_dump() == alone.model_dump()

    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "local.yaml").write_text("devices:\n  - {name: here, kind: local}\n")
    assert default_inventory() == [str(tmp_path / "inventory" / "local.yaml")]
    assert "inventory/local.yaml of the current directory" in describe_default(default_inventory())
    assert [d.name for d in load_inventory(*default_inventory()).devices] == ["here"]


def test_unknown_delegate_names_file_device_and_field(tmp_path):
    path = write(tmp_path, "devices:\n  - {name: rpi4-a, kind: linux, host: h, delegates: [xnnpack, gpuu]}\n")
    with pytest.raises(FarmError) as error:
        load_inventory(path)
    assert str(error.value) == (
        f"{path}: device 'rpi4-a': delegates: unknown delegate 'gpuu' "
        "(known: xnnpack, none, gpu, nnapi, hexagon, edgetpu, external)"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("devices:\n  - {name: a, kind: linx, host: h}\n", "device 'a': kind: unknown kind 'linx' (known: local, linux, android)"),
        ("devices:\n  - {name: a, kind: linux}\n", "device 'a': host: required for a linux device"),
        ("devices:\n  - {name: a, kind: android}\n", "device 'a': serial: required for an android device"),
        ("devices:\n  - {name: a, kind: android, serial: s}\n", "device 'a': binaries: required for an android device"),
        ("devices:\n  - {name: a, kind: android, serial: s, flex: true, binaries: {arm64-v8a: b}}\n",
         "device 'a': flex_binaries: required with flex: true"),
        ("devices:\n  - {name: a, kind: local, hots: x}\n", "device 'a': hots: unknown field"),
        ("devices:\n  - {name: a, kind: local}\n  - {name: a, kind: local}\n", "device 'a' is defined twice"),
        ("devices:\n  - {name: 'a/b', kind: local}\n", "name: invalid name 'a/b'"),
        ("devices:\n  - {name: ' a', kind: local}\n", "name: invalid name ' a'"),
        ("devices:\n  - {kind: local}\n", "device #1: name: Field required"),
        ("devices:\n  - {name: a, kind: linux, host: h, port: many}\n", "device 'a': port: "),
        ("devices:\n  - {name: a, kind: linux, host: h, delegates: [external]}\n",
         "delegate_options: external: library: required"),
        ("- just a list\n", "expected a mapping with a 'devices:' list"),
    ],
)
def test_mistakes_are_one_clear_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(FarmError) as error:
        load_inventory(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(FarmError, match="inventory file not found"):
        load_inventory(tmp_path / "nope.yaml")


def test_device_names_are_unique_across_files(tmp_path):
    first = tmp_path / "a.yaml"
    second = tmp_path / "b.yaml"
    first.write_text("devices:\n  - {name: x, kind: local}\n")
    second.write_text("devices:\n  - {name: x, kind: local}\n")
    refused(lambda: load_inventory(first, second), f"{second}: device 'x': name: already defined in {first} ")
    refused(lambda: load_inventory(first, first), f"{first}: inventory file given twice")


def test_delegate_options_become_strings(tmp_path):
    path = write(tmp_path, "devices:\n  - name: j\n    kind: linux\n    host: h\n    delegates: [gpu]\n"
                           "    delegate_options: {gpu: {library: /x.so, options: {precision_loss: true, n: 2}}}\n")
    device = load_inventory(path).device("j")
    assert device.delegate_options["gpu"].options == {"precision_loss": "true", "n": "2"}


def test_coordinator_paths_are_relative_to_the_inventory(tmp_path):
    (tmp_path / "lab").mkdir()
    path = tmp_path / "lab" / "farm.yaml"
    path.write_text("devices:\n"
                    "  - {name: pi, kind: linux, host: h, key: keys/pi, known_hosts: known_hosts, python: venv/bin/python}\n"
                    "  - {name: phone, kind: android, serial: s, binaries: {arm64-v8a: ../tools/benchmark_model}}\n")
    inventory = load_inventory(path)
    pi, phone = inventory.device("pi"), inventory.device("phone")
    assert pi.key == str(tmp_path / "lab" / "keys" / "pi") and pi.known_hosts == str(tmp_path / "lab" / "known_hosts")
    assert pi.python == "venv/bin/python"  # a path on the board: left as written
    assert phone.binaries == {"arm64-v8a": str(tmp_path / "tools" / "benchmark_model")}


def test_a_yaml_alias_bomb_is_one_line_at_once(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, "
                                                     f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
                                                     for i in range(8)]
    path = write(tmp_path, "\n".join(lines) + "\ndevices:\n  - {name: a, kind: local, delegate_options: {none: {options: *i}}}\n")
    refused(lambda: load_inventory(path), f"{path}:2:", ": not valid YAML: an alias of a node that itself holds aliases")


def test_plain_yaml_anchors_still_work(tmp_path):
    path = write(tmp_path, "devices:\n  - {name: a, kind: local, delegates: &cpu [xnnpack, none]}\n"
                           "  - {name: b, kind: local, delegates: *cpu}\n")
    assert [d.delegates for d in load_inventory(path).devices] == [["xnnpack", "none"], ["xnnpack", "none"]]


@pytest.mark.parametrize("text, where, problem", [
    (b"devices:\n  - {name: a, kind: local\n", "3:1", "expected ',' or '}', but got '<stream end>'"),
    (b"devices:\n  - name: a\n   kind: local\n", "3:4", "expected <block end>, but found '<block mapping start>'"),
    (b"devices:\n\t- name: a\n", "2:1", "found character '\\t' that cannot start any token"),
    (b"devices:\n  - name: *board\n", "2:11", "found undefined alias 'board'"),
    # What YAML refuses before parsing: it says where as an offset, or not at all.
    (b'devices:\n  - name: "a\x01"\n', "2:13", "character #x0001 is not allowed"),
    (b"devices:\n  - name: caf\xe9\n", "2:14", "not UTF-8 text (byte 0xe9)"),
])
def test_a_yaml_mistake_is_file_line_column(tmp_path, text, where, problem):
    path = tmp_path / "lab.yaml"
    path.write_bytes(text)
    message = refused(lambda: load_inventory(path))
    assert message == f"{path}:{where}: not valid YAML: {problem}"


@pytest.mark.parametrize("entry, delegate", [
    ({"kind": "linux", "host": "h", "delegates": ["xnnpack", "gpu"]}, "gpu"),
    ({"kind": "linux", "host": "h", "delegates": ["hexagon"]}, "hexagon"),
    ({"kind": "local", "delegates": ["nnapi"]}, "nnapi"),
    ({"kind": "local", "delegates": ["external"], "delegate_options": {"external": {"options": {"a": 1}}}}, "external"),
    ({"kind": "android", "serial": "s", "binaries": {"arm64-v8a": "bm"}, "delegates": ["edgetpu"]}, "edgetpu"),
    ({"kind": "android", "serial": "s", "binaries": {"arm64-v8a": "bm"}, "delegates": ["external"]}, "external"),
])
def test_a_delegate_that_needs_a_library_and_has_none_is_refused(tmp_path, entry, delegate):
    path = write(tmp_path, yaml.safe_dump({"devices": [{"name": "d", **entry}]}))
    message = refused(lambda: load_inventory(path))
    assert message == (f"{path}: device 'd': delegate_options: {delegate}: library: required for the '{delegate}' "
                       f"delegate on {entry['kind']} devices (the path of its shared library)")


@pytest.mark.parametrize("entry", [
    # The agent loads edgetpu from libedgetpu.so.1 by default; phones run gpu, nnapi and hexagon by benchmark_model flags.
    {"kind": "linux", "host": "h", "delegates": ["xnnpack", "none", "edgetpu"]},
    {"kind": "android", "serial": "s", "binaries": {"arm64-v8a": "bm"}, "delegates": ["xnnpack", "gpu", "nnapi", "hexagon"]},
    {"kind": "linux", "host": "h", "delegates": ["gpu"], "delegate_options": {"gpu": {"library": "/opt/libgpu.so"}}},
])
def test_delegates_that_load_without_a_library_are_accepted(tmp_path, entry):
    path = write(tmp_path, yaml.safe_dump({"devices": [{"name": "d", **entry}]}))
    assert load_inventory(path).device("d").delegates == entry["delegates"]


def test_each_kind_names_the_files_of_this_machine_its_entry_needs(tmp_path):
    path = write(tmp_path, yaml.safe_dump({"devices": [
        {"name": "here", "kind": "local", "python": "python3", "benchmark_model": "bin/bm",
         "delegates": ["xnnpack", "gpu", "edgetpu"],
         "delegate_options": {"gpu": {"library": "/opt/gpu.so"}, "edgetpu": {"library": "libedgetpu.so.1"}}},
        {"name": "pi", "kind": "linux", "host": "h", "key": "keys/pi", "python": "/usr/bin/python3"},
        {"name": "phone", "kind": "android", "serial": "s", "binaries": {"arm64-v8a": "bm"},
         "flex_binaries": {"arm64-v8a": "bm_flex"}, "onnxruntime_perf_test": {"armeabi-v7a": "ort"}}]}))
    here, pi, phone = load_inventory(path).devices
    # Paths only (a bare name is looked up on PATH or by the loader); a board's python and libraries are the board's.
    assert here.local_files() == {"benchmark_model": str(tmp_path / "bin" / "bm"),
                                  "delegate_options: gpu: library": "/opt/gpu.so"}
    assert pi.local_files() == {"key": str(tmp_path / "keys" / "pi")}
    assert phone.local_files() == {"binaries: arm64-v8a": str(tmp_path / "bm"),
                                   "flex_binaries: arm64-v8a": str(tmp_path / "bm_flex"),
                                   "onnxruntime_perf_test: armeabi-v7a": str(tmp_path / "ort")}
    (tmp_path / "bm").write_bytes(b"\x7fELF")
    (tmp_path / "ort").mkdir()
    assert phone.missing_files() == {"flex_binaries: arm64-v8a": f"{tmp_path / 'bm_flex'}: file not found",
                                     "onnxruntime_perf_test: armeabi-v7a": f"{tmp_path / 'ort'}: not a file"}


@pytest.mark.parametrize("field, value, expected", [
    ("python", "-c", "python: must be a program's path or name (not starting with '-')"),
    ("workspace", "-w", "workspace: must be a path (not starting with '-')"),
    ("password_env", "Hunter2-secret!", "password_env: must be the name of an environment variable"),
])
def test_values_that_reach_a_board_can_never_be_options_or_leak(tmp_path, field, value, expected):
    path = write(tmp_path, yaml.safe_dump({"devices": [{"name": "pi", "kind": "linux", "host": "h", field: value}]}))
    with pytest.raises(FarmError) as error:
        load_inventory(path)
    assert expected in str(error.value) and value not in str(error.value)


def test_a_phone_affinity_is_a_cpu_mask(tmp_path):
    entry = {"name": "p", "kind": "android", "serial": "s", "binaries": {"arm64-v8a": "bm"}, "affinity": "-x"}
    with pytest.raises(FarmError, match="affinity: must be a hexadecimal CPU mask"):
        load_inventory(write(tmp_path, yaml.safe_dump({"devices": [entry]})))
