"""Subcommands beyond the offline analysis ones, grouped by who uses them; cli.py registers each group."""
