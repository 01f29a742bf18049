"""`farm inventory check`, `probe` and `show` as a new user meets them: what check can see on this machine (missing
files, delegates without a library, YAML mistakes, names defined twice), what --probe sees on the devices (real sshd
boards of tests/fleet, simulated phones of tests/phone, this machine), a device without a LiteRT runtime said plainly
with a fix that works as printed, and a store's facts shown whole, as plain text."""
import re
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import yaml
from conftest import farm, free_port

from farm.inventory import parse_device
from farm.store import Store
from farm.tables import DeviceRow

RUNTIME_MISSING = "no LiteRT runtime (ai-edge-litert or tflite-runtime) for "


def rows(stdout: str) -> dict[str, list[str]]:
    """A printed Rich table's rows by their first cell, each cell's wrapped lines joined by a space."""
    found: dict[str, list[str]] = {}
    last = None
    for line in stdout.splitlines():
        if not line.startswith(("│", "┃")):  # a row, or the header
            continue
        cells = [cell.strip() for cell in re.split("[│┃]", line.strip("│┃"))]
        if cells[0]:
            last = found[cells[0]] = cells
        elif last is not None:  # a wrapped row goes on under it
            for index, cell in enumerate(cells):
                if cell:
                    last[index] = f"{last[index]} {cell}"
    return found


def follow(hint: str, cwd) -> subprocess.CompletedProcess:
    """A printed `farm ...` command run as a user pastes it: through a shell's word splitting, in that folder."""
    argv = shlex.split(hint)
    assert argv[0] == "farm", hint
    return subprocess.run([sys.executable, "-m", "farm", *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def errors(run: subprocess.CompletedProcess, prefix: str = "farm: error: ") -> list[str]:
    return [line.removeprefix(prefix) for line in run.stderr.splitlines() if line.startswith(prefix)]


def test_check_names_every_missing_file_of_this_machine_as_an_error(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "benchmark_model").write_bytes(b"\x7fELF")
    (tmp_path / "known_hosts").write_text("")
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        {"name": "here", "kind": "local", "python": str(tmp_path / "venv" / "bin" / "python"),
         "benchmark_model": "tools/benchmark_model", "delegates": ["xnnpack", "gpu"],
         "delegate_options": {"gpu": {"library": str(tmp_path / "libgpu.so")}}},
        {"name": "pi", "kind": "linux", "host": "192.0.2.10", "key": "keys/pi", "known_hosts": "known_hosts",
         "benchmark_model": "tools/benchmark_model"},
        {"name": "fresh", "kind": "linux", "host": "192.0.2.11", "known_hosts": "keys/none"},
        {"name": "phone", "kind": "android", "serial": "s", "binaries": {"arm64-v8a": "tools/benchmark_model"},
         "flex": True, "flex_binaries": {"arm64-v8a": "tools/benchmark_model_plus_flex"},
         "onnxruntime_perf_test": {"arm64-v8a": "tools"}},
    ]}))
    run = farm("inventory", "check", lab)
    assert run.returncode == 2, run.stdout + run.stderr
    assert sorted(errors(run)) == sorted([
        f"{lab}: device 'here': python: {tmp_path}/venv/bin/python: file not found",
        f"{lab}: device 'here': delegate_options: gpu: library: {tmp_path}/libgpu.so: file not found",
        f"{lab}: device 'pi': key: {tmp_path}/keys/pi: file not found",
        f"{lab}: device 'phone': flex_binaries: arm64-v8a: {tmp_path}/tools/benchmark_model_plus_flex: file not found",
        f"{lab}: device 'phone': onnxruntime_perf_test: arm64-v8a: {tmp_path}/tools: not a file",
    ])
    # Not an error: the entry is right, and `farm inventory trust` (printed to work as is) records the key.
    assert errors(run, "farm: warning: ") == [
        f"{lab}: device 'fresh': known_hosts: {tmp_path}/keys/none: not there yet, so the board is refused; check "
        f"its host key, then: farm inventory trust fresh --inventory {lab}"]
    assert "4 devices, 5 errors (above)" in run.stdout and "inventory valid" not in run.stdout

    (tmp_path / "keys").mkdir()
    for made in ("keys/pi", "venv/bin/python", "libgpu.so", "tools/benchmark_model_plus_flex", "keys/none"):
        (tmp_path / made).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / made).write_text("")
    (tmp_path / "tools" / "onnxruntime_perf_test").write_text("")
    lab.write_text(lab.read_text().replace("arm64-v8a: tools\n", "arm64-v8a: tools/onnxruntime_perf_test\n"))
    fixed = farm("inventory", "check", lab)
    assert fixed.returncode == 0 and fixed.stderr == "", fixed.stdout + fixed.stderr
    assert "4 devices, inventory valid" in fixed.stdout


