"""Agents shipped to devices and run there with the device's own Python: each is one self-contained file.

Installed as `farm.agents`, so the wheel carries the very file that is in the repository's agents/ folder."""
