"""pytest fixtures of the SSH test fleet. In tests/conftest.py:  from fleet.fixtures import ssh_fleet, healed_ssh_fleet

ssh_fleet        session-scoped: K real sshd hosts (board1..board4 by default, FARM_TEST_SSH_HOSTS=K to change)
healed_ssh_fleet the same fleet for a test that breaks hosts (kill / freeze / rotate_host_key): healed before and after
"""
from __future__ import annotations

import os

import pytest

from .sshd import Fleet, FleetError, require_openssh, start_fleet

FLEET_SIZE = int(os.environ.get("FARM_TEST_SSH_HOSTS") or 4)

# One fleet per session even when the fixture is imported in several places (conftest.py and a test module both
# importing ssh_fleet make two fixture definitions): the first to run starts it, the last to finish stops it.
_shared: dict = {"fleet": None, "users": 0}


@pytest.fixture(scope="session")
def ssh_fleet(tmp_path_factory) -> Fleet:
    """K real OpenSSH servers on 127.0.0.11.. (one port), one client key, one known_hosts; stopped at the end."""
    problem = None
    try:
        require_openssh()
    except FleetError as exc:
        problem = str(exc)
    if problem:
        pytest.fail(problem, pytrace=False)  # not a skip: `make test` installs what the suite needs
    if _shared["fleet"] is None:
        _shared["fleet"] = start_fleet(FLEET_SIZE, tmp_path_factory.mktemp("ssh-fleet"))
    _shared["users"] += 1
    try:
        yield _shared["fleet"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            fleet, _shared["fleet"] = _shared["fleet"], None
            fleet.stop()


@pytest.fixture
def healed_ssh_fleet(ssh_fleet: Fleet) -> Fleet:
    """The session's fleet, every host thawed, running and serving its enrolled key before and after the test."""
    ssh_fleet.heal()
    yield ssh_fleet
    ssh_fleet.heal()
