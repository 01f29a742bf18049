#!/usr/bin/env python3
"""Does the agent measure what LiteRT's own benchmark tool measures?

Builds a seeded MobileNetV2 (keras.applications, weights=None, so nothing is
downloaded), converts it to fp32 .tflite (or takes --model), then runs,
interleaved round after round, each in a fresh process:

  A  agents/litert_agent.py       Interpreter API, delegate "xnnpack", N threads,
                                  as the coordinator runs it: a child forked by
                                  one warm `--serve` agent for the whole run
  A' agents/litert_agent.py       the same, one-shot: a process of its own that
                                  imports numpy and the runtime for this request
  B  litert-benchmark             ai_edge_litert.tools.benchmark_litert_model:
                                  CompiledModel API, CPU accelerator, N threads

and reports the ratio of medians agent / litert-benchmark (the median over
rounds of the agent's round medians over the same for litert-benchmark) with
its 95% confidence interval. Target: the ratio within 0.90-1.10. The ratios
one-shot / litert-benchmark and warm / one-shot are printed too: a warm
agent's child must measure what a fresh process measures.

What each one times: the agent puts perf_counter_ns around interpreter.invoke()
only (inputs are set once before); litert-benchmark puts perf_counter around
compiled_model.run_by_name(signature, input_buffers, output_buffers) with
buffers filled once before. Both run XNNPACK on the CPU with the same thread
count, warmup and number of runs. litert-benchmark rounds its median to
0.01 ms, so its figure carries +-5 us of rounding.

Rounds rotate which tool goes first (A A' B, A' B A, B A A', ...) so that
slow drift of a shared, noisy machine does not always favour the same one.

When to stop. Rounds go on until the 95% CI's half-width is at most 3% of the
ratio (--precision), after at least --min-rounds rounds, or until the time
budget (--max-minutes, counted from the script's start, model build included)
would be overrun by one more round (the last round's duration is the
estimate). --rounds N instead runs exactly N rounds, as this script did
before it stopped on precision; the CI is reported either way.

The CI: a paired percentile bootstrap over rounds. A round is the independent
trial: each tool runs in a fresh process (fresh allocation, page placement,
thread start-up) at a different moment of the machine's load. The samples
inside one run are not independent -- a co-tenant's burst, a frequency change
or an unlucky memory layout lasts for many consecutive invocations -- so
resampling samples would treat hundreds of correlated timings as independent
evidence and give an interval far too narrow. So each bootstrap replicate
draws n round indices with replacement (n = rounds run), takes both tools'
medians from those same rounds (kept paired: the two runs of one round sit
side by side in time and share its load, which the ratio should cancel, not
count as noise), and recomputes median(agent) / median(litert-benchmark);
the 2.5th and 97.5th percentiles of 10000 replicates (numpy, fixed seed, so
the same figures always give the same interval) are the interval. The
half-width reported is (high - low) / 2 as a fraction of the ratio.

Caveats, stated rather than hidden: a bootstrap of a median over few rounds
is coarse (with 5 rounds the interval is about the range of the round
values, which covers the median ~94% of the time), which is one reason for
the minimum number of rounds; and stopping as soon as the interval is narrow
enough (checked after every round) lets the interval's real coverage fall a
little below 95%. Both are small next to the round-to-round swings of a
shared machine, which is what the interval is there to show.

    .venv/bin/python benchmarks/agent_vs_litert_benchmark.py
    .venv/bin/python benchmarks/agent_vs_litert_benchmark.py --max-minutes 20 --precision 0.02
    .venv/bin/python benchmarks/agent_vs_litert_benchmark.py --rounds 8 --runs 500
    .venv/bin/python benchmarks/agent_vs_litert_benchmark.py --model path/to/model.tflite

Exit status: 0 when the ratio is within the target band, 1 when outside, 2 on
a failed run. Whether the precision was reached is printed, not in the status.
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
AGENT = REPO / "agents" / "litert_agent.py"
TARGET = (0.90, 1.10)
LEVEL = 0.95
BOOTSTRAP_REPS = 10000
BOOTSTRAP_SEED = 0


class RunFailed(Exception):
    pass


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


def agent_request(model, threads, warmup, runs):
    return {"model": str(model), "delegate": {"name": "xnnpack"}, "threads": threads,
            "warmup_runs": warmup, "runs": runs, "min_secs": 0.0}


class WarmAgent(object):
    """The agent as the coordinator runs it: one `--serve` process for the whole run, each request answered by a
    child it forks (farm/transports/agent.py speaks the same protocol)."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, str(AGENT), "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def ask(self, request):
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        header = json.loads(self.process.stdout.read(128))
        out = self.process.stdout.read(header["out"])
        self.process.stdout.read(header["err"])
        try:
            return agent_result(json.loads(out))
        except ValueError:
            raise RunFailed("warm agent answered no JSON (exit %s, %s)" % (header["exit"], header["why"]))

    def close(self):
        self.process.stdin.close()
        self.process.wait(30)


