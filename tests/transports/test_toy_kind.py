"""A new kind of device is one module plus one entry in farm.inventory.KINDS: the toy kind of tests/transports/toy_kind.py is
read from an inventory, shown by `inventory check`'s code path, stored with its connection, and runs a sweep."""
from __future__ import annotations

import json

import yaml

from farm.inventory import KINDS, load_inventory
from farm.plan import parse_spec
from farm.store import Store
from farm.sweep import create_sweep, run_sweep


def test_a_toy_kind_runs_a_sweep(tmp_path, monkeypatch, tiny_tflite):
    monkeypatch.setitem(KINDS, "toy", "toy_kind")  # the one table entry
    inventory = tmp_path / "toys.yaml"
    inventory.write_text(yaml.safe_dump({"devices": [{"name": "teddy", "kind": "toy", "colour": "blue",
                                                      "delegates": ["none"]}]}))
    (teddy,) = load_inventory(inventory).devices
    assert teddy.reached_at() == "a blue toy in the test process"

    spec = parse_spec({"name": "toys", "inventory": [str(inventory)], "delegates": ["none"], "threads": [1, 2],
                       "repeats": 1, "runs": 20, "models": [{"source": str(tiny_tflite)}]}, "test").resolve(tmp_path)
    store = Store(tmp_path / "farm.db")
    sweep = create_sweep(store, spec, "test", log=lambda line: None)
    runner = run_sweep(store, sweep)
    assert runner.counts["done"] == 2 and runner.counts["failed"] == 0
    rows = store.report(sweep.id)
    assert [(r["device"], r["threads"], r["count"], r["runtime"]) for r in rows] == [
        ("teddy", 1, 20, "ai_edge_litert"), ("teddy", 2, 20, "ai_edge_litert")]
    assert all(0 < r["p50_ms"] < 1000 for r in rows)
    (device,) = [d for d in store.devices() if d.name == "teddy"]
    assert (device.kind, json.loads(device.facts)) == ("toy", {"toy": "blue"})
