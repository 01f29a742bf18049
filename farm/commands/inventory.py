"""`farm inventory`: check, show, probe, discover and trust the devices of the farm."""
from __future__ import annotations

from farm import hints
from farm.errors import FarmError


def check(args) -> int:
    """Validate inventories (a mistake in one: one line, exit 2), then look on this machine for the files they name
    (missing: errors, exit 2) and at what is not ready yet (warnings); with --probe, connect to every device too."""
    import sys

    from farm.inventory import default_inventory, describe_default, load_inventory
    from farm.progress import add_plain_row, make_console, plain_table

    files = args.files or default_inventory()
    if not args.files:
        print(describe_default(files))
    devices = load_inventory(*files).devices
    errors = [f"{device.where()}: {field}: {what}" for device in devices
              for field, what in device.missing_files().items()]
    for line in errors:
        print(f"farm: error: {line}", file=sys.stderr)
    for line in (f"{device.where()}: {note}" for device in devices for note in device.notes()):
        print(f"farm: warning: {line}", file=sys.stderr)
    verdict = f"{_count(len(errors), 'error')} (above)" if errors else "inventory valid"
    if args.probe:
        unready = probe_table(devices, f"{_count(len(devices), 'device')}, {verdict}, probed")
        return 2 if errors else 1 if unready else 0
    table = plain_table(f"{_count(len(devices), 'device')}, {verdict}", title_justify="left")
    for column in ("name", "kind", "reached at", "delegates", "tags"):
        table.add_column(column)
    for device in devices:
        add_plain_row(table, device.name, device.kind, device.reached_at(), ", ".join(device.delegates),
                      ", ".join(device.tags))
    make_console().print(table)
    return 2 if errors else 0


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def probe_table(devices, title: str) -> int:
    """Probe every device at once and print one table: reachable or why not, runtime, onnxruntime; then, under it, how
    to fix each device that cannot run benchmarks. Returns how many cannot."""
    from farm.errors import one_line
    from farm.progress import add_plain_row, make_console, plain_table

    table = plain_table(title, title_justify="left")
    for column in ("device", "kind", "reachable", "runtime", "onnxruntime"):
        table.add_column(column)
    unready, fixes = 0, []
    for device, facts in zip(devices, probe_each(devices)):
        if isinstance(facts, Exception):
            unready += 1
            add_plain_row(table, device.name, device.kind, f"no: {one_line(facts)}", "-", "-")
            continue
        add_plain_row(table, device.name, device.kind, "yes", runtime_words(facts), onnxruntime_words(facts))
        problem = runtime_problem(device, facts)
        if problem:
            unready += 1
            fixes.append(f"{device.name}: {problem}")
    make_console().print(table)
    for line in fixes:  # under the table, whole: each carries a command to paste
        print(line)
    return unready


def probe_each(devices) -> list:
    """Each device's probe facts, or the error that stopped its probe: every device at once."""
    import asyncio

    from farm.results import DeviceLost, DeviceRefused, JobFailed
    from farm.transports import open_transport

    async def probe(device):
        transport = open_transport(device)
        try:
            return await transport.probe()
        except (DeviceLost, DeviceRefused, JobFailed, OSError) as error:  # OSError: TimeoutError too
            return error
        finally:
            await transport.close()

    async def probe_all():
        return await asyncio.gather(*(probe(device) for device in devices))

    return asyncio.run(probe_all())


# What a device said is not trusted: every value shown is one line of at most this many characters in a table cell,
# and of LINE in the lines under a table (long enough for a path whole: a fix that names a cut path cannot work).
SHOWN, LINE = 80, 300


def _said(value, limit: int = SHOWN) -> str:
    from farm.errors import one_line

    return one_line(str(value), limit)


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def runtime_words(facts: dict) -> str:
    """The runtime a device's facts say it benchmarks with: 'ai_edge_litert 2.1.0', 'no LiteRT runtime', or a phone's
    benchmark_model (a phone's probe reports no runtime: it runs the benchmark_model of its inventory entry)."""
    if "runtime" not in facts:
        return f"benchmark_model ({_said(facts['abi'])})" if facts.get("abi") else "-"
    runtime = _object(facts["runtime"])
    if not runtime.get("name"):
        return "no LiteRT runtime"
    return f"{_said(runtime['name'])} {_said(runtime.get('version') or 'of unknown version')}"


