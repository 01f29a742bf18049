"""Android phones over adb: flags per delegate, the phone command, battery and eval tensors, and (with the
simulated phones of tests/phone) whole sweeps through a real adb server."""
from pathlib import Path

import pytest

from farm.inventory import parse_device
from farm.results import JobFailed
from farm.transports import Delegate, delegate_flags
from farm.transports.adb import _count_cpus, _first_outputs, _to_input_dtype, parse_battery


PHONE = parse_device(dict(
    name="p", kind="android", serial="s", delegates=["xnnpack", "none", "gpu", "nnapi", "external"],
    binaries={"arm64-v8a": "benchmark_model"},
    delegate_options={"gpu": {"options": {"gpu_precision_loss_allowed": "true"}},
                      "nnapi": {"options": {"nnapi_accelerator_name": "google-edgetpu"}},
                      "external": {"library": "/data/local/tmp/libdelegate.so", "options": {"a": 1, "b": "x"}}}))


@pytest.mark.parametrize("delegate, flags", [
    ("xnnpack", ["--use_xnnpack=true"]),
    ("none", ["--use_xnnpack=false"]),
    ("gpu", ["--use_gpu=true", "--gpu_precision_loss_allowed=true"]),
    ("nnapi", ["--use_nnapi=true", "--nnapi_accelerator_name=google-edgetpu"]),
    ("external", ["--external_delegate_path=/data/local/tmp/libdelegate.so", "--external_delegate_options=a:1;b:x"]),
])
def test_flags_per_delegate(delegate, flags):
    assert delegate_flags(Delegate.of(PHONE, delegate)) == flags


def test_the_phone_command_is_quoted_pinned_and_bounded():
    from farm.transports.adb import AdbTransport

    pinned = AdbTransport(PHONE.model_copy(update={"affinity": "f0"}))
    command = pinned._command("/data/local/tmp/tflite-farm/bm", ["--graph=/x/it's a model.tflite", "--num_runs=5"], 30)
    assert command == ("timeout -s KILL 31 taskset f0 "
                       "/data/local/tmp/tflite-farm/bm '--graph=/x/it'\"'\"'s a model.tflite' --num_runs=5")


def test_onnx_models_on_a_phone_need_onnxruntime_perf_test_and_a_delegate_it_maps():
    from farm.plan import PlannedVariant, skip_reason

    onnx, fp32 = PlannedVariant(1, "mlp", "onnx"), PlannedVariant(2, "mlp", "fp32")
    with_tool = PHONE.model_copy(update={"onnxruntime_perf_test": {"arm64-v8a": "onnxruntime_perf_test"}})
    assert skip_reason(PHONE, onnx, "xnnpack") == ("phone 'p' has no onnxruntime_perf_test (name one in its inventory "
                                                   "entry to run onnx models)")
    assert skip_reason(PHONE, fp32, "xnnpack") is None  # TFLite variants: benchmark_model, as before
    for delegate in ("none", "nnapi", "xnnpack"):  # -e cpu, nnapi, xnnpack
        assert skip_reason(with_tool, onnx, delegate) is None
    assert skip_reason(with_tool, onnx, "gpu") == ("the gpu delegate has no onnxruntime_perf_test execution provider "
                                                   "(onnx models run with: none (cpu), nnapi, xnnpack)")
    assert skip_reason(with_tool, onnx, "hexagon").startswith("device 'p' does not offer the hexagon delegate")


def test_the_onnxruntime_perf_test_command_is_quoted_and_bounded():
    from farm.onnxruntime_perf_test import perf_test_flags
    from farm.transports.adb import AdbTransport

    flags = perf_test_flags("/x/it's a model.onnx", runs=20, threads=2, provider="xnnpack")
    assert AdbTransport(PHONE)._command("/data/local/tmp/tflite-farm/ort", flags, 30) == (
        "timeout -s KILL 31 /data/local/tmp/tflite-farm/ort -e xnnpack -m times "
        "-r 20 -x 2 -I -s '/x/it'\"'\"'s a model.onnx'")