def test_check_refuses_a_delegate_that_needs_a_library_and_names_none(tmp_path):
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        {"name": "phone", "kind": "android", "serial": "s", "binaries": {"arm64-v8a": "bm"},
         "delegates": ["xnnpack", "gpu", "nnapi", "hexagon"]},  # benchmark_model flags: no library needed
        {"name": "jetson", "kind": "linux", "host": "192.0.2.30", "delegates": ["xnnpack", "gpu"]}]}))
    run = farm("inventory", "check", lab)
    assert run.returncode == 2 and run.stdout == "", run.stdout + run.stderr
    assert run.stderr.splitlines() == [
        f"farm: error: {lab}: device 'jetson': delegate_options: gpu: library: required for the 'gpu' delegate on "
        "linux devices (the path of its shared library)"]


def test_check_gives_a_yaml_mistake_as_file_line_column(tmp_path):
    lab = tmp_path / "lab.yaml"
    lab.write_text("devices:\n  - name: pi\n    kind: linux\n   host: 192.0.2.10\n")
    run = farm("inventory", "check", lab)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [
        f"farm: error: {lab}:4:4: not valid YAML: expected <block end>, but found '<block mapping start>'"]


def test_check_names_both_files_of_a_device_defined_twice(tmp_path):
    (tmp_path / "a.yaml").write_text("devices:\n  - {name: pi, kind: linux, host: 192.0.2.10}\n")
    (tmp_path / "b.yaml").write_text("devices:\n  - {name: local, kind: local}\n  - {name: pi, kind: local}\n")
    run = farm("inventory", "check", "a.yaml", "b.yaml", cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.splitlines() == ["farm: error: b.yaml: device 'pi': name: already defined in a.yaml (device "
                                       "names are unique across inventory files)"]


def test_check_probe_prints_one_table_of_every_device(tmp_path, ssh_fleet, adb_lab, benchmark_model_binary):
    bare = tmp_path / "bare"  # a Python with no site-packages: no LiteRT runtime, no onnxruntime
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", bare], check=True, timeout=120)
    board, dead = ssh_fleet[0], ssh_fleet[1]
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        {"name": "here", "kind": "local"},
        {"name": "bare", "kind": "local", "python": str(bare / "bin" / "python")},
        board.device(python=sys.executable, workspace=str(tmp_path / "workspace")),
        # board2's entry, at a port where nothing listens: unreachable
        dead.device(port=free_port()),
        {"name": "pixel", "kind": "android", "serial": adb_lab["pixel"].serial, "adb_server": f"127.0.0.1:{adb_lab.port}",
         "binaries": {"arm64-v8a": str(benchmark_model_binary)}},
    ]}))
    run = farm("inventory", "check", "--probe", lab)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.count("┏") == 1 and "5 devices, inventory valid, probed" in run.stdout  # one table
    table = rows(run.stdout)
    assert table["device"] == ["device", "kind", "reachable", "runtime", "onnxruntime"]
    import ai_edge_litert
    import onnxruntime

    litert = f"ai_edge_litert {ai_edge_litert.__version__}"
    assert table["here"] == ["here", "local", "yes", litert, onnxruntime.__version__]
    assert table["bare"] == ["bare", "local", "yes", "no LiteRT runtime", "none"]
    assert table[board.name] == [board.name, "linux", "yes", litert, onnxruntime.__version__]
    reachable = table[dead.name][2]
    assert re.fullmatch(rf"no: cannot connect to {re.escape(dead.address)}:\d+: .+", reachable), reachable
    assert table["pixel"] == ["pixel", "android", "yes", "benchmark_model (arm64-v8a)", "-"]
    # Under the table, whole: the device that cannot run benchmarks, and how to fix it.
    assert f"bare: {RUNTIME_MISSING}{bare}/bin/python; fix: {bare}/bin/python -m pip install ai-edge-litert" \
        in run.stdout.splitlines()


