"""The `farm` command: inventory, convert, sweep, export, demo."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from farm import __version__
from farm.errors import FarmError

DEFAULT_DB = "farm.db"
INVENTORY_HELP = "inventory file (repeatable; default: inventory/local.yaml if it is here, else this machine alone)"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _ints(value: str) -> list[int]:
    try:
        return [int(part) for part in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


# --- inventory ------------------------------------------------------------------------------------------------------

def cmd_inventory_check(args) -> int:
    from farm.progress import make_console
    from rich.table import Table

    from farm.inventory import default_inventory, describe_default, load_inventory

    files = args.files or default_inventory()
    if not args.files:
        print(describe_default(files))
    inventory = load_inventory(*files)
    table = Table(title=f"{len(inventory.devices)} devices, inventory valid", title_justify="left")
    for column in ("name", "kind", "reached at", "delegates", "tags"):
        table.add_column(column)
    for device in inventory.devices:
        where = {"local": "this machine", "linux": f"{device.user + '@' if device.user else ''}{device.host}:{device.port}",
                 "android": f"{device.serial} via {device.adb_server or 'local adb server'}"}[device.kind]
        table.add_row(device.name, device.kind, where, ", ".join(device.delegates), ", ".join(device.tags))
    make_console().print(table)
    return 0


def cmd_inventory_show(args) -> int:
    import json

    from farm.progress import make_console
    from rich.table import Table

    from farm.store import DeviceRow, Store

    store = Store(args.db, create=False)
    with store.session() as session:
        devices = session.query(DeviceRow).order_by(DeviceRow.name).all()
    table = Table(title=f"devices in {args.db}", title_justify="left")
    for column in ("name", "kind", "last seen", "facts"):
        table.add_column(column)
    for device in devices:
        facts = json.loads(device.facts)
        shown = ", ".join(f"{k}={v}" for k, v in facts.items() if not isinstance(v, (dict, list)))
        table.add_row(device.name, device.kind, str(device.last_seen or "never"), shown)
    make_console().print(table)
    return 0


def _inventory_devices(args):
    from farm.inventory import default_inventory, load_inventory

    inventory = load_inventory(*(args.inventory or default_inventory()))
    names = args.devices or [d.name for d in inventory.devices]
    unknown = [n for n in names if n not in {d.name for d in inventory.devices}]
    if unknown:
        raise FarmError(f"unknown device {unknown[0]!r} (inventory has: {', '.join(d.name for d in inventory.devices)})")
    return [inventory.device(name) for name in names]


def cmd_inventory_probe(args) -> int:
    import asyncio

    from farm.store import Store
    from farm.transports import DeviceLost, DeviceRefused, open_transport

    devices = _inventory_devices(args)
    store = Store(args.db)

    async def probe(device):
        transport = open_transport(device)
        try:
            return await transport.probe()
        except (DeviceLost, DeviceRefused) as error:
            return error
        finally:
            await transport.close()

    async def probe_all():
        return await asyncio.gather(*(probe(device) for device in devices))

    failed = 0
    for device, facts in zip(devices, asyncio.run(probe_all())):
        if isinstance(facts, Exception):
            failed += 1
            print(f"{device.name}: unreachable: {facts}")
            continue
        store.upsert_device(device, facts)
        runtime = facts.get("runtime") or {}
        edgetpu = "Edge TPU present" if (facts.get("edgetpu") or {}).get("present") else "no Edge TPU"
        print(f"{device.name}: Python {facts.get('python_version')}, {runtime.get('name')} {runtime.get('version')}, "
              f"{facts.get('cpu_model')} x{facts.get('cores')}, {facts.get('ram_mb')} MB RAM, "
              f"board {facts.get('board') or facts.get('jetson') or '-'}, governor {facts.get('governor') or '-'}, "
              f"{edgetpu}")
    return 1 if failed else 0


def cmd_inventory_discover(args) -> int:
    import re

    import yaml

    from farm.transports.adb import discover

    entries = []
    for server in args.adb_server or ["127.0.0.1:5037"]:
        for phone in discover(server):
            print(f"# {phone['serial']}: {phone['manufacturer']} {phone['model']}, SoC {phone['soc']}, "
                  f"{phone['abi']}, Android {phone['release']} (SDK {phone['sdk']}) on adb server {server}")
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{phone['model'] or 'phone'}-{phone['serial']}").strip("-").lower()
            entry = {"name": name, "kind": "android", "serial": phone["serial"]}
            if server != "127.0.0.1:5037":
                entry["adb_server"] = server
            entry.update(tags=["android"], delegates=["xnnpack", "none", "gpu", "nnapi"],
                         binaries={phone["abi"] or "arm64-v8a": f"tools/{phone['abi'] or 'arm64-v8a'}/benchmark_model"})
            entries.append(entry)
    if not entries:
        print("# no phones attached (adb devices lists none)")
        return 1
    print(yaml.safe_dump({"devices": entries}, sort_keys=False), end="")
    return 0


def cmd_inventory_trust(args) -> int:
    from farm.transports.ssh import trust

    for device in _inventory_devices(args):
        if device.kind != "linux":
            raise FarmError(f"device {device.name!r}: only SSH (linux) devices have host keys to trust")
        print(trust(device))
    return 0


def cmd_provision(args) -> int:
    import asyncio

    from farm.provision import provision
    from farm.store import Store
    from farm.transports import DeviceLost, DeviceRefused
    from farm.transports.ssh import SshTransport

    store = Store(args.db)
    for device in _inventory_devices(args):
        venv_python = provision(device, base_python=args.python, pip_args=args.pip_args)
        if device.python and device.python != venv_python:
            print(f"{device.name}: note: the inventory sets python: {device.python}, so the agent keeps using it; "
                  f"remove that line to use {venv_python}")

        async def probe(device=device):
            transport = SshTransport(device)
            try:
                return await transport.probe()
            finally:
                await transport.close()

        try:
            facts = asyncio.run(probe())
        except (DeviceLost, DeviceRefused) as error:
            raise FarmError(f"device {device.name!r}: provisioned, but the probe failed: {error}") from None
        store.upsert_device(device, facts)
        runtime = facts.get("runtime") or {}
        if not runtime.get("name"):
            raise FarmError(f"device {device.name!r}: provisioned, but no runtime found: {runtime.get('error')}")
        print(f"{device.name}: ready: {facts['python_executable']} (Python {facts['python_version']}), "
              f"{runtime['name']} {runtime['version']}, numpy {facts.get('numpy_version')}")
    return 0


# --- convert --------------------------------------------------------------------------------------------------------

def cmd_convert(args) -> int:
    from farm.progress import make_console
    from rich.table import Table

    from farm.convert import convert_model
    from farm.paths import cache_dir

    variants = convert_model(Path(args.model), args.variants, name=args.name,
                             calibration=Path(args.calibration) if args.calibration else None,
                             calibration_samples=args.calibration_samples, cache=cache_dir())
    table = Table(title=f"variants of {args.model} (cached in {cache_dir()})", title_justify="left")
    for column in ("variant", "size KB", "sha256", "input", "output", "ops", "flex", "status"):
        table.add_column(column)
    for v in variants:
        d = v.description or {}
        io = lambda t: f"{t['dtype']}{list(t['shape'])}" if t else "-"  # noqa: E731
        table.add_row(v.kind, f"{v.size / 1024:.1f}", v.sha256[:12], io((d.get("inputs") or [None])[0]),
                      io((d.get("outputs") or [None])[0]), str(d.get("op_count", "-")),
                      "yes" if d.get("needs_flex") else "no", "ok" if not v.error else f"unusable: {v.error}")
    make_console().print(table)
    failed = [v.kind for v in variants if v.error]
    if failed:
        print(f"farm: {len(failed)} of {len(variants)} variants unusable: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# --- sweep ----------------------------------------------------------------------------------------------------------

def _spec_from_args(args):
    from farm.plan import load_spec, parse_spec

    if args.spec:
        return load_spec(args.spec), args.spec
    if not args.model:
        raise FarmError("farm sweep run: give a sweep spec file, or --model with flags")
    raw = {
        "name": args.name or Path(args.model).name.split(".")[0],
        "inventory": args.inventory or [],
        "models": [{"source": args.model, "variants": args.variants or ["fp32"],
                    **({"calibration": args.calibration} if args.calibration else {}),
                    **({"eval": args.eval} if args.eval else {})}],
    }
    for key in ("devices", "delegates", "threads", "repeats", "runs", "warmup_runs", "min_secs"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    return parse_spec(raw, "command line").resolve(Path.cwd()), "command line"


def _run_and_report(store, sweep) -> int:
    """Run a recorded sweep with a live display, print its results; 0 when every job ran, 1 when some failed."""
    from farm.progress import SweepDisplay, make_console, results_table
    from farm.sweep import run_sweep

    console = make_console()
    counts = store.counts(sweep.id)
    try:
        with SweepDisplay(sweep.name, counts, console) as display:
            runner = run_sweep(store, sweep, display.notify)
    except KeyboardInterrupt:
        print(f"farm: interrupted; continue with: farm sweep resume {sweep.name}", file=sys.stderr)
        return 130
    console.print(results_table(store.report(sweep.id), f"sweep {sweep.name}"))
    counts = runner.counts
    uploaded = sum(runner.bytes_uploaded.values())
    console.print(f"sweep {sweep.name}: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n)
                  + f"; {uploaded} bytes uploaded to devices")
    return 0 if counts["failed"] == 0 else 1


def cmd_sweep_run(args) -> int:
    from farm.store import Store
    from farm.sweep import create_sweep

    spec, where = _spec_from_args(args)
    store = Store(args.db)
    sweep = create_sweep(store, spec, where, name=args.name if args.spec else None)
    print(f"sweep {sweep.name}: {sum(store.counts(sweep.id).values())} jobs recorded in {args.db}")
    return _run_and_report(store, sweep)


def cmd_sweep_resume(args) -> int:
    from farm.store import Store

    store = Store(args.db, create=False)
    sweep = store.sweep(args.sweep)
    return _run_and_report(store, sweep)


def cmd_sweep_status(args) -> int:
    from farm.progress import make_console
    from rich.table import Table

    from farm.store import Store

    store = Store(args.db, create=False)
    sweeps = [store.sweep(args.sweep)] if args.sweep else store.sweeps()
    table = Table(title=f"sweeps in {args.db}", title_justify="left")
    for column in ("sweep", "state", "created", "pending", "running", "done", "failed", "skipped"):
        table.add_column(column)
    for sweep in sweeps:
        counts = store.counts(sweep.id)
        table.add_row(sweep.name, sweep.state, f"{sweep.created:%Y-%m-%d %H:%M}",
                      *(str(counts[s]) for s in ("pending", "running", "done", "failed", "skipped")))
    console = make_console()
    console.print(table)
    if args.sweep:
        for row in store.report(sweeps[0].id):
            if row["status"] in ("failed", "skipped"):
                console.print(f"  {row['status']}: {row['device']} {row['model']} {row['variant']} {row['delegate']} "
                              f"t{row['threads']}: {row['error']}", markup=False, highlight=False, soft_wrap=True)
    return 0


# --- export and demo ------------------------------------------------------------------------------------------------

def cmd_export(args) -> int:
    from farm.export import export_per_device
    from farm.store import Store

    store = Store(args.db, create=False)
    for path in export_per_device(store, args.sweep, Path(args.out)):
        print(path)
    return 0


def cmd_dashboard(args) -> int:
    import subprocess

    from farm.dashboard.launch import command

    print(f"dashboard: http://{args.address}:{args.port}/ over {args.db} (read-only; Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command(args.db, args.port, args.address))
    except KeyboardInterrupt:
        return 0


def cmd_demo(args) -> int:
    from farm.demo import run_demo

    return run_demo(Path(args.workdir), db=args.db, reports=Path(args.out) if args.out else None, runs=args.runs)


# --- parser ---------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="farm", description="Benchmark TensorFlow Lite (LiteRT) models across a farm of "
                                     "edge devices: convert variants, sweep them over devices, store, export.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_db(sub):
        sub.add_argument("--db", default=DEFAULT_DB, help="store: a SQLite file or any SQLAlchemy URL (default: farm.db)")
        return sub

    inventory = commands.add_parser("inventory", help="check and show the devices of the farm")
    inventory_commands = inventory.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = inventory_commands.add_parser("check", help="validate inventory files and list their devices")
    check.add_argument("files", nargs="*", help="inventory YAML files (default: inventory/local.yaml if it is here, "
                       "else this machine alone)")
    check.set_defaults(func=cmd_inventory_check)
    show = with_db(inventory_commands.add_parser("show", help="devices in the store with the facts probed from them"))
    show.set_defaults(func=cmd_inventory_show)

    def with_inventory(sub):
        sub.add_argument("devices", nargs="*", help="device names (default: every device of the inventory)")
        sub.add_argument("--inventory", action="append",
                         help=INVENTORY_HELP)
        return sub

    probe = with_db(with_inventory(inventory_commands.add_parser(
        "probe", help="connect to devices, record their facts (Python, runtime, CPU, RAM, board, Edge TPU, thermals)")))
    probe.set_defaults(func=cmd_inventory_probe)
    discover_ = inventory_commands.add_parser(
        "discover", help="list the phones attached to adb servers and print inventory entries to paste")
    discover_.add_argument("--adb-server", action="append", help="host:port of an adb server (repeatable; "
                           "default: the local one, 127.0.0.1:5037)")
    discover_.set_defaults(func=cmd_inventory_discover)
    trust_ = with_inventory(inventory_commands.add_parser(
        "trust", help="record the current SSH host key of devices in their known_hosts (after you checked it)"))
    trust_.set_defaults(func=cmd_inventory_trust)

    provision_ = with_db(with_inventory(commands.add_parser(
        "provision", help="install the agent's runtime on Linux boards: a venv with numpy and ai-edge-litert "
                          "(or tflite-runtime), checked with a probe")))
    provision_.add_argument("--python", default="python3", help="the board's Python to create the venv with")
    provision_.add_argument("--pip-args", default="", help="extra pip arguments, e.g. '--index-url URL'")
    provision_.set_defaults(func=cmd_provision)

    convert = commands.add_parser("convert", help="convert a Keras/SavedModel/.tflite model into variants (cached)")
    convert.add_argument("model", help=".keras or .h5 file, SavedModel folder, or .tflite file")
    convert.add_argument("--variants", type=_csv, default=["fp32"],
                         help="comma-separated: fp32, fp16, dynamic, int8, int16x8, edgetpu (default: fp32)")
    convert.add_argument("--calibration", help="representative data for int8/int16x8: an .npz (x) or a folder of images")
    convert.add_argument("--calibration-samples", type=int, default=200, help="calibration samples used (default: 200)")
    convert.add_argument("--name", help="model name (default: the file's stem)")
    convert.set_defaults(func=cmd_convert)

    sweep = commands.add_parser("sweep", help="run, resume and follow sweeps")
    sweep_commands = sweep.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = with_db(sweep_commands.add_parser(
        "run", help="plan a sweep from a spec file (or flags) and run it",
        description="Plan every (device, variant, delegate, threads, repeat) job of a sweep, record it, run it."))
    run.add_argument("spec", nargs="?", help="sweep spec YAML (see README); or use --model and the flags below")
    run.add_argument("--name", help="sweep name (default: the spec's name; a suffix is added when taken)")
    run.add_argument("--model", help="model file or folder, for a sweep given by flags")
    run.add_argument("--variants", type=_csv, help="comma-separated variant kinds (default: fp32)")
    run.add_argument("--calibration", help="representative data for int8/int16x8")
    run.add_argument("--eval", help="eval .npz (x inputs, y labels) for accuracy")
    run.add_argument("--inventory", action="append", help=INVENTORY_HELP)
    run.add_argument("--devices", type=_csv, help="device names, tag:NAME, or all (default: all)")
    run.add_argument("--delegates", type=_csv, help="comma-separated delegates (default: xnnpack)")
    run.add_argument("--threads", type=_ints, help="comma-separated thread counts (default: 1)")
    run.add_argument("--repeats", type=int, help="repeats of each job (default: 1)")
    run.add_argument("--runs", type=int, help="measured runs per job (default: 50)")
    run.add_argument("--warmup-runs", dest="warmup_runs", type=int, help="warmup runs per job (default: 5)")
    run.add_argument("--min-secs", dest="min_secs", type=float, help="keep measuring at least this long (default: 0)")
    run.set_defaults(func=cmd_sweep_run)
    status = with_db(sweep_commands.add_parser("status", help="job counts of every sweep, or of one with its failures"))
    status.add_argument("sweep", nargs="?", help="sweep name")
    status.set_defaults(func=cmd_sweep_status)
    resume = with_db(sweep_commands.add_parser("resume", help="run what is left of a sweep (after a crash or Ctrl-C)"))
    resume.add_argument("sweep", help="sweep name")
    resume.set_defaults(func=cmd_sweep_resume)

    export = with_db(commands.add_parser("export", help="write a CSV report per device"))
    export.add_argument("--sweep", help="sweep name (default: the newest)")
    export.add_argument("--per-device", action="store_true", default=True, help="one CSV per device (the default)")
    export.add_argument("--out", default="reports", help="output folder (default: reports/)")
    export.set_defaults(func=cmd_export)

    dashboard = with_db(commands.add_parser("dashboard", help="browse the store in a Streamlit dashboard (read-only)"))
    dashboard.add_argument("--port", type=int, default=8501, help="port to serve on (default: 8501)")
    dashboard.add_argument("--address", default="127.0.0.1",
                           help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 shares it)")
    dashboard.set_defaults(func=cmd_dashboard)

    demo = commands.add_parser("demo", help="train two small models, convert them, benchmark them here")
    demo.add_argument("--workdir", default=".", help="where the demo writes: models and data in demo/, the store "
                      "farm.db, CSVs in reports/ (default: the current directory)")
    demo.add_argument("--db", help="store: a SQLite file or any SQLAlchemy URL (default: WORKDIR/farm.db)")
    demo.add_argument("--out", help="CSV output folder (default: WORKDIR/reports/)")
    demo.add_argument("--runs", type=int, default=50, help="measured runs per job (default: 50)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
