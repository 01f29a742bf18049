"""Harness test: the simulated phones (tests/phone), driven like real phones: a real adb server (Debian's adb)
and adbutils.

Every test goes through the real server: adbutils -> adb server (TCP, its own port) -> our adbd.py over the ADB wire
protocol -> a real `sh` in the phone's sandbox. The stand-in benchmark_model runs real LiteRT inference there and
its output must parse with farm.benchmark_model to the numbers it printed.
"""
from __future__ import annotations

import io
import re
import stat
import threading
import time

import adbutils
import numpy as np
import pytest
from phone import Lab, SimulatedPhone
from phone.models import INPUT_NAME
from phone.phone import LAB_TAG_VAR, PHONE_TAG_VAR, port_free, tagged_processes

from farm.benchmark_model import BenchmarkModelParseError, parse_benchmark_model

WORKDIR = "/data/local/tmp/tflite-farm"
FAST = "--num_threads=1 --warmup_runs=2 --warmup_min_secs=0 --min_secs=0"


def install(lab: Lab, phone: SimulatedPhone, binary, model) -> adbutils.AdbDevice:
    """What the coordinator does: push the binary (mode 755) and the model into the work folder."""
    device = lab.device(phone)
    device.sync.push(str(binary), f"{WORKDIR}/benchmark_model", mode=0o755)
    device.sync.push(str(model), f"{WORKDIR}/{model.name}", mode=0o644)
    return device


def run(device: adbutils.AdbDevice, flags: str, timeout: float = 60):
    return device.shell2(f"cd {WORKDIR} && ./benchmark_model {flags}", timeout=timeout, v2=True)


# --------------------------------------------------------------------------------------------------------------------
# adb: devices, properties, shell

def test_both_phones_are_devices_of_the_real_adb_server(adb_lab):
    states = adb_lab.devices()
    for phone in adb_lab.phones.values():
        assert re.fullmatch(r"127\.0\.0\.1:\d+", phone.serial)
        assert states[phone.serial] == "device"
    assert {d.serial for d in adb_lab.client().device_list()} >= {p.serial for p in adb_lab.phones.values()}
    # the CNXN banner's properties, as the server parsed them
    listing = adb_lab.run_adb("devices", "-l").stdout
    assert re.search(re.escape(adb_lab["pixel"].serial) + r"\s+device .*product:shiba model:Pixel_8 device:shiba",
                     listing), listing
    assert "shell_v2" in adb_lab.device(adb_lab["pixel"]).get_features().split(",")


def test_getprop_answers_from_the_phone_properties(adb_lab):
    pixel, galaxy = adb_lab.device(adb_lab["pixel"]), adb_lab.device(adb_lab["galaxy"])
    assert pixel.getprop("ro.product.model") == "Pixel 8"
    assert pixel.getprop("ro.soc.model") == "Tensor G3"
    assert pixel.getprop("ro.board.platform") == "zuma"
    assert pixel.getprop("ro.product.cpu.abi") == "arm64-v8a"
    assert pixel.getprop("ro.build.version.sdk") == "34"
    assert galaxy.getprop("ro.product.manufacturer") == "samsung"
    assert galaxy.getprop("ro.build.version.release") == "13"
    assert pixel.getprop("no.such.property") == ""
    listing = pixel.shell2("getprop", v2=True).stdout
    assert "[ro.product.cpu.abi]: [arm64-v8a]\n" in listing
    adb_lab["galaxy"].set_prop("persist.test.marker", "42")
    assert galaxy.shell2("getprop persist.test.marker", v2=True).stdout == "42\n"


def test_shell_v2_gives_exit_code_and_separate_streams(adb_lab):
    device = adb_lab.device(adb_lab["pixel"])
    result = device.shell2("echo out; echo err >&2; echo more; exit 3", v2=True)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\nmore\n", "err\n")
    assert device.shell2("true", v2=True).returncode == 0
    killed = device.shell2("kill -9 $$", v2=True)
    assert killed.returncode == 128 + 9  # adbd: 0x80 | signal
    # the raw shell (no shell protocol): stdout and stderr in one stream, no exit code
    assert device.shell("echo one; echo two >&2") == "one\ntwo"
    # the adb command line's shell goes through the same server
    proc = adb_lab.run_adb("-s", adb_lab["pixel"].serial, "shell", "echo cli; exit 7", check=False)
    assert (proc.returncode, proc.stdout) == (7, "cli\n")


