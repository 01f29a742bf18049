"""Long steps say what they do: a sweep prints each variant's conversion as it starts and ends (or that it was cached),
and each upload to a device with its size, for a real SSH board of the test fleet and a simulated phone. With --json
the same lines go to stderr, and stdout stays one JSON document."""
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys

import yaml
from phone.models import tiny_mlp

from farm import AGENT_PATH


def kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def farm_with_cache(cache, *args) -> subprocess.CompletedProcess:
    """`farm ARGS` in a fresh process converting into `cache` (empty at first: the conversions are real)."""
    return subprocess.run([sys.executable, "-m", "farm", *map(str, args)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "FARM_CACHE": str(cache)})


def test_a_sweep_says_each_conversion_and_each_upload_with_its_size(tmp_path, ssh_fleet, adb_lab,
                                                                     benchmark_model_binary, digits_dir):
    board = ssh_fleet[2]
    # A model no phone of the session has seen, so the phone uploads it here whatever ran before on it.
    fresh = tiny_mlp(tmp_path / "fresh.tflite", sizes=(16, 32, 4), seed=secrets.randbelow(2**31))
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"devices": [
        board.device(python=sys.executable, delegates=["none"], workspace=str(tmp_path / "workspace")),
        {"name": "pixel", "kind": "android", "serial": adb_lab["pixel"].serial, "adb_server": f"127.0.0.1:{adb_lab.port}",
         "binaries": {"arm64-v8a": str(benchmark_model_binary)}, "delegates": ["none"]}]}))
    spec = tmp_path / "progress.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "progress", "inventory": [str(lab)], "delegates": ["none"], "runs": 2, "warmup_runs": 0, "repeats": 1,
        "models": [{"name": "digits", "source": str(digits_dir / "digits.keras"), "variants": ["fp32", "dynamic"]},
                   {"name": "fresh", "source": str(fresh)}]}))
    cache, db = tmp_path / "cache", tmp_path / "farm.db"

    run = farm_with_cache(cache, "sweep", "run", spec, "--db", db)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    out = run.stdout
    for kind in ("fp32", "dynamic"):
        assert f"converting digits {kind} …\n" in out  # said as it starts...
        assert re.search(rf"^converting digits {kind} … done in \d+\.\d s$", out, re.M), out[:2000]  # ...and ends
    sizes = dict(sqlite3.connect(db).execute(
        "SELECT m.name || ' ' || v.kind, v.size FROM variants v JOIN models m ON m.id = v.model_id").fetchall())
    assert f"{board.name}: note — uploading litert_agent.py ({kb(AGENT_PATH.stat().st_size)})" in out
    for model in ("digits fp32", "digits dynamic", "fresh fp32"):
        assert f"{board.name}: note — uploading {model} ({kb(sizes[model])})" in out, out[-3000:]
    assert f"pixel: note — uploading fresh fp32 ({kb(fresh.stat().st_size)})" in out, out[-3000:]

    again = farm_with_cache(cache, "sweep", "run", spec, "--db", db, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["bytes_uploaded"] == 0  # stdout: the summary alone
    for kind in ("fp32", "dynamic"):
        assert f"converting digits {kind} … cached\n" in again.stderr
    assert "uploading" not in again.stderr  # every device has its copies: nothing to say

    convert = farm_with_cache(cache, "convert", digits_dir / "digits.keras", "--variants", "fp32,dynamic")
    assert convert.returncode == 0, convert.stderr
    assert convert.stdout.startswith("converting digits fp32 … cached\nconverting digits dynamic … cached\n")