def onnxruntime_words(facts: dict) -> str:
    if "onnxruntime" not in facts:
        return "-"
    version = _object(facts["onnxruntime"]).get("version")
    return _said(version) if version else "none"


def runtime_problem(device, facts: dict) -> str | None:
    """Why a device whose probe answered cannot run TFLite benchmarks, with the fix; None when it can (or runs no
    agent: a phone whose probe found its benchmark_model)."""
    runtime = facts.get("runtime")
    if not isinstance(runtime, dict) or runtime.get("name"):
        return None
    python = facts.get("python_executable")
    python = _said(python, LINE) if isinstance(python, str) and python else device.python or "python3"
    return f"no LiteRT runtime (ai-edge-litert or tflite-runtime) for {python}; fix: {device.runtime_fix(python)}"


def show(args) -> int:
    import json
    from datetime import datetime, timezone

    from farm.progress import add_plain_row, make_console, plain_table
    from farm.store import Store

    store = Store(args.db, create=False)
    devices = store.devices()
    now = datetime.now(timezone.utc)
    table = plain_table(f"{_count(len(devices), 'device')} in {hints.without_password(args.db)}", title_justify="left")
    for column in ("name", "kind", "runtime", "onnxruntime", "delegates", "Edge TPU", "hottest", "last seen"):
        table.add_column(column)
    details = []
    for device in devices:
        facts = _object(json.loads(device.facts or "{}"))
        delegates = json.loads(device.delegates or "[]")
        if not facts or device.last_seen is None:
            add_plain_row(table, device.name, device.kind, "-", "-", ", ".join(map(_said, delegates)), "-", "-",
                          "never probed")
            continue
        add_plain_row(table, device.name, device.kind, runtime_words(facts), onnxruntime_words(facts),
                      ", ".join(map(_said, delegates)), _edgetpu(facts), _hottest(facts), _seen(device.last_seen, now))
        shown = _scalars(facts)
        if _object(facts.get("onnxruntime")).get("version"):
            shown += f", onnxruntime={_said(facts['onnxruntime']['version'])}"
        provisioned = _object(facts.get("provisioned"))  # what `farm provision` chose (farm.provision.Choice)
        if provisioned.get("runtime"):
            shown += (f", provisioned={_said(provisioned['runtime'])} {_said(provisioned.get('version'))} with numpy "
                      f"{_said(provisioned.get('numpy'))} ({_said(provisioned.get('why'), LINE)})")
        details.append(f"{device.name}: {shown}")
    make_console().print(table)
    for line in details:  # everything else the last probe said, one line per device (plain text, never markup)
        print(line)
    return 0


def _edgetpu(facts: dict) -> str:
    """'present (usb 1a6e:089a)' or 'none', from the probe's edgetpu facts; '-' where the probe does not look."""
    if "edgetpu" not in facts:
        return "-"
    edgetpu = _object(facts["edgetpu"])
    if not edgetpu.get("present"):
        return "none"
    found = [f"{bus} {_said(item)}" for bus in ("usb", "pci") for item in edgetpu.get(bus) or [] if item]
    return f"present ({', '.join(found)})" if found else "present"


def _hottest(facts: dict) -> str:
    """The hottest thermal zone of the last probe (a phone's battery too): '61.0 °C (cpu-thermal)', or '-'."""
    temps = {zone: value for zone, value in _object(facts.get("temps_c")).items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)}
    battery = _object(facts.get("battery")).get("temperature")
    if isinstance(battery, (int, float)) and not isinstance(battery, bool):
        temps["battery"] = battery
    if not temps:
        return "-"
    zone = max(temps, key=temps.get)
    return f"{temps[zone]:.1f} °C ({_said(zone)})"


