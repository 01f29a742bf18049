"""pytest fixtures of the private PostgreSQL cluster. In tests/conftest.py:  from postgres.fixtures import ...

postgres_cluster  session-scoped: one private cluster (tests/postgres), stopped and removed at the end
db                a new store location per backend: a SQLite file path, then a PostgreSQL URL of a new database
"""
from __future__ import annotations

import pytest

from . import Cluster, ClusterError

_shared: dict = {"cluster": None}


@pytest.fixture(scope="session")
def postgres_cluster():
    if _shared["cluster"] is None:
        try:
            _shared["cluster"] = Cluster().start()
        except ClusterError as error:
            pytest.fail(str(error), pytrace=False)  # not a skip: `make test` installs what the suite needs
    yield _shared["cluster"]


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres_cluster():
    yield
    if _shared["cluster"] is not None:
        cluster, _shared["cluster"] = _shared["cluster"], None
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    """Where a test's store lives, once per backend."""
    if request.param == "sqlite":
        return str(tmp_path / "farm.db")
    return request.getfixturevalue("postgres_cluster").new_database()