def test_shell_sees_the_phone_file_system(adb_lab):
    phone = adb_lab["pixel"]
    device = adb_lab.device(phone)
    result = device.shell2("cd /data/local/tmp && pwd && echo hello > made-by-shell.txt && ls", v2=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "/data/local/tmp"
    assert phone.path("/data/local/tmp/made-by-shell.txt").read_text() == "hello\n"
    assert device.shell2("echo $PATH", v2=True).stdout.split(":")[:5] == [
        "/product/bin", "/apex/com.android.runtime/bin", "/apex/com.android.art/bin", "/system_ext/bin", "/system/bin"]
    assert device.shell2("ls /sdcard /system/bin", v2=True).returncode == 0
    # the other phone has its own /data
    assert adb_lab.device(adb_lab["galaxy"]).shell2("ls /data/local/tmp/made-by-shell.txt", v2=True).returncode != 0


def test_battery_and_thermal_come_from_files_the_test_controls(adb_lab):
    phone = adb_lab["galaxy"]
    device = adb_lab.device(phone)
    phone.set_battery(level=17, temperature_c=41.5, status="Charging")
    battery = device.shell2("dumpsys battery", v2=True).stdout
    assert "  level: 17\n" in battery and "  temperature: 415\n" in battery and "  status: 2\n" in battery
    phone.set_temperature("cpu-0-0-usr", 57.25)
    assert device.shell2("cat /sys/class/thermal/thermal_zone0/temp", v2=True).stdout == "57250\n"
    assert device.shell2("cat /sys/class/thermal/thermal_zone0/type", v2=True).stdout == "cpu-0-0-usr\n"
    thermal = device.shell2("dumpsys thermalservice", v2=True).stdout
    assert "Temperature{mValue=57.2, mType=0, mName=cpu-0-0-usr, mStatus=3}" in thermal  # %.1f of 57.25
    assert "Thermal Status: 3\n" in thermal
    phone.set_battery(level=64, temperature_c=29.0, status="Discharging")
    phone.set_temperature("cpu-0-0-usr", 38.0)


# --------------------------------------------------------------------------------------------------------------------
# sync: push, stat, list, pull

def test_push_stat_list_pull_round_trip(adb_lab, tmp_path):
    phone = adb_lab["pixel"]
    device = adb_lab.device(phone)
    small = tmp_path / "small.txt"
    small.write_text("small file\n")
    big = tmp_path / "big.bin"
    big.write_bytes(np.random.default_rng(7).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes())  # many DATA

    assert device.sync.push(str(small), f"{WORKDIR}/sync/small.txt", mode=0o644) == small.stat().st_size
    assert device.sync.push(str(big), f"{WORKDIR}/sync/big.bin", mode=0o755) == 3_000_000

    info = device.sync.stat(f"{WORKDIR}/sync/big.bin")
    assert info.size == 3_000_000 and stat.S_ISREG(info.mode)
    # adbd copies the user's permission bits to group and other: 0755 -> 0777, 0644 -> 0666
    assert stat.S_IMODE(info.mode) == 0o777
    assert stat.S_IMODE(device.sync.stat(f"{WORKDIR}/sync/small.txt").mode) == 0o666
    assert device.sync.stat(f"{WORKDIR}/sync/missing").mode == 0
    names = {f.path: f for f in device.sync.list(f"{WORKDIR}/sync")}
    assert {"small.txt", "big.bin"} <= set(names) and names["big.bin"].size == 3_000_000

    back = tmp_path / "big.back"
    assert device.sync.pull(f"{WORKDIR}/sync/big.bin", back) == 3_000_000
    assert back.read_bytes() == big.read_bytes()
    assert phone.path(f"{WORKDIR}/sync/big.bin").read_bytes() == big.read_bytes()
    assert device.sync.read_text(f"{WORKDIR}/sync/small.txt") == "small file\n"

    # the adb command line (its own sync client: stat_v2, ls_v2) against the same phone
    proc = adb_lab.run_adb("-s", phone.serial, "push", str(big), f"{WORKDIR}/cli/big.bin", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = adb_lab.run_adb("-s", phone.serial, "pull", f"{WORKDIR}/cli/big.bin", str(tmp_path / "cli.bin"))
    assert (tmp_path / "cli.bin").read_bytes() == big.read_bytes()
    assert "big.bin" in adb_lab.run_adb("-s", phone.serial, "ls", f"{WORKDIR}/cli").stdout


def test_pushed_mode_decides_what_runs(adb_lab, tmp_path):
    device = adb_lab.device(adb_lab["pixel"])
    script = tmp_path / "hello.sh"
    script.write_text("#!/system/bin/sh\necho hello from $0\n")
    device.sync.push(str(script), f"{WORKDIR}/exec/hello", mode=0o755)
    device.sync.push(str(script), f"{WORKDIR}/exec/not-executable", mode=0o644)
    ok = device.shell2(f"cd {WORKDIR}/exec && ./hello", v2=True)
    assert (ok.returncode, ok.stdout) == (0, "hello from ./hello\n")
    denied = device.shell2(f"cd {WORKDIR}/exec && ./not-executable", v2=True)
    assert denied.returncode == 126 and "Permission denied" in denied.stderr


# --------------------------------------------------------------------------------------------------------------------
# the stand-in benchmark_model

def test_stand_in_runs_a_real_model_and_parses(adb_lab, tiny_tflite, benchmark_model_binary):
    device = install(adb_lab, adb_lab["pixel"], benchmark_model_binary, tiny_tflite)
    result = run(device, f"--graph={tiny_tflite.name} {FAST} --num_runs=25 --report_peak_memory_footprint=true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("INFO: STARTING!\n")
    assert "Created TensorFlow Lite XNNPACK delegate for CPU." in result.stderr  # the real runtime said it
    log = parse_benchmark_model(result.stdout, result.stderr, result.returncode, requested_delegate="xnnpack")
    assert log.count == 25
    assert log.mean_ms > 0 and log.init_ms > 0 and log.first_ms > 0 and log.warmup_avg_ms > 0
    assert log.min_ms <= log.median_ms <= log.max_ms
    assert log.model_size_mb == pytest.approx(tiny_tflite.stat().st_size / 1e6, rel=1e-5)
    assert log.memory_report == "footprint_delta" and log.peak_mb > 0
    assert (log.delegate.name, log.delegate.outcome) == ("XNNPACK", "applied")
    assert (log.delegate.delegated_nodes, log.delegate.total_nodes) == (4, 4)
    # the parser read back what the tool printed
    summary = re.search(r"Inference \(avg\): (\S+)", result.stdout).group(1)
    assert log.mean_ms == pytest.approx(float(summary) / 1000)
    assert "count=25 " in result.stdout


def test_stand_in_reads_input_files_and_writes_outputs(adb_lab, tiny_tflite, benchmark_model_binary, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    device = install(adb_lab, adb_lab["galaxy"], benchmark_model_binary, tiny_tflite)
    x = np.random.default_rng(3).standard_normal((1, 256)).astype(np.float32)
    (tmp_path / "input.bin").write_bytes(x.tobytes())
    device.sync.push(str(tmp_path / "input.bin"), f"{WORKDIR}/input.bin", mode=0o644)
    result = run(device, f"--graph={tiny_tflite.name} {FAST} --num_runs=3 --input_layer={INPUT_NAME} "
                         f"--input_layer_shape=1,256 --input_layer_value_files={INPUT_NAME}:{WORKDIR}/input.bin "
                         f"--output_filepath={WORKDIR}/output.bin")
    assert result.returncode == 0, result.stderr
    got = np.frombuffer(device.sync.read_bytes(f"{WORKDIR}/output.bin"), dtype=np.float32)
    interp = Interpreter(model_path=str(tiny_tflite))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    want = interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # a file of the wrong size is FATAL, as in the real tool: abort, killed by SIGABRT
    device.sync.push(b"\0" * 12, f"{WORKDIR}/short.bin")
    bad = run(device, f"--graph={tiny_tflite.name} {FAST} --input_layer={INPUT_NAME} --input_layer_shape=1,256 "
                      f"--input_layer_value_files={INPUT_NAME}:{WORKDIR}/short.bin")
    assert bad.returncode == 128 + 6 and "It should be 1024 bytes." in bad.stderr


def test_unknown_delegate_flag_is_unconsumed_and_runs_on_cpu(adb_lab, tiny_tflite, benchmark_model_binary):
    # galaxy's build has no GPU provider: the flag is only warned about, the run is a CPU run, exit 0
    device = install(adb_lab, adb_lab["galaxy"], benchmark_model_binary, tiny_tflite)
    result = run(device, f"--graph={tiny_tflite.name} {FAST} --num_runs=5 --use_gpu=true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["INFO: STARTING!", "WARN: Unconsumed cmdline flags: --use_gpu=true"]
    log = parse_benchmark_model(result.stdout, result.stderr, result.returncode, requested_delegate="gpu")
    assert log.delegate.outcome == "not_applied"
    assert log.unconsumed_flags == ["--use_gpu=true"]
    assert log.delegate.outcome in ("not_applied", "failed")
    assert log.count == 5 and log.mean_ms > 0

    # pixel's build has it (simulated: the delegate "takes" the graph, the model really runs on the CPU kernels)
    device = install(adb_lab, adb_lab["pixel"], benchmark_model_binary, tiny_tflite)
    result = run(device, f"--graph={tiny_tflite.name} {FAST} --num_runs=5 --use_gpu=true")
    log = parse_benchmark_model(result.stdout, result.stderr, result.returncode, requested_delegate="gpu")
    assert "Unconsumed" not in result.stdout and "INFO: Use gpu: [1]" in result.stdout
    assert (log.delegate.name, log.delegate.outcome) == ("GPU", "applied")
    # and Hexagon is there but unsupported: a silent CPU fallback
    result = run(device, f"--graph={tiny_tflite.name} {FAST} --num_runs=5 --use_hexagon=true")
    log = parse_benchmark_model(result.stdout, result.stderr, result.returncode, requested_delegate="hexagon")
    assert result.returncode == 0 and log.delegate.outcome == "not_applied"


def test_stand_in_failures_read_like_the_real_tool(adb_lab, tiny_tflite, benchmark_model_binary):
    device = install(adb_lab, adb_lab["pixel"], benchmark_model_binary, tiny_tflite)
    cases = {
        "bad_flag": (f"--graph={tiny_tflite.name} --num_runs=abc",
                     "ERROR: Failed to parse flag 'num_runs' against argv '--num_runs=abc'"),
        "model_failed": ("--graph=missing.tflite", "ERROR: Could not open 'missing.tflite'."),
        "delegate_failed": (f"--graph={tiny_tflite.name} --use_nnapi=true", "ERROR: Failed to apply NNAPI delegate."),
    }
    for kind, (flags, line) in cases.items():
        result = run(device, flags)
        assert result.returncode == 1, (kind, result.stdout)
        assert line in result.stderr.splitlines()
        assert result.stderr.rstrip().endswith("ERROR: Benchmarking failed.")
        with pytest.raises(BenchmarkModelParseError) as caught:
            parse_benchmark_model(result.stdout, result.stderr, result.returncode, requested_delegate="nnapi")
        assert caught.value.kind == kind
    device.sync.push(b"not a model at all", f"{WORKDIR}/broken.tflite")
    result = run(device, "--graph=broken.tflite")
    assert result.returncode == 1 and "ERROR: The model is not a valid Flatbuffer buffer" in result.stderr


# --------------------------------------------------------------------------------------------------------------------
# losing a phone

class _KillingReader(io.RawIOBase):
    """A file that kills the phone after `after` reads: the push is cut in the middle, deterministically."""

    def __init__(self, phone: SimulatedPhone, after: int):
        self.phone, self.after, self.reads = phone, after, 0

    def readable(self):
        return True

    def read(self, size=-1):
        self.reads += 1
        if self.reads == self.after:
            self.phone.kill()
        return b"x" * 4096 if self.reads < 5000 else b""


def test_killed_phone_raises_and_comes_back(healed_adb_lab):
    lab = healed_adb_lab
    phone = lab["galaxy"]
    device = lab.device(phone)

    # shell protocol v2: the stream ends without an exit packet -> adbutils reads EOF
    timer = threading.Timer(0.5, phone.kill)
    timer.start()
    started = time.monotonic()
    with pytest.raises(EOFError):
        device.shell2("echo started; sleep 20; echo never", v2=True)
    assert time.monotonic() - started < 10
    timer.join()
    assert not phone.running and port_free(phone.port)  # nothing answers on the port any more
    assert not tagged_processes(PHONE_TAG_VAR, phone.tag)  # the phone's sh and sleep died with it
    # the server keeps the transport as offline while it retries: every call fails at once
    with pytest.raises(adbutils.AdbError, match="offline|not found"):
        device.shell2("echo x", v2=True)

    phone.start()
    lab.connect(phone)
    assert device.shell2("echo back", v2=True).stdout == "back\n"

    # the raw shell (no shell protocol) cannot tell: it returns what it got before the phone died
    timer = threading.Timer(0.5, phone.kill)
    timer.start()
    assert device.shell("echo started; sleep 20; echo never") == "started"
    timer.join()
    phone.start()
    lab.connect(phone)

    # a push cut in the middle: the sync status never comes
    with pytest.raises(adbutils.AdbError):
        device.sync.push(_KillingReader(phone, after=50), f"{WORKDIR}/cut.bin")
    phone.start()
    lab.connect(phone)
    assert device.sync.stat(f"{WORKDIR}/cut.bin").size < 5000 * 4096


def test_lab_stop_leaves_no_server_and_no_phone(tmp_path):
    lab = Lab(tmp_path / "lab").start()
    try:
        phone = lab.add_phone("solo", delegates={})
        assert lab.devices()[phone.serial] == "device"
        assert tagged_processes(LAB_TAG_VAR, lab.tag)  # the adb server carries the lab's tag
    finally:
        lab.stop()
    assert not tagged_processes(LAB_TAG_VAR, lab.tag)
    assert not tagged_processes(PHONE_TAG_VAR, phone.tag)
    assert port_free(lab.port) and port_free(phone.port)
