"""`farm dashboard`: serve the Streamlit dashboard over a store, read-only."""
from __future__ import annotations


def dashboard(args) -> int:
    import subprocess

    from farm.dashboard.launch import command

    print(f"dashboard: http://{args.address}:{args.port}/ over {args.db} (read-only; Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command(args.db, args.port, args.address))
    except KeyboardInterrupt:
        return 0
