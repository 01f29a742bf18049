"""The `farm` command line: the parser, dispatching to one module per subcommand group in farm/commands/."""
from __future__ import annotations

import argparse
import sys

from farm import __version__, hints
from farm.commands import compare, convert, dashboard, demo, export, inventory, provision, sweep
from farm.errors import FarmError
from farm.provision import RUNTIMES
from farm.variants import VARIANT_KINDS

DEFAULT_DB = "farm.db"
TRAIN_HELP = ("training data for qat/pruned/pruned-int8: an .npz with x and y (labels, or targets for a regression "
              "model); fine-tuned for 1 epoch (a spec's qat: and pruning: entries set the budget)")
STATIC_SHAPES_HELP = ("convert with every input's batch fixed to 1, so shapes the graph would compute at run time "
                      "(Keras Flatten's SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE) become constants: tflite-runtime "
                      "2.14's XNNPACK takes no node of a graph with them")
INVENTORY_HELP = "inventory file (repeatable; default: inventory/local.yaml if it is here, else this machine alone)"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _ints(value: str) -> list[int]:
    try:
        return [int(part) for part in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def with_no_wait(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--no-wait", dest="wait", action="store_false",
                        help="fail the jobs of a device another sweep holds, instead of waiting for it")
    return parser


def with_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout (for CI), the rest on stderr")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="farm", description="Benchmark TensorFlow Lite (LiteRT) models across a farm of "
                                     "edge devices: convert variants, sweep them over devices, store, export.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_db(sub):
        sub.add_argument("--db", default=DEFAULT_DB, help="store: a SQLite file or any SQLAlchemy URL (default: farm.db)")
        return sub

    inventory_parser = commands.add_parser("inventory", help="check and show the devices of the farm")
    inventory_commands = inventory_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = inventory_commands.add_parser("check", help="validate inventory files and list their devices")
    check.add_argument("files", nargs="*", help="inventory YAML files (default: inventory/local.yaml if it is here, "
                       "else this machine alone)")
    check.add_argument("--probe", action="store_true", help="also connect to every device and show whether it is "
                       "reachable and its runtimes (exit 1 when one is not, or cannot run benchmarks)")
    check.set_defaults(func=inventory.check)
    show = with_db(inventory_commands.add_parser("show", help="devices in the store with the facts probed from them"))
    show.set_defaults(func=inventory.show)

    def with_inventory(sub):
        sub.add_argument("devices", nargs="*", help="device names (default: every device of the inventory)")
        sub.add_argument("--inventory", action="append", help=INVENTORY_HELP)
        return sub

    probe = with_db(with_inventory(inventory_commands.add_parser(
        "probe", help="connect to devices, record their facts (Python, runtime, CPU, RAM, board, Edge TPU, thermals)")))
    probe.set_defaults(func=inventory.probe)
    discover_parser = inventory_commands.add_parser(
        "discover", help="list the phones attached to adb servers and print inventory entries to paste")
    discover_parser.add_argument("--adb-server", action="append", help="host:port of an adb server (repeatable; "
                                 "default: the local one, 127.0.0.1:5037)")
    discover_parser.set_defaults(func=inventory.discover)
    trust_parser = with_inventory(inventory_commands.add_parser(
        "trust", help="show the SSH host keys of devices (and their jump hosts) and record new ones in known_hosts"))
    trust_parser.add_argument("--replace", action="store_true",
                              help="replace a recorded key that has changed (else only after a yes at the terminal)")
    trust_parser.set_defaults(func=inventory.trust)

    provision_parser = with_db(with_inventory(commands.add_parser(
        "provision", help="install the agent's runtime on Linux boards: a venv with numpy and ai-edge-litert "
                          "(or tflite-runtime), checked with a probe")))
    provision_parser.add_argument("--python", default="python3", help="the board's Python to create the venv with")
    provision_parser.add_argument("--pip-args", default="", help="extra pip arguments, e.g. '--index-url URL'")
    provision_parser.add_argument("--onnxruntime", action="store_true",
                                  help="also install onnxruntime, which the agent runs .onnx models with")
    provision_parser.add_argument("--runtime", choices=RUNTIMES,
                                  help="install this LiteRT runtime (default: ai-edge-litert where the board's pip "
                                       "finds it, else tflite-runtime with numpy < 2)")
    provision_parser.set_defaults(func=provision.provision)

    convert_parser = commands.add_parser("convert", help="convert a Keras/SavedModel model into variants (cached)")
    convert_parser.add_argument("model", help=".keras or .h5 file, SavedModel folder, or a .tflite or .onnx file")
    convert_parser.add_argument("--variants", type=_csv, default=["fp32"],
                                help=f"comma-separated: {', '.join(VARIANT_KINDS)} (default: fp32)")
    convert_parser.add_argument("--calibration", help="representative data for int8/int16x8/pruned-int8/edgetpu: "
                                                      "an .npz (x) or a folder of images")
    convert_parser.add_argument("--train", help=TRAIN_HELP)
    convert_parser.add_argument("--static-shapes", dest="static_shapes", action="store_true", help=STATIC_SHAPES_HELP)
    convert_parser.add_argument("--calibration-samples", type=int, default=200,
                                help="calibration samples used (default: 200)")
    convert_parser.add_argument("--name", help="model name (default: the file's stem)")
    convert_parser.set_defaults(func=convert.convert)

    sweep_parser = commands.add_parser("sweep", help="run, resume and follow sweeps")
    sweep_commands = sweep_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = with_db(sweep_commands.add_parser(
        "run", help="plan a sweep from a spec file (or flags) and run it",
        description="Plan every (device, variant, delegate, threads, repeat) job of a sweep, record it, run it."))
    run.add_argument("spec", nargs="?", help="sweep spec YAML (see README); or use --model and the flags below")
    run.add_argument("--name", help="sweep name (default: the spec's name; a suffix is added when taken)")
    run.add_argument("--model", help="model file or folder, for a sweep given by flags")
    run.add_argument("--variants", type=_csv, help="comma-separated variant kinds (default: fp32)")
    run.add_argument("--calibration", help="representative data for int8/int16x8/pruned-int8/edgetpu")
    run.add_argument("--train", help=TRAIN_HELP)
    run.add_argument("--static-shapes", dest="static_shapes", action="store_true", help=STATIC_SHAPES_HELP)
    run.add_argument("--eval", help="eval .npz (x inputs, y labels or targets) for accuracy, or RMSE for regression")
    run.add_argument("--inventory", action="append", help=INVENTORY_HELP)
    run.add_argument("--devices", type=_csv, help="device names, tag:NAME, or all (default: all)")
    run.add_argument("--delegates", type=_csv, help="comma-separated delegates (default: xnnpack)")
    run.add_argument("--threads", type=_ints, help="comma-separated thread counts (default: 1)")
    run.add_argument("--repeats", type=int, help="independent runs of each configuration, interleaved (default: 3)")
    run.add_argument("--runs", type=int, help="measured runs per job (default: 50)")
    run.add_argument("--warmup-runs", dest="warmup_runs", type=int, help="warmup runs per job (default: 5)")
    run.add_argument("--min-secs", dest="min_secs", type=float, help="keep measuring at least this long (default: 0)")
    run.add_argument("--profile", action="store_true",
                     help="an op profile with every result (benchmark_model --enable_op_profiling; see README)")
    with_json(with_no_wait(run)).set_defaults(func=sweep.run)
    status = with_db(sweep_commands.add_parser("status", help="job counts of every sweep, or of one with its failures"))
    status.add_argument("sweep", nargs="?", help="sweep name")
    with_json(status).set_defaults(func=sweep.status)
    resume = with_db(sweep_commands.add_parser("resume", help="run what is left of a sweep (after a crash or Ctrl-C)"))
    resume.add_argument("sweep", help="sweep name")
    resume.add_argument("--retry-failed", action="store_true",
                        help="run the failed jobs again too (each keeps its earlier failure in its history)")
    with_json(with_no_wait(resume)).set_defaults(func=sweep.resume)

    export_parser = with_db(commands.add_parser("export", help="write a CSV report per device"))
    export_parser.add_argument("--sweep", help="sweep name (default: the newest)")
    export_parser.add_argument("--out", default="reports", help="output folder (default: reports/)")
    export_parser.set_defaults(func=export.export)

    compare_parser = with_db(commands.add_parser(
        "compare", help="compare two sweeps, or a sweep with its history; exit 3 on a regression (for CI)",
        description="Per configuration: the change in median latency over the repeats with its 95%% interval, "
                    "Welch's and Mann-Whitney's p, and the accuracy change. Exit 0: nothing regressed; 3: a "
                    "configuration is worse beyond a threshold and significantly so; 2: bad input."))
    compare_parser.add_argument("sweeps", nargs="*", metavar="SWEEP",
                                help="BASELINE CANDIDATE; with --history, the candidate only (default: the newest)")
    compare_parser.add_argument("--history", type=int, metavar="N",
                                help="baseline: each configuration's last N finished sweeps before the candidate")
    compare_parser.add_argument("--max-slowdown", dest="max_slowdown", metavar="PCT",
                                help="fail (exit 3) when a slowdown's 95%% interval lies wholly beyond this, e.g. 5%%")
    compare_parser.add_argument("--max-accuracy-drop", dest="max_accuracy_drop", metavar="X",
                                help="fail (exit 3) on a significant top-1 drop beyond this, e.g. 0.01")
    output = compare_parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--markdown", action="store_true", help="print a markdown table (a CI comment)")
    compare_parser.set_defaults(func=compare.compare)

    dashboard_parser = with_db(commands.add_parser("dashboard",
                                                   help="browse the store in a Streamlit dashboard (read-only)"))
    dashboard_parser.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    dashboard_parser.add_argument("--address", default="127.0.0.1",
                                  help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 shares it)")
    dashboard_parser.set_defaults(func=dashboard.dashboard)

    demo_parser = commands.add_parser("demo", help="train two small models, convert them, benchmark them here")
    demo_parser.add_argument("--workdir", default=".", help="where the demo writes: models and data in demo/, the "
                             "store farm.db, CSVs in reports/ (default: the current directory)")
    demo_parser.add_argument("--db", help="store: a SQLite file or any SQLAlchemy URL (default: WORKDIR/farm.db)")
    demo_parser.add_argument("--out", help="CSV output folder (default: WORKDIR/reports/)")
    demo_parser.add_argument("--runs", type=int, default=50, help="measured runs per job (default: 50)")
    demo_parser.set_defaults(func=demo.demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # What a suggested command must carry to work as printed (farm.hints): a store or inventories given here.
    db = getattr(args, "db", None)
    hints.given(db=db if db != DEFAULT_DB else None,
                inventory=getattr(args, "inventory", None) or getattr(args, "files", None) or None)
    try:
        return args.func(args)
    except FarmError as error:
        print(f"farm: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("farm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