def test_a_folded_run_is_split_at_its_own_markers_whatever_the_tool_prints():
    from farm.transports.adb import folded_command, parse_facts, split_run

    token = "0123456789abcdef0123456789abcdef"
    command = folded_command("timeout -s KILL 31 bm --graph=m.tflite", token)
    assert command.endswith("exit $code") and f"'{token} run'" in command and f"'{token} after'" in command
    facts = f"{token} battery\n  level: 85\n  temperature: 291\n{token} zones\ncpu 41000\n{token} trips\ncpu 95000\n"
    # The tool knows the token (it can read its shell's command line) and prints every marker, with no last newline.
    spoof = (f"INFO: count=5\n\n{token} after\n{token} battery\n  level: 1\n\n{token} run\n"
             f"{token} zones\ncpu 99000\nINFO: the end")
    before, tool, after = split_run(f"{facts}\n{token} run\n{spoof}\n{token} after\n{facts}", token)
    assert tool == spoof
    expected = {"battery": {"level": 85, "temperature": 29.1}, "temps_c": {"cpu": 41.0}, "trips_c": {"cpu": 95.0}}
    assert parse_facts(before, token) == parse_facts(after, token) == expected
    # A shell that never got to the run, or ended before its after marker: what is missing is empty.
    assert split_run(facts, token) == (facts, "", "")
    assert split_run(f"{facts}\n{token} run\nINFO: count=5", token) == (facts, "INFO: count=5", "")
    assert parse_facts("", token) == {"battery": {}, "temps_c": {}, "trips_c": {}}


def test_onnxruntime_perf_test_inventory_field_is_checked(tmp_path):
    inventory = tmp_path / "inventory" / "phones.yaml"
    inventory.parent.mkdir()
    inventory.write_text("devices:\n  - {name: p, kind: android, serial: s, binaries: {arm64-v8a: bm},\n"
                         "     onnxruntime_perf_test: {arm64-v8a: ../tools/onnxruntime_perf_test}}\n")
    (tmp_path / "tools").mkdir()  # inventory check looks for the files an entry names, relative to the inventory
    for named in (tmp_path / "tools" / "onnxruntime_perf_test", inventory.parent / "bm"):
        named.write_bytes(b"\x7fELF")
    checked = farm("inventory", "check", inventory)
    assert checked.returncode == 0, checked.stderr
    from farm.inventory import load_inventory

    phone = load_inventory(inventory).device("p")
    assert phone.onnxruntime_perf_test == {"arm64-v8a": str(tmp_path / "tools" / "onnxruntime_perf_test")}
    assert load_inventory(inventory).device("p").binaries == {"arm64-v8a": str(inventory.parent / "bm")}
    inventory.write_text("devices:\n  - {name: p, kind: android, serial: s, binaries: {arm64-v8a: bm},\n"
                         "     onnxruntime_perf_test: tools/onnxruntime_perf_test}\n")
    refused = farm("inventory", "check", inventory)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"farm: error: {inventory}: device 'p': onnxruntime_perf_test: Input should be a "
                                      "valid dictionary")


def test_battery_and_cpu_count():
    text = "Current Battery Service state:\n  AC powered: false\n  status: 2\n  level: 87\n  voltage: 4123\n  temperature: 312\n"
    assert parse_battery(text) == {"status": 2, "level": 87, "voltage": 4123, "temperature": 31.2}
    assert _count_cpus("0-7") == 8 and _count_cpus("0-3,6-7") == 6 and _count_cpus("0") == 1


def test_eval_tensors_and_first_outputs():
    import numpy as np

    int8_input = {"dtype": "int8", "quantization": {"scale": 1 / 255, "zero_point": -128}, "shape": [1, 2]}
    assert _to_input_dtype(np.array([[0.0, 1.0]], np.float32), int8_input).tolist() == [[-128, 127]]
    outputs = [{"dtype": "int8", "shape": [1, 3], "quantization": {"scale": 0.5, "zero_point": 1}},
               {"dtype": "float32", "shape": [1]}]
    data = b"".join(np.array(v, np.int8).tobytes() + np.array([0.5], np.float32).tobytes()
                    for v in ([1, 9, 2], [7, -3, 0]))
    firsts = _first_outputs(data, outputs, 2)  # the first output of each sample, dequantized
    assert [values.tolist() for values in firsts] == [[0.0, 4.0, 0.5], [3.0, -2.0, -0.5]]
    assert [int(np.argmax(values)) for values in firsts] == [1, 0]
    with pytest.raises(JobFailed, match="output bytes"):
        _first_outputs(data[:-1], outputs, 2)


# --- whole sweeps: simulated phones (tests/phone: TEST CODE speaking the real ADB protocol to a real adb server) ---

