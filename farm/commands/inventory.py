"""`farm inventory`: check, show, probe, discover and trust the devices of the farm."""
from __future__ import annotations

from farm.errors import FarmError


def check(args) -> int:
    from farm.progress import add_plain_row, make_console, plain_table

    from farm.inventory import default_inventory, describe_default, load_inventory

    files = args.files or default_inventory()
    if not args.files:
        print(describe_default(files))
    inventory = load_inventory(*files)
    table = plain_table(f"{len(inventory.devices)} devices, inventory valid", title_justify="left")
    for column in ("name", "kind", "reached at", "delegates", "tags"):
        table.add_column(column)
    for device in inventory.devices:
        add_plain_row(table, device.name, device.kind, device.reached_at(), ", ".join(device.delegates),
                      ", ".join(device.tags))
    make_console().print(table)
    return 0


def show(args) -> int:
    import json

    from farm.progress import add_plain_row, make_console, plain_table

    from farm.store import Store

    devices = Store(args.db, create=False).devices()
    table = plain_table(f"devices in {args.db}", title_justify="left")
    for column in ("name", "kind", "last seen", "facts"):
        table.add_column(column)
    for device in devices:
        facts = json.loads(device.facts)
        shown = ", ".join(f"{k}={v}" for k, v in facts.items() if not isinstance(v, (dict, list)))
        if (facts.get("onnxruntime") or {}).get("version"):
            shown += f", onnxruntime={facts['onnxruntime']['version']}"
        add_plain_row(table, device.name, device.kind, str(device.last_seen or "never"), shown)
    make_console().print(table)
    return 0


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
    import asyncio

    from farm.store import Store
    from farm.results import DeviceLost, DeviceRefused
    from farm.transports import open_transport

    devices = selected_devices(args)
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
              f"{edgetpu}, {onnxruntime_summary(facts)}")
    return 1 if failed else 0


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
