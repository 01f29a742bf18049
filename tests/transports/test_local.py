"""The local transport against processes that misbehave with their pipes (this machine, real subprocesses)."""
import asyncio
import sys

import pytest

from farm.inventory import parse_device
from farm.transports import BenchmarkJob, Delegate, LocalFile
from farm.results import JobFailed
from farm.transports.agent import ReplyTooLarge
from farm.transports.local import LocalTransport

# TEST CODE: a "python" whose agent floods its pipes: for each request, an answer header that claims 8 MB (or, with
# GARBAGE, 8 MB of no header at all), the 8 MB, and 1 MB of stderr.
FLOOD = """#!{python}
import sys
for line in sys.stdin:
    if {garbage}:
        sys.stdout.buffer.write(b' ' * (8 << 20))
    else:
        sys.stdout.buffer.write(b'{{"exit": 0, "out": 8388608, "err": 0, "why": null}}'.ljust(127) + b'\\n' + b' ' * (8 << 20))
    sys.stdout.flush()
    sys.stderr.buffer.write(b'e' * (1 << 20))
"""


def job(model, **overrides) -> BenchmarkJob:
    fields = dict(model=LocalFile(model, "0" * 64), description={}, delegate=Delegate("none"), threads=1,
                  warmup_runs=0, runs=1, min_secs=0.0, max_secs=1.0, timeout_s=20.0)
    return BenchmarkJob(**{**fields, **overrides})


@pytest.mark.parametrize("garbage, failure, reason", [(False, ReplyTooLarge, "more than 0.0625 MB"),
                                                      (True, JobFailed, "not an answer header")])
def test_a_reply_past_its_cap_fails_the_job_and_never_hangs_the_lane(tmp_path, tiny_tflite, garbage, failure, reason):
    # The reader stops at the cap with the rest of the flood still in the pipe: closing the agent must not then wait
    # forever for a pipe end that a paused reader never sees (Python's wait() returns only once both pipes are closed).
    python = tmp_path / "flooding-python"
    python.write_text(FLOOD.format(python=sys.executable, garbage=garbage))
    python.chmod(0o755)
    transport = LocalTransport(parse_device({"name": "flood", "kind": "local", "python": str(python)}))

    async def ten_jobs():
        for _ in range(10):
            with pytest.raises(failure, match=reason):
                await asyncio.wait_for(transport.run_job(job(tiny_tflite, max_reply_bytes=64 << 10)), 30)
            assert transport.agent is None  # closed: its stream's place is lost, the next job starts a new one
        await transport.close()

    asyncio.run(ten_jobs())


def test_thermal_zones_a_device_lists_are_read_within_bounds():
    from farm.transports import parse_zones

    listing = "cpu-thermal 48500\ngpu 61\nbattery -\n\nhuge " + "9" * 5000 + "\n" + "x" * 300 + " 40000\n"
    zones = parse_zones(listing)
    assert zones == {"cpu-thermal": 48.5, "gpu": 61.0, "x" * 100: 40.0}  # whole degrees kept; junk and giants dropped


def test_throttling_trip_points_are_listed_by_the_shell_and_the_lowest_passive_one_kept(tmp_path):
    import subprocess

    from farm.transports import THERMAL_TRIPS, parse_trips

    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "type").write_text("cpu-thermal\n")
    for i, (kind, millidegrees) in enumerate((("passive", 85000), ("critical", 105000), ("passive", 70000))):
        (zone / f"trip_point_{i}_type").write_text(f"{kind}\n")
        (zone / f"trip_point_{i}_temp").write_text(f"{millidegrees}\n")
    (tmp_path / "thermal_zone1").mkdir()  # a zone with no trip points: nothing listed
    (tmp_path / "thermal_zone1" / "type").write_text("gpu\n")
    listed = subprocess.run(["sh", "-c", THERMAL_TRIPS], env={"FARM_THERMAL_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, check=True).stdout
    assert parse_trips(listed) == {"cpu-thermal": 70.0}
    assert parse_trips("junk\n" + "z " + "9" * 5000 + "\n") == {}