import re  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import yaml  # noqa: E402
from conftest import farm  # noqa: E402


def phone_entry(lab, name: str, binary: Path, **overrides) -> dict:
    return {"name": name, "kind": "android", "serial": lab[name].serial, "adb_server": f"127.0.0.1:{lab.port}",
            "binaries": {"arm64-v8a": str(binary)}, "delegates": ["xnnpack", "none", "gpu"], "tags": ["phone"],
            **overrides}


def farm_inventory(tmp_path, lab, binary, fleet=None, boards=0, local=True) -> Path:
    devices = [phone_entry(lab, "pixel", binary), phone_entry(lab, "galaxy", binary)]
    if fleet is not None:
        devices += [host.device(python=sys.executable) for host in list(fleet)[:boards]]
    if local:
        devices.append({"name": "local", "kind": "local"})
    path = tmp_path / "farm.yaml"
    path.write_text(yaml.safe_dump({"devices": devices}))
    return path


def spec_file(tmp_path, digits_dir, inventory, name="phones", with_eval=True, **overrides) -> Path:
    model = {"name": "digits", "source": str(digits_dir / "digits.keras"), "variants": ["fp32", "int8"],
             "calibration": str(digits_dir / "digits_calib.npz")}
    if with_eval:
        # One benchmark_model run per eval sample on the phone (the stand-in starts Python each time): keep it short.
        model["eval"] = str(digits_dir / "digits_eval.npz")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "inventory": [str(inventory)], "models": [model],
        "delegates": ["xnnpack", "gpu"], "runs": 10, "warmup_runs": 2, "eval_limit": 10, "repeats": 1,
        **overrides}))
    return path


def rows(db: Path) -> list[dict]:
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    return [dict(r) for r in connection.execute(
        "SELECT j.device, v.kind AS variant, j.delegate, j.state, j.error, j.attempts, r.mean_ms, r.p50_ms, r.count, "
        "r.accuracy, r.agreement_with_fp32, r.delegate_outcome, r.runtime, r.env_before FROM jobs j "
        "JOIN variants v ON v.id = j.variant_id LEFT JOIN results r ON r.job_id = j.id ORDER BY j.id")]


def test_one_sweep_over_phones_boards_and_this_machine(tmp_path, adb_lab, benchmark_model_binary, ssh_fleet,
                                                        digits_dir):
    inventory = farm_inventory(tmp_path, adb_lab, benchmark_model_binary, ssh_fleet, boards=2)
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", spec_file(tmp_path, digits_dir, inventory), "--db", db)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr  # galaxy's build has no GPU: a failed job, said so
    by = {(r["device"], r["variant"], r["delegate"]): r for r in rows(db)}
    for phone in ("pixel", "galaxy"):
        for variant in ("fp32", "int8"):
            row = by[(phone, variant, "xnnpack")]
            assert row["state"] == "done", row
            assert row["runtime"] == "benchmark_model" and row["count"] >= 10 and 0 < row["mean_ms"] < 100
            assert row["accuracy"] >= 0.9 and row["agreement_with_fp32"] >= 0.95  # scored on the coordinator from pulled outputs
            battery = yaml.safe_load(row["env_before"])["battery"]
            assert battery["level"] == {"pixel": 85, "galaxy": 64}[phone]
    assert by[("pixel", "fp32", "gpu")]["state"] == "done"
    assert by[("pixel", "fp32", "gpu")]["delegate_outcome"] == "applied"
    for variant in ("fp32", "int8"):
        galaxy_gpu = by[("galaxy", variant, "gpu")]
        assert galaxy_gpu["state"] == "failed" and "--use_gpu=true" in galaxy_gpu["error"]  # never a CPU number as GPU
        for board in ("board1", "board2", "local"):
            assert by[(board, variant, "gpu")]["state"] == "skipped"
            assert by[(board, variant, "xnnpack")]["state"] == "done"
    facts = dict(sqlite3.connect(db).execute("SELECT name, facts FROM devices").fetchall())
    assert '"soc": "Tensor G3"' in facts["pixel"] and '"model": "Pixel 8"' in facts["pixel"]
    assert '"sdk": "33"' in facts["galaxy"] and '"abi": "arm64-v8a"' in facts["galaxy"]

    again = farm("sweep", "run", spec_file(tmp_path, digits_dir, inventory, name="again", delegates=["xnnpack"]),
                 "--db", db)
    pushed = int(re.search(r"; (\d+) bytes uploaded to devices", again.stdout).group(1))
    assert pushed == 0  # the same models and binary: checked on every device, nothing pushed


