"""What a sweep pushes to phones, and what a second sweep of the same models and binary pushes (target: 0 bytes).

Uses the suite's simulated phones (tests/phone: TEST CODE that speaks the real ADB protocol to a real adb server; no
emulator runs here) with the stand-in benchmark_model, and the demo's digits CNN (fp32 and int8, with eval data).

    .venv/bin/python benchmarks/adb_push_bytes.py
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from phone.fixtures import PHONES  # noqa: E402  (the simulated phones of the test suite)
from phone.phone import Lab, write_benchmark_model  # noqa: E402

from farm.demo import build_digits  # noqa: E402
from farm.inventory import load_inventory  # noqa: E402
from farm.plan import load_spec  # noqa: E402
from farm.run import SweepRunner  # noqa: E402
from farm.store import Store  # noqa: E402
from farm.sweep import create_sweep  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="adb-push-bench-") as tmp:
        tmp = Path(tmp)
        build_digits(tmp / "digits")
        binary = write_benchmark_model(tmp / "benchmark_model")
        lab = Lab(tmp / "lab").start()
        try:
            phones = [lab.add_phone(name, **options) for name, options in PHONES.items()]
            devices = [{"name": p.name, "kind": "android", "serial": p.serial, "adb_server": f"127.0.0.1:{lab.port}",
                        "binaries": {"arm64-v8a": str(binary)}, "delegates": ["xnnpack"]} for p in phones]
            (tmp / "phones.yaml").write_text(yaml.safe_dump({"devices": devices}))
            (tmp / "sweep.yaml").write_text(yaml.safe_dump({
                "name": "push", "inventory": [str(tmp / "phones.yaml")],
                "models": [{"name": "digits", "source": str(tmp / "digits" / "digits.keras"),
                            "variants": ["fp32", "int8"], "calibration": str(tmp / "digits" / "digits_calib.npz"),
                            "eval": str(tmp / "digits" / "digits_eval.npz")}],
                "delegates": ["xnnpack"], "runs": 10, "eval_limit": 10}))
            store = Store(tmp / "farm.db")
            for label in ("first sweep", "second sweep, same models and binary"):
                spec = load_spec(tmp / "sweep.yaml")
                sweep = create_sweep(store, spec, "sweep.yaml", log=lambda line: None)
                runner = SweepRunner(store, sweep, spec, {d.name: d for d in load_inventory(*spec.inventory).devices})
                start = time.perf_counter()
                asyncio.run(runner.run())
                per_phone = ", ".join(f"{name} {pushed}" for name, pushed in sorted(runner.bytes_uploaded.items()))
                print(f"{label}: {sum(runner.bytes_uploaded.values())} bytes pushed ({per_phone}); "
                      f"{runner.counts['done']} jobs done in {time.perf_counter() - start:.1f} s")
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
