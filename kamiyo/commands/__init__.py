"""Subcommands beyond the offline analysis ones, grouped by who uses them; cli.py registers each group."""

CONFIG_HELP = "default: $KAMIYO_CONFIG, then /etc/kamiyo/kamiyo.toml"