def test_a_phone_lost_mid_run_is_retried_and_the_sweep_finishes(tmp_path, healed_adb_lab, benchmark_model_binary,
                                                                digits_dir):
    inventory = farm_inventory(tmp_path, healed_adb_lab, benchmark_model_binary)
    db = tmp_path / "farm.db"
    pixel = healed_adb_lab["pixel"]

    def lose_then_return():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                running = sqlite3.connect(db, timeout=5).execute(
                    "SELECT count(*) FROM jobs WHERE device = 'pixel' AND state = 'running'").fetchone()[0]
            except sqlite3.OperationalError:
                running = 0
            if running:
                time.sleep(0.3)
                pixel.kill()
                time.sleep(1.0)
                pixel.start()  # back on the same port; reconnecting it is the transport's job (adb connect)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=lose_then_return, daemon=True)
    watcher.start()
    run = farm("sweep", "run", spec_file(tmp_path, digits_dir, inventory, name="lost", with_eval=False,
                                         delegates=["xnnpack"], min_secs=2.0), "--db", db)
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    result = rows(db)
    assert all(row["state"] == "done" for row in result), [(r["device"], r["state"], r["error"]) for r in result]  # the lost job was retried once the phone was back
    assert max(r["attempts"] for r in result if r["device"] == "pixel") == 2
    assert run.returncode in (0, 1)


def phone_job(model: Path, device, **overrides):
    from farm.paths import sha256_file
    from farm.tflite_file import describe_tflite
    from farm.transports import BenchmarkJob, LocalFile

    return BenchmarkJob(**{
        "model": LocalFile(model, sha256_file(model)), "description": describe_tflite(model),
        "delegate": Delegate.of(device, "xnnpack"), "threads": 1, "warmup_runs": 1, "runs": 3, "min_secs": 0.0,
        "max_secs": 30.0, "timeout_s": 60.0, **overrides})


def test_a_warm_phone_job_is_one_round_trip_then_the_eval_step(adb_lab, benchmark_model_binary, tiny_tflite,
                                                                 tmp_path):
    """The battery and thermals before and after ride in the run's shell call, and files checked over this
    connection are not checked again: a warm job is the run, then the eval loop, its pull and its cleanup."""
    import asyncio

    import numpy as np

    from farm.parse import parse
    from farm.paths import sha256_file
    from farm.transports import LocalFile
    from farm.transports.adb import AdbTransport

    device = parse_device(phone_entry(adb_lab, "pixel", benchmark_model_binary))
    eval_npz = tmp_path / "eval.npz"
    np.savez(eval_npz, x=np.random.default_rng(0).random((2, 256), dtype=np.float32), y=np.arange(2))
    job = phone_job(tiny_tflite, device, eval=LocalFile(eval_npz, sha256_file(eval_npz)))
    transport = AdbTransport(device)

    async def one_job():
        measured = parse(await transport.run_job(job))
        return measured, await transport.eval_predictions(job)

    async def two_jobs():
        await transport.probe()
        await one_job()  # the first job checks (or pushes) the binary, the model and the eval inputs
        return dict(transport.round_trips), *await one_job()

    zone = adb_lab["pixel"].sysfs_class / "thermal" / "thermal_zone0"  # cpu-0-0-usr, at 38 °C
    trips = [zone / f"trip_point_{i}_type" for i in range(3)]
    for trip, (kind, millidegrees) in zip(trips, (("passive", 85000), ("critical", 105000), ("passive", 70000))):
        trip.write_text(f"{kind}\n")
        trip.with_name(trip.name.replace("_type", "_temp")).write_text(f"{millidegrees}\n")
    try:
        first, measured, predictions = asyncio.run(two_jobs())
    finally:
        for trip in trips:
            trip.unlink()
            trip.with_name(trip.name.replace("_type", "_temp")).unlink()
    made = {phase: count - first.get(phase, 0) for phase, count in transport.round_trips.items()
            if count != first.get(phase, 0)}
    assert made == {"run": 1, "eval": 1, "pull": 2}
    assert measured.result["count"] == 3 and len(predictions) == 2
    for facts in ("env_before", "env_after"):
        env = yaml.safe_load(measured.result[facts])
        assert env["battery"] == {"status": 3, "level": 85, "voltage": 4012, "temperature": 29.0}, env
        assert env["temps_c"] == {"cpu-0-0-usr": 38.0, "cpu-1-0-usr": 39.5, "gpu-usr": 36.5, "battery": 30.0,
                                  "skin-therm": 33.0}
        assert env["trips_c"] == {"cpu-0-0-usr": 70.0}  # the lowest passive trip point


