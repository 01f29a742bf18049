"""`farm export`: a CSV report per device."""
from __future__ import annotations

from pathlib import Path


def export(args) -> int:
    from farm.export import export_per_device
    from farm.store import Store

    store = Store(args.db, create=False)
    for path in export_per_device(store, args.sweep, Path(args.out)):
        print(path)
    return 0
