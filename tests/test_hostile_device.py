"""A device that lies: this machine as a second device whose "python" is a script that answers every job with a
crafted reply (test code), in one sweep with the real agent on a healthy device. Nothing escapes the coordinator,
each hostile job fails with a reason that names its fault, every healthy job is done, and resume finishes the sweep."""
import sqlite3
import sys

import yaml

from conftest import farm

# The fault each job's thread count selects, and what its failure must say.
FAULTS = {
    1: ("drop the delegate", "agent reply: delegate: missing"),
    2: ("NaN init", "agent reply: not JSON"),
    3: ("2 MB of output", "agent reply: more than 1 MB (max_reply_bytes)"),
    4: ("bytes that are not UTF-8", "agent output is not UTF-8"),
    5: ("200k-deep nesting", "agent reply: nested too deeply"),
    6: ("a result, then SIGKILL", "agent killed by SIGKILL after reporting a result"),
    7: ("negative latency", "agent reply: samples_us[2]: not a positive number"),
}

HOSTILE = r'''#!{python}
import json, subprocess, sys
agent, out = sys.argv[1], sys.stdout.buffer


def answer(reply, code=0):  # framed as the warm agent (agent --serve) frames each answer
    out.write(json.dumps({{"exit": code, "out": len(reply), "err": 0, "why": None}}).encode().ljust(127) + b"\n" + reply)
    out.flush()


for line in sys.stdin:
    request = json.loads(line)
    if request.get("probe"):  # a believable probe: the real agent's
        answer(subprocess.run([{python!r}, agent, "--probe"], capture_output=True).stdout)
        continue
    reply = {{"ok": True, "runtime": {{"name": "ai_edge_litert", "version": "2.3.0"}}, "init_ms": 1.0, "first_ms": 1.0,
             "samples_us": [100.0, 110.0, 120.0], "delegate": {{"name": request["delegate"]["name"], "outcome": "cpu"}}}}
    fault = request["threads"]
    if fault == 1:
        del reply["delegate"]
    if fault == 2:
        answer(json.dumps(reply).replace('"init_ms": 1.0', '"init_ms": NaN').encode())
    elif fault == 3:
        answer(b" " * (2 << 20))
    elif fault == 4:
        answer(b"\xff\xfe" + json.dumps(reply).encode())
    elif fault == 5:
        answer(b"[" * 200000 + b"]" * 200000)
    elif fault == 6:
        answer(json.dumps(reply).encode() + b"\n", -9)
    else:
        if fault == 7:
            reply["samples_us"][2] = -5.0
        answer(json.dumps(reply).encode())
'''


def test_hostile_replies_fail_their_jobs_and_nothing_else(tmp_path, tiny_tflite):
    script = tmp_path / "hostile-python"
    script.write_text(HOSTILE.format(python=sys.executable))
    script.chmod(0o755)
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [
        {"name": "liar", "kind": "local", "python": str(script), "delegates": ["none"]},
        {"name": "local", "kind": "local", "delegates": ["none"]},
    ]}))
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"name": "hostile", "inventory": str(inventory), "delegates": ["none"],
                                    "threads": sorted(FAULTS), "runs": 5, "repeats": 1, "max_reply_bytes": 1 << 20,
                                    "models": [{"source": str(tiny_tflite)}]}))
    db = tmp_path / "farm.db"
    run = farm("sweep", "run", spec, "--db", db)
    assert run.returncode == 1, run.stdout + run.stderr  # some jobs failed: reported, not crashed
    assert "Traceback" not in run.stderr, run.stderr

    rows = sqlite3.connect(db).execute("SELECT device, threads, state, error FROM jobs ORDER BY device, threads").fetchall()
    healthy = [(threads, state) for device, threads, state, _ in rows if device == "local"]
    assert healthy == [(threads, "done") for threads in sorted(FAULTS)]
    lied = {threads: (state, error) for device, threads, state, error in rows if device == "liar"}
    for threads, (fault, reason) in FAULTS.items():
        state, error = lied[threads]
        assert state == "failed" and error.startswith(reason), (fault, error)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id "
                                       "WHERE j.device = 'liar'").fetchone()[0] == 0  # nothing a liar said is stored

    resumed = farm("sweep", "resume", "hostile", "--db", db)
    assert "Traceback" not in resumed.stderr, resumed.stderr
    assert sqlite3.connect(db).execute("SELECT state FROM sweeps").fetchone()[0] == "done"