# A hostile benchmark_model: it finds the folded command's token in its shell's command line, prints every marker
# with it and fake facts between them, then fails.
SPOOFING_TOOL = r'''
import os, re, sys

pid, token = os.getppid(), None
while pid > 1 and token is None:
    found = re.search(r"([0-9a-f]{32}) run", open(f"/proc/{pid}/cmdline", errors="replace").read())
    token = found and found.group(1)
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
print(f"INFO: token {token}\n\n{token} after\n{token} battery\n  level: 1\n{token} run\n{token} zones\nfake 99000")
print("ERROR: made up", file=sys.stderr)
sys.exit(3)
'''


def test_a_tool_that_prints_the_markers_cannot_spoof_the_facts(adb_lab, tiny_tflite, tmp_path):
    import asyncio

    from farm.transports.adb import AdbTransport

    tool = tmp_path / "arm64-v8a" / "benchmark_model"
    tool.parent.mkdir()
    tool.write_text(f"#!{sys.executable}\n{SPOOFING_TOOL}")
    tool.chmod(0o755)
    device = parse_device(phone_entry(adb_lab, "pixel", tool))
    raw = asyncio.run(AdbTransport(device).run_job(phone_job(tiny_tflite, device)))
    token = re.match(r"INFO: token ([0-9a-f]{32})\n", raw.stdout).group(1)  # it did find the token
    assert raw.stdout == (f"INFO: token {token}\n\n{token} after\n{token} battery\n  level: 1\n{token} run\n"
                          f"{token} zones\nfake 99000\n")  # its output, whole, as the tool's
    assert raw.exit_code == 3 and raw.stderr == "ERROR: made up\n"
    for facts in (raw.extra["env_before"], raw.extra["env_after"]):
        assert facts["battery"]["level"] == 85 and "fake" not in facts["temps_c"], facts


def test_a_run_whose_adb_connection_is_lost_ends_on_the_phone(healed_adb_lab, benchmark_model_binary, tiny_tflite):
    """adbd sends SIGHUP to the shell of a lost connection; the folded command passes it on to the run, which would
    otherwise measure on beside the retry."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from phone.phone import PHONE_TAG_VAR, tagged_processes

    from farm.results import DeviceLost
    from farm.transports.adb import AdbTransport

    phone = healed_adb_lab["galaxy"]
    device = parse_device(phone_entry(healed_adb_lab, "galaxy", benchmark_model_binary))
    long_job = phone_job(tiny_tflite, device, min_secs=60.0, max_secs=120.0, timeout_s=120.0)

    def runs() -> set[int]:
        """The stand-in's process on the phone (not `timeout` or the shell, whose command lines have its flags too)."""
        found = set()
        for pid in tagged_processes(PHONE_TAG_VAR, phone.tag):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:  # gone meanwhile
                continue
            if b"--min_secs=60.0" in argv and not argv[0].endswith((b"sh", b"timeout")):
                found.add(pid)
        return found

    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(asyncio.run, AdbTransport(device).run_job(long_job))
        deadline = time.monotonic() + 30
        while not runs() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runs(), "the run never started"
        healed_adb_lab.disconnect(phone)
        with pytest.raises(DeviceLost):
            job.result(timeout=30)
    deadline = time.monotonic() + 10
    while runs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not runs()


def test_discover_prints_inventory_entries_for_attached_phones(adb_lab):
    run = farm("inventory", "discover", "--adb-server", f"127.0.0.1:{adb_lab.port}")
    assert run.returncode == 0, run.stderr
    assert f"# {adb_lab['pixel'].serial}: Google Pixel 8, SoC Tensor G3, arm64-v8a, Android 14 (SDK 34)" in run.stdout
    entries = {entry["serial"]: entry for entry in yaml.safe_load(run.stdout)["devices"]}
    assert set(entries) == {adb_lab["pixel"].serial, adb_lab["galaxy"].serial}
    galaxy = entries[adb_lab["galaxy"].serial]
    assert galaxy["kind"] == "android" and galaxy["adb_server"] == f"127.0.0.1:{adb_lab.port}"
    assert galaxy["binaries"] == {"arm64-v8a": "tools/arm64-v8a/benchmark_model"}


