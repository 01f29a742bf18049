"""The same models on both LiteRT runtimes a board may have: ai-edge-litert (this venv, numpy 2) and tflite-runtime
2.14 with numpy < 2 (what Raspberry Pi OS and Coral images run), with the `xnnpack` and `none` delegates.

The demo's digits CNN (its Keras Flatten on an unfixed batch leaves SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE in the
graph) and MobileNetV2 (alpha 0.35, 96x96, random weights), converted by farm (the conversion cache is reused) to the
variant kinds asked. Each runtime has one warm agent (`litert_agent.py --serve`, as the coordinator runs a board's
agent), which forks a child per job; the jobs run interleaved, repeat after repeat, so slow drift of a shared machine
spreads over every configuration. For each model x variant x runtime x delegate it prints the delegate's outcome
(nodes it took of the model's) and the p50 of each repeat's samples: the median over repeats, and their range. A job
whose XNNPACK took no node still runs on the CPU kernels here; a sweep fails it ('delegate not applied'), and its
reason is printed below the table.

    .venv/bin/python benchmarks/runtimes_side_by_side.py [--tflite-runtime PYTHON] [--kinds fp32,int8]
                                                         [--runs 1000] [--repeats 3] [--threads 1] [--workdir demo]

--tflite-runtime defaults to .venv-tflite-runtime/bin/python (`make test` builds it), or $FARM_TFLITE_RUNTIME_PYTHON;
--workdir is where the two models are built once (farm demo's demo/ folder has them).
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
from farm.demo import build_digits, build_mobilenet
from farm.paths import cache_dir

REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "agents" / "litert_agent.py"
CALIBRATED = ("int8", "int16x8", "edgetpu")
MODELS = {  # name -> (builder, Keras file, calibration set, its samples): as farm demo converts them
    "digits": (build_digits, "digits.keras", "digits_calib.npz", 200),
    "mobilenet_v2": (build_mobilenet, "mobilenet_v2.keras", "mobilenet_v2_calib.npz", 32),
}


class WarmAgent:
    """One `--serve` agent run with a given Python: each request answered by a child it forks."""

    def __init__(self, python: str):
        self.process = subprocess.Popen([python, str(AGENT), "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        header = json.loads(self.process.stdout.read(128))
        out = self.process.stdout.read(header["out"])
        self.process.stdout.read(header["err"])
        if not out:
            raise RuntimeError(f"agent child ended without a result (exit {header['exit']}, {header['why']})")
        return json.loads(out)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(30)


def convert(workdir: Path, kinds: list[str]) -> dict[tuple[str, str], Path]:
    variants = {}
    for name, (build, source, calibration, samples) in MODELS.items():
        build(workdir)
        needs_calibration = set(kinds) & set(CALIBRATED)
        for variant in convert_model(workdir / source, kinds, cache=cache_dir(),
                                     calibration=workdir / calibration if needs_calibration else None,
                                     calibration_samples=samples):
            if variant.error:
                raise SystemExit(f"{name} {variant.kind}: unusable: {variant.error}")
            variants[name, variant.kind] = variant.path
    return variants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tflite-runtime", default=os.environ.get("FARM_TFLITE_RUNTIME_PYTHON")
                        or str(REPO / ".venv-tflite-runtime" / "bin" / "python"))
    parser.add_argument("--kinds", default="fp32,int8")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default="demo")
    args = parser.parse_args()
    if not Path(args.tflite_runtime).exists():
        print(f"no {args.tflite_runtime}: give a Python with tflite-runtime 2.14 (--tflite-runtime), or run make test",
              file=sys.stderr)
        return 2

    variants = convert(Path(args.workdir), args.kinds.split(","))
    agents = {"ai-edge-litert": WarmAgent(sys.executable), "tflite-runtime": WarmAgent(args.tflite_runtime)}
    try:
        labels = {}
        for runtime, agent in agents.items():
            facts = agent.ask({"probe": True})
            labels[runtime] = f"{facts['runtime']['name']} {facts['runtime']['version']}"
            print(f"{runtime}: {labels[runtime]}, numpy {facts['numpy_version']}, Python {facts['python_version']}")
        jobs = [(model, kind, runtime, delegate) for (model, kind) in variants for runtime in agents
                for delegate in ("xnnpack", "none")]
        replies: dict[tuple, list[dict]] = {job: [] for job in jobs}
        for _ in range(args.repeats):
            for job in jobs:
                model, kind, runtime, delegate = job
                reply = agents[runtime].ask({"model": str(variants[model, kind]), "delegate": delegate,
                                             "threads": args.threads, "runs": args.runs, "warmup_runs": 50})
                if not reply.get("ok"):
                    print(f"{model} {kind} {runtime} {delegate}: {reply['error']['message']}", file=sys.stderr)
                    return 1
                replies[job].append(reply)
    finally:
        for agent in agents.values():
            agent.close()

    print(f"\np50 in us of {args.runs} runs, {args.threads} thread(s): median of {args.repeats} repeats [least - most]")
    print(f"{'model':<13} {'variant':<8} {'runtime':<22} {'delegate':<8} {'outcome':<12} {'nodes':>7} "
          f"{'p50 us':>9}  range")
    reasons = []
    for job in jobs:
        model, kind, runtime, delegate = job
        first = replies[job][0]["delegate"]
        p50s = [reply["stats"]["median_us"] for reply in replies[job]]
        taken = "-" if delegate == "none" else f"{first['delegated_nodes']}/{first['total_nodes']}"
        print(f"{model:<13} {kind:<8} {labels[runtime]:<22} {delegate:<8} {first['outcome']:<12} {taken:>7} "
              f"{statistics.median(p50s):>9.1f}  [{min(p50s):.1f} - {max(p50s):.1f}]")
        if first["outcome"] == "not_applied":
            reasons.append(f"{model} {kind} {labels[runtime]}: delegate not applied: {first['message']}")
    if reasons:
        print("\nwhat a sweep records for the jobs whose XNNPACK took no node:")
        print("\n".join(reasons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
