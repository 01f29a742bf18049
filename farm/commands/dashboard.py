"""`farm dashboard`: serve the Streamlit dashboard over a store, read-only."""
from __future__ import annotations

import signal
import subprocess

from farm import hints

STOP_S = 10  # the server's time to stop after SIGTERM before it is killed


def dashboard(args) -> int:
    from farm.dashboard.launch import command
    from farm.store import Store

    # A store that is missing, not a tflite-farm store or of another schema is one line and exit 2 here, not a page
    # that serves an error.
    Store(args.db, create=False, readonly=True).engine.dispose()
    print(f"dashboard: http://{args.address}:{args.port}/ over {hints.without_password(args.db)} (read-only; Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(command(args.db, args.port, args.address))
    # SIGTERM (kill, a service manager) stops farm as Ctrl-C does. Either signal may reach farm alone (kill -INT
    # PID, not the terminal's whole process group), so the server is stopped here rather than left serving.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with it ignored (a background job)
    try:
        return server.wait()
    except KeyboardInterrupt:
        _stop(server)
        return 0


def _stop(server: subprocess.Popen, grace_s: float = STOP_S) -> None:
    """Stop the server, and wait until it has: a second Ctrl-C or SIGTERM does not cut this short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server.terminate()
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
