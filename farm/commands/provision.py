"""`farm provision`: ready Linux boards for the agent, then probe them."""
from __future__ import annotations

from farm.commands.inventory import onnxruntime_summary, selected_devices
from farm.errors import FarmError


def provision(args) -> int:
    import asyncio

    from farm.provision import provision
    from farm.store import Store
    from farm.results import DeviceLost, DeviceRefused
    from farm.transports.ssh import SshTransport

    store = Store(args.db)
    for device in selected_devices(args):
        venv_python, choice = provision(device, base_python=args.python, pip_args=args.pip_args,
                                        onnxruntime=args.onnxruntime, runtime=args.runtime)
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
        # Kept with the device's facts, and across later probes (farm.store), which know nothing of it.
        store.upsert_device(device, {**facts, "provisioned": choice.record()})
        runtime = facts.get("runtime") or {}
        if not runtime.get("name"):
            raise FarmError(f"device {device.name!r}: provisioned, but no runtime found: {runtime.get('error')}")
        ort = facts.get("onnxruntime") or {}
        if args.onnxruntime and not ort.get("version"):
            raise FarmError(f"device {device.name!r}: provisioned, but onnxruntime is missing: {ort.get('error')}")
        print(f"{device.name}: ready: {facts['python_executable']} (Python {facts['python_version']}), "
              f"{runtime['name']} {runtime['version']}, numpy {facts.get('numpy_version')}"
              + (f", {onnxruntime_summary(facts)}" if args.onnxruntime else ""))
    return 0
