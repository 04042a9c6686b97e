"""Subcommands beyond the offline analysis ones, grouped by who uses them; cli.py registers each group."""

CONFIG_HELP = "default: $KAMIYO_CONFIG, then /etc/kamiyo/kamiyo.toml"


def in_transaction(settings, work):
    """Run `work(conn)` in one transaction on the configured database, created or migrated first: watchlists and
    keys may be written before the daemon ever ran."""
    import asyncio

    from ..storage.engine import create_engine
    from ..storage.migrations import upgrade

    async def run():
        engine = create_engine(settings.storage)
        try:
            await upgrade(engine)
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())