def _seen(when, now) -> str:
    """'2025-06-01 14:03 UTC (12 min ago)': stores hand back UTC, some without its zone."""
    from datetime import timezone

    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    minutes = max(0, int((now - when).total_seconds() // 60))
    ago = ("just now" if minutes < 1 else f"{minutes} min ago" if minutes < 120 else
           f"{minutes // 60} h ago" if minutes < 48 * 60 else f"{minutes // (24 * 60)} days ago")
    return f"{when:%Y-%m-%d %H:%M} UTC ({ago})"


def onnxruntime_summary(facts: dict) -> str:
    """A probe's onnxruntime facts in a few words: its version and execution providers, or that there is none."""
    ort = facts.get("onnxruntime") or {}
    if not ort.get("version"):
        return "no onnxruntime"
    return f"onnxruntime {ort['version']} ({', '.join(ort.get('providers') or []) or 'no providers'})"


def selected_devices(args):
    from farm.inventory import default_inventory, load_inventory

    inventory = load_inventory(*(args.inventory or default_inventory()))
    names = args.devices or [d.name for d in inventory.devices]
    unknown = [n for n in names if n not in {d.name for d in inventory.devices}]
    if unknown:
        raise FarmError(f"unknown device {unknown[0]!r} (inventory has: {', '.join(d.name for d in inventory.devices)})")
    return [inventory.device(name) for name in names]


def probe(args) -> int:
    """Probe the devices at once and record their facts; exit 1 when one is unreachable or cannot run benchmarks."""
    from farm.errors import one_line
    from farm.store import Store

    devices = selected_devices(args)
    store = Store(args.db)
    failed = 0
    for device, facts in zip(devices, probe_each(devices)):
        if isinstance(facts, Exception):
            failed += 1
            print(f"{device.name}: unreachable: {one_line(facts)}")
            continue
        store.upsert_device(device, facts)
        print(f"{device.name}: {probe_summary(facts)}")
        problem = runtime_problem(device, facts)
        if problem:
            failed += 1
            print(f"{device.name}: {problem}")
    return 1 if failed else 0


def probe_summary(facts: dict) -> str:
    """What a probe found, in one line: the agent's Python, runtimes and host; a phone's model, SoC and Android; else
    (another kind) its facts as they came."""
    def said(key: str) -> str:
        return _said(facts[key]) if facts.get(key) not in (None, "") else "-"

    if "runtime" in facts:
        edgetpu = "Edge TPU present" if _object(facts.get("edgetpu")).get("present") else "no Edge TPU"
        return (f"Python {said('python_version')}, {runtime_words(facts)}, {said('cpu_model')} x{said('cores')}, "
                f"{said('ram_mb')} MB RAM, board {_said(facts.get('board') or facts.get('jetson') or '-')}, "
                f"governor {said('governor')}, {edgetpu}, {onnxruntime_summary(facts)}")
    if "abi" in facts:
        battery = _object(facts.get("battery")).get("level")
        return (f"{said('manufacturer')} {said('model')}, SoC {said('soc')}, {said('abi')}, Android {said('release')} "
                f"(SDK {said('sdk')}), {said('cores')} cores, battery {battery if battery is not None else '-'}%, "
                f"{runtime_words(facts)}")
    return _scalars(facts) or "no facts"


def _scalars(facts: dict) -> str:
    """The facts that are neither objects nor lists nor null, as 'key=value, ...', each bounded."""
    return ", ".join(f"{_said(key)}={_said(value, LINE)}" for key, value in facts.items()
                     if value is not None and not isinstance(value, (dict, list)))


def discover(args) -> int:
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


def trust(args) -> int:
    import sys

    from farm.transports.ssh import trust

    def confirm(question: str) -> bool:  # only a person at a terminal can say yes
        return sys.stdin.isatty() and input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    for device in selected_devices(args):
        if device.kind != "linux":
            if args.devices:
                raise FarmError(f"device {device.name!r}: only SSH (linux) devices have host keys to trust")
            print(f"{device.name}: skipped, a {device.kind} device has no SSH host key")
            continue
        trust(device, replace=args.replace, confirm=confirm)
    return 0
