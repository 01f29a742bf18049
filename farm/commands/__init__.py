"""The `farm` subcommands, one module per group (farm/cli.py is the thin parser that dispatches to them)."""
