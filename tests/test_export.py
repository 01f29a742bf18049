"""farm.export: a CSV per device of a sweep, with the report's columns, written whole or not at all."""
import os
import stat

from farm.export import COLUMNS, export_per_device
from test_store import make_sweep, result, store  # noqa: F401  (store: a fixture)


def test_export_one_csv_per_device(store, tmp_path):  # noqa: F811
    import pandas as pd

    sweep = make_sweep(store)
    job = store.jobs(sweep.id, ("pending",))[0]
    store.start_job(job.id)
    store.finish_job(job.id, result([1000, 3000]), [1000, 3000])
    files = export_per_device(store, "s", tmp_path / "reports")
    assert [f.name for f in files] == ["s-local.csv", "s-pi.csv"]
    pi = pd.read_csv(tmp_path / "reports" / "s-pi.csv")
    assert list(pi.columns) == COLUMNS
    assert len(pi) == 3 and set(pi["status"]) == {"done", "pending", "skipped"}
    assert pi.loc[pi["status"] == "skipped", "error"].item() == "no gpu"
    done = pi[pi["status"] == "done"].iloc[0]
    assert done["p50_ms"] == 2.0 and done["size_kb"] == 1.0
    assert (done["runtime"], done["runtime_version"]) == ("ai_edge_litert", "2.3.0")  # which of the runtimes ran it
    assert not list((tmp_path / "reports").glob(".*tmp"))


def test_reports_get_the_users_umask(store, tmp_path):  # noqa: F811
    make_sweep(store)
    previous = os.umask(0o027)
    try:
        files = export_per_device(store, "s", tmp_path / "reports")
    finally:
        os.umask(previous)
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o640}
