"""The SSH test fleet: K real OpenSSH servers (Debian's sshd) on loopback addresses, and the fixture that starts them.

    from fleet import SshHost, Fleet, start_fleet
    fleet = start_fleet(4, tmp_path)            # board1..board4 on 127.0.0.11.. :22022, one known_hosts
    async with asyncssh.connect(**fleet[0].connect_options()) as conn: ...
    fleet[0].kill(); fleet[0].start(); fleet.stop()

The session-scoped pytest fixture is fleet.fixtures.ssh_fleet.
"""
from .sshd import (DEFAULT_PORT, AddressInUse, Fleet, FleetError, SshHost, address_free, find_sshd, require_openssh,
                   start_fleet)

__all__ = ["DEFAULT_PORT", "AddressInUse", "Fleet", "FleetError", "SshHost", "address_free", "find_sshd",
           "require_openssh", "start_fleet"]
