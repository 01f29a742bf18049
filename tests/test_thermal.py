"""The thermal gate on a real SSH board of the test fleet whose thermal zone is a file the test heats and cools
(FARM_THERMAL_ROOT in the board's login environment moves /sys/class/thermal there, for the agent and the gate)."""
import json
import re
import sqlite3
import sys
import threading
from contextlib import contextmanager

import yaml
from conftest import farm


def set_temp(temp, celsius: float) -> None:
    """Write a zone's reading as the kernel serves it, whole: a reader never sees the file empty mid-write."""
    partial = temp.with_name("temp.new")
    partial.write_text(f"{int(celsius * 1000)}\n")
    partial.replace(temp)


@contextmanager
def hot_board(host, tmp_path, celsius: float, passive_trip_c: float | None = None):
    """The board, its one thermal zone at `celsius` (where the kernel throttles from `passive_trip_c`, if given, as a
    passive trip point between a hot and a critical one); yields the zone's temp file."""
    zone = tmp_path / "zones" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{int(celsius * 1000)}\n")
    if passive_trip_c is not None:
        for i, (kind, trip) in enumerate((("hot", passive_trip_c - 10), ("passive", passive_trip_c),
                                          ("critical", passive_trip_c + 30))):
            (zone / f"trip_point_{i}_type").write_text(f"{kind}\n")
            (zone / f"trip_point_{i}_temp").write_text(f"{int(trip * 1000)}\n")
    with host.login_environment(FARM_THERMAL_ROOT=zone.parent):
        yield zone / "temp"


def sweep(tmp_path, host, model, name, **cooldown):
    """A 2-repeat sweep of `model` on the board, behind the thermal gate; (the run, each result's env_before)."""
    lab = tmp_path / f"{name}-lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [host.device(python=sys.executable, delegates=["none"],
                                                           workspace=str(tmp_path / "workspace"))]}))
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({"name": name, "inventory": [str(lab)], "models": [{"source": str(model)}],
                                    "delegates": ["none"], "runs": 5, "warmup_runs": 0, "repeats": 2,
                                    "cooldown": {"max_temp_c": 45, "poll_s": 0.3, **cooldown}}))
    run = farm("sweep", "run", spec, "--db", tmp_path / "farm.db")
    rows = sqlite3.connect(tmp_path / "farm.db").execute(
        "SELECT r.env_before FROM results r JOIN jobs j ON j.id = r.job_id JOIN sweeps s ON s.id = j.sweep_id "
        "WHERE s.name = ? ORDER BY j.id", (name,)).fetchall()
    return run, [json.loads(env) for (env,) in rows]


def test_a_hot_board_is_waited_for_until_it_cools(tmp_path, ssh_fleet, tiny_tflite):
    host = ssh_fleet[2]
    with hot_board(host, tmp_path, 60.0) as temp:
        stop = threading.Event()

        def fan():  # once the board has been probed, 2 °C cooler every half second, down to 40 °C
            staged = tmp_path / "workspace" / "files"
            while not stop.wait(0.1) and not (staged.is_dir() and any(staged.glob("*.py"))):
                pass
            celsius = 60.0
            while not stop.wait(0.5):
                celsius = max(celsius - 2.0, 40.0)
                set_temp(temp, celsius)

        cooling = threading.Thread(target=fan)
        cooling.start()
        try:
            run, envs = sweep(tmp_path, host, tiny_tflite, "cool", max_wait_s=60)
        finally:
            stop.set()
            cooling.join()
    assert run.returncode == 0, run.stdout + run.stderr
    said = re.search(rf"{host.name}: cooling — cpu-thermal at ([0-9.]+) °C, above 45 °C", run.stdout)
    assert said and float(said.group(1)) > 45, run.stdout
    first, second = (env["cooldown"] for env in envs)
    assert first["until"] == "cool" and first["start_c"] > 45.0 and first["end_c"] <= 45.0, first
    assert 1.0 <= first["waited_s"] < 30, first
    assert second["until"] == "cool" and second["waited_s"] < 1.0, second  # already cool: no wait
    assert all(env["temps_c"]["cpu-thermal"] <= 45.0 for env in envs)  # the agent read the same zone


def test_a_board_that_stops_cooling_or_cools_too_slowly_is_not_waited_for_forever(tmp_path, ssh_fleet, tiny_tflite):
    host = ssh_fleet[2]
    with hot_board(host, tmp_path, 60.0):
        run, envs = sweep(tmp_path, host, tiny_tflite, "plateau", max_wait_s=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [env["cooldown"]["until"] for env in envs] == ["stopped falling"] * 2
    assert all(env["cooldown"]["waited_s"] < 5 for env in envs)  # 4 readings 0.3 s apart, not 60 s

    with hot_board(host, tmp_path / "slow", 60.0) as temp:
        stop = threading.Event()

        def slow_fan():  # once the board has been probed, 1 °C every 0.3 s: still falling when the wait runs out
            staged = tmp_path / "slow" / "workspace" / "files"
            while not stop.wait(0.1) and not (staged.is_dir() and any(staged.glob("*.py"))):
                pass
            celsius = 60.0
            while not stop.wait(0.3):
                celsius -= 1.0
                set_temp(temp, celsius)

        cooling = threading.Thread(target=slow_fan)
        cooling.start()
        try:
            run, envs = sweep(tmp_path / "slow", host, tiny_tflite, "slow", max_wait_s=2)
        finally:
            stop.set()
            cooling.join()
    assert run.returncode == 0, run.stdout + run.stderr
    first = envs[0]["cooldown"]
    assert first["until"] == "max_wait_s" and 2.0 <= first["waited_s"] < 4.0 and first["end_c"] > 45.0, first


def test_a_board_throttling_during_its_jobs_is_flagged_hot_though_it_warmed_by_nothing(tmp_path, ssh_fleet, tiny_tflite):
    from farm.report import configurations
    from farm.store import Store

    host = ssh_fleet[2]
    with hot_board(host, tmp_path, 72.0, passive_trip_c=70.0):
        run, envs = sweep(tmp_path, host, tiny_tflite, "throttled", max_temp_c=80)
    assert run.returncode == 0, run.stdout + run.stderr
    assert all(env["trips_c"] == {"cpu-thermal": 70.0} and env["temps_c"] == {"cpu-thermal": 72.0} for env in envs)
    store = Store(tmp_path / "farm.db", create=False)
    (row,) = configurations(store, store.sweep("throttled").id)
    assert "hot" in row["flags"]  # 72 °C against a passive trip at 70: throttled, though it never rose

    with hot_board(host, tmp_path / "cool", 72.0, passive_trip_c=90.0):
        sweep(tmp_path / "cool", host, tiny_tflite, "unthrottled", max_temp_c=80)
    store = Store(tmp_path / "cool" / "farm.db", create=False)
    (row,) = configurations(store, store.sweep("unthrottled").id)
    assert "hot" not in row["flags"]
