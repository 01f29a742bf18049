"""CPU control on a Linux board (a real SSH board of the test fleet): an affinity mask runs the agent under taskset,
and pin_governor sets every cpufreq policy for the sweep and restores it after, even when the sweep fails. The board's
cpufreq is a folder the test lays out as sysfs does (FARM_CPU_ROOT in its login environment moves
/sys/devices/system/cpu there, for the agent and the transport alike)."""
import contextlib
import json
import os
import sqlite3
import subprocess
import sys

import yaml
from conftest import farm


def cpufreq(tmp_path, *policies: str, governor: str = "schedutil"):
    root = tmp_path / "cpu"
    for policy in policies:
        (root / "cpufreq" / policy).mkdir(parents=True)
        (root / "cpufreq" / policy / "scaling_governor").write_text(governor + "\n")
    (root / "cpu0").mkdir()
    os.symlink("../cpufreq/policy0", root / "cpu0" / "cpufreq")  # as sysfs links cpu0 to its policy
    return root


def governors(root) -> dict[str, str]:
    return {p.name: (p / "scaling_governor").read_text().strip() for p in sorted((root / "cpufreq").iterdir())
            if (p / "scaling_governor").is_file()}


def sweep(tmp_path, host, model, name, **overrides):
    lab = tmp_path / f"{name}-lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(python=sys.executable, delegates=["none"], affinity="1",
                                                           workspace=str(tmp_path / "workspace"))]}))
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({"name": name, "inventory": [str(lab)], "models": [{"source": str(model)}],
                                    "delegates": ["none"], "runs": 5, "warmup_runs": 0, "repeats": 2,
                                    "pin_governor": "performance", **overrides}))
    run = farm("sweep", "run", spec, "--db", tmp_path / "farm.db")
    rows = sqlite3.connect(tmp_path / "farm.db").execute(
        "SELECT r.env_before, r.host FROM results r JOIN jobs j ON j.id = r.job_id JOIN sweeps s ON s.id = j.sweep_id "
        "WHERE s.name = ? ORDER BY j.id", (name,)).fetchall()
    return run, [(json.loads(env), json.loads(host)) for env, host in rows]


def test_the_governor_is_pinned_for_the_sweep_and_restored_and_the_agent_runs_on_its_mask(tmp_path, ssh_fleet,
                                                                                          tiny_tflite):
    host = ssh_fleet[3]
    root = cpufreq(tmp_path, "policy0", "policy4")
    with host.login_environment(FARM_CPU_ROOT=root):
        run, results = sweep(tmp_path, host, tiny_tflite, "pinned")
        assert run.returncode == 0, run.stdout + run.stderr
        assert [env["governor"] for env, _ in results] == ["performance"] * 2  # recorded with every result
        assert all(facts["cpus_allowed"] == [0] for _, facts in results)  # taskset 1: CPU 0 only
        assert governors(root) == {"policy0": "schedutil", "policy4": "schedutil"}  # restored after

        failed, _ = sweep(tmp_path, host, tiny_tflite, "failing", min_secs=30, timeout_s=1)
        assert failed.returncode == 1, failed.stdout + failed.stderr  # every job timed out...
        assert governors(root) == {"policy0": "schedutil", "policy4": "schedutil"}  # ...and it is restored all the same


@contextlib.contextmanager
def unwritable(path):
    """A file that not even root may write while the block runs, as a board refuses a governor without permission:
    immutable (chattr +i) where the file system has the flag, else a read-only bind mount of it."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_governor_that_cannot_be_set_is_said_and_the_sweep_goes_on(tmp_path, ssh_fleet, tiny_tflite):
    host = ssh_fleet[3]
    root = cpufreq(tmp_path, "policy0", "policy4")
    with host.login_environment(FARM_CPU_ROOT=root), unwritable(root / "cpufreq" / "policy4" / "scaling_governor"):
        run, results = sweep(tmp_path, host, tiny_tflite, "refused")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{host.name}: note — governor not pinned to performance: governor: cannot set policy4" in run.stdout
    assert governors(root) == {"policy0": "schedutil", "policy4": "schedutil"}  # the part that was set, put back
    assert [env["governor"] for env, _ in results] == ["schedutil"] * 2