def test_a_pinned_phone_runs_under_taskset(tmp_path, adb_lab, benchmark_model_binary, digits_dir):
    inventory = tmp_path / "pinned-phones.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [
        phone_entry(adb_lab, "galaxy", benchmark_model_binary, affinity="1", delegates=["xnnpack"])]}))
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", spec_file(tmp_path, digits_dir, inventory, name="pinned", with_eval=False,
                                         delegates=["xnnpack"]), "--db", db)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    assert {r["state"] for r in rows(db)} == {"done"}


# --- onnx models: the stand-in onnxruntime_perf_test (tests/phone/onnxruntime_perf_test.py, real ONNX Runtime) ---

from phone import write_onnxruntime_perf_test  # noqa: E402
from phone.models import tiny_onnx  # noqa: E402


@pytest.fixture(scope="module")
def ort_tools(tmp_path_factory):
    """(the stand-in onnxruntime_perf_test as an arm64-v8a binary, a small MatMul+Add+Softmax .onnx built with
    onnx.helper, an eval set for it)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("onnx-phone")
    binary = write_onnxruntime_perf_test(folder / "arm64-v8a" / "onnxruntime_perf_test")
    model = tiny_onnx(folder / "tiny_mlp.onnx")
    np.savez(folder / "eval.npz", x=np.random.default_rng(0).random((4, 256), dtype=np.float32), y=np.arange(4))
    return binary, model, folder / "eval.npz"


def test_phones_run_onnx_models_with_onnxruntime_perf_test(tmp_path, adb_lab, benchmark_model_binary, ort_tools):
    """Planned like a sweep, run like a lane: pixel (its build has cpu and xnnpack) runs the onnx variant with none
    and xnnpack, fails only its nnapi job, skips gpu; galaxy names no onnxruntime_perf_test: its onnx jobs are skipped."""
    import asyncio
    import json

    from farm.inventory import load_inventory
    from farm.parse import parse
    from farm.paths import sha256_file
    from farm.plan import PlannedVariant, SweepSpec, plan_jobs
    from farm.transports import BenchmarkJob, LocalFile, open_transport

    binary, model, eval_npz = ort_tools
    inventory = tmp_path / "onnx-phones.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [
        phone_entry(adb_lab, "pixel", benchmark_model_binary, delegates=["none", "xnnpack", "nnapi", "gpu"],
                    onnxruntime_perf_test={"arm64-v8a": str(binary)}),
        phone_entry(adb_lab, "galaxy", benchmark_model_binary, delegates=["none", "xnnpack"])]}))
    devices = load_inventory(inventory).devices
    spec = SweepSpec(models=[{"source": str(model)}], delegates=["none", "xnnpack", "nnapi", "gpu"], repeats=1)
    jobs = plan_jobs(spec, devices, [PlannedVariant(1, "tiny_mlp", "onnx")])
    skipped = {(job["device"], job["delegate"]): job["error"] for job in jobs if job["state"] == "skipped"}
    no_tool = "phone 'galaxy' has no onnxruntime_perf_test (name one in its inventory entry to run onnx models)"
    assert skipped[("galaxy", "none")] == skipped[("galaxy", "xnnpack")] == no_tool
    assert skipped[("pixel", "gpu")] == ("the gpu delegate has no onnxruntime_perf_test execution provider (onnx "
                                         "models run with: none (cpu), nnapi, xnnpack)")
    pending = [job["delegate"] for job in jobs if job["state"] == "pending"]
    assert pending == ["none", "xnnpack", "nnapi"] and all(job["device"] == "pixel" for job in jobs
                                                            if job["state"] == "pending")

    pixel = devices[0]
    outcomes, predictions = {}, {}

    async def lane():  # as farm.run's lane: whatever one job raises fails that job only
        transport = open_transport(pixel)
        try:
            for delegate in pending:
                job = BenchmarkJob(model=LocalFile(model, sha256_file(model)), description={},
                                   delegate=Delegate.of(pixel, delegate), threads=2, warmup_runs=3, runs=20,
                                   min_secs=0.0, max_secs=150.0, timeout_s=120.0,
                                   eval=LocalFile(eval_npz, sha256_file(eval_npz)))
                try:
                    outcomes[delegate] = parse(await transport.run_job(job))
                    predictions[delegate] = await transport.eval_predictions(job)
                except JobFailed as error:
                    outcomes[delegate] = error
            return transport.bytes_uploaded
        finally:
            await transport.close()

    uploaded = asyncio.run(lane())
    for delegate, outcome in (("none", "cpu"), ("xnnpack", "unknown")):
        measured = outcomes[delegate]
        result = measured.result
        assert result["runtime"] == "onnxruntime_perf_test" and result["runtime_version"] == "onnxruntime_perf_test"
        assert result["delegate_outcome"] == outcome and result["count"] == 20
        assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"] <= result["max_ms"]
        assert result["min_ms"] <= result["mean_ms"] <= result["max_ms"] < 1000 and result["init_ms"] > 0
        assert result["memory_kind"] == "peak_rss" and 10 < result["peak_mb"] < 4096
        assert json.loads(result["env_before"])["battery"]["level"] == 85
        assert measured.samples_us == [] and measured.predictions is None and predictions[delegate] is None
        warnings = json.loads(result["warnings"])
        assert "accuracy is not measured by onnxruntime_perf_test: it reports no outputs of the model" in warnings
        assert ("warmup_runs=3 not applied: onnxruntime_perf_test always runs one warm-up inference (its first "
                "inference)") in warnings
    assert any(w.startswith("xnnpack requested; onnxruntime_perf_test does not print which nodes it ran")
               for w in json.loads(outcomes["xnnpack"].result["warnings"]))
    failed = outcomes["nnapi"]
    assert isinstance(failed, JobFailed)
    assert "NNAPI is not supported in this build" in str(failed) and str(failed).endswith("; exited with code 255")
    # content-addressed, as benchmark_model and .tflite files: the binary and the model pushed once for three jobs
    assert uploaded == binary.stat().st_size + model.stat().st_size
    assert adb_lab["pixel"].path(f"/data/local/tmp/tflite-farm/{sha256_file(model)}.onnx").read_bytes() == \
        model.read_bytes()


def test_stand_in_onnxruntime_perf_test_reads_like_the_real_tool(adb_lab, ort_tools):
    from farm.onnxruntime_perf_test import OnnxruntimePerfTestParseError, parse_onnxruntime_perf_test

    binary, model, _ = ort_tools
    device = adb_lab.device(adb_lab["galaxy"])  # its onnxruntime_perf_test build: cpu only
    folder = "/data/local/tmp/ort-stand-in"
    device.shell2(f"mkdir -p {folder}", v2=True)
    device.sync.push(str(binary), f"{folder}/onnxruntime_perf_test", mode=0o755)
    device.sync.push(str(model), f"{folder}/tiny.onnx", mode=0o644)

    def run(flags: str):
        return device.shell2(f"cd {folder} && ./onnxruntime_perf_test {flags}", timeout=60, v2=True)

    timed = run("-m duration -t 1 -x 2 -I tiny.onnx")
    assert timed.returncode == 0, timed.stderr
    log = parse_onnxruntime_perf_test(timed.stdout, timed.stderr, timed.returncode, "cpu")
    assert log.intra_op_threads == 2 and log.count > 10 and 1000 <= log.run_ms < 5000  # ran for -t 1 second
    printed = dict(line.split(": ", 1) for line in timed.stdout.splitlines() if line.startswith("Total inference req"))
    assert log.count == int(printed["Total inference requests"])

    for flags, code, says in (("-e foo -I tiny.onnx", 255, "See 'onnxruntime_perf_test --help'."),
                              ("-e xnnpack -I tiny.onnx", 255, "Xnnpack is not supported in this build"),
                              ("-r 5 tiny.onnx", 255, "there is no test data for model ort-stand-in"),
                              ("-I missing.onnx", 255, "Load model from missing.onnx failed")):
        failed = run(flags)
        assert failed.returncode == code and says in failed.stdout + failed.stderr, (flags, failed)
        with pytest.raises(OnnxruntimePerfTestParseError) as caught:
            parse_onnxruntime_perf_test(failed.stdout, failed.stderr, failed.returncode, "cpu")
        assert says in str(caught.value) and caught.value.tool_error