def test_a_board_without_a_runtime_says_so_and_its_fix_works_as_printed(tmp_path, ssh_fleet):
    host = ssh_fleet[2]
    # No python: and a workspace with no venv: the agent runs with the board's python3, which has no LiteRT runtime.
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(workspace=str(tmp_path / "workspace"))]}))
    db = tmp_path / "farm.db"
    probed = farm("inventory", "probe", "--inventory", lab, "--db", db)
    assert probed.returncode == 1, probed.stdout + probed.stderr
    assert "None" not in probed.stdout
    first, said = probed.stdout.splitlines()
    assert first.startswith(f"{host.name}: Python 3.") and ", no LiteRT runtime, " in first
    found = re.fullmatch(rf"{host.name}: {re.escape(RUNTIME_MISSING)}(/\S+); fix: (farm .+)", said)
    assert found, said
    python, fix = found.groups()
    # It carries the inventory and the store in force, as every command farm suggests does.
    assert python.endswith("python3") and fix == f"farm provision {host.name} --inventory {lab} --db {db}"
    checked = farm("inventory", "check", "--probe", lab)
    assert checked.returncode == 1 and rows(checked.stdout)[host.name][3] == "no LiteRT runtime"

    provisioned = follow(fix, cwd=tmp_path)  # pip installs numpy and ai-edge-litert in the board's workspace venv
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
    assert f"{host.name}: ready: {tmp_path}/workspace/venv/bin/python" in provisioned.stdout
    again = farm("inventory", "probe", "--inventory", lab, "--db", db)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ai_edge_litert 2." in again.stdout and "no LiteRT runtime" not in again.stdout


