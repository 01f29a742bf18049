"""The commands farm suggests ("check it, then: farm inventory trust pi4"), written to work as printed: they carry the
store and inventories the running command was given, where the suggested command takes them.

`farm.cli` records what is in force when it parses a command line; code that knows better (a sweep's own
inventories, the demo's store in its workdir) passes the option itself.
"""
from __future__ import annotations

import argparse
import functools
import re
import shlex

_in_force: dict[str, object] = {}  # option name without dashes -> value: what this process was given
# The options a hint may carry, in the order they are printed.
CARRIED = ("inventory", "db")


def given(**options: object) -> None:
    """Record options in force for this process (None: not given, the command's default applies)."""
    _in_force.update({name: value for name, value in options.items() if name in CARRIED})


def for_device(words: str, device, *arguments: str) -> str:
    """A command about one device: with the inventory file that defines it (whatever this process was given)."""
    file = device.inventory_file
    return command(words, device.name, *arguments, **({"inventory": [file]} if file is not None else {}))


def command(words: str, *arguments: str, **options: object) -> str:
    """`farm <words> <arguments>` with the carried options that command takes: those passed here, else those in force."""
    accepted = _accepted(tuple(words.split()))
    parts = ["farm", *words.split(), *arguments]
    for name in CARRIED:
        value = options.get(name, _in_force.get(name))
        if value is None or f"--{name}" not in accepted:
            continue
        for one in value if isinstance(value, (list, tuple)) else [value]:
            parts += [f"--{name}", without_password(str(one))]
    return " ".join(shlex.quote(part) for part in parts)


def without_password(value: str) -> str:
    """A store as farm prints it, as the user gave it but without a password (a terminal is often a CI log); libpq
    finds it in ~/.pgpass or PGPASSWORD, where it belongs."""
    return re.sub(r"(://[^/:@]+):[^@/]*@", r"\1@", value)


@functools.cache
def _accepted(words: tuple[str, ...]) -> frozenset[str]:
    """The options `farm <words>` takes, read once per process: building the whole parser takes milliseconds, and a
    sweep asks for a hint for each of its devices (a thousand of them, on a large farm)."""
    from farm.cli import build_parser

    return frozenset(_options_of(build_parser(), list(words)))


def _options_of(parser: argparse.ArgumentParser, words: list[str]) -> set[str]:
    """The option strings of the subcommand `words` (e.g. ["sweep", "resume"]), read off the parser itself."""
    for word in words:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[word]
    return {option for action in parser._actions for option in action.option_strings}
