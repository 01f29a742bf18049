"""A board that lies, over real SSH (tests/fleet): its "python" replays replies crafted by hypothesis (tests/hostile),
one per job, in the same sweeps as a healthy board that runs the real agent. No exception escapes the coordinator,
every crafted reply fails its job with a reason that names the fault, every healthy job is done, nothing the liar said
is stored, and resume finishes the sweep.

FARM_HOSTILE_REPLIES sets how many replies (500 by default, in sweeps of 100); benchmarks/faults.py runs more.
"""
import asyncio
import os
import sqlite3
import sys

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from farm.inventory import load_inventory
from farm.plan import parse_spec
from farm.run import SweepRunner
from farm.store import Store
from farm.sweep import create_sweep
from hostile import Replayer, faults

REPLIES = int(os.environ.get("FARM_HOSTILE_REPLIES") or 500)
PER_SWEEP = 100
LIMIT = 256 << 10  # the sweeps' max_reply_bytes
HEALTHY_JOBS = 3


@pytest.fixture(scope="module")
def lab(tmp_path_factory, ssh_fleet, tiny_tflite):
    folder = tmp_path_factory.mktemp("hostile-board")
    replayer = Replayer(folder / "replies", agent_python=sys.executable)
    liar, healthy = ssh_fleet[0], ssh_fleet[1]
    inventory = folder / "lab.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [
        liar.device(name="liar", python=str(replayer.script), delegates=["none"], workspace=str(folder / "liar")),
        healthy.device(python=sys.executable, delegates=["none"], workspace=str(folder / "healthy"))]}))
    spec = parse_spec({"name": "hostile", "inventory": [str(inventory)], "models": [{"source": str(tiny_tflite)}],
                       "runs": 3, "warmup_runs": 0, "max_reply_bytes": LIMIT}, "test").resolve(folder)
    store = Store(folder / "farm.db")
    first = create_sweep(store, spec, "test", log=lambda line: None)  # records the model and the devices once
    variant_id = store.jobs(first.id)[0].variant_id
    devices = {device.name: device for device in load_inventory(inventory).devices}
    return store, replayer, spec, devices, variant_id, healthy.name, folder / "farm.db"


def job(device: str, variant_id: int, repeat: int) -> dict:
    return {"device": device, "variant_id": variant_id, "delegate": "none", "threads": 1, "repeat": repeat,
            "state": "pending", "error": None}


@settings(max_examples=-(-REPLIES // PER_SWEEP), deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(replies=st.lists(faults(LIMIT), min_size=PER_SWEEP, max_size=PER_SWEEP))
def test_crafted_replies_fail_their_jobs_and_nothing_else(lab, replies):
    store, replayer, spec, devices, variant_id, healthy, db = lab
    replayer.load(replies)
    # The liar gets a job per reply and the healthy board a few, in one sweep (a plan would give both the same count).
    jobs = [job("liar", variant_id, repeat) for repeat in range(len(replies))]
    jobs += [job(healthy, variant_id, repeat) for repeat in range(HEALTHY_JOBS)]
    sweep = store.create_sweep(store.unique_sweep_name("hostile"), spec.model_dump(), jobs)

    asyncio.run(SweepRunner(store, sweep, spec, devices).run())  # nothing escapes

    rows = store.jobs(sweep.id)
    assert replayer.answered() == len(replies)  # each job got its own reply: none was retried as a lost device
    for row, fault in zip([row for row in rows if row.device == "liar"], replies):
        assert row.state == "failed" and row.error.startswith(fault.reason), (fault.kind, fault.stdout[:120], row.error)
    assert [row.state for row in rows if row.device == healthy] == ["done"] * HEALTHY_JOBS
    stored = sqlite3.connect(db).execute(
        "SELECT j.device, count(*) FROM results r JOIN jobs j ON j.id = r.job_id WHERE j.sweep_id = ? GROUP BY j.device",
        (sweep.id,)).fetchall()
    assert stored == [(healthy, HEALTHY_JOBS)]  # nothing the liar said is stored

    asyncio.run(SweepRunner(store, sweep, spec, devices).run())  # resume: finishes, runs nothing twice
    assert store.sweep(sweep.name).state == "done" and store.counts(sweep.id)["done"] == HEALTHY_JOBS
