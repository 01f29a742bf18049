#!/usr/bin/env python3
"""Does the agent measure what LiteRT's own benchmark tool measures?

Builds a seeded MobileNetV2 (keras.applications, weights=None, so nothing is
downloaded), converts it to fp32 .tflite (or takes --model), then runs,
interleaved over several rounds, in fresh processes each:

  A  agents/litert_agent.py       Interpreter API, delegate "xnnpack", N threads
  B  litert-benchmark             ai_edge_litert.tools.benchmark_litert_model:
                                  CompiledModel API, CPU accelerator, N threads

and prints each round's medians, the median of those per tool, and the ratio
of medians agent / litert-benchmark (target: within 0.90-1.10).

What each one times: the agent puts perf_counter_ns around interpreter.invoke()
only (inputs are set once before); litert-benchmark puts perf_counter around
compiled_model.run_by_name(signature, input_buffers, output_buffers) with
buffers filled once before. Both run XNNPACK on the CPU with the same thread
count, warmup and number of runs. litert-benchmark rounds its median to
0.01 ms, so its figure carries +-5 us of rounding.

Rounds alternate which tool goes first (A B, B A, ...) so that slow drift of
a shared, noisy machine does not always favour the same one.

    .venv/bin/python benchmarks/agent_vs_litert_benchmark.py
    .venv/bin/python benchmarks/agent_vs_litert_benchmark.py --rounds 8 --runs 500
    .venv/bin/python benchmarks/agent_vs_litert_benchmark.py --model path/to/model.tflite

Exit status: 0 when the ratio is within the target band, 1 when outside, 2 on
a failed run.
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "agents" / "litert_agent.py"
TARGET = (0.90, 1.10)


def build_mobilenet(path, alpha, size, seed):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha,
                                              weights=None)
    # The converter prints its SavedModel signature to stdout; keep the report clean.
    with contextlib.redirect_stdout(io.StringIO()):
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def run_agent(model, threads, warmup, runs):
    request = {"model": str(model), "delegate": {"name": "xnnpack"}, "threads": threads,
               "warmup_runs": warmup, "runs": runs, "min_secs": 0.0}
    proc = subprocess.run([sys.executable, str(AGENT)], input=json.dumps(request),
                          capture_output=True, text=True, timeout=600)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit("agent printed no JSON (exit %s): %s"
                         % (proc.returncode, proc.stderr[-2000:]))
    if not result.get("ok"):
        raise SystemExit("agent failed: %s" % result.get("error"))
    return {"median_us": statistics.median(result["samples_us"]),
            "samples": len(result["samples_us"]),
            "delegate": "%s %d/%d" % (result["delegate"]["outcome"],
                                      result["delegate"]["delegated_nodes"],
                                      result["delegate"]["total_nodes"])}


def litert_benchmark_cmd():
    exe = Path(sys.executable).with_name("litert-benchmark")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model"]


def run_litert_benchmark(model, threads, warmup, runs, workdir):
    out = Path(workdir) / "litert_benchmark_result.json"
    if out.exists():
        out.unlink()
    cmd = litert_benchmark_cmd() + ["--model", str(model), "--num_threads", str(threads),
                                    "--warmup_runs", str(warmup), "--num_runs", str(runs),
                                    "--result_json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit("litert-benchmark failed (exit %s): %s"
                         % (proc.returncode, (proc.stdout + proc.stderr)[-2000:]))
    result = json.loads(out.read_text())
    return {"median_us": result["latency"]["median_ms"] * 1000.0,
            "samples": result["latency"]["num_runs"],
            "delegate": "CPU fully_accelerated=%s" % result["fully_accelerated"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a .tflite to use instead of building MobileNetV2")
    ap.add_argument("--alpha", type=float, default=0.35)
    ap.add_argument("--size", type=int, default=128, help="input height and width")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=300, help="timed runs per tool per round")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="agent-vs-litert-") as tmp:
        if args.model:
            model = args.model.resolve()
        else:
            model = Path(tmp) / ("mobilenet_v2_a%g_%d.tflite" % (args.alpha, args.size))
            t0 = time.time()
            build_mobilenet(model, args.alpha, args.size, args.seed)
            print("built %s (%d bytes) in %.1f s" % (model.name, model.stat().st_size,
                                                     time.time() - t0))
        print("model %s, %d thread(s), %d warmup + %d runs per tool, %d interleaved rounds"
              % (model, args.threads, args.warmup, args.runs, args.rounds))

        tools = {
            "agent": lambda: run_agent(model, args.threads, args.warmup, args.runs),
            "litert-benchmark": lambda: run_litert_benchmark(model, args.threads, args.warmup,
                                                             args.runs, tmp),
        }
        medians = {name: [] for name in tools}
        print("%-6s %-17s %12s  %s" % ("round", "tool", "median_us", "delegation"))
        for r in range(args.rounds):
            order = ["agent", "litert-benchmark"]
            if r % 2:
                order.reverse()
            for name in order:
                res = tools[name]()
                medians[name].append(res["median_us"])
                print("%-6d %-17s %12.1f  %s (%d samples)"
                      % (r + 1, name, res["median_us"], res["delegate"], res["samples"]))

    agent = statistics.median(medians["agent"])
    litert = statistics.median(medians["litert-benchmark"])
    ratio = agent / litert
    per_round = [a / b for a, b in zip(medians["agent"], medians["litert-benchmark"])]
    ok = TARGET[0] <= ratio <= TARGET[1]
    print()
    print("agent            median of round medians: %9.1f us" % agent)
    print("litert-benchmark median of round medians: %9.1f us" % litert)
    print("ratio of medians agent / litert-benchmark: %.3f  (per round: %s)"
          % (ratio, ", ".join("%.3f" % x for x in per_round)))
    print("target %.2f-%.2f: %s" % (TARGET[0], TARGET[1], "within" if ok else "OUTSIDE"))
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(args.model or "mobilenet_v2 alpha=%g size=%d seed=%d"
                         % (args.alpha, args.size, args.seed)),
            "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
            "rounds": args.rounds, "round_medians_us": medians,
            "agent_median_us": agent, "litert_benchmark_median_us": litert,
            "ratio": ratio, "within_target": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