def test_show_tells_each_devices_story_as_plain_text(tmp_path, ssh_fleet, adb_lab, benchmark_model_binary):
    host = ssh_fleet[3]
    zones = tmp_path / "zones"
    for index, (kind, millidegrees) in enumerate((("cpu-thermal", 48500), ("[red]gpu[/red] zone", 61000))):
        (zones / f"thermal_zone{index}").mkdir(parents=True)
        (zones / f"thermal_zone{index}" / "type").write_text(kind + "\n")
        (zones / f"thermal_zone{index}" / "temp").write_text(f"{millidegrees}\n")
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        host.device(python=sys.executable, workspace=str(tmp_path / "workspace")),
        {"name": "pixel", "kind": "android", "serial": adb_lab["pixel"].serial, "adb_server": f"127.0.0.1:{adb_lab.port}",
         "binaries": {"arm64-v8a": str(benchmark_model_binary)}}]}))
    db = tmp_path / "farm.db"
    with host.login_environment(FARM_THERMAL_ROOT=zones):
        probed = farm("inventory", "probe", "--inventory", lab, "--db", db)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert probed.stdout.splitlines()[1].startswith("pixel: Google Pixel 8, SoC Tensor G3, arm64-v8a, Android 14 ")

    # Devices whose facts came from elsewhere: a Coral seen 15 minutes ago, one never probed, one that says hostile
    # things (its strings are shown as text, never as markup, and bounded).
    store = Store(db)
    coral = parse_device({"name": "coral", "kind": "linux", "host": "192.0.2.20", "delegates": ["xnnpack", "edgetpu"]})
    store.upsert_device(coral, {"runtime": {"name": "tflite_runtime", "version": "2.5.0.post1", "error": None},
                                "onnxruntime": {"version": None, "providers": [], "error": "No module named x"},
                                "edgetpu": {"present": True, "usb": ["1a6e:089a"], "pci": []},
                                "temps_c": {"cpu": 52.0}})
    with store.session() as session:
        session.get(DeviceRow, "coral").last_seen = datetime.now(timezone.utc) - timedelta(minutes=15, seconds=20)
    store.upsert_device(parse_device({"name": "never", "kind": "local"}))
    store.upsert_device(parse_device({"name": "odd", "kind": "local"}),
                        {"runtime": {"name": "[bold]lite[/bold]", "version": "9" * 1000}, "temps_c": {"z" * 500: 1e9},
                         "board": "[link=http://198.51.100.7/]pi[/link]", "governor": "g" * 500})

    shown = farm("inventory", "show", "--db", db)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    table = rows(shown.stdout)
    import ai_edge_litert
    import onnxruntime

    assert table["name"] == ["name", "kind", "runtime", "onnxruntime", "delegates", "Edge TPU", "hottest", "last seen"]
    board = table[host.name]
    assert board[:7] == [host.name, "linux", f"ai_edge_litert {ai_edge_litert.__version__}", onnxruntime.__version__,
                         "xnnpack, none", "none", "61.0 °C ([red]gpu[/red] zone)"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(just now\)", board[7]), board
    phone = table["pixel"]
    assert phone[:6] == ["pixel", "android", "benchmark_model (arm64-v8a)", "-", "xnnpack, none", "-"]
    assert re.fullmatch(r"\d+\.\d °C \(.+\)", phone[6]), phone
    assert table["coral"][1:7] == ["linux", "tflite_runtime 2.5.0.post1", "none", "xnnpack, edgetpu",
                                   "present (usb 1a6e:089a)", "52.0 °C (cpu)"]
    assert table["coral"][7].endswith(" UTC (15 min ago)"), table["coral"]
    assert table["never"] == ["never", "local", "-", "-", "xnnpack, none", "-", "-", "never probed"]
    assert table["odd"][2].startswith("[bold]lite[/bold] 999") and table["odd"][6].startswith("1000000000.0 °C (zzz")
    assert "[link=http://198.51.100.7/]pi[/link]" in shown.stdout
    # Bounded: at most 80 characters of each string a device sent in the table, 300 under it (a path stays whole).
    assert f"governor={'g' * 297}..." in shown.stdout
    assert not re.search("9{78}|z{78}|g{298}", shown.stdout)
    # Under the table, everything else each probe said.
    assert f"{host.name}: hostname=" in shown.stdout and f"workspace={tmp_path}/workspace" in shown.stdout


def test_a_probe_line_says_what_each_kind_reported():
    from farm.commands.inventory import probe_summary

    agent = {"python_version": "3.11.2", "runtime": {"name": None, "version": None, "error": "none"},
             "cpu_model": "Cortex-A72", "cores": 4, "ram_mb": 3792, "board": "Raspberry Pi 4 Model B Rev 1.4",
             "governor": "ondemand", "edgetpu": {"present": True}, "onnxruntime": {"version": None}}
    assert probe_summary(agent) == ("Python 3.11.2, no LiteRT runtime, Cortex-A72 x4, 3792 MB RAM, board Raspberry Pi "
                                    "4 Model B Rev 1.4, governor ondemand, Edge TPU present, no onnxruntime")
    phone = {"manufacturer": "Google", "model": "Pixel 8", "soc": "Tensor G3", "abi": "arm64-v8a", "release": "14",
             "sdk": "34", "cores": 9, "battery": {"level": 85}}
    assert probe_summary(phone) == ("Google Pixel 8, SoC Tensor G3, arm64-v8a, Android 14 (SDK 34), 9 cores, battery "
                                    "85%, benchmark_model (arm64-v8a)")
    # A kind farm does not know the facts of (tests/transports/toy_kind.py): as they came, bounded, never "None".
    assert probe_summary({"toy": "red", "size": None, "notes": "n" * 500}) == f"toy=red, notes={'n' * 297}..."
    assert probe_summary({}) == "no facts"