def run_agent(model, threads, warmup, runs):
    """The one-shot agent: a fresh process that imports everything for this one request."""
    proc = subprocess.run([sys.executable, str(AGENT)], input=json.dumps(agent_request(model, threads, warmup, runs)),
                          capture_output=True, text=True, timeout=600)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise RunFailed("agent printed no JSON (exit %s): %s"
                        % (proc.returncode, proc.stderr[-2000:]))
    return agent_result(result)


def agent_result(result):
    if not result.get("ok"):
        raise RunFailed("agent failed: %s" % result.get("error"))
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
        raise RunFailed("litert-benchmark failed (exit %s): %s"
                        % (proc.returncode, (proc.stdout + proc.stderr)[-2000:]))
    result = json.loads(out.read_text())
    return {"median_us": result["latency"]["median_ms"] * 1000.0,
            "samples": result["latency"]["num_runs"],
            "delegate": "CPU fully_accelerated=%s" % result["fully_accelerated"]}


def ratio_of_medians(agent, litert):
    return float(np.median(agent) / np.median(litert))


def bootstrap_ci(agent, litert, level=LEVEL, reps=BOOTSTRAP_REPS, seed=BOOTSTRAP_SEED):
    """Paired percentile bootstrap of median(agent) / median(litert) over rounds.

    agent[i] and litert[i] are the two tools' medians in round i; a replicate
    draws round indices with replacement and keeps each round's pair together.
    Returns (low, high).
    """
    agent = np.asarray(agent, dtype=float)
    litert = np.asarray(litert, dtype=float)
    n = len(agent)
    idx = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    ratios = np.median(agent[idx], axis=1) / np.median(litert[idx], axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(agent, litert):
    ratio = ratio_of_medians(agent, litert)
    low, high = bootstrap_ci(agent, litert)
    return ratio, low, high, (high - low) / 2.0 / ratio


def main(argv=None):
    started = time.monotonic()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="a .tflite to use instead of building MobileNetV2")
    ap.add_argument("--alpha", type=float, default=0.35)
    ap.add_argument("--size", type=int, default=128, help="input height and width")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int,
                    help="run exactly this many rounds (default: stop on precision or time)")
    ap.add_argument("--min-rounds", type=int, default=6,
                    help="rounds always run before the precision or time cap may stop it")
    ap.add_argument("--precision", type=float, default=0.03,
                    help="stop once the 95%% CI half-width is at most this fraction of the ratio")
    ap.add_argument("--max-minutes", type=float, default=10.0,
                    help="time budget for the whole run, model build included")
    ap.add_argument("--runs", type=int, default=300, help="timed runs per tool per round")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 2:
        ap.error("--rounds must be at least 2 (a CI needs more than one round)")
    if args.min_rounds < 2:
        ap.error("--min-rounds must be at least 2 (a CI needs more than one round)")
    budget_s = args.max_minutes * 60.0

    with tempfile.TemporaryDirectory(prefix="agent-vs-litert-") as tmp:
        if args.model:
            model = args.model.resolve()
        else:
            model = Path(tmp) / ("mobilenet_v2_a%g_%d.tflite" % (args.alpha, args.size))
            t0 = time.time()
            build_mobilenet(model, args.alpha, args.size, args.seed)
            print("built %s (%d bytes) in %.1f s" % (model.name, model.stat().st_size,
                                                     time.time() - t0))
        if args.rounds is not None:
            plan = "exactly %d interleaved rounds" % args.rounds
        else:
            plan = ("interleaved rounds until the %d%% CI is within +-%.1f%% (at least %d rounds, "
                    "at most %.1f min)" % (LEVEL * 100, args.precision * 100, args.min_rounds,
                                           args.max_minutes))
        print("model %s, %d thread(s), %d warmup + %d runs per tool, %s"
              % (model, args.threads, args.warmup, args.runs, plan), flush=True)

        warm = WarmAgent()
        tools = {
            "agent": lambda: warm.ask(agent_request(model, args.threads, args.warmup, args.runs)),
            "one-shot": lambda: run_agent(model, args.threads, args.warmup, args.runs),
            "litert-benchmark": lambda: run_litert_benchmark(model, args.threads, args.warmup,
                                                             args.runs, tmp),
        }
        medians = {name: [] for name in tools}
        setups = {}
        stop = None
        last_round_s = 0.0
        print("%-5s %-9s %10s %10s %10s %7s  %s" % ("round", "first", "agent_us", "oneshot_us", "litert_us",
                                                    "ratio", "ratio of medians so far (95% CI)"))
        r = 0
        while stop is None:
            t_round = time.monotonic()
            order = list(tools)[r % 3:] + list(tools)[:r % 3]  # each tool goes first in turn
            res = {}
            try:
                for name in order:
                    res[name] = tools[name]()
            except RunFailed as exc:
                print("round %d: %s" % (r + 1, exc), file=sys.stderr)
                return 2
            for name in order:
                medians[name].append(res[name]["median_us"])
                setup = "%s (%d samples)" % (res[name]["delegate"], res[name]["samples"])
                if name not in setups:
                    setups[name] = setup
                    print("      %s: %s" % (name, setup))
                elif setup != setups[name]:
                    print("      %s changed setup: %s" % (name, setup), file=sys.stderr)
            r += 1
            last_round_s = time.monotonic() - t_round
            line = "%-5d %-9s %10.1f %10.1f %10.1f %7.3f" % (
                r, order[0].split("-")[0], res["agent"]["median_us"], res["one-shot"]["median_us"],
                res["litert-benchmark"]["median_us"],
                res["agent"]["median_us"] / res["litert-benchmark"]["median_us"])
            if r >= 2:
                ratio, low, high, half = summarize(medians["agent"], medians["litert-benchmark"])
                line += "  %.3f (%.3f-%.3f, +-%.1f%%)" % (ratio, low, high, half * 100)
            print(line, flush=True)

            if args.rounds is not None:
                if r >= args.rounds:
                    stop = "fixed"
            elif r >= args.min_rounds:
                if half <= args.precision:
                    stop = "precision"
                elif time.monotonic() - started + last_round_s > budget_s:
                    stop = "time"

        warm.close()
    agent = statistics.median(medians["agent"])
    litert = statistics.median(medians["litert-benchmark"])
    ratio, low, high, half = summarize(medians["agent"], medians["litert-benchmark"])
    precise = half <= args.precision
    ok = TARGET[0] <= ratio <= TARGET[1]
    ci_inside = TARGET[0] <= low and high <= TARGET[1]
    elapsed = time.monotonic() - started
    print()
    print("agent            median of round medians: %9.1f us" % agent)
    print("litert-benchmark median of round medians: %9.1f us" % litert)
    if stop == "precision":
        why = "precision target +-%.1f%% reached" % (args.precision * 100)
    elif stop == "time":
        why = ("stopped by the time cap (%.1f min) before the precision target +-%.1f%%"
               % (args.max_minutes, args.precision * 100))
    else:
        why = ("fixed --rounds %d; precision target +-%.1f%% %s"
               % (args.rounds, args.precision * 100, "reached" if precise else "NOT reached"))
    print("%s after %d rounds in %.1f min" % (why, r, elapsed / 60.0))
    print("ratio of medians agent / litert-benchmark %.3f (%d%% CI %.3f-%.3f, +-%.1f%%) over %d "
          "rounds; target %.2f-%.2f: %s"
          % (ratio, LEVEL * 100, low, high, half * 100, r, TARGET[0], TARGET[1],
             ("met, whole CI inside" if ci_inside else "met, CI crosses the band's edge")
             if ok else "NOT met"))
    for name, (a, b) in (("one-shot agent / litert-benchmark", ("one-shot", "litert-benchmark")),
                         ("warm agent / one-shot agent", ("agent", "one-shot"))):
        other, other_low, other_high, other_half = summarize(medians[a], medians[b])
        print("ratio of medians %s %.3f (%d%% CI %.3f-%.3f, +-%.1f%%)"
              % (name, other, LEVEL * 100, other_low, other_high, other_half * 100))
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(args.model or "mobilenet_v2 alpha=%g size=%d seed=%d"
                         % (args.alpha, args.size, args.seed)),
            "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
            "rounds": r, "round_medians_us": medians,
            "agent_median_us": agent, "litert_benchmark_median_us": litert,
            "ratio": ratio, "ci95": [low, high], "ci95_half_width_rel": half,
            "precision_target": args.precision, "precision_reached": precise,
            "stopped_by": stop, "elapsed_s": elapsed, "within_target": ok,
            "ci_within_target": ci_inside}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
