"""What `farm convert --static-shapes` changes for the demo's digits CNN, on both LiteRT runtimes a board may have.

Its Keras Flatten on an unfixed batch leaves SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE in the graph: tflite-runtime
2.14's XNNPACK then takes no node at all, ai-edge-litert's takes the rest. For each variant kind, converted without
and with static shapes, this runs the agent (one process per job, as a sweep does) with the `xnnpack` and `none`
delegates under ai-edge-litert (this Python) and tflite-runtime 2.14 (a venv with tflite-runtime and numpy < 2), and
prints the nodes XNNPACK took and the repeats' p50s: their least (the repeat other work on a shared machine disturbed
least) and their median; then the reason of every job whose XNNPACK took no node, as a sweep records it.

    .venv/bin/python benchmarks/static_shapes.py [--tflite-runtime PYTHON] [--kinds fp32,fp16,int8,int16x8]
                                                 [--runs 2000] [--repeats 3] [--workdir demo]

--tflite-runtime defaults to .venv-tflite-runtime/bin/python (or $FARM_TFLITE_RUNTIME_PYTHON); --workdir is where
the digits model is trained once (farm demo's demo/ folder has it).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from farm.convert import convert_model
from farm.demo import build_digits
from farm.paths import cache_dir

REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "agents" / "litert_agent.py"
CALIBRATED = ("int8", "int16x8")


def run_agent(python: str, model: Path, delegate: str, runs: int) -> dict:
    request = json.dumps({"model": str(model), "delegate": delegate, "runs": runs, "warmup_runs": 50})
    done = subprocess.run([python, str(AGENT)], input=request, capture_output=True, text=True, timeout=600)
    return json.loads(done.stdout)


def _p50(replies: list[dict]) -> str:
    p50s = [r["stats"]["median_us"] for r in replies]
    return f"{min(p50s):.1f} / {statistics.median(p50s):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tflite-runtime", default=os.environ.get("FARM_TFLITE_RUNTIME_PYTHON")
                        or str(REPO / ".venv-tflite-runtime" / "bin" / "python"))
    parser.add_argument("--kinds", default="fp32,fp16,int8,int16x8")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="demo")
    args = parser.parse_args()
    if not Path(args.tflite_runtime).exists():
        print(f"no {args.tflite_runtime}: give a Python with tflite-runtime 2.14 (--tflite-runtime)", file=sys.stderr)
        return 2

    workdir = Path(args.workdir)
    build_digits(workdir)
    kinds = args.kinds.split(",")
    calibration = workdir / "digits_calib.npz" if set(kinds) & set(CALIBRATED) else None
    variants = {}
    for static in (False, True):
        for v in convert_model(workdir / "digits.keras", kinds, calibration=calibration, static_shapes=static,
                               cache=cache_dir()):
            if v.error:
                print(f"{v.kind} (static {static}): unusable: {v.error}", file=sys.stderr)
                return 1
            variants[v.kind, static] = v

    runtimes = {"ai_edge_litert": sys.executable, "tflite_runtime": args.tflite_runtime}
    jobs = [(runtime, kind, static, delegate) for runtime in runtimes for kind in kinds for static in (False, True)
            for delegate in ("xnnpack", "none")]
    found: dict[tuple, list[dict]] = {job: [] for job in jobs}
    for _ in range(args.repeats):  # interleaved, so slow drift of this machine spreads over every configuration
        for job in jobs:
            runtime, kind, static, delegate = job
            found[job].append(run_agent(runtimes[runtime], variants[kind, static].path, delegate, args.runs))

    print(f"digits CNN, p50 of {args.runs} runs in us, least / median of {args.repeats} repeats, 1 thread")
    print(f"{'runtime':<22} {'variant':<8} {'shapes':<7} {'nodes':>5} {'xnnpack took':>12} {'xnnpack p50':>16} "
          f"{'none p50':>16}")
    reasons = []
    for runtime in runtimes:
        for kind in kinds:
            for static in (False, True):
                replies = {d: found[runtime, kind, static, d] for d in ("xnnpack", "none")}
                failed = [r for rs in replies.values() for r in rs if not r.get("ok")]
                if failed:
                    print(f"{runtime:<22} {kind:<8} {'static' if static else 'as is':<7} "
                          f"error: {failed[0]['error']['message'][:150]}")
                    continue
                first = replies["xnnpack"][0]
                p50 = {d: _p50(rs) for d, rs in replies.items()}
                name = f"{first['runtime']['name']} {first['runtime']['version']}"
                shapes = "static" if static else "as is"
                print(f"{name:<22} {kind:<8} {shapes:<7} {first['delegate']['total_nodes']:>5} "
                      f"{first['delegate']['delegated_nodes']:>12} {p50['xnnpack']:>16} {p50['none']:>16}")
                if first["delegate"]["outcome"] == "not_applied":
                    reasons.append(f"{name} {kind} {'static' if static else 'as is'}: delegate not applied: "
                                   f"{first['delegate']['message']}")
    for reason in reasons:
        print(reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
